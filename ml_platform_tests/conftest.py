"""Shared fixtures: every test gets its own platform home; nothing touches the developer's."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from ml_platform.home import PlatformHome
from ml_platform.ingest.datagen import land
from ml_platform.spec import PipelineSpec
from ml_platform_tests.helpers import SMALL, small_spec


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PlatformHome:
    root = tmp_path / "home"
    monkeypatch.setenv("ML_PLATFORM_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    monkeypatch.setenv("FEAST_USAGE", "False")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    warnings.simplefilter("ignore")
    return PlatformHome(root).ensure()


@pytest.fixture
def demo_spec() -> PipelineSpec:
    return small_spec()


@pytest.fixture
def landed(home: PlatformHome) -> list[Path]:
    return land(SMALL, home.landing / "loan_default")
