"""`ml-platform run`: the pipeline's job on the home's Dagster instance, through the executor the
definitions declare (a process per step, as runs launched from the UI), progress and a summary.
A whole successful run, twice, is in components/test_end_to_end.py."""

from __future__ import annotations

from ml_platform.home import PlatformHome
from ml_platform_tests.helpers import SMALL_DEFS, ml_platform

__all__ = ["SMALL_DEFS", "ml_platform"]


def test_run_of_an_unknown_pipeline_names_the_declared_ones(home: PlatformHome) -> None:
    proc = ml_platform("run", "no_such_pipeline")
    assert proc.returncode == 2
    assert "no pipeline named 'no_such_pipeline'" in proc.stdout
    assert "loan_default" in proc.stdout
