"""The validation stage: check a raw batch against its contract, publish it only if it passes.

The rules come from ``ml_platform.contracts``; this module applies the outcome: rows broken
only by quarantine-policy rules go to a quarantine table with their reasons, the rest is
published atomically, and a failing batch publishes nothing (the last good batch stays).
Every validation writes an HTML report of all rules, and Great Expectations builds its Data Docs
under ``<home>/gx/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ml_platform.contracts import ContractResult, RuleResult, check_contract, load_for_spec
from ml_platform.contracts.distribution_rules import DataDocs
from ml_platform.contracts.report import write_report
from ml_platform.contracts.results import batch_rule
from ml_platform.home import PlatformHome
from ml_platform.ingest import features_check, prepare, raw, splits
from ml_platform.ingest.io import write_parquet, write_parquet_hashed
from ml_platform.spec import PipelineSpec

__all__ = ["RuleResult", "ValidationOutcome", "validate_batch", "validate_snapshot", "check_only"]
SHOWN = 6  # failures spelled out in the summary; the report and check metadata list them all


@dataclass
class ValidationOutcome:
    rules: list[RuleResult]
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    validated_path: Path | None = None
    data_version: str | None = None
    report_path: Path | None = None
    quarantine_path: Path | None = None
    quarantined: list[RuleResult] = field(default_factory=list)
    data_docs: DataDocs | None = None

    @property
    def failures(self) -> list[RuleResult]:
        """Rules that fail the batch."""
        return [r for r in self.rules if not r.passed and r.policy == "fail"]

    @property
    def passed(self) -> bool:
        return not self.failures

    def of_kind(self, kind: str) -> list[RuleResult]:
        return [r for r in self.rules if r.kind == kind]

    def summary(self) -> str:
        if self.passed:
            return (
                f"all {len(self.rules)} rules passed on {self.rows_in} rows "
                f"({self.rows_quarantined} quarantined)"
            )
        shown = [f"{r.label}: {r.message}" for r in self.failures[:SHOWN]]
        more = len(self.failures) - SHOWN
        if more > 0:
            shown.append(f"and {more} more rules (see {self.report_path})")
        return "; ".join(shown)


def positional(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame indexed 0..n-1 (rules report row positions), copied only if it is not."""
    if frame.index.equals(pd.RangeIndex(len(frame))):
        return frame
    return frame.reset_index(drop=True)


def normalise(spec: PipelineSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps to UTC (naive values are taken as UTC), label to its numeric type; a spec
    without an event timestamp gets its constant column (``prepare.add_constant_event_time``).
    A shallow copy: both columns are assigned whole, so ``frame`` is left as it was."""
    frame = prepare.add_constant_event_time(spec, frame)
    frame = frame.copy(deep=False)
    ts = frame[spec.event_timestamp]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        ts = pd.to_datetime(ts, utc=True, errors="raise", format="mixed")
    frame[spec.event_timestamp] = (
        ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
    )
    dtype = "int64" if spec.is_classification else "float64"
    frame[spec.label] = frame[spec.label].astype(dtype)
    return frame


def publish(spec: PipelineSpec, home: PlatformHome, valid: pd.DataFrame) -> tuple[Path, str]:
    """Write the validated batch once, under its content hash (``validated/<hash>.parquet``)."""
    out = valid.copy(deep=False)  # deleting a column of a shallow copy copies no other column
    if "_source_file" in out.columns:
        del out["_source_file"]
    out = out.sort_values([spec.event_timestamp, spec.entity_key], kind="stable", ignore_index=True)
    return write_parquet_hashed(
        out, home.pipeline_dir(spec.name) / "validated", lambda h: f"{h}.parquet"
    )


def write_quarantine(
    spec: PipelineSpec, home: PlatformHome, frame: pd.DataFrame, result: ContractResult, tag: str
) -> Path:
    """The quarantined rows with the rules they broke, one file per validated batch."""
    rows = frame.loc[result.quarantine].copy()
    rows["_reasons"] = result.reasons.reindex(range(len(frame))).to_numpy()[result.quarantine]
    rows["_quarantined_at"] = datetime.now(UTC)
    target = home.pipeline_dir(spec.name) / "quarantine" / f"{tag}.parquet"
    # object columns can mix types in rows that broke a rule; strings always serialise
    objects = {c: "string" for c in rows.columns if rows[c].dtype == object}
    return write_parquet(rows.astype(objects), target)


def check_only(
    spec: PipelineSpec, home: PlatformHome, frame: pd.DataFrame, source: str
) -> tuple[ContractResult, Path]:
    """Check a batch against the pipeline's committed contract and write the report."""
    result, report, _ = _check(spec, home, frame, source)
    return result, report


def _check(
    spec: PipelineSpec, home: PlatformHome, frame: pd.DataFrame, source: str
) -> tuple[ContractResult, Path, pd.DataFrame]:
    """The contract's verdict, its report and the batch as checked.

    The event time and label are first converted as the spec declares (``ingest.prepare``);
    values that cannot be are failed rules, as are declared features the contract gives no
    dtype that hold text where numbers belong, +/-inf, or one value only
    (``ingest.features_check``). A batch that passes is then checked for a split
    that can work (``ingest.splits``): one distinct timestamp, an empty window or a class
    missing from a window fails it here, not in training."""
    prepared, problems = prepare.prepare(spec, positional(frame))
    contract = load_for_spec(spec)
    typed = [c for c, rule in contract.columns.items() if rule.dtype is not None]
    problems += features_check.check_features(spec, prepared, typed)
    result = check_contract(contract, prepared, gx_root=home.root, run_name=spec.name)
    for p in reversed(problems):
        rule = batch_rule(p.rule, p.column, False, p.message, len(prepared), sample=p.sample)
        rule.failing_rows = p.rows or len(prepared)
        rule.failing_fraction = rule.failing_rows / max(len(prepared), 1)
        result.rules.insert(0, rule)
    if result.passed:
        result.rules.append(_split_rule(spec, prepared, result))
    tag = "passed" if result.passed else "failed"
    return result, write_report(home.reports, spec.name, source, result, tag), prepared


def _split_rule(spec: PipelineSpec, frame: pd.DataFrame, result: ContractResult) -> RuleResult:
    # Only the columns the split reads (``splits.assign``), converted and sorted as published.
    columns = dict.fromkeys((spec.event_timestamp, spec.entity_key, spec.label))
    read = [c for c in columns if c in frame.columns]
    kept = frame.loc[~result.quarantine, read] if result.rows_quarantined else frame[read]
    kept = normalise(spec, kept).sort_values(
        [spec.event_timestamp, spec.entity_key], kind="stable", ignore_index=True
    )
    kind, column = ("time", spec.event_timestamp) if spec.has_event_time else ("random", spec.label)
    try:
        splits.assign(kept, spec)
    except splits.SplitError as exc:
        return batch_rule(f"{kind}_split", column, False, str(exc), len(kept))
    return batch_rule(f"{kind}_split", column, True, "")


def validate_batch(
    spec: PipelineSpec, home: PlatformHome, frame: pd.DataFrame, source: str = "landed files"
) -> ValidationOutcome:
    result, report, frame = _check(spec, home, frame, source)
    outcome = ValidationOutcome(
        result.rules,
        len(frame),
        len(frame) - result.rows_quarantined,
        result.rows_quarantined,
        report_path=report,
        quarantined=result.quarantined_rules,
        data_docs=result.data_docs,
    )
    if not outcome.passed:
        return outcome
    valid = frame.loc[~result.quarantine] if result.rows_quarantined else frame
    outcome.validated_path, outcome.data_version = publish(spec, home, normalise(spec, valid))
    if result.rows_quarantined:
        outcome.quarantine_path = write_quarantine(spec, home, frame, result, outcome.data_version)
    return outcome


def validate_snapshot(
    spec: PipelineSpec, home: PlatformHome, snap: raw.RawSnapshot
) -> ValidationOutcome:
    """Read a raw snapshot's files and validate them: the validated asset's work."""
    return validate_batch(spec, home, raw.read(spec, snap))
