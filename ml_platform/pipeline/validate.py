"""The validation stage: check a raw batch, publish it only if it passes.

The rules come from ``ml_platform.contracts``; this module applies the row-level policy
(quarantine) and writes the validated batch atomically, so a failing batch never replaces the
last good one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ml_platform.core.io import frame_hash, write_parquet
from ml_platform.home import PlatformHome
from ml_platform.spec import PipelineSpec


@dataclass
class RuleResult:
    rule: str
    column: str | None
    passed: bool
    failing_rows: int = 0
    failing_fraction: float = 0.0
    sample: list = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass
class ValidationOutcome:
    rules: list[RuleResult]
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    validated_path: Path | None = None
    data_version: str | None = None

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rules)

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed]

    def summary(self) -> str:
        if self.passed:
            return f"all {len(self.rules)} rules passed on {self.rows_in} rows"
        return "; ".join(f"{r.rule}[{r.column}]: {r.message}" for r in self.failures)


def _rule(name: str, column: str | None, bad: pd.Series | np.ndarray, values: pd.Series | None,
          message: str) -> RuleResult:
    bad = np.asarray(bad, dtype=bool)
    n_bad = int(bad.sum())
    sample = [] if values is None or n_bad == 0 else [str(v) for v in values[bad].head(5)]
    return RuleResult(name, column, n_bad == 0, n_bad, n_bad / max(len(bad), 1), sample,
                      f"{n_bad} rows ({n_bad / max(len(bad), 1):.2%}) {message}" if n_bad else "")


def basic_rules(spec: PipelineSpec, frame: pd.DataFrame) -> list[RuleResult]:
    """The rules every pipeline gets even without a contract file."""
    required = [spec.entity_key, spec.event_timestamp, spec.label,
                *spec.features.numeric, *spec.features.categorical,
                *{a.column for a in spec.features.aggregates if a.column}]
    missing = [c for c in dict.fromkeys(required) if c not in frame.columns]
    if missing:
        return [RuleResult("column_present", c, False, len(frame), 1.0, [],
                           f"required column '{c}' is missing") for c in missing]
    if frame.empty:
        return [RuleResult("non_empty", None, False, 0, 1.0, [], "the batch has no rows")]
    label = frame[spec.label]
    rules = [_rule("not_null", spec.label, label.isna(), label, "have a null label")]
    if spec.is_classification:
        bad = ~label.isin([0, 1, True, False]) & label.notna()
        rules.append(_rule("label_domain", spec.label, bad, label, "have a label outside {0, 1}"))
    return rules


def normalise(spec: PipelineSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps to UTC (naive values are taken as UTC), label to its numeric type."""
    frame = frame.copy()
    ts = frame[spec.event_timestamp]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        ts = pd.to_datetime(ts, utc=True, errors="raise", format="mixed")
    frame[spec.event_timestamp] = (ts.dt.tz_localize("UTC") if ts.dt.tz is None
                                   else ts.dt.tz_convert("UTC"))
    dtype = "int64" if spec.is_classification else "float64"
    frame[spec.label] = frame[spec.label].astype(dtype)
    return frame


def publish(spec: PipelineSpec, home: PlatformHome, valid: pd.DataFrame) -> tuple[Path, str]:
    """Atomically replace the pipeline's validated batch."""
    out = valid.sort_values([spec.event_timestamp, spec.entity_key], kind="stable")
    out = out.drop(columns=["_source_file"], errors="ignore").reset_index(drop=True)
    version = frame_hash(out)
    return write_parquet(out, home.pipeline_dir(spec.name) / "validated.parquet"), version


def validate_batch(spec: PipelineSpec, home: PlatformHome, frame: pd.DataFrame
                   ) -> ValidationOutcome:
    rules = basic_rules(spec, frame)
    outcome = ValidationOutcome(rules, len(frame), len(frame), 0)
    if outcome.passed:
        outcome.validated_path, outcome.data_version = publish(spec, home, normalise(spec, frame))
    return outcome
