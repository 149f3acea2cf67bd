"""`ml-platform run`: a pipeline's training job on the platform home's Dagster instance, with the
executor the definitions declare (the one the UI and sensors use), plus progress and a summary.

It is ``dagster job execute`` with a console view: the job is loaded from the code location's
module, executed by the declared executor (in-process: in this process), the run and its events
are stored in the instance, and the UI shows it like any other run. The terminal gets this
command's own lines only: step transitions, warnings the steps log, the summary. Everything
else the run prints (Dagster's event lines, library logs, dbt's output) is in the run's event
log and compute logs, which the summary names; ``verbose`` shows it as well.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import psutil
from rich.console import Console
from rich.table import Table

from ml_platform.components.common import pipeline_pool
from ml_platform.components.ml_pipeline import training_job_name
from ml_platform.home import activate_home
from ml_platform.spec import PipelineSpec

DEFINITIONS = "ml_platform.definitions:defs"
LAUNCH_TAG = "ml_platform/launch"
PID_TAG, HOST_TAG = "ml_platform/pid", "ml_platform/host"
_STEP_EVENTS = {
    dg.DagsterEventType.STEP_START: "started",
    dg.DagsterEventType.STEP_SUCCESS: "done",
    dg.DagsterEventType.STEP_FAILURE: "FAILED",
    dg.DagsterEventType.STEP_SKIPPED: "skipped",
}
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


# The summary reports failures; Dagster's console logger would print every event and traceback.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class PipelineBusy(RuntimeError):
    """Another run of the pipeline is in progress."""


def quiet_warnings() -> None:
    """Library warnings (beta APIs, schema hints) are noise in a CLI run summary."""
    warnings.simplefilter("ignore")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # the step processes, at this CLI's start
    logging.getLogger("dagster").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def load_definitions(target: str = DEFINITIONS) -> dg.Definitions:
    """``module:attribute``: a Definitions object or a function returning one."""
    module, _, attr = target.partition(":")
    defs = getattr(importlib.import_module(module), attr)
    return defs if isinstance(defs, dg.Definitions) else defs()


def training_job(target: str, job_name: str) -> dg.JobDefinition:
    """The job, rebuilt from its code location in each process Dagster starts for a step."""
    return load_definitions(target).resolve_job_def(job_name)


@contextmanager
def terminal_only(console: Console, verbose: bool) -> Iterator[None]:
    """While the run executes, ``console`` writes to the terminal through a descriptor of its
    own and, unless ``verbose``, whatever else writes to stdout or stderr goes to /dev/null.

    Dagster captures a run's stdout and stderr into its compute log by pointing descriptors 1
    and 2 at a file, with a ``tail`` process mirroring that file to the terminal: that mirror
    shows every library's output, puts this command's progress lines into the compute log, and
    can lose the last lines when the capture ends. The descriptors are restored afterwards, so
    an error raised out of the run is printed as usual."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    own = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
    previous, console.file = console.file, own
    try:
        if not verbose:
            devnull = os.open(os.devnull, os.O_WRONLY)
            for fd in saved:
                os.dup2(devnull, fd)
            os.close(devnull)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        console.file = previous
        own.close()


def _follow(
    instance: dg.DagsterInstance,
    launch: str,
    done: threading.Event,
    console: Console,
    started: float,
    verbose: bool = False,
) -> None:
    """Print step transitions as the run's events land in the instance."""
    run_id, cursor = None, None
    while True:
        finished = done.is_set()
        if run_id is None:
            runs = instance.get_run_records(dg.RunsFilter(tags={LAUNCH_TAG: launch}), limit=1)
            run_id = runs[0].dagster_run.run_id if runs else None
        if run_id is not None:
            conn = instance.get_records_for_run(run_id, cursor=cursor)
            cursor = conn.cursor
            for record in conn.records:
                _print_event(record.event_log_entry, console, started, verbose)
        if finished:
            return
        done.wait(0.5)


def _print_event(entry: Any, console: Console, started: float, verbose: bool = False) -> None:
    event = entry.dagster_event
    shown = logging.INFO if verbose else logging.WARNING
    if event is None and entry.level >= shown and entry.user_message:
        # context.log from a step: warnings (e.g. orphaned MLflow runs marked failed); the
        # integrations' info lines (dagster-dbt's commands) only with --verbose
        console.print(
            f"  [{time.perf_counter() - started:6.1f}s]         "
            f"[dim]{entry.step_key}: {entry.user_message}[/dim]"
        )
        return
    if event is None or event.event_type not in _STEP_EVENTS:
        return
    label = _STEP_EVENTS[event.event_type]
    colour = {"FAILED": "red", "done": "green"}.get(label, "dim")
    console.print(
        f"  [{time.perf_counter() - started:6.1f}s] "
        f"[{colour}]{label:>7}[/{colour}] {event.step_key}"
    )


def orphaned(run: dg.DagsterRun) -> bool:
    """A run of `ml-platform run` on this host whose process is gone (killed): Dagster's run
    monitoring only watches runs that a run launcher started."""
    pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
    return pid is not None and host == socket.gethostname() and not psutil.pid_exists(int(pid))


def holds_pool(run: dg.DagsterRun, pool: str) -> bool:
    concurrency = run.run_op_concurrency
    return concurrency is not None and pool in (concurrency.all_pools or [])


def refuse_if_busy(instance: dg.DagsterInstance, pipeline: str) -> None:
    """The run queue lets one run per pipeline start (its pool, dagster.yaml); a direct run,
    which does not queue, honours that too. A run left in progress by a killed
    `ml-platform run` is marked failed instead."""
    pool = pipeline_pool(pipeline)
    busy = instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS), limit=200)
    for record in busy:
        run = record.dagster_run
        if not holds_pool(run, pool):
            continue
        if not orphaned(run):
            raise PipelineBusy(
                f"run {run.run_id} of '{pipeline}' is {run.status.value}: wait "
                f"for it to finish, or terminate it in the Dagster UI"
            )
        instance.report_run_failed(
            run,
            f"the `ml-platform run` process {run.tags[PID_TAG]} "
            f"that executed this run is gone (killed?); marked failed",
        )


JOBS = ("training", "online", "monitoring", "online_evaluation")


def run_pipeline(
    spec: PipelineSpec,
    console: Console,
    target: str = DEFINITIONS,
    verbose: bool = False,
    job: str = "training",
) -> bool:
    """Execute one of the pipeline's jobs (``JOBS``: ``<pipeline>_<job>_job``, the training job
    by default); False if it failed (the summary says why). With ``verbose``, Dagster's console
    log and everything the run prints are shown too."""
    if job not in JOBS:
        raise ValueError(f"no job '{job}': choose one of {', '.join(JOBS)}")
    if not verbose:
        quiet_warnings()
    home = activate_home()
    job_name = training_job_name(spec.name) if job == "training" else f"{spec.name}_{job}_job"
    launch = str(uuid.uuid4())
    reconstructable = dg.build_reconstructable_job(
        "ml_platform.runner",
        "training_job",
        reconstructable_kwargs={"target": target, "job_name": job_name},
    )
    console.print(f"running [bold]{spec.name}[/bold] ({job_name}) on home {home.root}")
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        try:
            refuse_if_busy(instance, spec.name)
        except PipelineBusy as exc:
            console.print(f"[red]error:[/red] {exc}")
            return False
        done = threading.Event()
        follower = threading.Thread(
            target=_follow,
            name="progress",
            args=(instance, launch, done, console, started, verbose),
        )
        with terminal_only(console, verbose):
            follower.start()
            try:
                with dg.execute_job(
                    reconstructable,
                    instance=instance,
                    run_config={} if verbose else QUIET,
                    tags=_tags(launch),
                    raise_on_error=False,
                ) as result:
                    done.set()
                    follower.join()
                    print_summary(spec, instance, result, console, time.perf_counter() - started)
                    return result.success
            finally:
                done.set()
                follower.join()


def _tags(launch: str) -> dict[str, str]:
    """Who launched the run, from which process on which host (``orphaned``)."""
    return {
        "launched_by": "ml-platform",
        LAUNCH_TAG: launch,
        PID_TAG: str(os.getpid()),
        HOST_TAG: socket.gethostname(),
    }


def _run_metadata(instance: dg.DagsterInstance, key: str, run_id: str) -> dict[str, Any]:
    """The metadata of ``key``'s materialization in ``run_id``, or {} if it has none."""
    for record in instance.fetch_materializations(dg.AssetKey(key), limit=20).records:
        if record.run_id == run_id and record.asset_materialization is not None:
            return {k: v.value for k, v in record.asset_materialization.metadata.items()}
    return {}


def _root_cause(event: Any) -> str:
    """The user's error, not Dagster's wrapper around it."""
    error = event.step_failure_data.error
    user_failure = event.step_failure_data.user_failure_data
    if user_failure is not None and user_failure.description:
        return user_failure.description
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def _captured_logs(instance: dg.DagsterInstance, result: Any) -> str:
    """Where Dagster's compute log manager put the run's stdout and stderr: a directory for the
    local manager (the embedded profile), else the manager's URL, else the UI."""
    captured = [e for e in result.all_events if e.event_type_value == "LOGS_CAPTURED"]
    if not captured:
        return "the Dagster UI (nothing was captured)"
    data = captured[0].event_specific_data
    manager = instance.compute_log_manager
    local_path = getattr(manager, "get_captured_local_path", None)
    if local_path is not None:
        key = manager.build_log_key_for_run(result.run_id, data.file_key)
        return str(Path(local_path(key, "out")).parent)
    return data.external_url or "the Dagster UI (the run's stdout/stderr)"


def print_summary(
    spec: PipelineSpec, instance: dg.DagsterInstance, result: Any, console: Console, seconds: float
) -> None:
    n, run_id = spec.name, result.run_id
    validated = _run_metadata(instance, f"{n}_validated", run_id)
    candidate = _run_metadata(instance, f"{n}_candidate_model", run_id)
    registered = _run_metadata(instance, f"{n}_registered_model", run_id)
    evaluation = _run_metadata(instance, f"{n}_evaluation_report", run_id)
    checks = result.get_asset_check_evaluations()
    passed = [c for c in checks if c.passed]
    failed = [c for c in checks if not c.passed]
    status = "[green]SUCCESS[/green]" if result.success else "[red]FAILED[/red]"
    console.print(f"\n{status} {n} in {seconds:.1f} s (run {run_id})")
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column()
    table.add_column(overflow="fold")  # paths and URLs wrap instead of ending in "..."
    if validated:
        table.add_row(
            "rows",
            f"{validated['rows_in']:,} in, {validated['rows_valid']:,} valid, "
            f"{validated['rows_quarantined']:,} quarantined",
        )
    table.add_row("checks", f"{len(passed)} passed, {len(failed)} failed")
    for check in failed:
        meta = check.metadata.get("message") or check.metadata.get("failures")
        table.add_row("", f"[red]x {check.check_name}[/red]: {meta.value if meta else ''}"[:400])
    if registered:
        table.add_row(
            "model",
            f"{registered['model']} v{registered['version']} "
            f"({registered['decision']}; champion v{registered['champion_version']})",
        )
    elif candidate:
        table.add_row("model", "not registered (a gate failed)")
    metric_names = (
        "roc_auc",
        "pr_auc",
        "macro_f1",
        "weighted_f1",
        "accuracy",
        "log_loss",
        "brier",
        "f1",
        "rmse",
        "mae",
        "r2",
    )
    metrics = {k: evaluation[k] for k in metric_names if k in evaluation}
    if metrics:
        table.add_row("holdout", ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if candidate:
        table.add_row("mlflow run", str(candidate.get("mlflow_run", "")))
    for err in [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]:
        table.add_row("[red]error[/red]", f"{err.step_key}: {_root_cause(err)}"[:800])
    table.add_row(
        "logs",
        f"events in the Dagster UI (run {run_id}); stdout/stderr in "
        f"{_captured_logs(instance, result)}; `ml-platform run --verbose` prints both here",
    )
    table.add_row(
        "look",
        "Dagster UI: make dev (http://127.0.0.1:3000); "
        "MLflow UI: make mlflow (http://127.0.0.1:5000)",
    )
    console.print(table)
