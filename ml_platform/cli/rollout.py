"""`ml-platform rollout <pipeline> start|stop|status`: put the challenger in shadow or A/B
(recorded in the pipeline's rollout store, which `ml-platform serve` reads at every refresh),
stop it, and see the rollout, its history and the predictions logged per arm.

Exit code 2 on bad input or a refused start (no challenger, one already active, ...).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ml_platform.cli.app import _spec, app, console

if TYPE_CHECKING:
    from ml_platform.home import PlatformHome
    from ml_platform.serving.rollout import Rollout


class Action(StrEnum):
    start = "start"
    stop = "stop"
    status = "status"


class Mode(StrEnum):
    shadow = "shadow"
    ab = "ab"


def _aliases(home: PlatformHome, pipeline: str) -> tuple[str | None, str | None]:
    """The versions behind the champion and challenger aliases (None: not set)."""
    from ml_platform.serving.models import CHALLENGER, CHAMPION, ModelLoader

    loader = ModelLoader(home, store=None)
    found = [loader.resolve(pipeline, alias) for alias in (CHAMPION, CHALLENGER)]
    champion, challenger = (None if mv is None else str(mv.version) for mv in found)
    return champion, challenger


def _refuse(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def _print_rollout(title: str, r: Rollout) -> None:
    share = f", challenger share {r.traffic_share:g}" if r.mode == "ab" else ""
    console.print(
        f"{title}: rollout {r.id} of {r.pipeline}, {r.mode}{share}: champion v"
        f"{r.champion_version} vs challenger v{r.challenger_version}, started "
        f"{r.started_at:%Y-%m-%d %H:%M:%S} UTC by {r.actor}"
        + (
            f"; stopped {r.stopped_at:%Y-%m-%d %H:%M:%S} UTC by {r.stopped_by}: {r.stop_reason}"
            if r.stopped_at
            else ""
        )
    )


def _start(
    pipeline: str, mode: Mode | None, share: float | None, actor: str, as_json: bool
) -> None:
    from ml_platform.home import activate_home
    from ml_platform.serving.rollout import RolloutRefused, RolloutStore

    spec = _spec(pipeline)
    chosen = mode.value if mode is not None else spec.rollout.mode
    if chosen == "off":
        raise _refuse(
            f"the spec of '{pipeline}' declares rollout.mode off: pass --mode shadow|ab or set "
            "rollout.mode in its defs.yaml"
        )
    home = activate_home()
    champion, challenger = _aliases(home, pipeline)
    try:
        rollout = RolloutStore(home, pipeline).start(
            chosen,
            share if share is not None else spec.rollout.traffic_share,
            champion,
            challenger,
            actor,
        )
    except RolloutRefused as exc:
        raise _refuse(str(exc)) from None
    if as_json:
        print(json.dumps({"started": rollout.to_dict()}, indent=2))
        return
    _print_rollout("started", rollout)
    console.print(
        "A running `ml-platform serve` picks it up at its next refresh (--refresh-seconds)."
    )


def _stop(pipeline: str, reason: str, actor: str, as_json: bool) -> None:
    from ml_platform.home import activate_home
    from ml_platform.serving.rollout import RolloutRefused, RolloutStore

    _spec(pipeline)
    try:
        stopped = RolloutStore(activate_home(), pipeline).stop(reason, actor)
    except RolloutRefused as exc:
        raise _refuse(str(exc)) from None
    if as_json:
        print(json.dumps({"stopped": stopped.to_dict() if stopped else None}, indent=2))
    elif stopped is None:
        console.print(f"'{pipeline}' has no active rollout: nothing to stop")
    else:
        _print_rollout("stopped", stopped)


def _status(pipeline: str, days: float, as_json: bool) -> None:
    from ml_platform.home import activate_home
    from ml_platform.serving.prediction_log import read_predictions
    from ml_platform.serving.rollout import RolloutStore

    spec = _spec(pipeline)
    home = activate_home()
    store = RolloutStore(home, pipeline)
    active, history = store.current(), store.history()
    since = active.started_at if active else datetime.now(UTC) - timedelta(days=days)
    logged = read_predictions(home, pipeline, since=since)
    counts: list[dict[str, Any]] = []
    if not logged.empty:
        grouped = logged.groupby(["mode", "arm", "model_version", "served"], as_index=False)
        counts = [
            {
                "mode": str(r["mode"]),
                "arm": str(r["arm"]),
                "model_version": str(r["model_version"]),
                "served": bool(r["served"]),
                "rows": int(r["size"]),
            }
            for _, r in grouped.size().iterrows()
        ]
    champion, challenger = _aliases(home, pipeline)
    if as_json:
        body = {
            "pipeline": pipeline,
            "active": active.to_dict() if active else None,
            "aliases": {"champion": champion, "challenger": challenger},
            "spec": spec.rollout.model_dump(),
            "predictions": {"since": since.isoformat(), "by_arm": counts},
            "history": [r.to_dict() for r in history],
        }
        print(json.dumps(body, indent=2))
        return
    if active:
        _print_rollout("active", active)
    else:
        console.print(f"'{pipeline}': no active rollout (mode off)")
    console.print(
        f"aliases: champion {champion or 'none'}, challenger {challenger or 'none'}; spec: "
        f"mode {spec.rollout.mode}, traffic_share {spec.rollout.traffic_share:g}, test "
        f"{spec.rollout.test}, min_samples {spec.rollout.min_samples}"
    )
    table = Table("mode", "arm", "version", "served", "rows", title=f"logged since {since:%c}")
    for c in counts:
        table.add_row(c["mode"], c["arm"], c["model_version"], str(c["served"]), str(c["rows"]))
    console.print(table)
    if history:
        hist = Table("id", "mode", "share", "champion", "challenger", "started", "stopped", "why")
        for r in reversed(history):
            hist.add_row(
                str(r.id),
                r.mode,
                f"{r.traffic_share:g}" if r.mode == "ab" else "-",
                r.champion_version,
                r.challenger_version,
                f"{r.started_at:%Y-%m-%d %H:%M} {r.actor}",
                f"{r.stopped_at:%Y-%m-%d %H:%M} {r.stopped_by}" if r.stopped_at else "active",
                r.stop_reason or "",
            )
        console.print(hist)


@app.command()
def rollout(
    pipeline: Annotated[str, typer.Argument(help="The pipeline.")],
    action: Annotated[Action, typer.Argument(help="start, stop or status.")],
    mode: Annotated[
        Mode | None, typer.Option(help="start: shadow or ab (default: the spec's rollout.mode).")
    ] = None,
    traffic_share: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="start, ab: the challenger's share of entities (default: the spec's).",
        ),
    ] = None,
    reason: Annotated[str, typer.Option(help="stop: why; recorded.")] = "stopped by hand",
    actor: Annotated[
        str | None, typer.Option(help="Who (default: user:<login>); recorded.")
    ] = None,
    days: Annotated[
        float,
        typer.Option(min=0.0, help="status without an active rollout: log counts of this long."),
    ] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Start, stop or show a pipeline's rollout (the challenger in shadow or A/B).

    start records the champion and challenger versions behind the registry aliases; a running
    `ml-platform serve` follows it at its next refresh. See docs/serving.md.
    """
    from ml_platform.registry.ledger import default_actor

    who = actor or default_actor()
    if action is Action.start:
        _start(pipeline, mode, traffic_share, who, as_json)
    elif action is Action.stop:
        if mode is not None or traffic_share is not None:
            raise _refuse("--mode and --traffic-share are options of start, not stop")
        _stop(pipeline, reason, who, as_json)
    else:
        _status(pipeline, days, as_json)
