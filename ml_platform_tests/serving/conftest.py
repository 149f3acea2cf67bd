"""One real champion for the serving tests: the demo at test size materialized once per session
on real local backends (landing, features, Feast online store, training, registration,
promotion), in a home of its own. Tests that move aliases work on a copy of it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from ml_platform.home import PROJECT_ROOT, PlatformHome
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


STARTUP_SECONDS = 120
REFRESH_SECONDS = 0.3


@dataclass(frozen=True)
class Server:
    url: str
    home: PlatformHome
    keys: list[int]
    log: Path

    def predict(self, client: httpx.Client, keys: list[int]) -> httpx.Response:
        rows = [{"customer_id": k} for k in keys]
        return client.post(f"{self.url}/v1/pipelines/{PIPELINE}/predict", json={"rows": rows})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited ({proc.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not ready within {STARTUP_SECONDS}s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def server(champion: Champion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("served") / "home"
    shutil.copytree(champion.home.root, root)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = root.parent / "server.log"
    env = {
        **os.environ,
        "ML_PLATFORM_HOME": str(root),
        "DAGSTER_HOME": str(root / "dagster"),
        "FEAST_USAGE": "False",
    }
    cli = str(Path(sys.executable).parent / "ml-platform")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                cli,
                "serve",
                PIPELINE,
                "--port",
                str(port),
                "--refresh-seconds",
                str(REFRESH_SECONDS),
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(url, proc, log)
        yield Server(url, PlatformHome(root), champion.known_keys, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
