"""Derive a draft contract from reference data (like TFX's SchemaGen), for a human to review.

Ranges get a margin, categories are the ones seen, null rates get headroom, and the reference
profile (histograms) is recorded so later batches can be compared with PSI / JS distance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_platform.contracts import profile
from ml_platform.contracts.model import (
    ColumnDistribution,
    ColumnRule,
    Contract,
    DistributionRules,
    LabelRule,
    ReferenceProfile,
)
from ml_platform.contracts.schema_rules import METADATA_COLUMNS
from ml_platform.ingest.prepare import prepare
from ml_platform.spec import PipelineSpec

RANGE_MARGIN = 0.1  # of the observed span, on each side
STAT_MARGIN = 0.5  # of the standard deviation, around the mean and quartiles
FREQ_MARGIN = 0.15  # absolute, around each category's frequency
MAX_CATEGORIES = 50  # more distinct strings than this: an identifier, not a category
QUANTILES = (0.25, 0.5, 0.75)  # tails of small batches are too noisy to gate on
MAX_PSI = 0.25  # the usual "significant shift" threshold


def _dtype(s: pd.Series) -> str | None:
    t = pd.api.types
    if t.is_bool_dtype(s):
        return "bool"
    if t.is_integer_dtype(s):
        return "int"
    if t.is_float_dtype(s):
        return "float"
    if t.is_datetime64_any_dtype(s):
        return "datetime"
    if t.is_object_dtype(s) or t.is_string_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype):
        return "string"
    return None


def _r(x: float) -> float:
    return float(np.round(x, 6))


def _column_rule(spec: PipelineSpec, name: str, s: pd.Series) -> ColumnRule:
    dtype = _dtype(s)
    rule: dict = {"dtype": dtype, "nullable": bool(s.isna().any())}
    if name in (spec.entity_key, spec.event_timestamp, spec.label):
        rule["nullable"] = False  # the key, the time and the label are never optional
    if dtype in ("int", "float") and name not in (spec.label, spec.entity_key) and s.notna().any():
        lo, hi = float(s.min()), float(s.max())
        pad = RANGE_MARGIN * (hi - lo)
        rule["min"] = _r(max(lo - pad, 0.0) if lo >= 0 else lo - pad)
        rule["max"] = _r(hi + pad)
        if dtype == "int":
            rule["min"], rule["max"] = float(np.floor(rule["min"])), float(np.ceil(rule["max"]))
    if dtype == "string" and name != spec.entity_key and 0 < s.nunique() <= MAX_CATEGORIES:
        rule["allowed"] = sorted(str(v) for v in s.dropna().unique())
    if dtype == "datetime":
        rule["timezone_aware"] = getattr(s.dtype, "tz", None) is not None
    return ColumnRule(**rule)


def _distribution(
    spec: PipelineSpec, name: str, s: pd.Series, rule: ColumnRule
) -> ColumnDistribution | None:
    if name in (spec.entity_key, spec.event_timestamp) or rule.dtype in (None, "datetime"):
        return None
    out: dict = {"max_null_fraction": _r(min(1.0, 2 * s.isna().mean() + 0.01))}
    if rule.dtype in ("int", "float") and name != spec.label:
        data = s.dropna().astype("float64")
        pad = STAT_MARGIN * float(data.std() or 0.0)
        mean = float(data.mean())
        out["mean"] = (_r(mean - pad), _r(mean + pad))
        out["quantiles"] = {
            q: (_r(v - pad), _r(v + pad))
            for q, v in zip(QUANTILES, data.quantile(list(QUANTILES)), strict=True)
        }
        out["max_distance"] = MAX_PSI
    elif rule.allowed is not None:
        freq = profile.category_fractions(s)
        out["category_frequency"] = {
            k: (_r(max(0.0, v - FREQ_MARGIN)), _r(min(1.0, v + FREQ_MARGIN)))
            for k, v in freq.items()
        }
        out["max_distance"] = MAX_PSI
    return ColumnDistribution(**out)


def _reference(rule: ColumnRule, s: pd.Series) -> profile.ReferenceColumn | None:
    if rule.dtype in ("int", "float"):
        return profile.numeric_reference(s)
    if rule.allowed is not None:
        return profile.ReferenceColumn(categories=profile.category_fractions(s))
    return None


def infer_contract(spec: PipelineSpec, frame: pd.DataFrame, source: str = "") -> Contract:
    """A draft contract that the reference ``frame`` itself passes."""
    if frame.empty:
        raise ValueError(f"cannot infer a contract for '{spec.name}' from an empty batch")
    frame = frame.drop(columns=[c for c in METADATA_COLUMNS if c in frame.columns])
    # The contract checks the event time and label as converted at ingest (as validation does).
    frame, problems = prepare(spec, frame.reset_index(drop=True))
    if problems:
        raise ValueError("; ".join(p.message for p in problems))
    columns = {name: _column_rule(spec, name, frame[name]) for name in frame.columns}
    dists, refs = {}, {}
    for name, rule in columns.items():
        if (d := _distribution(spec, name, frame[name], rule)) is not None:
            dists[name] = d
            if d.max_distance is not None and (ref := _reference(rule, frame[name])):
                refs[name] = ref
    label = None
    if spec.label in columns:
        values = sorted(float(v) for v in frame[spec.label].dropna().unique())
        label = LabelRule(
            column=spec.label,
            values=values if spec.is_classification else None,
            min_classes=min(2, len(values)) if spec.is_classification else 1,
        )
    unique = [c for c in (spec.entity_key, spec.event_timestamp) if c in columns]
    if len(unique) == 2 and frame.duplicated(unique).any():
        unique = []  # the reference itself repeats keys: a reviewer must decide
    return Contract(
        pipeline=spec.name,
        columns=columns,
        unique=unique if len(unique) == 2 else [],
        event_timestamp=spec.event_timestamp if spec.event_timestamp in columns else None,
        label=label,
        distribution=DistributionRules(min_rows=max(1, len(frame) // 10), columns=dists),
        reference=ReferenceProfile(rows=len(frame), source=source, columns=refs),
    )
