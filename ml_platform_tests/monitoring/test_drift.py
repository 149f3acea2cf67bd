"""Drift decisions: exactly the shifted features, no alarms on undrifted windows, no flags for
trivial shifts in large batches, small batches reported but not judged."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ml_platform.monitoring.drift import compute_drift
from ml_platform_tests.monitoring.helpers import SHARES, columns, frame, settings

SHIFTED_SHARES = np.array([0.2, 0.25, 0.15, 0.12, 0.28])  # JS distance ~0.2 from SHARES


@pytest.mark.parametrize("rows", [1_000, 1_000_000])
def test_exactly_the_two_shifted_features_of_ten_are_flagged(rows: int) -> None:
    rng = np.random.default_rng(rows)
    reference = frame(rng, 200_000, numeric=7, categorical=3)
    current = frame(
        rng,
        rows,
        numeric=7,
        categorical=3,
        shifts={"x1": 0.5},  # the log-normal column, half a standard deviation
        category_shares={"c2": SHIFTED_SHARES},
    )
    numeric, categorical = columns(7, 3)
    started = time.perf_counter()
    result = compute_drift(reference, current, numeric, categorical, settings())
    seconds = time.perf_counter() - started
    assert result.judged and result.rows == rows and result.reference_rows == 200_000
    assert result.drifted_features == ["x1", "c2"], [f.reason for f in result.features]
    assert result.any_drift and result.prediction is None
    x1 = next(f for f in result.features if f.feature == "x1")
    assert x1.kind == "numeric" and x1.p_adjusted < 0.01 and x1.wasserstein is not None
    assert "Holm p" in x1.reason and ">= 0.1" in x1.reason
    c2 = next(f for f in result.features if f.feature == "c2")
    assert c2.statistic == "jensen_shannon" and c2.value >= 0.1 and c2.new_categories == []
    if rows == 1_000_000:
        assert seconds < 10 * 0.5, f"{seconds:.2f} s for 10 features at 1M rows"


def test_forty_undrifted_windows_of_twenty_features_raise_at_most_two_alarms() -> None:
    """Windows of 250 rows, near min_rows, where both safeguards are needed: effect sizes
    alone are noisy there (the normalized Wasserstein distance of a small sample often exceeds
    0.1), and uncorrected p-values over 20 features flag something in a fair share of windows.
    Together with Holm the rate stays under the family-wise alpha (0.01 per window)."""
    rng = np.random.default_rng(40)
    reference = frame(rng, 50_000, numeric=14, categorical=6, null_rate=0.02)
    numeric, categorical = columns(14, 6)
    alarms = p_only = effect_only = uncorrected = 0
    for _ in range(40):
        window = frame(rng, 250, numeric=14, categorical=6, null_rate=0.02)
        result = compute_drift(reference, window, numeric, categorical, settings())
        assert result.judged
        alarms += result.any_drift
        p_only += any(f.p_value < 0.05 for f in result.features)
        effect_only += any(f.value >= f.threshold for f in result.features)
        uncorrected += any(f.value >= f.threshold and f.p_value < 0.01 for f in result.features)
    assert alarms <= 2
    # what each safeguard alone would have raised on the same windows
    counts = (p_only, effect_only, uncorrected)
    assert p_only >= 15 and effect_only >= 30 and uncorrected >= 5, counts


def test_a_trivial_shift_at_a_million_rows_is_significant_but_not_drift() -> None:
    rng = np.random.default_rng(7)
    reference = frame(rng, 1_000_000, numeric=2, categorical=1)
    trivial = np.array([0.39, 0.25, 0.15, 0.12, 0.09])  # one point moved between categories
    current = frame(
        rng,
        1_000_000,
        numeric=2,
        categorical=1,
        shifts={"x0": 0.03, "x1": 0.03},
        category_shares={"c0": trivial},
    )
    result = compute_drift(reference, current, *columns(2, 1), settings())
    assert not result.any_drift, [f.reason for f in result.features]
    assert all(f.p_adjusted < 1e-6 for f in result.features)  # significant, yet trivial
    assert all("<" in f.reason for f in result.features)


def test_small_batches_are_reported_not_judged() -> None:
    rng = np.random.default_rng(8)
    reference = frame(rng, 10_000, numeric=1, categorical=1)
    current = frame(rng, 150, numeric=1, categorical=1, shifts={"x0": 3.0})
    result = compute_drift(reference, current, *columns(1, 1), settings(min_rows=200))
    assert not result.judged and not result.any_drift
    assert result.features[0].value > 1.0  # measured all the same
    assert "not judged: 150 rows < min_rows 200" in result.features[0].reason


def test_nulls_are_left_out_and_new_categories_listed() -> None:
    rng = np.random.default_rng(9)
    reference = frame(rng, 20_000, numeric=1, categorical=1)
    current = frame(rng, 5_000, numeric=1, categorical=1, null_rate=0.3)
    current.loc[:999, "c0"] = "zz-new"
    result = compute_drift(reference, current, *columns(1, 1), settings())
    x0, c0 = result.features
    assert not x0.drifted and x0.rows == pytest.approx(3_500, rel=0.05)  # non-null rows only
    assert c0.new_categories == ["zz-new"] and c0.drifted
    assert c0.statistic == "jensen_shannon" and c0.value >= 0.1


def test_prediction_drift_is_judged_on_psi_in_the_same_holm_family() -> None:
    rng = np.random.default_rng(10)
    reference = frame(rng, 20_000, numeric=1, categorical=0)
    current = frame(rng, 5_000, numeric=1, categorical=0)
    ref_scores, cur_scores = rng.beta(2, 8, 20_000), rng.beta(4, 6, 5_000)
    result = compute_drift(reference, current, *columns(1, 0), settings(), ref_scores, cur_scores)
    assert result.prediction is not None and result.prediction.kind == "prediction"
    assert result.prediction.statistic == "psi" and result.prediction.drifted
    assert result.drifted_features == [] and result.any_drift
    same = compute_drift(reference, current, *columns(1, 0), settings(), ref_scores, ref_scores)
    assert same.prediction is not None and not same.prediction.drifted


def test_an_empty_column_and_a_constant_reference() -> None:
    rng = np.random.default_rng(11)
    reference = frame(rng, 1_000, numeric=2, categorical=1)
    reference["x1"] = 5.0
    current = frame(rng, 500, numeric=2, categorical=1)
    current["x0"], current["c0"] = np.nan, None
    result = compute_drift(reference, current, *columns(2, 1), settings())
    x0, x1, c0 = result.features
    assert not x0.drifted and x0.reason == "no non-null values to compare"
    assert not c0.drifted and c0.to_dict()["value"] is None
    assert x1.drifted and x1.to_dict()["wasserstein"] is None  # infinite: constant reference


def test_to_dict_is_json_ready() -> None:
    import json

    rng = np.random.default_rng(12)
    reference, current = frame(rng, 1_000, 1, 1), frame(rng, 300, 1, 1, shifts={"x0": 1.0})
    payload = compute_drift(reference, current, *columns(1, 1), settings()).to_dict()
    text = json.dumps(payload, allow_nan=False)
    assert '"drifted_features": ["x0"]' in text
    assert set(payload["features"][0]) >= {"feature", "statistic", "value", "threshold", "drifted"}


def test_shares_helper_is_a_distribution() -> None:
    assert SHARES.sum() == pytest.approx(1.0) and SHIFTED_SHARES.sum() == pytest.approx(1.0)
