"""Event timestamps in every declared form, none at all, and the time-split checks that stop a
batch at validation (issue 17)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ml_platform.contracts.validate import validate_batch
from ml_platform.home import PlatformHome
from ml_platform.ingest import prepare
from ml_platform.spec import NO_EVENT_TIME, NO_EVENT_TIME_COLUMN, SpecError
from ml_platform.training import fitting
from ml_platform_tests.datasets.helpers import frame, spec

JAN_2001 = pd.Timestamp("2001-01-01", tz="UTC")


def converted(form: object, values: object) -> pd.Series:
    data = frame(4).assign(t=values)
    out, problems = prepare.prepare(spec(event_timestamp=form), data)
    assert problems == []
    assert str(out["t"].dtype) == "datetime64[ns, UTC]"
    return out["t"]


def problem(form: object, values: object) -> str:
    _, problems = prepare.prepare(spec(event_timestamp=form), frame(4).assign(t=values))
    assert len(problems) == 1
    assert problems[0].column == "t"
    return problems[0].message


def test_year_unit() -> None:
    t = converted({"column": "t", "unit": "year"}, [2001, 2002, 1999, 2001])
    assert t.iloc[0] == JAN_2001
    assert t.iloc[2] == pd.Timestamp("1999-01-01", tz="UTC")
    # years read as floats (a CSV column with a gap) and as digit strings work too
    assert converted({"column": "t", "unit": "year"}, [2001.0, np.nan, 2003.0, 2004.0]).isna()[1]
    assert converted({"column": "t", "unit": "year"}, ["2001", "2002", "2003", "2004"]).iloc[0] == (
        JAN_2001
    )


def test_year_unit_rejects_non_years() -> None:
    message = problem({"column": "t", "unit": "year"}, [2001, 2001.5, 20010101, 2003])
    assert "'t'" in message and "whole years" in message
    assert "2001.5" in message and "20010101" in message


@pytest.mark.parametrize(
    ("unit", "values"),
    [
        ("s", [978_307_200, 978_307_260, 978_307_320, 978_307_380]),
        ("ms", [978_307_200_000, 978_307_260_000, 978_307_320_000, 978_307_380_000]),
    ],
)
def test_epoch_units(unit: str, values: list[int]) -> None:
    t = converted({"column": "t", "unit": unit}, values)
    assert t.iloc[0] == JAN_2001
    assert t.iloc[1] == JAN_2001 + pd.Timedelta(minutes=1)


def test_epoch_unit_rejects_text() -> None:
    message = problem({"column": "t", "unit": "s"}, ["978307200", "yesterday", "1", "2"])
    assert "epoch seconds" in message and "yesterday" in message


def test_date_unit_from_dates_and_iso_strings() -> None:
    days = [dt.date(2001, 1, 1), dt.date(2001, 1, 2), None, dt.date(2001, 2, 1)]
    t = converted({"column": "t", "unit": "date"}, days)
    assert t.iloc[0] == JAN_2001 and pd.isna(t.iloc[2])
    t = converted({"column": "t", "unit": "date"}, ["2001-01-01", "2001-01-02", "2001-01-03", None])
    assert t.iloc[1] == JAN_2001 + pd.Timedelta(days=1)
    message = problem({"column": "t", "unit": "date"}, ["2001-01-01", "01/02/2001", "x", None])
    assert "01/02/2001" in message and "format" in message


def test_string_with_declared_format() -> None:
    form = {"column": "t", "format": "%d/%m/%Y"}
    t = converted(form, ["01/01/2001", "02/01/2001", "13/12/2001", "31/01/2001"])
    assert t.iloc[1] == JAN_2001 + pd.Timedelta(days=1)  # day first, as declared
    assert t.iloc[2] == pd.Timestamp("2001-12-13", tz="UTC")
    message = problem(form, ["01/01/2001", "2001-01-02", "32/01/2001", "01/01/2001"])
    assert "2 of 4 values of 't'" in message and "'%d/%m/%Y'" in message


def test_plain_form_unchanged_and_numbers_named() -> None:
    """The plain column name keeps working as before (checked, converted to UTC on publish),
    and integer years under it are refused with the fix, not split into 1970 nanoseconds."""
    data = frame(4).assign(t=pd.date_range("2001-01-01", periods=4, freq="D"))
    out, problems = prepare.prepare(spec(event_timestamp="t"), data)
    assert problems == [] and out["t"].dt.tz is None  # left for the contract's timezone rule
    message = problem("t", [2001, 2002, 2003, 2004])
    assert "holds numbers" in message and "unit: year" in message


def test_spec_forms() -> None:
    assert spec(event_timestamp="year").event_time is None
    declared = spec(event_timestamp={"column": "year", "unit": "year"})
    assert declared.event_timestamp == "year" and declared.event_time.unit == "year"
    none = spec(event_timestamp=None)
    assert none.event_timestamp == NO_EVENT_TIME_COLUMN and not none.has_event_time
    omitted = spec(event_timestamp=...)
    assert not omitted.has_event_time
    with pytest.raises(SpecError, match="'unit': Input should be 'year', 'date', 's' or 'ms'"):
        spec(event_timestamp={"column": "year", "unit": "days"})
    with pytest.raises(SpecError, match="not both"):
        spec(event_timestamp={"column": "year", "unit": "s", "format": "%Y"})
    with pytest.raises(SpecError, match="no '%' directive"):
        spec(event_timestamp={"column": "year", "format": "YYYY"})


def test_no_timestamp_refuses_point_in_time_features() -> None:
    aggregates = [{"name": "x_sum_30d", "agg": "sum", "column": "x", "window": "30d"}]
    features = {"numeric": ["x"], "categorical": ["flag"], "aggregates": aggregates}
    with pytest.raises(SpecError, match="aggregate 'x_sum_30d' is a per-entity window"):
        spec(event_timestamp=None, features=features)
    with pytest.raises(SpecError, match="features.ttl '30d'"):
        spec(event_timestamp=None, features={"numeric": ["x"], "ttl": "30d"})


def test_no_timestamp_random_split_is_seeded_and_stratified() -> None:
    s = spec(event_timestamp=None)
    data = prepare.add_constant_event_time(s, frame())
    assert (data[NO_EVENT_TIME_COLUMN] == pd.Timestamp(NO_EVENT_TIME)).all()
    split = fitting.time_split(data, s)
    again = fitting.time_split(data.sample(frac=1, random_state=1), s)
    assert split.test["row_id"].tolist() == again.test["row_id"].tolist()  # row order is moot
    assert len(split.test) + len(split.validation) + len(split.train) == len(data)
    rate = data["label"].mean()
    for part in (split.train, split.validation, split.test):
        assert abs(part["label"].mean() - rate) < 0.02  # stratified
    other = fitting.time_split(data, spec(event_timestamp=None, seed=6))
    assert other.test["row_id"].tolist() != split.test["row_id"].tolist()
    assert split.test_window["split"] == "random (seed 5)"


def test_time_split_by_year() -> None:
    s = spec()
    data, _ = prepare.prepare(s, frame())
    split = fitting.time_split(data, s)
    assert split.test["year"].min() > split.validation["year"].max()
    assert split.validation["year"].min() > split.train["year"].max()


def failed(home: PlatformHome, data: pd.DataFrame, **updates: object) -> str:
    outcome = validate_batch(spec(**updates), home, data)
    assert not outcome.passed and outcome.validated_path is None  # nothing published
    return outcome.summary()


def test_validation_stops_one_distinct_timestamp(home: PlatformHome) -> None:
    message = failed(home, frame().assign(year=2019))
    assert "time_split(year)" in message and "one distinct value (2019-01-01" in message
    assert "omit event_timestamp for a seeded random split" in message


def test_validation_stops_empty_window(home: PlatformHome) -> None:
    data = frame().assign(year=np.where(np.arange(400) < 380, 2000, 2001))
    message = failed(home, data)
    assert "the train window of the time split is empty" in message
    assert "2 distinct values in 400 rows" in message


def test_validation_stops_class_missing_from_window(home: PlatformHome) -> None:
    data = frame()
    data.loc[data["year"] >= 2017, "label"] = 0  # no positive in the test years
    message = failed(home, data)
    assert "class 1 of label 'label' is missing from the test window" in message
    assert "2017-01-01" in message


def test_validation_stops_tiny_class_without_timestamp(home: PlatformHome) -> None:
    data = frame().assign(label=0)
    data.loc[:1, "label"] = 1
    message = failed(home, data, event_timestamp=None)
    assert "random_split(label)" in message
    assert "class 1 of label 'label' has 2 row(s)" in message


def test_validation_stops_unparseable_timestamps(home: PlatformHome) -> None:
    data = frame().assign(year=lambda f: f["year"].astype(str))
    data.loc[5, "year"] = "MMXX"
    message = failed(home, data)
    assert "event_timestamp_parse(year)" in message and "MMXX" in message


def test_validation_publishes_converted_and_constant_timestamps(home: PlatformHome) -> None:
    outcome = validate_batch(spec(), home, frame())
    assert outcome.passed, outcome.summary()
    published = pd.read_parquet(outcome.validated_path)
    assert published["year"].min() == pd.Timestamp("2000-01-01", tz="UTC")
    outcome = validate_batch(spec(event_timestamp=None), home, frame().drop(columns="year"))
    assert outcome.passed, outcome.summary()
    published = pd.read_parquet(outcome.validated_path)
    assert (published[NO_EVENT_TIME_COLUMN] == pd.Timestamp(NO_EVENT_TIME)).all()


def test_spec_dump_round_trips_and_the_demo_dump_is_unchanged() -> None:
    """The component re-parses its dumped attributes (MLPipelineComponent.load); a spec without
    the new keys dumps (and so hashes) as before."""
    from ml_platform.spec import parse_spec
    from ml_platform_tests.helpers import DEMO_SPEC, load_spec_file

    for form in ({"column": "year", "unit": "year"}, None, "year"):
        s = spec(event_timestamp=form, positive_label=1)
        again = parse_spec(s.model_dump(exclude_unset=True), "again")
        assert again == s
    demo = load_spec_file(DEMO_SPEC).model_dump()
    assert demo["event_timestamp"] == "applied_at"
    assert "event_time" not in demo and "positive_label" not in demo
