"""One run of a pipeline at a time: `ml-platform run` refuses while another run of the pipeline
is in progress, and marks failed a run whose `ml-platform run` process was killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from ml_platform.home import PROJECT_ROOT, PlatformHome
from ml_platform.runner import PipelineBusy, refuse_if_busy
from ml_platform_tests.helpers import SMALL_DEFS

pytestmark = pytest.mark.slow


def _wait_for_started_run(home: PlatformHome, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
            runs = instance.get_run_records(
                dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]), limit=1
            )
            if runs:
                return runs[0].dagster_run.run_id
        time.sleep(0.5)
    raise AssertionError("no run started in time")


def test_a_second_run_is_refused_and_a_killed_run_is_marked_failed(
    home: PlatformHome, landed: list[Path]
) -> None:
    cli = str(Path(sys.executable).parent / "ml-platform")
    proc = subprocess.Popen(
        [cli, "run", "loan_default", "--definitions", SMALL_DEFS],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        run_id = _wait_for_started_run(home)
        with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
            with pytest.raises(PipelineBusy, match=f"run {run_id} of 'loan_default' is STARTED"):
                refuse_if_busy(instance, "loan_default")
            refuse_if_busy(instance, "another_pipeline")  # other pipelines are not held up
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
            refuse_if_busy(instance, "loan_default")  # the dead run no longer holds the pipeline
            run = instance.get_run_by_id(run_id)
            assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
