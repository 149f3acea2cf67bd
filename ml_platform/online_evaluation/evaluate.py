"""Online evaluation of one rollout: per-arm metrics with bootstrap intervals on the prediction
log joined to outcomes, the declared test of the challenger against the champion, a verdict.

Verdicts:

- ``insufficient_data``: fewer labelled rows per arm than ``min_samples`` (``fixed``: than the
  horizon), or an interval that cannot be computed yet (one class only);
- ``not_worse``: the interval of ``d`` (challenger minus champion, positive = better) is above
  ``-margin``: the challenger may be promoted;
- ``worse``: the interval is wholly below ``-margin``: stop the rollout;
- ``inconclusive``: neither (``sequential``: keep collecting; ``fixed``: the horizon was
  reached without a decision).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from ml_platform.online_evaluation import stats
from ml_platform.spec import PipelineSpec

VERDICTS = ("insufficient_data", "not_worse", "worse", "inconclusive")
BOOTSTRAP_SAMPLES = 300


@dataclass(frozen=True)
class TestPlan:
    """The test declared up front (the spec's ``rollout:`` section)."""

    __test__ = False  # not a pytest class

    test: str  # "fixed" | "sequential"
    metric: str
    min_samples: int
    alpha: float
    power: float
    margin: float
    classification: bool
    bootstrap_samples: int = BOOTSTRAP_SAMPLES
    seed: int = 0
    multiclass: bool = False  # predictions are the logged label (the class), not the score

    @property
    def statistic(self) -> str:
        return stats.statistic(self.metric, self.multiclass)

    @property
    def prediction(self) -> str:
        """The prediction log's column the metric is computed on."""
        return "label" if self.multiclass else "score"

    @property
    def tau(self) -> float:
        """The mixing scale of the sequential test: the margin (the size of difference that
        matters); a positive floor when the margin is 0."""
        return self.margin if self.margin > 0 else 1e-3


def plan_from_spec(spec: PipelineSpec) -> TestPlan:
    r = spec.rollout
    metric = r.metric or spec.primary_metric
    stats.check_metric(metric, spec.is_classification, spec.is_multiclass)
    return TestPlan(
        test=r.test,
        metric=metric,
        min_samples=r.min_samples,
        alpha=r.alpha,
        power=r.power,
        margin=r.margin,
        classification=spec.is_classification,
        bootstrap_samples=max(100, min(spec.gates.bootstrap_samples, 1000)),
        seed=spec.seed,
        multiclass=spec.is_multiclass,
    )


@dataclass(frozen=True)
class OnlineResult:
    mode: str
    test: str
    metric: str
    verdict: str
    reason: str
    champion_version: str
    challenger_version: str
    n_champion: int
    n_challenger: int
    required_samples: int
    margin: float
    alpha: float
    d: float | None = None
    low: float | None = None
    high: float | None = None
    variance_method: str | None = None
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)
    logged: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict == "not_worse"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("d", "low", "high"):
            v = out[key]
            out[key] = None if v is None or not math.isfinite(v) else v
        return out

    def summary(self) -> str:
        interval = (
            f"d = {self.d:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"
            if self.d is not None and self.low is not None and self.high is not None
            else "no interval yet"
        )
        return (
            f"{self.mode} {self.test} test on {self.metric}, v{self.challenger_version} vs "
            f"champion v{self.champion_version}: {self.verdict} ({interval}, margin "
            f"{self.margin:g}, alpha {self.alpha:g}, n {self.n_champion}/{self.n_challenger}, "
            f"horizon {self.required_samples}) - {self.reason}"
        )


def _arm_rows(log: pd.DataFrame, arm: str, version: str) -> pd.DataFrame:
    return log[(log["arm"] == arm) & (log["model_version"].astype(str) == str(version))]


def _labelled(frame: pd.DataFrame, prediction: str) -> pd.DataFrame:
    return frame[frame["outcome"].notna() & frame[prediction].notna()].rename(
        columns={prediction: "predicted"}
    )


def evaluate(
    joined: pd.DataFrame, mode: str, champion: str, challenger: str, plan: TestPlan
) -> OnlineResult:
    """Judge a rollout on ``joined`` (the prediction log of the rollout with an ``outcome``
    column, :func:`~ml_platform.online_evaluation.outcomes.join_outcomes`)."""
    if mode not in ("shadow", "ab"):
        raise ValueError(f"rollout mode {mode!r}: online evaluation needs 'shadow' or 'ab'")
    champ_rows = _arm_rows(joined, "champion", champion)
    chall_rows = _arm_rows(joined, "challenger", challenger)
    logged = {"champion": len(champ_rows), "challenger": len(chall_rows)}
    metric, column = plan.statistic, plan.prediction
    if mode == "shadow":
        a = _labelled(champ_rows, column)[["request_id", "row", "outcome", "predicted"]]
        b = _labelled(chall_rows, column)[["request_id", "row", "predicted"]]
        pairs = a.merge(b, on=["request_id", "row"], suffixes=("_champion", "_challenger"))
        y = pairs["outcome"].to_numpy("float64")
        sa = pairs["predicted_champion"].to_numpy("float64")
        sb = pairs["predicted_challenger"].to_numpy("float64")
        ya, yb = y, y
    else:
        a, b = _labelled(champ_rows, column), _labelled(chall_rows, column)
        ya, sa = a["outcome"].to_numpy("float64"), a["predicted"].to_numpy("float64")
        yb, sb = b["outcome"].to_numpy("float64"), b["predicted"].to_numpy("float64")
    n_a, n_b = len(ya), len(yb)
    arms = {
        "champion": stats.bootstrap_metric(
            metric, ya, sa, plan.bootstrap_samples, plan.seed
        ).to_dict(),
        "challenger": stats.bootstrap_metric(
            metric, yb, sb, plan.bootstrap_samples, plan.seed + 1
        ).to_dict(),
    }
    base: dict[str, Any] = dict(
        mode=mode,
        test=plan.test,
        metric=plan.metric,
        champion_version=str(champion),
        challenger_version=str(challenger),
        n_champion=n_a,
        n_challenger=n_b,
        margin=plan.margin,
        alpha=plan.alpha,
        arms=arms,
        logged=logged,
    )
    n = min(n_a, n_b)
    if n < plan.min_samples:
        return OnlineResult(
            verdict="insufficient_data",
            reason=f"{n} labelled rows in the smaller arm, fewer than min_samples "
            f"{plan.min_samples}",
            required_samples=plan.min_samples,
            **base,
        )
    if mode == "shadow":
        diff = stats.paired_difference(metric, y, sa, sb, plan.bootstrap_samples, plan.seed)
    else:
        diff = stats.two_sample_difference(
            metric, ya, sa, yb, sb, plan.bootstrap_samples, plan.seed
        )
    base["d"], base["variance_method"] = diff.d, diff.method
    if not (math.isfinite(diff.d) and math.isfinite(diff.variance)):
        return OnlineResult(
            verdict="insufficient_data",
            reason=f"the difference cannot be estimated yet (d {diff.d}, variance "
            f"{diff.variance}): e.g. only one class among the outcomes",
            required_samples=plan.min_samples,
            **base,
        )
    if plan.test == "fixed":
        horizon = stats.required_samples(
            n, diff.variance, plan.margin, plan.alpha, plan.power, plan.min_samples
        )
        if n < horizon:
            return OnlineResult(
                verdict="insufficient_data",
                reason=f"fixed horizon not reached: {n} of {horizon} labelled rows per arm "
                f"(power {plan.power:g} to show non-inferiority at margin {plan.margin:g})",
                required_samples=horizon,
                **base,
            )
        low, high = stats.fixed_interval(diff.d, diff.variance, plan.alpha)
        how = f"one-sided z at alpha {plan.alpha:g}, judged at the horizon"
    elif plan.test == "sequential":
        horizon = plan.min_samples
        low, high = stats.sequential_interval(diff.d, diff.variance, plan.alpha, plan.tau)
        how = f"mSPRT confidence sequence (alpha {plan.alpha:g}, tau {plan.tau:g})"
    else:
        raise stats.StatsError(f"rollout.test: {plan.test!r} is not 'fixed' or 'sequential'")
    verdict = stats.judge(low, high, plan.margin)
    reason = {
        "not_worse": f"lower bound {low:+.4f} > -margin {-plan.margin:+.4f}",
        "worse": f"upper bound {high:+.4f} < -margin {-plan.margin:+.4f}",
        "inconclusive": f"interval [{low:+.4f}, {high:+.4f}] contains -margin {-plan.margin:+.4f}",
    }[verdict]
    return OnlineResult(
        verdict=verdict,
        reason=f"{reason} ({how})",
        required_samples=horizon,
        low=low,
        high=high,
        **base,
    )


def empty_log_result(mode: str, champion: str, challenger: str, plan: TestPlan) -> OnlineResult:
    """The verdict before anything was logged."""
    empty = pd.DataFrame(
        {
            "request_id": pd.Series(dtype="string"),
            "row": pd.Series(dtype="int64"),
            "arm": pd.Series(dtype="string"),
            "model_version": pd.Series(dtype="string"),
            "score": pd.Series(dtype="float64"),
            "label": pd.Series(dtype="Int64"),
            "outcome": pd.Series(dtype="float64"),
        }
    )
    return evaluate(empty, mode, champion, challenger, plan)


__all__ = ["VERDICTS", "OnlineResult", "TestPlan", "evaluate", "plan_from_spec"]
