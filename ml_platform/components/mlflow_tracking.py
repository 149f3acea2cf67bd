"""MLflow tracking for assets: one MLflow run per materialization, on an explicit MlflowClient.

Why not dagster-mlflow's ``mlflow_tracking`` (0.29, a legacy function-style resource, beta):
- it keeps one MLflow run per *Dagster run*, found again in each step process by searching
  ``tags.dagster_run_id``, so every asset of a run (two pipelines' candidates, a re-materialized
  asset beside others) would write into one MLflow run;
- it ends that run from ``end_mlflow_on_run_finished``, a hook that reacts to every op's events
  and to the job's last node in topological order (dagster#21872: runs marked FINISHED while
  later steps still run, then FAILED);
- it is built on MLflow's fluent global state (``mlflow.set_tracking_uri``,
  ``set_experiment``, ``start_run``, ``atexit.unregister(mlflow.end_run)``), which leaks the
  store between runs in one process;
- as a function-style resource its config cannot be overridden by run config
  (dagster#21797), and its tracking calls have no retries but a search.

This resource is a ``ConfigurableResource`` (settings from Definitions, run config or
``dg.EnvVar``) that opens each materialization's run itself through ``Tracking``'s client
(retrying only transient errors) and ends it FINISHED, FAILED or KILLED. The tracking URI is the
platform's (``PlatformResource.tracking``), so training, evaluation and the registry always talk
to the same store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from mlflow.entities import RunInfo
from pydantic import Field

from ml_platform.components.tags import run_tags
from ml_platform.training.tracking import Tracking
from ml_platform.training.train import RunOpener

DAGSTER_UI_ENV = "DAGSTER_WEBSERVER_URL"


class MlflowTrackingResource(dg.ConfigurableResource):
    """Opens the MLflow run of one asset materialization, tagged to link back to Dagster."""

    experiment_name: str = Field(default="", description="Default: the pipeline's name.")
    env_to_tag: list[str] = Field(
        default_factory=list, description="Environment variables logged as run tags."
    )
    extra_tags: dict[str, str] = Field(default_factory=dict)
    dagster_ui_url: str = Field(
        default="",
        description=f"Base URL of the Dagster UI for the run link; default "
        f"${DAGSTER_UI_ENV} or http://127.0.0.1:3000.",
    )

    def run_link(self, dagster_run_id: str) -> str:
        base = self.dagster_ui_url or os.environ.get(DAGSTER_UI_ENV) or "http://127.0.0.1:3000"
        return f"{base.rstrip('/')}/runs/{dagster_run_id}"

    def tags(self, context: dg.AssetExecutionContext) -> dict[str, str]:
        """The links back to Dagster (run id, asset key, partition, run URL, a clickable note
        in the MLflow UI), the configured environment variables and extra tags."""
        tags = run_tags(context)
        url = self.run_link(tags["dagster_run_id"])
        return {
            **{name: os.environ.get(name, "") for name in self.env_to_tag},
            **self.extra_tags,
            **tags,
            "dagster_run_url": url,
            "mlflow.note.content": f"Materialization of `{tags['dagster_asset_key']}` in "
            f"Dagster run [{tags['dagster_run_id']}]({url}).",
        }

    def opener(self, context: dg.AssetExecutionContext, tracking: Tracking) -> RunOpener:
        """What ``train_candidate`` calls to open its run: a run of this materialization in
        the configured experiment (else the one the stage asks for), with the Dagster tags."""
        dagster_tags = self.tags(context)

        @contextmanager
        def open_run(experiment: str, run_name: str, tags: dict[str, str]) -> Iterator[RunInfo]:
            experiment_id = tracking.experiment_id(self.experiment_name or experiment)
            with tracking.run(experiment_id, run_name, {**tags, **dagster_tags}) as info:
                yield info

        return open_run
