"""The declared features (and a regression label) of a landed batch, checked before anything
downstream reads them.

A numeric feature holding text ('n/a', '1,234', '0,5') or dates, a numeric feature or regression
label holding +/-inf, or a feature with one value in every row passed the minimal contract and
went on to the feature and training steps, where a library meets it without knowing the column.
Each is now a ``Problem`` naming the column, the values and the fix; validation reports it as a
failed rule and publishes nothing.

A column the data contract gives a dtype is left to the contract (its rules, with their
quarantine policy, own it); these checks cover what a spec declares without a contract file.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import numpy as np
import pandas as pd

from ml_platform.ingest.prepare import SHOWN, Problem
from ml_platform.spec import PipelineSpec

# Spellings of "missing" that exports write instead of an empty cell.
MISSING_WORDS = {"n/a", "na", "nan", "null", "none", "-", "?", "", "missing", "#n/a", "nil"}
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")


def _shown(values: pd.Series) -> list[str]:
    return [str(v) for v in values.unique()[:SHOWN]]


def _hint(bad: pd.Series) -> str:
    text = bad.astype(str).str.strip()
    if text.str.lower().isin(MISSING_WORDS).all():
        return (
            "write missing values as empty cells in the export (these are spellings of "
            "'missing'), or replace them upstream"
        )
    if text.str.match(_THOUSANDS).all():
        return "export numbers without thousands separators (1234, not 1,234)"
    if text.str.match(_DECIMAL_COMMA).all():
        return "export numbers with a decimal point (0.5, not 0,5)"
    return (
        "correct those values upstream, or declare the column under features.categorical "
        "if it is not a number"
    )


def _infinite(column: str, raw: pd.Series, infinite: pd.Series) -> Problem:
    return Problem(
        "finite",
        column,
        f"{len(infinite)} of {len(raw)} values of numeric feature '{column}' are "
        f"+/-infinity (e.g. {_shown(infinite)}). Fix: replace them upstream (often a "
        f"division by zero), with an empty cell where the value is unknown",
        len(infinite),
        _shown(infinite),
    )


def _numeric(column: str, raw: pd.Series) -> Problem | None:
    if pd.api.types.is_bool_dtype(raw) or pd.api.types.infer_dtype(raw) == "boolean":
        return None  # booleans are numbers 0/1 (with nulls a CSV reader gives objects)
    if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
        infinite = raw[np.isinf(values.to_numpy())]
        return _infinite(column, raw, infinite) if len(infinite) else None
    dates = ("date", "datetime", "datetime64")  # a CSV reader's DATE column: datetime.date
    if pd.api.types.is_datetime64_any_dtype(raw) or pd.api.types.infer_dtype(raw) in dates:
        present = raw.dropna().astype(str)
        return Problem(
            "numeric_feature",
            column,
            f"numeric feature '{column}' holds timestamps (e.g. {_shown(present)}), not "
            f"numbers. Fix: move it to features.dates (e.g. dates: [{{column: {column}, parts: "
            f"[day_of_week, month], age_days: true}}]; docs/pipeline-spec.md, Dates)",
            len(present),
            _shown(present),
        )
    numbers = pd.to_numeric(raw.astype("string").str.strip(), errors="coerce")
    bad = raw[raw.notna() & numbers.isna()]
    if not raw.notna().any():
        return None  # no value at all: a constant feature
    if not len(bad):
        present = raw.dropna()
        infinite = raw[np.isinf(numbers.astype("float64").to_numpy(na_value=np.nan))]
        if len(infinite):  # a CSV reader keeps 'inf' as text
            return _infinite(column, raw, infinite)
        return Problem(
            "numeric_feature",
            column,
            f"numeric feature '{column}' holds numbers stored as text (e.g. "
            f"{_shown(present)}). Fix: land the column with a numeric type",
            len(present),
            _shown(present),
        )
    return Problem(
        "numeric_feature",
        column,
        f"numeric feature '{column}' holds text: {len(bad)} of {len(raw)} values are not "
        f"numbers (e.g. {_shown(bad)}). Fix: {_hint(bad)}",
        len(bad),
        _shown(bad),
    )


def _constant(column: str, raw: pd.Series, role: str) -> Problem | None:
    present = raw.dropna()
    if len(raw) < 2 or present.nunique() > 1:
        return None
    what = f"one value ({_shown(present)[0]!r})" if len(present) else "no value"
    return Problem(
        "constant_feature",
        column,
        f"{role} feature '{column}' has {what} in all {len(raw)} rows: it cannot tell rows "
        f"apart. Fix: remove it from features.{role}, or land data in which it varies",
        len(raw),
        _shown(present),
    )


def check_features(
    spec: PipelineSpec, frame: pd.DataFrame, typed: Collection[str] = ()
) -> list[Problem]:
    """Problems of the declared numeric and categorical features present in ``frame``; columns
    in ``typed`` (given a dtype by the contract) are the contract's to check."""
    problems: list[Problem] = []
    for role, columns in (
        ("numeric", spec.features.numeric),
        ("categorical", spec.features.categorical),
    ):
        for column in columns:
            if column not in frame.columns or column in typed:
                continue
            raw = frame[column]
            problem = _numeric(column, raw) if role == "numeric" else None
            problem = problem or _constant(column, raw, role)
            if problem is not None:
                problems.append(problem)
    label = spec.label
    if not spec.is_classification and label in frame.columns and label not in typed:
        values = frame[label]
        if pd.api.types.is_numeric_dtype(values):  # text: prepare.numeric_label reports it
            infinite = values[np.isinf(values.astype("float64").to_numpy())]
            if len(infinite):
                problems.append(
                    Problem(
                        "finite",
                        label,
                        f"{len(infinite)} of {len(values)} values of the label '{label}' are "
                        f"+/-infinity (e.g. {_shown(infinite)}). Fix: correct or drop those "
                        f"rows upstream: a regression cannot learn from an infinite target",
                        len(infinite),
                        _shown(infinite),
                    )
                )
    return problems
