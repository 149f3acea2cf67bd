"""Redis killed and restarted in the middle of an online load (the production profile: Feast's
SQL registry on a fresh Postgres database, the online store on a private redis-server with an
append-only file, as a production Redis keeps its data across restarts).

The load is what the `<pipeline>_online_features` asset runs (``registry.materialize``). While
Feast writes the new window, Redis is SIGKILLed and kept down longer than the Redis client's
own retries (or only briefly), then started again on the same port and data. After the long
outage the load must fail naming Redis and the fix; after the short one it may instead
complete through the client's retries, with every entity on the new load. When it fails, the
"loaded until" marks (the Feast registry's materialization intervals and the
state file) must not move; every entity must read either its previous vector or its new one,
whole, never features of two loads; and a rerun completes the load."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from ml_platform.features import online, registry
from ml_platform.features.definitions import feature_service
from ml_platform.home import PlatformHome
from ml_platform_tests.features.helpers import T0, history, tiny_spec, write_features
from ml_platform_tests.production.conftest import ProductionEnv
from ml_platform_tests.production.test_redis_password import _free_port

pytestmark = [pytest.mark.production, pytest.mark.slow]
USERS, DAYS = 30_000, 4
FIRST_END = T0.to_pydatetime() + timedelta(days=1, hours=12)  # days 0-1 loaded first
NOW = T0.to_pydatetime() + timedelta(days=DAYS)  # the second load brings day 3
LONG_OUTAGE = 15.0  # longer than redis-py's default retries (3, backoff capped)


class PrivateRedis:
    """A redis-server on a port of its own, its data in an append-only file under ``data``."""

    def __init__(self, data: Path) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail("redis-server is not installed (CI installs Redis; see .ci/run)")
        self.server, self.data, self.port = server, data, _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                *(self.server, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "yes", "--appendfsync", "always"),
                *("--dir", str(self.data)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.client().ping():
                    return
            except redis.exceptions.BusyLoadingError:
                pass  # replaying its append-only file
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis_data")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _hset_calls(client: redis.Redis) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return int(stats.get("cmdstat_hset", {}).get("calls", 0))


def _marks(home: PlatformHome) -> tuple[datetime | None, str]:
    from ml_platform.features.feast_objects import feature_store

    spec = tiny_spec()
    view = feature_service(spec, home, register=False).view
    state = json.loads((home.feast_dir / f"{view.name}.online.json").read_text())
    return online.watermark(feature_store(home), view.name), state["loaded_until"]


def _online_vectors(home: PlatformHome) -> pd.DataFrame:
    from ml_platform.features.feast_objects import feature_store

    service = feature_service(tiny_spec(), home, register=False)
    store = feature_store(home)
    fs = store.get_feature_service(service.name, allow_cache=False)
    return online.online_rows(store, fs, service.view, list(range(1, USERS + 1)))


def _assert_whole_vectors(frame: pd.DataFrame, days: set[int]) -> pd.Series:
    """Every entity has a row, all its features from one source row (``history``: spend =
    user * 100 + day, visits_7d = day + 1) of one of ``days``; the day of each entity."""
    assert frame["spend__ts"].notna().all(), "an entity lost its online row"
    for name in ("tier", "visits_7d"):
        assert frame[name + "__ts"].equals(frame["spend__ts"]), f"{name} from another load"
    day = (frame["spend__ts"] - pd.Timestamp(T0)).dt.days
    assert set(day) <= days, sorted(set(day))
    assert (frame["spend"] == frame["user_id"] * 100 + day).all()
    assert (frame["visits_7d"] == day + 1).all()
    return day


@pytest.mark.parametrize("outage", [LONG_OUTAGE, 0.5])
def test_redis_killed_mid_load_fails_clearly_or_retries_and_serves_no_half_load(
    outage: float,
    production: ProductionEnv,
    private_redis: PrivateRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ML_PLATFORM_REDIS_PORT", str(private_redis.port))
    monkeypatch.setenv("ML_PLATFORM_REDIS_DB", "0")
    home, spec = production.home, tiny_spec()
    write_features(spec, home, history(days=DAYS, users=USERS))
    registry.apply(spec, home)
    first = registry.materialize(spec, home, end=FIRST_END)
    assert first.written == USERS
    assert set(_assert_whole_vectors(_online_vectors(home), {1})) == {1}

    outcome: dict[str, Any] = {}

    def load() -> None:
        try:
            outcome["result"] = registry.materialize(spec, home, end=NOW)
        except Exception as exc:  # the test inspects it
            outcome["error"] = exc

    baseline = _hset_calls(private_redis.client())
    loader = threading.Thread(target=load)
    loader.start()
    deadline = time.monotonic() + 300
    while _hset_calls(private_redis.client()) < baseline + USERS // 10:
        assert loader.is_alive(), f"the load ended before Redis was killed: {outcome}"
        assert time.monotonic() < deadline, "the second load wrote nothing in 300 s"
        time.sleep(0.02)
    private_redis.kill()  # SIGKILL, mid-write
    killed_at = time.monotonic()
    time.sleep(outage)
    private_redis.start()
    loader.join(timeout=300)
    assert not loader.is_alive()
    assert time.monotonic() - killed_at < 120  # bounded, not hung
    if "result" in outcome:  # the Redis client's retries carried the load over the outage
        assert outage < LONG_OUTAGE, "the load succeeded across a 15 s outage"
        assert set(_assert_whole_vectors(_online_vectors(home), {3})) == {3}
        assert _marks(home) == (NOW.astimezone(UTC), NOW.isoformat())
        return

    # Failed, naming Redis and the fix.
    message = str(outcome["error"])
    assert f"Redis at 127.0.0.1:{private_redis.port}" in message, message
    assert "rerun" in message and "ML_PLATFORM_REDIS_HOST" in message, message

    # The marks did not move past what was written; no entity holds a mixed vector.
    assert _marks(home) == (FIRST_END, FIRST_END.isoformat())
    day = _assert_whole_vectors(_online_vectors(home), {1, 3})
    assert (day == 3).any(), "Redis was killed before the new window was written"

    # Once Redis answers, the rerun completes the load.
    rerun = registry.materialize(spec, home, end=NOW)
    assert rerun.start == FIRST_END
    assert set(_assert_whole_vectors(_online_vectors(home), {1, 3})) == {3}
    assert _marks(home) == (NOW.astimezone(UTC), NOW.isoformat())
