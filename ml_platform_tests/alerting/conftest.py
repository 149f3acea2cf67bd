from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ml_platform.alerting import Alert, Notifier
from ml_platform.alerting.webhook import WebhookChannel

PASSWORD = "pw-Sup3r-s3cret-9f1c"


def fast(notifier: Notifier) -> Notifier:
    """The same notifier without the pause before the webhook's retry."""
    channels = tuple(
        replace(c, retry_delay=0.0) if isinstance(c, WebhookChannel) else c
        for c in notifier.channels
    )
    return replace(notifier, channels=channels)


@pytest.fixture
def alerts_log(tmp_path: Path) -> Path:
    return tmp_path / "home" / "alerts" / "alerts.jsonl"


@pytest.fixture
def alert() -> Alert:
    return Alert(
        kind="drift",
        pipeline="loan_default",
        title="loan_default: drift in 2 batches in a row",
        details={"drifted": ["income", "term"], "psi": {"income": 0.31}, "streak": 2},
        severity="warning",
        dagster_run_id="0123456789abcdef",
    )
