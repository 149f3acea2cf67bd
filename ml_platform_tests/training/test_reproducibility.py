"""Same data, spec and code give the same model; another seed gives another one."""

from __future__ import annotations

import dataclasses

from ml_platform.features.tables import TableInfo
from ml_platform.home import PlatformHome
from ml_platform.training import train
from ml_platform.training.tracking import Tracking
from ml_platform_tests.training.helpers import training_spec


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
    frame = pd.DataFrame({
        spec.event_timestamp: pd.to_datetime(rng.integers(0, 50, n), unit="D", utc=True),
        spec.entity_key: rng.integers(0, 40, n).astype(str),
        "x": np.arange(n, dtype=float)})
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
