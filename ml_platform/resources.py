"""Dagster resources: where the platform keeps state and which tracking server it talks to."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from ml_platform.core.tracking import Tracking
from ml_platform.home import PlatformHome, platform_home
from ml_platform.registry.ledger import PromotionLedger


class PlatformResource(dg.ConfigurableResource):
    """The platform home plus the MLflow tracking/registry URI.

    Empty fields fall back to ``ML_PLATFORM_HOME`` and ``MLFLOW_TRACKING_URI`` (read when a run
    uses the resource, never at import); the embedded default is a SQLite store in the home.
    """

    home: str = ""
    tracking_uri: str = ""

    def platform_home(self) -> PlatformHome:
        home = PlatformHome(Path(self.home).resolve()) if self.home else platform_home()
        return home.ensure()

    def tracking(self) -> Tracking:
        home = self.platform_home()
        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or home.tracking_uri
        return Tracking(uri, artifact_root=home.artifact_root)

    def ledger(self) -> PromotionLedger:
        return PromotionLedger(self.platform_home().ledger_db, self.tracking())
