"""`ml-platform`: run and inspect declared pipelines on the platform home, from the shell."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ml_platform.home import PROJECT_ROOT, activate_home
from ml_platform.spec import SpecError, load_all_specs

app = typer.Typer(
    help="Declared ML pipelines on Dagster: run, inspect and operate them.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(highlight=False)
DEFS_ROOT = PROJECT_ROOT / "ml_platform" / "defs"


def _specs() -> dict:
    try:
        return load_all_specs(DEFS_ROOT)
    except SpecError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _spec(name: str):  # noqa: ANN202 - returns a PipelineSpec
    specs = _specs()
    if name not in specs:
        console.print(
            f"[red]error:[/red] no pipeline named '{name}'; declared: "
            f"{', '.join(sorted(specs)) or 'none'}"
        )
        raise typer.Exit(2)
    return specs[name]


@app.command()
def pipelines() -> None:
    """List the declared pipelines."""
    table = Table("pipeline", "task", "source", "model", "spec file")
    for name, spec in sorted(_specs().items()):
        table.add_row(
            name,
            spec.task,
            spec.source.path,
            spec.model.estimator.rsplit(".", 1)[-1],
            str(Path(spec.spec_dir or "").relative_to(PROJECT_ROOT) / "defs.yaml"),
        )
    console.print(table)


@app.command()
def generate(
    events: Annotated[int, typer.Option(help="Total events over the generated days.")] = 300_000,
    days: Annotated[int, typer.Option(help="Days of data to land.")] = 120,
    new_days: Annotated[
        int | None, typer.Option(help="Append this many days after the last landed one instead.")
    ] = None,
    drift: Annotated[float, typer.Option(min=0.0, max=1.0, help="Population shift 0..1.")] = 0.0,
    seed: int = 7,
) -> None:
    """Land the demo's daily loan-application files in the platform home."""
    from ml_platform.ingest.datagen import GeneratorConfig, land

    home = activate_home()
    cfg = GeneratorConfig(events=events, days=days, seed=seed, drift=drift)
    with console.status(f"generating {'new ' if new_days else ''}daily files ..."):
        files = land(cfg, home.landing / "loan_default", new_days=new_days)
    console.print(f"landed {len(files)} daily files in {home.landing / 'loan_default'}")


@app.command()
def run(
    pipeline: str,
    definitions: Annotated[
        str,
        typer.Option(
            help="The code location, as module:attribute (Definitions or a function returning "
            "them)."
        ),
    ] = "ml_platform.definitions:defs",
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Also print Dagster's event log, library logs and dbt's output as the run goes.",
        ),
    ] = False,
    job: Annotated[
        str,
        typer.Option(
            help="Which of the pipeline's jobs: training (the default), online (load the "
            "online store for serving), monitoring, or online_evaluation."
        ),
    ] = "training",
) -> None:
    """Run one of a pipeline's jobs (the training job by default) on the platform home's
    Dagster instance, with the executor the UI uses, and print progress and a summary."""
    from ml_platform.runner import JOBS, run_pipeline

    if job not in JOBS:
        console.print(f"[red]error:[/red] no job '{job}': choose one of {', '.join(JOBS)}")
        raise typer.Exit(2)
    spec = _spec(pipeline)
    ok = run_pipeline(spec, console, target=definitions, verbose=verbose, job=job)
    raise typer.Exit(0 if ok else 1)


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="Events to generate on first use.")] = 300_000,
) -> None:
    """Generate the demo data if the home has none, run the demo pipeline's training job, then
    load its online store (so that `ml-platform serve loan_default` answers at once)."""
    from ml_platform.runner import run_pipeline

    home = activate_home()
    if not any((home.landing / "loan_default").glob("applications_*.parquet")):
        generate(events=events, days=120, new_days=None, drift=0.0, seed=7)
    spec = _spec("loan_default")
    ok = run_pipeline(spec, console) and run_pipeline(spec, console, job="online")
    raise typer.Exit(0 if ok else 1)


@app.command()
def dev(port: int = 3000) -> None:
    """Start `dagster dev` on the platform home (the UI shows every asset, check and run)."""
    home = activate_home()
    console.print(f"DAGSTER_HOME={home.dagster_home}")
    os.chdir(PROJECT_ROOT)
    os.execvp(
        sys.executable,
        [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-p", str(port)],
    )


@app.command("mlflow-ui")
def mlflow_ui(port: int = 5000) -> None:
    """Start the MLflow UI on the platform home's tracking store."""
    home = activate_home()
    os.execvp(
        sys.executable,
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            home.tracking_uri,
            "--port",
            str(port),
        ],
    )


def main() -> None:
    # As an activated venv would: the tools installed beside this Python (dbt for dagster-dbt,
    # dagster) come first for this command and every process it starts.
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    app()


# `ml-platform monitor` registers itself on `app` when imported; imported here, after `app`
# exists, because ml_platform/cli/__init__.py (which imports the other command modules) is
# outside the monitoring change. It can move into that import list.
from ml_platform.cli import monitor as _monitor  # noqa: E402, F401

# `ml-platform serve` registers itself the same way (outside cli/__init__.py for the same reason).
from ml_platform.cli import serve as _serve  # noqa: E402, F401
from ml_platform.cli import simulate as _simulate  # noqa: E402, F401
