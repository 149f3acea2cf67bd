"""Training set at 1M label rows x 10M feature rows: the platform's stage against a direct Feast
``get_historical_features`` call with the same feature service (target: at most 1.1x), and a raw
DuckDB ASOF JOIN (the floor, reported), with each one's peak memory.

Method, fixed before any result was seen:
- Seeded data written by DuckDB: 10M feature rows (500k entities, 5 float features, a year of
  event times), 1M label rows (entity, event time, label); no TTL. One platform home: the
  feature table published as the Feast source and the registry applied, as a run leaves them.
- Each build runs in a fresh Python process (``python -m benchmarks.bench_training_set child
  BUILD DIR``), so no build inherits another's memory or warm caches of the process. Timed from
  after the imports (Feast, pandas, DuckDB, ml_platform: the same imports for all builds) to
  the frame in memory; for the platform, to the training set written (the whole stage:
  validated rows read, the source pin checked, Feast's retrieval, row order, content hash,
  parquet write). ``stage`` is ``build_training_set``; ``feast`` is what a user writes: the
  label rows read with pandas, ``FeatureStore(...).get_historical_features(entity_df,
  features=store.get_feature_service(...)).to_df()``; ``asof`` is one DuckDB query into pandas.
  Modules Feast imports on its first retrieval (about 2.5 s here) fall inside both Feast
  timings, as they do in a pipeline step, which is a fresh process too.
- Peak memory: the process's ``ru_maxrss`` read right after the timed work (before any output
  is written for the comparison), and the same minus ``ru_maxrss`` just before the work (what
  the build itself added on top of the imports and the process).
- REPEATS runs per build, interleaved (stage, feast, asof, stage, ...) so load on this shared
  machine falls on all three; the median of each is reported, every run is listed.
- Outputs compared after timing: the platform's rows against Feast's (exactly, all columns),
  and against the ASOF JOIN's (rows whose features differ are counted: only ties in the feature
  table, one entity with two rows at one time, may pick another row).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ml_platform.spec import PipelineSpec

ENTITY_ROWS = int(os.environ.get("BENCH_TRAINING_SET_LABELS", "1000000"))
FEATURE_ROWS = int(os.environ.get("BENCH_TRAINING_SET_FEATURES", "10000000"))
ENTITIES = FEATURE_ROWS // 20
FEATURES = [f"f{i}" for i in range(5)]
REPEATS = int(os.environ.get("BENCH_TRAINING_SET_REPEATS", "3"))
BUILDS = ("stage", "feast", "asof")
NAME = "bench"
ROOT = Path(__file__).resolve().parent.parent


def _spec() -> PipelineSpec:
    from ml_platform.spec import parse_spec

    return parse_spec(
        {
            "name": NAME,
            "source": {"path": "{home}/landing/bench/*.parquet"},
            "entity_key": "entity_id",
            "event_timestamp": "event_ts",
            "label": "label",
            "task": "binary_classification",
            "features": {"numeric": FEATURES},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        },
        "bench",
    )


def _generate(folder: Path, features: Path) -> Path:
    """Seeded data written straight from DuckDB (pandas would need several GB here)."""
    import duckdb

    labels = folder / "labels.parquet"
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
    return labels


def _prepare(folder: Path) -> None:
    """A home as the run's features and feature-registry steps leave it."""
    from ml_platform.features import registry, source
    from ml_platform.features.definitions import features_table
    from ml_platform.features.tables import TableInfo
    from ml_platform.home import PlatformHome

    home = PlatformHome(folder / "home").ensure()
    spec = _spec()
    table = home.pipeline_dir(NAME) / "features" / "run.parquet"
    table.parent.mkdir(parents=True, exist_ok=True)
    _generate(folder, table)
    stamp = source.publish(table, features_table(spec, home))
    registry.apply(spec, home)
    info = TableInfo(
        str(table), FEATURE_ROWS, "run", ["entity_id", "event_ts", *FEATURES], source_stamp=stamp
    )
    (folder / "features.json").write_text(json.dumps(info.to_dict()))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _child(build: str, folder: Path) -> None:
    """One build in this fresh process; prints its timing and memory as JSON."""
    import duckdb
    import pandas as pd
    from feast import FeatureStore

    from ml_platform.features.feast_objects import repo_config
    from ml_platform.features.tables import TableInfo, build_training_set
    from ml_platform.home import PlatformHome

    home, labels = PlatformHome(folder / "home"), folder / "labels.parquet"
    out = folder / f"{build}.parquet"
    # A step gets the spec parsed with the definitions (parsing imports the estimator's module).
    spec = _spec()
    info = TableInfo(**json.loads((folder / "features.json").read_text()))
    before = _peak_mb()
    started = time.perf_counter()
    if build == "stage":
        frame = None
        written = build_training_set(spec, home, labels, info).path
    elif build == "feast":
        store = FeatureStore(config=repo_config(home))
        frame = store.get_historical_features(
            entity_df=pd.read_parquet(labels), features=store.get_feature_service(f"{NAME}_v1")
        ).to_df()
    else:
        features = str(home.pipeline_dir(NAME) / "features.parquet")
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'; SET enable_progress_bar = false")
        cols = ", ".join(f"f.{f}" for f in FEATURES)
        frame = con.execute(
            f"SELECT l.entity_id, l.event_ts, {cols}, l.label "
            f"FROM read_parquet('{labels}') l ASOF LEFT JOIN read_parquet('{features}') f "
            f"ON l.entity_id = f.entity_id AND l.event_ts >= f.event_ts"
        ).df()
        con.close()
    seconds = time.perf_counter() - started
    peak = _peak_mb()
    if frame is not None:
        frame.to_parquet(out, index=False)
    else:
        os.replace(written, out)
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "added_mb": peak - before}))


def _run(build: str, folder: Path) -> dict[str, float]:
    env = {
        **os.environ,
        "FEAST_USAGE": "False",
        "ML_PLATFORM_HOME": str(folder / "home"),
        "PYTHONWARNINGS": "ignore",
    }
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_training_set", "child", build, str(folder)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{build} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _compare(folder: Path) -> tuple[bool, int]:
    """(platform == Feast exactly, rows where the platform and the ASOF JOIN differ)."""
    import pandas as pd

    order = ["event_ts", "entity_id", "label", *FEATURES]
    frames = {}
    for build in BUILDS:
        frame = pd.read_parquet(folder / f"{build}.parquet")
        frame["event_ts"] = pd.to_datetime(frame["event_ts"], utc=True).astype(
            "datetime64[us, UTC]"
        )
        frames[build] = frame[order].sort_values(order, kind="stable").reset_index(drop=True)
    same_as_feast = frames["stage"].equals(frames["feast"])
    stage, asof = frames["stage"], frames["asof"]
    differ = ~(
        (stage[FEATURES] == asof[FEATURES]) | (stage[FEATURES].isna() & asof[FEATURES].isna())
    ).all(axis=1)
    return same_as_feast, int(differ.sum()) if len(stage) == len(asof) else -1


def _listed(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"{r['seconds']:.2f}" for r in runs)


def _ties(folder: Path) -> int:
    """(entity, event time) pairs with more than one feature row."""
    import duckdb

    features = folder / "home" / "warehouse" / NAME / "features.parquet"
    rows = duckdb.execute(
        f"SELECT count(*) FROM (SELECT entity_id, event_ts FROM "
        f"read_parquet('{features}') GROUP BY ALL HAVING count(*) > 1)"
    ).fetchall()
    return int(rows[0][0])


def run() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _prepare(folder)
        runs: dict[str, list[dict[str, float]]] = {b: [] for b in BUILDS}
        for _ in range(REPEATS):
            for build in BUILDS:
                runs[build].append(_run(build, folder))
                print(build, runs[build][-1], flush=True)
        same_as_feast, differ_asof = _compare(folder)
        ties = _ties(folder)
    med = {b: {k: statistics.median(r[k] for r in runs[b]) for k in runs[b][0]} for b in BUILDS}
    ratio = med["stage"]["seconds"] / med["feast"]["seconds"]
    names = {
        "stage": "ml_platform training-set stage (`build_training_set`, feature service "
        f"`{NAME}_v1`: read, Feast retrieval, checks, order, hash, parquet write)",
        "feast": "direct `get_historical_features(entity_df, features=<feature service>).to_df()`",
        "asof": "raw DuckDB ASOF JOIN into pandas (the floor)",
    }
    rows = [
        f"| {names[b]} | {med[b]['seconds']:.2f} | "
        f"{med[b]['seconds'] / med['feast']['seconds']:.2f}x | "
        f"{med[b]['seconds'] / med['asof']['seconds']:.2f}x | {med[b]['peak_mb']:,.0f} | "
        f"{med[b]['added_mb']:,.0f} | "
        f"{_listed(runs[b])} |"
        for b in BUILDS
    ]
    verdict = "met" if ratio <= 1.1 else "**missed**"
    return "\n".join(
        [
            "## Training set: Feast retrieval through the feature service",
            "",
            f"{ENTITY_ROWS:,} label rows x {FEATURE_ROWS:,} feature rows ({ENTITIES:,} entities, "
            f"{len(FEATURES)} float features, no TTL). Each run in a fresh process, timed after "
            f"the "
            f"imports; median of {REPEATS} interleaved runs. Peak memory is the process's "
            '`ru_maxrss` after the work; "added" subtracts its value just before the work.',
            "",
            "| build | seconds (median) | vs direct Feast | vs ASOF floor | peak RSS MB | "
            "added MB | runs (s) |",
            "|---|---:|---:|---:|---:|---:|---|",
            *rows,
            "",
            f"Platform / direct Feast: **{ratio:.2f}x**, target at most 1.1x: {verdict}. "
            f"Platform rows equal to direct Feast's: **{same_as_feast}**; rows whose features "
            f"differ from the ASOF JOIN's: {differ_asof} (the feature table has {ties} (entity, "
            "time) pairs with two rows; at a tie each engine may pick either row).",
        ]
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        _child(sys.argv[2], Path(sys.argv[3]))
    else:
        print(run())
