"""Tracking calls retry transient errors only, against real stores: a local HTTP server started
here (503, 429, 400 answers), a SQLite store that is locked or asked for what does not exist."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

from ml_platform.features.tables import TableInfo
from ml_platform.home import PlatformHome
from ml_platform.training import train
from ml_platform.training.tracking import Tracking, TrackingUnavailable, is_transient
from ml_platform_tests.training.helpers import training_spec

FAST = 0.05  # backoff base for tests: 0.05, 0.1, 0.2 s


class ScriptedStore:
    """A real HTTP server on a free local port: it answers the first requests with the given
    statuses and then every request with ``200 {"experiments": []}`` (a valid answer to
    MLflow's search_experiments)."""

    def __init__(self, statuses: list[int], body: str = "") -> None:
        self.statuses, self.body, self.requests = list(statuses), body, 0
        store = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                store.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                status = store.statuses.pop(0) if store.statuses else 200
                payload = store.body if status != 200 else json.dumps({"experiments": []})
                self.send_response(status)
                self.send_header(
                    "Content-Type", "application/json" if payload.startswith("{") else "text/plain"
                )
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload.encode())

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def no_mlflow_http_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's HTTP layer retries 429/5xx itself (7 times, backoff factor 2, by default):
    switched off so the retries under test are ours."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


@pytest.fixture
def scripted() -> Iterator[list[ScriptedStore]]:
    stores: list[ScriptedStore] = []
    yield stores
    for store in stores:
        store.close()


def _store(scripted: list[ScriptedStore], statuses: list[int], body: str = "") -> ScriptedStore:
    scripted.append(ScriptedStore(statuses, body))
    return scripted[-1]


@pytest.mark.usefixtures("no_mlflow_http_retries")
@pytest.mark.parametrize("status", [503, 429, 500])
def test_a_transient_http_error_is_retried_until_the_store_answers(
    scripted: list[ScriptedStore], status: int
) -> None:
    store = _store(scripted, [status, status], body="overloaded")
    Tracking(store.uri, attempts=4, base_delay=FAST).probe()
    assert store.requests == 3  # two refusals, then the answer


@pytest.mark.usefixtures("no_mlflow_http_retries")
def test_a_store_that_stays_unavailable_fails_with_its_last_error(
    scripted: list[ScriptedStore],
) -> None:
    store = _store(scripted, [503] * 10, body="maintenance")
    with pytest.raises(TrackingUnavailable) as err:
        Tracking(store.uri, attempts=3, base_delay=FAST).probe()
    assert store.requests == 3
    message = str(err.value)
    assert "unreachable" in message and "3 attempts" in message and "503" in message


@pytest.mark.usefixtures("no_mlflow_http_retries")
def test_a_deterministic_http_error_is_raised_at_once_as_itself(
    scripted: list[ScriptedStore],
) -> None:
    body = json.dumps(
        {"error_code": "INVALID_PARAMETER_VALUE", "message": "max_results must be positive"}
    )
    store = _store(scripted, [400], body=body)
    started = time.perf_counter()
    with pytest.raises(MlflowException, match="max_results must be positive") as err:
        Tracking(store.uri, attempts=4, base_delay=1.0).probe()
    assert not isinstance(err.value, TrackingUnavailable)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    assert store.requests == 1 and time.perf_counter() - started < 1.0


def test_a_deterministic_sqlite_error_is_raised_at_once_with_its_own_message(
    home: PlatformHome,
) -> None:
    tracking = Tracking(home.tracking_uri, attempts=4, base_delay=1.0)
    experiment_id = tracking.experiment_id("retries")
    run_id = tracking.client.create_run(experiment_id).info.run_id
    tracking.log_batch(run_id, params={"timeout_seconds": 10})
    calls = 0

    def change_param() -> None:
        nonlocal calls
        calls += 1
        tracking.log_batch(run_id, params={"timeout_seconds": 20})  # params are immutable

    started = time.perf_counter()
    with pytest.raises(MlflowException, match="timeout_seconds") as err:
        tracking.call(change_param, "change a param")
    assert calls == 1 and time.perf_counter() - started < 1.0
    assert not isinstance(err.value, TrackingUnavailable)
    assert "unreachable" not in str(err.value)

    with pytest.raises(MlflowException, match="not found|does not exist"):
        tracking.call(lambda: tracking.client.get_run("0" * 32), "read a run")


def test_a_deterministic_error_during_training_is_not_called_unreachable(
    home: PlatformHome, tracking: Tracking, training_set: TableInfo
) -> None:
    """A deleted experiment: creating the run is refused for good. It used to be retried for
    3.5 s and reported as "tracking store unreachable"."""
    spec = training_spec(n_trials=1)
    tracking.client.delete_experiment(tracking.experiment_id(spec.name))
    started = time.perf_counter()
    with pytest.raises(MlflowException, match="active") as err:
        train.train_candidate(spec, home, tracking, training_set, {})
    assert not isinstance(err.value, TrackingUnavailable)
    assert time.perf_counter() - started < tracking.base_delay + 5


def test_a_locked_sqlite_database_is_transient_and_a_missing_table_is_not(tmp_path: Path) -> None:
    """Real driver errors, raised by SQLite: a write lock another connection holds, and a
    query on a table that does not exist."""
    path = tmp_path / "store.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="database is locked") as locked:
        other.execute("SELECT * FROM t")
    holder.execute("ROLLBACK")
    with pytest.raises(sqlite3.OperationalError, match="no such table") as missing:
        other.execute("SELECT * FROM nowhere")
    assert is_transient(locked.value) and not is_transient(missing.value)
    for conn in (holder, other):
        conn.close()


@pytest.mark.slow
def test_a_locked_mlflow_store_is_retried_until_the_lock_is_released(home: PlatformHome) -> None:
    """MLflow's SQLite sessions wait 20 s for a lock (busy_timeout) before "database is
    locked"; the lock here is held 22 s, so the first attempt fails and a retry succeeds."""
    tracking = Tracking(home.tracking_uri, attempts=3, base_delay=FAST)
    tracking.probe()  # the store exists, with its tables
    holder = sqlite3.connect(
        home.mlflow_dir / "mlflow.db", isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(22, lambda: holder.execute("ROLLBACK"))
    release.start()
    calls = 0

    def create() -> str:
        nonlocal calls
        calls += 1
        return tracking.client.create_experiment("after-the-lock")

    try:
        assert tracking.call(create, "create an experiment")
    finally:
        release.join()
        holder.close()
    assert calls == 2
