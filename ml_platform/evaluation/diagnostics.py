"""Model diagnostics on a holdout, as plain data: calibration, confusion matrix, permutation
importance. Rendering lives in ``plots``; nothing here imports a plotting library."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix

from ml_platform.training.metrics import higher_is_better, score


@dataclass(frozen=True)
class Calibration:
    mean_predicted: list[float]
    fraction_positive: list[float]
    expected_calibration_error: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> Calibration:
    """Quantile bins so every point rests on the same number of rows."""
    frac, mean = calibration_curve(y, proba, n_bins=bins, strategy="quantile")
    # ECE over the same quantile bins: each bin holds ~1/len(mean) of the rows.
    ece = float(np.mean(np.abs(frac - mean))) if len(mean) else float("nan")
    return Calibration(mean.tolist(), frac.tolist(), ece)


def confusion(y: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> list[list[int]]:
    """Rows are the true class (0, 1), columns the predicted class."""
    return confusion_matrix(y, (proba >= threshold).astype(int), labels=[0, 1]).tolist()


def permutation_importance(predict: Callable[[pd.DataFrame], np.ndarray], x: pd.DataFrame,
                           y: np.ndarray, metric: str, repeats: int = 3, seed: int = 0,
                           max_rows: int = 5_000) -> dict[str, dict[str, float]]:
    """Drop in ``metric`` when one raw input column is shuffled (positive = the model uses it).

    Shuffles the raw columns the artifact receives, so it reads in the user's feature names
    whatever the preprocessing does inside the pipeline.
    """
    rng = np.random.default_rng(seed)
    if len(x) > max_rows:  # a seeded subsample bounds the cost on large holdouts
        keep = rng.choice(len(x), max_rows, replace=False)
        x, y = x.iloc[keep].reset_index(drop=True), y[keep]
    sign = 1.0 if higher_is_better(metric) else -1.0
    base = score(metric, y, predict(x))
    out: dict[str, dict[str, float]] = {}
    for col in x.columns:
        drops = []
        for _ in range(repeats):
            shuffled = x.copy()
            shuffled[col] = x[col].to_numpy()[rng.permutation(len(x))]
            drops.append(sign * (base - score(metric, y, predict(shuffled))))
        out[col] = {"mean": float(np.mean(drops)), "std": float(np.std(drops))}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["mean"]))
