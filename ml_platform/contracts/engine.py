"""Check a batch against its contract: schema rules (a pandera schema), the quarantine policy,
then distribution rules (a Great Expectations suite) on the rows that would be published."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ml_platform.contracts import distribution_rules, schema_rules
from ml_platform.contracts.distribution_rules import DataDocs
from ml_platform.contracts.model import Contract
from ml_platform.contracts.results import RuleResult, batch_rule


@dataclass
class ContractResult:
    rules: list[RuleResult]
    rows_in: int
    quarantine: np.ndarray  # True: the row goes to the quarantine table
    reasons: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))
    data_docs: DataDocs | None = None  # Great Expectations Data Docs of this run
    suite: str | None = None  # the GX expectation suite that ran

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


def check_contract(
    contract: Contract,
    frame: pd.DataFrame,
    now: pd.Timestamp | None = None,
    gx_root: Path | None = None,
    run_name: str = "validation",
) -> ContractResult:
    """Check ``frame`` (indexed 0..n-1). ``gx_root``: the platform home whose ``gx/`` project
    stores the suite, the validation results and the Data Docs (None: an ephemeral context)."""
    now = now or pd.Timestamp.now(tz="UTC")
    schema = schema_rules.check(contract, frame, now)
    rules = list(schema.results)
    nothing = np.zeros(len(frame), dtype=bool)
    if frame.empty:
        rules.append(
            batch_rule(
                "non_empty",
                None,
                False,
                "the batch has no rows. Fix: land "
                "data (an empty file or an export that matched nothing?)",
            )
        )
        return ContractResult(rules, 0, nothing)
    quarantine, reasons, limit = _quarantine(contract, schema.results, schema.masks, len(frame))
    rules.append(limit)
    kept = frame.loc[~quarantine] if quarantine.any() else frame  # the rows to be published
    dist = distribution_rules.check(contract, kept, schema.usable_columns, gx_root, run_name)
    rules += dist.results
    return ContractResult(rules, len(frame), quarantine, reasons, dist.data_docs, dist.suite)


def _quarantine(
    contract: Contract, results: list[RuleResult], masks: dict[str, np.ndarray], n: int
) -> tuple[np.ndarray, pd.Series, RuleResult]:
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
    rule = batch_rule(
        "quarantine_limit",
        None,
        fraction <= limit,
        f"{int(bad.sum())} of {n} rows ({fraction:.2%}) break quarantine-policy "
        f"rules {', '.join(broken)}, above the limit of {limit:.2%}. Fix: correct "
        f"those rows upstream, or raise max_quarantine_fraction",
        n,
    )
    if not rule.passed:
        rule.failing_rows, rule.failing_fraction = int(bad.sum()), float(fraction)
    series = pd.Series({i: "; ".join(r) for i, r in reasons.items()}, dtype=object)
    return bad, series, rule
