"""The search itself: time-ordered splits, staged pruning, budget by trials and by time."""

from __future__ import annotations

import optuna
import pandas as pd

from ml_platform.features.tables import TableInfo
from ml_platform.training import fitting
from ml_platform_tests.training.helpers import training_spec


def _split(training_set: TableInfo) -> fitting.Split:
    return fitting.time_split(pd.read_parquet(training_set.path), training_spec())


def test_split_is_by_time_and_the_test_window_is_hashed(training_set: TableInfo) -> None:
    split = _split(training_set)
    ts = "applied_at"
    assert split.train[ts].max() < split.validation[ts].min()
    assert split.validation[ts].max() < split.test[ts].min()
    again = _split(training_set)
    assert again.test_window == split.test_window and len(split.test_window["hash"]) == 16


def test_warm_startable_estimator_reports_stages_to_the_pruner(training_set: TableInfo) -> None:
    spec, split = training_spec(max_iter=12), _split(training_set)
    study = fitting.make_study(spec, None, "staged")
    trial = study.ask()
    value = fitting.staged_score(spec, fitting.prepare(spec, split), {"learning_rate": 0.1}, trial)
    # Three stages (25/50/100 % of max_iter); the last is the full model, so a trial that is
    # not pruned scores exactly like a plain fit.
    assert len(study._storage.get_trial(trial._trial_id).intermediate_values) == 3
    plain = fitting.fit(spec, split.train, {"learning_rate": 0.1})
    assert value == fitting.score(
        spec.primary_metric,
        split.validation["defaulted"].to_numpy(),
        fitting.predict(spec, plain, split.validation),
    )


def test_median_pruner_stops_a_trial_worse_than_the_others(training_set: TableInfo) -> None:
    spec, split = training_spec(max_iter=12), _split(training_set)
    study = fitting.make_study(spec, None, "pruning")
    good = {"learning_rate": 0.3, "max_leaf_nodes": 31, "l2_regularization": 0.0}
    for _ in range(3):
        study.enqueue_trial(good)
    # A learning rate this small leaves the early stages far behind the good trials.
    study.enqueue_trial({"learning_rate": 1e-6, "max_leaf_nodes": 2, "l2_regularization": 1.0})
    space = {
        **spec.model.search_space,
        "learning_rate": spec.model.search_space["learning_rate"].model_copy(update={"low": 1e-6}),
        "max_leaf_nodes": spec.model.search_space["max_leaf_nodes"].model_copy(update={"low": 2}),
    }
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"search_space": space})})
    data = fitting.prepare(spec, split)
    study.optimize(
        lambda t: fitting.staged_score(spec, data, fitting.suggest(t, spec.model.search_space), t),
        n_trials=4,
    )
    states = [t.state for t in study.trials]
    assert states[:3] == [optuna.trial.TrialState.COMPLETE] * 3
    assert states[3] == optuna.trial.TrialState.PRUNED


def test_time_budget_ends_the_search_before_the_trial_budget(training_set: TableInfo) -> None:
    spec = training_spec(n_trials=500)
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"timeout_seconds": 2.0})})
    study = fitting.tune(spec, _split(training_set), None, "timed")
    assert 1 <= len(study.trials) < 500
