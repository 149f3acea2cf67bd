"""PNG renderings of the search and of evaluation diagnostics, drawn by the libraries' own plot
functions (Optuna's matplotlib visualizations, scikit-learn's display classes) on a headless
backend. Each function returns PNG bytes so callers can write them, link them from Dagster
metadata and log them to MLflow."""

from __future__ import annotations

import io
import warnings

import matplotlib

matplotlib.use("Agg")  # headless: runs inside Dagster workers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ml_platform.evaluation.diagnostics import Calibration  # noqa: E402


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _axes(width: float, height: float) -> Axes:
    return plt.subplots(figsize=(width, height))[1]


def search_pngs(study: optuna.Study, metric: str) -> dict[str, bytes]:
    """Optuna's optimization history and, when trials reported pruning stages, its
    intermediate values plot."""
    from optuna.visualization import matplotlib as ov

    pngs: dict[str, bytes] = {}
    with warnings.catch_warnings():  # Optuna marks its matplotlib backend experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = ov.plot_optimization_history(study, target_name=f"validation {metric}")
        pngs["optimization_history"] = _png(ax.figure)
        if any(t.intermediate_values for t in study.trials):
            ax = ov.plot_intermediate_values(study)
            ax.set_ylabel(f"validation {metric} by stage")
            pngs["intermediate_values"] = _png(ax.figure)
    return pngs


def calibration_png(cal: Calibration, scores: np.ndarray, title: str) -> bytes:
    from sklearn.calibration import CalibrationDisplay

    ax = _axes(4.5, 4)
    CalibrationDisplay(np.asarray(cal.fraction_positive), np.asarray(cal.mean_predicted),
                       scores).plot(ax=ax, name="model")
    ax.set_title(f"{title}\nECE {cal.expected_calibration_error:.3f}")
    return _png(ax.figure)


def confusion_png(matrix: list[list[int]], threshold: float, title: str) -> bytes:
    from sklearn.metrics import ConfusionMatrixDisplay

    ax = _axes(4.2, 3.6)
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=[0, 1]).plot(
        ax=ax, cmap="Blues", values_format=",d", colorbar=False)
    ax.set_title(f"{title}\nthreshold {threshold}")
    return _png(ax.figure)


def residuals_png(y: np.ndarray, pred: np.ndarray, title: str, seed: int = 0) -> bytes:
    from sklearn.metrics import PredictionErrorDisplay

    ax = _axes(4.5, 4)
    PredictionErrorDisplay.from_predictions(y, pred, kind="residual_vs_predicted",
                                            subsample=2_000, random_state=seed, ax=ax)
    ax.set_title(title)
    return _png(ax.figure)


def importance_png(importance: dict[str, dict[str, float]], metric: str, title: str) -> bytes:
    """Bars of ``sklearn.inspection.permutation_importance``'s means and standard deviations
    (scikit-learn has no display class for it)."""
    names = list(importance)[::-1]
    ax = _axes(5.5, 0.3 * len(names) + 1.2)
    ax.barh(names, [importance[n]["mean"] for n in names],
            xerr=[importance[n]["std"] for n in names], color="tab:blue")
    ax.set(xlabel=f"drop in {metric} when shuffled", title=title)
    return _png(ax.figure)
