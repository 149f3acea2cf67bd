"""Four tuning workers, each a process of its own, adding trials to one study in the
production profile's Postgres database (as the pods of a tuning Job would)."""

from __future__ import annotations

import pandas as pd
import psycopg
import pytest
from mlflow.tracking import MlflowClient

from ml_platform.features.tables import TableInfo
from ml_platform.ingest.datagen import GeneratorConfig, land
from ml_platform.ingest.io import frame_hash, write_parquet
from ml_platform.training import tuning
from ml_platform.training.tracking import Tracking
from ml_platform_tests.production.conftest import ProductionEnv
from ml_platform_tests.training.helpers import training_spec

pytestmark = [pytest.mark.production, pytest.mark.slow]
BUDGET = 8


def test_four_worker_processes_share_one_postgres_study(production: ProductionEnv) -> None:
    home, spec = production.home, training_spec()
    files = land(GeneratorConfig(events=3_000, days=30, seed=11), home.landing / spec.name)
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    path = write_parquet(frame, home.pipeline_dir(spec.name) / "training_sets" / "t.parquet")
    training_set = TableInfo(str(path), len(frame), frame_hash(frame), list(frame.columns))
    tracking = Tracking(home.tracking_uri, artifact_root=home.artifact_root)

    # No storage given: the profile's (Postgres), as the pipeline's candidate step uses it.
    assert tuning.storage_url(home) == home.optuna_storage
    assert home.optuna_storage.endswith("/" + production.databases["OPTUNA"])
    result = tuning.tune_parallel(spec, home, tracking, training_set, workers=4, n_trials=BUDGET)

    assert len(result.per_worker) == 4 and all(result.per_worker), result.per_worker
    assert sorted(t["number"] for t in result.trials) == list(range(BUDGET))  # none lost or doubled
    assert all(t["state"] in ("COMPLETE", "PRUNED") for t in result.trials)
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname=production.databases["OPTUNA"]
    ) as con:
        rows = con.execute(
            "SELECT s.study_name, count(*) FROM trials t JOIN studies s USING (study_id) "
            "GROUP BY s.study_name"
        ).fetchall()
    assert rows == [(result.study_name, BUDGET)]
    assert not (home.root / "optuna.db").exists()

    client = MlflowClient(home.tracking_uri)
    exp = client.get_experiment_by_name(spec.name)
    children = client.search_runs(
        [exp.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    assert sorted(int(c.data.tags["optuna_trial"]) for c in children) == list(range(BUDGET))
