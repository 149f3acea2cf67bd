"""Feature and training-set stages: feature table from the validated batch, then a
point-in-time training set whose content hash is its data version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ml_platform.core.features import compute_features, point_in_time_join
from ml_platform.core.io import frame_hash, write_parquet
from ml_platform.home import PlatformHome
from ml_platform.spec import PipelineSpec


@dataclass(frozen=True)
class TableInfo:
    path: str
    rows: int
    data_version: str
    columns: list[str]


def features_path(spec: PipelineSpec, home: PlatformHome) -> Path:
    return home.pipeline_dir(spec.name) / "features.parquet"


def build_features(spec: PipelineSpec, home: PlatformHome) -> TableInfo:
    validated = home.pipeline_dir(spec.name) / "validated.parquet"
    frame = compute_features(spec, validated)
    path = write_parquet(frame, features_path(spec, home))
    return TableInfo(str(path), len(frame), frame_hash(frame), list(frame.columns))


def build_training_set(spec: PipelineSpec, home: PlatformHome) -> TableInfo:
    validated = home.pipeline_dir(spec.name) / "validated.parquet"
    frame = point_in_time_join(spec, validated, features_path(spec, home))
    version = frame_hash(frame)
    path = write_parquet(frame, home.pipeline_dir(spec.name) / "training_sets" /
                         f"{version}.parquet")
    return TableInfo(str(path), len(frame), version, list(frame.columns))
