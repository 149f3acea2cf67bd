"""One real champion for the serving tests: the demo at test size materialized once per session
on real local backends (landing, features, Feast online store, training, registration,
promotion), in a home of its own. Tests that move aliases work on a copy of it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from ml_platform.home import PlatformHome
from ml_platform.ingest.datagen import land
from ml_platform.spec import PipelineSpec
from ml_platform_tests.helpers import SMALL, materialize, small_spec

PIPELINE = "loan_default"


@dataclass(frozen=True)
class Champion:
    home: PlatformHome
    spec: PipelineSpec
    features: pd.DataFrame  # the feature table the online store was loaded from
    holdout: pd.DataFrame  # the frozen holdout the champion was evaluated on

    @property
    def known_keys(self) -> list[int]:
        return sorted(int(k) for k in self.features["customer_id"].unique())


def _env(env: pytest.MonkeyPatch, root: Path) -> None:
    env.setenv("ML_PLATFORM_HOME", str(root))
    env.setenv("DAGSTER_HOME", str(root / "dagster"))
    env.setenv("FEAST_USAGE", "False")
    env.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Champion:
    root = tmp_path_factory.mktemp("serving") / "home"
    spec = small_spec(n_trials=1)
    with pytest.MonkeyPatch.context() as env:
        _env(env, root)
        home = PlatformHome(root).ensure()
        land(SMALL, home.landing / PIPELINE)
        result = materialize(spec, home)
        assert result.success, "the test champion could not be built"
    folder = home.pipeline_dir(PIPELINE)
    features = pd.read_parquet(folder / "features.parquet")
    holdout = pd.read_parquet(next((folder / "holdouts").glob("*.parquet")))
    return Champion(home, spec, features, holdout)


@pytest.fixture
def champion_copy(champion: Champion, tmp_path: Path) -> Iterator[Champion]:
    """A copy of the champion's home a test may change (aliases, versions). Artifacts stay
    where the original registry recorded them (read only)."""
    root = tmp_path / "copy"
    shutil.copytree(champion.home.root, root)
    yield Champion(PlatformHome(root), champion.spec, champion.features, champion.holdout)
