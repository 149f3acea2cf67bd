"""Models served by registry alias, swapped atomically.

``models:/<name>@<alias>`` is resolved once by whoever loads it, so the service resolves the
aliases itself, every ``refresh_seconds``: when the promotion ledger has moved an alias, the
new version is loaded off the event loop and the pipeline's :class:`Deployment` is replaced in
one reference assignment (a request holds the snapshot it started with, so it is scored by one
version end to end). A version that fails to load leaves the previous one serving, is logged
and alerted once per version, and is tried again at the next refresh.

The registry is read with the MLflow client only: serving never imports the training side's
tracking code (the import-linter contract "Serving never imports training code").
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ml_platform.home import PlatformHome
from ml_platform.serving.features import OnlineFeatures
from ml_platform.serving.vectorize import Scorer
from ml_platform.spec import PipelineSpec

log = logging.getLogger(__name__)

# The promotion ledger's alias names (ml_platform/registry/ledger.py), repeated here because
# serving does not import the registry package.
CHAMPION, CHALLENGER = "champion", "challenger"
NO_FEATURE_SERVICE = "none"


@dataclass(frozen=True)
class ServedModel:
    pipeline: str
    alias: str
    version: str
    run_id: str
    feature_service: str | None
    scorer: Scorer
    online: OnlineFeatures | None  # None: rows must carry every feature
    loaded_at: float

    @property
    def columns(self) -> list[str]:
        return self.scorer.columns


@dataclass(frozen=True)
class Deployment:
    """What one pipeline serves right now. Replaced whole, never mutated."""

    pipeline: str
    champion: ServedModel | None = None
    # Loaded for the models endpoint; a later rollout (shadow / A/B) scores it here.
    challenger: ServedModel | None = None
    errors: dict[str, str] = field(default_factory=dict)  # alias -> last load error

    @property
    def ready(self) -> bool:
        return self.champion is not None


class ModelLoader:
    """Resolves aliases and loads versions from the home's MLflow registry."""

    def __init__(self, home: PlatformHome, store: Any | None) -> None:
        from mlflow.tracking import MlflowClient

        self.home = home
        self.store = store
        self.client = MlflowClient(tracking_uri=home.tracking_uri, registry_uri=home.tracking_uri)

    def resolve(self, pipeline: str, alias: str) -> Any | None:
        """The model version behind ``alias``, or None when the alias is not set."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(pipeline, alias)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc):
                return None
            raise

    def _location(self, source: str) -> str:
        """A version's source is ``models:/<model_id>`` (MLflow 3) or a storage location."""
        if source.startswith("models:/"):
            model_id = source.removeprefix("models:/").rstrip("/")
            return str(self.client.get_logged_model(model_id).artifact_location)
        return source

    def load(self, spec: PipelineSpec, alias: str, mv: Any) -> ServedModel:
        import mlflow.artifacts
        import mlflow.sklearn

        local = mlflow.artifacts.download_artifacts(
            artifact_uri=self._location(str(mv.source)),
            tracking_uri=self.home.tracking_uri,
            registry_uri=self.home.tracking_uri,
        )
        pipeline = mlflow.sklearn.load_model(local)
        columns = [
            str(c) for c in getattr(pipeline, "feature_names_in_", spec.features.all_columns)
        ]
        scorer = Scorer(pipeline, columns, spec.features.model_numeric, spec.is_classification)
        service = (mv.tags or {}).get("feature_service", NO_FEATURE_SERVICE)
        online = None
        if service != NO_FEATURE_SERVICE and self.store is not None:
            online = OnlineFeatures(self.store, service, spec.entity_key, spec.features.ttl_seconds)
        return ServedModel(
            pipeline=spec.name,
            alias=alias,
            version=str(mv.version),
            run_id=str(mv.run_id),
            feature_service=None if service == NO_FEATURE_SERVICE else service,
            scorer=scorer,
            online=online,
            loaded_at=time.time(),
        )


def _with(
    deployment: Deployment, alias: str, model: ServedModel, errors: dict[str, str]
) -> Deployment:
    if alias == CHAMPION:
        return replace(deployment, champion=model, errors=errors)
    return replace(deployment, challenger=model, errors=errors)


def refreshed(
    loader: ModelLoader, spec: PipelineSpec, current: Deployment, notify: Any
) -> Deployment:
    """The deployment after re-resolving both aliases (blocking: run it off the event loop).
    Unchanged versions are kept as they are; a failed load keeps what was serving."""
    out = current
    for alias in (CHAMPION, CHALLENGER):
        served: ServedModel | None = getattr(current, alias)
        try:
            mv = loader.resolve(spec.name, alias)
            if mv is None:
                # A champion whose alias vanished keeps serving (the ledger never removes it;
                # a registry hiccup must not take the service down); a challenger is dropped.
                if alias == CHALLENGER:
                    out = replace(out, challenger=None)
                continue
            if served is not None and served.version == str(mv.version):
                continue
            model = loader.load(spec, alias, mv)
        except Exception as exc:  # any registry or load failure: keep serving what we have
            message = f"{type(exc).__name__}: {exc}"[:500]
            if current.errors.get(alias) != message:
                log.error(
                    "serving %s@%s: load failed, keeping %s: %s",
                    spec.name,
                    alias,
                    served.version if served else "nothing",
                    message,
                )
                notify(spec.name, alias, served.version if served else None, message)
            out = replace(out, errors={**out.errors, alias: message})
            continue
        errors = {k: v for k, v in out.errors.items() if k != alias}
        out = _with(out, alias, model, errors)
        log.info("serving %s@%s: now version %s", spec.name, alias, model.version)
    return out
