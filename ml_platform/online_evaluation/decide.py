"""What a verdict does: ledger evidence always; a promotion through the ledger and a stopped
rollout on ``not_worse``; a stopped rollout, a ``reject`` decision and an alert on ``worse``.

Framework-free: the Dagster asset calls :func:`act`, and so can a test or a script.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ml_platform.alerting import Alert
from ml_platform.online_evaluation.evaluate import OnlineResult
from ml_platform.registry.ledger import ONLINE_TEST, PromotionLedger, PromotionRefused
from ml_platform.serving.rollout import Rollout, RolloutStore

ACTOR = "online-evaluation"


@dataclass(frozen=True)
class Outcome:
    evidence_id: int
    action: str  # "none" | "promoted" | "promotion_refused" | "stopped_worse" | "rollout_changed"
    detail: str
    decision_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "evidence_id": self.evidence_id,
            "action": self.action,
            "detail": self.detail,
            "decision_id": self.decision_id,
        }


def _stop(store: RolloutStore, rollout: Rollout, reason: str) -> bool:
    """Stop ``rollout`` if it is still the active one (not one started since)."""
    current = store.current()
    if current is None or current.id != rollout.id:
        return False
    store.stop(reason, ACTOR)
    return True


def act(
    result: OnlineResult,
    rollout: Rollout,
    ledger: PromotionLedger,
    store: RolloutStore,
    notify: Callable[[Alert], object],
    run_id: str | None = None,
) -> Outcome:
    pipeline, challenger = rollout.pipeline, rollout.challenger_version
    summary = result.summary()
    evidence_id = ledger.add_evidence(
        pipeline,
        challenger,
        ONLINE_TEST,
        passed=result.passed,
        summary=summary[:1000],
        payload={**result.to_dict(), "rollout_id": rollout.id, "dagster_run_id": run_id},
        actor=ACTOR,
    )
    figures = (
        f"{result.metric} d = {result.d:+.4f} [{result.low:+.4f}, {result.high:+.4f}], "
        f"margin {result.margin:g}, n {result.n_champion}/{result.n_challenger}"
        if result.d is not None and result.low is not None and result.high is not None
        else ""
    )
    test = f"online {result.mode} {result.test} test (rollout #{rollout.id})"
    if result.verdict == "not_worse":
        reason = f"{test}: not worse than v{rollout.champion_version}: {figures}"
        try:
            decision = ledger.promote(
                pipeline, challenger, reason, actor=ACTOR, expect_champion=rollout.champion_version
            )
        except PromotionRefused as exc:
            detail = f"not promoted: {exc}"
            _stop(store, rollout, f"{test} passed but the ledger refused the promotion: {exc}")
            notify(
                _alert(
                    rollout,
                    result,
                    f"v{challenger} passed but was not promoted",
                    detail,
                    "warning",
                    run_id,
                )
            )
            return Outcome(evidence_id, "promotion_refused", detail)
        _stop(store, rollout, f"promoted v{challenger} (decision #{decision.id}): {reason}")
        notify(
            Alert(
                kind="promotion",
                pipeline=pipeline,
                title=f"{pipeline}: v{challenger} promoted after its online test",
                details={"reason": reason, "previous": rollout.champion_version},
                severity="info",
                dagster_run_id=run_id,
            )
        )
        return Outcome(evidence_id, "promoted", reason, decision.id)
    if result.verdict == "worse":
        reason = f"{test}: v{challenger} worse than v{rollout.champion_version}: {figures}"
        decision = ledger.record(pipeline, "reject", challenger, reason, [evidence_id], ACTOR)
        stopped = _stop(store, rollout, reason)
        notify(
            _alert(
                rollout, result, f"v{challenger} is worse: rollout stopped", reason, "error", run_id
            )
        )
        return Outcome(
            evidence_id,
            "stopped_worse" if stopped else "rollout_changed",
            reason,
            decision.id,
        )
    return Outcome(evidence_id, "none", f"{result.verdict}: {result.reason}")


def _alert(
    rollout: Rollout,
    result: OnlineResult,
    title: str,
    detail: str,
    severity: str,
    run_id: str | None,
) -> Alert:
    return Alert(
        kind="online_test",
        pipeline=rollout.pipeline,
        title=f"{rollout.pipeline}: {title}",
        details={
            "verdict": result.verdict,
            "detail": detail,
            "rollout_id": rollout.id,
            "champion": rollout.champion_version,
            "challenger": rollout.challenger_version,
            "summary": result.summary(),
        },
        severity=severity,  # type: ignore[arg-type]
        dagster_run_id=run_id,
    )
