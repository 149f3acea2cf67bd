"""Same data, spec and code give the same model; another seed gives another one."""

from __future__ import annotations

import dataclasses

from ml_platform.core.tracking import Tracking
from ml_platform.home import PlatformHome
from ml_platform.pipeline import train
from ml_platform.pipeline.features import TableInfo
from ml_platform_tests.training.conftest import training_spec


def test_two_trainings_on_the_same_inputs_are_identical(
        home: PlatformHome, tracking: Tracking, training_set: TableInfo) -> None:
    spec = training_spec()
    first = train.train_candidate(spec, home, tracking, training_set, {})
    second = train.train_candidate(spec, home, tracking, training_set, {})
    assert first.run_id != second.run_id
    assert first.best_params == second.best_params
    assert first.test_metrics == second.test_metrics
    assert first.prediction_hash == second.prediction_hash
    assert first.reproducibility_hash == second.reproducibility_hash

    other = train.train_candidate(training_spec(seed=7), home, tracking, training_set, {})
    assert other.best_params != first.best_params
    assert other.prediction_hash != first.prediction_hash
    assert other.test_metrics != first.test_metrics


def test_reproducibility_check_retrains_and_compares(
        home: PlatformHome, tracking: Tracking, training_set: TableInfo) -> None:
    spec = training_spec(n_trials=1)
    cand = train.train_candidate(spec, home, tracking, training_set, {})
    same, again = train.check_reproducible(spec, cand)
    assert same and again == cand.reproducibility_hash
    # A candidate whose recorded fingerprint does not match a retrain fails the check.
    tampered = dataclasses.replace(cand, reproducibility_hash="0" * 16)
    assert train.check_reproducible(spec, tampered)[0] is False
    # So does retraining under another seed (the estimator's random_state changes).
    assert train.check_reproducible(training_spec(seed=8), cand)[0] is False
