"""What the platform alerts about: one record, the same for every channel."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

Kind = Literal[
    "run_failure",
    "gate_failed",
    "drift",
    "freshness",
    "promotion",
    "rollback",
    "retrain",
    "model_load_failed",
    "online_test",  # a rollout's online test: challenger worse (rollout stopped) or not promoted
]
Severity = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class Alert:
    """One event worth telling a person about. ``details`` holds JSON-able values (anything else
    is written as its ``str``)."""

    kind: Kind
    pipeline: str
    title: str
    details: dict[str, Any] = field(default_factory=dict)
    severity: Severity = "warning"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    dagster_run_id: str | None = None
    # Links the alert's line in the alerts log to its delivery failures.
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        # A wrong kind or severity is a programming error, found by the first test that builds one.
        if self.kind not in get_args(Kind):
            raise ValueError(f"unknown alert kind {self.kind!r}; one of {get_args(Kind)}")
        if self.severity not in get_args(Severity):
            raise ValueError(f"unknown severity {self.severity!r}; one of {get_args(Severity)}")
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware (UTC)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "pipeline": self.pipeline,
            "title": self.title,
            "severity": self.severity,
            "created_at": self.created_at.astimezone(UTC).isoformat(),
            "dagster_run_id": self.dagster_run_id,
            "details": dict(self.details),
        }
