"""The candidate-model asset through Dagster: one MLflow run per materialization linked both
ways, and a reproducibility check (fresh process, other thread count) that passes for the demo
model and blocks one that is not deterministic across processes."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from ml_platform.home import PlatformHome
from ml_platform_tests.helpers import materialize, small_spec

pytestmark = pytest.mark.slow
CHECK = "candidate_model_is_reproducible"


def test_candidate_asset_links_the_mlflow_run_and_passes_its_reproducibility_check(
    home: PlatformHome, landed: list
) -> None:
    result = materialize(small_spec(n_trials=2), home, selection="*loan_default_candidate_model")
    assert result.success
    (mat,) = result.asset_materializations_for_node("loan_default_candidate_model")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["mlflow_run"].endswith(meta["mlflow_run_id"])
    assert meta["trials"] == 2

    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == CHECK]
    assert check.passed
    check_meta = {k: v.value for k, v in check.metadata.items()}
    assert check_meta["retrained_hash"] == meta["reproducibility_hash"]
    assert check_meta["check_threads"] != check_meta["training_threads"]

    client = MlflowClient(home.tracking_uri)
    run = client.get_run(meta["mlflow_run_id"])
    tags = run.data.tags
    assert run.info.status == "FINISHED"
    assert tags["dagster_run_id"] == result.run_id
    assert tags["dagster_asset_key"] == "loan_default_candidate_model"
    assert tags["dagster_run_url"].endswith(f"/runs/{result.run_id}")
    assert tags["dagster_run_url"] in tags["mlflow.note.content"]
    assert tags["data_version"] == meta["data_version"]
    assert tags["reproducibility_check"] == "passed"
    assert [o.model_id for o in run.outputs.model_outputs] == [
        meta["model_uri"].removeprefix("models:/")
    ]


def test_a_model_that_differs_across_processes_fails_the_check_and_blocks_evaluation(
    home: PlatformHome, landed: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    spec = small_spec(n_trials=1)
    model = spec.model.model_copy(
        update={
            "estimator": "ml_platform_tests.training.nondeterministic.HashOrderClassifier",
            "params": {},
            "search_space": {},
        }
    )
    result = materialize(
        spec.model_copy(update={"model": model}), home, selection="*loan_default_evaluation_report"
    )
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == CHECK]
    assert not check.passed
    assert "not deterministic" in (check.description or "")
    assert check.metadata["retrained_hash"].value != check.metadata["recorded_hash"].value
    assert result.asset_materializations_for_node("loan_default_candidate_model")
    assert not result.asset_materializations_for_node("loan_default_evaluation_report")
    run_id = check.metadata["mlflow_run_id"].value
    assert (
        MlflowClient(home.tracking_uri).get_run(run_id).data.tags["reproducibility_check"]
        == "failed"
    )
