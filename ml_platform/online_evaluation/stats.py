"""The statistics of online evaluation: metrics, bootstrap intervals, and the two tests.

Every comparison is of ``d``, the challenger's metric minus the champion's, oriented so that a
positive ``d`` means the challenger is better (for a loss such as log loss, ``d`` is the
champion's loss minus the challenger's). The non-inferiority question is whether ``d > -margin``.

- An estimate of ``d`` comes with its variance ``V``: analytic (``var / n``) for a metric that is
  a mean over rows (log loss, Brier, accuracy, MAE, MSE), from a bootstrap for the others (ROC
  AUC, RMSE, macro F1).
- Multiclass: the predictions compared are the logged ``label`` (the predicted class), not the
  score; ``accuracy`` is then the share of rows whose class is right (the statistic
  ``class_accuracy``) and ``macro_f1`` the unweighted mean of the per-class F1. Log loss needs
  the probability of the *true* class, which the prediction log does not keep (only the
  predicted class's), so it is not an online metric for multiclass.
- Shadow traffic pairs the arms on the same requests (paired bootstrap / variance of the per-row
  differences); A/B compares two independent samples.
- ``fixed``: a normal interval ``d ± z(1-alpha) sqrt(V)`` (each one-sided decision has error
  ``alpha``), judged once, at the horizon (the larger of ``min_samples`` and the sample size that
  gives ``power`` to show non-inferiority when the arms are equal).
- ``sequential``: the always-valid confidence sequence of the mixture SPRT (Johari, Pekelis and
  Walsh, "Always valid inference", 2017; Robbins' normal mixture) with mixing scale ``tau``: by
  Ville's inequality it misses the true ``d`` at *any* look with probability at most ``alpha``,
  so it may be judged after every batch of labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

# metric -> (per-row function of (y, score) or None, higher is better, task)
PER_ROW: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {}
EPS = 1e-15


def _log_loss_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    q = np.clip(p, EPS, 1 - EPS)
    return -(y * np.log(q) + (1 - y) * np.log(1 - q))


PER_ROW.update(
    log_loss=_log_loss_rows,
    brier=lambda y, p: (p - y) ** 2,
    accuracy=lambda y, p: ((p >= 0.5) == (y == 1)).astype("float64"),
    mae=lambda y, p: np.abs(p - y),
    mse=lambda y, p: (p - y) ** 2,
    class_accuracy=lambda y, p: (p == y).astype("float64"),
)
HIGHER_IS_BETTER = {
    "roc_auc": True,
    "accuracy": True,
    "log_loss": False,
    "brier": False,
    "mae": False,
    "mse": False,
    "rmse": False,
    "macro_f1": True,
    "class_accuracy": True,
}
CLASSIFICATION_METRICS = ("roc_auc", "log_loss", "brier", "accuracy")
REGRESSION_METRICS = ("rmse", "mae", "mse")
MULTICLASS_METRICS = ("macro_f1", "accuracy")


class StatsError(ValueError):
    """A metric or test this module cannot compute; the message names the value and the fix."""


def check_metric(metric: str, classification: bool, multiclass: bool = False) -> str:
    if multiclass:
        if metric not in MULTICLASS_METRICS:
            why = (
                " (log loss needs the probability of the true class; the prediction log keeps "
                "only the predicted class's)"
                if metric == "log_loss"
                else ""
            )
            raise StatsError(
                f"rollout.metric: {metric!r} is not an online metric for a multiclass "
                f"classifier{why}; use one of {', '.join(MULTICLASS_METRICS)}"
            )
        return metric
    allowed = CLASSIFICATION_METRICS if classification else REGRESSION_METRICS
    if metric not in allowed:
        raise StatsError(
            f"rollout.metric: {metric!r} is not an online metric for a "
            f"{'classifier' if classification else 'regressor'}; use one of {', '.join(allowed)}"
        )
    return metric


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney statistic (ties count one half, as ``roc_auc_score``)."""
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = sps.rankdata(p)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def statistic(metric: str, multiclass: bool) -> str:
    """The function a declared metric is computed by: multiclass accuracy compares classes."""
    return "class_accuracy" if multiclass and metric == "accuracy" else metric


def macro_f1(y: np.ndarray, p: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 (2 TP / (true + predicted)) over the classes in ``y``
    or ``p`` (predicted classes), as scikit-learn's ``f1_score(average="macro")``."""
    classes, codes = np.unique(np.concatenate([y, p]), return_inverse=True)
    yi, pi = codes[: len(y)], codes[len(y) :]
    k = len(classes)
    tp = np.bincount(yi[yi == pi], minlength=k)
    denominator = np.bincount(yi, minlength=k) + np.bincount(pi, minlength=k)
    return float(np.mean(2 * tp / denominator))


def metric_value(metric: str, y: np.ndarray, p: np.ndarray) -> float:
    if len(y) == 0:
        return float("nan")
    if metric == "roc_auc":
        return auc(y, p)
    if metric == "macro_f1":
        return macro_f1(y, p)
    if metric == "rmse":
        return float(np.sqrt(np.mean((p - y) ** 2)))
    return float(np.mean(PER_ROW[metric](y, p)))


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }


def bootstrap_metric(
    metric: str, y: np.ndarray, p: np.ndarray, samples: int, seed: int, level: float = 0.95
) -> Interval:
    """The metric with a percentile-bootstrap interval (rows resampled with replacement)."""
    value = metric_value(metric, y, p)
    if len(y) < 2:
        return Interval(value, float("nan"), float("nan"), len(y))
    rng = np.random.default_rng(seed)
    draws = np.array(
        [
            metric_value(metric, y[idx], p[idx])
            for idx in (rng.integers(0, len(y), len(y)) for _ in range(samples))
        ]
    )
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return Interval(value, float("nan"), float("nan"), len(y))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(value, float(low), float(high), len(y))


@dataclass(frozen=True)
class Difference:
    """``d`` (challenger better when positive) and its variance ``V``."""

    d: float
    variance: float
    n_champion: int
    n_challenger: int
    paired: bool
    method: str  # "analytic" | "bootstrap"


def _sign(metric: str) -> float:
    return 1.0 if HIGHER_IS_BETTER[metric] else -1.0


def paired_difference(
    metric: str,
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    samples: int,
    seed: int,
) -> Difference:
    """Both arms scored the same rows (shadow): the per-row differences, or a paired bootstrap
    (the same resampled rows for both arms)."""
    n, sign = len(y), _sign(metric)
    if metric in PER_ROW:
        diff = sign * (PER_ROW[metric](y, challenger) - PER_ROW[metric](y, champion))
        var = float(np.var(diff, ddof=1) / n) if n > 1 else float("nan")
        return Difference(float(np.mean(diff)) if n else float("nan"), var, n, n, True, "analytic")
    d = sign * (metric_value(metric, y, challenger) - metric_value(metric, y, champion))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        yy = y[idx]
        draws.append(
            sign
            * (metric_value(metric, yy, challenger[idx]) - metric_value(metric, yy, champion[idx]))
        )
    arr = np.asarray(draws)
    arr = arr[np.isfinite(arr)]
    var = float(np.var(arr, ddof=1)) if len(arr) > 1 else float("nan")
    return Difference(float(d), var, n, n, True, "bootstrap")


def two_sample_difference(
    metric: str,
    y_champion: np.ndarray,
    champion: np.ndarray,
    y_challenger: np.ndarray,
    challenger: np.ndarray,
    samples: int,
    seed: int,
) -> Difference:
    """Each arm scored its own rows (A/B): independent samples."""
    n_a, n_b, sign = len(y_champion), len(y_challenger), _sign(metric)
    if metric in PER_ROW:
        a, b = PER_ROW[metric](y_champion, champion), PER_ROW[metric](y_challenger, challenger)
        if n_a < 2 or n_b < 2:
            return Difference(float("nan"), float("nan"), n_a, n_b, False, "analytic")
        var = float(np.var(a, ddof=1) / n_a + np.var(b, ddof=1) / n_b)
        return Difference(float(sign * (b.mean() - a.mean())), var, n_a, n_b, False, "analytic")
    d = sign * (
        metric_value(metric, y_challenger, challenger) - metric_value(metric, y_champion, champion)
    )
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(samples):
        ia, ib = rng.integers(0, n_a, n_a), rng.integers(0, n_b, n_b)
        draws.append(
            sign
            * (
                metric_value(metric, y_challenger[ib], challenger[ib])
                - metric_value(metric, y_champion[ia], champion[ia])
            )
        )
    arr = np.asarray(draws)
    arr = arr[np.isfinite(arr)]
    var = float(np.var(arr, ddof=1)) if len(arr) > 1 else float("nan")
    return Difference(float(d), var, n_a, n_b, False, "bootstrap")


def fixed_interval(d: float, variance: float, alpha: float) -> tuple[float, float]:
    """``d ± z(1 - alpha) sqrt(V)``: each one-sided conclusion has error ``alpha``."""
    half = float(sps.norm.ppf(1 - alpha)) * math.sqrt(variance)
    return d - half, d + half


def sequential_interval(d: float, variance: float, alpha: float, tau: float) -> tuple[float, float]:
    """The mixture-SPRT confidence sequence: ``{theta : Lambda(theta) < 1/alpha}`` with
    ``Lambda(theta) = sqrt(V / (V + tau^2)) exp(tau^2 (d - theta)^2 / (2 V (V + tau^2)))``,
    i.e. ``d ± sqrt(2 V (V + tau^2) / tau^2 * log(sqrt((V + tau^2) / V) / alpha))``."""
    v, t2 = variance, tau * tau
    if v <= 0:  # every paired difference equal (e.g. the same model twice): no uncertainty
        return d, d
    half = math.sqrt(2 * v * (v + t2) / t2 * math.log(math.sqrt((v + t2) / v) / alpha))
    return d - half, d + half


def required_samples(
    n: int, variance: float, margin: float, alpha: float, power: float, min_samples: int
) -> int:
    """The fixed horizon per arm: the rows that make ``z(1-alpha) + z(power)`` standard errors
    fit in ``margin`` (``V`` scales as 1/n), and at least ``min_samples``."""
    if margin <= 0 or not math.isfinite(variance) or variance <= 0 or n <= 0:
        return min_samples
    z = float(sps.norm.ppf(1 - alpha) + sps.norm.ppf(power))
    return max(min_samples, math.ceil(n * variance * (z / margin) ** 2))


def judge(low: float, high: float, margin: float) -> str:
    """``not_worse`` when the interval is above ``-margin``, ``worse`` when it is wholly below
    it, ``inconclusive`` otherwise."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"
    if low > -margin:
        return "not_worse"
    if high < -margin:
        return "worse"
    return "inconclusive"
