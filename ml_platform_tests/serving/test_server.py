"""`ml-platform serve` as a real process on a free port (bounded, stopped in ``finally``), on
a copy of the test champion's home: predictions over HTTP; the champion alias moved by the
promotion ledger while a thread keeps sending requests (none fails, responses switch version
once and never back); a version that cannot load keeps the previous one serving, shows its
error and raises an alert."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
from mlflow.tracking import MlflowClient

from ml_platform.home import PlatformHome
from ml_platform_tests.serving.conftest import PIPELINE, Server


def _register_version(home: PlatformHome, source: str | None = None) -> str:
    """A new registered version of the champion's model (or of ``source``)."""
    client = MlflowClient(tracking_uri=home.tracking_uri, registry_uri=home.tracking_uri)
    champion = client.get_model_version_by_alias(PIPELINE, "champion")
    mv = client.create_model_version(
        PIPELINE, source or champion.source, run_id=champion.run_id, tags=champion.tags
    )
    return str(mv.version)


def _promote(home: PlatformHome, version: str) -> None:
    from ml_platform.registry.ledger import PromotionLedger
    from ml_platform.training.tracking import Tracking

    ledger = PromotionLedger(home.ledger_db, Tracking(home.tracking_uri, home.artifact_root))
    ledger.promote(PIPELINE, version, reason="serving test: move the alias", force=True)


def _models(server: Server) -> dict[str, Any]:
    return httpx.get(f"{server.url}/v1/pipelines/{PIPELINE}/models", timeout=5).json()


def test_predicts_over_http(server: Server) -> None:
    with httpx.Client(timeout=10) as client:
        r = server.predict(client, server.keys[:3])
        assert r.status_code == 200, r.text
        assert [p["entity"] for p in r.json()["predictions"]] == server.keys[:3]
        bad = client.post(
            f"{server.url}/v1/pipelines/{PIPELINE}/predict",
            json={"rows": [{"customer_id": 1, "amount": "x"}]},
        )
        assert bad.status_code == 422
        assert bad.json()["problems"][0]["field"] == "rows[0].amount"
        assert "ml_platform_serving_requests_total" in client.get(f"{server.url}/metrics").text
        assert client.get(f"{server.url}/openapi.json").json()["paths"]


def test_alias_swap_under_load_fails_no_request(server: Server) -> None:
    before = _models(server)["champion"]["version"]
    new = _register_version(server.home)
    results: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def send() -> None:
        with httpx.Client(timeout=10) as client:
            i = 0
            while not stop.is_set():
                keys = server.keys[i % 50 : i % 50 + 5]
                r = client.post(
                    f"{server.url}/v1/pipelines/{PIPELINE}/predict",
                    json={"rows": [{"customer_id": k} for k in keys]},
                )
                versions = {p["model_version"] for p in r.json().get("predictions", [])}
                # One version per batch: a mixed batch is recorded as a failure.
                version = versions.pop() if len(versions) == 1 else f"mixed {versions}"
                results.append((r.status_code, version))
                i += 1

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        time.sleep(1.0)
        _promote(server.home, new)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(v == new for _, v in results[-5:]):
            time.sleep(0.1)
        time.sleep(1.0)  # keep sending after the swap
    finally:
        stop.set()
        sender.join(timeout=20)
    statuses = {s for s, _ in results}
    versions = [v for _, v in results]
    assert statuses == {200}, [r for r in results if r[0] != 200][:5]
    assert versions[0] == before and versions[-1] == new, (before, new, versions[-3:])
    switch = versions.index(new)
    assert set(versions[:switch]) == {before} and set(versions[switch:]) == {new}, versions
    assert len(results) > 20, len(results)
    print(f"\n{len(results)} requests, {switch} answered by v{before}, then v{new}")
    assert _models(server)["champion"]["version"] == new


def test_a_version_that_fails_to_load_keeps_the_previous_one(server: Server) -> None:
    serving = _models(server)["champion"]["version"]
    broken = _register_version(server.home, source=str(server.home.root / "no-such-model"))
    _promote(server.home, broken)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "champion" not in _models(server)["errors"]:
        time.sleep(0.2)
    models = _models(server)
    assert models["champion"]["version"] == serving
    assert "champion" in models["errors"], models
    with httpx.Client(timeout=10) as client:
        r = server.predict(client, server.keys[:2])
    assert r.status_code == 200
    assert {p["model_version"] for p in r.json()["predictions"]} == {serving}
    alerts = [json.loads(line) for line in server.home.alerts_log.read_text().splitlines()]
    [alert] = [a for a in alerts if "serving could not load" in a["title"]]
    assert alert["kind"] == "model_load_failed" and alert["severity"] == "error"
    assert alert["details"]["serving_version"] == serving
    metrics = httpx.get(f"{server.url}/metrics").text
    assert (
        'ml_platform_serving_model_loads_total{alias="champion",outcome="failed",'
        'pipeline="loan_default"} 1.0' in metrics
    )
