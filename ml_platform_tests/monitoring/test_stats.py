"""The drift statistics against SciPy's reference implementations on known distributions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from ml_platform.monitoring import stats

SAMPLES = {
    "normal vs shifted normal": (
        lambda r: r.normal(0, 1, 3_000),
        lambda r: r.normal(0.3, 1.2, 1_700),
    ),
    "same log-normal": (lambda r: r.lognormal(0, 1, 2_000), lambda r: r.lognormal(0, 1, 2_500)),
    "discrete with ties": (
        lambda r: r.integers(0, 5, 4_000).astype(float),
        lambda r: r.integers(0, 7, 900).astype(float),
    ),
    "tiny samples": (lambda r: r.normal(0, 1, 3), lambda r: r.normal(0, 1, 2)),
}


@pytest.mark.parametrize("case", SAMPLES)
def test_ks_and_wasserstein_equal_scipy(case: str) -> None:
    rng = np.random.default_rng(3)
    make_ref, make_cur = SAMPLES[case]
    ref, cur = np.sort(make_ref(rng)), np.sort(make_cur(rng))
    ks, w = stats.ks_and_wasserstein(ref, cur)
    expected = sps.ks_2samp(ref, cur, method="asymp")
    assert ks == pytest.approx(expected.statistic, abs=1e-12)
    assert w == pytest.approx(sps.wasserstein_distance(ref, cur), rel=1e-9, abs=1e-12)
    p = stats.ks_p_value(ks, len(ref), len(cur))
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_ks_p_value_is_uniformish_and_small_under_shift() -> None:
    rng = np.random.default_rng(4)
    ref = np.sort(rng.normal(0, 1, 5_000))
    same = np.sort(rng.normal(0, 1, 1_000))
    moved = np.sort(rng.normal(0.5, 1, 1_000))
    assert stats.ks_p_value(stats.ks_and_wasserstein(ref, same)[0], 5_000, 1_000) > 0.01
    assert stats.ks_p_value(stats.ks_and_wasserstein(ref, moved)[0], 5_000, 1_000) < 1e-10


def test_decile_edges_equal_numpy_quantiles() -> None:
    ref = np.sort(np.random.default_rng(5).gamma(2.0, 3.0, 10_001))
    expected = np.quantile(ref, np.linspace(0.1, 0.9, 9))
    assert np.allclose(stats.decile_edges(ref), expected)
    discrete = np.sort(np.random.default_rng(5).integers(0, 3, 1_000).astype(float))
    assert list(stats.decile_edges(discrete)) == [0.0, 1.0, 2.0]  # one bin per value


def test_psi_by_hand() -> None:
    ref = np.sort(np.arange(1_000, dtype=float))
    edges = stats.decile_edges(ref)
    shares = stats.bin_shares(ref, edges)
    assert np.allclose(shares, 0.1)
    assert stats.psi(shares, shares) == 0.0
    cur = np.sort(np.concatenate([np.full(500, 10.0), np.full(500, 990.0)]))
    cur_shares = stats.bin_shares(cur, edges)  # half in the first bin, half in the last
    expected = 2 * (0.5 - 0.1) * np.log(5) + 8 * (stats.EPSILON - 0.1) * np.log(stats.EPSILON / 0.1)
    assert stats.psi(shares, cur_shares) == pytest.approx(expected)


def test_psi_of_a_normal_shift_grows_like_its_square() -> None:
    rng = np.random.default_rng(6)
    ref = np.sort(rng.normal(0, 1, 200_000))
    edges = stats.decile_edges(ref)
    values = []
    for shift in (0.1, 0.25, 0.5):
        cur = np.sort(rng.normal(shift, 1, 200_000))
        values.append(stats.psi(stats.bin_shares(ref, edges), stats.bin_shares(cur, edges)))
    assert values[0] < 0.02 < values[1] < 0.1 < values[2] < 0.3, values


def test_jensen_shannon_equals_scipy() -> None:
    ref = np.array([400, 250, 150, 120, 80, 0])
    cur = np.array([100, 300, 150, 100, 300, 50])
    assert stats.jensen_shannon(ref, cur) == pytest.approx(jensenshannon(ref, cur, base=2))
    assert stats.jensen_shannon(ref, ref) == pytest.approx(0.0, abs=1e-7)
    assert stats.jensen_shannon(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)


def test_chi2_equals_scipy_without_rare_cells() -> None:
    ref, cur = np.array([400, 250, 150, 120, 80]), np.array([100, 60, 50, 40, 30])
    statistic, p = stats.chi2_p_value(ref, cur)
    expected = sps.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert statistic == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)


def test_chi2_pools_a_tail_of_rare_categories() -> None:
    """Categories seen once each in 10k reference rows and once in 200 current rows would
    dominate the statistic (each expected 0.04 times); pooled, and the still-rare pool added
    to the smallest frequent category, they do not."""
    ref = np.array([5_000, 3_000, 1_998, 1, 1])
    cur = np.array([100, 60, 38, 1, 1])
    _, p = stats.chi2_p_value(ref, cur)
    pooled = np.vstack([[5_000, 3_000, 2_000], [100, 60, 40]])
    assert p == pytest.approx(sps.chi2_contingency(pooled, correction=False).pvalue)
    assert p > 0.01
    assert sps.chi2_contingency(np.vstack([ref, cur]), correction=False).pvalue < 1e-6


def test_chi2_still_sees_a_frequent_new_category_and_a_growing_minority() -> None:
    ref, cur = np.array([5_000, 3_000, 2_000, 0]), np.array([60, 40, 50, 50])
    assert stats.chi2_p_value(ref, cur)[1] < 1e-10  # a quarter of the batch unseen before
    _, p = stats.chi2_p_value(np.array([9_990, 10]), np.array([150, 50]))
    assert p < 1e-10  # a binary column's rare minority keeps its own cell


def test_chi2_with_one_category_has_nothing_to_test() -> None:
    assert stats.chi2_p_value(np.array([10]), np.array([5])) == (0.0, 1.0)


def test_holm_by_hand() -> None:
    adjusted = stats.holm(np.array([0.01, 0.04, 0.03, np.nan, 0.005]))
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max
    assert np.allclose(adjusted, [0.03, 0.06, 0.06, np.nan, 0.02], equal_nan=True)
    assert stats.holm(np.array([0.9, 0.8])).max() == 1.0
    assert stats.holm(np.array([])).size == 0


def test_category_counts_compare_as_text() -> None:
    counts = stats.category_counts(pd.Series([1, "1", None, "b", "b"], dtype=object))
    assert counts.to_dict() == {"1": 2, "b": 2}
