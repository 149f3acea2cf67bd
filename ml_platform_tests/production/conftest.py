"""Fixtures for the production profile's tests: fresh Postgres databases and a Redis database
on the machine's real services (127.0.0.1:5432, 127.0.0.1:6379), created for one test and
dropped after it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ml_platform import profile
from ml_platform.home import PlatformHome
from ml_platform_tests.production.services import (
    PG,
    REDIS_HOST,
    REDIS_PORT,
    STORES,
    claim_redis_db,
    drop_databases,
    release_redis_db,
)


@dataclass(frozen=True)
class ProductionEnv:
    """One test's services: its database names, its Redis database and the test password."""

    home: PlatformHome
    databases: dict[str, str]
    redis_db: int
    password: str


@pytest.fixture
def production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: PlatformHome
) -> Iterator[ProductionEnv]:
    """The production profile on fresh databases named ``mlp_test_<id>_<store>``, a claimed
    Redis database and a known test password (the local Postgres trusts every local user, so
    it accepts any password; it is still passed through the connection settings)."""
    token = uuid.uuid4().hex[:10]
    databases = {store: f"mlp_test_{token}_{store.lower()}" for store in STORES}
    password = f"test-pw-{uuid.uuid4().hex}"
    redis_db = claim_redis_db(token)
    root = tmp_path / "prod_home"
    monkeypatch.setenv("ML_PLATFORM_PROFILE", "production")
    monkeypatch.setenv("ML_PLATFORM_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    for store, name in databases.items():
        monkeypatch.setenv(f"ML_PLATFORM_PG_{store}_DB", name)
    for name, value in {
        "ML_PLATFORM_PG_HOST": PG["host"],
        "ML_PLATFORM_PG_PORT": str(PG["port"]),
        "ML_PLATFORM_PG_USER": PG["user"],
        "ML_PLATFORM_PG_ADMIN_DB": PG["dbname"],
        "ML_PLATFORM_PG_PASSWORD": password,
        # Set by the profile itself (for libpq); set here too so the test's undo removes it.
        "PGPASSWORD": password,
        "ML_PLATFORM_REDIS_HOST": REDIS_HOST,
        "ML_PLATFORM_REDIS_PORT": str(REDIS_PORT),
        "ML_PLATFORM_REDIS_DB": str(redis_db),
    }.items():
        monkeypatch.setenv(name, value)
    for name in (
        "ML_PLATFORM_OPTUNA_STORAGE",
        "ML_PLATFORM_ARTIFACT_ROOT",
        "ML_PLATFORM_PG_PASSWORD_FILE",
        "ML_PLATFORM_REDIS_PASSWORD",
        "ML_PLATFORM_REDIS_PASSWORD_FILE",
        "MLFLOW_TRACKING_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    profile._ENSURED.clear()
    try:
        yield ProductionEnv(PlatformHome(root).ensure(), databases, redis_db, password)
    finally:
        drop_databases(list(databases.values()))
        release_redis_db(redis_db)
        profile._ENSURED.clear()
