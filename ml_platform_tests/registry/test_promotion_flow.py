"""End to end on small data: the first model is promoted through the asset graph; a candidate
trained on shuffled labels is never registered and its checks say why; a corrupt artifact
fails infra validation; a better candidate is promoted; the CLI rolls back and re-promotes."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ml_platform.cli import app
from ml_platform.components.gates import gate_results
from ml_platform.evaluation import evaluate
from ml_platform.features.tables import TableInfo
from ml_platform.home import PlatformHome
from ml_platform.registry import register
from ml_platform.registry.ledger import CHALLENGER, CHAMPION, PromotionLedger
from ml_platform.spec import PipelineSpec
from ml_platform.training import fitting, train
from ml_platform.training.tracking import Tracking
from ml_platform_tests.helpers import materialize, small_spec

NAME = "loan_default"


def _spec(**model: object) -> PipelineSpec:
    """One trial, a cheap bootstrap; ``model`` overrides the estimator's fixed params. The
    holdout here is ~900 rows, so the champion margin is widened to what such a holdout can
    resolve (a +0.026 AUC gain had a 95% CI of [-0.015, +0.075])."""
    spec = small_spec(n_trials=1)
    gates = spec.gates.model_copy(update={"bootstrap_samples": 200, "champion_margin": 0.03})
    if not model:
        return spec.model_copy(update={"gates": gates})
    weak = spec.model.model_copy(
        update={"search_space": {}, "params": {"early_stopping": False, **model}}
    )
    # The weak first champion only needs the absolute floor, not the baselines.
    gates = gates.model_copy(update={"beat_baseline": False, "min_metrics": {"roc_auc": 0.55}})
    return spec.model_copy(update={"model": weak, "gates": gates})


def _shuffled_training_set(spec: PipelineSpec, tset: TableInfo, path: Path) -> TableInfo:
    """Labels shuffled before the holdout window only: the holdout keeps the true labels,
    so the champion is judged fairly on the same rows."""
    frame = pd.read_parquet(tset.path)
    start = pd.Timestamp(fitting.time_split(frame, spec).test_window["start"])
    before = frame[spec.event_timestamp] < start
    labels = frame.loc[before, spec.label].to_numpy()
    frame.loc[before, spec.label] = np.random.default_rng(0).permutation(labels)
    frame.to_parquet(path, index=False)
    return dataclasses.replace(tset, path=str(path), data_version="shuffled-labels")


def _corrupt_copy(tracking: Tracking, candidate: train.Candidate, dst: Path) -> train.Candidate:
    # A copy: a local store's model directory is handed out where it is.
    local = Path(shutil.copytree(tracking.local_model_dir(candidate.model_uri), dst))
    for artifact in local.glob("model.*"):
        artifact.write_bytes(b"\x00corrupt")
    return dataclasses.replace(candidate, model_uri=str(local))


def _versions(tracking: Tracking) -> list[str]:
    return sorted(
        str(mv.version) for mv in tracking.client.search_model_versions(f"name = '{NAME}'")
    )


def _champion(tracking: Tracking) -> str | None:
    mv = tracking.version_by_alias(NAME, CHAMPION)
    return None if mv is None else str(mv.version)


@pytest.mark.slow
def test_gates_keep_bad_candidates_out_and_promote_a_better_one(
    home: PlatformHome, landed: list[Path], tmp_path: Path
) -> None:
    # 1. The first model, through the asset graph: registered, challenger, then champion.
    result = materialize(_spec(max_iter=4, learning_rate=0.05, max_leaf_nodes=4), home)
    assert result.success
    meta = result.asset_materializations_for_node(f"{NAME}_evaluation_report")[0].metadata
    for plot in ("calibration", "confusion_matrix", "permutation_importance"):
        assert Path(meta[f"plot_{plot}"].value).read_bytes().startswith(b"\x89PNG")
    assert "## Gates" in Path(meta["model_card"].value).read_text()
    tracking = Tracking(home.tracking_uri, home.artifact_root)
    ledger = PromotionLedger(home.ledger_db, tracking)
    assert _champion(tracking) == ledger.champion(NAME) == "1"
    tset = TableInfo(**result.asset_value(dg.AssetKey(f"{NAME}_training_set")))
    spec = _spec()

    # 2. Trained on shuffled labels: every quality gate fails, with the reason.
    bad_set = _shuffled_training_set(spec, tset, tmp_path / "shuffled.parquet")
    bad = train.train_candidate(spec, home, tracking, bad_set, {})
    report = evaluate.evaluate(
        spec, home, tracking, bad, Path(bad_set.path), champion_version=ledger.champion(NAME)
    )
    failed = {g.name: g.message for g in report.failed_gates}
    assert {"roc_auc_above_floor", "beats_dummy_baseline", "not_worse_than_champion"} <= set(
        failed
    ), failed
    assert "floor 0.65" in failed["roc_auc_above_floor"]
    assert "vs champion v1" in failed["not_worse_than_champion"]
    checks = {c.check_name: c for c in gate_results(spec, report)}
    assert not checks["beats_dummy_baseline"].passed
    assert "not above 0" in (checks["beats_dummy_baseline"].description or "")
    with pytest.raises(ValueError, match="failed its gates"):
        register.register(spec, tracking, ledger, bad, report, {})
    register.record_rejection(spec, ledger, report, {"dagster_run_id": "test"})
    assert _versions(tracking) == ["1"] and ledger.champion(NAME) == "1"
    assert ledger.history(NAME)[-1].action == "reject"

    # 3. A better candidate: passes, is registered and promoted over v1.
    good = train.train_candidate(spec, home, tracking, tset, {})
    report = evaluate.evaluate(
        spec, home, tracking, good, Path(tset.path), champion_version=ledger.champion(NAME)
    )
    assert report.passed, [g.message for g in report.failed_gates]
    assert report.champion_version == "1" and Path(report.model_card).exists()
    reg = register.register(spec, tracking, ledger, good, report, {"dagster_run_id": "t"})
    assert (reg.version, reg.promoted) == ("2", True), reg
    assert _champion(tracking) == ledger.champion(NAME) == "2"
    assert tracking.version_by_alias(NAME, CHALLENGER) is None
    assert "# Model card" in (tracking.client.get_model_version(NAME, "2").description or "")

    # 4. The same model with a corrupt artifact fails infra validation; nothing registered.
    broken = _corrupt_copy(tracking, good, tmp_path / "corrupt")
    report = evaluate.evaluate(
        spec, home, tracking, broken, Path(tset.path), champion_version=ledger.champion(NAME)
    )
    assert not report.passed
    assert not report.gate("infra_valid").passed
    assert "fresh process" in report.gate("infra_valid").message
    with pytest.raises(ValueError, match="infra_valid"):
        register.register(spec, tracking, ledger, broken, report, {})
    assert _versions(tracking) == ["1", "2"]

    # 5. Operators: rollback, then promote again, through the CLI; always consistent.
    runner = CliRunner()
    out = runner.invoke(app, ["models", "rollback", NAME, "--reason", "test rollback"])
    assert out.exit_code == 0, out.output
    assert _champion(tracking) == ledger.champion(NAME) == "1"
    out = runner.invoke(app, ["models", "promote", NAME, "2", "--reason", "re-promote"])
    assert out.exit_code == 0, out.output
    assert _champion(tracking) == ledger.champion(NAME) == "2"
    out = runner.invoke(app, ["models", "promote", NAME, "1", "--reason", "x"])
    assert out.exit_code == 0  # v1 passed its (weaker) gates; promotion is a human call
    assert ledger.consistency(NAME) == []
    out = runner.invoke(app, ["models", "history", NAME])
    assert out.exit_code == 0 and "reject" in out.output and "rollback" in out.output
