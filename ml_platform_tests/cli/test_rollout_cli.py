"""`ml-platform rollout <pipeline> start|stop|status` in-process on a temporary home with a real
MLflow registry (two versions of the pipeline's model, the aliases set as the ledger would):
refusals exit 2 with the reason, start records the aliases' versions and the spec's mode and
share (options override), status shows the active rollout, its history and the logged
predictions per arm, stop ends it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from ml_platform.cli import app
from ml_platform.home import PlatformHome
from ml_platform.serving.prediction_log import PredictionLog
from ml_platform.serving.rollout import RolloutStore

PIPELINE = "loan_default"  # a declared pipeline (its spec is read for the rollout defaults)
runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PlatformHome:
    root = tmp_path / "home"
    monkeypatch.setenv("ML_PLATFORM_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return PlatformHome(root).ensure()


def _registry(home: PlatformHome) -> MlflowClient:
    client = MlflowClient(tracking_uri=home.tracking_uri, registry_uri=home.tracking_uri)
    client.create_registered_model(PIPELINE)
    for _ in range(2):
        client.create_model_version(PIPELINE, str(home.root / "model"))
    client.set_registered_model_alias(PIPELINE, "champion", "1")
    return client


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["rollout", PIPELINE, *args])
    return result.exit_code, result.output


def _json(*args: str) -> dict[str, Any]:
    code, out = _run(*args, "--json")
    assert code == 0, out
    return json.loads(out)


def test_start_status_stop(home: PlatformHome) -> None:
    client = _registry(home)
    code, out = _run("start", "--mode", "shadow")
    assert code == 2 and "no challenger alias" in out, out

    client.set_registered_model_alias(PIPELINE, "challenger", "1")  # the champion itself
    code, out = _run("start", "--mode", "ab")
    assert code == 2 and "is the champion" in out, out

    client.set_registered_model_alias(PIPELINE, "challenger", "2")
    code, out = _run("start")  # the demo spec declares rollout.mode off
    assert code == 2 and "declares rollout.mode off" in out, out

    started = _json("start", "--mode", "ab", "--traffic-share", "0.3", "--actor", "user:ana")
    rollout = started["started"]
    assert (rollout["mode"], rollout["traffic_share"]) == ("ab", 0.3)
    assert (rollout["champion_version"], rollout["challenger_version"]) == ("1", "2")
    assert rollout["actor"] == "user:ana" and rollout["active"]

    code, out = _run("start", "--mode", "shadow")
    assert code == 2 and "already has an active ab rollout" in out, out

    with PredictionLog(home, PIPELINE) as plog:
        plog.append(
            [
                {
                    "request_id": f"r{i}",
                    "row": 0,
                    "entity": i,
                    "model_version": "2" if i % 3 == 0 else "1",
                    "arm": "challenger" if i % 3 == 0 else "champion",
                    "mode": "ab",
                    "served": True,
                    "score": 0.2,
                    "label": 0,
                    "latency_ms": 1.0,
                    "features": {},
                }
                for i in range(30)
            ]
        )
    status = _json("status")
    assert status["active"]["id"] == rollout["id"]
    assert status["aliases"] == {"champion": "1", "challenger": "2"}
    assert status["spec"]["mode"] == "off" and status["spec"]["test"] in ("fixed", "sequential")
    by_arm = {(c["arm"], c["model_version"]): c["rows"] for c in status["predictions"]["by_arm"]}
    assert by_arm == {("challenger", "2"): 10, ("champion", "1"): 20}
    code, text = _run("status")
    assert code == 0 and "active: rollout" in text and "challenger" in text, text

    stopped = _json("stop", "--reason", "enough", "--actor", "user:bo")["stopped"]
    assert stopped["id"] == rollout["id"] and stopped["stop_reason"] == "enough"
    assert stopped["stopped_by"] == "user:bo" and not stopped["active"]
    assert _json("stop")["stopped"] is None
    code, out = _run("stop")
    assert code == 0 and "nothing to stop" in out
    history = _json("status")["history"]
    assert [h["id"] for h in history] == [rollout["id"]] and history[0]["stopped_at"]
    assert RolloutStore(home, PIPELINE).current() is None


def test_bad_input_exits_2_with_the_reason(home: PlatformHome) -> None:
    result = runner.invoke(app, ["rollout", "no_such_pipeline", "status"])
    assert result.exit_code == 2 and "no pipeline named 'no_such_pipeline'" in result.output
    code, out = _run("pause")
    assert code == 2 and "pause" in out
    code, out = _run("start", "--mode", "ab", "--traffic-share", "1.5")
    assert code == 2 and "less than or equal to 1" in " ".join(out.split())
    code, out = _run("stop", "--mode", "ab")
    assert code == 2 and "options of start" in out
