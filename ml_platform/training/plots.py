"""PNG renderings of evaluation diagnostics (matplotlib, headless). Each function returns PNG
bytes so callers can write them, embed them in Dagster metadata and log them to MLflow."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # headless: runs inside Dagster workers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ml_platform.evaluation.diagnostics import Calibration  # noqa: E402


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def calibration_png(cal: Calibration, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfectly calibrated")
    ax.plot(cal.mean_predicted, cal.fraction_positive, marker="o", label="model")
    ax.set(xlabel="mean predicted probability", ylabel="fraction positive",
           title=f"{title}\nECE {cal.expected_calibration_error:.3f}")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def confusion_png(matrix: list[list[int]], threshold: float, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(4, 3.6))
    data = np.asarray(matrix)
    ax.imshow(data, cmap="Blues")
    for (i, j), value in np.ndenumerate(data):
        ax.text(j, i, f"{value:,}", ha="center", va="center",
                color="white" if value > data.max() / 2 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual",
           title=f"{title}\nthreshold {threshold}")
    return _png(fig)


def importance_png(importance: dict[str, dict[str, float]], metric: str, title: str) -> bytes:
    names = list(importance)[::-1]
    fig, ax = plt.subplots(figsize=(5.5, 0.3 * len(names) + 1.2))
    ax.barh(names, [importance[n]["mean"] for n in names],
            xerr=[importance[n]["std"] for n in names], color="tab:blue")
    ax.set(xlabel=f"drop in {metric} when shuffled", title=title)
    return _png(fig)


def residuals_png(y: np.ndarray, pred: np.ndarray, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.scatter(pred, y - pred, s=4, alpha=0.4)
    ax.axhline(0, c="grey", ls="--", lw=1)
    ax.set(xlabel="predicted", ylabel="actual - predicted", title=title)
    return _png(fig)


def optimization_history_png(values: list[tuple[int, float]], maximize: bool, metric: str
                             ) -> bytes:
    """Each finished trial's validation score and the best so far, by trial number."""
    fig, ax = plt.subplots(figsize=(6, 4))
    numbers, scores = [n for n, _ in values], [v for _, v in values]
    best = (np.maximum if maximize else np.minimum).accumulate(scores) if scores else []
    ax.scatter(numbers, scores, s=12, label="trial")
    ax.step(numbers, best, where="post", c="tab:red", label="best so far")
    ax.set(xlabel="trial", ylabel=f"validation {metric}", title="optimization history")
    ax.legend(loc="lower right" if maximize else "upper right", fontsize=8)
    return _png(fig)


def intermediate_values_png(curves: dict[int, dict[int, float]], metric: str) -> bytes:
    """Validation score per pruning stage of every trial (a line that stops early was pruned)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for stages in curves.values():
        ax.plot(list(stages), list(stages.values()), marker=".", lw=0.8, alpha=0.7)
    ax.set(xlabel="stage", ylabel=f"validation {metric}", title="intermediate values")
    return _png(fig)
