"""PNG renderings of evaluation diagnostics, drawn by scikit-learn's display classes
(calibration, confusion matrix, prediction error) and matplotlib, on a headless backend."""

from __future__ import annotations

from typing import Any

import numpy as np

from ml_platform.evaluation.diagnostics import Calibration
from ml_platform.training.plots import axes, png


def calibration_png(cal: Calibration, scores: np.ndarray, title: str) -> bytes:
    from sklearn.calibration import CalibrationDisplay

    ax = axes(4.5, 4)
    CalibrationDisplay(
        np.asarray(cal.fraction_positive), np.asarray(cal.mean_predicted), scores
    ).plot(ax=ax, name="model")
    ax.set_title(f"{title}\nECE {cal.expected_calibration_error:.3f}")
    return png(ax.figure)


def confusion_png(
    matrix: list[list[int]],
    threshold: float | None,
    title: str,
    display_labels: list[Any] | None = None,
) -> bytes:
    """Binary at ``threshold``; multiclass (``threshold`` None) by the most probable class."""
    from sklearn.metrics import ConfusionMatrixDisplay

    k = len(matrix)
    ax = axes(max(4.2, 0.6 * k + 2.4), max(3.6, 0.6 * k + 1.8))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=display_labels or [0, 1]).plot(
        ax=ax, cmap="Blues", values_format=",d", colorbar=False
    )
    rule = "most probable class" if threshold is None else f"threshold {threshold}"
    ax.set_title(f"{title}\n{rule}")
    return png(ax.figure)


def residuals_png(y: np.ndarray, pred: np.ndarray, title: str, seed: int = 0) -> bytes:
    from sklearn.metrics import PredictionErrorDisplay

    ax = axes(4.5, 4)
    PredictionErrorDisplay.from_predictions(
        y, pred, kind="residual_vs_predicted", subsample=2_000, random_state=seed, ax=ax
    )
    ax.set_title(title)
    return png(ax.figure)


def importance_png(importance: dict[str, dict[str, float]], metric: str, title: str) -> bytes:
    """Bars of ``sklearn.inspection.permutation_importance``'s means and standard deviations
    (scikit-learn has no display class for it)."""
    names = list(importance)[::-1]
    ax = axes(5.5, 0.3 * len(names) + 1.2)
    ax.barh(
        names,
        [importance[n]["mean"] for n in names],
        xerr=[importance[n]["std"] for n in names],
        color="tab:blue",
    )
    ax.set(xlabel=f"drop in {metric} when shuffled", title=title)
    return png(ax.figure)
