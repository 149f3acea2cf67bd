"""The dbt project of feature models (dbt_project/, dbt-duckdb on the embedded warehouse).

Every build replaces the models' tables in the one warehouse file, so a run must not read its
feature model back from there: another run may have rebuilt it from another batch in between.
Each build therefore copies the tables it made to parquet files of its own run
(``warehouse/dbt_exports/<run id>/``) before the next build may start (builds take turns on
the warehouse's lock), and a run's feature step reads its own run's copy.
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from ml_platform.features.sql import _q, as_utc, fetch_frame
from ml_platform.home import PROJECT_ROOT, PlatformHome
from ml_platform.ingest.io import atomic_path, duckdb_session, remove_stale_temp_files
from ml_platform.spec import PipelineSpec

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
EXPORTS_KEPT = 8  # runs whose exports stay (more than the instance runs at once)


def validated_var(pipeline: str) -> str:
    """The dbt variable naming a pipeline's validated batch (the source's location)."""
    return f"{pipeline}_validated"


def warehouse_db(home: PlatformHome) -> Path:
    """The DuckDB file dbt builds into (profiles.yml points here through ML_PLATFORM_HOME)."""
    return home.warehouse / "warehouse.duckdb"


def export_dir(home: PlatformHome, run_id: str) -> Path:
    """Where the build of run ``run_id`` left copies of its tables."""
    return home.warehouse / "dbt_exports" / run_id


def open_warehouse(home: PlatformHome) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    """The warehouse, read-only, set up as every DuckDB session here (:func:`duckdb_session`)."""
    return duckdb_session(warehouse_db(home), read_only=True)


@contextmanager
def warehouse_lock(home: PlatformHome) -> Iterator[None]:
    """One build (and its export) at a time: DuckDB lets a single process write the file, and
    a second build would fail on the file's lock instead of waiting."""
    lock = home.warehouse / ".warehouse.duckdb.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def export_tables(home: PlatformHome, run_id: str) -> list[Path]:
    """Copy every table of the warehouse (the models materialized as tables) to parquet files
    of run ``run_id``; call it right after the build, under :func:`warehouse_lock`."""
    target = export_dir(home, run_id)
    written = []
    with open_warehouse(home) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
                "AND database_name = current_database()"
            ).fetchall()
        ]
        for table in tables:
            with atomic_path(target / f"{table}.parquet") as tmp:
                path = str(tmp).replace("'", "''")
                con.execute(
                    f"COPY main.{_q(table)} TO '{path}' (FORMAT parquet, USE_TMP_FILE false)"
                )
            written.append(target / f"{table}.parquet")
    _prune_exports(home, keep=target)
    return written


def _prune_exports(home: PlatformHome, keep: Path) -> None:
    """Keep the newest runs' exports (a run still going reads its own); remove the rest, and
    the temporary files of killed exports in those kept."""
    runs = sorted(
        (p for p in keep.parent.iterdir() if p.is_dir()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in runs[EXPORTS_KEPT:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)
    for kept in runs[:EXPORTS_KEPT]:
        remove_stale_temp_files(kept)


def _model_frame(
    spec: PipelineSpec, home: PlatformHome, model: str, run_id: str | None
) -> pd.DataFrame:
    """The model's rows as built in run ``run_id``; the warehouse's current table when that run
    did not build it (the dbt assets were not part of the run)."""
    order = f"ORDER BY {_q(spec.entity_key)}, {_q(spec.event_timestamp)}"
    export = export_dir(home, run_id) / f"{model}.parquet" if run_id else None
    if export is not None and export.exists():
        with duckdb_session() as session:
            return fetch_frame(session, f"SELECT * FROM read_parquet(?) {order}", [str(export)])
    db = warehouse_db(home)
    if not db.exists():
        raise FileNotFoundError(
            f"dbt model '{model}' of '{spec.name}' has not been built: "
            f"{db} does not exist (materialize the dbt assets first)"
        )
    try:
        with open_warehouse(home) as con:
            return fetch_frame(con, f"SELECT * FROM main.{_q(model)} {order}")
    except duckdb.CatalogException:
        raise FileNotFoundError(f"dbt model '{model}' of '{spec.name}' is not in {db}") from None


def read_model(spec: PipelineSpec, home: PlatformHome, run_id: str | None = None) -> pd.DataFrame:
    """The pipeline's dbt feature model as a frame, as built in run ``run_id`` (see the module
    docstring), checked against the spec's columns."""
    model = spec.features.dbt_model
    if model is None:
        raise ValueError(f"pipeline '{spec.name}' declares no features.dbt_model")
    frame = _model_frame(spec, home, model, run_id)
    needed = [
        spec.entity_key,
        spec.event_timestamp,
        *spec.features.numeric,
        *spec.features.date_outputs,
        *spec.features.categorical,
        *(a.name for a in spec.features.aggregates),
    ]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(
            f"dbt model '{model}' lacks columns {missing} declared by pipeline '{spec.name}'"
        )
    if list(frame.columns) != needed:  # a copy of every column: only when the model has others
        frame = frame[needed]
    return as_utc(frame, spec.event_timestamp)
