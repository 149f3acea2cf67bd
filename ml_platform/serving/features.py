"""Online features for a batch of entities: one Feast read through the model version's
feature service, event times in the same call, the spec's TTL applied here (Feast does not
apply it online, feast#6821), and entities the store does not know told apart from missing
values (Feast returns all-None for them).

Feast is imported only when a store is opened (about 3.5 s), never at module import.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TS_SUFFIX = "__ts"  # Feast's to_dict(include_event_timestamps=True) naming


@dataclass(frozen=True)
class EntityFeatures:
    """One entity's online row: None when the store has no row for it; ``expired`` when its
    newest row is older than the TTL (its values are then not used)."""

    values: dict[str, Any] | None
    event_time: float | None  # seconds since the epoch (Feast keeps whole seconds here)
    expired: bool = False


class OnlineFeatures:
    """Reads one feature service of one Feast store; ``ttl_seconds`` None: never expires."""

    def __init__(
        self, store: Any, service_name: str, entity_key: str, ttl_seconds: int | None
    ) -> None:
        self.store = store
        self.service = store.get_feature_service(service_name, allow_cache=False)
        self.service_name = service_name
        self.entity_key = entity_key
        self.ttl_seconds = ttl_seconds
        self.feature_names = [
            f.name
            for projection in self.service.feature_view_projections
            for f in projection.features
        ]

    def read(self, keys: Sequence[Any], now: float | None = None) -> list[EntityFeatures]:
        """One row per key, in key order."""
        if not keys:
            return []
        from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

        response = self.store.get_online_features(
            features=self.service, entity_rows={self.entity_key: list(keys)}
        )
        data = response.to_dict(include_event_timestamps=True)
        statuses = {
            name: vector.statuses
            for name, vector in zip(
                response.proto.metadata.feature_names.val, response.proto.results, strict=True
            )
        }
        oldest = None if self.ttl_seconds is None else (now or time.time()) - self.ttl_seconds
        out = []
        for i in range(len(keys)):
            # Every feature of a row is written together: one feature's status and time are
            # the row's.
            first = self.feature_names[0]
            if statuses[first][i] == FieldStatus.NOT_FOUND:
                out.append(EntityFeatures(None, None))
                continue
            stamp = float(data[first + TS_SUFFIX][i])
            values = {name: data[name][i] for name in self.feature_names}
            out.append(EntityFeatures(values, stamp, oldest is not None and stamp < oldest))
        return out


def open_store(home: Any) -> Any:
    """The home's Feast store (the same configuration the training side materializes into)."""
    from ml_platform.features.feast_objects import feature_store

    return feature_store(home)
