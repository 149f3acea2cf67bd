"""The candidate-model stage: split by time, tune, fit, and track everything in one MLflow run.

Training refuses to run untracked: the tracking store is probed (with retries) before any work,
and every later tracking call is retried too; if the store stays unreachable the stage raises
TrackingUnavailable and the run, if one was started, ends FAILED. Nothing is registered here
(registration is a later stage that only sees a finished candidate).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
import pandas as pd
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.models import infer_signature
from mlflow.types import Schema

from ml_platform.features.tables import TableInfo
from ml_platform.home import PlatformHome
from ml_platform.ingest.io import write_parquet
from ml_platform.ingest.versioning import code_version
from ml_platform.spec import PipelineSpec
from ml_platform.training import fitting, tuning
from ml_platform.training.metrics import classification_metrics, regression_metrics
from ml_platform.training.tracking import BackgroundWriter, Tracking, pip_requirements

# (experiment_id, run_name, tags) -> a context manager yielding the active run's id.
RunOpener = Callable[[str, str, dict[str, str]], AbstractContextManager[str]]


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trusted_types(model: Any) -> list[str]:
    """The types skops must trust to load this model: we built it, so we vouch for its types."""
    import skops.io

    return skops.io.get_untrusted_types(data=skops.io.dumps(model))


def holdout_metrics(spec: PipelineSpec, y: Any, scores: Any) -> dict[str, float]:
    if spec.is_classification:
        return classification_metrics(y, scores)
    return regression_metrics(y, scores)


def trial_logger(tracking: Tracking, experiment_id: str, parent_run_id: str, study_name: str,
                 metric: str, writer: BackgroundWriter | None = None) -> fitting.TrialCallback:
    """Log each finished trial (pruned ones too) as a nested run of ``parent_run_id``; on the
    ``writer``'s thread if one is given, so the next trial starts at once."""
    def log(trial: optuna.trial.FrozenTrial) -> None:
        state = trial.state.name
        metrics = {f"val_{metric}": trial.value} if trial.value is not None else {}
        if trial.duration is not None:
            metrics["trial_seconds"] = trial.duration.total_seconds()

        def write() -> None:
            tracking.log_child_run(
                experiment_id, parent_run_id, f"trial-{trial.number}", trial.params, metrics,
                tags={"optuna_study": study_name, "optuna_trial": str(trial.number),
                      "optuna_state": state},
                steps=trial.intermediate_values, step_metric=f"val_{metric}_by_stage",
                status="FAILED" if state == "FAIL" else "FINISHED")

        if writer is None:
            write()
        else:
            writer.submit(write)
    return log


def log_plots(tracking: Tracking, run_id: str, study: optuna.Study, metric: str) -> None:
    """The optimisation history (and each trial's pruning stages, if any) as PNGs of run
    ``run_id``, under ``plots/``."""
    from ml_platform.training import plots

    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    pngs = {"optimization_history": plots.optimization_history_png(
        [(t.number, t.value) for t in study.trials if t.value is not None], maximize, metric)}
    curves = {t.number: t.intermediate_values for t in study.trials if t.intermediate_values}
    if curves:
        pngs["intermediate_values"] = plots.intermediate_values_png(curves, metric)
    with tempfile.TemporaryDirectory(prefix="plots-") as tmp:
        for name, png in pngs.items():
            (Path(tmp) / f"{name}.png").write_bytes(png)
        tracking.call(lambda: tracking.client.log_artifacts(run_id, tmp, "plots"),
                      "log the search plots")


def run_params(spec: PipelineSpec, split: fitting.Split) -> dict[str, Any]:
    return {"estimator": spec.model.estimator, "seed": spec.seed, "task": spec.task,
            "n_trials": spec.model.n_trials, "timeout_seconds": spec.model.timeout_seconds,
            "balance_classes": spec.model.balance_classes, "primary_metric": spec.primary_metric,
            "features": ",".join(spec.features.all_columns), "label": spec.label,
            "train_rows": len(split.train), "validation_rows": len(split.validation),
            "test_rows": len(split.test), "test_window_start": split.test_window["start"],
            "test_window_end": split.test_window["end"],
            **{f"fixed.{k}": v for k, v in spec.model.params.items()},
            **{f"space.{k}": v.model_dump_json(exclude_defaults=True)
               for k, v in spec.model.search_space.items()}}


SCHEMA_SAMPLE_ROWS = 1_000


class TrainingSetDataset(PandasDataset):
    """MLflow's pandas dataset with its schema inferred from a few rows.

    MLflow infers the schema value by value over the whole frame (10 s of a 1M-row training
    set). A column here has one dtype, which the first rows show as well as all of them; the
    rows add the first null of every column that has one, so nullability is read off the whole
    set. The profile (row and element counts) and the digest also describe the whole set.
    """

    @cached_property
    def schema(self) -> Schema | None:
        df = self._df
        rows = set(range(min(SCHEMA_SAMPLE_ROWS, len(df))))
        rows |= {int(np.argmax(isna)) for isna in df.isna().to_numpy().T if isna.any()}
        return PandasDataset(df.iloc[sorted(rows)], source=self.source).schema


def _log_dataset(spec: PipelineSpec, frame: pd.DataFrame, training_set: TableInfo) -> None:
    dataset = TrainingSetDataset(frame, source=resolve_dataset_source(training_set.path),
                                 targets=spec.label, name=f"{spec.name}_training_set",
                                 digest=training_set.data_version)
    mlflow.log_input(dataset, context="training")


def _log_model(spec: PipelineSpec, model: Any, split: fitting.Split, scores: Any) -> str:
    sample = fitting.features_of(split.test.head(5), spec)
    info = mlflow.sklearn.log_model(
        model, name="model", signature=infer_signature(sample, scores[:5]),
        input_example=sample, pip_requirements=pip_requirements(),
        skops_trusted_types=trusted_types(model))
    return info.model_uri


def _search(spec: PipelineSpec, home: PlatformHome, tracking: Tracking, split: fitting.Split,
            training_set: TableInfo, experiment_id: str, run_id: str) -> optuna.Study:
    """Adopt a finished parallel study of this data version (``ml-platform tune``), or run a
    seeded sequential one of our own with a nested run per trial."""
    storage = tuning.storage_url(home)
    tuned = tuning.finished_study(storage, tuning.tuned_study_name(spec, training_set.data_version),
                                  spec.model.n_trials)
    if tuned is not None:
        mlflow.set_tags({"optuna_study": tuned.study_name, "tuning": "adopted",
                         "tuned_by_run": str(tuned.user_attrs.get(tuning.PARENT_RUN_ATTR, ""))})
        return tuned
    name = f"{spec.name}-{training_set.data_version}-{run_id[:8]}"
    mlflow.set_tags({"optuna_study": name, "tuning": "sequential"})
    with BackgroundWriter("mlflow-trials") as writer:
        return fitting.tune(spec, split, storage=storage, study_name=name,
                             on_trial=trial_logger(tracking, experiment_id, run_id, name,
                                                   spec.primary_metric, writer))


def train_candidate(spec: PipelineSpec, home: PlatformHome, tracking: Tracking,
                    training_set: TableInfo, tags: dict[str, str],
                    open_run: RunOpener | None = None) -> Candidate:
    """Tune and fit the candidate, tracked as one MLflow run with a nested run per trial.

    ``open_run`` starts the parent run (the Dagster resource passes its own); by default a plain
    MLflow run in the pipeline's experiment.
    """
    tracking.probe()  # refuse before any work if tracking is down
    frame = pd.read_parquet(training_set.path)
    split = fitting.time_split(frame, spec)
    experiment_id = tracking.experiment_id(spec.name)
    fitting.pin_seeds(spec.seed)
    metric = spec.primary_metric
    all_tags = {**tags, "pipeline": spec.name, "code_version": code_version(),
                "data_version": training_set.data_version, "seed": str(spec.seed),
                "holdout_hash": split.test_window["hash"],
                # the train/serve contract: serving reads features through this service
                "feature_service": training_set.feature_service or "none"}
    opener = open_run or tracking.run
    with opener(experiment_id, f"{spec.name}-candidate", all_tags) as run_id:
        mlflow.log_params(run_params(spec, split))
        _log_dataset(spec, frame, training_set)
        started = time.perf_counter()
        study = _search(spec, home, tracking, split, training_set, experiment_id, run_id)
        study_name = study.study_name
        tuning_seconds = time.perf_counter() - started
        best = study.best_trial.params
        # Final fit on train + validation, scored once on the frozen test window.
        final = fitting.fit(spec, pd.concat([split.train, split.validation]), best)
        scores = fitting.predict(spec, final, split.test)
        test_metrics = holdout_metrics(spec, split.test[spec.label].to_numpy(), scores)
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
        repro = fitting.reproducibility_hash(spec, frame, best)
        mlflow.log_params({f"best.{k}": v for k, v in best.items()})
        mlflow.log_metrics({**{f"test_{k}": v for k, v in test_metrics.items()},
                            f"best_val_{metric}": study.best_value,
                            "tuning_seconds": tuning_seconds, "trials": len(study.trials),
                            "pruned_trials": pruned})
        log_plots(tracking, run_id, study, metric)
        holdout_path = write_parquet(split.test, home.pipeline_dir(spec.name) / "holdouts" /
                                     f"{split.test_window['hash']}.parquet")
        model_uri = _log_model(spec, final, split, scores)
        pred_hash = fitting.prediction_hash(scores)
        mlflow.set_tags({"prediction_hash": pred_hash, "model_uri": model_uri,
                         "reproducibility_hash": repro})
    return Candidate(
        run_id=run_id, experiment_id=experiment_id, model_uri=model_uri,
        data_version=training_set.data_version, holdout_path=str(holdout_path),
        holdout=split.test_window, best_params=best, validation_score=float(study.best_value),
        test_metrics=test_metrics, prediction_hash=pred_hash, trials=len(study.trials),
        run_url=tracking.run_url(experiment_id, run_id), training_set_path=training_set.path,
        reproducibility_hash=repro, pruned_trials=pruned, seed=spec.seed, study_name=study_name)


def check_reproducible(spec: PipelineSpec, candidate: Candidate) -> tuple[bool, str]:
    """Retrain on the candidate's fixed sample with its parameters and compare the hash."""
    frame = pd.read_parquet(candidate.training_set_path)
    again = fitting.reproducibility_hash(spec, frame, candidate.best_params)
    return again == candidate.reproducibility_hash, again


def holdout_of(candidate: Candidate) -> pd.DataFrame:
    return pd.read_parquet(Path(candidate.holdout_path))
