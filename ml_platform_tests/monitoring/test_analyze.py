"""One batch judged end to end on a tiny fitted champion (no MLflow): drift, quality,
performance with and without labels, the Markdown report and the drift-history plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_platform.monitoring.analyze import analyze_batch
from ml_platform.monitoring.reference import score
from ml_platform.monitoring.report import drift_history_png, markdown_report
from ml_platform_tests.monitoring.helpers import labelled, tiny_champion, tiny_spec


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return labelled(np.random.default_rng(30), 20_000)


def test_a_stable_batch_is_not_breached(reference: pd.DataFrame) -> None:
    spec = tiny_spec()
    champion = tiny_champion(spec, reference)
    batch = labelled(np.random.default_rng(31), 2_000)
    analysis = analyze_batch(spec, champion, batch, batch["label"], "2026-03-01")
    assert not analysis.breached and analysis.reasons == [], analysis.reasons
    assert analysis.champion_version == "3" and analysis.rows == 2_000
    assert analysis.drift.prediction is not None and not analysis.drift.prediction.drifted
    assert analysis.realized is not None and analysis.estimated is not None
    assert analysis.labelled_rows == 2_000
    # a calibrated logistic model: the estimate is near the realized AUC
    auc = analysis.realized["roc_auc"]
    assert abs(analysis.estimated["roc_auc"] - auc.value) < auc.high - auc.low
    payload = json.loads(json.dumps(analysis.to_dict(), allow_nan=False))
    assert payload["breached"] is False and payload["realized"]["roc_auc"]["low"] < auc.value


def test_a_balanced_champions_estimate_uses_the_training_prior() -> None:
    """A rare positive class (about 10%): balanced weights move the probabilities far from
    the prior, and the estimate is right only after they are put back on it."""
    spec = tiny_spec()
    spec = spec.model_copy(
        update={"model": spec.model.model_copy(update={"balance_classes": True})}
    )
    reference = labelled(np.random.default_rng(36), 20_000, intercept=-3.0)
    champion = tiny_champion(spec, reference)
    batch = labelled(np.random.default_rng(35), 5_000, intercept=-3.0)
    analysis = analyze_batch(spec, champion, batch, batch["label"], "balanced")
    assert analysis.realized is not None and analysis.estimated is not None
    assert reference["label"].mean() < 0.15
    for metric in ("accuracy", "brier", "roc_auc"):
        got = analysis.realized[metric]
        assert abs(analysis.estimated[metric] - got.value) <= got.high - got.low, metric
    # precision and recall of the model's own decisions tell the corrected estimate apart
    positive = score(champion.model, batch, spec) >= 0.5
    y = batch["label"].to_numpy() == 1
    assert analysis.estimated["precision"] == pytest.approx(y[positive].mean(), abs=0.03)
    assert analysis.estimated["recall"] == pytest.approx(positive[y].mean(), abs=0.05)


def test_a_shifted_batch_names_its_drift_and_quality_breaches(reference: pd.DataFrame) -> None:
    spec = tiny_spec()
    champion = tiny_champion(spec, reference)
    batch = labelled(np.random.default_rng(32), 2_000, shifts={"x0": 1.0})
    batch.loc[:199, "c0"] = "never-seen"
    analysis = analyze_batch(spec, champion, batch, None, "2026-03-02")
    assert analysis.breached
    assert analysis.drift.drifted_features == ["x0", "c0"]
    assert analysis.drift.prediction is not None and analysis.drift.prediction.drifted
    assert analysis.realized is None and analysis.labelled_rows == 0
    reasons = analysis.reasons
    assert reasons[0].startswith("drift in x0: ") and "Holm p" in reasons[0]
    assert any(r.startswith("drift in prediction: psi") for r in reasons)
    assert any(r.startswith("c0: 10.0% of rows with a category unseen") for r in reasons)


def test_performance_below_the_floor_realized_wins_over_estimated(reference: pd.DataFrame) -> None:
    spec = tiny_spec(min_performance={"roc_auc": 0.9})
    champion = tiny_champion(spec, reference)
    batch = labelled(np.random.default_rng(33), 1_000)
    without = analyze_batch(spec, champion, batch, None, "no labels")
    assert without.performance_breaches[0].startswith("estimated roc_auc 0.")
    assert without.performance_breaches[0].endswith("below the floor 0.9")
    flipped = 1 - batch["label"]  # concept drift: only labels can show it
    with_labels = analyze_batch(spec, champion, batch, flipped, "labels")
    (breach,) = with_labels.performance_breaches
    assert breach.startswith("realized roc_auc 0.") and "95% CI" in breach
    assert with_labels.realized is not None and with_labels.realized["roc_auc"].value < 0.5
    partial = batch["label"].astype("float64").where(batch.index < 100)  # 100 labels < min_rows
    few = analyze_batch(spec, champion, batch, partial, "few labels")
    assert few.labelled_rows == 100 and few.performance_breaches[0].startswith("estimated")


def test_the_gates_floor_is_the_default(reference: pd.DataFrame) -> None:
    spec = tiny_spec()  # gates.min_metrics roc_auc 0.6, met by this model
    champion = tiny_champion(spec, reference)
    batch = labelled(np.random.default_rng(34), 1_000)
    assert analyze_batch(spec, champion, batch, None, "x").performance_breaches == []
    spec = spec.model_copy(
        update={"gates": spec.gates.model_copy(update={"min_metrics": {"roc_auc": 0.95}})}
    )
    assert analyze_batch(spec, champion, batch, None, "x").performance_breaches


def test_report_and_plot(reference: pd.DataFrame, tmp_path: Path) -> None:
    spec = tiny_spec()
    champion = tiny_champion(spec, reference)
    history = []
    for day in range(6):
        shift = {"x0": 0.2 * day}
        batch = labelled(np.random.default_rng(40 + day), 1_000, shifts=shift)
        analysis = analyze_batch(spec, champion, batch, batch["label"], f"2026-03-0{day + 1}")
        history.append(analysis.to_dict())
    text = markdown_report(analysis)
    assert text.startswith("## Batch 2026-03-06: 1000 rows vs champion v3")
    assert "| feature | kind | statistic | value | threshold | p adj (Holm) | drifted |" in text
    assert "| x0 | numeric | wasserstein |" in text and "**yes**" in text
    assert "| roc_auc |" in text and "### Data quality" in text
    png = drift_history_png(history, tmp_path / "plots" / "drift.png")
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 20_000


def test_write_reference_keeps_the_columns_and_a_seeded_sample(
    reference: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml_platform.monitoring import reference as module
    from ml_platform.training import reference as written_by_training

    monkeypatch.setattr(written_by_training, "MAX_ROWS", 1_000)
    spec = tiny_spec()
    frame = reference.assign(extra=1)
    first = pd.read_parquet(module.write_reference(frame, spec, tmp_path / "a" / "r.parquet"))
    again = pd.read_parquet(module.write_reference(frame, spec, tmp_path / "b" / "r.parquet"))
    assert list(first.columns) == ["key", "ts", "label", "x0", "x1", "x2", "x3", "c0"]
    assert len(first) == 1_000 and first.equals(again)
    assert first["key"].is_monotonic_increasing  # the sample keeps the training order


def test_precomputed_scores_give_the_same_analysis(reference: pd.DataFrame) -> None:
    spec = tiny_spec()
    champion = tiny_champion(spec, reference)
    batch = labelled(np.random.default_rng(37), 1_000, shifts={"x0": 0.5})
    own = analyze_batch(spec, champion, batch, None, "b").to_dict()
    given = score(champion.model, batch, spec)
    assert analyze_batch(spec, champion, batch, None, "b", given).to_dict() == own
    with pytest.raises(ValueError, match="999 scores for a batch of 1000 rows"):
        analyze_batch(spec, champion, batch, None, "b", given[1:])


def test_the_reference_drops_rows_whose_aggregate_windows_were_not_full() -> None:
    """Rows within the longest aggregate window of the first event were computed on less
    history than any later batch: kept, they make every new batch drift on the aggregates."""
    from ml_platform.monitoring.reference import steady_state
    from ml_platform_tests.helpers import small_spec

    spec = small_spec()  # the demo's longest aggregate window: 90 days
    stamps = pd.date_range("2026-01-01", periods=400, freq="12h", tz="UTC")
    frame = pd.DataFrame({spec.event_timestamp: stamps, "x": range(400)})
    kept = steady_state(frame, spec)
    assert kept[spec.event_timestamp].min() == pd.Timestamp("2026-04-01", tz="UTC")
    assert len(kept) == 220
    # Fewer settled rows than min_rows (200): everything is kept.
    assert len(steady_state(frame.head(350), spec)) == 350
    no_windows = spec.model_copy(
        update={"features": spec.features.model_copy(update={"aggregates": []})}
    )
    assert steady_state(frame, no_windows).equals(frame)
