"""Online evaluation, framework-free: outcomes (labels) joined to the prediction log, per-arm
metrics with bootstrap intervals, and the rollout's declared test (shadow: paired; A/B: two
samples; fixed horizon or an always-valid sequential test) ending in a verdict. The Dagster
asset (ml_platform/components/online_evaluation.py) turns the verdict into ledger evidence, a
promotion or a stopped rollout. See docs/online-evaluation.md."""

from ml_platform.online_evaluation.evaluate import (
    VERDICTS,
    OnlineResult,
    TestPlan,
    evaluate,
    plan_from_spec,
)
from ml_platform.online_evaluation.outcomes import (
    OutcomeError,
    join_outcomes,
    join_window,
    read_outcomes,
)

__all__ = [
    "VERDICTS",
    "OnlineResult",
    "OutcomeError",
    "TestPlan",
    "evaluate",
    "join_outcomes",
    "join_window",
    "plan_from_spec",
    "read_outcomes",
]
