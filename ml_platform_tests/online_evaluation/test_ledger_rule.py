"""A challenger under an online test is promoted by no path until its latest online evidence
passed (the ledger's ``required_once_recorded`` rule); --force overrides, recorded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ml_platform.home import PlatformHome
from ml_platform.registry.ledger import (
    OFFLINE_GATES,
    ONLINE_TEST,
    PromotionLedger,
    PromotionRefused,
)
from ml_platform.training.tracking import Tracking

MODEL = "loan_default"


@pytest.fixture(scope="module")
def empty_tracking_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    Tracking(f"sqlite:///{db}").client.search_registered_models()
    return db


@pytest.fixture
def ledger_and_versions(
    home: PlatformHome, empty_tracking_db: Path
) -> tuple[PromotionLedger, list[str]]:
    home.mlflow_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty_tracking_db, home.mlflow_dir / "mlflow.db")
    tracking = Tracking(home.tracking_uri, artifact_root=home.artifact_root)
    source = home.root / "artifact"
    source.mkdir(exist_ok=True)
    tracking.client.create_registered_model(MODEL)
    versions = [str(tracking.client.create_model_version(MODEL, str(source)).version) for _ in "ab"]
    ledger = PromotionLedger(home.ledger_db, tracking)
    for v in versions:
        ledger.add_evidence(MODEL, v, OFFLINE_GATES, True, "all gates passed")
    ledger.promote(MODEL, versions[0], "first model")
    return ledger, versions


def test_pending_online_test_blocks_promotion_until_it_passes(
    ledger_and_versions: tuple[PromotionLedger, list[str]],
) -> None:
    ledger, (_, v2) = ledger_and_versions
    ledger.add_evidence(MODEL, v2, ONLINE_TEST, False, "insufficient_data: 12 of 1000 rows")
    with pytest.raises(PromotionRefused, match="'online_test' failed .*insufficient_data"):
        ledger.promote(MODEL, v2, "looks good offline")
    passed = ledger.add_evidence(MODEL, v2, ONLINE_TEST, True, "not_worse")
    decision = ledger.promote(MODEL, v2, "online test passed")
    assert passed in decision.evidence_ids and ledger.champion(MODEL) == v2


def test_force_overrides_and_is_recorded(
    ledger_and_versions: tuple[PromotionLedger, list[str]],
) -> None:
    ledger, (_, v2) = ledger_and_versions
    ledger.add_evidence(MODEL, v2, ONLINE_TEST, False, "worse")
    decision = ledger.promote(MODEL, v2, "operator override", force=True)
    assert decision.action == "force_promote" and decision.forced


def test_a_version_never_under_an_online_test_needs_only_its_gates(
    ledger_and_versions: tuple[PromotionLedger, list[str]],
) -> None:
    ledger, (_, v2) = ledger_and_versions
    assert ledger.promote(MODEL, v2, "offline only").action == "promote"
