"""Realized metrics with bootstrap intervals, and the confidence-based estimate from calibrated
probabilities (no labels) against the realized metric."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn import metrics as skm

from ml_platform.monitoring.performance import (
    MAX_BOOTSTRAP_ROWS,
    estimated_performance,
    expected_roc_auc,
    prior_corrected,
    realized_metrics,
)


def _calibrated(n: int, seed: int, a: float = 1.5, b: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores p and labels drawn Bernoulli(p): calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = rng.beta(a, b, n)
    return p, (rng.random(n) < p).astype(int)


def test_realized_binary_metrics_equal_sklearn_inside_their_interval() -> None:
    p, y = _calibrated(5_000, 1)
    got = realized_metrics("binary_classification", y, p, seed=0)
    assert set(got) == {"roc_auc", "accuracy", "brier"}
    assert got["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, p))
    assert got["accuracy"].value == pytest.approx(skm.accuracy_score(y, p >= 0.5))
    assert got["brier"].value == pytest.approx(skm.brier_score_loss(y, p))
    for m in got.values():
        assert m.low < m.value < m.high and m.rows == 5_000
    assert 0.01 < got["roc_auc"].high - got["roc_auc"].low < 0.06  # ~4 standard errors
    again = realized_metrics("binary_classification", y, p, seed=0)
    assert again == got  # seeded


def test_realized_auc_counts_ties_as_sklearn_does() -> None:
    p, y = _calibrated(2_000, 2)
    coarse = np.round(p, 1)
    got = realized_metrics("binary_classification", y, coarse, seed=0)["roc_auc"].value
    assert got == pytest.approx(skm.roc_auc_score(y, coarse))


def test_realized_regression_metrics() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=3_000)
    pred = y + rng.normal(0, 0.5, 3_000)
    got = realized_metrics("regression", y, pred, seed=0)
    assert got["rmse"].value == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert got["mae"].value == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["r2"].value == pytest.approx(skm.r2_score(y, pred))
    assert got["rmse"].low < got["rmse"].value < got["rmse"].high


def test_large_batches_bootstrap_a_subsample_with_a_rescaled_interval() -> None:
    """The interval from a 50k subsample, scaled by sqrt(50k / n), matches the width the
    normal approximation gives for the full batch."""
    n = 4 * MAX_BOOTSTRAP_ROWS
    p, y = _calibrated(n, 4)
    acc = realized_metrics("binary_classification", y, p, seed=0)["accuracy"]
    expected_width = 2 * 1.96 * np.sqrt(acc.value * (1 - acc.value) / n)
    assert acc.high - acc.low == pytest.approx(expected_width, rel=0.25)


def test_no_labels_no_metrics_and_one_class_gives_no_auc() -> None:
    assert realized_metrics("binary_classification", np.array([]), np.array([]), seed=0) == {}
    got = realized_metrics("binary_classification", np.ones(50), np.linspace(0, 1, 50), seed=0)
    assert np.isnan(got["roc_auc"].value) and got["roc_auc"].to_dict()["value"] is None


def test_expected_auc_equals_the_average_over_drawn_labels() -> None:
    """Exact: the mean AUC over many label draws Bernoulli(p) agrees to Monte Carlo error."""
    rng = np.random.default_rng(5)
    p = np.round(rng.beta(2, 5, 300), 2)  # ties included
    labels = rng.random((20_000, 300)) < p  # one label draw per row
    ranks = rankdata(p)  # Mann-Whitney: AUC from the positives' mid-ranks
    positives = labels.sum(axis=1)
    draws = ((labels * ranks).sum(axis=1) - positives * (positives + 1) / 2) / (
        positives * (300 - positives)
    )
    assert draws[0] == pytest.approx(skm.roc_auc_score(labels[0], p))
    standard_error = np.std(draws) / np.sqrt(len(draws))
    assert expected_roc_auc(p) == pytest.approx(np.mean(draws), abs=4 * standard_error + 1e-3)


def test_estimated_performance_is_close_to_realized_on_calibrated_data() -> None:
    p, y = _calibrated(20_000, 6)
    estimate = estimated_performance(p)
    realized = realized_metrics("binary_classification", y, p, seed=0)
    for metric in ("roc_auc", "accuracy", "brier"):
        got = realized[metric]  # the labels are one draw: the estimate is their expectation
        assert abs(estimate[metric] - got.value) <= got.high - got.low, (metric, estimate, got)
    pred = p >= 0.5
    assert estimate["precision"] == pytest.approx(skm.precision_score(y, pred), abs=0.03)
    assert estimate["recall"] == pytest.approx(skm.recall_score(y, pred), abs=0.03)


def test_the_estimate_follows_a_covariate_shift_but_not_miscalibration() -> None:
    """Easier inputs (scores pushed to the extremes) raise the estimate as they raise the
    realized AUC; probabilities that are not calibrated (squashed) leave the estimate wrong,
    which is why it is only used until labels arrive."""
    p, y = _calibrated(20_000, 7, a=0.5, b=1.5)
    assert expected_roc_auc(p) == pytest.approx(skm.roc_auc_score(y, p), abs=0.01)
    squashed = 0.4 + 0.2 * p  # same ranking, so the same realized AUC
    assert skm.roc_auc_score(y, squashed) == pytest.approx(skm.roc_auc_score(y, p))
    assert expected_roc_auc(squashed) < skm.roc_auc_score(y, p) - 0.2


def test_estimates_of_an_empty_batch() -> None:
    assert estimated_performance(np.array([])) == {}
    one_side = estimated_performance(np.full(10, 0.2))
    assert np.isnan(one_side["precision"]) and one_side["accuracy"] == pytest.approx(0.8)


def test_balanced_probabilities_are_put_back_on_the_prior() -> None:
    """A model trained with balanced weights reports odds times (1 - prior) / prior; the
    correction recovers the calibrated probability, and the estimate made with it matches the
    realized metrics of the model's own decisions (scores >= 0.5)."""
    p, y = _calibrated(40_000, 8, a=1.0, b=5.0)
    prior = float(y.mean())
    odds = p / (1 - p) * (1 - prior) / prior
    balanced = odds / (1 + odds)
    assert np.allclose(prior_corrected(balanced, prior), p)
    estimate = estimated_performance(balanced, prior_corrected(balanced, prior))
    realized = realized_metrics("binary_classification", y, balanced, seed=0)
    for metric in ("roc_auc", "accuracy", "brier"):
        got = realized[metric]
        assert abs(estimate[metric] - got.value) <= got.high - got.low, (metric, estimate, got)
    decided = balanced >= 0.5
    assert estimate["precision"] == pytest.approx(y[decided].mean(), abs=0.02)
    assert estimate["recall"] == pytest.approx(decided[y == 1].mean(), abs=0.02)
    naive = estimated_performance(balanced)  # taking the balanced scores at face value
    got = realized["accuracy"]
    assert abs(naive["accuracy"] - got.value) > 3 * (got.high - got.low), (naive, got)
    assert abs(naive["precision"] - y[decided].mean()) > 0.1
