"""Feature and training-set stages: the feature table from the validated batch, then a
point-in-time training set built through the pipeline's feature service definitions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ml_platform.core.features import apply_custom, compute_features, point_in_time_join
from ml_platform.core.io import write_parquet_hashed
from ml_platform.featurestore.dbt_project import read_model
from ml_platform.featurestore.definitions import ServiceDef, feature_service, features_table
from ml_platform.home import PlatformHome
from ml_platform.spec import PipelineSpec


@dataclass(frozen=True)
class TableInfo:
    path: str
    rows: int
    data_version: str
    columns: list[str]
    feature_service: str = ""


def build_features(spec: PipelineSpec, home: PlatformHome) -> TableInfo:
    """The offline feature table (the Feast source): the spec's declared SQL over the validated
    batch, or the dbt model the spec names."""
    if spec.features.dbt_model:
        frame = apply_custom(spec, read_model(spec, home))
    else:
        frame = compute_features(spec, home.pipeline_dir(spec.name) / "validated.parquet")
    table = features_table(spec, home)
    path, version = write_parquet_hashed(frame, table.parent, lambda _: table.name)
    return TableInfo(str(path), len(frame), version, list(frame.columns))


def training_set_version(content_hash: str, service: ServiceDef) -> str:
    """Same rows through a different feature contract is a different training set."""
    return hashlib.sha256(f"{service.name}:{service.fingerprint}:{content_hash}".encode()
                          ).hexdigest()[:16]


def build_training_set(spec: PipelineSpec, home: PlatformHome) -> TableInfo:
    """Every validated row at its label time, each feature as of that time (TTL respected)."""
    validated = home.pipeline_dir(spec.name) / "validated.parquet"
    service = feature_service(spec, home)
    view = service.view
    frame = point_in_time_join(validated, view.source_path, view.entity_key, view.timestamp,
                               view.feature_names, [spec.label], view.ttl_seconds)
    path, content = write_parquet_hashed(
        frame, home.pipeline_dir(spec.name) / "training_sets",
        lambda h: f"{training_set_version(h, service)}.parquet")
    version = training_set_version(content, service)
    return TableInfo(str(path), len(frame), version, list(frame.columns), service.name)
