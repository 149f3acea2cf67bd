"""The retraining decision: which trigger holds, and what holds it back (dedupe, cooldown,
a retrain in flight); and the monitoring history it reads (replacing a batch's row on a retry)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ml_platform.monitoring.history import BatchRecord, MonitoringHistory
from ml_platform.monitoring.triggers import decide
from ml_platform_tests.helpers import small_spec

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _batch(day: int, drifted: bool, auc: float = 0.8, judged: bool = True) -> BatchRecord:
    return BatchRecord(
        pipeline="loan_default",
        batch=f"2026-05-{day:02d}",
        champion_version="3",
        analyzed_at=NOW.isoformat(),
        dagster_run_id=None,
        rows=1000,
        judged=judged,
        drifted=drifted,
        breached=drifted,
        reasons=[],
        analysis={
            "drifted_features": ["credit_score"] if drifted else [],
            "performance_breaches": [f"realized roc_auc {auc} below the floor 0.65"]
            if auc < 0.65
            else [],
        },
    )


def _decide(history: list[BatchRecord], **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "data_version": "dv1",
        "champion_version": "3",
        "champion_created_at": NOW - timedelta(days=2),
        "history": history,
        "last_triggered_at": None,
        "in_flight": False,
        "now": NOW,
    }
    args.update(kw)
    return decide(small_spec(), **args)  # type: ignore[arg-type]


def test_stable_data_triggers_nothing() -> None:
    decision = _decide([_batch(d, False) for d in range(1, 6)])
    assert decision.trigger is None
    assert "no trigger holds" in decision.why


def test_drift_triggers_only_once_it_persists() -> None:
    one = _decide([_batch(1, False), _batch(2, True)])
    assert one.trigger is None
    two = _decide([_batch(1, False), _batch(2, True), _batch(3, True)])
    assert two.trigger is not None and two.trigger.reason == "drift"
    assert two.trigger.detail["streak"] == 2 and two.trigger.detail["drifted"] == "credit_score"
    assert two.trigger.run_key == "drift:dv1"
    tags = two.trigger.tags()
    assert tags["ml_platform/trigger"] == "drift" and tags["ml_platform/trigger_data_version"]
    # An unjudged (too small) batch neither breaks nor extends the streak.
    small = _decide([_batch(2, True), _batch(3, False, judged=False), _batch(4, True)])
    assert small.trigger is not None and small.trigger.reason == "drift"


def test_performance_below_floor_triggers() -> None:
    # the demo gates: min roc_auc 0.65
    decision = _decide([_batch(1, False, auc=0.55)])
    assert decision.trigger is not None and decision.trigger.reason == "performance"
    assert "roc_auc 0.55 below the floor 0.65" in decision.trigger.detail["below_floor"]


def test_old_champion_triggers_once_per_version() -> None:
    decision = _decide([], champion_created_at=NOW - timedelta(days=31))
    assert decision.trigger is not None and decision.trigger.reason == "model_age"
    assert decision.trigger.run_key == "model_age:3"


def test_no_champion_trains_a_first_model_but_not_without_data() -> None:
    first = _decide([], champion_version=None, champion_created_at=None)
    assert first.trigger is not None and first.trigger.reason == "first_model"
    assert _decide([], data_version=None).trigger is None


def test_cooldown_and_in_flight_hold_a_trigger_back() -> None:
    drifting = [_batch(1, True), _batch(2, True)]
    cooling = _decide(drifting, last_triggered_at=NOW - timedelta(hours=3))
    assert cooling.trigger is None and "cooldown until" in cooling.why
    assert _decide(drifting, last_triggered_at=NOW - timedelta(days=2)).trigger is not None
    busy = _decide(drifting, in_flight=True)
    assert busy.trigger is None and "queued or running" in busy.why


def test_retrain_on_limits_the_triggers() -> None:
    spec = small_spec()
    only_age = spec.model_copy(
        update={"monitoring": spec.monitoring.model_copy(update={"retrain_on": ["model_age"]})}
    )
    decision = decide(
        only_age,
        data_version="dv1",
        champion_version="3",
        champion_created_at=NOW,
        history=[_batch(1, True), _batch(2, True)],
        last_triggered_at=None,
        in_flight=False,
        now=NOW,
    )
    assert decision.trigger is None


def test_history_replaces_a_batch_analysed_again(tmp_path: Path) -> None:
    history = MonitoringHistory(tmp_path / "history.db")
    history.record(_batch(1, False))
    history.record(_batch(2, False))
    history.record(_batch(2, True))  # a retried step
    rows = history.batches("loan_default", "3")
    assert [(r.batch, r.drifted) for r in rows] == [("2026-05-01", False), ("2026-05-02", True)]
    assert history.batches("loan_default", "4") == []
