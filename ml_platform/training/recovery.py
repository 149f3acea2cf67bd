"""Recovery of MLflow runs orphaned by a killed Dagster run.

A step process killed with SIGKILL (or by the OOM killer, or a lost node) never ends the MLflow
run it opened: the run stays RUNNING forever, and the MLflow UI shows a training that is not
happening. Each run this platform opens for a Dagster step carries the tag ``dagster_run_id``
(trial runs inherit it through their parent). Before a new candidate is trained, the runs of the
pipeline's experiment that are still RUNNING but belong to a Dagster run that is no longer in
progress are marked FAILED, with a tag saying why. Runs with no Dagster link (a user's notebook,
``ml-platform tune``) are not ours to judge and are left alone.

Framework-free: the caller passes the ids of the Dagster runs still in progress.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from ml_platform.training.tracking import Tracking

DAGSTER_RUN_TAG = "dagster_run_id"
PARENT_TAG = "mlflow.parentRunId"
RECOVERED_TAG = "ml_platform.recovered"
PAGE = 500


@dataclass(frozen=True)
class Orphan:
    run_id: str
    dagster_run_id: str
    name: str


def _running(tracking: Tracking, experiment_id: str) -> Iterator[Any]:
    from mlflow.entities import ViewType

    search = partial(
        tracking.client.search_runs,
        [experiment_id],
        filter_string="attributes.status = 'RUNNING'",
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=PAGE,
    )
    token: str | None = None
    while True:
        page = tracking.call(
            partial(search, page_token=token),
            f"list the RUNNING runs of experiment {experiment_id}",
        )
        yield from page
        token = page.token
        if not token:
            return


def _dagster_run_of(tracking: Tracking, run: Any, parents: dict[str, str | None]) -> str | None:
    """The Dagster run that opened ``run``: its own tag, else its parent's (a trial run)."""
    own = run.data.tags.get(DAGSTER_RUN_TAG)
    parent_id = run.data.tags.get(PARENT_TAG)
    if own or not parent_id:
        return own or None
    if parent_id not in parents:
        parent = tracking.call(
            lambda: tracking.client.get_run(parent_id), f"read parent run {parent_id}"
        )
        parents[parent_id] = parent.data.tags.get(DAGSTER_RUN_TAG) or None
    return parents[parent_id]


def find_orphans(
    tracking: Tracking, experiment_name: str, live_dagster_run_ids: Collection[str]
) -> list[Orphan]:
    """RUNNING runs of the experiment opened by a Dagster run that is not in progress."""
    experiment = tracking.call(
        lambda: tracking.client.get_experiment_by_name(experiment_name),
        f"read experiment '{experiment_name}'",
    )
    if experiment is None:
        return []
    live = set(live_dagster_run_ids)
    parents: dict[str, str | None] = {}
    orphans = []
    for run in _running(tracking, experiment.experiment_id):
        dagster_run = _dagster_run_of(tracking, run, parents)
        if dagster_run is not None and dagster_run not in live:
            orphans.append(Orphan(run.info.run_id, dagster_run, run.info.run_name or ""))
    return orphans


def fail_orphaned_runs(
    tracking: Tracking, experiment_name: str, live_dagster_run_ids: Collection[str]
) -> list[Orphan]:
    """Mark FAILED every orphan (see :func:`find_orphans`); returns what was marked.

    Idempotent, and safe beside live runs: a run whose Dagster run is in progress is never
    touched, so the caller must include its own run id among the live ones.
    """
    orphans = find_orphans(tracking, experiment_name, live_dagster_run_ids)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    for orphan in orphans:
        reason = (
            f"marked FAILED at {when}: Dagster run {orphan.dagster_run_id} is no longer "
            "in progress (its process was killed or lost)"
        )
        tracking.call(
            partial(tracking.client.set_tag, orphan.run_id, RECOVERED_TAG, reason),
            f"tag orphaned run {orphan.run_id}",
        )
        tracking.call(
            partial(tracking.client.set_terminated, orphan.run_id, status="FAILED"),
            f"end orphaned run {orphan.run_id}",
        )
    return orphans
