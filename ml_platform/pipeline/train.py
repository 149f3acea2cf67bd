"""The candidate-model stage: split by time, tune, fit, and track everything in one MLflow run."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature

from ml_platform.core import training
from ml_platform.core.io import write_parquet
from ml_platform.core.metrics import classification_metrics, regression_metrics
from ml_platform.core.tracking import Tracking, pip_requirements
from ml_platform.core.versioning import code_version
from ml_platform.home import PlatformHome
from ml_platform.pipeline.features import TableInfo
from ml_platform.spec import PipelineSpec


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


def _log_trial(number: int, params: dict[str, Any], value: float, metric: str) -> None:
    with mlflow.start_run(run_name=f"trial-{number}", nested=True):
        mlflow.log_params(params)
        mlflow.log_metric(f"val_{metric}", value)


def train_candidate(spec: PipelineSpec, home: PlatformHome, tracking: Tracking,
                    training_set: TableInfo, tags: dict[str, str]) -> Candidate:
    frame = pd.read_parquet(training_set.path)
    split = training.time_split(frame, spec)
    holdout_path = write_parquet(
        split.test, home.pipeline_dir(spec.name) / "holdouts" / f"{split.test_window['hash']}"
        ".parquet")
    training.pin_seeds(spec.seed)
    experiment_id = tracking.experiment_id(spec.name)
    mlflow.set_tracking_uri(tracking.tracking_uri)
    all_tags = {**tags, "pipeline": spec.name, "code_version": code_version(),
                "data_version": training_set.data_version,
                "holdout_hash": split.test_window["hash"]}
    metric = spec.primary_metric
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{spec.name}-candidate",
                          tags=all_tags) as run:
        mlflow.log_params({"estimator": spec.model.estimator, "seed": spec.seed,
                           "n_trials": spec.model.n_trials, "task": spec.task,
                           "features": ",".join(spec.features.all_columns),
                           "train_rows": len(split.train), "validation_rows": len(split.validation),
                           "test_rows": len(split.test), **{f"fixed.{k}": v for k, v in
                                                            spec.model.params.items()}})
        dataset = mlflow.data.from_pandas(frame, source=training_set.path, targets=spec.label,
                                          name=f"{spec.name}_training_set",
                                          digest=training_set.data_version)
        mlflow.log_input(dataset, context="training")
        started = time.perf_counter()
        study = training.tune(
            spec, split, storage=home.optuna_storage,
            study_name=f"{spec.name}-{training_set.data_version}-{run.info.run_id[:8]}",
            on_trial=lambda n, p, v: _log_trial(n, p, v, metric))
        best = study.best_trial.params
        # Final fit on train + validation, scored once on the frozen test window.
        final = training.fit(spec, pd.concat([split.train, split.validation]), best)
        scores = training.predict(spec, final, split.test)
        test_metrics = holdout_metrics(spec, split.test[spec.label].to_numpy(), scores)
        mlflow.log_params({f"best.{k}": v for k, v in best.items()})
        mlflow.log_metrics({f"test_{k}": v for k, v in test_metrics.items()})
        mlflow.log_metrics({f"best_val_{metric}": study.best_value,
                            "tuning_seconds": time.perf_counter() - started,
                            "trials": len(study.trials)})
        sample = training.features_of(split.test.head(5), spec)
        model_info = mlflow.sklearn.log_model(
            final, name="model", signature=infer_signature(sample, scores[:5]),
            input_example=sample, pip_requirements=pip_requirements(),
            skops_trusted_types=trusted_types(final))
        pred_hash = training.prediction_hash(scores)
        mlflow.set_tags({"prediction_hash": pred_hash, "model_uri": model_info.model_uri})
    return Candidate(
        run_id=run.info.run_id, experiment_id=experiment_id, model_uri=model_info.model_uri,
        data_version=training_set.data_version, holdout_path=str(holdout_path),
        holdout=split.test_window, best_params=best, validation_score=float(study.best_value),
        test_metrics=test_metrics, prediction_hash=pred_hash, trials=len(study.trials),
        run_url=tracking.run_url(experiment_id, run.info.run_id))


def holdout_of(candidate: Candidate) -> pd.DataFrame:
    return pd.read_parquet(Path(candidate.holdout_path))
