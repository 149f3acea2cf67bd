"""A code location with two pipelines at test size, for running both at once on the production
profile: the demo pipeline, and the demo spec again as `loan_default_b` over its own landing
directory with the contract derived from its spec (the demo's contract names its pipeline).
Features come from the spec's declared SQL (no dbt build)."""

import dagster as dg

from ml_platform.components.ml_pipeline import MLPipelineComponent
from ml_platform.spec import PipelineSpec
from ml_platform_tests.helpers import small_spec

PIPELINES = ("loan_default", "loan_default_b")


def spec(name: str) -> PipelineSpec:
    if name == PIPELINES[0]:
        return small_spec()
    demo = small_spec()
    source = demo.source.model_copy(
        update={"path": f"{{home}}/landing/{name}/applications_*.parquet"}
    )
    return small_spec(name=name, contract=None, source=source)


def defs() -> dg.Definitions:
    from ml_platform.defs.resources import resources

    shared = resources()
    pipelines = [
        MLPipelineComponent(spec(name)).build_defs(None)  # type: ignore[arg-type]
        for name in PIPELINES
    ]
    return dg.Definitions.merge(
        *pipelines, dg.Definitions(resources=shared.resources, executor=shared.executor)
    )
