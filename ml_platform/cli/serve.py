"""`ml-platform serve`: the online prediction service (ml_platform/serving) on uvicorn.

Exit code 2 on bad input (an unknown pipeline, no pipeline with a champion to serve).
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ml_platform.cli.app import _specs, app, console
from ml_platform.home import activate_home


def _with_champion(names: list[str]) -> list[str]:
    """The declared pipelines whose registry has a champion alias."""
    from ml_platform.serving.models import CHAMPION, ModelLoader

    loader = ModelLoader(activate_home(), store=None)
    return [n for n in names if loader.resolve(n, CHAMPION) is not None]


@app.command()
def serve(
    pipelines: Annotated[
        list[str] | None,
        typer.Argument(help="Pipelines to serve (default: every declared one with a champion)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server worker processes.")] = 1,
    refresh_seconds: Annotated[
        float, typer.Option(min=0.1, help="How often registry aliases are re-resolved.")
    ] = 10.0,
    prediction_log: Annotated[
        bool,
        typer.Option(
            "--prediction-log/--no-prediction-log",
            help="Log every scored row under the home's warehouse (docs/serving.md).",
        ),
    ] = True,
) -> None:
    """Serve predictions from each pipeline's champion over HTTP (OpenAPI docs at /docs).

    Models follow the registry aliases the promotion ledger moves; features not in a request
    come from the Feast online store; a rollout (ml-platform rollout) puts the challenger in
    shadow or A/B. See docs/serving.md.
    """
    import uvicorn

    from ml_platform.serving.app import PIPELINES_ENV, PREDICTION_LOG_ENV, REFRESH_ENV

    declared = _specs()
    unknown = [p for p in pipelines or [] if p not in declared]
    if unknown:
        console.print(
            f"[red]error:[/red] no pipeline named {', '.join(repr(u) for u in unknown)}; "
            f"declared: {', '.join(sorted(declared)) or 'none'}"
        )
        raise typer.Exit(2)
    names = list(pipelines or [])
    if not names:
        names = _with_champion(sorted(declared))
        if not names:
            console.print(
                "[red]error:[/red] no declared pipeline has a champion yet: run one "
                "(ml-platform run <pipeline>) or name the pipelines to serve"
            )
            raise typer.Exit(2)
    activate_home()
    # The worker processes build the app from these (uvicorn imports the factory in each).
    os.environ[PIPELINES_ENV] = ",".join(names)
    os.environ[REFRESH_ENV] = str(refresh_seconds)
    os.environ[PREDICTION_LOG_ENV] = "1" if prediction_log else "0"
    console.print(f"serving {', '.join(names)} on http://{host}:{port} ({workers} worker(s))")
    uvicorn.run(
        "ml_platform.serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
    )
