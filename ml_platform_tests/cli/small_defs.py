"""A code location for tests that run jobs the way Dagster does: the demo pipeline at test size,
with the project's dbt models and resources, and the project's executor (``defs``) or the
measured alternative, a process per step forked from a preloaded forkserver
(``defs_multiprocess``)."""

import dagster as dg

from ml_platform.components.ml_pipeline import MLPipelineComponent
from ml_platform_tests.helpers import small_spec


def _defs(executor: dg.ExecutorDefinition | None) -> dg.Definitions:
    from ml_platform.defs.dbt.assets import dbt_defs
    from ml_platform.defs.resources import resources

    pipeline = MLPipelineComponent(small_spec(dbt=True)).build_defs(None)  # type: ignore[arg-type]
    shared = resources()
    return dg.Definitions.merge(
        pipeline,
        dbt_defs(),
        dg.Definitions(resources=shared.resources, executor=executor or shared.executor),
    )


def defs() -> dg.Definitions:
    return _defs(None)


def defs_multiprocess() -> dg.Definitions:
    from ml_platform.defs.resources import FORKSERVER_EXECUTOR

    return _defs(FORKSERVER_EXECUTOR)
