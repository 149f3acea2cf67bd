"""The Redis password reaches Redis: Feast's online store client, built from the production
profile's configuration, against a private redis-server that requires a password (the machine's
Redis on 6379 has none, and refuses AUTH, so this check needs its own server)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ml_platform.home import PlatformHome

pytestmark = pytest.mark.production
PASSWORD = "4711"  # numeric on purpose: Feast JSON-decodes connection-string values


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[int]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed (CI installs Redis; see .ci/run)")
    port = _free_port()
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            PASSWORD,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis(host="127.0.0.1", port=port, password=PASSWORD).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _client(home: PlatformHome) -> redis.Redis:
    from feast.infra.online_stores.redis import RedisOnlineStore

    from ml_platform.features.feast_objects import repo_config

    client: redis.Redis = RedisOnlineStore()._get_client(repo_config(home).online_store)
    return client


def test_the_password_is_sent_and_a_wrong_one_refused(
    private_redis: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ML_PLATFORM_PROFILE", "production")
    monkeypatch.setenv("ML_PLATFORM_REDIS_PORT", str(private_redis))
    monkeypatch.setenv("ML_PLATFORM_REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("PGPASSWORD", "")  # recorded: the profile may set it
    (tmp_path / "redis_pw").write_text(PASSWORD + "\n")
    monkeypatch.setenv("ML_PLATFORM_REDIS_PASSWORD_FILE", str(tmp_path / "redis_pw"))
    home = PlatformHome(tmp_path / "h")
    assert _client(home).ping()

    monkeypatch.delenv("ML_PLATFORM_REDIS_PASSWORD_FILE")
    monkeypatch.setenv("ML_PLATFORM_REDIS_PASSWORD", "wrong")
    with pytest.raises(redis.AuthenticationError):
        _client(home).ping()
