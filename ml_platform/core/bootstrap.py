"""Paired bootstrap of a metric difference between two models scored on the same rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ml_platform.core.metrics import higher_is_better, score


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

    def to_dict(self) -> dict:
        return asdict(self)


def _weighted_auc(y: np.ndarray, order: np.ndarray, w: np.ndarray) -> float:
    """ROC AUC with per-row bootstrap weights; ``order`` sorts the scores ascending (ties are
    rare for continuous scores and counted as a loss here, which biases both models alike)."""
    ys, ws = y[order], w[order]
    neg_below = np.cumsum(ws * (ys == 0)) - ws * (ys == 0)
    pos_w = ws * (ys == 1)
    total_pos, total_neg = pos_w.sum(), (ws * (ys == 0)).sum()
    if total_pos == 0 or total_neg == 0:
        return float("nan")
    return float((pos_w * neg_below).sum() / (total_pos * total_neg))


def paired_bootstrap(metric: str, y: np.ndarray, challenger: np.ndarray, champion: np.ndarray,
                     samples: int = 500, seed: int = 0, alpha: float = 0.05,
                     max_rows: int = 50_000) -> PairedComparison:
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
        order_a, order_b = np.argsort(a, kind="stable"), np.argsort(b, kind="stable")
        for i in range(samples):
            w = rng.multinomial(len(y), np.full(len(y), 1 / len(y))).astype(float)
            diffs[i] = _weighted_auc(y, order_a, w) - _weighted_auc(y, order_b, w)
    else:
        for i in range(samples):
            idx = rng.integers(0, len(y), len(y))
            diffs[i] = sign * (score(metric, y[idx], a[idx]) - score(metric, y[idx], b[idx]))
    diffs = diffs[~np.isnan(diffs)]
    low, high = (np.quantile(diffs, [alpha / 2, 1 - alpha / 2]) if len(diffs)
                 else (float("nan"), float("nan")))
    return PairedComparison(metric, point_a, point_b, sign * (point_a - point_b), float(low),
                            float(high), len(y), samples)
