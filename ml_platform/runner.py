"""Run a pipeline's job in-process on the platform home, showing progress and a summary."""

from __future__ import annotations

import logging
import threading
import time
import uuid
import warnings
from typing import Any

import dagster as dg
from rich.console import Console
from rich.table import Table

from ml_platform.core.tracking import user_tracking_uri_kept
from ml_platform.featurestore import dbt_server
from ml_platform.featurestore.dbt_project import DBT_PROJECT_DIR
from ml_platform.home import PlatformHome, activate_home
from ml_platform.pipeline import sidecar, validate
from ml_platform.spec import PipelineSpec

_STEP_EVENTS = {dg.DagsterEventType.STEP_START: "started",
                dg.DagsterEventType.STEP_SUCCESS: "done",
                dg.DagsterEventType.STEP_FAILURE: "FAILED",
                dg.DagsterEventType.STEP_SKIPPED: "skipped"}


# The summary reports failures; Dagster's console logger would print every event and traceback.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def quiet_warnings() -> None:
    """Library warnings (beta APIs, schema hints) are noise in a CLI run summary."""
    warnings.simplefilter("ignore")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def load_definitions() -> dg.Definitions:
    from ml_platform.definitions import defs

    return defs()


def _follow(instance: dg.DagsterInstance, run_id: str, done: threading.Event,
            console: Console, started: float) -> None:
    """Print step transitions as the run's events land in the instance."""
    cursor = None
    while True:
        finished = done.is_set()
        conn = instance.get_records_for_run(run_id, cursor=cursor)
        cursor = conn.cursor
        for record in conn.records:
            entry = record.event_log_entry
            event = entry.dagster_event
            if event is None and entry.level >= logging.INFO and entry.user_message:
                # context.log.info(...) from a step, e.g. tuning progress per trial
                console.print(f"  [{time.perf_counter() - started:6.1f}s]         "
                              f"[dim]{entry.step_key}: {entry.user_message}[/dim]")
                continue
            if event is None or event.event_type not in _STEP_EVENTS:
                continue
            label = _STEP_EVENTS[event.event_type]
            colour = {"FAILED": "red", "done": "green"}.get(label, "dim")
            console.print(f"  [{time.perf_counter() - started:6.1f}s] "
                          f"[{colour}]{label:>7}[/{colour}] {event.step_key}")
        if finished:
            return
        done.wait(0.5)


def run_pipeline(spec: PipelineSpec, console: Console,
                 definitions: dg.Definitions | None = None) -> bool:
    quiet_warnings()
    home = activate_home()
    # Started first: it imports the validation libraries on the other core while this process
    # loads the definitions (see ml_platform/pipeline/sidecar.py).
    sidecar.ensure(validate.WARM_MODULES, validate.WARM_CALLS)
    if spec.features.dbt_model:  # the same for dbt (ml_platform/featurestore/dbt_server.py)
        dbt_server.start(home.root, DBT_PROJECT_DIR)
    try:
        return _run(spec, console, home, definitions)
    finally:
        dbt_server.stop()  # unclaimed if the run failed before its dbt step


def _run(spec: PipelineSpec, console: Console, home: PlatformHome,
         definitions: dg.Definitions | None) -> bool:
    defs = definitions or load_definitions()
    job = defs.resolve_job_def(f"{spec.name}_training_job")
    run_id = str(uuid.uuid4())
    console.print(f"running [bold]{spec.name}[/bold] (run {run_id[:8]}) on home {home.root}")
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance, user_tracking_uri_kept():
        done = threading.Event()
        # The job runs on this (the main) thread and the progress printer beside it: the
        # estimators' OpenMP fits measured about 10% slower when called from another thread.
        follower = threading.Thread(target=_follow, name="progress",
                                    args=(instance, run_id, done, console, started))
        follower.start()
        try:
            result = job.execute_in_process(instance=instance, run_id=run_id, run_config=QUIET,
                                            raise_on_error=False,
                                            tags={"launched_by": "ml-platform"})
        finally:
            done.set()
            follower.join()
        print_summary(spec, instance, result, console, time.perf_counter() - started)
        return result.success


def _latest_metadata(instance: dg.DagsterInstance, key: str, run_id: str) -> dict[str, Any]:
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    if event is None or event.run_id != run_id:
        return {}
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _root_cause(event: Any) -> str:
    """The user's error, not Dagster's wrapper around it."""
    error = event.step_failure_data.error
    user_failure = event.step_failure_data.user_failure_data
    if user_failure is not None and user_failure.description:
        return user_failure.description
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def print_summary(spec: PipelineSpec, instance: dg.DagsterInstance, result: Any,
                  console: Console, seconds: float) -> None:
    n, run_id = spec.name, result.run_id
    validated = _latest_metadata(instance, f"{n}_validated", run_id)
    candidate = _latest_metadata(instance, f"{n}_candidate_model", run_id)
    registered = _latest_metadata(instance, f"{n}_registered_model", run_id)
    evaluation = _latest_metadata(instance, f"{n}_evaluation_report", run_id)
    checks = result.get_asset_check_evaluations()
    passed = [c for c in checks if c.passed]
    failed = [c for c in checks if not c.passed]
    status = "[green]SUCCESS[/green]" if result.success else "[red]FAILED[/red]"
    console.print(f"\n{status} {n} in {seconds:.1f} s (run {run_id})")
    table = Table(show_header=False, box=None, padding=(0, 2))
    if validated:
        table.add_row("rows", f"{validated['rows_in']:,} in, {validated['rows_valid']:,} valid, "
                      f"{validated['rows_quarantined']:,} quarantined")
    table.add_row("checks", f"{len(passed)} passed, {len(failed)} failed")
    for check in failed:
        meta = check.metadata.get("message") or check.metadata.get("failures")
        table.add_row("", f"[red]x {check.check_name}[/red]: {meta.value if meta else ''}"[:400])
    if registered:
        table.add_row("model", f"{registered['model']} v{registered['version']} "
                      f"({registered['decision']}; champion v{registered['champion_version']})")
    elif candidate:
        table.add_row("model", "not registered (a gate failed)")
    metric_names = ("roc_auc", "pr_auc", "log_loss", "brier", "f1", "rmse", "mae", "r2")
    metrics = {k: evaluation[k] for k in metric_names if k in evaluation}
    if metrics:
        table.add_row("holdout", ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if candidate:
        table.add_row("mlflow run", str(candidate.get("mlflow_run", "")))
    for err in [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]:
        table.add_row("[red]error[/red]", f"{err.step_key}: {_root_cause(err)}"[:800])
    table.add_row("look", "Dagster UI: make dev (http://127.0.0.1:3000); "
                  "MLflow UI: make mlflow (http://127.0.0.1:5000)")
    console.print(table)
