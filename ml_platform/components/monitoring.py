"""Monitoring wiring: each new batch of features compared with the champion's training reference
(drift, data quality, realized and estimated performance), kept in the pipeline's monitoring
history, with checks that read as the alerts they raise."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from ml_platform.alerting import Alert
from ml_platform.components.alerts import notifier
from ml_platform.components.common import Stage
from ml_platform.home import PlatformHome
from ml_platform.monitoring import batches as batch_selection
from ml_platform.monitoring.analyze import BatchAnalysis, analyze_batch
from ml_platform.monitoring.errors import MonitoringError
from ml_platform.monitoring.history import BatchRecord, MonitoringHistory, history_path
from ml_platform.monitoring.persistence import breach_streak
from ml_platform.monitoring.reference import ChampionReference, load_champion_reference
from ml_platform.monitoring.report import drift_history_png, markdown_report
from ml_platform.resources import PlatformResource
from ml_platform.spec import PipelineSpec

CHECKS = {
    "no_persistent_drift": "No feature (or the champion's scores) drifted in `persistence` "
    "judged batches in a row against the champion's training reference.",
    "performance_above_floor": "The newest batch's realized metric (or, before labels arrive, "
    "its estimate from the champion's probabilities) is at or above the spec's floor.",
    "data_quality_within_bounds": "Null rates, out-of-range values and unseen categories of the "
    "newest batch are within the spec's monitoring bounds.",
}


def _record(spec: PipelineSpec, analysis: BatchAnalysis, run_id: str, version: str) -> BatchRecord:
    return BatchRecord(
        pipeline=spec.name,
        batch=analysis.label,
        champion_version=version,
        analyzed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        dagster_run_id=run_id,
        rows=analysis.rows,
        judged=analysis.drift.judged,
        drifted=analysis.drift.any_drift,
        breached=analysis.breached,
        reasons=list(analysis.reasons),
        analysis={**analysis.to_dict(), "drifted_features": analysis.drift.drifted_features},
    )


def _analyse(
    spec: PipelineSpec,
    home: PlatformHome,
    ref: ChampionReference,
    features_path: Path,
    validated_path: Path,
    run_id: str,
) -> list[BatchAnalysis]:
    history = MonitoringHistory(history_path(home.pipeline_dir(spec.name)))
    done = {r.batch for r in history.batches(spec.name, ref.version)}
    frame = pd.read_parquet(features_path)
    analyses = []
    for label, batch in batch_selection.new_batches(spec, frame, done):
        labels = batch_selection.labels_for(spec, home, batch, validated_path)
        analysis = analyze_batch(spec, ref, batch, labels, label)
        history.record(_record(spec, analysis, run_id, ref.version))
        analyses.append(analysis)
    return analyses


def _checks(
    spec: PipelineSpec, newest: BatchAnalysis | None, streak: int
) -> list[dg.AssetCheckResult]:
    def result(name: str, passed: bool, message: str) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name=name,
            passed=passed,
            severity=dg.AssetCheckSeverity.WARN,
            description=message[:1000],
        )

    if newest is None:
        return [result(name, True, "no new batch to judge") for name in CHECKS]
    drifted = streak >= spec.monitoring.persistence
    drift_msg = (
        f"drift in {streak} batches in a row (persistence {spec.monitoring.persistence}): "
        + ", ".join(newest.drift.drifted_features or ["prediction"])
        if drifted
        else f"drift streak {streak} < persistence {spec.monitoring.persistence}"
    )
    perf = newest.performance_breaches
    return [
        result("no_persistent_drift", not drifted, drift_msg),
        result("performance_above_floor", not perf, "; ".join(perf) or "at or above the floor"),
        result(
            "data_quality_within_bounds",
            not newest.quality.breaches,
            "; ".join(newest.quality.breaches) or "within bounds",
        ),
    ]


def _metadata(
    home: PlatformHome, spec: PipelineSpec, newest: BatchAnalysis, plot: Path
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "batch": newest.label,
        "rows": newest.rows,
        "drifted_features": ", ".join(newest.drift.drifted_features) or "none",
        "report": dg.MetadataValue.md(markdown_report(newest)),
        "drift_plot": dg.MetadataValue.path(str(plot)),
        "history": dg.MetadataValue.path(str(history_path(home.pipeline_dir(spec.name)))),
    }
    # One float per feature and materialization: the asset's Plots tab draws them over time.
    for feature in newest.drift.features:
        meta[f"drift/{feature.feature}"] = float(feature.value)
    if newest.drift.prediction is not None:
        meta["drift/prediction"] = float(newest.drift.prediction.value)
    for metric, got in (newest.realized or {}).items():
        meta[f"realized/{metric}"] = float(got.value)
    for metric, value in (newest.estimated or {}).items():
        meta[f"estimated/{metric}"] = float(value)
    return meta


def monitoring_assets(stage: Stage) -> list[dg.AssetsDefinition]:
    spec, key = stage.spec, stage.key
    me = key["monitoring_report"]

    @dg.asset(
        ins={"validated": dg.AssetIn(key["validated"]), "features": dg.AssetIn(key["features"])},
        kinds={"scipy", "mlflow"},
        check_specs=[
            dg.AssetCheckSpec(name, asset=me, description=text) for name, text in CHECKS.items()
        ],
        **stage.common("monitoring_report"),
    )
    def monitoring_report(
        context: dg.AssetExecutionContext,
        platform: PlatformResource,
        validated: dict,
        features: dict,
    ) -> Iterator[Any]:
        """Each new daily batch of features compared with the current champion's training
        reference: per-feature drift (PSI / normalized Wasserstein with KS, Jensen-Shannon
        with chi-square, Holm-corrected), prediction drift, data quality, realized metrics
        when labels exist and an estimate from the champion's probabilities before. Kept in
        the pipeline's monitoring history; the retraining sensor reads it."""
        home = platform.platform_home()
        doc: dict[str, Any] = {"data_version": validated["data_version"], "batches": []}
        try:
            ref = load_champion_reference(spec, platform.tracking())
        except MonitoringError as exc:
            if "no champion" not in str(exc):
                raise dg.Failure(str(exc), allow_retries=False) from exc
            yield from _checks(spec, None, 0)
            yield dg.Output({**doc, "champion_version": None}, metadata={"status": str(exc)})
            return
        analyses = _analyse(
            spec,
            home,
            ref,
            Path(features["path"]),
            Path(validated["path"]),
            context.run.run_id,
        )
        history = MonitoringHistory(history_path(home.pipeline_dir(spec.name)))
        judged = [r for r in history.batches(spec.name, ref.version) if r.judged]
        streak = breach_streak([r.drifted for r in judged])
        newest = analyses[-1] if analyses else None
        yield from _checks(spec, newest, streak)
        doc.update(
            champion_version=ref.version,
            batches=[a.label for a in analyses],
            drift_streak=streak,
            drift_alert=streak >= spec.monitoring.persistence,
        )
        if newest is None:
            yield dg.Output(doc, metadata={"status": "no new batch since the last report"})
            return
        if doc["drift_alert"] and any(a.drift.any_drift for a in analyses):
            _alert_drift(home, spec, newest, streak, context.run.run_id)
        plot = drift_history_png(
            [r.analysis for r in history.batches(spec.name)],
            home.pipeline_dir(spec.name) / "monitoring" / "plots" / f"{newest.label}.png",
        )
        yield dg.Output(doc, metadata=_metadata(home, spec, newest, plot))

    return [monitoring_report]


def _alert_drift(
    home: PlatformHome, spec: PipelineSpec, newest: BatchAnalysis, streak: int, run_id: str
) -> None:
    drifted = [f.to_dict() for f in newest.drift.features if f.drifted]
    notifier(home).notify(
        Alert(
            kind="drift",
            pipeline=spec.name,
            title=f"{spec.name}: drift in {streak} batches in a row (batch {newest.label})",
            details={
                "batch": newest.label,
                "streak": streak,
                "drifted": [d["feature"] for d in drifted] or ["prediction"],
                "reasons": newest.reasons[:20],
            },
            severity="warning",
            dagster_run_id=run_id,
        )
    )
