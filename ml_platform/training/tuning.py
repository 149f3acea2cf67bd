"""Parallel tuning: N worker processes add trials to one Optuna study in a shared storage.

The storage is SQLite in the platform home by default and a database URL in production
(``ML_PLATFORM_OPTUNA_STORAGE``, e.g. ``postgresql+psycopg2://...``), where the workers may be
pods instead of local processes (``python -m ml_platform.training.tuning``; see
docs/fitting.md). Every worker logs its trials as nested MLflow runs under one parent run. The
candidate-model asset adopts a finished study of the same data version (see ``tuned_study``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from threadpoolctl import threadpool_limits

from ml_platform.features.tables import TableInfo
from ml_platform.home import PlatformHome
from ml_platform.ingest.versioning import code_version
from ml_platform.spec import PipelineSpec
from ml_platform.training import fitting
from ml_platform.training.tracking import Tracking

STORAGE_ENV = "ML_PLATFORM_OPTUNA_STORAGE"
PARENT_RUN_ATTR = "mlflow_parent_run_id"


def storage_url(home: PlatformHome, explicit: str | None = None) -> str:
    return explicit or os.environ.get(STORAGE_ENV) or home.optuna_storage


def tuned_study_name(spec: PipelineSpec, data_version: str) -> str:
    return f"{spec.name}-{data_version}-tuned"


def latest_training_set(spec: PipelineSpec, home: PlatformHome) -> TableInfo:
    """The newest training set of the pipeline (files are named by their content hash)."""
    files = sorted(
        (home.pipeline_dir(spec.name) / "training_sets").glob("*.parquet"),
        key=lambda p: p.stat().st_mtime,
    )
    if not files:
        raise FileNotFoundError(
            f"no training set for '{spec.name}' in {home.root}: materialize "
            f"{spec.name}_training_set first (ml-platform run {spec.name})"
        )
    frame = pd.read_parquet(files[-1])
    return TableInfo(str(files[-1]), len(frame), files[-1].stem, list(frame.columns))


def shares(total: int, workers: int) -> list[int]:
    """Split a trial budget exactly: the sum is ``total``, so no trial is lost or extra."""
    return [total // workers + (i < total % workers) for i in range(workers)]


@dataclass(frozen=True)
class WorkerJob:
    spec: PipelineSpec
    training_set_path: str
    storage: str
    study_name: str
    trials: int
    worker: int
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    timeout: float | None = None
    threads: int | None = None


def run_worker(job: WorkerJob) -> int:
    """One worker: its share of the budget on the shared study; returns the trials it ran."""
    from ml_platform.training.train import trial_logger

    spec = job.spec
    split = fitting.time_split(pd.read_parquet(job.training_set_path), spec)
    fitting.pin_seeds(spec.seed + job.worker)
    tracking = Tracking(job.tracking_uri)
    ran: list[int] = []
    log = trial_logger(
        tracking, job.experiment_id, job.parent_run_id, job.study_name, spec.primary_metric
    )

    def on_trial(trial: optuna.trial.FrozenTrial) -> None:
        ran.append(trial.number)
        log(trial)

    # N workers each using every core would oversubscribe the machine (OpenMP in the trees).
    with threadpool_limits(job.threads):
        fitting.tune(
            spec,
            split,
            job.storage,
            job.study_name,
            on_trial=on_trial,
            n_trials=job.trials,
            worker=job.worker,
            timeout=job.timeout,
        )
    return len(ran)


@dataclass
class TuneResult:
    study_name: str
    parent_run_id: str
    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    per_worker: list[int] = field(default_factory=list)
    seconds: float = 0.0


def _summary(study: optuna.Study) -> list[dict[str, Any]]:
    return [
        {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
        for t in study.trials
    ]


def tune_parallel(
    spec: PipelineSpec,
    home: PlatformHome,
    tracking: Tracking,
    training_set: TableInfo,
    workers: int,
    n_trials: int,
    storage: str | None = None,
    study_name: str | None = None,
    timeout: float | None = None,
) -> TuneResult:
    """Run ``workers`` processes on one study until ``n_trials`` trials are done in total."""
    from ml_platform.training.train import log_plots

    if workers < 1 or n_trials < 1:
        raise ValueError(f"workers ({workers}) and trials ({n_trials}) must be at least 1")
    tracking.probe()  # refuse to tune untracked
    url = storage_url(home, storage)
    name = study_name or tuned_study_name(spec, training_set.data_version)
    experiment_id = tracking.experiment_id(spec.name)
    tags = {
        "pipeline": spec.name,
        "code_version": code_version(),
        "optuna_study": name,
        "data_version": training_set.data_version,
        "seed": str(spec.seed),
        "workers": str(workers),
    }
    with tracking.run(experiment_id, f"{spec.name}-tune", tags) as run:
        parent = run.run_id
        # Created once here, so workers only load it (no creation race between them).
        fitting.make_study(spec, url, name).set_user_attr(PARENT_RUN_ATTR, parent)
        threads = max(1, (os.cpu_count() or 1) // workers)
        jobs = [
            WorkerJob(
                spec,
                training_set.path,
                url,
                name,
                share,
                i,
                tracking.tracking_uri,
                experiment_id,
                parent,
                timeout,
                threads,
            )
            for i, share in enumerate(shares(n_trials, workers))
            if share
        ]
        started = time.perf_counter()
        # spawn, not fork: MLflow and SQLAlchemy state must not be shared with children.
        with ProcessPoolExecutor(
            len(jobs), mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            per_worker = list(pool.map(run_worker, jobs))
        seconds = time.perf_counter() - started
        study = optuna.load_study(study_name=name, storage=fitting.open_storage(url))
        tracking.log_batch(
            parent,
            params={
                "workers": workers,
                "n_trials": n_trials,
                **{f"best.{k}": v for k, v in study.best_params.items()},
            },
            metrics={
                f"best_val_{spec.primary_metric}": study.best_value,
                "trials": len(study.trials),
                "tuning_seconds": seconds,
            },
            what="log the tuning results of run",
        )
        log_plots(tracking, parent, study, spec.primary_metric)
    return TuneResult(
        name,
        parent,
        study.best_params,
        float(study.best_value),
        _summary(study),
        per_worker,
        seconds,
    )


def finished_study(storage: str, name: str, n_trials: int) -> optuna.Study | None:
    """A study that already holds ``n_trials`` finished trials (e.g. from ``ml-platform tune``),
    or None."""
    try:
        study = optuna.load_study(study_name=name, storage=fitting.open_storage(storage))
    except KeyError:
        return None
    done = [t for t in study.trials if t.state.is_finished()]
    complete = any(t.state == optuna.trial.TrialState.COMPLETE for t in done)
    return study if complete and len(done) >= n_trials else None


def main(argv: list[str] | None = None) -> None:
    """One worker as a process of its own (a Kubernetes pod of an Indexed Job)."""
    from ml_platform.home import platform_home
    from ml_platform.spec import load_spec_file

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", type=Path, required=True, help="The pipeline's defs.yaml.")
    parser.add_argument("--training-set", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--parent-run-id", required=True)
    parser.add_argument("--trials", type=int, required=True, help="Total budget of the study.")
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument(
        "--index", type=int, default=int(os.environ.get("JOB_COMPLETION_INDEX", "0"))
    )
    args = parser.parse_args(argv)
    spec = load_spec_file(args.spec)
    home = platform_home()
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or home.tracking_uri
    tracking = Tracking(tracking_uri)
    job = WorkerJob(
        spec,
        args.training_set,
        storage_url(home),
        args.study,
        shares(args.trials, args.workers)[args.index],
        args.index,
        tracking_uri,
        tracking.experiment_id(spec.name),
        args.parent_run_id,
    )
    print(f"worker {args.index}: {run_worker(job)} trials on study {args.study}")


if __name__ == "__main__":
    main()
