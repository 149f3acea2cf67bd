"""Holdout metrics for the supported tasks (framework-free, shared by training and evaluation)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

# Metrics where larger is better; every other metric is minimised.
HIGHER_IS_BETTER = {
    "roc_auc",
    "pr_auc",
    "f1",
    "precision",
    "recall",
    "accuracy",
    "r2",
    "macro_f1",
    "weighted_f1",
}
# Multiclass per-class metrics are named '<metric>_class_<class value>' (larger is better).
PER_CLASS = ("precision", "recall", "f1")


def classification_metrics(
    y: np.ndarray, proba: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    y = np.asarray(y)
    pred = (proba >= threshold).astype(int)
    both = len(np.unique(y)) > 1
    return {
        "roc_auc": float(skm.roc_auc_score(y, proba)) if both else float("nan"),
        "pr_auc": float(skm.average_precision_score(y, proba)) if both else float("nan"),
        "log_loss": float(skm.log_loss(y, np.clip(proba, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, proba)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "accuracy": float(skm.accuracy_score(y, pred)),
    }


def _clipped(proba: np.ndarray) -> np.ndarray:
    """Probability rows clipped away from 0 and renormalised, as log loss needs."""
    p = np.clip(np.asarray(proba, dtype=float), 1e-15, 1.0)
    return p / p.sum(axis=1, keepdims=True)


def multiclass_metrics(
    y: np.ndarray, proba: np.ndarray, classes: list[Any] | None = None
) -> dict[str, float]:
    """Metrics of a (rows, K) probability matrix against ``y`` given as class codes 0..K-1
    (``fitting.label_codes``); the predicted class is the most probable one. Per-class
    precision / recall / F1 are named after ``classes`` (the class values; default the codes).
    """
    y, proba = np.asarray(y), np.asarray(proba, dtype=float)
    k = proba.shape[1]
    labels = list(range(k))
    names = [str(c) for c in (classes if classes is not None else labels)]
    pred = proba.argmax(axis=1)
    out = {
        "macro_f1": float(skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(
            skm.f1_score(y, pred, labels=labels, average="weighted", zero_division=0)
        ),
        "log_loss": float(skm.log_loss(y, _clipped(proba), labels=labels)),
        "accuracy": float(skm.accuracy_score(y, pred)),
    }
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0
    )
    for i, name in enumerate(names):
        out[f"precision_class_{name}"] = float(precision[i])
        out[f"recall_class_{name}"] = float(recall[i])
        out[f"f1_class_{name}"] = float(f1[i])
    return out


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "mae": float(skm.mean_absolute_error(y, pred)),
        "r2": float(skm.r2_score(y, pred)),
    }


def score(metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    """One metric, for tuning objectives and bootstrap resamples. A 2-D ``pred`` is a
    multiclass probability matrix and ``y`` its class codes (``multiclass_metrics``)."""
    if np.ndim(pred) == 2:
        return _multiclass_score(metric, y, pred)
    if metric == "roc_auc":
        return float(skm.roc_auc_score(y, pred))
    if metric == "pr_auc":
        return float(skm.average_precision_score(y, pred))
    if metric == "log_loss":
        return float(skm.log_loss(y, np.clip(pred, 1e-15, 1 - 1e-15), labels=[0, 1]))
    if metric == "brier":
        return float(skm.brier_score_loss(y, pred))
    if metric == "rmse":
        return float(np.sqrt(skm.mean_squared_error(y, pred)))
    if metric == "mae":
        return float(skm.mean_absolute_error(y, pred))
    if metric == "r2":
        return float(skm.r2_score(y, pred))
    raise ValueError(f"metric '{metric}' cannot be used as a single score")


def _multiclass_score(metric: str, y: np.ndarray, proba: np.ndarray) -> float:
    labels = list(range(np.shape(proba)[1]))
    if metric == "log_loss":  # skm.log_loss's value, without its validation (bootstrap speed)
        p = _clipped(proba)
        return float(-np.mean(np.log(p[np.arange(len(p)), np.asarray(y, dtype=int)])))
    y, pred = np.asarray(y, dtype=int), np.asarray(proba).argmax(axis=1)
    if metric == "accuracy":
        return float(np.mean(y == pred))
    if metric in ("macro_f1", "weighted_f1"):
        # skm.f1_score(labels=range(K), zero_division=0) in counts: F1 = 2 TP / (predicted +
        # true) per class, 0 where a class is neither; a bootstrap calls this thousands of times
        k = len(labels)
        tp = np.bincount(y[y == pred], minlength=k)
        true, predicted = np.bincount(y, minlength=k), np.bincount(pred, minlength=k)
        denom = true + predicted
        f1 = np.divide(2.0 * tp, denom, out=np.zeros(k), where=denom > 0)
        if metric == "macro_f1":
            return float(f1.mean())
        return float(f1 @ true / true.sum()) if true.sum() else 0.0
    raise ValueError(
        f"metric '{metric}' cannot be used as a single score of a multiclass model; "
        f"use log_loss, macro_f1, weighted_f1 or accuracy"
    )


def higher_is_better(metric: str) -> bool:
    per_class = any(metric.startswith(f"{m}_class_") for m in PER_CLASS)
    return metric in HIGHER_IS_BETTER or per_class
