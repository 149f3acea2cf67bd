"""Feast objects and store configuration generated from the feature definitions.

Import this module only where Feast is needed: importing Feast costs about 3.5 s.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.repo_config import RepoConfig
from feast.types import Bool, Float64, Int64, String

from ml_platform.features.definitions import FEAST_PROJECT, ServiceDef, ViewDef, registry_file
from ml_platform.home import PROJECT_ROOT, PlatformHome

REPO_DIR = PROJECT_ROOT / "feature_repo"
_FIELD_TYPES = {"int64": Int64, "float64": Float64, "string": String, "bool": Bool}
_VALUE_TYPES = {
    "int64": ValueType.INT64,
    "string": ValueType.STRING,
    "bool": ValueType.BOOL,
    "float64": ValueType.DOUBLE,
}


def online_path(home: PlatformHome) -> Path:
    return home.feast_dir / "online.db"


def repo_config(home: PlatformHome) -> RepoConfig:
    """The configuration feature_repo/feature_store.yaml expands to for this home; in the
    production profile, deploy/production/feature_store.yaml's: the SQL registry on Postgres
    and the Redis online store (the offline store stays DuckDB on the home's files)."""
    os.environ.setdefault("FEAST_USAGE", "False")
    settings = home.production
    if settings is None:
        registry: dict[str, Any] = {
            "registry_type": "file",
            "path": str(registry_file(home)),
            "cache_ttl_seconds": 0,
        }
        online: dict[str, Any] = {"type": "sqlite", "path": str(online_path(home))}
    else:
        registry = {
            "registry_type": "sql",
            "path": settings.feast_registry_url,
            "cache_ttl_seconds": 0,
            "sqlalchemy_config_kwargs": {"echo": False, "pool_pre_ping": True},
        }
        # Holds the Redis password, if any: this config is never logged or written.
        online = {"type": "redis", "connection_string": settings.redis.connection_string()}
    return RepoConfig(
        project=FEAST_PROJECT,
        provider="local",
        repo_path=REPO_DIR,
        registry=registry,
        offline_store={"type": "duckdb"},
        online_store=online,
        entity_key_serialization_version=3,
    )


def feature_store(home: PlatformHome) -> FeatureStore:
    home.feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(home))


def entity(view: ViewDef) -> Entity:
    return Entity(
        name=view.entity,
        join_keys=[view.entity_key],
        value_type=_VALUE_TYPES[view.entity_dtype],
        description=f"Entity keyed by '{view.entity_key}'.",
    )


def feature_view(view: ViewDef, pipeline: str) -> FeatureView:
    source = FileSource(
        name=f"{pipeline}_features_source",
        path=view.source_path,
        timestamp_field=view.timestamp,
        description=f"Offline feature table of pipeline '{pipeline}'.",
    )
    # Feast reads ttl=0 as "never expires".
    ttl = timedelta(seconds=view.ttl_seconds or 0)
    return FeatureView(
        name=view.name,
        entities=[entity(view)],
        ttl=ttl,
        source=source,
        schema=[Field(name=f.name, dtype=_FIELD_TYPES[f.dtype]) for f in view.fields],
        online=True,
        tags={"pipeline": pipeline},
        description=f"Declared features of pipeline '{pipeline}'.",
    )


def service_objects(service: ServiceDef, pipeline: str) -> list[Any]:
    """Entity, source-backed feature view and the versioned feature service, ready to apply."""
    fv = feature_view(service.view, pipeline)
    fs = FeatureService(
        name=service.name,
        features=[fv],
        tags={
            "pipeline": pipeline,
            "fingerprint": service.fingerprint,
            "version": str(service.version),
        },
        description=f"Train/serve contract v{service.version} of '{pipeline}'.",
    )
    return [entity(service.view), fv, fs]
