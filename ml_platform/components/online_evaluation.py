"""Online evaluation wiring: while a rollout (shadow or A/B) is active, the prediction log joined
to the ingested outcomes is judged by the spec's declared test; the verdict becomes ledger
evidence, and a promotion or a stopped rollout (ml_platform/online_evaluation/decide.py).

A sensor runs the asset's job when a rollout starts and whenever new outcomes are stored, so a
challenger under rollout has (pending) online evidence from its first minute: the ledger then
refuses to promote it by any path until that evidence passes.
"""

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import dagster as dg

from ml_platform.components.alerts import notifier
from ml_platform.components.common import RETRY, Stage
from ml_platform.home import platform_home
from ml_platform.resources import PlatformResource

CHECKS = {
    "challenger_not_worse": "The rollout's online test does not find the challenger worse than "
    "the champion by more than the spec's margin (a failure stops the rollout and alerts).",
    "outcomes_join_predictions": "When outcomes and logged predictions of the rollout exist, "
    "some outcomes label a prediction (none joining means mismatched entity keys, timestamps "
    "outside the join window, or foreign request ids).",
}


def online_evaluation_key(stage: Stage) -> dg.AssetKey:
    return dg.AssetKey(f"{stage.spec.name}_online_evaluation")


def online_evaluation_job_name(pipeline: str) -> str:
    return f"{pipeline}_online_evaluation_job"


def _check(name: str, passed: bool, message: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=message[:1000],
    )


def online_evaluation_assets(stage: Stage) -> list[dg.AssetsDefinition]:
    spec = stage.spec
    me = online_evaluation_key(stage)

    @dg.asset(
        key=me,
        group_name=spec.name,
        owners=stage.owners,
        tags=stage.tags,
        code_version=stage.code_version,
        pool=stage.pool,
        retry_policy=RETRY,
        kinds={"scipy"},
        check_specs=[dg.AssetCheckSpec(n, asset=me, description=d) for n, d in CHECKS.items()],
    )
    def online_evaluation(
        context: dg.AssetExecutionContext, platform: PlatformResource
    ) -> Iterator[Any]:
        """The active rollout judged on live traffic: per-arm metrics with bootstrap intervals
        on the prediction log joined to outcomes, and the declared test (shadow: paired on the
        same requests; A/B: two samples; fixed horizon or mSPRT). Recorded as `online_test`
        evidence of the challenger; `not_worse` promotes it through the ledger (if its offline
        gates passed) and stops the rollout; `worse` stops the rollout and alerts."""
        from ml_platform.online_evaluation import outcomes as oc
        from ml_platform.online_evaluation.decide import act
        from ml_platform.online_evaluation.evaluate import evaluate, plan_from_spec
        from ml_platform.online_evaluation.stats import StatsError
        from ml_platform.serving.prediction_log import read_predictions
        from ml_platform.serving.rollout import RolloutStore

        home = platform.platform_home()
        store = RolloutStore(home, spec.name)
        rollout = store.current()
        if rollout is None:
            for name in CHECKS:
                yield _check(name, True, "no active rollout")
            yield dg.Output({"rollout": None}, metadata={"status": "no active rollout"})
            return
        try:
            plan = plan_from_spec(spec)
        except StatsError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from exc
        predictions = read_predictions(home, spec.name, since=rollout.started_at)
        predictions = predictions[predictions["mode"] == rollout.mode]
        outcomes = oc.read_outcomes(home, spec.name)
        joined = oc.join_outcomes(predictions, outcomes, oc.join_window(spec))
        result = evaluate(
            joined, rollout.mode, rollout.champion_version, rollout.challenger_version, plan
        )
        done = act(
            result,
            rollout,
            platform.ledger(),
            store,
            notifier(home).notify,
            run_id=context.run.run_id,
        )
        labelled = int(joined["outcome"].notna().sum())
        yield _check(
            "challenger_not_worse",
            result.verdict != "worse",
            f"{result.verdict}: {result.reason}; {done.action}: {done.detail}",
        )
        yield _check(
            "outcomes_join_predictions",
            predictions.empty or outcomes.empty or labelled > 0,
            f"{labelled} of {len(predictions)} logged rows of rollout #{rollout.id} labelled "
            f"by {len(outcomes)} stored outcomes",
        )
        doc = {"rollout": rollout.to_dict(), "result": result.to_dict(), "action": done.to_dict()}
        metadata: dict[str, Any] = {
            "verdict": result.verdict,
            "action": done.action,
            "summary": result.summary(),
            "rollout_id": rollout.id,
            "challenger_version": rollout.challenger_version,
            "champion_version": rollout.champion_version,
            "evidence_id": done.evidence_id,
            "labelled_rows": labelled,
            "n_champion": result.n_champion,
            "n_challenger": result.n_challenger,
            "required_samples": result.required_samples,
            "result": dg.MetadataValue.json(doc),
        }
        for bound in ("d", "low", "high"):
            value = getattr(result, bound)
            if value is not None:
                metadata[f"difference/{bound}"] = float(value)
        for arm, interval in result.arms.items():
            if interval.get("value") is not None:
                metadata[f"{arm}/{result.metric}"] = float(interval["value"])
        yield dg.Output(doc, metadata=metadata)

    return [online_evaluation]


def _outcomes_listing(pipeline: str) -> str:
    """A fingerprint of the stored outcome files (new outcomes: a new file)."""
    from ml_platform.online_evaluation.outcomes import outcomes_dir

    directory = outcomes_dir(platform_home(), pipeline)
    names = sorted(p.name for p in directory.glob("[!.]*.parquet")) if directory.exists() else []
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def online_evaluation_sensor(stage: Stage, job: Any) -> dg.SensorDefinition:
    spec = stage.spec

    @dg.sensor(
        name=f"{spec.name}_online_evaluation_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"While a rollout of '{spec.name}' is active, runs its online evaluation "
        "when the rollout starts and whenever new outcomes are stored (ml-platform labels).",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        from ml_platform.serving.rollout import RolloutStore

        rollout = RolloutStore(platform_home(), spec.name).current()
        if rollout is None:
            return dg.SkipReason(f"no active rollout of '{spec.name}'")
        state = {"rollout": rollout.id, "outcomes": _outcomes_listing(spec.name)}
        cursor = json.dumps(state, sort_keys=True)
        if cursor == context.cursor:
            return dg.SkipReason(f"rollout #{rollout.id}: no new outcomes")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"online-evaluation-{rollout.id}-{state['outcomes']}",
                    tags={"ml_platform/trigger": "online_evaluation"},
                )
            ],
            cursor=cursor,
        )

    return _sensor
