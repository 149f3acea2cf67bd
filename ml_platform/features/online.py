"""Online materialization with Feast's public APIs, never letting an older window overwrite
newer online values; online reads with the feature view's TTL applied.

Feast's SQLite (and Postgres) online stores upsert unconditionally: ``store.materialize`` of an
old window after a newer one would roll serving back in time. A window starting at or after
the end of everything loaded so far cannot hold a row older than what is online, so it goes
to ``store.materialize`` as is (Feast writes it and records the interval). A window reaching
back (a backfill, a reload after a contract change) is first compared with the event times
the online store holds for its entities: if none is newer than the window's row, it still
goes to ``store.materialize``; otherwise only rows at least as new are written, with
``store.write_to_online_store``. Loads of one feature view are serialized by a lock file and
hold the source against publishers (``source.reading``) while they read it.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from ml_platform.features import source
from ml_platform.features.definitions import ServiceDef, ViewDef
from ml_platform.features.sql import _q, utc_source
from ml_platform.home import PlatformHome
from ml_platform.ingest.io import duckdb_session, write_json

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
READ_BATCH = 5_000  # entity keys per online read
TS_SUFFIX = "__ts"  # as Feast's OnlineResponse.to_df(include_event_timestamps=True) names them


@dataclass(frozen=True)
class MaterializeResult:
    feature_view: str
    start: datetime
    end: datetime
    entities_in_window: int
    written: int
    skipped_not_newer: int
    watermark: datetime
    via: str  # "feast materialize" or "guarded write" (see the module docstring)


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
    """Per entity, its newest feature row with start <= event time <= end: the rows Feast's
    ``materialize(start, end)`` writes (its window includes both ends)."""
    k, t = _q(view.entity_key), _q(view.timestamp)
    cols = ", ".join(_q(c) for c in [view.entity_key, view.timestamp, *view.feature_names])
    with duckdb_session() as con:
        frame = con.execute(
            f"SELECT {cols} FROM {utc_source(view.source_path, view.timestamp)} "
            f"WHERE {t} >= ? AND {t} <= ? "
            f"QUALIFY row_number() OVER (PARTITION BY {k} ORDER BY {t} DESC) = 1",
            [start, end],
        ).df()
    frame[view.timestamp] = pd.to_datetime(frame[view.timestamp], utc=True)
    return frame


def _event_time(ts: Any, status: int, not_found: int) -> datetime | None:
    # The response's protobuf keeps nanoseconds; to_df(include_event_timestamps=True) only
    # whole seconds, too coarse to order two rows within a second.
    if status == not_found:
        return None
    return EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def online_rows(store: Any, features: Any, view: ViewDef, keys: list[Any]) -> pd.DataFrame:
    """Online values of ``features`` (a feature service or feature references) for ``keys``,
    in key order, each feature with its event time in ``<feature>__ts`` (None: no row)."""
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    parts = []
    for i in range(0, len(keys), READ_BATCH):
        response = store.get_online_features(
            features=features, entity_rows={view.entity_key: keys[i : i + READ_BATCH]}
        )
        part = response.to_df()
        for name, vector in zip(
            response.proto.metadata.feature_names.val, response.proto.results, strict=True
        ):
            if name != view.entity_key:
                part[name + TS_SUFFIX] = pd.to_datetime(
                    pd.Series(
                        [
                            _event_time(ts, st, FieldStatus.NOT_FOUND)
                            for ts, st in zip(vector.event_timestamps, vector.statuses, strict=True)
                        ],
                        dtype="object",
                    ),
                    utc=True,
                )
        parts.append(part)
    if not parts:
        return pd.DataFrame({view.entity_key: []})
    return pd.concat(parts, ignore_index=True)


def online_event_times(store: Any, view: ViewDef, keys: list[Any]) -> pd.Series:
    """The event time of each entity's online row (NaT where it has none). All features of a
    row are written together, so one feature's time is the row's."""
    first = view.feature_names[0]
    rows = online_rows(store, [f"{view.name}:{first}"], view, keys)
    return rows[first + TS_SUFFIX] if len(rows) else pd.Series([], dtype="datetime64[ns, UTC]")


def watermark(store: Any, view_name: str) -> datetime | None:
    """End of the newest materialized window recorded in the Feast registry."""
    fv = store.get_feature_view(view_name, allow_registry_cache=False)
    ends = [utc(end) for _, end in fv.materialization_intervals]
    return max(ends) if ends else None


def _state_file(home: PlatformHome, view: ViewDef) -> Path:
    return home.feast_dir / f"{view.name}.online.json"


def _state(home: PlatformHome, view: ViewDef) -> dict[str, Any]:
    path = _state_file(home, view)
    return json.loads(path.read_text()) if path.exists() else {}


def _native(frame: pd.DataFrame, view: ViewDef) -> pd.DataFrame:
    # Feast converts per declared type; make integer features survive pandas' NaN upcasting.
    for f in view.fields:
        if f.dtype == "int64" and frame[f.name].dtype.kind == "f":
            frame[f.name] = frame[f.name].astype("Int64")
    return frame


def _loaded_until(state: dict[str, Any], mark: datetime | None) -> datetime | None:
    """The end of everything loaded so far: no online row is stamped after it."""
    ends = [mark] if mark else []
    if state.get("loaded_until"):
        ends.append(utc(datetime.fromisoformat(state["loaded_until"])))
    return max(ends) if ends else None


def _redis_errors() -> tuple[type[Exception], ...]:
    """The Redis client's connection errors (a Redis down, restarted or too slow)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError)


def _redis_failure(
    home: PlatformHome, view: str, loaded_until: datetime | None, exc: Exception
) -> RuntimeError:
    # Raised before the state file and Feast's interval move: entities written before the
    # failure hold whole new rows (one hash per entity), the rest their previous ones.
    settings = home.production
    where = f" at {settings.redis.host}:{settings.redis.port}" if settings else ""
    mark = loaded_until.isoformat() if loaded_until else "nothing loaded yet"
    return RuntimeError(
        f"the online load of {view} failed on Redis{where}: {type(exc).__name__}: {exc}. "
        f"Its 'loaded until' mark stays at {mark}; each entity serves its previous or its new "
        f"row. Once Redis answers (check the server and ML_PLATFORM_REDIS_HOST/_PORT/_DB/"
        f"_PASSWORD), rerun the pipeline's online job: it reloads the window from that mark"
    )


def materialize(
    service: ServiceDef,
    home: PlatformHome,
    end: datetime | None = None,
    start: datetime | None = None,
    now: datetime | None = None,
) -> MaterializeResult:
    """Load the window [start, end] into the online store: by default from the watermark to
    now. Refuses an end in the future (features for it may still change) and an empty window.
    """
    from ml_platform.features.feast_objects import feature_store
    from ml_platform.features.offline import bounded_offline_store

    now = utc(now or datetime.now(UTC))
    end = utc(end) if end else now
    if end > now:
        raise ValueError(
            f"materialization end {end.isoformat()} is in the future "
            f"(now {now.isoformat()}): features for it may still change"
        )
    view = service.view
    with _locked(home.feast_dir / f"{view.name}.lock"), source.reading(Path(view.source_path)):
        store = feature_store(home)
        mark, state = watermark(store, view.name), _state(home, view)
        loaded_until = _loaded_until(state, mark)
        # A new feature contract (e.g. an added feature) needs every entity rewritten, not
        # only those with rows since the watermark.
        default_start = mark if state.get("fingerprint") == service.fingerprint else None
        start = utc(start) if start else (default_start or EPOCH)
        if start >= end:
            raise ValueError(
                f"empty materialization window: start {start.isoformat()} is not "
                f"before end {end.isoformat()}"
            )
        rows = latest_in_window(view, start, end)
        older = pd.Series(False, index=rows.index)
        try:
            if loaded_until is not None and start < loaded_until and len(rows):
                online = online_event_times(store, view, rows[view.entity_key].tolist())
                newer_online = rows[view.timestamp].reset_index(drop=True) < online  # NaT: no
                older = pd.Series(newer_online.to_numpy(), index=rows.index)
            if not older.any():
                with bounded_offline_store():  # Feast reads the offline store on DuckDB
                    store.materialize(start, end, feature_views=[view.name])
                via = "feast materialize"
            else:
                fresh = rows[~older]
                if len(fresh):
                    store.write_to_online_store(view.name, _native(fresh.copy(), view))
                via = "guarded write"
        except _redis_errors() as exc:
            raise _redis_failure(home, view.name, loaded_until, exc) from exc
        until = max(end, loaded_until) if loaded_until else end
        write_json(
            {"fingerprint": service.fingerprint, "loaded_until": until.isoformat()},
            _state_file(home, view),
        )
        new_mark = watermark(store, view.name) or end
    skipped = int(older.sum())
    return MaterializeResult(
        view.name, start, end, len(rows), len(rows) - skipped, skipped, new_mark, via
    )


def read_online(
    store: Any,
    service: ServiceDef,
    keys: list[Any],
    as_of: datetime | None = None,
    event_times: bool = False,
) -> pd.DataFrame:
    """Online feature vectors through the feature service, TTL applied as of ``as_of``; with
    ``event_times`` each feature's event time too (``<feature>__ts``).

    Feast's online stores return a row however old it is (feast#6821); training treats a row
    older than the TTL as missing, so serving must too, or the model sees values it never saw
    in training. Fresh means ``event time >= as_of - ttl``, Feast's offline rule.
    """
    view = service.view
    fs = store.get_feature_service(service.name, allow_cache=False)
    frame = online_rows(store, fs, view, keys)
    if view.ttl_seconds:
        oldest = pd.Timestamp(utc(as_of or datetime.now(UTC))) - pd.Timedelta(
            seconds=view.ttl_seconds
        )
        for name in view.feature_names:
            expired = frame[name + TS_SUFFIX].isna() | (frame[name + TS_SUFFIX] < oldest)
            frame[name] = frame[name].astype("object").where(~expired, None)
    if not event_times:
        frame = frame.drop(columns=[n + TS_SUFFIX for n in view.feature_names])
    return frame
