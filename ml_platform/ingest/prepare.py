"""Ingest-time conversions of a landed batch, done once before the data contract checks it:
the event timestamp in its declared form to a UTC timestamp, and a binary label in any of its
accepted forms (0/1, 0.0/1.0, booleans, values with a declared ``positive_label``) to 0/1,
and the numeric columns derived from declared date features (``date_features``).

A value that cannot be converted is a ``Problem`` naming the column, the values and the fix;
the validation stage reports it as a failed rule (nothing is published).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.spec import NO_EVENT_TIME, NO_EVENT_TIME_COLUMN, PipelineSpec

SHOWN = 5  # offending values quoted in a message
# pandas' nanosecond timestamps cover 1677-09-21 .. 2262-04-11
MIN_YEAR, MAX_YEAR = 1678, 2261


@dataclass(frozen=True)
class Problem:
    rule: str
    column: str
    message: str
    rows: int = 0
    sample: list[Any] = field(default_factory=list)


def _shown(values: pd.Series) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in values.unique()[:SHOWN]]


def _utc(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")


def _parse_failure(column: str, raw: pd.Series, parsed: pd.Series, what: str, fix: str) -> Problem:
    bad = raw[raw.notna() & parsed.isna()]
    return Problem(
        "event_timestamp_parse",
        column,
        f"{len(bad)} of {len(raw)} values of '{column}' are not {what} "
        f"(e.g. {_shown(bad.astype(str))}). Fix: {fix}",
        len(bad),
        _shown(bad.astype(str)),
    )


def _numeric(raw: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(raw):
        return pd.Series(np.nan, index=raw.index)
    return pd.to_numeric(raw, errors="coerce")


def _from_year(column: str, raw: pd.Series) -> pd.Series | Problem:
    years = _numeric(raw)
    whole = years.notna() & (years == np.floor(years)) & years.between(MIN_YEAR, MAX_YEAR)
    if (raw.notna() & ~whole).any():
        return _parse_failure(
            column,
            raw,
            years.where(whole),
            f"whole years between {MIN_YEAR} and {MAX_YEAR}",
            "land integer years, or declare the column's real form "
            "(unit: s | ms | date, or a format)",
        )
    out = pd.to_datetime(
        pd.DataFrame({"year": years.fillna(2000), "month": 1, "day": 1}).astype("int64"),
        utc=True,
    )
    return out.where(raw.notna())


def _from_epoch(column: str, raw: pd.Series, unit: str) -> pd.Series | Problem:
    values = _numeric(raw)
    limit = 9.2e18 / (1e9 if unit == "s" else 1e6)  # nanoseconds must fit in int64
    ok = values.notna() & values.abs().lt(limit)
    if (raw.notna() & ~ok).any():
        name = "seconds" if unit == "s" else "milliseconds"
        return _parse_failure(
            column,
            raw,
            values.where(ok),
            f"epoch {name} (numbers)",
            f"land numeric epoch {name}, or declare the column's real unit",
        )
    return pd.to_datetime(values, unit=unit, utc=True)


def _from_date(column: str, raw: pd.Series) -> pd.Series | Problem:
    if pd.api.types.is_datetime64_any_dtype(raw):
        ts = _utc(raw)
        off = ts.notna() & (ts != ts.dt.normalize())
        if off.any():
            return Problem(
                "event_timestamp_parse",
                column,
                f"{int(off.sum())} values of '{column}' have a time of day "
                f"(e.g. {_shown(ts[off].astype(str))}), declared unit: date. Fix: declare "
                f"the column without a unit (a datetime)",
                int(off.sum()),
            )
        return ts
    dates = raw.map(lambda v: v.isoformat() if isinstance(v, dt.date) else v)
    parsed = pd.to_datetime(dates, format="%Y-%m-%d", errors="coerce", utc=True)
    if (raw.notna() & parsed.isna()).any():
        return _parse_failure(
            column,
            raw,
            parsed,
            "dates (YYYY-MM-DD)",
            "land ISO dates, or declare the column's format, e.g. {column: "
            f"{column}, format: '%d/%m/%Y'}}",
        )
    return parsed


def _from_format(column: str, raw: pd.Series, fmt: str) -> pd.Series | Problem:
    parsed = pd.to_datetime(raw.astype("string"), format=fmt, errors="coerce", utc=True)
    if (raw.notna() & parsed.isna()).any():
        return _parse_failure(
            column,
            raw,
            parsed,
            f"in the declared format {fmt!r}",
            "correct those values upstream, or declare the format they have",
        )
    return parsed


def _default(column: str, raw: pd.Series) -> pd.Series | Problem:
    """The plain form: a datetime column, or strings pandas can read. Only checked here: the
    column is left as landed, so the contract still sees (and can require) its time zone;
    validation converts it to UTC (naive values are UTC) when it publishes the batch."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        return raw
    if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        sample = _shown(raw.dropna())
        return Problem(
            "event_timestamp_parse",
            column,
            f"'{column}' holds numbers (e.g. {sample}), not timestamps. Fix: declare what they "
            f"are: event_timestamp: {{column: {column}, unit: year}} for years, unit: s or "
            f"unit: ms for epoch seconds or milliseconds",
            int(raw.notna().sum()),
            sample,
        )
    try:
        pd.to_datetime(raw, utc=True, errors="raise", format="mixed")
        return raw
    except (ValueError, TypeError, OverflowError):
        parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
        return _parse_failure(
            column,
            raw,
            parsed,
            "timestamps",
            f"declare their format: event_timestamp: {{column: {column}, format: '%d/%m/%Y'}} "
            f"(any strftime format), or a unit (year | date | s | ms)",
        )


def event_time(spec: PipelineSpec, frame: pd.DataFrame) -> Problem | None:
    """Convert the event timestamp column in place to UTC; a Problem if it cannot be."""
    column = spec.event_timestamp
    if not spec.has_event_time or column not in frame.columns:
        return None  # the contract reports a missing column
    raw = frame[column]
    form = spec.event_time
    converted: pd.Series | Problem
    if form is None:
        converted = _default(column, raw)
    elif form.format is not None:
        converted = _from_format(column, raw, form.format)
    elif form.unit == "year":
        converted = _from_year(column, raw)
    elif form.unit == "date":
        converted = _from_date(column, raw)
    else:
        converted = _from_epoch(column, raw, str(form.unit))
    if isinstance(converted, Problem):
        return converted
    if converted is not raw:
        frame[column] = converted.astype("datetime64[ns, UTC]")
    return None


def add_constant_event_time(spec: PipelineSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """A spec without an event timestamp: the constant column Feast and dbt read."""
    if spec.has_event_time:
        return frame
    frame = frame.copy(deep=False)  # a new column: the caller's frame is left as it was
    frame[NO_EVENT_TIME_COLUMN] = pd.Timestamp(NO_EVENT_TIME).as_unit("ns")
    return frame


# Spellings a CSV reader (DuckDB's sniffer) turns into booleans: positive_label 'yes' then
# means True.
TRUE_WORDS, FALSE_WORDS = {"true", "t", "yes", "y", "1"}, {"false", "f", "no", "n", "0"}


def _is_positive(values: pd.Series, positive: Any) -> pd.Series:
    boolean = pd.api.types.is_bool_dtype(values) or (
        values.dtype == object and pd.api.types.infer_dtype(values) == "boolean"
    )
    if boolean and isinstance(positive, str):
        word = positive.strip().lower()
        positive = True if word in TRUE_WORDS else False if word in FALSE_WORDS else positive
    if isinstance(positive, bool) or boolean:
        return values.map(lambda v: v == positive if isinstance(v, bool | np.bool_) else False)
    if isinstance(positive, int | float) and pd.api.types.is_numeric_dtype(values):
        return values == positive
    return values.astype(str) == str(positive)


def binary_label(spec: PipelineSpec, frame: pd.DataFrame) -> Problem | None:
    """The label as 0.0/1.0 floats (NaN stays NaN for the contract to report), in place."""
    column = spec.label
    if column not in frame.columns:
        return None
    raw = frame[column]
    present = raw.dropna()
    values = sorted(present.unique().tolist(), key=str)
    positive = spec.positive_label
    if positive is None:
        if pd.api.types.is_bool_dtype(present) or (
            present.dtype == object and pd.api.types.infer_dtype(present) == "boolean"
        ):
            frame[column] = raw.map(lambda v: np.nan if pd.isna(v) else float(bool(v)))
            return None
        numbers = _numeric(raw)
        if numbers[raw.notna()].notna().all() and set(numbers.dropna().unique()) <= {0.0, 1.0}:
            if not pd.api.types.is_numeric_dtype(raw):  # e.g. '0' / '1' strings
                frame[column] = numbers.astype("float64")
            return None
        if not values:
            return None  # no label at all: the contract reports the nulls
        return Problem(
            "label_values",
            column,
            f"binary_classification needs the label '{column}' as 0/1, 0.0/1.0 or booleans; "
            f"it holds {_shown(pd.Series(values))}{' ...' if len(values) > SHOWN else ''}. "
            f"Fix: declare which value is the positive class, e.g. positive_label: "
            f"{values[-1]!r}" + (" (and map the others upstream)" if len(values) > 2 else ""),
            len(present),
            _shown(pd.Series(values)),
        )
    if len(values) > 2:
        return Problem(
            "label_values",
            column,
            f"binary_classification needs two label values; '{column}' holds {len(values)}: "
            f"{_shown(pd.Series(values))}{' ...' if len(values) > SHOWN else ''}. Fix: map "
            f"them to two classes upstream",
            len(present),
            _shown(pd.Series(values)),
        )
    hits = _is_positive(present, positive)
    if not hits.any():
        hint = " (quote it in YAML: an unquoted yes/no/true/false is a boolean)" * isinstance(
            positive, bool
        )
        return Problem(
            "label_values",
            column,
            f"positive_label {positive!r} is not among the values of label '{column}': "
            f"{_shown(pd.Series(values))}. Fix: set positive_label to one of them{hint}",
            len(present),
            _shown(pd.Series(values)),
        )
    encoded = pd.Series(np.nan, index=raw.index, dtype="float64")
    encoded[present.index] = hits.astype("float64").to_numpy()
    frame[column] = encoded
    return None


def numeric_label(spec: PipelineSpec, frame: pd.DataFrame) -> Problem | None:
    """Regression: the label as floats (booleans as 0/1)."""
    column = spec.label
    if column not in frame.columns:
        return None
    raw = frame[column]
    if pd.api.types.is_bool_dtype(raw):
        frame[column] = raw.astype("float64")
        return None
    if pd.api.types.is_numeric_dtype(raw):
        return None
    numbers = pd.to_numeric(raw, errors="coerce")
    bad = raw[raw.notna() & numbers.isna()]
    if len(bad):
        return Problem(
            "label_values",
            column,
            f"regression needs a numeric label; {len(bad)} values of '{column}' are not "
            f"numbers (e.g. {_shown(bad.astype(str))}). Fix: correct them upstream, or "
            f"declare task: binary_classification with a positive_label",
            len(bad),
            _shown(bad.astype(str)),
        )
    frame[column] = numbers.astype("float64")
    return None


MIN_CLASSES = 3


def multiclass_label(spec: PipelineSpec, frame: pd.DataFrame) -> Problem | None:
    """Multiclass: the label as integer class values held as floats (NaN stays NaN for the
    contract), and at least ``MIN_CLASSES`` distinct classes. Class names as strings are not
    encoded here: a code chosen per batch would change meaning between batches."""
    column = spec.label
    if column not in frame.columns:
        return None
    raw = frame[column]
    present = raw.dropna()
    if present.empty:
        return None  # no label at all: the contract reports the nulls
    numbers = _numeric(raw)
    integral = numbers.notna() & (numbers == np.floor(numbers))
    bad = present[~integral[present.index]]
    if len(bad):
        return Problem(
            "label_values",
            column,
            f"multiclass_classification needs the label '{column}' as integer class values "
            f"(e.g. 0, 1, 2); {len(bad)} values are not (e.g. {_shown(bad.astype(str))}). "
            f"Fix: map each class to an integer code upstream (and keep the mapping with the "
            f"data); booleans have two classes: declare task: binary_classification",
            len(bad),
            _shown(bad.astype(str)),
        )
    values = sorted(numbers.dropna().unique().tolist())
    if len(values) < MIN_CLASSES:
        shown = [int(v) for v in values]
        return Problem(
            "label_values",
            column,
            f"multiclass_classification needs at least {MIN_CLASSES} classes; label '{column}' "
            f"holds {len(values)}: {shown}. Fix: declare task: binary_classification"
            + (f" (with positive_label: {shown[-1]} if it is not 0/1)" if len(values) == 2 else "")
            + ", or land rows of the other classes",
            len(present),
            shown,
        )
    if not pd.api.types.is_float_dtype(raw):
        frame[column] = numbers.astype("float64")
    return None


def _as_dates(column: str, raw: pd.Series, fmt: str | None) -> pd.Series | Problem:
    """A date feature's values as UTC timestamps (naive values are UTC; Parquet dates and
    pandas dates included), or a Problem naming the values that are not dates."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        return _utc(raw)
    if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        sample = _shown(raw.dropna())
        return Problem(
            "date_feature_parse",
            column,
            f"date feature '{column}' holds numbers (e.g. {sample}), not dates. Fix: land "
            f"dates or datetimes, or declare the column under features.numeric instead of "
            f"features.dates",
            int(raw.notna().sum()),
            sample,
        )
    text = raw.map(lambda v: v.isoformat() if isinstance(v, dt.date) else v).astype("string")
    parsed = pd.to_datetime(text, format=fmt or "mixed", errors="coerce", utc=True, dayfirst=False)
    bad = raw[raw.notna() & parsed.isna()]
    if len(bad):
        how = f"in the declared format {fmt!r}" if fmt else "dates or datetimes"
        return Problem(
            "date_feature_parse",
            column,
            f"{len(bad)} of {len(raw)} values of date feature '{column}' are not {how} (e.g. "
            f"{_shown(bad.astype(str))}). Fix: correct them upstream, or declare their format: "
            f"dates: [{{column: {column}, format: '%d/%m/%Y', ...}}]",
            len(bad),
            _shown(bad.astype(str)),
        )
    return parsed


_PARTS = {
    "year": lambda t: t.dt.year,
    "quarter": lambda t: t.dt.quarter,
    "month": lambda t: t.dt.month,
    "day": lambda t: t.dt.day,
    "day_of_week": lambda t: t.dt.dayofweek,
    "day_of_year": lambda t: t.dt.dayofyear,
    "hour": lambda t: t.dt.hour,
}


def date_features(spec: PipelineSpec, frame: pd.DataFrame) -> list[Problem]:
    """The numeric columns ``features.dates`` declares, added in place (float64, NaN where the
    date is missing): calendar parts in UTC, and the age in days at the row's event time (run
    after ``event_time``). The date column itself is left as landed."""
    problems: list[Problem] = []
    event: pd.Series | None = None
    for date in spec.features.dates:
        if date.column not in frame.columns:
            problems.append(
                Problem(
                    "date_feature_missing",
                    date.column,
                    f"date feature '{date.column}' is not a column of the batch. Fix: land it, "
                    f"or remove it from features.dates",
                )
            )
            continue
        present = [c for c in date.outputs if c in frame.columns]
        if present:
            problems.append(
                Problem(
                    "date_feature_clash",
                    date.column,
                    f"the batch already has columns {present}, the names date feature "
                    f"'{date.column}' derives. Fix: rename those columns upstream",
                )
            )
            continue
        when = _as_dates(date.column, frame[date.column], date.format)
        if isinstance(when, Problem):
            problems.append(when)
            continue
        for part in date.parts:
            frame[f"{date.column}_{part}"] = _PARTS[part](when).astype("float64")
        if date.age_days and spec.event_timestamp in frame.columns:  # else: the contract
            if event is None:
                raw = frame[spec.event_timestamp]
                event = (
                    _utc(raw)
                    if pd.api.types.is_datetime64_any_dtype(raw)
                    else pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
                )
            age = (event - when).dt.total_seconds() / 86_400
            frame[f"{date.column}_age_days"] = age.astype("float64")
    return problems


def prepare(spec: PipelineSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem]]:
    """A copy of ``frame`` with the event time and label converted, the date features derived,
    and what could not be. The copy is shallow: every conversion assigns a whole column
    (``frame[column] = ...``), which replaces that column in the copy only (pandas 2.x), so
    ``frame`` itself is left as it was."""
    frame = frame.copy(deep=False)
    label = (
        binary_label
        if spec.is_classification
        else multiclass_label
        if spec.is_multiclass
        else numeric_label
    )
    problems = [p for p in (event_time(spec, frame), label(spec, frame)) if p is not None]
    if not any(p.column == spec.event_timestamp for p in problems):
        problems += date_features(spec, frame)
    return frame, problems


def category_strings(values: pd.Series) -> pd.Series:
    """A categorical feature as the strings the feature store serves (missing stays None):
    booleans become 'True' / 'False', integer codes '3', pandas categoricals their values.
    A column already of strings is returned as is."""
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) in (
        "string",
        "empty",
    ):
        return values
    present = values.notna().to_numpy()
    out = np.full(len(values), None, dtype=object)
    out[present] = [str(v) for v in values.to_numpy(dtype=object)[present]]
    return pd.Series(out, index=values.index, name=values.name)
