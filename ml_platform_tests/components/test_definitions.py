"""The project's definitions load, and every asset carries what the UI shows a user."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ml_platform.components.common import STAGES
from ml_platform.home import PROJECT_ROOT, PlatformHome


def _defs() -> dg.Definitions:
    from ml_platform.definitions import defs

    return defs


def test_demo_pipeline_graph_is_complete() -> None:
    defs = _defs()
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {f"loan_default_{stage}" for stage in STAGES} <= keys
    for stage in STAGES:
        node = graph.get(dg.AssetKey(f"loan_default_{stage}"))
        assert node.group_name == "loan_default"
        assert node.description, f"{stage} has no docstring"
        assert node.kinds, f"{stage} has no kinds"
    parents = graph.get(dg.AssetKey("loan_default_registered_model")).parent_keys
    assert dg.AssetKey("loan_default_evaluation_report") in parents


def test_gates_are_blocking_checks_and_loop_is_wired() -> None:
    defs = _defs()
    for stage in ("validated", "evaluation_report"):
        specs = list(defs.resolve_assets_def(f"loan_default_{stage}").check_specs)
        assert specs, f"{stage} has no checks"
        assert all(spec.blocking for spec in specs), f"{stage} has a non-blocking gate"
    gate_names = {
        s.name for s in defs.resolve_assets_def("loan_default_evaluation_report").check_specs
    }
    assert {
        "roc_auc_above_floor",
        "beats_dummy_baseline",
        "not_worse_than_champion",
        "infra_valid",
        "signature_matches_features",
    } <= gate_names
    assert defs.resolve_job_def("loan_default_training_job") is not None
    assert defs.resolve_sensor_def("loan_default_new_data_sensor") is not None


@pytest.mark.slow
def test_dagster_definitions_validate_passes(home: PlatformHome) -> None:
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(home.dagster_home)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "All code locations passed validation" in proc.stderr + proc.stdout
