"""The platform home directory: the only place ml_platform writes local state.

Deleting it resets everything. Its location comes from ``ML_PLATFORM_HOME``; the default is
``.ml_platform/`` in the project checkout.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

HOME_ENV_VAR = "ML_PLATFORM_HOME"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PlatformHome:
    root: Path

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.mlflow_dir / "artifacts"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse"

    @property
    def feast_dir(self) -> Path:
        return self.root / "feast"

    @property
    def optuna_storage(self) -> str:
        return f"sqlite:///{self.root / 'optuna.db'}"

    @property
    def ledger_db(self) -> Path:
        return self.root / "promotion_ledger.db"

    @property
    def alerts_log(self) -> Path:
        """Every alert, one JSON object a line, whatever other channel is configured."""
        return self.root / "alerts" / "alerts.jsonl"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def dbt_dir(self) -> Path:
        """dbt's target directories (one per invocation) and this home's parse cache."""
        return self.root / "dbt"

    def pipeline_dir(self, pipeline: str) -> Path:
        """Per-pipeline data: validated batches, features, training sets, quarantine."""
        return self.warehouse / pipeline

    def ensure(self) -> PlatformHome:
        """Create the layout, and the Dagster instance config if the instance has none (after
        that it is the operator's file: never overwritten)."""
        for path in (
            self.dagster_home,
            self.artifact_root,
            self.landing,
            self.warehouse,
            self.feast_dir,
            self.reports,
        ):
            path.mkdir(parents=True, exist_ok=True)
        instance_yaml = self.dagster_home / "dagster.yaml"
        template = PROJECT_ROOT / "dagster.yaml"
        if template.exists() and not instance_yaml.exists():
            with tempfile.NamedTemporaryFile("wb", dir=self.dagster_home, delete=False) as tmp:
                tmp.write(template.read_bytes())
            # A link fails if another process wrote the file first: theirs stays, whole.
            with contextlib.suppress(FileExistsError):
                os.link(tmp.name, instance_yaml)
            os.unlink(tmp.name)
        return self


def platform_home() -> PlatformHome:
    """The home named by ``ML_PLATFORM_HOME`` or the project default, as an absolute path."""
    raw = os.environ.get(HOME_ENV_VAR) or str(PROJECT_ROOT / ".ml_platform")
    return PlatformHome(Path(raw).expanduser().resolve())


def activate_home() -> PlatformHome:
    """For a command's own process, at its start: ensure the home exists, name it in
    ``ML_PLATFORM_HOME`` (what the resources and dbt's profile read, here and in every process
    Dagster starts) and point Dagster at the instance inside it."""
    home = platform_home().ensure()
    os.environ[HOME_ENV_VAR] = str(home.root)
    os.environ["DAGSTER_HOME"] = str(home.dagster_home)
    return home
