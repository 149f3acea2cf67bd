"""The examples (docs/examples.md): each lands its scikit-learn dataset and runs end to end
with one command, in a fresh home, through the same job path as `ml-platform run`."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from ml_platform.cli import examples
from ml_platform.home import PlatformHome
from ml_platform.ingest import prepare
from ml_platform_tests.helpers import ml_platform


@pytest.mark.parametrize("name", sorted(examples.DATASETS))
def test_example_specs_load_and_land(name: str, home: PlatformHome) -> None:
    spec = examples.load_example(name)
    assert not spec.has_event_time
    path = examples.land(spec, home, name)
    data = pd.read_csv(path)
    assert data[spec.entity_key].is_unique
    missing = set(spec.features.all_columns) | {spec.label}
    assert missing <= set(data.columns), missing - set(data.columns)
    assert not list(path.parent.glob(".*.tmp"))  # written via a temp file, then renamed
    _, problems = prepare.prepare(spec, data)
    assert problems == []


def test_unknown_example_is_refused() -> None:
    result = ml_platform("example", "iris", "--land-only")
    assert result.returncode == 2
    assert "no example named 'iris'; examples: breast_cancer, diabetes, wine" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(examples.DATASETS))
def test_example_runs_end_to_end(name: str, home: PlatformHome) -> None:
    result = ml_platform("example", name, timeout=1500)
    out = re.sub(r"\s+", " ", result.stdout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"SUCCESS {name}" in out
    assert re.search(r"checks \d+ passed, 0 failed", out), out[-2000:]
    assert f"model {name} v1 (promoted: first model" in out
    assert (home.landing / name / f"{name}.csv").exists()
    spec = examples.load_example(name)
    (report_path,) = (home.reports / name).glob("*/evaluation.json")
    report = json.loads(report_path.read_text())
    assert report["passed"] and spec.primary_metric in report["metrics"]
    if spec.is_multiclass:  # wine: per-class metrics on the report and the MLflow run
        from mlflow import MlflowClient

        assert spec.primary_metric == "macro_f1"
        classes = report["diagnostics"]["classes"]
        assert classes == [0, 1, 2]
        assert set(report["diagnostics"]["calibration_per_class"]) == {"0", "1", "2"}
        logged = MlflowClient(home.tracking_uri).get_run(report["run_id"]).data.metrics
        for c in classes:
            for m in ("precision", "recall", "f1"):
                assert f"{m}_class_{c}" in report["metrics"]
                assert f"eval_{m}_class_{c}" in logged and f"test_{m}_class_{c}" in logged
        for m in ("macro_f1", "weighted_f1", "log_loss", "accuracy"):
            assert f"eval_{m}" in logged and m in report["baseline_metrics"]["dummy"]
