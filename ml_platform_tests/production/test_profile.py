"""The profile switch and the production settings read from the environment: defaults, secrets
from variables or mounted files, no password in any URL, and clear errors for bad settings.
These need no service, except the leak check's own check (Postgres) at the end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ml_platform import profile
from ml_platform.home import PlatformHome
from ml_platform.profile import ProfileError, production_settings
from ml_platform_tests.production import leaks
from ml_platform_tests.production.conftest import ProductionEnv

SECRET = "s3cret-test-pw"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [
        *profile.PG_DEFAULTS,
        *profile.REDIS_DEFAULTS,
        "ML_PLATFORM_PG_PASSWORD",
        "ML_PLATFORM_PG_PASSWORD_FILE",
        "ML_PLATFORM_REDIS_PASSWORD",
        "ML_PLATFORM_REDIS_PASSWORD_FILE",
        "ML_PLATFORM_ARTIFACT_ROOT",
        "MLFLOW_TRACKING_URI",
        "PGPASSWORD",
    ]:
        # Set, then deleted: either way recorded, so whatever the code sets is undone after.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("ML_PLATFORM_PROFILE", "production")
    return monkeypatch


def test_embedded_is_the_default_and_unchanged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ML_PLATFORM_PROFILE", raising=False)
    home = PlatformHome(tmp_path / "h")
    assert home.profile == "embedded" and home.production is None
    assert home.tracking_uri == f"sqlite:///{tmp_path / 'h' / 'mlflow' / 'mlflow.db'}"
    assert home.optuna_storage == f"sqlite:///{tmp_path / 'h' / 'optuna.db'}"
    assert home.artifact_root == tmp_path / "h" / "mlflow" / "artifacts"


def test_an_unknown_profile_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ML_PLATFORM_PROFILE", "prod")
    with pytest.raises(ProfileError, match="ML_PLATFORM_PROFILE='prod' is not a profile"):
        PlatformHome(tmp_path)


def test_production_urls_carry_no_password(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("ML_PLATFORM_PG_PASSWORD", SECRET)
    env.setenv("ML_PLATFORM_PG_HOST", "db.internal")
    env.setenv("ML_PLATFORM_PG_USER", "ml platform")
    home = PlatformHome(tmp_path)
    assert (
        home.tracking_uri
        == "postgresql+psycopg2://ml%20platform@db.internal:5432/ml_platform_mlflow"
    )
    assert (
        home.optuna_storage
        == "postgresql+psycopg2://ml%20platform@db.internal:5432/ml_platform_optuna"
    )
    settings = production_settings()
    assert settings.feast_registry_url.startswith("postgresql+psycopg://")
    for text in (
        home.tracking_uri,
        home.optuna_storage,
        settings.feast_registry_url,
        repr(settings),
    ):
        assert SECRET not in text
    assert os.environ["PGPASSWORD"] == SECRET  # for libpq, under every Postgres driver


def test_an_mlflow_server_and_an_artifact_root_from_the_environment(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    env.setenv("ML_PLATFORM_ARTIFACT_ROOT", "/mnt/shared/artifacts")
    home = PlatformHome(tmp_path)
    assert home.tracking_uri == "http://mlflow.internal:5000"
    assert home.artifact_root == Path("/mnt/shared/artifacts")
    env.setenv("ML_PLATFORM_ARTIFACT_ROOT", "artifacts")
    with pytest.raises(
        ProfileError, match="ML_PLATFORM_ARTIFACT_ROOT='artifacts' is not an absolute"
    ):
        production_settings()


def test_secrets_from_mounted_files(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "pg").write_text(SECRET + "\n")
    (tmp_path / "redis").write_text("1234")  # a numeric password stays a string for Feast
    env.setenv("ML_PLATFORM_PG_PASSWORD_FILE", str(tmp_path / "pg"))
    env.setenv("ML_PLATFORM_REDIS_PASSWORD_FILE", str(tmp_path / "redis"))
    settings = production_settings()
    assert settings.postgres.password == SECRET
    assert settings.redis.connection_string() == (
        '127.0.0.1:6379,db=0,socket_timeout=5,socket_connect_timeout=5,password="1234"'
    )
    profile.export_for_dagster(settings)  # what the instance config reads with `env:`
    assert os.environ["ML_PLATFORM_PG_PASSWORD"] == SECRET
    assert "ML_PLATFORM_PG_PASSWORD_FILE" not in os.environ


def test_the_env_example_as_copied_gives_the_defaults(env: pytest.MonkeyPatch) -> None:
    """`.env.example` copied as it is (every value blank) and exported: blank means the
    default, for the settings and for what the instance's dagster.yaml reads with `env:`
    (a blank ML_PLATFORM_PG_PORT once reached Dagster, which could not make it an int)."""
    example = Path(__file__).resolve().parents[2] / ".env.example"
    for line in example.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env.setenv(name, value)
    env.setenv("ML_PLATFORM_PROFILE", "production")
    settings = production_settings()
    assert settings.postgres.port == 5432 and settings.redis.port == 6379
    profile.export_for_dagster(settings)
    assert {n: os.environ[n] for n in profile.PG_DEFAULTS} == profile.PG_DEFAULTS


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ML_PLATFORM_PG_PORT", "54x", "ML_PLATFORM_PG_PORT='54x' is not a port number"),
        ("ML_PLATFORM_REDIS_PORT", "70000", "ML_PLATFORM_REDIS_PORT='70000' is not a port"),
        (
            "ML_PLATFORM_PG_MLFLOW_DB",
            "ml-flow",
            "ML_PLATFORM_PG_MLFLOW_DB='ml-flow' is not a plain",
        ),
        ("ML_PLATFORM_PG_OPTUNA_DB", "ml_platform_mlflow", "must name four different databases"),
        ("ML_PLATFORM_REDIS_DB", "one", "ML_PLATFORM_REDIS_DB='one' is not a Redis database"),
        ("ML_PLATFORM_REDIS_PASSWORD", "a,b", "contains ','"),
        (
            "ML_PLATFORM_PG_PASSWORD_FILE",
            "/nonexistent/pw",
            "ML_PLATFORM_PG_PASSWORD_FILE names /nonexistent/pw",
        ),
    ],
)
def test_bad_settings_are_named(
    env: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    env.setenv(variable, value)
    with pytest.raises(ProfileError, match=message.replace("(", r"\(")):
        production_settings()


def test_a_password_in_both_places_is_refused(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "pg").write_text(SECRET)
    env.setenv("ML_PLATFORM_PG_PASSWORD", SECRET)
    env.setenv("ML_PLATFORM_PG_PASSWORD_FILE", str(tmp_path / "pg"))
    with pytest.raises(ProfileError, match="both ML_PLATFORM_PG_PASSWORD and .*_FILE are set"):
        production_settings()


def test_an_unreachable_postgres_is_named(env: pytest.MonkeyPatch) -> None:
    env.setenv("ML_PLATFORM_PG_PORT", "1")
    env.setenv("ML_PLATFORM_PG_PASSWORD", SECRET)
    with pytest.raises(ProfileError, match="cannot reach PostgreSQL at 127.0.0.1:1") as err:
        profile.ensure_databases(production_settings())
    assert SECRET not in str(err.value)


def test_the_feast_config_is_postgres_and_redis(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ml_platform.features.feast_objects import repo_config

    env.setenv("ML_PLATFORM_REDIS_DB", "3")
    config = repo_config(PlatformHome(tmp_path))
    assert config.registry.registry_type == "sql"
    assert config.registry.path == "postgresql+psycopg://postgres@127.0.0.1:5432/ml_platform_feast"
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string.startswith("127.0.0.1:6379,db=3,")
    assert config.offline_store.type == "duckdb"


@pytest.mark.production
def test_the_leak_check_finds_a_planted_password(production: ProductionEnv) -> None:
    """The check the end-to-end test relies on can fail: a password in an MLflow tag, a
    param, a file under the home and a stored row is found in each place."""
    home, secret = production.home, production.password
    client = MlflowClient(home.tracking_uri)
    exp = client.create_experiment("leak")
    run = client.create_run(exp, tags={"conn": f"postgresql://u:{secret}@h/db"})
    client.log_param(run.info.run_id, "dsn", secret)
    (home.reports / "oops.txt").write_text(f"password={secret}")
    found = leaks.everywhere(home, secret, "", [production.databases["MLFLOW"]])
    assert f"tag conn of run {run.info.run_id}" in found
    assert f"param dsn of run {run.info.run_id}" in found
    assert str(home.reports / "oops.txt") in found
    assert f"database {production.databases['MLFLOW']}" in found
