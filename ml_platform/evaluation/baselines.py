"""Simple baselines a candidate must beat: a constant (dummy) model and a linear model, fitted
on the rows before the holdout window and scored on the same holdout."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml_platform.spec import PipelineSpec
from ml_platform.training.fitting import align_proba, classes_of, features_of


def _linear(spec: PipelineSpec) -> Pipeline:
    parts = []
    if spec.features.model_numeric:
        parts.append(
            (
                "num",
                # copy=False: the scaler scales the imputer's new array in place (the same
                # arithmetic on the same values) instead of a copy of it.
                make_pipeline(
                    SimpleImputer(strategy="median", keep_empty_features=True),
                    StandardScaler(copy=False),
                ),
                spec.features.model_numeric,
            )
        )
    if spec.features.categorical:
        parts.append(
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="__missing__"),
                    OneHotEncoder(handle_unknown="ignore", min_frequency=5),
                ),
                spec.features.categorical,
            )
        )
    model = (
        LogisticRegression(max_iter=500, class_weight="balanced")
        if spec.is_classifier
        else Ridge(alpha=1.0)
    )
    return Pipeline([("preprocess", ColumnTransformer(parts)), ("model", model)])


def _scores(
    spec: PipelineSpec,
    model: Pipeline | DummyClassifier | DummyRegressor,
    x: pd.DataFrame,
    classes: np.ndarray | None,
) -> np.ndarray:
    if spec.is_multiclass:
        proba = model.predict_proba(x)
        return proba if classes is None else align_proba(proba, classes_of(model), classes)
    return model.predict_proba(x)[:, 1] if spec.is_classification else model.predict(x)


def baseline_scores(
    spec: PipelineSpec,
    history: pd.DataFrame,
    holdout: pd.DataFrame,
    classes: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Holdout scores of the dummy and the linear baseline, both fitted on ``history`` (rows
    strictly before the holdout window, so neither sees the holdout). The dummy predicts the
    class priors of ``history`` (``strategy="prior"``): its probabilities are the prior and its
    predicted class the majority class. Multiclass scores are probability matrices with columns
    ``classes`` (the candidate's), so all models are scored against the same classes."""
    if history.empty:
        raise ValueError("no training rows precede the holdout window; baselines cannot be fitted")
    y, x = history[spec.label].to_numpy(copy=True), features_of(history, spec)
    # Dropped before the fit, whose copies of x are the thread's peak: a frame the caller kept
    # no reference to (evaluate's) is freed here.
    del history
    dummy = (
        DummyClassifier(strategy="prior") if spec.is_classifier else DummyRegressor(strategy="mean")
    ).fit(np.zeros((len(y), 1)), y)
    linear = _linear(spec).fit(x, y)
    return {
        "dummy": _scores(spec, dummy, np.zeros((len(holdout), 1)), classes),
        "linear": _scores(spec, linear, features_of(holdout, spec), classes),
    }
