"""The dbt project of feature models (dbt_project/, dbt-duckdb on the embedded warehouse)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import duckdb
import pandas as pd

from ml_platform.core.features import _q, as_utc
from ml_platform.featurestore.dbt_server import dbt_executable
from ml_platform.home import PROJECT_ROOT, PlatformHome
from ml_platform.spec import PipelineSpec

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
PARSE_CACHE = "partial_parse.msgpack"
KEPT_TARGETS = 5


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


def manifest_is_stale(manifest: Path) -> bool:
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [p for pattern in ("*.yml", "models/**/*", "tests/**/*")
               for p in DBT_PROJECT_DIR.glob(pattern) if p.is_file()]
    return any(p.stat().st_mtime > built for p in sources)


def prepare_manifest(manifest: Path) -> None:
    """`dbt parse` when the manifest is missing or older than the project's files."""
    if not manifest_is_stale(manifest):
        return
    subprocess.run([dbt_executable(), "parse", "--quiet", "--project-dir", str(DBT_PROJECT_DIR),
                    "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path",
                    str(manifest.parent)], check=True, capture_output=True, timeout=300)


def invocation_target(home: PlatformHome, name: str) -> Path:
    """A dbt invocation's target directory under the home, holding the home's last parse.

    dbt reuses a parse (about 2.5 s saved) only when the profile is unchanged, and the profile
    names the home's warehouse, so the cache is per home. Only the newest ``KEPT_TARGETS``
    target directories stay.
    """
    runs = home.dbt_dir / "runs"
    target = primed_target(home, runs / name)
    older = sorted((p for p in runs.iterdir() if p != target), key=lambda p: p.stat().st_mtime)
    for old in older[:max(0, len(older) - KEPT_TARGETS + 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def primed_target(home: PlatformHome, target: Path) -> Path:
    """``target``, created, holding a copy of the home's last parse if there is one."""
    target.mkdir(parents=True, exist_ok=True)
    cached = home.dbt_dir / PARSE_CACHE
    if cached.exists():
        shutil.copyfile(cached, target / PARSE_CACHE)
    return target


def keep_parse(home: PlatformHome, target: Path) -> None:
    """Make the invocation's parse the home's cache (atomically: a reader never sees half)."""
    parsed = target / PARSE_CACHE
    if not parsed.exists():
        return
    fd, tmp = tempfile.mkstemp(dir=home.dbt_dir, suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(parsed, tmp)
        os.replace(tmp, home.dbt_dir / PARSE_CACHE)
    finally:
        Path(tmp).unlink(missing_ok=True)
