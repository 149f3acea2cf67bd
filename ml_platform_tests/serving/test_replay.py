"""`ml-platform replay`: the "Done when" story of issue 15 end to end (slow), and its refusals.

End to end, on a copy of the test champion's home: a real `ml-platform serve` process, a second
version registered through the promotion ledger (offline gates passed) as the challenger,
`ml-platform rollout start --mode shadow`, `ml-platform replay --days 8 --evaluate` (8 landed
days at test size are about 1,200 rows: more than the spec's 1,000 labelled rows per arm), and
the ledger's decision read with `ml-platform models history`. The challenger is the champion's
own model (same artifact), so the paired test must find it not worse and promote it.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from ml_platform.cli.replay import batches
from ml_platform.home import PROJECT_ROOT, PlatformHome
from ml_platform.registry.ledger import OFFLINE_GATES, open_ledger
from ml_platform.serving.prediction_log import read_predictions
from ml_platform.serving.rollout import RolloutStore
from ml_platform.training.tracking import Tracking
from ml_platform_tests.helpers import SMALL_DEFS, ml_platform
from ml_platform_tests.serving.conftest import PIPELINE, Champion, _free_port, _wait_ready

SERVER_SECONDS = 900  # the served process is killed after this, whatever happens


def _use_home(env: pytest.MonkeyPatch, root: Path) -> None:
    env.setenv("ML_PLATFORM_HOME", str(root))
    env.setenv("DAGSTER_HOME", str(root / "dagster"))
    env.setenv("FEAST_USAGE", "False")
    env.delenv("MLFLOW_TRACKING_URI", raising=False)


def _register_challenger(home: PlatformHome) -> str:
    """The champion's model as a new version, made challenger through the ledger with passing
    offline gates (so online evaluation may promote it)."""
    tracking = Tracking(home.tracking_uri, home.artifact_root)
    client = tracking.client
    champion = client.get_model_version_by_alias(PIPELINE, "champion")
    mv = client.create_model_version(
        PIPELINE, str(champion.source), run_id=champion.run_id, tags=champion.tags
    )
    ledger = open_ledger(home, tracking)
    evidence = ledger.add_evidence(
        PIPELINE, str(mv.version), OFFLINE_GATES, True, "the champion's model again (test)"
    )
    ledger.register_challenger(PIPELINE, str(mv.version), [evidence], actor="test")
    return str(mv.version)


def _serve(root: Path, port: int) -> subprocess.Popen[bytes]:
    log = (root.parent / "server.log").open("wb")
    cli = str(Path(sys.executable).parent / "ml-platform")
    env = {**os.environ, "ML_PLATFORM_HOME": str(root), "DAGSTER_HOME": str(root / "dagster")}
    return subprocess.Popen(
        [cli, "serve", PIPELINE, "--port", str(port), "--refresh-seconds", "0.3"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def served(
    champion: Champion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[PlatformHome, str, str]]:
    """A copy of the champion's home with a challenger, served by a real process (bounded)."""
    root = tmp_path / "served_home"
    shutil.copytree(champion.home.root, root)
    _use_home(monkeypatch, root)
    home = PlatformHome(root)
    challenger = _register_challenger(home)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(root, port)
    killer = threading.Timer(SERVER_SECONDS, proc.kill)
    killer.start()
    try:
        _wait_ready(url, proc, root.parent / "server.log")
        yield home, url, challenger
    finally:
        killer.cancel()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_shadow(url: str, challenger: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/v1/pipelines/{PIPELINE}/models", timeout=5).json()
        rollout = body.get("rollout") or {}
        if rollout.get("mode") == "shadow" and rollout.get("challenger_version") == challenger:
            return
        time.sleep(0.3)
    raise AssertionError(f"the service never served the shadow rollout: {body}")


@pytest.mark.slow
def test_serve_shadow_replay_evaluate_and_a_ledger_decision(
    served: tuple[PlatformHome, str, str],
) -> None:
    home, url, challenger = served
    started = ml_platform("rollout", PIPELINE, "start", "--mode", "shadow")
    assert started.returncode == 0, started.stdout + started.stderr
    _wait_shadow(url, challenger)

    replay = ml_platform(
        "replay",
        PIPELINE,
        "--days",
        "8",
        "--url",
        url,
        "--rate",
        "20",
        "--evaluate",
        "--definitions",
        SMALL_DEFS,
        timeout=900,
    )
    out = replay.stdout + replay.stderr
    assert replay.returncode == 0, out
    assert "0 refused" in out and "verdict not_worse, action promoted" in out, out

    # Both arms scored every replayed row; the outcomes joined them by request id.
    log = read_predictions(home, PIPELINE)
    replayed = log[log["request_id"].str.startswith("replay-")]
    arms = replayed.groupby("arm")["request_id"].count().to_dict()
    assert arms["champion"] == arms["challenger"] >= 1000, arms
    assert set(replayed.loc[replayed["arm"] == "challenger", "model_version"]) == {challenger}

    history = ml_platform("models", "history", PIPELINE, "--json")
    assert history.returncode == 0, history.stderr
    last = json.loads(history.stdout)["decisions"][-1]
    assert (last["action"], last["version"], last["actor"]) == (
        "promote",
        challenger,
        "online-evaluation",
    ), last
    assert RolloutStore(home, PIPELINE).current() is None  # promoted: the rollout stopped


def test_batches_never_hold_an_entity_twice() -> None:
    rows = [{"k": k} for k in [1, 2, 1, 3, 4, 5, 3]]
    got = batches(rows, "k", 3)
    assert got == [[0, 1], [2, 3, 4], [5, 6]]
    for b in got:
        assert len({rows[i]["k"] for i in b}) == len(b)


class _NotReady(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = b'{"ready": false, "waiting_for": {"loan_default": "loading"}}'
        self.send_response(503)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def feature_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PlatformHome:
    """A home with a two-row feature table and its validated data (the labels): enough to get
    to the service checks."""
    home = PlatformHome(tmp_path / "home").ensure()
    _use_home(monkeypatch, home.root)
    folder = home.pipeline_dir(PIPELINE)
    (folder / "validated").mkdir(parents=True, exist_ok=True)
    rows = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "applied_at": pd.to_datetime(["2026-01-01T10:00", "2026-01-02T10:00"], utc=True),
            "amount": [1000.0, None],
            "purpose": ["car", "home"],
            "defaulted": [0, 1],
        }
    )
    rows.drop(columns="defaulted").to_parquet(folder / "features.parquet")
    rows.to_parquet(folder / "validated" / "0123.parquet")
    return home


def test_a_service_that_is_down_or_not_ready_is_a_clear_error(feature_home: PlatformHome) -> None:
    down = ml_platform("replay", PIPELINE, "--url", f"http://127.0.0.1:{_free_port()}")
    assert down.returncode == 1, down.stdout
    assert "no service answers at" in down.stdout and "ml-platform serve loan_default" in (
        down.stdout
    )

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotReady)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        waiting = ml_platform("replay", PIPELINE, "--url", url)
    finally:
        server.shutdown()
    assert waiting.returncode == 1, waiting.stdout
    assert "is not ready (503" in waiting.stdout and "loading" in waiting.stdout, waiting.stdout
    # nothing was written: no outcomes, no replay file
    assert not (feature_home.pipeline_dir(PIPELINE) / "replay").exists()


def test_no_feature_table_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = PlatformHome(tmp_path / "home").ensure()
    _use_home(monkeypatch, home.root)
    result = ml_platform("replay", PIPELINE)
    assert result.returncode == 2
    assert "no feature table at" in result.stdout and "ml-platform run loan_default" in (
        result.stdout
    )
