"""The whole demo pipeline on the production profile, as `ml-platform run` runs it: the Dagster
instance, MLflow, the Feast registry and Optuna on fresh Postgres databases, the online store
on a Redis database, with a known test password in the environment that must turn up nowhere."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import dagster as dg
import psycopg
import pytest
import redis
from mlflow.tracking import MlflowClient

from ml_platform.features.feast_objects import feature_store
from ml_platform.home import PROJECT_ROOT
from ml_platform.ingest.datagen import land
from ml_platform_tests.helpers import SMALL, SMALL_DEFS, ml_platform
from ml_platform_tests.production import leaks
from ml_platform_tests.production.conftest import REDIS_HOST, REDIS_PORT, ProductionEnv

pytestmark = [pytest.mark.production, pytest.mark.slow]
ONLINE_JOB = "loan_default_online_job"
# The online job (the online store is loaded by a job of its own, not the training job),
# executed on the home's instance in a fresh process, as a run worker would.
_EXECUTE = textwrap.dedent("""
    import sys
    import dagster as dg
    from ml_platform.home import activate_home
    from ml_platform.runner import QUIET
    target, job_name = sys.argv[1:3]
    activate_home()
    job = dg.build_reconstructable_job("ml_platform.runner", "training_job", (target, job_name))
    with dg.DagsterInstance.get() as instance:
        with dg.execute_job(job, instance=instance, run_config=QUIET) as result:
            print("RESULT", result.run_id, result.success, flush=True)
""")


def _count(db: str, query: str) -> int:
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=db) as con:
        row = con.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def test_demo_pipeline_on_postgres_and_redis(production: ProductionEnv) -> None:
    home, dbs = production.home, production.databases
    land(SMALL, home.landing / "loan_default")
    proc = ml_platform("run", "loan_default", "--definitions", SMALL_DEFS)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "SUCCESS loan_default" in proc.stdout
    assert "loan_default v1 (promoted: first model; champion v1)" in proc.stdout
    online = subprocess.run(
        [sys.executable, "-c", _EXECUTE, SMALL_DEFS, ONLINE_JOB],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ),
    )
    output += online.stdout + online.stderr
    assert online.returncode == 0 and " True" in online.stdout, output[-4000:]

    # Dagster: the runs, their events and the asset records are in Postgres, not in the home.
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        records = {r.dagster_run.job_name: r.dagster_run for r in instance.get_run_records()}
        assert set(records) == {"loan_default_training_job", ONLINE_JOB}
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in records.values())
        run_id = records["loan_default_training_job"].run_id
        # The online/offline parity check on Redis: online rows equal the offline features.
        parity = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [
                dg.AssetCheckKey(
                    dg.AssetKey("loan_default_online_features"), "online_matches_offline"
                )
            ]
        )
        (execution,) = parity.values()
        assert execution.run_id == records[ONLINE_JOB].run_id
        assert execution.event is not None and execution.event.dagster_event is not None
        assert execution.event.dagster_event.event_specific_data.passed
        applied = instance.get_latest_materialization_event(
            dg.AssetKey("loan_default_feature_registry")
        )
        assert applied is not None and applied.asset_materialization is not None
        meta = applied.asset_materialization.metadata
        assert (
            meta["registry"].value == f"postgresql+psycopg://postgres@127.0.0.1:5432/{dbs['FEAST']}"
        )
        assert meta["feast_apply"].value == "applied"
    assert _count(dbs["DAGSTER"], f"SELECT count(*) FROM runs WHERE run_id = '{run_id}'") == 1
    assert not list(home.dagster_home.glob("**/*.db")), "a SQLite store in the instance dir"

    # MLflow: tracking and registry on Postgres; artifacts under the artifact root.
    assert home.tracking_uri.startswith("postgresql+psycopg2://postgres@127.0.0.1:5432/")
    client = MlflowClient(home.tracking_uri, registry_uri=home.tracking_uri)
    version = client.get_model_version_by_alias("loan_default", "champion")
    assert str(version.version) == "1" and version.tags["dagster_run_id"] == run_id
    assert _count(dbs["MLFLOW"], "SELECT count(*) FROM model_versions") == 1
    assert not (home.mlflow_dir / "mlflow.db").exists()
    assert list(home.artifact_root.glob("loan_default/**/MLmodel"))

    # Optuna: the study and its trials in Postgres.
    assert _count(dbs["OPTUNA"], "SELECT count(*) FROM trials") >= 2
    assert not (home.root / "optuna.db").exists()

    # Feast: the SQL registry in Postgres, online rows in the claimed Redis database.
    store = feature_store(home)
    assert "loan_default_fv" in {v.name for v in store.list_feature_views(allow_cache=False)}
    assert _count(dbs["FEAST"], "SELECT count(*) FROM feature_views") >= 1
    assert not (home.feast_dir / "registry.db").exists()
    assert not (home.feast_dir / "online.db").exists()
    keys = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=production.redis_db).dbsize()
    assert keys > 100, keys  # one hash per customer (plus the fixture's claim key)

    # The test password: in no log, event, MLflow param or tag, file, or stored row.
    found = leaks.everywhere(home, production.password, output, list(dbs.values()))
    assert found == [], found
