"""A gate verdict: the unit of evidence the evaluation stage produces and the ledger records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Gate:
    name: str
    passed: bool
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
