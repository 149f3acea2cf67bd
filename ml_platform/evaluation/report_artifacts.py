"""Diagnostics and plots of an evaluation, written under the report directory, and their
logging to the candidate's MLflow run (so the run holds its own evaluation evidence)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.evaluation import diagnostics
from ml_platform.ingest.io import atomic_path
from ml_platform.spec import PipelineSpec
from ml_platform.training import fitting
from ml_platform.training.tracking import Tracking

THRESHOLD = 0.5  # the threshold the F1 / precision / recall metrics use


def _write_png(data: bytes, path: Path) -> str:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return str(path)


def diagnose(
    spec: PipelineSpec, model: Any, holdout: pd.DataFrame, scores: np.ndarray, report_dir: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    """Calibration, confusion matrix (classification) or residuals (regression), and
    permutation importance, as data and as PNG files drawn by scikit-learn's displays."""
    from ml_platform.evaluation import plots  # matplotlib: not at definitions load

    y, plot_dir = holdout[spec.label].to_numpy(), report_dir / "plots"
    found: dict[str, Any] = {}
    pngs: dict[str, str] = {}
    if spec.is_classification:
        cal = diagnostics.calibration(y, scores)
        matrix = diagnostics.confusion(y, scores, THRESHOLD)
        found |= {"calibration": cal.to_dict(), "confusion_matrix": matrix, "threshold": THRESHOLD}
        pngs["calibration"] = _write_png(
            plots.calibration_png(cal, scores, "calibration (holdout)"),
            plot_dir / "calibration.png",
        )
        pngs["confusion_matrix"] = _write_png(
            plots.confusion_png(matrix, THRESHOLD, "confusion matrix (holdout)"),
            plot_dir / "confusion_matrix.png",
        )
    elif spec.is_multiclass:
        from ml_platform.training.train import class_names

        classes = fitting.classes_of(model)
        names = class_names(classes)
        y = fitting.label_codes(y, classes)  # the probability matrix's column of each row
        per_class = diagnostics.calibration_per_class(y, scores, names)
        matrix = diagnostics.confusion_multiclass(y, scores)
        found |= {
            "calibration_per_class": {
                k: None if c is None else c.to_dict() for k, c in per_class.items()
            },
            "confusion_matrix": matrix,
            "classes": names,
        }
        for k, (name, curve) in enumerate(per_class.items()):
            if curve is not None:
                pngs[f"calibration_class_{name}"] = _write_png(
                    plots.calibration_png(
                        curve, scores[:, k], f"calibration, class {name} vs rest (holdout)"
                    ),
                    plot_dir / f"calibration_class_{name}.png",
                )
        pngs["confusion_matrix"] = _write_png(
            plots.confusion_png(matrix, None, "confusion matrix (holdout)", names),
            plot_dir / "confusion_matrix.png",
        )
    else:
        pngs["residuals"] = _write_png(
            plots.residuals_png(y, scores, "residuals (holdout)", seed=spec.seed),
            plot_dir / "residuals.png",
        )
    importance = diagnostics.permutation_importance(
        model,
        holdout,
        y,
        spec.primary_metric,
        scores=lambda fitted, x: fitting.scores(spec, fitted, x),
        seed=spec.seed,
        features=lambda rows: fitting.features_of(rows, spec),
    )
    found["permutation_importance"] = importance
    pngs["permutation_importance"] = _write_png(
        plots.importance_png(importance, spec.primary_metric, "permutation importance"),
        plot_dir / "permutation_importance.png",
    )
    return found, pngs


def log_to_mlflow(
    tracking: Tracking, run_id: str, report_dir: Path, metrics: dict[str, float], passed: bool
) -> None:
    """Evaluation metrics, the gate verdict, the report, card and plots on the candidate run."""
    from mlflow.entities import Metric, RunTag

    now = int(pd.Timestamp.now(tz="UTC").timestamp() * 1000)
    finite = {k: v for k, v in metrics.items() if np.isfinite(v)}
    tracking.call(
        lambda: tracking.client.log_batch(
            run_id,
            metrics=[Metric(f"eval_{k}", v, now, 0) for k, v in finite.items()],
            tags=[RunTag("gates_passed", str(passed).lower())],
        ),
        f"log evaluation of run {run_id}",
    )
    tracking.call(
        lambda: tracking.client.log_artifacts(run_id, str(report_dir), "evaluation"),
        f"log evaluation artifacts of run {run_id}",
    )
