"""Data quality: null rates, out-of-range values and unseen categories, each breach named."""

from __future__ import annotations

import json

import numpy as np

from ml_platform.monitoring.quality import data_quality
from ml_platform_tests.monitoring.helpers import columns, frame, settings


def test_breaches_name_the_column_the_value_and_the_bound() -> None:
    rng = np.random.default_rng(20)
    reference = frame(rng, 5_000, numeric=2, categorical=2, null_rate=0.01)
    current = frame(rng, 1_000, numeric=2, categorical=2, null_rate=0.01)
    current.loc[:99, "x0"] = None  # +10 points of nulls
    current.loc[100:149, "x1"] = 1e6  # 5% far above the reference's max
    current.loc[:29, "c1"] = "brand-new"  # 3% unseen
    result = data_quality(reference, current, *columns(2, 2), settings())
    assert result.judged and result.breached and len(result.breaches) == 3, result.breaches
    nulls, out_of_range, new = result.breaches
    assert nulls.startswith("x0: null rate 1") and "max_null_increase 5.0%" in nulls
    assert out_of_range.startswith("x1: 5.") and "outside the reference range [" in out_of_range
    assert "max_out_of_range 1.0%" in out_of_range
    assert new == (
        "c1: 3.0% of rows with a category unseen in the reference (> max_new_categories 1.0%)"
    )
    by_name = {c.column: c for c in result.columns}
    assert by_name["c0"].new_category_rate == 0.0 and by_name["x0"].out_of_range is not None
    json.dumps(result.to_dict(), allow_nan=False)


def test_clean_batches_and_small_batches_have_no_breach() -> None:
    rng = np.random.default_rng(21)
    reference = frame(rng, 5_000, numeric=2, categorical=1, null_rate=0.05)
    clean = frame(rng, 1_000, numeric=2, categorical=1, null_rate=0.05)
    assert data_quality(reference, clean, *columns(2, 1), settings()).breaches == []
    tiny = frame(rng, 20, numeric=2, categorical=1, null_rate=0.5)
    result = data_quality(reference, tiny, *columns(2, 1), settings())
    assert not result.judged and result.breaches == []
    assert result.columns[0].null_rate > 0.2  # measured all the same


def test_bounds_come_from_the_spec() -> None:
    rng = np.random.default_rng(22)
    reference = frame(rng, 5_000, numeric=1, categorical=0)
    current = frame(rng, 1_000, numeric=1, categorical=0)
    current.loc[:29, "x0"] = None  # 3 points of nulls
    assert data_quality(reference, current, ["x0"], [], settings()).breaches == []
    strict = settings(max_null_increase=0.02)
    assert len(data_quality(reference, current, ["x0"], [], strict).breaches) == 1
