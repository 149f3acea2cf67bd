"""Holdout metrics for the supported tasks (framework-free, shared by training and evaluation)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

# Metrics where larger is better; every other metric is minimised.
HIGHER_IS_BETTER = {"roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "r2"}


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


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "mae": float(skm.mean_absolute_error(y, pred)),
        "r2": float(skm.r2_score(y, pred)),
    }


def score(metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    """One metric, for tuning objectives and bootstrap resamples."""
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


def higher_is_better(metric: str) -> bool:
    return metric in HIGHER_IS_BETTER
