"""Diagnostics through the libraries: sklearn's permutation importance on the raw columns, the
display classes and Optuna's plots as PNGs."""

from __future__ import annotations

import matplotlib
import numpy as np
import optuna
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from ml_platform.evaluation import diagnostics, plots
from ml_platform.training.plots import search_pngs

PNG = b"\x89PNG"


def _problem(n: int = 12_000) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(
        {"strong": rng.normal(size=n), "weak": rng.normal(size=n), "unused": rng.normal(size=n)}
    )
    y = (x["strong"] + 0.3 * x["weak"] + rng.normal(size=n) > 0).astype(int).to_numpy()
    return x, y


def test_an_unused_column_gets_no_importance() -> None:
    """The model never splits on ``unused``; with the baseline and the shuffles scored on the
    same subsample its importance is zero up to noise (sklearn's ``max_samples`` scores the
    baseline on all rows and shifted it by up to 0.008 AUC here)."""
    x, y = _problem()
    with threadpool_limits(1):  # as evaluation runs it
        _check_importances(x, y)


def _check_importances(x: pd.DataFrame, y: np.ndarray) -> None:
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(
        x[["strong", "weak"]].assign(unused=0.0)[:6_000], y[:6_000]
    )
    holdout, y_holdout = x[6_000:].reset_index(drop=True), y[6_000:]
    found = diagnostics.permutation_importance(
        model, holdout, y_holdout, "roc_auc", seed=3, max_rows=3_000
    )
    assert list(found) == ["strong", "weak", "unused"]
    assert found["unused"] == {"mean": 0.0, "std": 0.0}
    assert found["strong"]["mean"] > 0.2 and found["weak"]["mean"] > 0.01
    # Lower-is-better metrics are oriented the same way: positive = the model uses it.
    brier = diagnostics.permutation_importance(
        model, holdout, y_holdout, "brier", seed=3, max_rows=3_000
    )
    assert brier["strong"]["mean"] > 0 and brier["unused"]["mean"] == 0.0


def test_features_convert_only_the_sampled_rows() -> None:
    """Raw rows in, ``features`` applied after the subsample: the same importances as
    converting the whole holdout first (evaluation no longer converts it whole)."""
    x, y = _problem()
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x[:6_000], y[:6_000])
    raw = x[6_000:].reset_index(drop=True).assign(label=y[6_000:], note="raw only")
    converted: list[int] = []

    def features(rows: pd.DataFrame) -> pd.DataFrame:
        converted.append(len(rows))
        return rows[["strong", "weak", "unused"]].astype("float64")

    with threadpool_limits(1):
        found = diagnostics.permutation_importance(
            model, raw, y[6_000:], "roc_auc", seed=3, max_rows=3_000, features=features
        )
        whole = diagnostics.permutation_importance(
            model, features(raw), y[6_000:], "roc_auc", seed=3, max_rows=3_000
        )
    assert converted == [3_000, len(raw)]
    assert found == whole


def test_plots_are_drawn_by_the_libraries() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    scores = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1)
    cal = diagnostics.calibration(y, scores)
    assert plots.calibration_png(cal, scores, "calibration").startswith(PNG)
    assert plots.confusion_png(diagnostics.confusion(y, scores), 0.5, "cm").startswith(PNG)
    assert plots.residuals_png(scores, scores + rng.normal(0, 0.1, 500), "r").startswith(PNG)
    importance = {"a": {"mean": 0.1, "std": 0.01}, "b": {"mean": 0.0, "std": 0.0}}
    assert plots.importance_png(importance, "roc_auc", "importance").startswith(PNG)

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))

    def objective(trial: optuna.Trial) -> float:
        value = trial.suggest_float("x", 0, 1)
        trial.report(value / 2, 0)
        return value

    study.optimize(objective, n_trials=4)
    style = dict(matplotlib.rcParams)
    pngs = search_pngs(study, "roc_auc")
    assert set(pngs) == {"optimization_history", "intermediate_values"}
    assert all(png.startswith(PNG) for png in pngs.values())
    # Optuna's plots switch to the ggplot style; later figures of the process must not.
    assert dict(matplotlib.rcParams) == style
