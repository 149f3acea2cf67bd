"""Dagster resources: where the platform keeps state and which tracking server it talks to."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from ml_platform.home import PlatformHome
from ml_platform.registry.ledger import PromotionLedger, open_ledger
from ml_platform.training.tracking import Tracking


class PlatformResource(dg.ConfigurableResource):
    """The platform home plus the MLflow tracking/registry URI.

    In the project's definitions ``home`` comes from ``dg.EnvVar("ML_PLATFORM_HOME")`` (the
    ``ml-platform`` command sets it; export it before a bare ``dagster dev``). An empty tracking
    URI means MLflow's own ``MLFLOW_TRACKING_URI``, else the home's store: SQLite in the home,
    or Postgres in the production profile (``ML_PLATFORM_PROFILE``, read in the process that
    uses the resource: docs/production.md).
    """

    home: str = Field(description="The platform home directory (all local state).")
    tracking_uri: str = Field(default="", description="MLflow tracking and registry URI.")

    def platform_home(self) -> PlatformHome:
        return PlatformHome(Path(self.home).expanduser().resolve()).ensure()

    def tracking(self) -> Tracking:
        home = self.platform_home()
        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or home.tracking_uri
        return Tracking(uri, artifact_root=home.artifact_root)

    def ledger(self) -> PromotionLedger:
        return open_ledger(self.platform_home(), self.tracking())
