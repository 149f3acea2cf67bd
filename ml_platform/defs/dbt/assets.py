"""dbt feature models as Dagster assets: dbt tests become asset checks, dbt sources map to the
pipelines' validated assets, and a pipeline whose spec names a dbt model reads it downstream."""

import os
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from importlib.metadata import version as installed_version
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from packaging import version

from ml_platform.featurestore import dbt_server
from ml_platform.featurestore.dbt_project import (
    DBT_PROJECT_DIR,
    dbt_executable,
    invocation_target,
    keep_parse,
    prepare_manifest,
)
from ml_platform.pipeline.warmup import Warmup
from ml_platform.resources import PlatformResource

PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# Parse only when the manifest is missing or older than the dbt files (a few seconds).
prepare_manifest(PROJECT.manifest_path)


class EmbeddedDbtCli(DbtCliResource):
    """``DbtCliResource`` for the dbt-core installed beside this Python, without two costs of
    every invocation (about 3.5 s of a 1M-event run): a ``dbt --version`` subprocess, whose
    answer is this environment's pinned dbt-core, and an in-process dbt adapter, which
    dagster-dbt uses only to fetch row counts and column metadata, which we do not ask for."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(installed_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


class FeatureModelTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "dbt_features"


@dbt_assets(manifest=PROJECT.manifest_path, project=PROJECT,
            dagster_dbt_translator=FeatureModelTranslator())
def dbt_feature_models(context: dg.AssetExecutionContext, platform: PlatformResource
                       ) -> Iterator[Any]:
    """Staging and feature models on the embedded warehouse (`dbt build`: models and tests)."""
    home = platform.platform_home()
    # profiles.yml reads the home from the environment, which the dbt subprocess inherits.
    os.environ["ML_PLATFORM_HOME"] = str(home.root)
    # An in-process run started a dbt server that has already imported dbt and parsed the
    # project; dagster-dbt's subprocess is then its client (see featurestore/dbt_server.py).
    server = dbt_server.claim()
    executable = dbt_server.client_executable() if server else None
    target = invocation_target(home, context.run_id)
    try:
        if server:
            os.environ[dbt_server.SERVER_ENV] = server.address
        dbt = EmbeddedDbtCli(project_dir=PROJECT, profiles_dir=str(DBT_PROJECT_DIR),
                             dbt_executable=executable or dbt_executable())
        invocation = dbt.cli(["build"], context=context, target_path=target)  # running now
        # Warm the later steps meanwhile; started only now, so it never delays dbt's start.
        with Warmup(platform.tracking().probe) as warmup:
            yield from invocation.stream()
    finally:
        os.environ.pop(dbt_server.SERVER_ENV, None)
        if server:
            server.stop()
    keep_parse(home, target)
    context.log.info(warmup.summary() + (" (dbt: the run's dbt server)" if server else ""))
