"""MLflow tracking and registry access: retries, experiments with a home-local artifact root,
model logging with explicit requirements (skips slow environment inference)."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

from mlflow.tracking import MlflowClient

T = TypeVar("T")
MODEL_REQUIREMENTS = ("scikit-learn", "numpy", "pandas", "scipy", "skops")


class TrackingUnavailable(RuntimeError):
    """The tracking store could not be reached; training refuses to run untracked."""


def with_retries(fn: Callable[[], T], what: str, attempts: int = 4, base_delay: float = 0.5
                 ) -> T:
    """Call ``fn`` with exponential backoff; raise TrackingUnavailable naming ``what``."""
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:  # the MLflow client raises many types for an unreachable store
            last = exc
            if attempt < attempts - 1:
                time.sleep(base_delay * 2**attempt)
    raise TrackingUnavailable(
        f"MLflow tracking store unreachable while trying to {what} after {attempts} attempts: "
        f"{type(last).__name__}: {last}") from last


def pip_requirements() -> list[str]:
    return [f"{name}=={version(name)}" for name in MODEL_REQUIREMENTS]


class Tracking:
    """A tracking URI plus where new experiments put their artifacts."""

    def __init__(self, tracking_uri: str, artifact_root: Path | None = None,
                 attempts: int = 4) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.attempts = attempts
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def call(self, fn: Callable[[], T], what: str) -> T:
        return with_retries(fn, what, attempts=self.attempts)

    def experiment_id(self, name: str) -> str:
        def get_or_create() -> str:
            exp = self.client.get_experiment_by_name(name)
            if exp is not None:
                return exp.experiment_id
            location = (self.artifact_root / name).as_uri() if self.artifact_root else None
            return self.client.create_experiment(name, artifact_location=location)

        return self.call(get_or_create, f"open experiment '{name}'")

    def run_url(self, experiment_id: str, run_id: str, ui: str = "http://127.0.0.1:5000") -> str:
        return f"{ui}/#/experiments/{experiment_id}/runs/{run_id}"

    def version_by_alias(self, model: str, alias: str) -> Any | None:
        from mlflow.exceptions import MlflowException

        def get() -> Any | None:
            try:
                return self.client.get_model_version_by_alias(model, alias)
            except MlflowException as exc:
                if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc):
                    return None
                raise

        return self.call(get, f"read alias '{alias}' of '{model}'")
