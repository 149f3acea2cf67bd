"""Online materialization that never lets an older window overwrite newer online values.

Feast's SQLite (and Postgres) online stores upsert unconditionally, so re-running an old window
after a newer one would roll serving back in time. Here the latest row per entity in the window
is computed in DuckDB, compared with the event time already online, and only rows at least as
new are written. Runs for one pipeline are serialized by a lock file.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ml_platform.features.definitions import ServiceDef, ViewDef
from ml_platform.features.sql import _q, utc_source
from ml_platform.home import PlatformHome
from ml_platform.ingest.io import duckdb_session, write_json

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
READ_BATCH = 5_000  # entity keys per online read: stays under SQLite's variable limit


@dataclass(frozen=True)
class MaterializeResult:
    feature_view: str
    start: datetime
    end: datetime
    entities_in_window: int
    written: int
    skipped_not_newer: int
    watermark: datetime


def utc(value: datetime) -> datetime:
    """Naive datetimes are UTC; aware ones are converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def latest_in_window(view: ViewDef, start: datetime, end: datetime) -> pd.DataFrame:
    """Per entity, its newest feature row with start < event time <= end."""
    k, t = _q(view.entity_key), _q(view.timestamp)
    cols = ", ".join(_q(c) for c in [view.entity_key, view.timestamp, *view.feature_names])
    with duckdb_session() as con:
        frame = con.execute(
            f"SELECT {cols} FROM {utc_source(view.source_path, view.timestamp)} "
            f"WHERE {t} > ? AND {t} <= ? "
            f"QUALIFY row_number() OVER (PARTITION BY {k} ORDER BY {t} DESC) = 1",
            [start, end]).df()
    frame[view.timestamp] = pd.to_datetime(frame[view.timestamp], utc=True)
    return frame


def _entity_keys(view: ViewDef, values: list[Any]) -> list[Any]:
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    field = {"int64": "int64_val", "string": "string_val"}[view.entity_dtype]
    return [EntityKey(join_keys=[view.entity_key], entity_values=[Value(**{field: v})])
            for v in values]


def online_event_times(store: Any, fv: Any, view: ViewDef, keys: list[Any]
                       ) -> list[datetime | None]:
    """The event time of each entity's online row (None where it has none)."""
    provider = store._get_provider()  # the public API does not expose online event times
    out: list[datetime | None] = []
    for i in range(0, len(keys), READ_BATCH):
        batch = _entity_keys(view, keys[i:i + READ_BATCH])
        for ts, _ in provider.online_read(config=store.config, table=fv, entity_keys=batch):
            out.append(utc(ts) if ts is not None else None)
    return out


def newer_rows(frame: pd.DataFrame, view: ViewDef, online: list[datetime | None]
               ) -> pd.DataFrame:
    """Rows at least as new as what is online: an older window never overwrites newer values."""
    current = pd.to_datetime(pd.Series(online, index=frame.index, dtype="object"), utc=True)
    return frame[current.isna() | (frame[view.timestamp] >= current)]


def watermark(store: Any, view_name: str) -> datetime | None:
    """End of the newest materialized window recorded in the Feast registry."""
    fv = store.get_feature_view(view_name, allow_registry_cache=False)
    ends = [utc(end) for _, end in fv.materialization_intervals]
    return max(ends) if ends else None


def _contract_file(home: PlatformHome, view: ViewDef) -> Path:
    return home.feast_dir / f"{view.name}.online.json"


def _loaded_contract(home: PlatformHome, view: ViewDef) -> str | None:
    path = _contract_file(home, view)
    return json.loads(path.read_text())["fingerprint"] if path.exists() else None


def _native(frame: pd.DataFrame, view: ViewDef) -> pd.DataFrame:
    # Feast converts per declared type; make integer features survive pandas' NaN upcasting.
    for f in view.fields:
        if f.dtype == "int64" and frame[f.name].dtype.kind == "f":
            frame[f.name] = frame[f.name].astype("Int64")
    return frame


def materialize(service: ServiceDef, home: PlatformHome, end: datetime | None = None,
                start: datetime | None = None, now: datetime | None = None
                ) -> MaterializeResult:
    """Load the window (start, end] into the online store: by default from the watermark to now.

    Refuses an end in the future (features for it may still change) and an empty window.
    """
    from ml_platform.features.feast_objects import feature_store

    now = utc(now or datetime.now(UTC))
    end = utc(end) if end else now
    if end > now:
        raise ValueError(f"materialization end {end.isoformat()} is in the future "
                         f"(now {now.isoformat()}): features for it may still change")
    view = service.view
    with _locked(home.feast_dir / f"{view.name}.lock"):
        store = feature_store(home)
        fv = store.get_feature_view(view.name, allow_registry_cache=False)
        mark = watermark(store, view.name)
        # A new feature contract (e.g. an added feature) needs every entity rewritten, not
        # only those with rows since the watermark.
        if _loaded_contract(home, view) != service.fingerprint:
            mark = None
        start = utc(start) if start else (mark or EPOCH)
        if start >= end:
            raise ValueError(f"empty materialization window: start {start.isoformat()} is not "
                             f"before end {end.isoformat()}")
        rows = latest_in_window(view, start, end)
        keys = rows[view.entity_key].tolist()
        fresh = newer_rows(rows, view, online_event_times(store, fv, view, keys))
        if len(fresh):
            store.write_to_online_store(view.name, _native(fresh.copy(), view))
        store.registry.apply_materialization(fv, store.project, start, end)
        write_json({"fingerprint": service.fingerprint}, _contract_file(home, view))
        new_mark = watermark(store, view.name) or end
    return MaterializeResult(view.name, start, end, len(rows), len(fresh),
                             len(rows) - len(fresh), new_mark)


def read_online(store: Any, service: ServiceDef, keys: list[Any], as_of: datetime | None = None
                ) -> pd.DataFrame:
    """Online feature vectors through the feature service, TTL applied as of ``as_of``.

    Feast's online stores return a row however old it is; training treats a row older than the
    TTL as missing, so serving must too, or the model sees values it never saw in training.
    """
    view = service.view
    fs = store.get_feature_service(service.name, allow_cache=False)
    frame = store.get_online_features(
        features=fs, entity_rows=[{view.entity_key: k} for k in keys]).to_df()
    if not view.ttl_seconds:
        return frame
    as_of = utc(as_of or datetime.now(UTC))
    fv = store.get_feature_view(view.name, allow_registry_cache=False)
    stamps = pd.Series(online_event_times(store, fv, view, keys), index=frame.index,
                       dtype="object")
    stamps = pd.to_datetime(stamps, utc=True)
    expired = stamps.isna() | (stamps < as_of - pd.Timedelta(seconds=view.ttl_seconds))
    for name in view.feature_names:
        frame[name] = frame[name].astype("object").where(~expired, None)
    return frame
