"""Same data, spec and code give the same model; another seed gives another one; the check
refits in a fresh process and catches what only differs across processes."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from ml_platform.features.tables import TableInfo
from ml_platform.home import PlatformHome
from ml_platform.spec import PipelineSpec
from ml_platform.training import fitting, reproduce, train
from ml_platform.training.tracking import Tracking
from ml_platform_tests.training.helpers import training_spec


def test_two_trainings_on_the_same_inputs_are_identical(
    home: PlatformHome, tracking: Tracking, training_set: TableInfo
) -> None:
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


def test_reproducibility_check_retrains_in_a_fresh_process_with_other_threads(
    home: PlatformHome, tracking: Tracking, training_set: TableInfo
) -> None:
    spec = training_spec(n_trials=1)
    cand = train.train_candidate(spec, home, tracking, training_set, {})
    assert cand.training_threads == reproduce.native_threads() >= 1
    verdict = train.check_reproducible(spec, cand)
    assert verdict.passed, verdict.description
    assert verdict.retrained_hash == cand.reproducibility_hash and verdict.error is None
    assert verdict.check_threads == reproduce.other_thread_count(cand.training_threads)
    assert verdict.check_threads != cand.training_threads
    # A candidate whose recorded fingerprint does not match a retrain fails the check.
    tampered = dataclasses.replace(cand, reproducibility_hash="0" * 16)
    assert train.check_reproducible(spec, tampered).passed is False
    # So does retraining under another seed (the estimator's random_state changes).
    assert train.check_reproducible(training_spec(seed=8), cand).passed is False


def _hash_order_spec() -> PipelineSpec:
    spec = training_spec()
    model = spec.model.model_copy(
        update={
            "estimator": "ml_platform_tests.training.nondeterministic.HashOrderClassifier",
            "params": {},
            "search_space": {},
        }
    )
    return spec.model_copy(update={"model": model})


def test_the_check_catches_an_estimator_that_differs_across_processes(
    training_set: TableInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)  # a fixed seed would hide the bug
    spec = _hash_order_spec()
    frame = pd.read_parquet(training_set.path)
    recorded = fitting.reproducibility_hash(spec, frame, {})
    # A refit in the same process (what the check used to do) cannot see it ...
    assert fitting.reproducibility_hash(spec, frame, {}) == recorded
    # ... a fresh process can.
    verdict = reproduce.check(spec, training_set.path, {}, recorded, reproduce.native_threads())
    assert verdict.error is None and verdict.retrained_hash is not None
    assert not verdict.passed and verdict.retrained_hash != recorded
    assert "not deterministic" in verdict.description


def test_the_check_fails_when_the_retrain_does_not_answer_in_time(training_set: TableInfo) -> None:
    spec = training_spec()
    verdict = reproduce.check(spec, training_set.path, {}, "0" * 16, 2, timeout=0.3)
    assert not verdict.passed and verdict.retrained_hash is None
    assert "no answer within" in (verdict.error or "") and verdict.seconds < 5


def test_a_failing_retrain_reports_the_child_s_error(training_set: TableInfo) -> None:
    verdict = reproduce.check(training_spec(), training_set.path + ".missing", {}, "0" * 16, 2)
    assert not verdict.passed
    assert "FileNotFoundError" in (verdict.error or "") or "No such file" in (verdict.error or "")


def test_fixed_sample_ignores_row_order_and_index() -> None:
    """The probe's rows depend on the data and the seed only: the same rows, in (timestamp,
    entity) order, come back however the file is ordered or indexed; another seed draws
    others."""
    import numpy as np
    import pandas as pd

    from ml_platform.training.fitting import fixed_sample

    spec = training_spec()
    rng = np.random.default_rng(0)
    n = 5_000
    frame = pd.DataFrame(
        {
            spec.event_timestamp: pd.to_datetime(rng.integers(0, 50, n), unit="D", utc=True),
            spec.entity_key: rng.integers(0, 40, n).astype(str),
            "x": np.arange(n, dtype=float),
        }
    )
    frame = frame.drop_duplicates([spec.event_timestamp, spec.entity_key], ignore_index=True)
    keys = [spec.event_timestamp, spec.entity_key]
    expected = fixed_sample(frame, spec, rows=1_000)
    assert len(expected) == 1_000 and expected["x"].is_unique
    assert expected[keys].equals(expected[keys].sort_values(keys).reset_index(drop=True))
    assert set(expected["x"]) <= set(frame["x"])

    shuffled = frame.sample(frac=1.0, random_state=3)  # another order, a non-range index
    for variant in (shuffled, shuffled.set_axis(np.arange(len(frame))[::-1])):
        pd.testing.assert_frame_equal(fixed_sample(variant, spec, rows=1_000), expected)
    other_seed = fixed_sample(frame, spec.model_copy(update={"seed": spec.seed + 1}), rows=1_000)
    assert set(other_seed["x"]) != set(expected["x"])
    assert len(fixed_sample(frame.head(10), spec, rows=1_000)) == 10
