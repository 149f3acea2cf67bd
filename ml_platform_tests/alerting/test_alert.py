from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ml_platform.alerting import Alert


def test_to_dict_is_json_with_a_utc_timestamp(alert: Alert) -> None:
    data = json.loads(json.dumps(alert.to_dict()))
    assert data["kind"] == "drift" and data["pipeline"] == "loan_default"
    assert data["details"]["drifted"] == ["income", "term"]
    assert data["dagster_run_id"] == "0123456789abcdef"
    assert datetime.fromisoformat(data["created_at"]).utcoffset().total_seconds() == 0


def test_defaults() -> None:
    a = Alert(kind="promotion", pipeline="p", title="v3 is champion")
    assert a.severity == "warning" and a.details == {} and a.dagster_run_id is None
    assert a.created_at.tzinfo is UTC and len(a.id) == 32


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "oops"},
        {"severity": "critical"},
        {"created_at": datetime(2026, 1, 1)},  # naive: not UTC
    ],
)
def test_rejects_what_is_not_an_alert(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Alert(**{"kind": "drift", "pipeline": "p", "title": "t", **kwargs})  # type: ignore[arg-type]
