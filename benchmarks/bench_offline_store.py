"""Issue 16, item 1: the Feast offline store for 1e7 events, DuckDB files (ours) against
PostgreSQL (what dbt-postgres would give), measured on the training set's point-in-time
retrieval. No target: the section reports the numbers the choice is made on.

Method, fixed before any result was seen:
- Data: bench_training_set's seeded generator and home preparation, by import
  (``_prepare``: the feature table published as the Feast source, the registry applied as a
  run leaves them). Sizes: its size (by default 1M label rows x 10M feature rows, 500k
  entities, 5 float features, no TTL: the 1e7-event scale of issue 16) times each factor of
  ``BENCH_OFFLINE_SCALES`` (default ``0.1,1``), both counts alike; one new folder per size,
  prepared in a fresh process (``prepare DIR``) since the generator reads its sizes at import.
- Side A, ``duckdb`` (ours): the platform's Feast configuration (``repo_config``:
  ``offline_store: {type: duckdb}``, the feature view on a FileSource over the parquet
  feature table). Side B, ``postgres``: Feast's Postgres offline store (``type: postgres``) on
  a fresh database ``mlp_bench_offline_<id>`` of this machine's server (127.0.0.1:5432, as
  configured there; its version and memory settings are reported), with its own file
  registry holding the same entity and a feature view with side A's fields and TTL on a
  ``PostgreSQLSource`` over the same feature table loaded into that database. The database is
  dropped when the size is done, whether it succeeded or not.
- The load into Postgres is reported on its own, as the one-time cost a dbt-postgres build
  would pay instead of DuckDB's parquet export: DuckDB writes the table as CSV, ``COPY ...
  FROM STDIN`` loads it into a table with the source's types (no index: dbt-postgres tables
  have none unless declared), then ``ANALYZE`` (what autovacuum would do soon after a load).
- Each retrieval runs in a fresh process (``python -m benchmarks.bench_offline_store one SIDE
  DIR``): the label rows read with pandas (the same entity dataframe on both sides), then
  timed from the store's construction to the frame in memory:
  ``FeatureStore(config=...).get_historical_features(entity_df, features=[5 refs]).to_df()``.
  The imports before the timer are the same on both sides; what each offline store imports on
  its first retrieval falls inside its timing, as in a pipeline step. For side B that
  includes Feast uploading the entity dataframe to Postgres (its only way to take a frame).
- ``BENCH_OFFLINE_REPEATS`` (default 3) runs per side per size, interleaved A, B, A, B, A, B so
  load on this shared machine falls on both; every run is listed, with the median and the
  ratio of the medians B/A.
- Peak memory: the retrieval process's ``ru_maxrss`` right after the frame is in memory. Side
  B's join runs in the Postgres server, whose memory is not in that number.
- Cap: every process gets ``BENCH_OFFLINE_TIMEOUT_MIN`` (default 30) minutes. A retrieval
  still running then is killed, its queries in the database are terminated (so they do not
  load the runs after it), it is reported as "did not finish in N min" (counted as infinite
  in the median), and that side's remaining runs at that size are skipped.
- Results checked after timing, on the last run of each side: both frames sorted by entity,
  event time and label must have the same rows (keys exactly) and features within 1e-9 (both
  missing counts as equal). A row whose features differ is excused only when both sides'
  values are rows of that entity at one event time in the feature table (a tie: either row is
  a right answer); anything else is reported as a failure.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import bench_training_set as training_set

if TYPE_CHECKING:
    import pandas as pd
    from feast.repo_config import RepoConfig

SCALES = [float(x) for x in os.environ.get("BENCH_OFFLINE_SCALES", "0.1,1").split(",")]
REPEATS = int(os.environ.get("BENCH_OFFLINE_REPEATS", "3"))
TIMEOUT_MIN = float(os.environ.get("BENCH_OFFLINE_TIMEOUT_MIN", "30"))
SIDES = ("duckdb", "postgres")
NAME, FEATURES = training_set.NAME, training_set.FEATURES
VIEW = f"{NAME}_fv"
REFS = [f"{VIEW}:{f}" for f in FEATURES]
KEYS = ["entity_id", "event_ts", "label"]  # the label rows' columns (bench_training_set's)
TABLE = "bench_features"  # the feature table in Postgres
ROOT = Path(__file__).resolve().parent.parent


# --- Postgres ------------------------------------------------------------------------------


def _pg(database: str) -> dict[str, Any]:
    """Connection settings for a database of the machine's Postgres (trust auth)."""
    from ml_platform_tests.production.services import PG

    return {**PG, "dbname": database}


def _database(folder: Path) -> str:
    return str(json.loads((folder / "postgres.json").read_text())["database"])


def _server_settings() -> str:
    import psycopg

    names = ("server_version", "shared_buffers", "work_mem", "max_parallel_workers_per_gather")
    with psycopg.connect(**_pg("postgres")) as con:
        values = con.execute(
            f"SELECT {', '.join('current_setting(%s)' for _ in names)}", names
        ).fetchone()
    version, *rest = values or ("?",) * len(names)
    shown = ", ".join(f"{n} {v}" for n, v in zip(names[1:], rest, strict=True))
    return f"PostgreSQL {version} ({shown})"


@contextlib.contextmanager
def _fresh_database(folder: Path) -> Iterator[str]:
    """A new database for one size, named in ``folder/postgres.json``; dropped afterwards."""
    import psycopg
    from psycopg import sql

    from ml_platform_tests.production.services import drop_databases

    name = f"mlp_bench_offline_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**_pg("postgres"), autocommit=True) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        (folder / "postgres.json").write_text(json.dumps({"database": name}))
        yield name
    finally:
        drop_databases([name])


def _stop_queries(database: str) -> None:
    """End what a killed retrieval left running in the server (Postgres does not notice a
    client gone until it next writes to it)."""
    import psycopg

    with psycopg.connect(**_pg("postgres"), autocommit=True) as con:
        con.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )


# --- preparation (child process) -------------------------------------------------------


def _feature_table(folder: Path) -> Path:
    from ml_platform.home import PlatformHome

    return PlatformHome(folder / "home").pipeline_dir(NAME) / "features.parquet"


def _load_postgres(folder: Path) -> dict[str, float]:
    """The feature table into Postgres: CSV from DuckDB, COPY, ANALYZE (each timed)."""
    import duckdb
    import psycopg

    csv = folder / "features.csv"
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'; SET enable_progress_bar = false")
    con.execute(
        f"COPY (SELECT entity_id, event_ts, {', '.join(FEATURES)} "
        f"FROM read_parquet('{_feature_table(folder)}')) TO '{csv}' (FORMAT csv, HEADER false)"
    )
    con.close()
    exported = time.perf_counter()
    floats = ", ".join(f"{f} DOUBLE PRECISION" for f in FEATURES)
    with psycopg.connect(**_pg(_database(folder)), autocommit=True) as pg:
        pg.execute(f"CREATE TABLE {TABLE} (entity_id BIGINT, event_ts TIMESTAMPTZ, {floats})")
        with (
            pg.cursor().copy(f"COPY {TABLE} FROM STDIN (FORMAT csv)") as copy,
            csv.open("rb") as fh,
        ):
            while block := fh.read(1 << 20):
                copy.write(block)
        copied = time.perf_counter()
        pg.execute(f"ANALYZE {TABLE}")
        analyzed = time.perf_counter()
        size = pg.execute(f"SELECT pg_total_relation_size('{TABLE}')").fetchone()
    csv.unlink()
    return {
        "csv_s": exported - started,
        "copy_s": copied - exported,
        "analyze_s": analyzed - copied,
        "table_mb": (size[0] if size else 0) / 2**20,
    }


def _postgres_config(folder: Path) -> RepoConfig:
    """Side B as a Feast user configures it: its own registry, the Postgres offline store."""
    from feast.repo_config import RepoConfig

    from ml_platform.features.definitions import FEAST_PROJECT
    from ml_platform_tests.production.services import PG

    repo = folder / "postgres_feast"
    repo.mkdir(exist_ok=True)
    return RepoConfig(
        project=FEAST_PROJECT,
        provider="local",
        repo_path=repo,
        registry={"registry_type": "file", "path": str(repo / "registry.db")},
        offline_store={
            "type": "postgres",
            "host": PG["host"],
            "port": PG["port"],
            "database": _database(folder),
            "user": PG["user"],
            "password": "unused",  # required by Feast; the machine's server trusts local users
            "sslmode": "disable",
        },
        online_store={"type": "sqlite", "path": str(repo / "online.db")},
        entity_key_serialization_version=3,
    )


def _duckdb_config(folder: Path) -> RepoConfig:
    """Side A: the platform's own configuration of the home."""
    from ml_platform.features.feast_objects import repo_config
    from ml_platform.home import PlatformHome

    return repo_config(PlatformHome(folder / "home"))


def _apply_postgres(folder: Path) -> None:
    """Side B's registry: side A's entity, and its feature view's fields and TTL on a
    PostgreSQLSource over the loaded table."""
    from feast import FeatureStore, FeatureView
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
        PostgreSQLSource,
    )

    ours = FeatureStore(config=_duckdb_config(folder))
    view = ours.get_feature_view(VIEW)
    entity = ours.get_entity(view.entities[0])
    source = PostgreSQLSource(
        name=f"{NAME}_postgres_source",
        table=TABLE,
        timestamp_field="event_ts",
    )
    theirs = FeatureView(
        name=view.name, entities=[entity], ttl=view.ttl, source=source, schema=view.features
    )
    FeatureStore(config=_postgres_config(folder)).apply([entity, theirs])


def _prepare_child(folder: Path) -> None:
    """Data and side A's home (bench_training_set's), then side B's table and registry."""
    training_set._prepare(folder)
    load = _load_postgres(folder)
    _apply_postgres(folder)
    print(json.dumps(load))


# --- one retrieval (child process) -----------------------------------------------------


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _retrieval_child(side: str, folder: Path) -> None:
    """One timed retrieval; prints its seconds and peak memory as JSON."""
    import pandas as pd
    from feast import FeatureStore

    config = (_duckdb_config if side == "duckdb" else _postgres_config)(folder)
    entity_df = pd.read_parquet(folder / "labels.parquet")
    started = time.perf_counter()
    store = FeatureStore(config=config)
    frame = store.get_historical_features(entity_df=entity_df, features=REFS).to_df()
    seconds = time.perf_counter() - started
    peak = _peak_mb()
    frame.to_parquet(folder / f"{side}.parquet", index=False)
    print(json.dumps({"seconds": seconds, "peak_mb": peak}))


# --- parent --------------------------------------------------------------------------------


def _child(args: list[str], sizes: dict[str, str]) -> dict[str, float] | None:
    """Run ``python -m benchmarks.bench_offline_store ARGS``; its JSON, None on timeout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_PLATFORM_")}
    env.update(sizes, FEAST_USAGE="False", PYTHONWARNINGS="ignore")
    env["ML_PLATFORM_HOME"] = str(Path(args[-1]) / "home")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_offline_store", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=TIMEOUT_MIN * 60,
        )
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _retrievals(folder: Path, sizes: dict[str, str]) -> dict[str, list[dict[str, float]]]:
    """REPEATS interleaved runs per side; a timed-out run has infinite seconds and ends its
    side's runs at this size."""
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    for _ in range(REPEATS):
        for side in SIDES:
            if runs[side] and math.isinf(runs[side][-1]["seconds"]):
                continue
            result = _child(["one", side, str(folder)], sizes)
            if result is None:
                _stop_queries(_database(folder))
                result = {"seconds": math.inf, "peak_mb": math.nan}
            runs[side].append(result)
            print(side, result, flush=True)
    return runs


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    frame["event_ts"] = pd.to_datetime(frame["event_ts"], utc=True).astype("datetime64[us, UTC]")
    return frame[[*KEYS, *FEATURES]].sort_values(KEYS, kind="stable").reset_index(drop=True)


def _tied(folder: Path, rows: pd.DataFrame) -> int:
    """Of ``rows`` (keys, a_f0, b_f0), those where both sides' values are feature rows of the
    entity at one event time not after the label's (a tie in the feature table); rows are
    told apart by f0, a random double."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'; SET enable_progress_bar = false")
    con.register("d", rows)
    table = f"read_parquet('{_feature_table(folder)}')"
    found = con.execute(
        f"""SELECT count(*) FROM d WHERE EXISTS (SELECT 1 FROM {table} x JOIN {table} y
        USING (entity_id, event_ts) WHERE x.entity_id = d.entity_id
        AND x.event_ts <= d.event_ts AND abs(x.f0 - d.a_f0) < 1e-9
        AND abs(y.f0 - d.b_f0) < 1e-9)"""
    ).fetchone()
    con.close()
    return int(found[0]) if found else 0


def _compare(folder: Path) -> tuple[bool, str]:
    """(same results, what was found), on the last run of each side."""
    import numpy as np
    import pandas as pd

    if not all((folder / f"{side}.parquet").exists() for side in SIDES):
        return False, "not compared: a side has no finished run"
    a, b = (_sorted(pd.read_parquet(folder / f"{side}.parquet")) for side in SIDES)
    if len(a) != len(b) or not a[KEYS].equals(b[KEYS]):
        return False, f"**mismatch**: the rows differ ({len(a):,} vs {len(b):,} rows)"
    fa, fb = a[FEATURES].to_numpy(), b[FEATURES].to_numpy()
    same = np.isclose(fa, fb, rtol=0, atol=1e-9) | (np.isnan(fa) & np.isnan(fb))
    differ = ~same.all(axis=1)
    if not differ.any():
        return True, f"same {len(a):,} rows and values"
    rows = a.loc[differ, ["entity_id", "event_ts"]].assign(
        a_f0=a.loc[differ, "f0"], b_f0=b.loc[differ, "f0"]
    )
    tied = _tied(folder, rows)
    found = f"{len(rows)} of {len(a):,} rows differ, {tied} of them at tied feature rows"
    return (True, found) if tied == len(rows) else (False, f"**mismatch**: {found}")


def _measure(scale: float) -> dict[str, Any]:
    """Prepare, load, retrieve and compare at one size, on a fresh database."""
    labels = round(training_set.ENTITY_ROWS * scale)
    features = round(training_set.FEATURE_ROWS * scale)
    sizes = {
        "BENCH_TRAINING_SET_LABELS": str(labels),
        "BENCH_TRAINING_SET_FEATURES": str(features),
    }
    with tempfile.TemporaryDirectory() as tmp, _fresh_database(Path(tmp)):
        folder = Path(tmp)  # the database's name is written there
        load = _child(["prepare", str(folder)], sizes)
        if load is None:
            raise RuntimeError(f"preparing {features:,} feature rows took over {TIMEOUT_MIN} min")
        runs = _retrievals(folder, sizes)
        same, found = _compare(folder)
    return {
        "labels": labels,
        "features": features,
        "load": load,
        "runs": runs,
        "same": same,
        "found": found,
    }


# --- report ----------------------------------------------------------------------------


def _seconds(value: float) -> str:
    return f"did not finish in {TIMEOUT_MIN:g} min" if math.isinf(value) else f"{value:.2f}"


def _median_peak(runs: list[dict[str, float]]) -> str:
    peaks = [r["peak_mb"] for r in runs if not math.isnan(r["peak_mb"])]
    return f"{statistics.median(peaks):,.0f}" if peaks else "-"


def _ratio(med: dict[str, float]) -> str:
    """postgres / duckdb of the medians; a bound when side B did not finish."""
    a, b = med["duckdb"], med["postgres"]
    if math.isinf(a):
        return "-"
    return f"> {TIMEOUT_MIN * 60 / a:.0f}x" if math.isinf(b) else f"{b / a:.2f}x"


def _retrieval_rows(size: dict[str, Any]) -> list[str]:
    runs = size["runs"]
    med = {side: statistics.median(r["seconds"] for r in runs[side]) for side in SIDES}
    rows = []
    for side in SIDES:
        listed = ", ".join(_seconds(r["seconds"]) for r in runs[side])
        skipped = REPEATS - len(runs[side])
        listed += f" ({skipped} skipped after the timeout)" if skipped else ""
        shown = _ratio(med) if side == "postgres" else ""
        rows.append(
            f"| {size['labels']:,} x {size['features']:,} | {side} | {_seconds(med[side])} | "
            f"{shown} | {_median_peak(runs[side])} | {listed} |"
        )
    return rows


def _load_row(size: dict[str, Any]) -> str:
    load = size["load"]
    total = load["csv_s"] + load["copy_s"] + load["analyze_s"]
    return (
        f"| {size['features']:,} | {load['csv_s']:.2f} | {load['copy_s']:.2f} | "
        f"{load['analyze_s']:.2f} | {total:.2f} | {load['table_mb']:,.0f} |"
    )


def _section(sizes: list[dict[str, Any]], server: str) -> str:
    checks = [
        f"- {s['labels']:,} x {s['features']:,}: {'ok' if s['same'] else 'FAILED'}, {s['found']}"
        for s in sizes
    ]
    return "\n".join(
        [
            "## Offline store: DuckDB files vs PostgreSQL (issue 16)",
            "",
            "Feast's point-in-time retrieval of the training set, "
            "`FeatureStore(...).get_historical_features(entity_df, features=[5 refs]).to_df()`, "
            "on the platform's offline store (`type: duckdb`, FileSource over the parquet feature "
            "table) and on Feast's Postgres offline store (`PostgreSQLSource` over the same table "
            f"in {server}). Same entity, fields and TTL (none), same entity dataframe "
            "(bench_training_set's seeded data; 20 feature rows per entity, 5 float features). "
            f"Each run in a fresh process, timed after the imports; {REPEATS} runs per side "
            "interleaved, the median reported. Peak RSS is the retrieval process's `ru_maxrss` "
            "(the Postgres server's memory is not in it).",
            "",
            "| label rows x feature rows | offline store | seconds (median) | postgres / duckdb "
            "| peak RSS MB (median) | runs (s) |",
            "|---|---|---:|---:|---:|---|",
            *(row for s in sizes for row in _retrieval_rows(s)),
            "",
            "One-time load of the feature table into Postgres (what a dbt-postgres build would "
            "write there instead of DuckDB's parquet export): CSV written by DuckDB, `COPY FROM "
            "STDIN`, `ANALYZE`; no index.",
            "",
            "| feature rows | CSV export s | COPY s | ANALYZE s | total s | table in Postgres MB |",
            "|---:|---:|---:|---:|---:|---:|",
            *(_load_row(s) for s in sizes),
            "",
            "Results of the two stores (last run of each; sorted by entity, time and label; "
            "features to 1e-9; a tie in the feature table may pick either row; Feast's Postgres "
            "store returns event times without a time zone, as UTC values: compared as UTC):",
            "",
            *checks,
        ]
    )


def run() -> str:
    server = _server_settings()
    return _section([_measure(scale) for scale in SCALES], server)


if __name__ == "__main__":
    if sys.argv[1:2] == ["prepare"]:
        _prepare_child(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["one"]:
        _retrieval_child(sys.argv[2], Path(sys.argv[3]))
    else:
        print(run())
