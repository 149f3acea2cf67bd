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


def handoff(instance: dg.DagsterInstance, key: dg.AssetKey, run_id: str | None) -> dict[str, Any]:
    """The hand-off document of ``key`` materialized in ``run_id``, else its newest one."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key),
                                              limit=SCAN).records
    with_doc = [r for r in records if r.asset_materialization is not None
                and HANDOFF in r.asset_materialization.metadata]
    own = [r for r in with_doc if r.run_id == run_id]
    chosen = (own or with_doc or [None])[0]
    if chosen is None or chosen.asset_materialization is None:
        raise dg.Failure(f"'{key.to_user_string()}' has not been materialized yet: "
                         f"materialize it (or its whole pipeline) first")
    return dict(chosen.asset_materialization.metadata[HANDOFF].value)  # type: ignore[arg-type]


class HandoffIOManager(dg.ConfigurableIOManager):
    """Outputs travel as JSON metadata of their materialization (see the module docstring)."""

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is not None:
            context.add_output_metadata({HANDOFF: dg.MetadataValue.json(obj)})

    def load_input(self, context: dg.InputContext) -> dict[str, Any]:
        upstream = context.upstream_output
        return handoff(context.instance, context.asset_key,
                       upstream.run_id if upstream is not None else None)
