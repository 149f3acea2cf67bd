"""Run-safe hand-offs between a pipeline's steps.

Each asset's output is a small JSON document (table paths and data versions, MLflow run ids and
model URIs), never the data itself. ``HandoffIOManager`` stores it in the materialization's own
metadata, in the Dagster instance, and a downstream step loads the document of the upstream
materialization made in its own run; only an upstream asset outside the run (a partial
selection) falls back to its newest materialization. Two runs of one pipeline at once therefore
never read each other's tables, whatever executor runs their steps.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

HANDOFF = "handoff"
SCAN = 100  # materializations looked through for this run's (more only with >100 runs at once)


def handoff(
    instance: dg.DagsterInstance, key: dg.AssetKey, run_id: str | None, fallback: bool = False
) -> dict[str, Any]:
    """The hand-off document of ``key`` as materialized in ``run_id``; its newest one when
    ``run_id`` is None (an upstream outside the run), or when ``fallback`` allows it."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key), limit=SCAN
    ).records
    usable = [
        r
        for r in records
        if r.asset_materialization is not None and HANDOFF in r.asset_materialization.metadata
    ]
    own = [r for r in usable if r.run_id == run_id]
    newest = usable if run_id is None or fallback else []
    found = own or newest
    if not found:
        where = f" in run {run_id}" if run_id and not fallback else ""
        raise dg.Failure(
            f"'{key.to_user_string()}' has no materialization{where} to hand "
            f"over: materialize it (or its whole pipeline) first",
            allow_retries=False,
        )
    materialization = found[0].asset_materialization
    assert materialization is not None
    return dict(materialization.metadata[HANDOFF].value)  # type: ignore[arg-type]


def producing_run(context: dg.InputContext) -> str | None:
    """The run whose step produced the input: this run, or the parent run of a re-execution.
    None for an upstream asset that is not part of the run (its newest materialization)."""
    upstream = context.upstream_output
    if upstream is None:
        return None
    try:
        run_id = upstream.run_id
    except dg.DagsterInvariantViolationError:
        return None
    # For an upstream outside the run Dagster builds a context whose run id names no run.
    return run_id if context.instance.has_run(run_id) else None


class HandoffIOManager(dg.ConfigurableIOManager):
    """Outputs travel as JSON metadata of their materialization (see the module docstring)."""

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is not None:
            context.add_output_metadata({HANDOFF: dg.MetadataValue.json(obj)})

    def load_input(self, context: dg.InputContext) -> dict[str, Any]:
        return handoff(context.instance, context.asset_key, producing_run(context))
