"""The gate in Dagster: a failing batch records both check evaluations with their metadata in
the instance, fails the step, materializes nothing downstream, registers no model version and
leaves the last good validated batch in place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_platform.home import PlatformHome
from ml_platform.ingest.datagen import GeneratorConfig, land
from ml_platform.ingest.io import file_hash, write_parquet
from ml_platform_tests.helpers import SMALL, materialize, small_spec

pytestmark = pytest.mark.slow
DOWNSTREAM = (
    "features",
    "training_set",
    "candidate_model",
    "evaluation_report",
    "registered_model",
)
CHECKS = ("schema_rules_hold", "distributions_within_bounds")


def _evaluation(instance: dg.DagsterInstance, check: str) -> dg.AssetCheckEvaluation:
    key = dg.AssetCheckKey(dg.AssetKey("loan_default_validated"), check)
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    return record.event.dagster_event.event_specific_data


def _assert_stopped_at_gate(
    result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance, home: PlatformHome
) -> None:
    assert not result.success
    for stage in DOWNSTREAM:
        assert (
            instance.get_latest_materialization_event(dg.AssetKey(f"loan_default_{stage}")) is None
        ), stage
    assert not (home.pipeline_dir("loan_default") / "features.parquet").exists()
    assert not list(home.artifact_root.rglob("MLmodel"))  # no model logged, none registered
    assert not (home.mlflow_dir / "mlflow.db").exists()


def _land_bad_day(home: PlatformHome, **changes: object) -> Path:
    day = sorted((home.landing / "loan_default").glob("*.parquet"))[-1]
    frame = pd.read_parquet(day).assign(**changes)
    return write_parquet(frame, home.landing / "loan_default" / "applications_2099-01-01.parquet")


def test_bad_batch_records_checks_and_stops(landed: list[Path], home: PlatformHome) -> None:
    _land_bad_day(home, credit_score=9_999)
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(small_spec(), home, instance)
    _assert_stopped_at_gate(result, instance, home)
    schema = _evaluation(instance, "schema_rules_hold")
    assert not schema.passed and schema.blocking
    failures = schema.metadata["failures"].value
    (failure,) = [f for f in failures if f["rule"] == "in_range"]
    assert failure["column"] == "credit_score" and failure["sample"][0] == 9999
    assert failure["failing_rows"] > 0 and 0 < failure["failing_fraction"] < 1
    assert Path(schema.metadata["report"].value).is_file()
    dist = _evaluation(instance, "distributions_within_bounds")
    assert Path(dist.metadata["data_docs"].value).name == "index.html"
    assert Path(dist.metadata["data_docs"].value).is_file()
    assert dist.metadata["data_docs_validation"].value.startswith("file://")


def test_failed_batch_keeps_the_last_good_one(landed: list[Path], home: PlatformHome) -> None:
    instance = dg.DagsterInstance.ephemeral()
    first = materialize(small_spec(), home, instance, selection="*loan_default_validated")
    assert first.success
    key = dg.AssetKey("loan_default_validated")
    meta = instance.get_latest_materialization_event(key).asset_materialization.metadata
    validated = Path(meta["path"].value)
    good = file_hash(validated)
    assert meta["rows_in"].value == meta["rows_valid"].value > 0
    assert meta["rows_quarantined"].value == 0
    assert all(_evaluation(instance, c).passed for c in CHECKS)
    assert Path(meta["data_docs"].value).is_file()  # GX Data Docs index under the home

    _land_bad_day(home, purpose="crypto")
    second = materialize(small_spec(), home, instance)
    assert not second.success
    assert file_hash(validated) == good
    latest = instance.get_latest_materialization_event(key).asset_materialization.metadata
    assert latest["path"].value == str(validated)  # no new batch published
    assert not _evaluation(instance, "schema_rules_hold").passed


def test_distribution_shift_stops_the_run(home: PlatformHome) -> None:
    cfg = GeneratorConfig(events=SMALL.events, days=SMALL.days, seed=SMALL.seed, drift=0.8)
    land(cfg, home.landing / "loan_default")
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(small_spec(), home, instance)
    _assert_stopped_at_gate(result, instance, home)
    dist = _evaluation(instance, "distributions_within_bounds")
    assert not dist.passed
    assert "psi_distance(purpose)" in dist.metadata["message"].value


def test_corrupt_file_stops_the_run_naming_it(landed: list[Path], home: PlatformHome) -> None:
    bad = landed[5]
    bad.write_bytes(bad.read_bytes()[:200])
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(small_spec(), home, instance)
    _assert_stopped_at_gate(result, instance, home)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert str(bad) in str(failure.step_failure_data.error.to_string())


def _drop_amount(home: PlatformHome) -> str:
    day = sorted((home.landing / "loan_default").glob("*.parquet"))[-1]
    pd.read_parquet(day).drop(columns=["amount"]).to_parquet(day)
    return "not_null(amount)"  # the union of files fills the missing column with nulls


def _copy_a_day(home: PlatformHome) -> str:
    day = sorted((home.landing / "loan_default").glob("*.parquet"))[-1]
    (day.parent / "applications_2099-12-31.parquet").write_bytes(day.read_bytes())
    return "unique_key(customer_id,applied_at)"


def _future_day(home: PlatformHome) -> str:
    future = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=3)
    _land_bad_day(home, applied_at=future)
    return "not_future(applied_at)"


def _collapse(home: PlatformHome) -> str:
    for day in sorted((home.landing / "loan_default").glob("*.parquet"))[4:]:
        day.unlink()
    return "row_count"


FILE_CASES = [_drop_amount, _copy_a_day, _future_day, _collapse]


@pytest.mark.parametrize("break_landing", FILE_CASES, ids=[c.__name__[1:] for c in FILE_CASES])
def test_landed_defect_stops_the_run(
    break_landing: Callable[[PlatformHome], str], landed: list[Path], home: PlatformHome
) -> None:
    expected = break_landing(home)
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(small_spec(), home, instance)
    _assert_stopped_at_gate(result, instance, home)
    messages = " ".join(_evaluation(instance, c).metadata["message"].value for c in CHECKS)
    assert expected in messages
