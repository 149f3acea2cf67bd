"""The MLflow run has everything, written through an explicit client (no fluent global state);
with the tracking store down nothing trains or registers."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.entities import LoggedModelStatus
from mlflow.tracking import MlflowClient

from ml_platform.features.tables import TableInfo
from ml_platform.home import PlatformHome
from ml_platform.ingest.versioning import code_version
from ml_platform.training import fitting, train
from ml_platform.training.tracking import BackgroundWriter, Tracking, TrackingUnavailable
from ml_platform_tests.helpers import materialize, small_spec
from ml_platform_tests.training.helpers import training_spec

DAGSTER_TAGS = {
    "dagster_run_id": "r-123",
    "dagster_asset_key": "loan_default_candidate_model",
    "dagster_partition": "2026-03-01",
}


def closed_port_uri() -> str:
    """An http tracking URI on a local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_the_run_has_every_param_metric_tag_input_and_signature(
    home: PlatformHome, tracking: Tracking, training_set: TableInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train, "SCHEMA_SAMPLE_ROWS", 50)  # the schema comes from a sample
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    global_uri = mlflow.get_tracking_uri()
    spec = training_spec(n_trials=3)
    cand = train.train_candidate(spec, home, tracking, training_set, DAGSTER_TAGS)
    # Nothing global was touched: no active run, MLflow's URI and the environment as they were.
    assert mlflow.active_run() is None and mlflow.get_tracking_uri() == global_uri
    assert "MLFLOW_TRACKING_URI" not in os.environ
    client = MlflowClient(home.tracking_uri)
    run = client.get_run(cand.run_id)
    split = fitting.time_split(pd.read_parquet(training_set.path), spec)
    expected_params = {k: str(v) for k, v in train.run_params(spec, split).items()}
    expected_params |= {f"best.{k}": str(v) for k, v in cand.best_params.items()}
    assert run.data.params == expected_params
    assert set(cand.best_params) == set(spec.model.search_space)

    metrics = run.data.metrics
    assert {f"test_{k}": v for k, v in cand.test_metrics.items()}.items() <= metrics.items()
    assert metrics["best_val_roc_auc"] == pytest.approx(cand.validation_score)
    assert metrics["trials"] == 3 and "tuning_seconds" in metrics

    tags = run.data.tags
    assert DAGSTER_TAGS.items() <= tags.items()
    assert tags["code_version"] == code_version()
    assert tags["data_version"] == training_set.data_version
    assert tags["holdout_hash"] == cand.holdout["hash"]
    assert tags["prediction_hash"] == cand.prediction_hash
    assert tags["reproducibility_hash"] == cand.reproducibility_hash
    assert tags["optuna_study"] == cand.study_name
    assert tags["seed"] == str(spec.seed)

    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == training_set.data_version
    assert training_set.path in dataset_input.dataset.source
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"
    frame = pd.read_parquet(training_set.path)
    assert json.loads(dataset_input.dataset.profile)["num_rows"] == len(frame)
    assert json.loads(dataset_input.dataset.schema)["mlflow_colspec"] == json.loads(
        mlflow.data.from_pandas(frame).schema.to_json()
    )

    info = mlflow.models.Model.load(tracking.local_model_dir(cand.model_uri))
    assert info.signature.inputs.input_names() == spec.features.all_columns
    assert info.saved_input_example_info is not None
    # An MLflow 3 logged model, READY, output of the run, with the test metrics linked to it.
    model_id = cand.model_uri.removeprefix("models:/")
    logged = client.get_logged_model(model_id)
    assert logged.status.to_proto() == LoggedModelStatus.READY.to_proto()
    assert logged.source_run_id == cand.run_id and info.model_id == model_id
    assert [o.model_id for o in run.outputs.model_outputs] == [model_id]
    assert {m.key for m in logged.metrics} >= {f"test_{k}" for k in cand.test_metrics}
    assert run.info.status == "FINISHED"

    artifacts = {a.path for a in client.list_artifacts(cand.run_id, "plots")}
    assert "plots/optimization_history.png" in artifacts

    children = client.search_runs(
        [cand.experiment_id], f"tags.mlflow.parentRunId = '{cand.run_id}'"
    )
    assert sorted(int(c.data.tags["optuna_trial"]) for c in children) == [0, 1, 2]
    for child in children:
        assert set(child.data.params) == set(spec.model.search_space)
        if child.data.tags["optuna_state"] == "COMPLETE":
            assert "val_roc_auc" in child.data.metrics


def test_tracking_down_fails_clearly_before_any_work(
    home: PlatformHome, training_set: TableInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow's own HTTP retries would take minutes; ours (with backoff) are the ones under test.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    uri = closed_port_uri()
    down = Tracking(uri, attempts=2)
    with pytest.raises(TrackingUnavailable) as err:
        train.train_candidate(training_spec(), home, down, training_set, {})
    message = str(err.value)
    assert "unreachable" in message and uri in message and "2 attempts" in message
    assert not (home.pipeline_dir("loan_default") / "holdouts").exists()
    assert not Path(home.root / "optuna.db").exists()


@pytest.mark.slow
def test_pipeline_with_tracking_down_registers_nothing(
    home: PlatformHome, landed: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", closed_port_uri())
    result = materialize(small_spec(n_trials=1), home)
    assert not result.success
    failures = {e.step_key: e for e in result.all_events if e.is_step_failure}
    # Training, and monitoring (which looks the champion up in the registry), fail clearly.
    assert set(failures) == {"loan_default_candidate_model", "loan_default_monitoring_report"}
    failure = failures["loan_default_candidate_model"]
    assert "MLflow tracking store unreachable" in str(failure.step_failure_data.error)
    assert not result.asset_materializations_for_node("loan_default_registered_model")
    local = MlflowClient(home.tracking_uri, registry_uri=home.tracking_uri)
    assert local.search_registered_models() == []


def test_background_writer_runs_calls_in_order_and_close_waits_for_all() -> None:
    done: list[int] = []
    with BackgroundWriter() as writer:
        for i in range(20):
            writer.submit(lambda i=i: (time.sleep(0.001), done.append(i)))
    assert done == list(range(20))


def test_a_failed_tracking_call_stops_training_and_is_reported_as_itself() -> None:
    ran: list[str] = []
    queued = threading.Event()

    def fail() -> None:
        queued.wait()
        raise TrackingUnavailable("store gone")

    writer = BackgroundWriter()
    writer.submit(fail)
    writer.submit(lambda: ran.append("after"))
    queued.set()
    with pytest.raises(TrackingUnavailable, match="store gone"):
        writer.close()
    assert ran == []  # calls after a failure are not attempted
    with pytest.raises(TrackingUnavailable):  # the next trial's submit stops the search
        writer.submit(lambda: None)

    # A deterministic error is not dressed up as an unreachable store.
    writer = BackgroundWriter()
    writer.submit(lambda: {}["missing"])
    with pytest.raises(KeyError, match="missing"):
        writer.close()


def test_the_work_s_own_error_wins_over_a_tracking_error() -> None:
    with pytest.raises(ValueError, match="training broke"), BackgroundWriter() as writer:
        writer.submit(lambda: 1 / 0)
        raise ValueError("training broke")


def test_two_stores_in_one_process_do_not_leak_into_each_other(
    home: PlatformHome, training_set: TableInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each Tracking writes only to its own store; the user's MLFLOW_TRACKING_URI and MLflow's
    global URI stay what they were (the fluent API used to carry one run's store into the
    next run in the process)."""
    from ml_platform.resources import PlatformResource

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")  # the user's
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a leak fails fast
    spec = training_spec(n_trials=1)
    first = Tracking(home.tracking_uri, artifact_root=home.artifact_root)
    other_uri = f"sqlite:///{tmp_path / 'other.db'}"
    second = Tracking(other_uri, artifact_root=tmp_path / "other-artifacts")
    a = train.train_candidate(spec, home, first, training_set, {})
    b = train.train_candidate(spec, home, second, training_set, {})
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://tracking.example:5000"
    assert mlflow.get_tracking_uri() == "http://tracking.example:5000"
    assert {
        r.info.run_id
        for r in MlflowClient(home.tracking_uri).search_runs(
            [a.experiment_id], "attributes.run_name = 'loan_default-candidate'"
        )
    } == {a.run_id}
    assert [
        r.info.run_id
        for r in MlflowClient(other_uri).search_runs(
            [b.experiment_id], "attributes.run_name = 'loan_default-candidate'"
        )
    ] == [b.run_id]
    assert Path(second.local_model_dir(b.model_uri)).is_relative_to(tmp_path)

    second_home = tmp_path / "second-home"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert (
        PlatformResource(home=str(second_home))
        .tracking()
        .tracking_uri.startswith(f"sqlite:///{second_home}")
    )
