"""`ml-platform labels <pipeline> --data PATH`: ingest outcomes (the labels that arrive after a
prediction) and report how many logged predictions they label.

The file (CSV or Parquet) holds the spec's entity key, a timestamp (the spec's event timestamp
column unless ``--timestamp-column``), the label (the spec's label unless ``--label-column``)
and optionally ``request_id`` for an exact join. It is validated, then stored append-only under
its content hash (``<home>/warehouse/<pipeline>/outcomes/``): ingesting the same file twice
stores it once. Exit codes: 0 stored (or already stored), 2 bad input (the message names the
column, the row and the value). See docs/online-evaluation.md for the join rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ml_platform.cli.app import _spec, app, console


def _joined(home: Any, pipeline: str, outcomes: Any, window: Any) -> dict[str, int]:
    """How many logged predictions these outcomes label: request rows, and rows per arm."""
    from ml_platform.online_evaluation.outcomes import join_outcomes
    from ml_platform.serving.prediction_log import read_predictions

    since = outcomes["outcome_at"].min().to_pydatetime() - window
    joined = join_outcomes(read_predictions(home, pipeline, since), outcomes, window)
    labelled = joined[joined["outcome"].notna()]
    out = {
        "request_rows": int(labelled[["request_id", "row"]].drop_duplicates().shape[0]),
        "outcomes_unmatched": int(len(outcomes))
        - int(labelled[["request_id", "row"]].drop_duplicates().shape[0]),
    }
    for arm, rows in labelled.groupby("arm"):
        out[f"rows_{arm}"] = len(rows)
    return out


@app.command()
def labels(
    pipeline: Annotated[str, typer.Argument(help="A declared pipeline.")],
    data: Annotated[Path, typer.Option("--data", help="CSV or Parquet file of outcomes.")],
    timestamp_column: Annotated[
        str | None,
        typer.Option(help="The outcome time column (default: the spec's event timestamp)."),
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="The label column (default: the spec's label).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Ingest outcomes (entity, timestamp, label; optional request_id) and join them to the
    prediction log."""
    from ml_platform.home import activate_home
    from ml_platform.online_evaluation import outcomes as oc

    spec = _spec(pipeline)
    home = activate_home()
    try:
        frame = oc.normalise(oc.read_file(data), spec, timestamp_column, label_column)
    except oc.OutcomeError as exc:
        typer.echo(f"error: {data}: {exc}", err=True)
        raise typer.Exit(2) from None
    stored = oc.store(home, pipeline, frame)
    window = oc.join_window(spec)
    joined = _joined(home, pipeline, frame, window)
    result = {
        "pipeline": pipeline,
        "rows": stored.rows,
        "with_request_id": int(frame["request_id"].notna().sum()),
        "stored": str(stored.path),
        "new": stored.new,
        "join_window_hours": window.total_seconds() / 3600,
        "joined": joined,
    }
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    state = "stored" if stored.new else "already stored (same content), not stored again"
    console.print(f"{stored.rows} outcomes for '{pipeline}': {state}: {stored.path}")
    arms = ", ".join(f"{k[5:]} {v}" for k, v in joined.items() if k.startswith("rows_"))
    console.print(
        f"joined {joined['request_rows']} logged request rows ({arms or 'no arm'}); "
        f"{joined['outcomes_unmatched']} outcomes labelled no prediction (exact by request_id, "
        f"else the entity's latest prediction within {result['join_window_hours']:g} h before)"
    )
