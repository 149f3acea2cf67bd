"""Feature and training-set stages: the feature table of one validated batch, then a
point-in-time training set built through the pipeline's feature service definitions.

Every table is written once under a content-addressed name and handed downstream by path, so
two runs of one pipeline never read each other's tables. The feature table is also published
(atomically) as the Feast source that the online store loads from.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ml_platform.features.dbt_project import read_model
from ml_platform.features.definitions import ServiceDef, feature_service, features_table
from ml_platform.features.sql import apply_custom, compute_features, point_in_time_join
from ml_platform.home import PlatformHome
from ml_platform.ingest.io import atomic_path, write_parquet_hashed
from ml_platform.spec import PipelineSpec


@dataclass(frozen=True)
class TableInfo:
    path: str
    rows: int
    data_version: str
    columns: list[str]
    feature_service: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_features(spec: PipelineSpec, home: PlatformHome, validated: Path) -> TableInfo:
    """The offline feature table of the ``validated`` batch: the spec's declared SQL over it, or
    the dbt model the spec names (built from the same batch)."""
    if spec.features.dbt_model:
        frame = apply_custom(spec, read_model(spec, home))
    else:
        frame = compute_features(spec, validated)
    directory = home.pipeline_dir(spec.name) / "features"
    path, version = write_parquet_hashed(frame, directory, lambda h: f"{h}.parquet")
    publish_source(path, features_table(spec, home))
    return TableInfo(str(path), len(frame), version, list(frame.columns))


def publish_source(table: Path, source: Path) -> None:
    """Replace the Feast source with ``table`` in one rename: a reader sees one or the other."""
    with atomic_path(source) as tmp:
        shutil.copyfile(table, tmp)


def training_set_version(content_hash: str, service: ServiceDef) -> str:
    """Same rows through a different feature contract is a different training set."""
    return hashlib.sha256(f"{service.name}:{service.fingerprint}:{content_hash}".encode()
                          ).hexdigest()[:16]


def build_training_set(spec: PipelineSpec, home: PlatformHome, validated: Path,
                       features: Path) -> TableInfo:
    """Every validated row at its label time, each feature as of that time (TTL respected)."""
    service = feature_service(spec, home)
    view = service.view
    frame = point_in_time_join(validated, features, view.entity_key, view.timestamp,
                               view.feature_names, [spec.label], view.ttl_seconds)
    path, content = write_parquet_hashed(
        frame, home.pipeline_dir(spec.name) / "training_sets",
        lambda h: f"{training_set_version(h, service)}.parquet")
    version = training_set_version(content, service)
    return TableInfo(str(path), len(frame), version, list(frame.columns), service.name)
