"""The baselines' training rows and fit: a time split's history is read with a Parquet filter
and is exactly the rows before the holdout window, in file order (to the nanosecond); a random
split's drops the holdout's keys; the linear baseline scales in place without changing a
coefficient or a score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.evaluation import baselines, evaluate
from ml_platform.spec import NO_EVENT_TIME_COLUMN, PipelineSpec, parse_spec
from ml_platform.training import fitting

FEATURES = ["x", "z", "region"]


def _spec(**updates: Any) -> PipelineSpec:
    attributes: dict[str, Any] = {
        "name": "loans",
        "source": {"path": "/nonexistent/loans.csv"},
        "entity_key": "customer",
        "event_timestamp": "at",
        "label": "bad",
        "task": "binary_classification",
        "features": {"numeric": ["x", "z"], "categorical": ["region"]},
        "model": {
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 300},
        },
        "monitoring": {"enabled": False},
        "seed": 7,
    }
    attributes.update(updates)
    return parse_spec(attributes, "loans/defs.yaml")


def _frame(n: int = 3_000, seed: int = 2) -> pd.DataFrame:
    """Rows in no particular time order, nanosecond timestamps, missing values."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    at = start + pd.to_timedelta(rng.integers(0, 90 * 86_400 * 10**9, n), unit="ns")
    frame = pd.DataFrame(
        {
            "customer": rng.permutation(n),
            "at": at.as_unit("ns"),
            "x": np.where(rng.random(n) < 0.05, np.nan, x),
            "z": rng.normal(size=n),
            "region": rng.choice(np.array(["north", "south", None], dtype=object), n),
            "other": rng.normal(size=n),  # a column the baselines do not need
            "bad": (x + rng.normal(size=n) > 0.5).astype(int),
        }
    )
    return frame


def test_a_time_split_history_is_the_rows_before_the_holdout_in_file_order(
    tmp_path: Path,
) -> None:
    spec, frame = _spec(), _frame()
    # The holdout starts 500 ns into a microsecond; a row 1 ns before it is history. A bound
    # inferred from the Timestamp (microseconds) would drop it.
    start = frame["at"].quantile(0.8).floor("us") + pd.Timedelta(500, unit="ns")
    frame.loc[[10, 11, 12], "at"] = [start - pd.Timedelta(1, "ns"), start, start]
    path = tmp_path / "training_set.parquet"
    frame.to_parquet(path, index=False, row_group_size=400)
    holdout = frame[frame["at"] >= start].reset_index(drop=True)

    got = evaluate._history(spec, path, holdout)

    want = frame.loc[frame["at"] < start, ["bad", *FEATURES]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    assert 10 in frame.index[frame["at"] < start] and len(got) == (frame["at"] < start).sum()


def test_a_random_split_history_is_every_row_outside_the_holdout(tmp_path: Path) -> None:
    spec = _spec(event_timestamp=None)
    assert not spec.has_event_time
    frame = _frame().drop(columns="at")
    frame[NO_EVENT_TIME_COLUMN] = pd.Timestamp("2026-01-01", tz="UTC")
    path = tmp_path / "training_set.parquet"
    frame.to_parquet(path, index=False)
    holdout = frame.sample(600, random_state=1).reset_index(drop=True)

    got = evaluate._history(spec, path, holdout)

    frame = pd.read_parquet(path)  # the file's dtypes (it has no seconds unit)
    want = frame[~frame["customer"].isin(holdout["customer"])]
    pd.testing.assert_frame_equal(got, want[list(got.columns)])
    assert set(got.columns) == {"customer", NO_EVENT_TIME_COLUMN, "bad", *FEATURES}


def test_the_linear_baseline_scales_in_place_with_the_same_result() -> None:
    spec, frame = _spec(), _frame()
    history, holdout = frame.iloc[:2_400], frame.iloc[2_400:].reset_index(drop=True)
    x, y = fitting.features_of(history, spec), history["bad"].to_numpy()
    unchanged = x.copy()
    in_place = baselines._linear(spec).fit(x, y)
    copying = baselines._linear(spec).set_params(preprocess__num__standardscaler__copy=True)
    copying.fit(x, y)

    pd.testing.assert_frame_equal(x, unchanged)  # what it scales is the imputer's own output
    assert np.array_equal(in_place[-1].coef_, copying[-1].coef_)
    assert np.array_equal(in_place[-1].intercept_, copying[-1].intercept_)
    x_holdout = fitting.features_of(holdout, spec)
    assert np.array_equal(in_place.predict_proba(x_holdout), copying.predict_proba(x_holdout))
    got = baselines.baseline_scores(spec, history, holdout)
    assert np.array_equal(got["linear"], copying.predict_proba(x_holdout)[:, 1])
