"""The platform home directory: the only place ml_platform writes local state.

Deleting it resets everything. Its location comes from ``ML_PLATFORM_HOME``; the default is
``.ml_platform/`` in the project checkout. In the production profile (``ML_PLATFORM_PROFILE``,
ml_platform/profile.py) the tracking store, the Optuna studies, the Feast registry and online
store and the Dagster instance's storage are services instead; the rest stays in the home.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ml_platform.profile import (
    EMBEDDED,
    PRODUCTION,
    ProductionSettings,
    ProfileError,
    current_profile,
    ensure_databases,
    export_for_dagster,
    production_settings,
)

HOME_ENV_VAR = "ML_PLATFORM_HOME"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The instance config `ensure` copies into a new instance directory, per profile.
INSTANCE_TEMPLATES = {
    EMBEDDED: PROJECT_ROOT / "dagster.yaml",
    PRODUCTION: PROJECT_ROOT / "deploy" / "production" / "dagster.yaml",
}


@dataclass(frozen=True)
class PlatformHome:
    root: Path
    # Read from ML_PLATFORM_PROFILE when the home is made (ml_platform/profile.py).
    profile: str = field(default_factory=current_profile)

    @property
    def production(self) -> ProductionSettings | None:
        """The production profile's services, from the environment; None when embedded."""
        return production_settings() if self.profile == PRODUCTION else None

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def tracking_uri(self) -> str:
        if settings := self.production:
            return settings.tracking_uri
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        settings = self.production
        if settings and settings.artifact_root:
            return settings.artifact_root
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
        if settings := self.production:
            return settings.optuna_storage
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
        that it is the operator's file: never overwritten). In the production profile also the
        service databases when missing, and the variables the instance config reads."""
        settings = self.production
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
        template = INSTANCE_TEMPLATES[self.profile]
        if template.exists() and not instance_yaml.exists():
            with tempfile.NamedTemporaryFile("wb", dir=self.dagster_home, delete=False) as tmp:
                tmp.write(template.read_bytes())
            # A link fails if another process wrote the file first: theirs stays, whole.
            with contextlib.suppress(FileExistsError):
                os.link(tmp.name, instance_yaml)
            os.unlink(tmp.name)
        if settings:
            self._check_production_instance(instance_yaml)
            export_for_dagster(settings)
            ensure_databases(settings)
        return self

    def _check_production_instance(self, instance_yaml: Path) -> None:
        """Refuse an instance config without Postgres storage: production runs must not land
        in a SQLite instance left from the embedded profile."""
        import yaml

        config = yaml.safe_load(instance_yaml.read_text()) or {}
        storage = config.get("storage") if isinstance(config, dict) else None
        if not (isinstance(storage, dict) and "postgres" in storage):
            raise ProfileError(
                f"ML_PLATFORM_PROFILE=production but the Dagster instance config "
                f"{instance_yaml} has no Postgres storage (is this home from the embedded "
                f"profile?): use a new ML_PLATFORM_HOME, or replace that file with "
                f"{INSTANCE_TEMPLATES[PRODUCTION]}"
            )


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
