"""Data quality of a batch against the training reference: null rates, values outside the
range the model was trained on, categories it never saw. Drift compares distributions of the
values present; these are the failures drift cannot see (nulls are left out of drift), and the
ones a model handles silently (imputation, ``handle_unknown="ignore"``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.monitoring import stats
from ml_platform.spec import MonitoringSpec


@dataclass(frozen=True)
class ColumnQuality:
    column: str
    kind: str  # "numeric" | "categorical"
    null_rate_reference: float
    null_rate: float
    out_of_range: float | None = None  # numeric: share of non-null values outside [min, max]
    reference_min: float | None = None
    reference_max: float | None = None
    new_category_rate: float | None = None  # categorical: share of non-null rows unseen before

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class QualityResult:
    columns: list[ColumnQuality]
    breaches: list[str] = field(default_factory=list)
    rows: int = 0
    judged: bool = True  # False below min_rows: a 5-row batch with one null is not 20% nulls

    @property
    def breached(self) -> bool:
        return bool(self.breaches)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "judged": self.judged,
            "breaches": list(self.breaches),
            "columns": [c.to_dict() for c in self.columns],
        }


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _null_rate(values: pd.Series) -> float:
    return float(values.isna().mean()) if len(values) else 0.0


def _numeric(name: str, reference: pd.Series, current: pd.Series) -> ColumnQuality:
    ref = stats.finite_sorted(reference)
    cur = current.to_numpy(dtype="float64", na_value=np.nan)
    cur = cur[~np.isnan(cur)]  # infinities stay: they are out of any range
    low, high = (float(ref[0]), float(ref[-1])) if len(ref) else (None, None)
    outside = None
    if low is not None and high is not None and len(cur):
        outside = float(np.mean((cur < low) | (cur > high)))
    return ColumnQuality(
        name, "numeric", _null_rate(reference), _null_rate(current), outside, low, high
    )


def _categorical(name: str, reference: pd.Series, current: pd.Series) -> ColumnQuality:
    seen = set(stats.category_counts(reference).index)
    counts = stats.category_counts(current)
    unseen = counts[~counts.index.isin(list(seen))].sum()
    rate = float(unseen / counts.sum()) if counts.sum() else None
    return ColumnQuality(
        name, "categorical", _null_rate(reference), _null_rate(current), new_category_rate=rate
    )


def _breaches(col: ColumnQuality, settings: MonitoringSpec) -> list[str]:
    found = []
    increase = col.null_rate - col.null_rate_reference
    if increase > settings.max_null_increase:
        found.append(
            f"{col.column}: null rate {_pct(col.null_rate)} vs {_pct(col.null_rate_reference)} "
            f"in the reference (+{_pct(increase)} > max_null_increase "
            f"{_pct(settings.max_null_increase)})"
        )
    if col.out_of_range is not None and col.out_of_range > settings.max_out_of_range:
        found.append(
            f"{col.column}: {_pct(col.out_of_range)} of values outside the reference range "
            f"[{col.reference_min:.4g}, {col.reference_max:.4g}] (> max_out_of_range "
            f"{_pct(settings.max_out_of_range)})"
        )
    rate = col.new_category_rate
    if rate is not None and rate > settings.max_new_categories:
        found.append(
            f"{col.column}: {_pct(rate)} of rows with a category unseen in the reference "
            f"(> max_new_categories {_pct(settings.max_new_categories)})"
        )
    return found


def data_quality(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    settings: MonitoringSpec,
) -> QualityResult:
    """Every listed column measured; breaches named (column, value, bound) when the batch has
    at least ``min_rows`` rows."""
    columns = [_numeric(c, reference[c], current[c]) for c in numeric]
    columns += [_categorical(c, reference[c], current[c]) for c in categorical]
    judged = len(current) >= settings.min_rows
    breaches = [b for col in columns for b in _breaches(col, settings)] if judged else []
    return QualityResult(columns, breaches, len(current), judged)
