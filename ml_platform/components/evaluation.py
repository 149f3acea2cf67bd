"""Evaluation wiring: the evaluation report, its gates as blocking checks."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from ml_platform.alerting import Alert
from ml_platform.components.alerts import notifier
from ml_platform.components.common import Stage
from ml_platform.components.gates import gate_check_specs, gate_results
from ml_platform.components.tags import run_tags
from ml_platform.evaluation import evaluate
from ml_platform.ingest.versioning import code_version
from ml_platform.registry import register
from ml_platform.resources import PlatformResource
from ml_platform.training import train


def _report_metadata(
    stage: Stage, report: evaluate.EvaluationReport, cand: train.Candidate
) -> dict[str, Any]:
    metric = stage.spec.primary_metric
    return {
        **dict(report.metrics.items()),
        **{
            f"{base}_baseline_{metric}": values[metric]
            for base, values in report.baseline_metrics.items()
            if metric in values
        },
        "gates_passed": report.passed,
        "failed_gates": ", ".join(g.name for g in report.failed_gates) or "none",
        "champion_version": report.champion_version or "none",
        "mlflow_run": dg.MetadataValue.url(cand.run_url),
        "report": dg.MetadataValue.path(report.report_dir),
        "slices": dg.MetadataValue.json(report.slices),
        "model_card": dg.MetadataValue.path(report.model_card),
        # Files, not images in the event log: the report directory holds them, and so does
        # the candidate's MLflow run (artifacts under plots/).
        **{f"plot_{name}": dg.MetadataValue.path(path) for name, path in report.plots.items()},
    }


def evaluation_assets(stage: Stage) -> list[dg.AssetsDefinition]:
    spec, key = stage.spec, stage.key

    @dg.asset(
        ins={
            "candidate_model": dg.AssetIn(key["candidate_model"]),
            "training_set": dg.AssetIn(key["training_set"]),
        },
        kinds={"mlflow", "scikitlearn"},
        check_specs=gate_check_specs(spec, key["evaluation_report"]),
        **stage.common("evaluation_report"),
    )
    def evaluation_report(
        context: dg.AssetExecutionContext,
        platform: PlatformResource,
        candidate_model: dict,
        training_set: dict,
    ) -> Iterator[Any]:
        """Holdout metrics by slice, calibration, confusion matrix and permutation importance;
        the candidate against a dummy and a linear baseline and the re-scored champion on the
        same frozen holdout; infra validation in a fresh process; a model card. The gates are
        blocking checks: a failure stops the run before registration and is recorded in the
        promotion ledger."""
        cand = train.Candidate(**candidate_model)
        lineage = {
            "feature_service": training_set.get("feature_service"),
            "dagster_run_id": context.run.run_id,
            "code_version": code_version(),
        }
        ledger = platform.ledger()
        report = evaluate.evaluate(
            spec,
            platform.platform_home(),
            platform.tracking(),
            cand,
            Path(training_set["path"]),
            lineage,
            champion_version=ledger.champion(spec.name),
        )
        if not report.passed:
            tags = run_tags(context)
            decision = register.record_rejection(spec, ledger, report, tags)
            notifier(platform.platform_home()).notify(
                Alert(
                    kind="gate_failed",
                    pipeline=spec.name,
                    title=f"{spec.name}: candidate {cand.run_id[:8]} failed its gates",
                    details={"decision": decision.reason, "mlflow_run_id": cand.run_id},
                    severity="warning",
                    dagster_run_id=context.run.run_id,
                )
            )
        yield dg.Output(
            {
                "report": str(Path(report.report_dir) / "evaluation.json"),
                "passed": report.passed,
                "mlflow_run_id": cand.run_id,
            },
            metadata=_report_metadata(stage, report, cand),
        )
        yield from gate_results(spec, report)

    return [evaluation_report]
