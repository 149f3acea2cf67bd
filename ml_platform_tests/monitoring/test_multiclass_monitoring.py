"""Monitoring a multiclass champion (issue 17): realized macro F1, accuracy and log loss (from
the champion's probabilities) checked against scikit-learn; prediction drift on the predicted
class as a category; no estimate before labels (that is binary only)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from ml_platform.monitoring.analyze import analyze_batch
from ml_platform.monitoring.performance import realized_metrics, true_class_probability
from ml_platform.monitoring.reference import ChampionReference
from ml_platform.monitoring.report import _metric, drift_history_png, markdown_report
from ml_platform.training import fitting
from ml_platform_tests.evaluation.test_multiclass import CLASSES, data, mc_spec


def test_realized_multiclass_metrics_equal_sklearn_inside_their_interval() -> None:
    rng = np.random.default_rng(3)
    y = rng.choice(CLASSES, 4_000, p=[0.5, 0.3, 0.2]).astype(float)
    logits = 1.5 * (y[:, None] == np.asarray(CLASSES)[None, :]) + rng.normal(0, 1, (4_000, 3))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = np.asarray(CLASSES, dtype=float)[proba.argmax(axis=1)]
    p_true = true_class_probability(y, proba, np.asarray(CLASSES))
    got = realized_metrics("multiclass_classification", y, pred, seed=0, true_class_proba=p_true)
    assert set(got) == {"macro_f1", "accuracy", "log_loss"}
    assert got["macro_f1"].value == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["accuracy"].value == pytest.approx(skm.accuracy_score(y, pred))
    assert got["log_loss"].value == pytest.approx(skm.log_loss(y, proba, labels=CLASSES))
    for m in got.values():
        assert m.low < m.value < m.high and m.rows == 4_000
    assert realized_metrics("multiclass_classification", y, pred, 0, true_class_proba=p_true) == got
    # A label the model has no class for: its probability is unknown, so no log loss.
    assert true_class_probability(np.array([3.0, 9.0]), proba[:2], np.asarray(CLASSES)) is None
    assert "log_loss" not in realized_metrics("multiclass_classification", y, pred, seed=0)


@pytest.fixture(scope="module")
def champion() -> tuple[ChampionReference, object]:
    spec = mc_spec(monitoring={"min_rows": 200})
    train = data(1_500, seed=4)
    model = fitting.fit(spec, train)
    created = datetime(2026, 12, 1, tzinfo=UTC)
    return ChampionReference("1", "run", created, train.iloc[:1_000], model), spec


def test_a_batch_is_judged_on_classes_and_probabilities(
    champion: tuple[ChampionReference, object], tmp_path: Path
) -> None:
    reference, spec = champion
    batch = data(1_000, seed=11)
    analysis = analyze_batch(spec, reference, batch, batch["kind"], "batch")  # type: ignore[arg-type]
    x = fitting.features_of(batch, spec)  # type: ignore[arg-type]
    proba, pred = reference.model.predict_proba(x), reference.model.predict(x)
    assert analysis.realized is not None and analysis.estimated is None
    realized = {k: v.value for k, v in analysis.realized.items()}
    assert realized["macro_f1"] == pytest.approx(skm.f1_score(batch["kind"], pred, average="macro"))
    assert realized["accuracy"] == pytest.approx(skm.accuracy_score(batch["kind"], pred))
    assert realized["log_loss"] == pytest.approx(skm.log_loss(batch["kind"], proba, labels=CLASSES))
    assert "rmse" not in realized and "r2" not in realized
    drift = analysis.drift.prediction
    assert drift is not None and drift.kind == "prediction"
    assert drift.statistic == "jensen_shannon" and not drift.drifted, drift.reason

    # Mostly class 7 now: the predicted classes' mix moves, and the prediction drifts.
    shifted = pd.concat([batch[batch["kind"] == 7.0]] * 3 + [batch.head(200)], ignore_index=True)
    moved = analyze_batch(spec, reference, shifted, None, "shifted")  # type: ignore[arg-type]
    assert moved.drift.prediction is not None and moved.drift.prediction.drifted
    assert moved.realized is None and moved.estimated is None  # no labels, no estimate

    # The report and the drift-history plot show them: macro F1 is the metric panel.
    history = [analysis.to_dict(), moved.to_dict()]
    assert _metric(history) == "macro_f1"
    assert "macro_f1" in markdown_report(analysis)
    assert "| prediction | prediction | jensen_shannon |" in markdown_report(moved)
    assert drift_history_png(history, tmp_path / "drift.png").stat().st_size > 10_000
