"""Pipeline-level feature-store operations used by the Dagster assets and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ml_platform.featurestore.definitions import feature_service
from ml_platform.featurestore.online import MaterializeResult
from ml_platform.featurestore.skew import SkewReport
from ml_platform.home import PlatformHome
from ml_platform.spec import PipelineSpec


@dataclass(frozen=True)
class RegistryState:
    service: str
    feature_view: str
    fingerprint: str
    features: list[str]
    registry_path: str
    entities: list[str]
    feature_views: list[str]
    feature_services: list[str]


def apply(spec: PipelineSpec, home: PlatformHome) -> RegistryState:
    """Apply this pipeline's objects (other pipelines' objects stay) and read the registry back."""
    from ml_platform.featurestore.feast_objects import feature_store, registry_path, service_objects

    service = feature_service(spec, home)
    store = feature_store(home)
    store.apply(service_objects(service, spec.name))
    return RegistryState(
        service=service.name, feature_view=service.view.name, fingerprint=service.fingerprint,
        features=service.view.feature_names, registry_path=str(registry_path(home)),
        entities=sorted(e.name for e in store.list_entities(allow_cache=False)),
        feature_views=sorted(v.name for v in store.list_feature_views(allow_cache=False)),
        feature_services=sorted(s.name for s in store.list_feature_services()))


def materialize(spec: PipelineSpec, home: PlatformHome, start: datetime | None = None,
                end: datetime | None = None) -> MaterializeResult:
    from ml_platform.featurestore.online import materialize as load_online

    return load_online(feature_service(spec, home, register=False), home, end=end, start=start)


def skew(spec: PipelineSpec, home: PlatformHome, as_of: datetime, sample: int = 50
         ) -> SkewReport:
    from ml_platform.featurestore.skew import skew_report

    return skew_report(feature_service(spec, home, register=False), home, as_of, sample=sample,
                       seed=spec.seed)
