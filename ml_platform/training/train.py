"""The candidate-model stage: split by time, tune, fit, and track everything in one MLflow run.

Training refuses to run untracked: the tracking store is probed before any work, and every
tracking call goes through ``Tracking`` (an explicit MlflowClient; transient errors retried,
others raised as they are). If the store stays unreachable the stage raises
TrackingUnavailable and the run, if one was started, ends FAILED. Nothing is registered here
(registration is a later stage that only sees a finished candidate).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from mlflow.entities import RunInfo
from mlflow.models import infer_signature

from ml_platform.features.tables import TableInfo
from ml_platform.home import PlatformHome
from ml_platform.ingest.io import write_parquet
from ml_platform.ingest.versioning import code_version
from ml_platform.spec import PipelineSpec
from ml_platform.training import fitting, reproduce, tuning
from ml_platform.training.metrics import (
    classification_metrics,
    multiclass_metrics,
    regression_metrics,
)
from ml_platform.training.reference import log_reference
from ml_platform.training.tracking import BackgroundWriter, Tracking, pip_requirements

# (experiment name, run name, tags) -> a context manager that creates the run, yields its
# RunInfo and ends it. The Dagster resource passes one that adds the links to Dagster.
RunOpener = Callable[[str, str, dict[str, str]], AbstractContextManager[RunInfo]]


@dataclass(frozen=True)
class Candidate:
    run_id: str
    experiment_id: str
    model_uri: str
    data_version: str
    holdout_path: str
    holdout: dict[str, Any]
    best_params: dict[str, Any]
    validation_score: float
    test_metrics: dict[str, float]
    prediction_hash: str
    trials: int
    run_url: str
    # Added fields keep defaults so candidates pickled by older code still load.
    training_set_path: str = ""
    reproducibility_hash: str = ""
    pruned_trials: int = 0
    seed: int = 0
    study_name: str = ""
    training_threads: int = 0  # native threads of the fits; 0: unknown (older candidates)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trusted_types(model: Any) -> list[str]:
    """The types skops must trust to load this model: we built it, so we vouch for its types."""
    import skops.io

    return skops.io.get_untrusted_types(data=skops.io.dumps(model))


def holdout_metrics(
    spec: PipelineSpec, y: Any, scores: Any, classes: Any = None
) -> dict[str, float]:
    """The task's metrics. Multiclass: ``y`` as class codes (``fitting.label_codes``), ``scores``
    the probability matrix and ``classes`` the class values naming the per-class metrics."""
    if spec.is_classification:
        return classification_metrics(y, scores)
    if spec.is_multiclass:
        return multiclass_metrics(y, scores, None if classes is None else list(classes))
    return regression_metrics(y, scores)


def holdout_target(spec: PipelineSpec, frame: pd.DataFrame, classes: Any = None) -> np.ndarray:
    """The label of ``frame`` as the metrics take it: multiclass labels as their index in
    ``classes`` (the scored probability matrix's columns), others as they are."""
    y = frame[spec.label].to_numpy()
    return fitting.label_codes(y, classes) if spec.is_multiclass else y


def class_names(classes: Any) -> list[Any]:
    """Class values as metric-name suffixes: integral floats as ints (3.0 -> 3)."""
    return [int(c) if float(c).is_integer() else c for c in np.asarray(classes).tolist()]


def trial_logger(
    tracking: Tracking,
    experiment_id: str,
    parent_run_id: str,
    study_name: str,
    metric: str,
    writer: BackgroundWriter | None = None,
) -> fitting.TrialCallback:
    """Log each finished trial (pruned ones too) as a nested run of ``parent_run_id``; on the
    ``writer``'s thread if one is given, so the next trial starts at once."""

    def log(trial: optuna.trial.FrozenTrial) -> None:
        state = trial.state.name
        metrics = {f"val_{metric}": trial.value} if trial.value is not None else {}
        if trial.duration is not None:
            metrics["trial_seconds"] = trial.duration.total_seconds()

        def write() -> None:
            tracking.log_child_run(
                experiment_id,
                parent_run_id,
                f"trial-{trial.number}",
                trial.params,
                metrics,
                tags={
                    "optuna_study": study_name,
                    "optuna_trial": str(trial.number),
                    "optuna_state": state,
                },
                steps=trial.intermediate_values,
                step_metric=f"val_{metric}_by_stage",
                status="FAILED" if state == "FAIL" else "FINISHED",
            )

        if writer is None:
            write()
        else:
            writer.submit(write)

    return log


def log_plots(tracking: Tracking, run_id: str, study: optuna.Study, metric: str) -> None:
    """Optuna's optimization history (and each trial's pruning stages, if any) as PNGs of run
    ``run_id``, under ``plots/``."""
    from ml_platform.training import plots

    pngs = plots.search_pngs(study, metric)
    with tempfile.TemporaryDirectory(prefix="plots-") as tmp:
        for name, png in pngs.items():
            (Path(tmp) / f"{name}.png").write_bytes(png)
        tracking.call(
            lambda: tracking.client.log_artifacts(run_id, tmp, "plots"), "log the search plots"
        )


def run_params(spec: PipelineSpec, split: fitting.Split) -> dict[str, Any]:
    return {
        "estimator": spec.model.estimator,
        "seed": spec.seed,
        "task": spec.task,
        "n_trials": spec.model.n_trials,
        "timeout_seconds": spec.model.timeout_seconds,
        "balance_classes": spec.model.balance_classes,
        "primary_metric": spec.primary_metric,
        "features": ",".join(spec.features.all_columns),
        "label": spec.label,
        "train_rows": len(split.train),
        "validation_rows": len(split.validation),
        "test_rows": len(split.test),
        "test_window_start": split.test_window["start"],
        "test_window_end": split.test_window["end"],
        **{f"fixed.{k}": v for k, v in spec.model.params.items()},
        **{
            f"space.{k}": v.model_dump_json(exclude_defaults=True)
            for k, v in spec.model.search_space.items()
        },
    }


SCHEMA_SAMPLE_ROWS = 1_000


def schema_rows(frame: pd.DataFrame) -> list[int]:
    """The rows the dataset's schema is inferred from: the first ``SCHEMA_SAMPLE_ROWS`` plus
    the first null of every column that has one. MLflow infers a schema value by value (10 s
    of a 1M-row training set); a column here has one dtype, which the first rows show as well
    as all of them, and the added nulls let nullability be read off the whole set."""
    rows = set(range(min(SCHEMA_SAMPLE_ROWS, len(frame))))
    rows |= {int(np.argmax(isna)) for isna in frame.isna().to_numpy().T if isna.any()}
    return sorted(rows)


@dataclass(frozen=True)
class DatasetSummary:
    """What the run's dataset input takes from the training set: its schema rows and its
    size. Taken right after the read, so the whole frame need not be kept for it."""

    schema_sample: pd.DataFrame
    num_rows: int
    num_elements: int

    @classmethod
    def of(cls, frame: pd.DataFrame) -> DatasetSummary:
        return cls(frame.iloc[schema_rows(frame)], len(frame), int(frame.size))


def log_dataset(
    tracking: Tracking,
    run_id: str,
    spec: PipelineSpec,
    summary: DatasetSummary,
    training_set: TableInfo,
) -> None:
    """The training set as the run's dataset input (context ``training``), with public MLflow
    APIs: ``mlflow.data.from_pandas`` on the schema rows gives the name, source and schema;
    the digest (the data version) and the profile (row and element counts) describe the whole
    set; ``MlflowClient.log_inputs`` records it."""
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import Dataset, DatasetInput, InputTag

    sample = from_pandas(
        summary.schema_sample,
        source=training_set.path,
        targets=spec.label,
        name=f"{spec.name}_training_set",
        digest=training_set.data_version,
    ).to_dict()
    dataset = Dataset(
        name=sample["name"],
        digest=sample["digest"],
        source_type=sample["source_type"],
        source=sample["source"],
        schema=sample["schema"],
        profile=json.dumps({"num_rows": summary.num_rows, "num_elements": summary.num_elements}),
    )
    tracking.call(
        lambda: tracking.client.log_inputs(
            run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])]
        ),
        f"log the training set of run {run_id}",
    )


def _log_model(
    tracking: Tracking,
    run: RunInfo,
    spec: PipelineSpec,
    model: Any,
    split: fitting.Split,
    scores: Any,
    params: dict[str, Any],
) -> str:
    sample = fitting.features_of(split.test.head(5), spec)
    if spec.is_multiclass:  # the pyfunc flavour predicts the class, one value per row
        scores = model.predict(sample)
    return tracking.log_sklearn_model(
        run.experiment_id,
        run.run_id,
        model,
        {k: str(v) for k, v in params.items()},
        signature=infer_signature(sample, scores[:5]),
        input_example=sample,
        pip_requirements=pip_requirements(),
        skops_trusted_types=trusted_types(model),
    )


def _search(
    spec: PipelineSpec,
    home: PlatformHome,
    tracking: Tracking,
    split: fitting.Split,
    training_set: TableInfo,
    run: RunInfo,
) -> optuna.Study:
    """Adopt a finished parallel study of this data version (``ml-platform tune``), or run a
    seeded sequential one of our own with a nested run per trial."""
    storage = tuning.storage_url(home)
    tuned = tuning.finished_study(
        storage, tuning.tuned_study_name(spec, training_set.data_version), spec.model.n_trials
    )
    if tuned is not None:
        tracking.log_batch(
            run.run_id,
            tags={
                "optuna_study": tuned.study_name,
                "tuning": "adopted",
                "tuned_by_run": str(tuned.user_attrs.get(tuning.PARENT_RUN_ATTR, "")),
            },
        )
        return tuned
    name = f"{spec.name}-{training_set.data_version}-{run.run_id[:8]}"
    tracking.log_batch(run.run_id, tags={"optuna_study": name, "tuning": "sequential"})
    with BackgroundWriter("mlflow-trials") as writer:
        return fitting.tune(
            spec,
            split,
            storage=storage,
            study_name=name,
            on_trial=trial_logger(
                tracking, run.experiment_id, run.run_id, name, spec.primary_metric, writer
            ),
        )


def default_opener(tracking: Tracking) -> RunOpener:
    """A plain run in the named experiment (no Dagster links)."""

    def open_run(
        experiment: str, run_name: str, tags: dict[str, str]
    ) -> AbstractContextManager[RunInfo]:
        return tracking.run(tracking.experiment_id(experiment), run_name, tags)

    return open_run


def train_candidate(
    spec: PipelineSpec,
    home: PlatformHome,
    tracking: Tracking,
    training_set: TableInfo,
    tags: dict[str, str],
    open_run: RunOpener | None = None,
) -> Candidate:
    """Tune and fit the candidate, tracked as one MLflow run with a nested run per trial.

    ``open_run`` creates and ends the parent run (the Dagster resource passes its own); by
    default a plain MLflow run in the pipeline's experiment.
    """
    tracking.probe()  # refuse before any work if tracking is down
    frame = pd.read_parquet(training_set.path)
    # What needs the whole training set is taken now; from here on the split holds the rows
    # (once: a time split's windows are views of one ordered frame).
    probe = fitting.fixed_sample(frame, spec)
    summary = DatasetSummary.of(frame)
    split = fitting.time_split(frame, spec)
    del frame
    fitting.pin_seeds(spec.seed)
    metric = spec.primary_metric
    all_tags = {
        **tags,
        "pipeline": spec.name,
        "code_version": code_version(),
        "data_version": training_set.data_version,
        "seed": str(spec.seed),
        "holdout_hash": split.test_window["hash"],
        # the train/serve contract: serving reads features through this service
        "feature_service": training_set.feature_service or "none",
    }
    opener = open_run or default_opener(tracking)
    with opener(spec.name, f"{spec.name}-candidate", all_tags) as run:
        run_id, experiment_id = run.run_id, run.experiment_id
        params = run_params(spec, split)
        tracking.log_batch(run_id, params=params, what="log the params of run")
        log_dataset(tracking, run_id, spec, summary, training_set)
        started = time.perf_counter()
        study = _search(spec, home, tracking, split, training_set, run)
        study_name = study.study_name
        tuning_seconds = time.perf_counter() - started
        best = study.best_trial.params
        # Final fit on train + validation, scored once on the frozen test window.
        fitting_rows = split.fitting_rows()
        final = fitting.fit(spec, fitting_rows, best)
        scores = fitting.scores(spec, final, split.test)
        classes = fitting.classes_of(final) if spec.is_multiclass else None
        test_metrics = holdout_metrics(
            spec,
            holdout_target(spec, split.test, classes),
            scores,
            None if classes is None else class_names(classes),
        )
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
        repro = fitting.sample_hash(spec, probe, best)
        threads = reproduce.native_threads()
        best_params = {f"best.{k}": v for k, v in best.items()}
        log_plots(tracking, run_id, study, metric)
        holdout_path = write_parquet(
            split.test,
            home.pipeline_dir(spec.name) / "holdouts" / f"{split.test_window['hash']}.parquet",
        )
        model_uri = _log_model(tracking, run, spec, final, split, scores, {**params, **best_params})
        log_reference(tracking, run_id, fitting_rows, spec)
        pred_hash = fitting.prediction_hash(scores)
        # One batch after the model, so the metrics are linked to it (MLflow 3's model view).
        tracking.log_batch(
            run_id,
            params=best_params,
            metrics={
                **{f"test_{k}": v for k, v in test_metrics.items()},
                f"best_val_{metric}": study.best_value,
                "tuning_seconds": tuning_seconds,
                "trials": len(study.trials),
                "pruned_trials": pruned,
            },
            tags={
                "prediction_hash": pred_hash,
                "model_uri": model_uri,
                "reproducibility_hash": repro,
                "training_threads": str(threads),
            },
            model_id=model_uri.removeprefix("models:/"),
            what="log the results of run",
        )
    return Candidate(
        run_id=run_id,
        experiment_id=experiment_id,
        model_uri=model_uri,
        data_version=training_set.data_version,
        holdout_path=str(holdout_path),
        holdout=split.test_window,
        best_params=best,
        validation_score=float(study.best_value),
        test_metrics=test_metrics,
        prediction_hash=pred_hash,
        trials=len(study.trials),
        run_url=tracking.run_url(experiment_id, run_id),
        training_set_path=training_set.path,
        reproducibility_hash=repro,
        pruned_trials=pruned,
        seed=spec.seed,
        study_name=study_name,
        training_threads=threads,
    )


def check_reproducible(
    spec: PipelineSpec, candidate: Candidate, timeout: float = reproduce.TIMEOUT_SECONDS
) -> reproduce.Verdict:
    """Retrain on the candidate's fixed sample with its parameters in a fresh Python process
    with another native thread count, and compare the prediction hash with the recorded one."""
    return reproduce.check(
        spec,
        candidate.training_set_path,
        candidate.best_params,
        candidate.reproducibility_hash,
        candidate.training_threads,
        timeout=timeout,
    )


def holdout_of(candidate: Candidate) -> pd.DataFrame:
    return pd.read_parquet(Path(candidate.holdout_path))
