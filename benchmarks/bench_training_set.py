"""Training-set build (point-in-time join through the feature service definitions) vs a raw
DuckDB ASOF JOIN on the same data: 1M entity rows x 10M feature rows, outputs checked equal."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd

from ml_platform.features.definitions import FieldDef, ServiceDef, ViewDef
from ml_platform.features.sql import point_in_time_join
from ml_platform.ingest.io import frame_hash, write_parquet

ENTITY_ROWS = 1_000_000
FEATURE_ROWS = 10_000_000
ENTITIES = 500_000
FEATURES = [f"f{i}" for i in range(5)]
REPEATS = 2


def _generate(folder: Path) -> tuple[Path, Path]:
    """Seeded data written straight from DuckDB (pandas would need several GB here)."""
    labels, features = folder / "labels.parquet", folder / "features.parquet"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'; SET enable_progress_bar = false; SELECT setseed(0.42)")
    start = "TIMESTAMPTZ '2025-01-01 00:00:00+00'"
    feats = ", ".join(f"random() AS {f}" for f in FEATURES)
    con.execute(f"""COPY (SELECT (hash(i) % {ENTITIES})::BIGINT AS entity_id,
        {start} + to_seconds((hash(i * 7 + 1) % 31536000)::BIGINT) AS event_ts, {feats}
        FROM range({FEATURE_ROWS}) r(i)) TO '{features}' (FORMAT parquet)""")
    con.execute(f"""COPY (SELECT (hash(i + 99) % {ENTITIES})::BIGINT AS entity_id,
        {start} + to_seconds((hash(i * 13 + 5) % 31536000)::BIGINT) AS event_ts,
        (hash(i) % 2)::BIGINT AS label
        FROM range({ENTITY_ROWS}) r(i)) TO '{labels}' (FORMAT parquet)""")
    con.close()
    return labels, features


def _service(features: Path) -> ServiceDef:
    view = ViewDef(name="bench_fv", entity="bench_entity", entity_key="entity_id",
                   entity_dtype="int64", timestamp="event_ts", source_path=str(features),
                   fields=tuple(FieldDef(f, "float64") for f in FEATURES), ttl_seconds=None)
    return ServiceDef(name="bench_v1", version=1, view=view, fingerprint="bench")


def _platform(labels: Path, service: ServiceDef) -> pd.DataFrame:
    view = service.view
    return point_in_time_join(labels, view.source_path, view.entity_key, view.timestamp,
                              view.feature_names, ["label"], view.ttl_seconds)


def _raw_asof(labels: Path, features: Path) -> pd.DataFrame:
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        cols = ", ".join(f"f.{f}" for f in FEATURES)
        return con.execute(
            f"SELECT l.entity_id, l.event_ts, {cols}, l.label "
            f"FROM read_parquet('{labels}') l ASOF LEFT JOIN read_parquet('{features}') f "
            f"ON l.entity_id = f.entity_id AND l.event_ts >= f.event_ts").df()
    finally:
        con.close()


def _timed(fn: Callable[[], pd.DataFrame]) -> tuple[float, pd.DataFrame]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def _interleaved(fns: dict[str, Callable[[], pd.DataFrame]]
                 ) -> dict[str, tuple[float, pd.DataFrame]]:
    """Best of REPEATS per build, alternating builds so load on a shared machine hits both."""
    best: dict[str, tuple[float, pd.DataFrame]] = {}
    for _ in range(REPEATS):
        for name, fn in fns.items():
            seconds, out = _timed(fn)
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, out)
    return best


def _with_hash_and_write(labels: Path, service: ServiceDef, target: Path) -> pd.DataFrame:
    frame = _platform(labels, service)
    frame_hash(frame)
    write_parquet(frame, target)
    return frame


def _same(ours: pd.DataFrame, raw: pd.DataFrame) -> bool:
    order = ["event_ts", "entity_id"]
    raw = raw.assign(event_ts=pd.to_datetime(raw["event_ts"], utc=True))
    raw = raw.sort_values(order, kind="stable").reset_index(drop=True)
    ours = ours.sort_values(order, kind="stable").reset_index(drop=True)
    # Ties (same entity and time in the feature table) may pick either row in both engines.
    return bool(len(ours) == len(raw) and ours.equals(raw[ours.columns]))


def run() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        labels, features = _generate(Path(tmp))
        service = _service(features)
        best = _interleaved({
            "raw": lambda: _raw_asof(labels, features),
            "ours": lambda: _platform(labels, service),
            "stage": lambda: _with_hash_and_write(labels, service, Path(tmp) / "ts.parquet")})
        (raw_s, raw), (ours_s, ours), (stage_s, _) = best["raw"], best["ours"], best["stage"]
        equal = _same(ours, raw)
    ratio = ours_s / raw_s
    return "\n".join([
        "## Training set: point-in-time join through the feature service",
        "",
        f"{ENTITY_ROWS:,} entity (label) rows x {FEATURE_ROWS:,} feature rows "
        f"({ENTITIES:,} entities, {len(FEATURES)} features), best of {REPEATS} "
        "(runs interleaved), same process.",
        "",
        "| build | seconds | ratio |",
        "|---|---:|---:|",
        f"| raw DuckDB ASOF JOIN (baseline) | {raw_s:.2f} | 1.00x |",
        f"| ml_platform training set (feature service `{service.name}`) | {ours_s:.2f} | "
        f"{ratio:.2f}x |",
        f"| same, plus content hash and parquet write (the whole stage; not in the baseline) | "
        f"{stage_s:.2f} | {stage_s / raw_s:.2f}x |",
        "",
        f"Outputs equal (same rows, values, order-insensitive): **{equal}**. "
        f"Target: at most 1.3x the raw ASOF JOIN.",
    ])
