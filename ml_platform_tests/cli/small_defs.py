"""A code location for tests that run jobs the way Dagster does (a process per step): the demo
pipeline at test size, with the project's dbt models and resources."""

import dagster as dg

from ml_platform.components.ml_pipeline import MLPipelineComponent
from ml_platform_tests.helpers import small_spec


def defs() -> dg.Definitions:
    from ml_platform.defs.dbt.assets import dbt_defs
    from ml_platform.defs.resources import resources

    pipeline = MLPipelineComponent(small_spec(dbt=True)).build_defs(None)  # type: ignore[arg-type]
    return dg.Definitions.merge(pipeline, dbt_defs(), resources())
