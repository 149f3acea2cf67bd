"""The production Dagster instance config (deploy/production/dagster.yaml) loaded through
``DagsterInstance`` against the real Postgres: storage, limits, and how a home gets it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from ml_platform.home import INSTANCE_TEMPLATES, PlatformHome
from ml_platform.profile import PRODUCTION, ProfileError
from ml_platform_tests.production.conftest import ProductionEnv

pytestmark = pytest.mark.production


@dg.asset
def number() -> int:
    return 7


def test_the_production_instance_stores_runs_in_postgres(production: ProductionEnv) -> None:
    home = production.home
    instance_yaml = home.dagster_home / "dagster.yaml"
    assert instance_yaml.read_bytes() == INSTANCE_TEMPLATES[PRODUCTION].read_bytes()
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert instance.run_monitoring_enabled
        assert instance.run_retries_max_retries == 1
        limits = instance.get_concurrency_config().run_queue_config
        assert limits is not None and limits.max_concurrent_runs == 4
        assert limits.tag_concurrency_limits[0]["key"] == "ml_platform/pipeline"
        result = dg.materialize([number], instance=instance)
        assert result.success
    # A second instance (another process or host) reads the same run and materialization.
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as other:
        assert other.get_run_by_id(result.run_id) is not None
        assert other.get_latest_materialization_event(dg.AssetKey("number")) is not None
    assert not list(home.dagster_home.rglob("*.db")), "SQLite storage in the instance dir"


def test_the_instance_config_is_the_operators_once_written(production: ProductionEnv) -> None:
    instance_yaml = production.home.dagster_home / "dagster.yaml"
    edited = instance_yaml.read_text().replace("max_concurrent_runs: 4", "max_concurrent_runs: 2")
    instance_yaml.write_text(edited)
    PlatformHome(production.home.root).ensure()
    assert instance_yaml.read_text() == edited


def test_a_home_from_the_embedded_profile_is_refused(
    production: ProductionEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded = PlatformHome(tmp_path / "embedded_home", profile="embedded").ensure()
    assert "postgres" not in (embedded.dagster_home / "dagster.yaml").read_text()
    with pytest.raises(ProfileError, match="has no Postgres storage.*use a new ML_PLATFORM_HOME"):
        PlatformHome(embedded.root).ensure()  # the environment says production


def test_the_password_comes_only_from_the_environment(production: ProductionEnv) -> None:
    text = INSTANCE_TEMPLATES[PRODUCTION].read_text()
    assert production.password not in text
    assert "password:\n        env: ML_PLATFORM_PG_PASSWORD" in text
