"""Training/serving skew: for sampled entities, what the online store serves (Feast
``get_online_features`` through the feature service, TTL applied as of the check time) must
equal the offline point-in-time row Feast's offline retrieval gives for the same entity and
time (``get_historical_features``, the training set's path)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.features import source
from ml_platform.features.definitions import ServiceDef
from ml_platform.features.online import TS_SUFFIX, read_online
from ml_platform.features.sql import _q, utc_source
from ml_platform.home import PlatformHome
from ml_platform.ingest.io import duckdb_session


@dataclass(frozen=True)
class SkewReport:
    service: str
    as_of: datetime
    checked: int
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.checked > 0 and not self.mismatches


def sample_entities(service: ServiceDef, as_of: datetime, n: int, seed: int) -> list[Any]:
    view = service.view
    with duckdb_session() as con:
        keys = (
            con.execute(
                f"SELECT DISTINCT {_q(view.entity_key)} AS k FROM "
                f"{utc_source(view.source_path, view.timestamp)} WHERE {_q(view.timestamp)} <= ? "
                f"ORDER BY k",
                [as_of],
            )
            .df()["k"]
            .tolist()
        )
    if not keys:
        return []
    picked = np.random.default_rng(seed).choice(len(keys), size=min(n, len(keys)), replace=False)
    return [keys[i] for i in sorted(picked)]


def offline_vectors(
    store: Any, service: ServiceDef, keys: list[Any], as_of: datetime
) -> pd.DataFrame:
    """Feast's offline point-in-time rows for entity rows stamped ``as_of``."""
    from ml_platform.features.offline import historical_features

    view = service.view
    rows = pd.DataFrame(
        {view.entity_key: keys, view.timestamp: pd.Timestamp(as_of).tz_convert("UTC")}
    )
    return historical_features(store, service, rows)


def same_value(a: Any, b: Any, tolerance: float) -> bool:
    a_missing = a is None or (isinstance(a, float) and math.isnan(a)) or a is pd.NA
    b_missing = b is None or (isinstance(b, float) and math.isnan(b)) or b is pd.NA
    if a_missing or b_missing:
        return a_missing and b_missing
    if isinstance(a, int | float | np.number) and isinstance(b, int | float | np.number):
        return math.isclose(float(a), float(b), rel_tol=tolerance, abs_tol=tolerance)
    return bool(a == b)


def _plain(value: Any) -> Any:
    """A JSON-ready scalar (the mismatches go into the check's metadata)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def compare(
    service: ServiceDef, offline: pd.DataFrame, online: pd.DataFrame, tolerance: float
) -> list[dict[str, Any]]:
    key = service.view.entity_key
    on = online.set_index(key)
    mismatches = []
    for row in offline.to_dict("records"):
        for name in service.view.feature_names:
            served = on.at[row[key], name] if row[key] in on.index else None
            if not same_value(row[name], served, tolerance):
                stamp = on.at[row[key], name + TS_SUFFIX] if row[key] in on.index else None
                mismatches.append(
                    {
                        "entity": _plain(row[key]),
                        "feature": name,
                        "offline": _plain(row[name]),
                        "online": _plain(served),
                        "online_event_time": None
                        if pd.isna(stamp)
                        else pd.Timestamp(stamp).isoformat(),
                    }
                )
    return mismatches


def skew_report(
    service: ServiceDef,
    home: PlatformHome,
    as_of: datetime,
    sample: int = 50,
    seed: int = 0,
    tolerance: float = 1e-9,
) -> SkewReport:
    from ml_platform.features.feast_objects import feature_store

    with source.reading(Path(service.view.source_path)):
        keys = sample_entities(service, as_of, sample, seed)
        if not keys:
            return SkewReport(service.name, as_of, 0)
        store = feature_store(home)
        offline = offline_vectors(store, service, keys, as_of)
        online = read_online(store, service, keys, as_of, event_times=True)
    return SkewReport(service.name, as_of, len(keys), compare(service, offline, online, tolerance))
