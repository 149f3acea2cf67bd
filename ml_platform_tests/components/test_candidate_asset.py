"""The candidate-model asset through Dagster: run linked both ways, reproducibility checked."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from ml_platform.home import PlatformHome
from ml_platform_tests.helpers import materialize, small_spec

pytestmark = pytest.mark.slow


def test_candidate_asset_links_the_mlflow_run_and_passes_its_reproducibility_check(
        home: PlatformHome, landed: list) -> None:
    result = materialize(small_spec(n_trials=2), home, selection="*loan_default_candidate_model")
    assert result.success
    (mat,) = result.asset_materializations_for_node("loan_default_candidate_model")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["mlflow_run"].endswith(meta["mlflow_run_id"])
    assert meta["trials"] == 2

    (check,) = [c for c in result.get_asset_check_evaluations()
                if c.check_name == "candidate_model_is_reproducible"]
    assert check.passed
    assert check.metadata["retrained_hash"].value == meta["reproducibility_hash"]

    run = MlflowClient(home.tracking_uri).get_run(meta["mlflow_run_id"])
    tags = run.data.tags
    assert run.info.status == "FINISHED"
    assert tags["dagster_run_id"] == result.run_id
    assert tags["dagster_asset_key"] == "loan_default_candidate_model"
    assert tags["dagster_run_url"].endswith(f"/runs/{result.run_id}")
    assert tags["data_version"] == meta["data_version"]
