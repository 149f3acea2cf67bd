"""Check a batch against its contract: schema rules (pandera), the quarantine policy, then
distribution rules (Great Expectations) on the rows that would be published."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml_platform.contracts import distribution_rules, schema_rules
from ml_platform.contracts.model import Contract
from ml_platform.contracts.results import NullMasks, RuleResult, batch_rule


@dataclass
class ContractResult:
    rules: list[RuleResult]
    rows_in: int
    quarantine: np.ndarray                      # True: the row goes to the quarantine table
    reasons: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))

    @property
    def failures(self) -> list[RuleResult]:
        """Rules that fail the batch (quarantined rules do not, unless over the limit)."""
        return [r for r in self.rules if not r.passed and r.policy == "fail"]

    @property
    def quarantined_rules(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed and r.policy == "quarantine"]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def rows_quarantined(self) -> int:
        return int(self.quarantine.sum())


def check_contract(contract: Contract, frame: pd.DataFrame,
                   now: pd.Timestamp | None = None) -> ContractResult:
    now = now or pd.Timestamp.now(tz="UTC")
    shape = schema_rules.structure(contract, frame)
    rules = list(shape.results)
    nothing = np.zeros(len(frame), dtype=bool)
    if frame.empty:
        rules.append(batch_rule("non_empty", None, False, "the batch has no rows"))
        return ContractResult(rules, 0, nothing)
    nulls = NullMasks(frame)
    rows = schema_rules.values(contract, frame, shape.usable_columns, now, nulls)
    rules += rows.results
    quarantine, reasons, limit = _quarantine(contract, rows.results, rows.masks, len(frame))
    rules.append(limit)
    if quarantine.any():  # distributions of the rows that would be published
        kept = frame.loc[~quarantine]
        nulls = NullMasks(kept)
    else:
        kept = frame
    rules += distribution_rules.check(contract, kept, shape.usable_columns, nulls)
    return ContractResult(rules, len(frame), quarantine, reasons)


def _quarantine(contract: Contract, results: list[RuleResult], masks: dict[str, np.ndarray],
                n: int) -> tuple[np.ndarray, pd.Series, RuleResult]:
    """Union the failing rows of quarantine-policy rules, with the reasons for each row."""
    bad = np.zeros(n, dtype=bool)
    reasons: dict[int, list[str]] = {}
    broken: list[str] = []
    for result in results:
        mask = masks.get(result.label)
        if result.passed or result.policy != "quarantine" or mask is None:
            continue
        broken.append(result.label)
        rows = np.flatnonzero(~mask)
        bad[rows] = True
        for i in rows.tolist():
            reasons.setdefault(i, []).append(result.label)
    fraction = bad.sum() / max(n, 1)
    limit = contract.max_quarantine_fraction
    rule = batch_rule("quarantine_limit", None, fraction <= limit,
                      f"{int(bad.sum())} of {n} rows ({fraction:.2%}) break quarantine-policy "
                      f"rules {', '.join(broken)}, above the limit of {limit:.2%}", n)
    if not rule.passed:
        rule.failing_rows, rule.failing_fraction = int(bad.sum()), float(fraction)
    series = pd.Series({i: "; ".join(r) for i, r in reasons.items()}, dtype=object)
    return bad, series, rule
