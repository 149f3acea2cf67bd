"""MLflow tracking for assets: a ConfigurableResource built on dagster-mlflow.

dagster-mlflow 0.29 ships ``mlflow_tracking``, a legacy function-style resource. We keep its run
set-up (``dagster_mlflow.MlFlow``: the active run, ``dagster_run_id``, ``env_to_tag`` and
``extra_tags`` tags, the atexit fix for multiprocess steps) and change what bites:
- one MLflow run per Dagster run, ended by a job hook that reacts to every op's events
  (dagster#21872: runs marked FINISHED while later steps still run). Here each materialization
  gets its own run, created and ended (FINISHED or FAILED) by the asset step that owns it;
- config as a function-style resource, which run config cannot override (dagster#21797). This
  is a ConfigurableResource: settings come from Definitions, run config or ``dg.EnvVar``;
- no retries on the tracking calls. The run is created through ``Tracking`` with backoff.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import dagster as dg
from pydantic import Field

from ml_platform.training.tracking import Tracking

DAGSTER_UI_ENV = "DAGSTER_WEBSERVER_URL"


class MlflowTrackingResource(dg.ConfigurableResource):
    """Opens the MLflow run of one asset materialization, tagged to link back to Dagster.

    The tracking URI is the platform's (``PlatformResource.tracking``), so training,
    evaluation and the registry always talk to the same store.
    """

    experiment_name: str = Field(default="", description="Default: the pipeline's name.")
    env_to_tag: list[str] = Field(default_factory=list,
                                  description="Environment variables logged as run tags.")
    extra_tags: dict[str, str] = Field(default_factory=dict)
    dagster_ui_url: str = Field(
        default="", description=f"Base URL of the Dagster UI for the run link; default "
        f"${DAGSTER_UI_ENV} or http://127.0.0.1:3000.")

    def run_link(self, dagster_run_id: str) -> str:
        base = self.dagster_ui_url or os.environ.get(DAGSTER_UI_ENV) or "http://127.0.0.1:3000"
        return f"{base.rstrip('/')}/runs/{dagster_run_id}"

    def opener(self, context: dg.AssetExecutionContext, tracking: Tracking
               ) -> Any:  # a pipeline.train.RunOpener
        """The run opener ``train_candidate`` calls with (experiment_id, run_name, tags)."""

        @contextmanager
        def open_run(experiment_id: str, run_name: str, tags: dict[str, str]) -> Iterator[str]:
            yield from self._run(context, tracking, experiment_id, run_name, tags)

        return open_run

    def _run(self, context: dg.AssetExecutionContext, tracking: Tracking, experiment_id: str,
             run_name: str, tags: dict[str, str]) -> Iterator[str]:
        from dagster_mlflow.resources import MlFlow

        experiment = tracking.call(lambda: tracking.client.get_experiment(experiment_id),
                                   f"read experiment {experiment_id}")
        run = tracking.call(lambda: tracking.client.create_run(
            experiment_id, run_name=run_name,
            tags={**tags, "dagster_run_url": self.run_link(context.run.run_id)}),
            f"create the run '{run_name}'")
        config = {"experiment_name": experiment.name, "mlflow_tracking_uri": tracking.tracking_uri,
                  "mlflow_run_id": run.info.run_id, "parent_run_id": None, "env": {},
                  "env_to_tag": self.env_to_tag, "extra_tags": self.extra_tags}
        # dagster_mlflow.MlFlow reads these attributes of a resource init context.
        init = SimpleNamespace(log=context.log, run_id=context.run.run_id,
                               resource_config=config,
                               dagster_run=SimpleNamespace(job_name=run_name))
        try:
            MlFlow(init)  # makes our run the active one and sets its Dagster tags
            yield run.info.run_id
        except BaseException as exc:
            _end(tracking, run.info.run_id,
                 "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        _end(tracking, run.info.run_id, "FINISHED")


def _end(tracking: Tracking, run_id: str, status: str) -> None:
    """End the run we opened, whether or not dagster-mlflow got as far as activating it."""
    import mlflow

    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        mlflow.end_run(status=status)
    else:
        tracking.call(lambda: tracking.client.set_terminated(run_id, status=status),
                      f"end run {run_id}")
