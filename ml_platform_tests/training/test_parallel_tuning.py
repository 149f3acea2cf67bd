"""Two worker processes on one study finish the budget: no trial lost, none duplicated."""

from __future__ import annotations

import uuid

import optuna
import pytest
from mlflow.tracking import MlflowClient

from ml_platform.features.tables import TableInfo
from ml_platform.home import PlatformHome
from ml_platform.training import train, tuning
from ml_platform.training.tracking import Tracking
from ml_platform_tests.training.helpers import training_spec

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def test_shares_split_the_budget_exactly() -> None:
    assert tuning.shares(7, 2) == [4, 3]
    assert tuning.shares(2, 3) == [1, 1, 0]
    assert sum(tuning.shares(50, 4)) == 50


def _assert_budget_done(
    result: tuning.TuneResult, budget: int, home: PlatformHome, experiment: str = "loan_default"
) -> None:
    numbers = [t["number"] for t in result.trials]
    assert sorted(numbers) == list(range(budget))  # none lost, none duplicated
    assert all(t["state"] in ("COMPLETE", "PRUNED") for t in result.trials)
    params = {tuple(sorted(t["params"].items())) for t in result.trials}
    assert len(params) == budget  # workers are seeded apart: no repeated proposals
    assert sum(result.per_worker) == budget and all(result.per_worker)
    client = MlflowClient(home.tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    children = client.search_runs(
        [exp.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    assert sorted(int(c.data.tags["optuna_trial"]) for c in children) == list(range(budget))


def test_two_workers_finish_the_budget_on_one_sqlite_study(
    home: PlatformHome, tracking: Tracking, training_set: TableInfo
) -> None:
    spec = training_spec()
    result = tuning.tune_parallel(spec, home, tracking, training_set, workers=2, n_trials=6)
    assert result.study_name == tuning.tuned_study_name(spec, training_set.data_version)
    _assert_budget_done(result, 6, home)

    # The candidate asset adopts the finished study instead of searching again.
    cand = train.train_candidate(spec, home, tracking, training_set, {})
    run = MlflowClient(home.tracking_uri).get_run(cand.run_id)
    assert run.data.tags["tuning"] == "adopted"
    assert run.data.tags["tuned_by_run"] == result.parent_run_id
    assert cand.best_params == result.best_params and cand.trials == 6


@pytest.mark.slow
def test_two_workers_share_a_postgres_study(
    home: PlatformHome, tracking: Tracking, training_set: TableInfo
) -> None:
    """The production profile: the study in Postgres, as pods would share it."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    try:
        result = tuning.tune_parallel(
            training_spec(),
            home,
            tracking,
            training_set,
            workers=2,
            n_trials=4,
            storage=POSTGRES,
            study_name=name,
        )
        _assert_budget_done(result, 4, home)
    finally:
        optuna.delete_study(study_name=name, storage=POSTGRES)
