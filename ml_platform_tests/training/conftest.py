"""Training fixtures: a training set straight from generated data (no feature stage), so the
training tests depend only on the training code."""

from __future__ import annotations

import pandas as pd
import pytest

from ml_platform.features.tables import TableInfo
from ml_platform.home import PlatformHome
from ml_platform.ingest.datagen import GeneratorConfig, land
from ml_platform.ingest.io import frame_hash, write_parquet
from ml_platform.spec import PipelineSpec
from ml_platform.training.tracking import Tracking
from ml_platform_tests.training.helpers import training_spec

DATA = GeneratorConfig(events=3_000, days=30, seed=11)


@pytest.fixture
def spec() -> PipelineSpec:
    return training_spec()


@pytest.fixture
def training_set(home: PlatformHome, spec: PipelineSpec) -> TableInfo:
    files = land(DATA, home.landing / spec.name)
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    version = frame_hash(frame)
    path = write_parquet(
        frame, home.pipeline_dir(spec.name) / "training_sets" / f"{version}.parquet"
    )
    return TableInfo(str(path), len(frame), version, list(frame.columns))


@pytest.fixture
def tracking(home: PlatformHome) -> Tracking:
    return Tracking(home.tracking_uri, artifact_root=home.artifact_root)
