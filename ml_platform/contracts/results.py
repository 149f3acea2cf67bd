"""Rule results shared by the schema and distribution checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

Kind = Literal["schema", "distribution"]
SAMPLE_SIZE = 5


@dataclass
class RuleResult:
    """One rule's verdict. ``column`` is None for batch-wide rules (row count, empty batch)."""

    rule: str
    column: str | None
    passed: bool
    failing_rows: int = 0
    failing_fraction: float = 0.0
    sample: list[Any] = field(default_factory=list)
    message: str = ""
    kind: Kind = "schema"
    policy: str = "fail"

    @property
    def label(self) -> str:
        return f"{self.rule}({self.column})" if self.column else self.rule

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "column": self.column,
            "passed": self.passed,
            "failing_rows": self.failing_rows,
            "failing_fraction": round(self.failing_fraction, 6),
            "sample": self.sample,
            "message": self.message,
            "kind": self.kind,
            "policy": self.policy,
        }


def jsonable(value: Any) -> Any:
    """A JSON-friendly form of a failing value (for samples in reports and metadata)."""
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value if isinstance(value, int | float | str | bool) or value is None else str(value)


def batch_rule(
    rule: str,
    column: str | None,
    passed: bool,
    message: str,
    rows: int = 0,
    kind: Kind = "schema",
    sample: list[Any] | None = None,
) -> RuleResult:
    """A rule about the whole batch: failing means every row is affected."""
    return RuleResult(
        rule,
        column,
        passed,
        0 if passed else rows,
        0.0 if passed else 1.0,
        [jsonable(v) for v in (sample or [])],
        "" if passed else message,
        kind,
    )
