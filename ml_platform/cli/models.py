"""`ml-platform models ...`: list versions, promote, roll back and read the promotion ledger.
Every alias move goes through the ledger and is recorded with its actor and reason."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Column, Table

from ml_platform.cli.app import _spec, app, console

if TYPE_CHECKING:
    from ml_platform.registry.ledger import Decision, PromotionLedger

models_app = typer.Typer(
    help="Registered model versions and the promotion ledger.", no_args_is_help=True
)
app.add_typer(models_app, name="models")


def _ledger() -> PromotionLedger:
    from ml_platform.home import activate_home
    from ml_platform.registry.ledger import open_ledger
    from ml_platform.training.tracking import Tracking

    home = activate_home()
    return open_ledger(home, Tracking(home.tracking_uri, home.artifact_root))


def _alert(kind: str, decision: Decision) -> None:
    """Promotions and rollbacks made by hand are alerted like the pipeline's own."""
    from ml_platform.alerting import Alert, Notifier
    from ml_platform.home import activate_home

    Notifier.from_env(activate_home().alerts_log).notify(
        Alert(
            kind=kind,  # type: ignore[arg-type]
            pipeline=decision.pipeline,
            title=f"{decision.pipeline}: {kind} to v{decision.version} by {decision.actor}",
            details={"reason": decision.reason, "previous": decision.previous_champion or ""},
            severity="warning" if kind == "rollback" else "info",
        )
    )


def _versions(ledger: PromotionLedger, pipeline: str) -> list[Any]:
    client = ledger.tracking.client
    found = client.search_model_versions(f"name = '{pipeline}'")
    # Search results carry no aliases in this MLflow; a get per version does.
    return [
        client.get_model_version(pipeline, v) for v in sorted((mv.version for mv in found), key=int)
    ]


def _gates(ledger: PromotionLedger, pipeline: str, version: str) -> str:
    """The latest evidence of each kind, as the ledger recorded it."""
    latest: dict[str, bool] = {}
    for ev in ledger.evidence(pipeline, version):
        latest[ev.kind] = ev.passed
    return ", ".join(f"{k} {'pass' if ok else 'FAIL'}" for k, ok in latest.items()) or "none"


@models_app.command("list")
def list_versions(pipeline: str) -> None:
    """Versions with their aliases, key metric, gate evidence and lineage."""
    spec = _spec(pipeline)
    ledger = _ledger()
    metric = spec.primary_metric
    table = Table("version", "aliases", metric, "gates (ledger)", "data version", "created")
    for mv in _versions(ledger, pipeline):
        table.add_row(
            str(mv.version),
            ", ".join(mv.aliases) or "-",
            mv.tags.get(metric, "?"),
            _gates(ledger, pipeline, str(mv.version)),
            mv.tags.get("data_version", "?"),
            _when(mv.creation_timestamp),
        )
    console.print(table)
    for problem in ledger.consistency(pipeline):
        console.print(f"[red]ledger and registry disagree:[/red] {problem}")


def _when(millis: int | None) -> str:
    from datetime import UTC, datetime

    if not millis:
        return "?"
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _v(version: str | None) -> str:
    return "none" if version is None else f"v{version}"


def _refused(exc: Exception) -> typer.Exit:
    console.print(f"[red]refused:[/red] {exc}")
    return typer.Exit(1)


def _done(decision: Decision) -> None:
    console.print(
        f"{decision.action} recorded as ledger decision #{decision.id}: "
        f"champion {_v(decision.previous_champion)} -> {_v(decision.version)} "
        f"by {decision.actor} ({decision.reason})"
    )


@models_app.command()
def promote(
    pipeline: str,
    version: str,
    reason: Annotated[str, typer.Option(help="Why; recorded in the ledger.")],
    force: Annotated[
        bool,
        typer.Option(
            help="Promote even without passing gates or over a drifted alias; recorded as forced."
        ),
    ] = False,
) -> None:
    """Make VERSION the champion (refused unless it passed its gates, or --force)."""
    from ml_platform.registry.ledger import PromotionRefused

    _spec(pipeline)
    try:
        decision = _ledger().promote(pipeline, version, reason, force=force)
    except PromotionRefused as exc:
        raise _refused(exc) from None
    _alert("promotion", decision)
    _done(decision)


@models_app.command()
def rollback(
    pipeline: str,
    reason: Annotated[str, typer.Option(help="Why; recorded in the ledger.")] = "manual rollback",
) -> None:
    """Champion back to the previous champion (recorded)."""
    from ml_platform.registry.ledger import PromotionRefused

    _spec(pipeline)
    try:
        decision = _ledger().rollback(pipeline, reason)
    except PromotionRefused as exc:
        raise _refused(exc) from None
    _alert("rollback", decision)
    _done(decision)


@models_app.command()
def history(
    pipeline: str,
    evidence: Annotated[bool, typer.Option(help="Also print the evidence rows.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The promotion ledger of PIPELINE: every decision, who made it, why, on what evidence."""
    _spec(pipeline)
    ledger = _ledger()
    decisions = ledger.history(pipeline)
    if as_json:
        from dataclasses import asdict

        print(
            json.dumps(
                {
                    "decisions": [asdict(d) for d in decisions],
                    "evidence": [asdict(e) for e in ledger.evidence(pipeline)],
                },
                indent=2,
            )
        )
        return
    # Reasons and summaries in full (they carry the figures), folded rather than cut.
    table = Table(
        Column("#", no_wrap=True),
        Column("when (UTC)", no_wrap=True),
        Column("action", no_wrap=True),
        Column("ver", no_wrap=True),
        Column("prev", no_wrap=True),
        Column("actor", overflow="fold", max_width=12),
        Column("reason", overflow="fold", min_width=16, ratio=1),
        Column("evidence", overflow="fold"),
    )
    for d in decisions:
        action = f"[red]{d.action}[/red]" if d.forced or d.action == "reject" else d.action
        table.add_row(
            str(d.id),
            d.decided_at[:16].replace("T", " "),
            action,
            d.version or "-",
            d.previous_champion or "-",
            d.actor,
            d.reason,
            ", ".join(f"#{i}" for i in d.evidence_ids) or "-",
        )
    console.print(table)
    if evidence:
        ev_table = Table(
            Column("#", no_wrap=True),
            Column("kind", no_wrap=True),
            Column("version", no_wrap=True),
            Column("run", no_wrap=True),
            Column("passed", no_wrap=True),
            Column("actor", overflow="fold", max_width=16),
            Column("summary", overflow="fold", min_width=16, ratio=1),
        )
        for e in ledger.evidence(pipeline):
            ev_table.add_row(
                str(e.id),
                e.kind,
                e.version or "-",
                (e.run_id or "-")[:12],
                "yes" if e.passed else "[red]no[/red]",
                e.actor,
                e.summary,
            )
        console.print(ev_table)
    console.print(f"champion (ledger): {_v(ledger.champion(pipeline))}")
