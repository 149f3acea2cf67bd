"""Fixtures for the data-contract tests: one clean demo batch, generated once per session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml_platform.ingest import raw
from ml_platform.ingest.datagen import GeneratorConfig, land
from ml_platform_tests.helpers import SMALL


def read_landed(files: list[Path]) -> pd.DataFrame:
    return raw.read_files([str(f) for f in files], "parquet")


@pytest.fixture(scope="session")
def clean_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return land(SMALL, tmp_path_factory.mktemp("clean_landing"))


@pytest.fixture(scope="session")
def clean_frame(clean_files: list[Path]) -> pd.DataFrame:
    return read_landed(clean_files)


@pytest.fixture(scope="session")
def drifted_frame(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    cfg = GeneratorConfig(events=SMALL.events, days=SMALL.days, seed=SMALL.seed, drift=0.8)
    return read_landed(land(cfg, tmp_path_factory.mktemp("drifted_landing")))


@pytest.fixture
def batch(clean_frame: pd.DataFrame) -> pd.DataFrame:
    """A fresh copy each test may break."""
    return clean_frame.copy()
