"""The prediction log: every row a model scored, appended off the response path.

:class:`PredictionLog` keeps a bounded in-memory buffer that a background thread flushes every
``flush_seconds`` (or sooner, once ``flush_rows`` are waiting) into its store
(ml_platform/serving/prediction_store.py): in the production profile one COPY per batch in one
transaction into the append-only Postgres table ``predictions``; in the embedded profile
append-only Parquet files:

    <home.warehouse>/<pipeline>/predictions/date=YYYY-MM-DD/<pid>-<uuid>.parquet

Each file is written under a temporary name beginning with ``.`` and renamed into place, so a
reader never sees a torn file (readers ignore names beginning with ``.``; a process killed
mid-write leaves at most such a temporary). ``append`` never blocks on disk: when the buffer is
full, the rows that do not fit are dropped and counted (``dropped_rows`` and the ``on_drop``
callback, which the service wires to a Prometheus counter), because a response must never
wait for the log. ``read_predictions`` reads either store into the same columns and types.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from ml_platform.home import PlatformHome
from ml_platform.serving.prediction_store import (
    TEMP_PREFIX,
    ParquetFiles,
    PostgresPredictions,
    PredictionStore,
    write_file,
)

log = logging.getLogger(__name__)

ARMS = ("champion", "challenger")
MODES = ("off", "shadow", "ab")
SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("logged_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("entity", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("arm", pa.string(), nullable=False),
        pa.field("mode", pa.string(), nullable=False),
        pa.field("served", pa.bool_(), nullable=False),
        pa.field("score", pa.float64(), nullable=True),
        pa.field("label", pa.int64(), nullable=True),
        pa.field("latency_ms", pa.float64(), nullable=True),
        pa.field("features", pa.string(), nullable=False),
    ]
)
COLUMNS = tuple(SCHEMA.names)
# Columns a caller must give; logged_at defaults to the time of append, label to null.
REQUIRED = frozenset(COLUMNS) - {"logged_at", "label", "latency_ms"}
DEFAULT_MAX_BUFFER_ROWS = 100_000
__all__ = ["TEMP_PREFIX", "write_file"]  # re-exported: the Parquet store's, as before
DropCallback = Callable[[str, int], None]  # (reason, rows): "buffer_full" | "write_failed" | ...


def predictions_dir(home: PlatformHome, pipeline: str) -> Path:
    return home.pipeline_dir(pipeline) / "predictions"


def store_for(home: PlatformHome, pipeline: str) -> PredictionStore:
    """The log's store for ``home``'s profile: Parquet files in the home, or Postgres."""
    settings = home.production
    if settings is None:
        return ParquetFiles(predictions_dir(home, pipeline))
    return PostgresPredictions.from_settings(settings, pipeline)


def _features_json(value: Any) -> str:
    if isinstance(value, str):
        return value
    # NaN is not JSON: a missing value is logged as null.
    clean = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in dict(value).items()
    }
    return json.dumps(clean, separators=(",", ":"), sort_keys=True, default=str)


def _to_column_values(rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for r in rows:
        for c in COLUMNS:
            v = r.get(c)
            if c == "entity" or c == "model_version" or c == "request_id":
                v = str(v)
            elif c == "features":
                v = _features_json(v if v is not None else {})
            elif c == "label" and v is not None:
                v = int(v)
            cols[c].append(v)
    return cols


def _table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    cols = _to_column_values(rows)
    for name, allowed in (("arm", ARMS), ("mode", MODES)):
        bad = set(cols[name]) - set(allowed)
        if bad:
            raise ValueError(
                f"prediction log column {name}: {sorted(map(str, bad))} not in {allowed}"
            )
    return pa.Table.from_pydict(cols, schema=SCHEMA)


class PredictionLog:
    """A pipeline's prediction log writer: ``append`` from the request path, flushed in the
    background. Thread-safe; one per pipeline per process."""

    def __init__(
        self,
        home: PlatformHome,
        pipeline: str,
        flush_rows: int = 1000,
        flush_seconds: float = 1.0,
        max_buffer_rows: int = DEFAULT_MAX_BUFFER_ROWS,
        on_drop: DropCallback | None = None,
        store: PredictionStore | None = None,
    ) -> None:
        if flush_rows < 1:
            raise ValueError(f"flush_rows must be at least 1, got {flush_rows}")
        if not flush_seconds > 0:
            raise ValueError(f"flush_seconds must be positive, got {flush_seconds}")
        if max_buffer_rows < flush_rows:
            raise ValueError(
                f"max_buffer_rows ({max_buffer_rows}) must be at least flush_rows ({flush_rows})"
            )
        self.home = home
        self.pipeline = pipeline
        self.directory = predictions_dir(home, pipeline)  # the embedded profile's files
        self.store = store if store is not None else store_for(home, pipeline)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.max_buffer_rows = max_buffer_rows
        self.on_drop = on_drop
        self.dropped_rows = 0  # buffer full or appended after close
        self.failed_rows = 0  # a flush that could not write (disk full, bad value)
        self.written_rows = 0
        self.files_written = 0  # batches written: files, or transactions in Postgres
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # guards the buffer and the counters
        self._write_lock = threading.Lock()  # one writer at a time (thread or flush())
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name=f"prediction-log-{pipeline}", daemon=True
        )
        self._thread.start()

    # -- the request path: never blocks on disk ---------------------------------------------

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Queue rows (dicts with the log's columns; ``logged_at`` defaults to now). Rows that
        do not fit in the buffer, or arrive after ``close``, are dropped and counted."""
        if not rows:
            return
        missing = REQUIRED - rows[0].keys()
        if missing:
            raise ValueError(
                f"prediction log row is missing {sorted(missing)}; every row needs "
                f"{sorted(REQUIRED)}"
            )
        now = datetime.now(UTC)
        dropped, reason, full = 0, "buffer_full", False
        with self._lock:
            if self._closed:
                dropped, reason = len(rows), "closed"
            else:
                room = self.max_buffer_rows - len(self._buffer)
                take = rows if room >= len(rows) else rows[: max(room, 0)]
                dropped = len(rows) - len(take)
                for r in take:
                    if r.get("logged_at") is None:
                        r = {**r, "logged_at": now}
                    self._buffer.append(r)
                full = len(self._buffer) >= self.flush_rows
            if dropped:
                self.dropped_rows += dropped
        if dropped:
            self._dropped(reason, dropped)
        elif full:
            self._wake.set()

    def _dropped(self, reason: str, n: int) -> None:
        if self.on_drop is not None:
            try:
                self.on_drop(reason, n)
            except Exception:  # a metrics hook must not break the caller
                log.exception("prediction log: on_drop callback failed")

    # -- the background side -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            with self._lock:
                closed = self._closed
            try:
                self.flush()
            except Exception:  # flush counts and logs; the thread must outlive any one failure
                log.exception("prediction log: flush failed")
            if closed:
                return

    def _take(self) -> list[dict[str, Any]]:
        with self._lock:
            rows, self._buffer = self._buffer, []
        return rows

    def flush(self) -> int:
        """Write every buffered row now (one batch per date partition: a file, or a transaction);
        the rows written."""
        with self._write_lock:
            rows = self._take()
            if not rows:
                return 0
            by_day: dict[date, list[dict[str, Any]]] = {}
            for r in rows:
                stamp = r["logged_at"]
                if not isinstance(stamp, datetime):
                    stamp = datetime.fromtimestamp(float(stamp), UTC)
                    r["logged_at"] = stamp
                by_day.setdefault(stamp.astimezone(UTC).date(), []).append(r)
            written = 0
            for day, day_rows in sorted(by_day.items()):
                try:
                    self.store.write(day, _table(day_rows))
                except Exception as exc:
                    with self._lock:
                        self.failed_rows += len(day_rows)
                    log.error(
                        "prediction log %s: %d rows not written: %s: %s",
                        self.pipeline,
                        len(day_rows),
                        type(exc).__name__,
                        exc,
                    )
                    self._dropped("write_failed", len(day_rows))
                    continue
                written += len(day_rows)
            with self._lock:
                self.written_rows += written
                self.files_written += len(by_day)
            return written

    def close(self, timeout: float = 30.0) -> None:
        """Flush what is buffered and stop the thread; later appends are dropped and counted."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        self.flush()  # whatever the thread did not take (e.g. it timed out)

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_predictions(
    home: PlatformHome, pipeline: str, since: datetime | None = None
) -> pd.DataFrame:
    """The logged rows of ``pipeline`` (logged at or after ``since``, when given, which must be
    timezone-aware), ordered by ``logged_at``; an empty frame with the log's columns if none."""
    if since is not None and since.tzinfo is None:
        raise ValueError(
            f"since={since.isoformat()} has no timezone: pass an aware datetime "
            "(e.g. datetime(..., tzinfo=UTC))"
        )
    frame = store_for(home, pipeline).read(since, SCHEMA).to_pandas()
    frame["label"] = frame["label"].astype("Int64")
    if since is not None:
        frame = frame[frame["logged_at"] >= pd.Timestamp(since)]
    return frame.sort_values(["logged_at", "request_id", "row"], kind="stable").reset_index(
        drop=True
    )


def counts_by_arm(home: PlatformHome, pipeline: str, days: int | None = None) -> pd.DataFrame:
    """Logged rows per arm, model version and served flag (for ``rollout status``)."""
    since = datetime.now(UTC) - timedelta(days=days) if days is not None else None
    frame = read_predictions(home, pipeline, since)
    if frame.empty:
        return pd.DataFrame({"arm": [], "model_version": [], "served": [], "rows": []})
    return (
        frame.groupby(["arm", "model_version", "served"], as_index=False)
        .size()
        .rename(columns={"size": "rows"})
    )
