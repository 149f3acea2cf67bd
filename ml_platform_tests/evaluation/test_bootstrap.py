"""Paired bootstrap: the weighted AUC equals sklearn's, ties included; CIs separate real gaps."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ml_platform.evaluation.bootstrap import _score_groups, _weighted_auc, paired_bootstrap


def test_weighted_auc_matches_sklearn_with_ties_and_weights() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    scores = np.round(rng.random(400) + 0.3 * y, 1)  # coarse: many ties
    w = rng.integers(0, 4, 400).astype(float)
    expected = roc_auc_score(np.repeat(y, w.astype(int)), np.repeat(scores, w.astype(int)))
    assert _weighted_auc(y, _score_groups(scores), w) == pytest.approx(expected)
    constant = np.full(400, 0.2)
    assert _weighted_auc(y, _score_groups(constant), np.ones(400)) == pytest.approx(0.5)


def test_ci_separates_a_better_model_and_covers_zero_for_the_same_model() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2_000)
    good = y + rng.normal(0, 0.6, 2_000)
    weak = y + rng.normal(0, 1.5, 2_000)
    better = paired_bootstrap("roc_auc", y, good, weak, samples=200, seed=3)
    assert better.diff > 0 and better.ci_low > 0
    same = paired_bootstrap("roc_auc", y, good, good, samples=200, seed=3)
    assert same.diff == 0 and same.ci_low == same.ci_high == 0
    # Lower-is-better metrics are oriented so positive still means "challenger better".
    p_good, p_weak = 1 / (1 + np.exp(-3 * (good - 0.5))), 1 / (1 + np.exp(-(weak - 0.5)))
    brier = paired_bootstrap("brier", y, p_good, p_weak, samples=100, seed=3)
    assert brier.diff > 0 and brier.ci_low > 0
