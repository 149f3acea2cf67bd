"""The whole demo pipeline on small generated data, twice, the way Dagster runs it: the training
job through the declared executor (in-process: every step in the run's one process) on a real
instance in a temporary home, launched by `ml-platform run` in a fresh process."""

from __future__ import annotations

import re
from typing import Any

import dagster as dg
import pytest
from mlflow.tracking import MlflowClient

from ml_platform.home import PlatformHome
from ml_platform.ingest.versioning import code_version
from ml_platform_tests.helpers import SMALL_DEFS, ml_platform

pytestmark = pytest.mark.slow


def _metadata(instance: dg.DagsterInstance, run_id: str, key: str) -> dict[str, Any]:
    records = instance.fetch_materializations(dg.AssetKey(key), limit=20).records
    mats = [r.asset_materialization for r in records if r.run_id == run_id]
    assert mats and mats[0] is not None, f"{key} was not materialized in run {run_id}"
    return {k: v.value for k, v in mats[0].metadata.items()}


def _run(home: PlatformHome) -> tuple[str, str]:
    """The run id and the command's output."""
    proc = ml_platform("run", "loan_default", "--definitions", SMALL_DEFS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "SUCCESS loan_default" in proc.stdout
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        record = instance.get_run_records(limit=1)[0]
        run = record.dagster_run
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.job_name == "loan_default_training_job"
        assert run.tags["ml_platform/pipeline"] == "loan_default"
        _assert_in_process(instance, run)
        return run.run_id, proc.stdout


def _assert_in_process(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """The in-process executor ran every step in the `ml-platform run` process: it announced
    that process, no step worker was started, and each step's events carry that pid."""
    events = [e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event]
    kinds = {e.event_type_value for e in events}
    assert not kinds & {"STEP_WORKER_STARTING", "STEP_WORKER_STARTED"}, kinds
    announced = [
        e.pid for e in events if (e.message or "").startswith("Executing steps in process")
    ]
    assert announced == [int(run.tags["ml_platform/pid"])], announced
    steps = {(e.step_key, e.pid) for e in events if e.event_type_value == "STEP_START"}
    assert {"loan_default_validated", "loan_default_registered_model"} <= {k for k, _ in steps}
    assert {pid for _, pid in steps} == set(announced), steps


def _assert_only_progress_and_summary(home: PlatformHome, run_id: str, out: str) -> None:
    """The command printed its own lines only; what the run printed (dbt's output) is in the
    run's compute logs, which the summary names."""
    head, _, summary = out.partition("\nSUCCESS loan_default in ")
    progress = head.splitlines()[1:]  # after "running loan_default ..."
    assert progress and all(re.match(r"  \[ *[0-9.]+s\] ", line) for line in progress), head
    assert progress[-1].endswith("done loan_default_registered_model"), head
    logs = home.dagster_home / "storage" / run_id / "compute_logs"
    assert str(logs) in re.sub(r"\s+", "", summary), summary  # however the table wrapped it
    captured = "".join(p.read_text() for p in logs.glob("*.out"))
    assert "Running with dbt" in captured and "Running with dbt" not in out


def test_demo_pipeline_end_to_end_twice(home: PlatformHome, landed: list) -> None:
    first, out = _run(home)
    assert "done loan_default_validated" in out and "done dbt_feature_models" in out
    assert "0 failed" in out
    _assert_only_progress_and_summary(home, first, out)
    assert "loan_default v1 (promoted: first model; champion v1)" in out
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        training_set = _metadata(instance, first, "loan_default_training_set")
        registered = _metadata(instance, first, "loan_default_registered_model")
        cand1 = _metadata(instance, first, "loan_default_candidate_model")
    assert registered["version"] == "1"
    assert registered["promoted"] is True

    client = MlflowClient(home.tracking_uri, registry_uri=home.tracking_uri)
    version = client.get_model_version("loan_default", "1")
    assert version.tags["dagster_run_id"] == first
    assert version.tags["data_version"] == training_set["data_version"]
    assert version.tags["code_version"] == code_version()
    assert version.tags["feature_service"] == training_set["feature_service"]
    assert version.tags["feature_service"].startswith("loan_default_v")
    assert str(client.get_model_version_by_alias("loan_default", "champion").version) == "1"
    run = client.get_run(version.run_id)
    assert run.data.tags["dagster_run_id"] == first
    assert run.data.tags["data_version"] == training_set["data_version"]
    assert "test_roc_auc" in run.data.metrics
    # The hand-off is the MLflow run and model URI, not a pickle.
    assert cand1["handoff"]["run_id"] == version.run_id
    assert cand1["handoff"]["model_uri"].startswith("models:/")

    # A second run on the existing state works and re-scores the champion on its holdout.
    second, out = _run(home)
    assert "registered as challenger" in out
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        report = _metadata(instance, second, "loan_default_evaluation_report")
        cand2 = _metadata(instance, second, "loan_default_candidate_model")
        registered2 = _metadata(instance, second, "loan_default_registered_model")
    assert report["champion_version"] == "1"
    assert client.get_model_version("loan_default", "2").tags["gates_passed"] == "true"
    # Data, code and seed unchanged: the retrained candidate is the same model.
    assert cand1["prediction_hash"] == cand2["prediction_hash"]
    # An identical retrain is registered as challenger but does not take the champion alias.
    assert registered2["promoted"] is False
    assert str(client.get_model_version_by_alias("loan_default", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("loan_default", "challenger").version) == "2"
