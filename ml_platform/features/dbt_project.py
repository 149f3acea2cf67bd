"""The dbt project of feature models (dbt_project/, dbt-duckdb on the embedded warehouse)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from ml_platform.features.sql import _q, as_utc
from ml_platform.home import PROJECT_ROOT, PlatformHome
from ml_platform.spec import PipelineSpec

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


def validated_var(pipeline: str) -> str:
    """The dbt variable naming a pipeline's validated batch (the source's location)."""
    return f"{pipeline}_validated"


def warehouse_db(home: PlatformHome) -> Path:
    """The DuckDB file dbt builds into (profiles.yml points here through ML_PLATFORM_HOME)."""
    return home.warehouse / "warehouse.duckdb"


def read_model(spec: PipelineSpec, home: PlatformHome) -> pd.DataFrame:
    """The pipeline's dbt feature model as a frame, checked against the spec's columns."""
    model = spec.features.dbt_model
    if model is None:
        raise ValueError(f"pipeline '{spec.name}' declares no features.dbt_model")
    db = warehouse_db(home)
    if not db.exists():
        raise FileNotFoundError(f"dbt model '{model}' of '{spec.name}' has not been built: "
                                f"{db} does not exist (materialize the dbt assets first)")
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'; SET enable_progress_bar = false")
        frame = con.execute(f"SELECT * FROM main.{_q(model)} ORDER BY "
                            f"{_q(spec.entity_key)}, {_q(spec.event_timestamp)}").df()
    except duckdb.CatalogException:
        raise FileNotFoundError(f"dbt model '{model}' of '{spec.name}' is not in {db}") from None
    finally:
        con.close()
    needed = [spec.entity_key, spec.event_timestamp, *spec.features.numeric,
              *spec.features.categorical, *(a.name for a in spec.features.aggregates)]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"dbt model '{model}' lacks columns {missing} declared by pipeline "
                         f"'{spec.name}'")
    return as_utc(frame[needed], spec.event_timestamp)
