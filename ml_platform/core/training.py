"""Training: time-ordered splits, the sklearn Pipeline artifact and seeded Optuna tuning.

Nothing here knows about Dagster or MLflow; callers pass callbacks to track trials.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils.class_weight import compute_sample_weight

from ml_platform.core.metrics import higher_is_better, score
from ml_platform.spec import ParamSpace, PipelineSpec, resolve_import


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    @property
    def test_window(self) -> dict[str, Any]:
        return self.test.attrs["window"]


def pin_seeds(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def time_split(frame: pd.DataFrame, spec: PipelineSpec) -> Split:
    """Train / validation / test by event time: the test window is always the most recent."""
    ts = spec.event_timestamp
    ordered = frame.sort_values([ts, spec.entity_key], kind="stable").reset_index(drop=True)
    n = len(ordered)
    n_test = max(1, int(n * spec.split.test_fraction))
    n_val = max(1, int(n * spec.split.validation_fraction))
    if n - n_test - n_val < 2:
        raise ValueError(f"{n} rows are too few to split into train/validation/test")
    # Cut at timestamps, not row counts, so rows sharing a timestamp stay in one split.
    test_start = ordered[ts].iloc[n - n_test]
    val_start = ordered[ts].iloc[n - n_test - n_val]
    train = ordered[ordered[ts] < val_start]
    val = ordered[(ordered[ts] >= val_start) & (ordered[ts] < test_start)]
    test = ordered[ordered[ts] >= test_start].reset_index(drop=True)
    keys = pd.util.hash_pandas_object(test[[spec.entity_key, ts]], index=False)
    test.attrs["window"] = {
        "start": str(test_start), "end": str(ordered[ts].iloc[-1]), "rows": len(test),
        "hash": hashlib.sha256(keys.to_numpy().tobytes()).hexdigest()[:16],
    }
    return Split(train.reset_index(drop=True), val.reset_index(drop=True), test)


def build_pipeline(spec: PipelineSpec, params: dict[str, Any] | None = None) -> Pipeline:
    """The single artifact: preprocessing + estimator, so inference needs no training code."""
    estimator_cls = resolve_import(spec.model.estimator)
    merged = {**spec.model.params, **(params or {})}
    if "random_state" in estimator_cls().get_params():
        merged.setdefault("random_state", spec.seed)
    transformers = []
    if spec.features.model_numeric:
        transformers.append(("num", SimpleImputer(strategy="median", keep_empty_features=True),
                             spec.features.model_numeric))
    if spec.features.categorical:
        transformers.append(("cat", Pipeline([
            ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                                     min_frequency=5)),
        ]), spec.features.categorical))
    pre = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", pre), ("model", estimator_cls(**merged))])


def features_of(frame: pd.DataFrame, spec: PipelineSpec) -> pd.DataFrame:
    """The model's input: numeric features as float64 (they may be null when served),
    categoricals as objects, in the declared order."""
    frame = frame[spec.features.all_columns].copy()
    for col in spec.features.model_numeric:
        frame[col] = frame[col].astype("float64")
    for col in spec.features.categorical:
        frame[col] = frame[col].astype("object")
    return frame


def fit(spec: PipelineSpec, frame: pd.DataFrame, params: dict[str, Any] | None = None
        ) -> Pipeline:
    pipe = build_pipeline(spec, params)
    fit_kwargs = {}
    y = frame[spec.label].to_numpy()
    if spec.is_classification and spec.model.balance_classes:
        model_fit = inspect.signature(pipe.named_steps["model"].fit).parameters
        if "sample_weight" in model_fit:
            fit_kwargs["model__sample_weight"] = compute_sample_weight("balanced", y)
    return pipe.fit(features_of(frame, spec), y, **fit_kwargs)


def predict(spec: PipelineSpec, model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Scores: P(label = 1) for classification, the prediction for regression."""
    x = features_of(frame, spec)
    if spec.is_classification:
        return model.predict_proba(x)[:, 1]
    return model.predict(x)


def suggest(trial: optuna.Trial, space: dict[str, ParamSpace]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.type == "int":
            params[name] = trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
        elif dim.type == "float":
            params[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
        else:
            params[name] = trial.suggest_categorical(name, dim.choices)
    return params


TrialCallback = Callable[[int, dict[str, Any], float], None]


def tune(spec: PipelineSpec, split: Split, storage: str | None, study_name: str,
         on_trial: TrialCallback | None = None, n_trials: int | None = None) -> optuna.Study:
    """Seeded TPE search over the spec's space, scored on the validation window.

    The study lives in ``storage`` so several processes can add trials to it.
    """
    metric = spec.primary_metric
    direction = "maximize" if higher_is_better(metric) else "minimize"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name, storage=storage, direction=direction, load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=spec.seed))

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, spec.model.search_space)
        model = fit(spec, split.train, params)
        value = score(metric, split.validation[spec.label].to_numpy(),
                      predict(spec, model, split.validation))
        if on_trial:
            on_trial(trial.number, params, value)
        return value

    budget = n_trials if n_trials is not None else spec.model.n_trials
    if spec.model.search_space:
        study.optimize(objective, n_trials=budget, timeout=spec.model.timeout_seconds)
    else:
        study.enqueue_trial({})
        study.optimize(objective, n_trials=1)
    return study


def prediction_hash(pred: np.ndarray) -> str:
    return hashlib.sha256(np.round(np.asarray(pred, dtype=float), 10).tobytes()).hexdigest()[:16]


def clone_unfitted(model: Pipeline) -> Pipeline:
    return clone(model)
