"""dbt feature models as Dagster assets, as dagster-dbt documents them: dbt tests become asset
checks, dbt sources map to the pipelines' validated assets, and a pipeline whose spec names a
dbt model reads it downstream. Each build reads the validated batches of its own run."""

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from ml_platform.components.common import RETRY
from ml_platform.components.handoff import handoff
from ml_platform.features.dbt_project import (
    DBT_PROJECT_DIR,
    export_tables,
    validated_var,
    warehouse_lock,
)
from ml_platform.home import platform_home

PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# `dagster dev` parses the project on load; elsewhere `make` parses it whenever a dbt file
# changed, and a checkout without a manifest gets one here, once.
PROJECT.prepare_if_dev()
if not PROJECT.manifest_path.exists():
    PROJECT.preparer.prepare(PROJECT)
VALIDATED_SUFFIX = "_validated"


def dbt_executable() -> str:
    """The dbt installed beside this Python: a venv's bin is not on PATH unless activated."""
    local = Path(sys.executable).parent / "dbt"
    return str(local) if local.exists() else "dbt"


class FeatureModelTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "dbt_features"


def batch_vars(context: dg.AssetExecutionContext) -> dict[str, str]:
    """``<pipeline>_validated``: the path of each upstream validated batch, from this run."""
    out = {}
    for key in context.assets_def.dependency_keys:
        name = key.to_user_string()
        if name.endswith(VALIDATED_SUFFIX) and key not in context.assets_def.keys:
            # This run's batch if the run validated one, else the newest (dbt run on its own).
            batch = handoff(context.instance, key, context.run.run_id, fallback=True)
            out[validated_var(name.removesuffix(VALIDATED_SUFFIX))] = batch["path"]
    return out


@dbt_assets(
    manifest=PROJECT.manifest_path,
    project=PROJECT,
    dagster_dbt_translator=FeatureModelTranslator(),
    retry_policy=RETRY,  # the warehouse lock and DuckDB file are shared with other runs
)
def dbt_feature_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """Staging and feature models on the warehouse (`dbt build`: models and tests); the tables
    built are copied for this run's feature steps before another build may replace them."""
    home = platform_home()  # the warehouse dbt's profile names (ML_PLATFORM_HOME)
    with warehouse_lock(home):
        yield from dbt.cli(
            ["build", "--vars", json.dumps(batch_vars(context))], context=context
        ).stream()
        export_tables(home, context.run.run_id)


@dg.definitions
def dbt_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[dbt_feature_models],
        resources={"dbt": DbtCliResource(project_dir=PROJECT, dbt_executable=dbt_executable())},
    )
