"""Training: time-ordered splits, the sklearn Pipeline artifact and seeded Optuna tuning.

Nothing here knows about Dagster or MLflow; callers pass callbacks to track trials.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import optuna
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, TargetEncoder
from sklearn.utils.class_weight import compute_sample_weight

from ml_platform.ingest import splits
from ml_platform.ingest.prepare import category_strings
from ml_platform.spec import MAX_ONEHOT_CATEGORIES, ParamSpace, PipelineSpec, resolve_import
from ml_platform.training.metrics import higher_is_better, score


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    # A time split's windows are consecutive rows of this one ordered frame (None: a random
    # split, whose windows are copies).
    ordered: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def test_window(self) -> dict[str, Any]:
        return self.test.attrs["window"]

    def fitting_rows(self) -> pd.DataFrame:
        """Train + validation, the final model's rows, as ``pd.concat([train, validation])``
        gives them (values, dtypes, and the index, whose labels restart at the validation
        window: the monitoring reference's seeded sample is put in index order). Of a time
        split, a view of the ordered frame's first rows instead of a copy."""
        if self.ordered is None:
            return pd.concat([self.train, self.validation])
        rows = self.ordered.iloc[: len(self.train) + len(self.validation)]
        rows.index = self.train.index.append(self.validation.index)
        return rows


def pin_seeds(seed: int) -> None:
    """Seed Python's and numpy's global generators. The estimator gets ``random_state`` from
    the spec (build_pipeline) and Optuna its own seeded sampler; PYTHONHASHSEED cannot be set
    from inside a running process, and nothing here depends on hash order."""
    random.seed(seed)
    np.random.seed(seed)


def _in_order(frame: pd.DataFrame, keys: list[str]) -> bool:
    """Whether ``frame`` is in ``keys`` order already, so a stable sort would leave it as it is
    (the training set is written in (timestamp, entity) order). A null key, or values that do
    not compare, count as out of order: the frame is then sorted."""
    first, second = frame[keys[0]], frame[keys[1]]
    if first.hasnans or second.hasnans or not first.is_monotonic_increasing:
        return False
    stamps = first.array
    tied = np.flatnonzero(np.asarray(stamps[1:] == stamps[:-1]))
    if not len(tied):
        return True
    entities = second.array
    try:
        return bool(np.asarray(entities[tied] <= entities[tied + 1]).all())
    except TypeError:
        return False


def _window_bounds(assignment: splits.Assignment) -> list[tuple[int, int]] | None:
    """(start, stop) of the train, validation and test rows when each is one run of
    consecutive rows (a time split of time-ordered rows), else None."""
    window = assignment.window
    if assignment.kind != "time" or (window[1:] < window[:-1]).any():
        return None
    train = int(np.count_nonzero(window == splits.TRAIN))
    validation = train + int(np.count_nonzero(window == splits.VALIDATION))
    return [(0, train), (train, validation), (validation, len(window))]


def _rows(frame: pd.DataFrame, start: int, stop: int) -> pd.DataFrame:
    """Rows ``start:stop`` of ``frame`` as a view, indexed from 0 as ``reset_index`` would."""
    part = frame.iloc[start:stop]
    part.index = pd.RangeIndex(stop - start)
    return part


def time_split(frame: pd.DataFrame, spec: PipelineSpec) -> Split:
    """Train / validation / test: by event time (the test window is always the most recent),
    or, for a spec without an event timestamp, a seeded random split stratified by class
    (``ml_platform.ingest.splits``, the rules validation already checked the batch against).

    The rows are held once: a time split's windows are views of one (timestamp, entity)-ordered
    frame, ``frame`` itself when it is in that order already (do not modify it while the split
    is in use), else its one sorted copy. A random split's windows are copies."""
    ts = spec.event_timestamp
    keys = [ts, spec.entity_key]
    in_order = _in_order(frame, keys)
    ordered = frame if in_order else frame.sort_values(keys, kind="stable", ignore_index=True)
    assignment = splits.assign(ordered, spec)
    bounds = _window_bounds(assignment)
    if bounds is None:
        train, val, test = (
            ordered.iloc[assignment.rows(w)].reset_index(drop=True)
            for w in (splits.TRAIN, splits.VALIDATION, splits.TEST)
        )
    else:
        train, val, test = (_rows(ordered, start, stop) for start, stop in bounds)
    hashed = pd.util.hash_pandas_object(test[[spec.entity_key, ts]], index=False)
    test.attrs["window"] = {
        "start": str(test[ts].min()),
        "end": str(test[ts].max()),
        "rows": len(test),
        "hash": hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16],
    }
    if assignment.kind == "random":
        test.attrs["window"]["split"] = f"random (seed {spec.seed})"
    return Split(train, val, test, None if bounds is None else ordered)


def encodings(spec: PipelineSpec, train: pd.DataFrame | None) -> dict[str, str]:
    """Each categorical feature's encoding: the declared one (``features.encodings``), else
    'target' when the training rows hold more than ``MAX_ONEHOT_CATEGORIES`` distinct values
    (one-hot would grow a column per value), else 'onehot'. Without training rows (a pipeline
    built for its estimator only) undeclared columns are 'onehot'."""
    chosen: dict[str, str] = {}
    for column in spec.features.categorical:
        declared = spec.features.encodings.get(column)
        if declared is None and train is not None and column in train.columns:
            many = train[column].nunique(dropna=True) > MAX_ONEHOT_CATEGORIES
            declared = "target" if many else None
        chosen[column] = declared or "onehot"
    return chosen


def _categorical_steps(spec: PipelineSpec, columns: list[str], encoding: str) -> Pipeline:
    impute = ("impute", SimpleImputer(strategy="constant", fill_value="__missing__"))
    if encoding == "target":
        # Bounded: one column per feature (one per class for multiclass), whatever the
        # cardinality; fit_transform cross-fits (5 folds, seeded) so a row's own label does
        # not leak into its encoding; unseen values get the target mean.
        folds = (StratifiedKFold if spec.is_classifier else KFold)(
            5, shuffle=True, random_state=spec.seed
        )
        return Pipeline([impute, ("target", TargetEncoder(cv=folds))])
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False, min_frequency=5)
    return Pipeline([impute, ("onehot", onehot)])


def build_pipeline(
    spec: PipelineSpec, params: dict[str, Any] | None = None, train: pd.DataFrame | None = None
) -> Pipeline:
    """The single artifact: preprocessing + estimator, so inference needs no training code.
    ``train`` (the rows it will be fitted on) picks each categorical's encoding (``encodings``).
    """
    estimator_cls = resolve_import(spec.model.estimator)
    merged = {**spec.model.params, **(params or {})}
    if "random_state" in estimator_cls().get_params():
        merged.setdefault("random_state", spec.seed)
    transformers = []
    if spec.features.model_numeric:
        transformers.append(
            (
                "num",
                SimpleImputer(strategy="median", keep_empty_features=True),
                spec.features.model_numeric,
            )
        )
    chosen = encodings(spec, train)
    for name, encoding in (("cat", "onehot"), ("cat_target", "target")):
        columns = [c for c in spec.features.categorical if chosen[c] == encoding]
        if columns:
            transformers.append((name, _categorical_steps(spec, columns, encoding), columns))
    pre = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", pre), ("model", estimator_cls(**merged))])


def features_of(frame: pd.DataFrame, spec: PipelineSpec) -> pd.DataFrame:
    """The model's input: numeric features as float64 (they may be null when served; booleans
    are 0/1), categoricals as strings (objects; booleans 'True' / 'False', as the feature store
    serves them; missing values NaN), in the declared order. Each column is converted into a
    new array once and the frame is built around those arrays: no copy of the selection first."""
    columns: dict[str, np.ndarray] = {}
    for col in spec.features.model_numeric:
        columns[col] = frame[col].astype("float64").to_numpy()  # a new array in every case
    for col in spec.features.categorical:
        values = category_strings(frame[col])
        # Missing as NaN, not None: the imputer replaces only NaN (None would reach the encoder
        # as a category of its own), and serving maps a missing value to '__missing__' too.
        # ``where`` returns a new object array (also when nothing is missing).
        columns[col] = values.where(values.notna(), np.nan).to_numpy()
    # Arrays, not Series: nothing to align (the index may repeat labels); copy=False keeps
    # them as they are instead of copying them into one block.
    out = pd.DataFrame(
        {col: columns[col] for col in spec.features.all_columns}, index=frame.index, copy=False
    )
    out.attrs = copy.deepcopy(frame.attrs)  # as frame[columns] passes them on
    return out


def predict(spec: PipelineSpec, model: Any, frame: pd.DataFrame) -> np.ndarray:
    """One value per row: P(label = 1) for binary classification, the prediction for
    regression, the most probable class's value for multiclass (what the pyfunc flavour, and so
    serving, returns; monitoring compares these). Metrics take ``scores``."""
    x = features_of(frame, spec)
    if spec.is_classification:
        return model.predict_proba(x)[:, 1]
    if spec.is_multiclass:
        return np.asarray(model.predict(x), dtype="float64")
    return model.predict(x)


def scores(
    spec: PipelineSpec, model: Any, frame: pd.DataFrame, classes: np.ndarray | None = None
) -> np.ndarray:
    """What the metrics score: ``predict``'s values, except for multiclass the (rows, classes)
    probability matrix, its columns ``classes`` (default the model's own ``classes_``; a class
    the model never saw gets probability 0)."""
    if not spec.is_multiclass:
        return predict(spec, model, frame)
    proba = model.predict_proba(features_of(frame, spec))
    return proba if classes is None else align_proba(proba, classes_of(model), classes)


def classes_of(model: Any) -> np.ndarray:
    """The class values of a fitted classifier (a Pipeline exposes its estimator's), sorted as
    ``predict_proba``'s columns are."""
    return np.asarray(model.classes_)


def align_proba(proba: np.ndarray, have: np.ndarray, want: np.ndarray) -> np.ndarray:
    """``proba`` (columns ``have``) with columns ``want``: a class missing from ``have`` gets
    probability 0, and a class of ``have`` not in ``want`` is dropped (each row renormalised), so
    two models fitted on different class sets are scored against the same classes."""
    if len(have) == len(want) and np.array_equal(have, want):
        return proba
    out = np.zeros((len(proba), len(want)))
    index = {float(c): i for i, c in enumerate(have)}
    for j, c in enumerate(want):
        if float(c) in index:
            out[:, j] = proba[:, index[float(c)]]
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.full_like(out, 1.0 / len(want)), where=total > 0)


def label_codes(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Multiclass labels as their index in ``classes`` (the probability matrix's columns), as
    ``metrics.multiclass_metrics`` and ``metrics.score`` take them."""
    y, classes = np.asarray(y, dtype=float), np.asarray(classes, dtype=float)
    codes = np.searchsorted(classes, y)
    unknown = (codes >= len(classes)) | (classes[np.minimum(codes, len(classes) - 1)] != y)
    if unknown.any():
        raise ValueError(
            f"label value(s) {sorted(set(y[unknown].tolist()))[:5]} are not classes the model "
            f"was trained on ({classes.tolist()}): the training window must hold every class"
        )
    return codes


def suggest(trial: optuna.Trial, space: dict[str, ParamSpace]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, dim in space.items():
        # ParamSpace's validator guarantees low/high for numbers and choices for categories.
        if dim.type == "int":
            params[name] = trial.suggest_int(
                name, int(dim.low or 0), int(dim.high or 0), log=dim.log
            )
        elif dim.type == "float":
            params[name] = trial.suggest_float(
                name, float(dim.low or 0), float(dim.high or 0), log=dim.log
            )
        else:
            params[name] = trial.suggest_categorical(name, list(dim.choices or []))
    return params


TrialCallback = Callable[[optuna.trial.FrozenTrial], None]
# Fractions of the iteration budget at which a warm-startable estimator reports to the pruner.
STAGES = (0.25, 0.5, 1.0)
_ITERATION_PARAMS = ("max_iter", "n_estimators")


def iteration_param(estimator: Any) -> str | None:
    """The estimator's iteration count if it can grow it by warm start (so it can be pruned)."""
    params = estimator.get_params()
    if "warm_start" not in params:
        return None
    return next((p for p in _ITERATION_PARAMS if isinstance(params.get(p), int)), None)


def _sample_weight(spec: PipelineSpec, pipe: Pipeline, y: np.ndarray) -> np.ndarray | None:
    if not (spec.is_classifier and spec.model.balance_classes):
        return None
    if "sample_weight" not in inspect.signature(pipe.named_steps["model"].fit).parameters:
        return None
    return compute_sample_weight("balanced", y)


def fit(spec: PipelineSpec, frame: pd.DataFrame, params: dict[str, Any] | None = None) -> Pipeline:
    pipe = build_pipeline(spec, params, frame)
    y = frame[spec.label].to_numpy()
    weight = _sample_weight(spec, pipe, y)
    fit_kwargs = {} if weight is None else {"model__sample_weight": weight}
    return pipe.fit(features_of(frame, spec), y, **fit_kwargs)


@dataclass(frozen=True)
class Prepared:
    """The validation problem with the preprocessing fitted once on the train window. The
    preprocessing depends on the spec only (the search space tunes the estimator), so every
    trial of a study shares it instead of refitting it (1.5 s per trial at 700k rows)."""

    x_train: Any
    y_train: np.ndarray
    weight: np.ndarray | None
    x_val: Any
    y_val: np.ndarray


def prepare(spec: PipelineSpec, split: Split) -> Prepared:
    pipe = build_pipeline(spec, train=split.train)
    y = split.train[spec.label].to_numpy()
    pre = pipe.named_steps["preprocess"]
    return Prepared(
        pre.fit_transform(features_of(split.train, spec), y),
        y,
        _sample_weight(spec, pipe, y),
        pre.transform(features_of(split.validation, spec)),
        split.validation[spec.label].to_numpy(),
    )


def _val_score(spec: PipelineSpec, model: Any, data: Prepared) -> float:
    if spec.is_multiclass:
        y_val = label_codes(data.y_val, classes_of(model))
        return score(spec.primary_metric, y_val, model.predict_proba(data.x_val))
    scores = (
        model.predict_proba(data.x_val)[:, 1]
        if spec.is_classification
        else model.predict(data.x_val)
    )
    return score(spec.primary_metric, data.y_val, scores)


def staged_score(
    spec: PipelineSpec, data: Prepared, params: dict[str, Any], trial: optuna.Trial | None = None
) -> float:
    """Fit the estimator with ``params`` and score it on the validation window. A
    warm-startable estimator grows its iterations in stages and reports each to the pruner,
    so bad trials stop early; the final stage is the full budget, so an unpruned trial scores
    like a plain fit."""
    model = build_pipeline(spec, params).named_steps["model"]
    fit_kwargs = {} if data.weight is None else {"sample_weight": data.weight}
    param = iteration_param(model) if trial is not None else None
    if param is None:
        return _val_score(spec, model.fit(data.x_train, data.y_train, **fit_kwargs), data)
    total = int(model.get_params()[param])
    value = float("nan")
    for step, fraction in enumerate(STAGES):
        model.set_params(warm_start=True, **{param: max(1, round(total * fraction))})
        model.fit(data.x_train, data.y_train, **fit_kwargs)
        value = _val_score(spec, model, data)
        trial.report(value, step)  # type: ignore[union-attr]
        if step < len(STAGES) - 1 and trial.should_prune():  # type: ignore[union-attr]
            raise optuna.TrialPruned(f"pruned at {param}={model.get_params()[param]}")
    return value


@overload
def open_storage(url: str) -> optuna.storages.BaseStorage: ...
@overload
def open_storage(url: None) -> None: ...
def open_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """An Optuna storage several processes can share. SQLite gets a long lock timeout,
    because parallel workers take turns writing to one file."""
    if url is None:
        return None
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def make_study(
    spec: PipelineSpec, storage: str | None, study_name: str, worker: int = 0
) -> optuna.Study:
    """The study in ``storage`` (created if missing). Each worker seeds its sampler with
    ``seed + worker``: the same seed in two workers would propose the same parameters."""
    direction = (
        optuna.study.StudyDirection.MAXIMIZE
        if higher_is_better(spec.primary_metric)
        else optuna.study.StudyDirection.MINIMIZE
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=study_name,
        storage=open_storage(storage),
        direction=direction,
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=spec.seed + worker),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
    )


def tune(
    spec: PipelineSpec,
    split: Split,
    storage: str | None,
    study_name: str,
    on_trial: TrialCallback | None = None,
    n_trials: int | None = None,
    worker: int = 0,
    timeout: float | None = None,
) -> optuna.Study:
    """Seeded TPE search over the spec's space, scored on the validation window, with
    median pruning where the estimator can warm-start.

    The budget is ``n_trials`` (default: the spec's) and ``timeout`` seconds (default: the
    spec's ``timeout_seconds``), whichever ends first. The study lives in ``storage`` so several
    processes can add trials to it; ``on_trial`` sees every finished trial, pruned included.
    """
    study = make_study(spec, storage, study_name, worker)
    callbacks = [lambda _study, trial: on_trial(trial)] if on_trial else None
    data = prepare(spec, split)

    def objective(trial: optuna.Trial) -> float:
        return staged_score(spec, data, suggest(trial, spec.model.search_space), trial)

    budget = n_trials if n_trials is not None else spec.model.n_trials
    if not spec.model.search_space:
        study.enqueue_trial({})
        budget = 1
    study.optimize(
        objective,
        n_trials=budget,
        callbacks=callbacks,
        timeout=timeout if timeout is not None else spec.model.timeout_seconds,
    )
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        raise RuntimeError(
            f"study '{study_name}' finished no trial within its budget "
            f"({budget} trials, {spec.model.timeout_seconds} s)"
        )
    return study


def fixed_sample(frame: pd.DataFrame, spec: PipelineSpec, rows: int = 2_000) -> pd.DataFrame:
    """A small sample that depends only on the data and the seed: the reproducibility probe.

    The rows whose (timestamp, entity) keys have the smallest seeded hashes, in key order: the
    file's row order and index do not matter, and no sort of the whole frame is needed (that
    sort took about 0.6 s at 1M rows, paid by the candidate and again by its check)."""
    keys = [spec.event_timestamp, spec.entity_key]
    n = min(rows, len(frame))
    salt = np.uint64(int(hashlib.sha256(str(spec.seed).encode()).hexdigest()[:16], 16))
    # hash_key only salts text columns; the seed is mixed into the row hashes instead
    hashed = pd.util.hash_array(
        pd.util.hash_pandas_object(frame[keys], index=False).to_numpy() ^ salt
    )
    drawn = np.argpartition(hashed, n - 1)[:n] if n < len(frame) else np.arange(n)
    return frame.iloc[drawn].sort_values(keys, kind="stable").reset_index(drop=True)


def sample_hash(spec: PipelineSpec, sample: pd.DataFrame, params: dict[str, Any]) -> str:
    """Fit with ``params`` on ``sample`` (``fixed_sample``'s rows) and hash the predictions on
    it: the reproducibility hash."""
    pin_seeds(spec.seed)
    return prediction_hash(scores(spec, fit(spec, sample, params), sample))


def reproducibility_hash(spec: PipelineSpec, frame: pd.DataFrame, params: dict[str, Any]) -> str:
    """Fit with ``params`` on the fixed sample and hash the predictions on it: equal hashes
    from two runs mean training is deterministic for this data, spec and code."""
    return sample_hash(spec, fixed_sample(frame, spec), params)


def prediction_hash(pred: np.ndarray) -> str:
    return hashlib.sha256(np.round(np.asarray(pred, dtype=float), 10).tobytes()).hexdigest()[:16]
