"""Commands added by the training work (see ml_platform/cli/app.py for the shared app)."""

from __future__ import annotations

from typing import Annotated

import typer

from ml_platform.cli.app import _spec, app, console


@app.command()
def tune(
    pipeline: str,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes on the one study.")] = 2,
    trials: Annotated[
        int | None,
        typer.Option(
            min=1, help="Total trial budget over all workers; default: the spec's n_trials."
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="Seconds each worker may spend; default: the spec's timeout_seconds."),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage URL; default $ML_PLATFORM_OPTUNA_STORAGE, else SQLite in the "
            "platform home."
        ),
    ] = None,
    study: Annotated[
        str | None,
        typer.Option(
            help="Study name; default '<pipeline>-<data version>-tuned', which the "
            "candidate-model asset adopts when it is finished."
        ),
    ] = None,
) -> None:
    """Tune a pipeline's model with N worker processes sharing one Optuna study."""
    from mlflow.exceptions import MlflowException
    from rich.table import Table

    from ml_platform.home import activate_home
    from ml_platform.resources import PlatformResource
    from ml_platform.runner import quiet_warnings
    from ml_platform.training import tuning
    from ml_platform.training.tracking import TrackingUnavailable

    quiet_warnings()
    spec = _spec(pipeline)
    home = activate_home()
    try:
        tset = tuning.latest_training_set(spec, home)
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    budget = trials or spec.model.n_trials
    console.print(
        f"tuning [bold]{pipeline}[/bold] on training set {tset.data_version} "
        f"({tset.rows} rows): {budget} trials over {workers} workers"
    )
    try:
        tracking = PlatformResource(home=str(home.root)).tracking()
        result = tuning.tune_parallel(
            spec,
            home,
            tracking,
            tset,
            workers,
            budget,
            storage=storage,
            study_name=study,
            timeout=timeout,
        )
    except (TrackingUnavailable, MlflowException) as exc:
        # unreachable after retries, or a deterministic error of the store: shown as it is
        console.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    table = Table("trial", "state", f"val {spec.primary_metric}", "params")
    for t in result.trials:
        value = "" if t["value"] is None else f"{t['value']:.4f}"
        table.add_row(str(t["number"]), t["state"], value, str(t["params"]))
    console.print(table)
    console.print(
        f"study [bold]{result.study_name}[/bold]: {len(result.trials)} trials "
        f"(per worker {result.per_worker}) in {result.seconds:.1f} s; best "
        f"{spec.primary_metric} {result.best_value:.4f} with {result.best_params}"
    )
    console.print(f"MLflow parent run {result.parent_run_id}")
    finished = sum(t["state"] in ("COMPLETE", "PRUNED") for t in result.trials)
    if study is None and finished >= spec.model.n_trials:
        console.print(
            f"the next `ml-platform run {pipeline}` on this data version adopts this study"
        )
    else:
        console.print(
            f"the candidate asset adopts only the default-named study with at least "
            f"{spec.model.n_trials} finished trials (the spec's n_trials)"
        )
