"""Infra validation in a fresh process: a corrupt artifact fails it; a signature that is not the
feature service's columns fails the signature gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature

from ml_platform.evaluation import infra
from ml_platform.home import PlatformHome
from ml_platform.spec import PipelineSpec
from ml_platform.training import fitting
from ml_platform_tests.helpers import small_spec


def _frame(spec: PipelineSpec, rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({c: rng.normal(size=rows) for c in spec.features.model_numeric})
    for col in spec.features.categorical:
        frame[col] = rng.choice(["a", "b", "c"], rows)
    frame[spec.label] = (frame[spec.features.model_numeric[0]] > 0).astype(int)
    return frame


def _save(spec: PipelineSpec, frame: pd.DataFrame, path: Path, drop: str | None = None) -> str:
    """A real sklearn artifact; ``drop`` leaves one column out of its signature."""
    import mlflow

    model = fitting.fit(spec, frame)
    x = fitting.features_of(frame.head(5), spec)
    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format="cloudpickle",
        signature=infer_signature(x.drop(columns=[drop] if drop else []), np.zeros(5)),
        pip_requirements=["scikit-learn"],
    )
    return str(path)


@pytest.mark.slow
def test_corrupt_artifact_fails_infra_validation(home: PlatformHome, tmp_path: Path) -> None:
    spec = small_spec()
    frame = _frame(spec)
    uri = _save(spec, frame, tmp_path / "model")
    (tmp_path / "model" / "model.pkl").write_bytes(b"not a pickle")
    gates = infra.infra_gates(spec, uri, home.tracking_uri, frame)
    assert [(g.name, g.passed) for g in gates] == [(infra.INFRA, False), (infra.SIGNATURE, False)]
    assert "failed to load or predict in a fresh process" in gates[0].message
    assert "UnpicklingError" in gates[0].message or "pickle" in gates[0].message.lower()


@pytest.mark.slow
def test_signature_must_be_the_feature_columns(home: PlatformHome, tmp_path: Path) -> None:
    spec = small_spec()
    frame = _frame(spec)
    dropped = spec.features.categorical[0]
    uri = _save(spec, frame, tmp_path / "model", drop=dropped)
    loads, signature = infra.infra_gates(spec, uri, home.tracking_uri, frame)
    # The server enforces the signature, so the artifact cannot even serve a feature batch.
    assert not loads.passed and f"columns are missing: {{'{dropped}'}}" in loads.message
    assert not signature.passed
    assert f"signature lacks feature columns ['{dropped}']" in signature.message


@pytest.mark.slow
def test_a_good_artifact_passes_both_gates(home: PlatformHome, tmp_path: Path) -> None:
    spec = small_spec()
    frame = _frame(spec)
    loads, signature = infra.infra_gates(
        spec, _save(spec, frame, tmp_path / "m"), home.tracking_uri, frame
    )
    assert loads.passed and signature.passed, (loads.message, signature.message)
    assert loads.evidence["batch_rows"] == len(frame) and loads.evidence["finite"]


def test_signature_gate_names_type_mismatches() -> None:
    spec = small_spec()
    schema = infra.expected_schema(spec)
    assert infra.signature_gate(spec, schema).passed
    numeric = spec.features.model_numeric[0]
    gate = infra.signature_gate(spec, {**schema, numeric: "string", "extra": "double"})
    assert not gate.passed
    assert f"column '{numeric}' is string in the signature" in gate.message
    assert "does not serve ['extra']" in gate.message
    assert "no input signature" in infra.signature_gate(spec, {}).message


def test_budget_gate_reports_latency_and_memory_over_budget() -> None:
    spec = small_spec()
    result = {
        "predictions": 1000,
        "batch_rows": 1000,
        "finite": True,
        "load_seconds": 0.1,
        "batch_latency_ms": spec.gates.max_latency_ms + 1,
        "peak_rss_mb": 99_999,
    }
    gate = infra.budget_gate(spec, result)
    assert not gate.passed
    assert "latency" in gate.message and "peak memory 99999 MB" in gate.message
    ok = infra.budget_gate(spec, {**result, "batch_latency_ms": 1.0, "peak_rss_mb": 10})
    assert ok.passed and "fresh process" in ok.message


def test_a_logged_model_is_checked_from_its_local_artifact_directory(
    home: PlatformHome, tmp_path: Path
) -> None:
    from ml_platform.training.tracking import Tracking

    spec = small_spec()
    frame = _frame(spec)
    model = fitting.fit(spec, frame)
    tracking = Tracking(home.tracking_uri, artifact_root=home.artifact_root)
    experiment_id = tracking.experiment_id(spec.name)
    with tracking.run(experiment_id, "infra", {}) as run:
        model_uri = tracking.log_sklearn_model(
            experiment_id,
            run.run_id,
            model,
            {},
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
        )
    client = tracking.client
    path = Path(infra.local_artifact(client, model_uri))
    assert (path / "MLmodel").exists() and path.is_relative_to(home.root)
    # Other URIs, and logged models the store does not know, are left to the fresh process.
    for uri in ("runs:/abc/model", "models:/loan_default/1", "models:/m-unknown", str(path)):
        assert infra.local_artifact(client, uri) == uri
