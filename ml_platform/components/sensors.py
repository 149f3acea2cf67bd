"""Sensors that close the loop: new landed data runs the monitoring job; the monitoring history,
the champion's age and the absence of a champion run the training job; stale data or models
raise freshness alerts.

Plain ``@dg.sensor`` functions with JSON cursors (asset and multi-asset sensors have cursor bugs
in this Dagster line). A run_key dedupes within one sensor only: the run queue's tag limit
(one run per pipeline, dagster.yaml) and the promotion ledger's compare-and-set hold across them.
"""

import json
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from ml_platform.alerting import Alert
from ml_platform.components.alerts import notifier
from ml_platform.components.common import Stage
from ml_platform.components.handoff import HANDOFF
from ml_platform.home import platform_home
from ml_platform.ingest.raw import RawDataError, listing_version
from ml_platform.monitoring import triggers
from ml_platform.monitoring.history import MonitoringHistory, history_path
from ml_platform.resources import PlatformResource

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _status(stage: Stage) -> dg.DefaultSensorStatus:
    """The closed loop runs by default when the spec enables monitoring."""
    if stage.spec.monitoring.enabled:
        return dg.DefaultSensorStatus.RUNNING
    return dg.DefaultSensorStatus.STOPPED


def new_data_sensor(stage: Stage, job: Any) -> dg.SensorDefinition:
    spec = stage.spec

    @dg.sensor(
        name=f"{spec.name}_new_data_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=_status(stage),
        description=f"Observes the landed files of '{spec.name}' (names, sizes, modification "
        "times) and, when they change, runs its monitoring job: validation, features and "
        "the monitoring report. The retraining sensor decides from that report.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        try:
            version, files, size = listing_version(spec, platform_home())
        except RawDataError as exc:
            return dg.SkipReason(str(exc))
        if version == context.cursor:
            return dg.SkipReason(f"no new data (version {version})")
        observation = dg.AssetObservation(
            asset_key=stage.key["raw"],
            metadata={"files": files, "bytes": size},
            tags={"dagster/data_version": version},
        )
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=version, tags={"trigger": "new_data", "landed_version": version}
                )
            ],
            asset_events=[observation],
            cursor=version,
        )

    return _sensor


def _newest_handoff(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, Any] | None:
    records = instance.fetch_materializations(key, limit=1).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get(HANDOFF)
    return dict(value.value) if value is not None else None  # type: ignore[arg-type]


def _retrain_runs(instance: dg.DagsterInstance, job_name: str) -> tuple[bool, datetime | None]:
    """Whether a run of the training job is in flight, and when the last triggered one began."""
    in_flight = bool(
        instance.get_run_records(dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT), limit=1)
    )
    triggered = [
        r
        for r in instance.get_run_records(dg.RunsFilter(job_name=job_name), limit=50)
        if triggers.TAG in r.dagster_run.tags
    ]
    last = triggered[0].create_timestamp if triggered else None
    return in_flight, last.astimezone(UTC) if last else None


def retrain_sensor(stage: Stage, job: Any) -> dg.SensorDefinition:
    spec = stage.spec

    @dg.sensor(
        name=f"{spec.name}_retrain_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=_status(stage),
        description=f"Runs the training job of '{spec.name}' when it has no champion, when "
        "drift persists, when performance falls below the floor, or when the champion is too "
        "old (spec: monitoring). One run per trigger and data version, a cooldown between "
        "retrains, never two at once; the trigger is stamped on the run, the MLflow run, the "
        "model version and the ledger's decision.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, platform: PlatformResource
    ) -> dg.RunRequest | dg.SkipReason:
        report = _newest_handoff(context.instance, stage.key["monitoring_report"])
        champion = platform.tracking().version_by_alias(spec.name, "champion")
        in_flight, last = _retrain_runs(context.instance, job.name)
        home = platform.platform_home()
        version = str(champion.version) if champion is not None else None
        history = MonitoringHistory(history_path(home.pipeline_dir(spec.name)))
        decision = triggers.decide(
            spec,
            data_version=report["data_version"] if report else None,
            champion_version=version,
            champion_created_at=(
                datetime.fromtimestamp(champion.creation_timestamp / 1000, UTC)
                if champion is not None
                else None
            ),
            history=history.batches(spec.name, version) if version else [],
            last_triggered_at=last,
            in_flight=in_flight,
            now=datetime.now(UTC),
        )
        if decision.trigger is None:
            return dg.SkipReason(decision.why)
        trigger = decision.trigger
        notifier(home).notify(
            Alert(
                kind="retrain",
                pipeline=spec.name,
                title=f"{spec.name}: retraining ({trigger.reason})",
                details={"trigger": trigger.summary(), **trigger.detail},
                severity="info",
            )
        )
        return dg.RunRequest(run_key=trigger.run_key, tags=trigger.tags())

    return _sensor


def freshness_alert_sensor(stage: Stage) -> dg.SensorDefinition:
    spec = stage.spec
    keys = [stage.key["validated"], stage.key["registered_model"]]

    @dg.sensor(
        name=f"{spec.name}_freshness_alert_sensor",
        minimum_interval_seconds=60,
        default_status=_status(stage),
        description=f"Alerts once per violation when the daemon's freshness evaluation of "
        f"'{spec.name}''s validated data (max_data_lag) or registered model (max_model_age) "
        "turns FAIL. (Freshness alerts are not part of open-source Dagster.)",
    )
    def _sensor(context: dg.SensorEvaluationContext, platform: PlatformResource) -> dg.SkipReason:
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        states = context.instance.get_freshness_state_records(keys)
        alerted = []
        for key, record in states.items():
            name, state = key.to_user_string(), record.freshness_state.value
            if state == "FAIL" and seen.get(name) != "FAIL":
                notifier(platform.platform_home()).notify(
                    Alert(
                        kind="freshness",
                        pipeline=spec.name,
                        title=f"{name} is stale (freshness FAIL)",
                        details={"asset": name, "since": record.updated_at.isoformat()},
                        severity="error",
                    )
                )
                alerted.append(name)
            seen[name] = state
        context.update_cursor(json.dumps(seen, sort_keys=True))
        return dg.SkipReason(f"alerted: {', '.join(alerted)}" if alerted else "all fresh")

    return _sensor
