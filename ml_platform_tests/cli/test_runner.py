"""`ml-platform run`: the pipeline's job on the home's Dagster instance, through the executor the
definitions declare (a process per step, as runs launched from the UI), progress and a summary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ml_platform.home import PROJECT_ROOT, PlatformHome

pytestmark = pytest.mark.slow
SMALL_DEFS = "ml_platform_tests.cli.small_defs:defs"


def ml_platform(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The installed command, in a fresh process, on the test's home (its environment)."""
    cli = str(Path(sys.executable).parent / "ml-platform")
    return subprocess.run([cli, *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def test_run_executes_the_job_with_its_executor_and_prints_the_summary(
        home: PlatformHome, landed: list[Path]) -> None:
    proc = ml_platform("run", "loan_default", "--definitions", SMALL_DEFS)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "SUCCESS loan_default" in out
    assert "done loan_default_validated" in out and "done dbt_feature_models" in out
    assert "0 failed" in out
    assert "loan_default v1 (promoted: first model; champion v1)" in out

    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        [record] = instance.get_run_records()
        run = record.dagster_run
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.job_name == "loan_default_training_job"
        assert run.tags["ml_platform/pipeline"] == "loan_default"
        events = instance.all_logs(run.run_id)
        # A process per step: the multiprocess executor started a worker for each step.
        workers = [e for e in events if e.dagster_event is not None and
                   e.dagster_event.event_type_value == "STEP_WORKER_STARTED"]
        assert {e.step_key for e in workers} >= {"loan_default_validated",
                                                 "loan_default_registered_model"}


def test_run_of_an_unknown_pipeline_names_the_declared_ones(home: PlatformHome) -> None:
    proc = ml_platform("run", "no_such_pipeline")
    assert proc.returncode == 2
    assert "no pipeline named 'no_such_pipeline'" in proc.stdout
    assert "loan_default" in proc.stdout
