"""The search itself: time-ordered splits, staged pruning, budget by trials and by time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from ml_platform.features.tables import TableInfo
from ml_platform.ingest import splits
from ml_platform.training import fitting, reference
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


def test_a_time_split_holds_the_rows_once(training_set: TableInfo) -> None:
    """The windows are views of one (time, key)-ordered frame (the input itself when it is in
    that order) with the rows, dtypes and RangeIndex the per-window copies had; the final fit's
    rows are that frame's first rows, equal to pd.concat([train, validation]), index included."""
    spec = training_spec()
    frame = pd.read_parquet(training_set.path)  # landed files: not in (time, key) order
    ordered = frame.sort_values([spec.event_timestamp, spec.entity_key], kind="stable")
    ordered = ordered.reset_index(drop=True)
    assignment = splits.assign(ordered, spec)
    copies = [
        ordered.iloc[assignment.rows(w)].reset_index(drop=True)
        for w in (splits.TRAIN, splits.VALIDATION, splits.TEST)
    ]
    for source in (frame, ordered):
        split = fitting.time_split(source, spec)
        assert split.ordered is not None and (split.ordered is source) == (source is ordered)
        for window, copy in zip((split.train, split.validation, split.test), copies, strict=True):
            pd.testing.assert_frame_equal(window, copy, check_exact=True)
            assert isinstance(window.index, pd.RangeIndex)
            assert np.shares_memory(window["amount"].to_numpy(), split.ordered["amount"].to_numpy())
        rows = split.fitting_rows()
        together = pd.concat([split.train, split.validation])
        pd.testing.assert_frame_equal(rows, together, check_exact=True)
        assert rows.index.equals(together.index)
        assert np.shares_memory(rows["amount"].to_numpy(), split.ordered["amount"].to_numpy())


def test_the_reference_samples_rows_first_and_gets_the_same_file(
    training_set: TableInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sampling the rows before selecting the columns writes the very file that selecting
    first wrote (the labels of train + validation restart at the validation window, and the
    sample is put in label order: the same order as before)."""
    spec = training_spec()
    monkeypatch.setattr(reference, "MAX_ROWS", 500)
    rows = fitting.time_split(pd.read_parquet(training_set.path), spec).fitting_rows()
    columns = [spec.entity_key, spec.event_timestamp, spec.label, *spec.features.all_columns]
    before = rows[columns].sample(n=500, random_state=spec.seed).sort_index()
    before.to_parquet(tmp_path / "before.parquet", index=False)
    written = reference.write_reference(rows, spec, tmp_path / "now.parquet")
    assert written.read_bytes() == (tmp_path / "before.parquet").read_bytes()
