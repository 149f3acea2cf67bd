"""The Postgres password reaches PostgreSQL through every client of the production profile:
psycopg (the databases' creation, the promotion ledger, the prediction log), MLflow's store,
Dagster's instance (dagster-postgres, ``env:`` in the production dagster.yaml), Optuna's storage
and Feast's SQL registry. The machine's Postgres trusts local users, so a password sent to it
proves nothing: these tests start a private cluster that requires one (scram-sha-256), and show
a wrong password refused with errors that name the settings and never the password."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from ml_platform import profile
from ml_platform.home import INSTANCE_TEMPLATES, PlatformHome
from ml_platform.profile import PRODUCTION
from ml_platform_tests.production.leaks import in_files

pytestmark = pytest.mark.production
# Characters a connection URL would have to escape: a password pasted into one unescaped breaks
# the URL or leaks into its host part.
PASSWORD = "s3cret:p@ss/w0rd%20?#x"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        pytest.fail(f"PostgreSQL's {name} is not installed (CI installs PostgreSQL; see .ci/run)")
    return found[-1]


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[int]:
    """A throwaway cluster on a free port whose only login is ``postgres`` with ``PASSWORD``.
    PostgreSQL refuses to run as root: as root, the cluster runs as the ``postgres`` user."""
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="mlp_private_pg_"))
    (root / "pw").write_text(PASSWORD)
    if as_user:
        for path in (root, root / "pw"):
            shutil.chown(path, "postgres", "postgres")
    subprocess.run(
        [
            *as_user,
            _postgres_bin("initdb"),
            "-D",
            str(root / "data"),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={root / 'pw'}",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = _free_port()
    server = subprocess.Popen(
        [
            *as_user,
            _postgres_bin("postgres"),
            "-D",
            str(root / "data"),
            "-p",
            str(port),
            "-k",
            str(root),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(
            [_postgres_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"], check=False
        ).returncode:
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail(f"the private PostgreSQL did not start on port {port} in 30 s")
            time.sleep(0.2)
        yield port
    finally:
        server.terminate()  # smart shutdown; the clients are gone by now
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


PG_VARIABLES_TO_CLEAR = (
    "ML_PLATFORM_PG_DAGSTER_DB",
    "ML_PLATFORM_PG_MLFLOW_DB",
    "ML_PLATFORM_PG_FEAST_DB",
    "ML_PLATFORM_PG_OPTUNA_DB",
    "ML_PLATFORM_PG_LEDGER_DB",
    "ML_PLATFORM_PG_PREDICTIONS_DB",
    "ML_PLATFORM_PG_ADMIN_DB",
    "ML_PLATFORM_OPTUNA_STORAGE",
    "MLFLOW_TRACKING_URI",
)


def _use(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, port: int, password: str) -> Path:
    """The production profile on the private cluster (its default database names: the cluster
    is this module's alone), the password from a mounted-secret file."""
    root = tmp_path / f"home_{password[:5]}"
    secret = tmp_path / f"pg_password_{password[:5]}"
    secret.write_text(password + "\n")
    for name, value in {
        "ML_PLATFORM_PROFILE": "production",
        "ML_PLATFORM_HOME": str(root),
        "DAGSTER_HOME": str(root / "dagster"),
        "ML_PLATFORM_PG_HOST": "127.0.0.1",
        "ML_PLATFORM_PG_PORT": str(port),
        "ML_PLATFORM_PG_USER": "postgres",
        "ML_PLATFORM_PG_PASSWORD_FILE": str(secret),
        # Set here (then the password unset) so that the test's undo also removes what the
        # profile later sets for libpq and Dagster.
        "PGPASSWORD": "",
        "ML_PLATFORM_PG_PASSWORD": "",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ML_PLATFORM_PG_PASSWORD")
    for name in PG_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    profile._ENSURED.clear()
    return root


@dg.asset
def password_probe() -> int:
    return 1


def test_every_client_logs_in_with_the_password(
    private_postgres: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import optuna
    from feast import Entity, ValueType
    from mlflow.tracking import MlflowClient

    from ml_platform.features.feast_objects import feature_store
    from ml_platform.registry.ledger_store import store_for
    from ml_platform.serving.prediction_log import SCHEMA
    from ml_platform.serving.prediction_log import store_for as predictions_for

    root = _use(monkeypatch, tmp_path, private_postgres, PASSWORD)
    # The databases created with psycopg, then MLflow's schema migrated through SQLAlchemy.
    home = PlatformHome(root).ensure()
    settings = home.production
    assert settings is not None

    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = dg.materialize([password_probe], instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id) is not None

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.create_experiment("password_probe")
    client.log_param(client.create_run(experiment).info.run_id, "probe", 1)

    study = optuna.create_study(storage=settings.optuna_storage, study_name="password_probe")
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=1)
    assert (
        len(optuna.load_study(study_name="password_probe", storage=settings.optuna_storage).trials)
        == 1
    )

    store = feature_store(home)
    store.apply(
        [Entity(name="password_probe", join_keys=["probe_id"], value_type=ValueType.STRING)]
    )
    assert [e.name for e in store.list_entities()] == ["password_probe"]

    ledger = store_for(home)
    ledger.create_schema()
    with ledger.lock(shared=False, timeout=10):
        con = ledger.connect()
        assert con.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0
        con.close()

    predictions = predictions_for(home, "password_probe")
    row = {
        name: [value]
        for name, value in {
            "request_id": "r1",
            "row": 0,
            "logged_at": datetime.now(UTC),
            "entity": "e1",
            "model_version": "1",
            "arm": "champion",
            "mode": "off",
            "served": True,
            "score": 0.5,
            "label": None,
            "latency_ms": 1.0,
            "features": "{}",
        }.items()
    }
    predictions.write(date.today(), pa.Table.from_pydict(row, schema=SCHEMA))
    assert predictions.read(None, SCHEMA).num_rows == 1

    assert in_files(root, PASSWORD) == []


def test_a_wrong_password_is_refused_and_never_shown(
    private_postgres: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wrong = "wrong-" + PASSWORD
    root = _use(monkeypatch, tmp_path, private_postgres, wrong)
    with pytest.raises(profile.ProfileError) as refused:
        PlatformHome(root).ensure()
    message = str(refused.value)
    assert "password authentication failed" in message
    assert "ML_PLATFORM_PG_PASSWORD_FILE" in message
    assert wrong not in message and PASSWORD not in message

    # Dagster's instance reads the password with `env:`: its error must not carry it either.
    PlatformHome(root).dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(INSTANCE_TEMPLATES[PRODUCTION], PlatformHome(root).dagster_home / "dagster.yaml")
    profile.export_for_dagster(profile.production_settings())
    with pytest.raises(Exception) as dagster_refused:
        dg.DagsterInstance.from_config(str(PlatformHome(root).dagster_home)).get_runs()
    shown = "".join(
        str(e) for e in (dagster_refused.value, dagster_refused.value.__cause__) if e is not None
    )
    assert "password authentication failed" in shown, shown
    assert wrong not in shown and "@ss" not in shown, shown
