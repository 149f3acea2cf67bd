"""The whole demo pipeline on small generated data, twice, in a temporary home."""

import pytest
from mlflow.tracking import MlflowClient

from ml_platform.home import PlatformHome
from ml_platform.ingest.versioning import code_version
from ml_platform_tests.helpers import materialize, small_spec

pytestmark = pytest.mark.slow


def _metadata(result, key: str) -> dict:  # noqa: ANN001
    mats = result.asset_materializations_for_node(key)
    assert mats, f"{key} was not materialized"
    return {k: v.value for k, v in mats[-1].metadata.items()}


def test_demo_pipeline_end_to_end_twice(home: PlatformHome, landed: list) -> None:
    spec = small_spec(dbt=True)  # the demo as shipped: dbt feature model upstream of Feast
    first = materialize(spec, home)
    assert first.success
    training_set = _metadata(first, "loan_default_training_set")
    registered = _metadata(first, "loan_default_registered_model")
    assert registered["version"] == "1"
    assert registered["promoted"] is True

    client = MlflowClient(home.tracking_uri, registry_uri=home.tracking_uri)
    version = client.get_model_version("loan_default", "1")
    assert version.tags["dagster_run_id"] == first.run_id
    assert version.tags["data_version"] == training_set["data_version"]
    assert version.tags["code_version"] == code_version()
    assert version.tags["feature_service"] == training_set["feature_service"]
    assert version.tags["feature_service"].startswith("loan_default_v")
    assert str(client.get_model_version_by_alias("loan_default", "champion").version) == "1"
    run = client.get_run(version.run_id)
    assert run.data.tags["dagster_run_id"] == first.run_id
    assert run.data.tags["data_version"] == training_set["data_version"]
    assert "test_roc_auc" in run.data.metrics

    # A second run on the existing state works and re-scores the champion on its holdout.
    second = materialize(spec, home)
    assert second.success
    report = _metadata(second, "loan_default_evaluation_report")
    assert report["champion_version"] == "1"
    assert client.get_model_version("loan_default", "2").tags["gates_passed"] == "true"
    # Data, code and seed unchanged: the retrained candidate is the same model.
    cand1 = _metadata(first, "loan_default_candidate_model")
    cand2 = _metadata(second, "loan_default_candidate_model")
    assert cand1["prediction_hash"] == cand2["prediction_hash"]
    # An identical retrain is registered as challenger but does not take the champion alias.
    assert _metadata(second, "loan_default_registered_model")["promoted"] is False
    assert str(client.get_model_version_by_alias("loan_default", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("loan_default", "challenger").version) == "2"
