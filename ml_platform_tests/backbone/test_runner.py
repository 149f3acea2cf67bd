"""`ml-platform run`'s path: the job in this process with a sidecar process and a dbt server
beside it, progress and a summary; dbt keeps its parse in the home for the next run."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest
from rich.console import Console

from ml_platform.components.ml_pipeline import MLPipelineComponent
from ml_platform.features.dbt_project import PARSE_CACHE
from ml_platform.home import PlatformHome
from ml_platform.ingest import raw
from ml_platform.pipeline import sidecar
from ml_platform.contracts import validate
from ml_platform_tests.conftest import small_spec


@pytest.mark.slow
def test_run_pipeline_with_its_sidecar_registers_a_model_and_prints_the_summary(
        home: PlatformHome, landed: list[Path]) -> None:
    from ml_platform.components.mlflow_tracking import MlflowTrackingResource
    from ml_platform.defs.dbt.assets import dbt_feature_models
    from ml_platform.resources import PlatformResource
    from ml_platform.runner import run_pipeline

    spec = small_spec(dbt=True)
    defs = dg.Definitions.merge(
        MLPipelineComponent(spec).build_defs(None),  # type: ignore[arg-type]
        dg.Definitions(assets=[dbt_feature_models],
                       resources={"platform": PlatformResource(),
                                  "mlflow": MlflowTrackingResource()}))
    console = Console(record=True, width=200)
    assert run_pipeline(spec, console, definitions=defs)
    out = console.export_text()
    assert "SUCCESS loan_default" in out
    assert "done loan_default_validated" in out and "done dbt_feature_models" in out
    assert "0 failed" in out
    assert "loan_default v1 (promoted: first model; champion v1)" in out
    assert "warmed 3 modules and 1 stores" in out and "more modules in the sidecar" in out
    assert "(dbt: the run's dbt server)" in out  # the build ran on the server started with it
    side = sidecar.active()  # stays for the next run in this process
    assert side is not None and sidecar.call(os.getpid) != os.getpid()
    side.close()
    assert sidecar.active() is None
    # dbt's parse of this home's profile is kept for the next run's partial parsing
    assert (home.dbt_dir / PARSE_CACHE).stat().st_size > 0
    assert len(list((home.dbt_dir / "runs").iterdir())) == 1


def test_validation_in_the_sidecar_gives_the_same_outcome_as_here(
        home: PlatformHome, landed: list[Path]) -> None:
    spec = small_spec()
    snap = raw.snapshot(spec, home)
    here = validate.validate_snapshot(spec, home, snap)
    with sidecar.running(validate.WARM_MODULES, validate.WARM_CALLS):
        there = sidecar.call(validate.validate_snapshot, spec, home, snap)
    assert there.passed and here.passed
    assert [r.to_dict() for r in there.rules] == [r.to_dict() for r in here.rules]
    assert (there.rows_valid, there.data_version) == (here.rows_valid, here.data_version)
