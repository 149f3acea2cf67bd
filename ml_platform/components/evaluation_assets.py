"""Evaluation report (with its gates as blocking checks) and the registered model version."""

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from ml_platform.components.gates import gate_check_specs, gate_results
from ml_platform.components.tags import run_tags
from ml_platform.core.versioning import code_version
from ml_platform.pipeline import evaluate, register, train
from ml_platform.resources import PlatformResource
from ml_platform.spec import PipelineSpec


def _png_markdown(path: str, title: str) -> dg.MetadataValue:
    """Embedded so the Dagster UI shows the plot without serving files."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{data})")


def _report_metadata(spec: PipelineSpec, report: evaluate.EvaluationReport,
                     cand: train.Candidate) -> dict[str, Any]:
    metric = spec.primary_metric
    plots = {f"plot_{name}": _png_markdown(path, name) for name, path in report.plots.items()}
    card = Path(report.model_card)
    return {
        **{k: v for k, v in report.metrics.items()},
        **{f"{base}_baseline_{metric}": values[metric]
           for base, values in report.baseline_metrics.items() if metric in values},
        "gates_passed": report.passed,
        "failed_gates": ", ".join(g.name for g in report.failed_gates) or "none",
        "champion_version": report.champion_version or "none",
        "mlflow_run": dg.MetadataValue.url(cand.run_url),
        "report": dg.MetadataValue.path(report.report_dir),
        "slices": dg.MetadataValue.json(report.slices),
        "model_card": dg.MetadataValue.md(card.read_text() if card.exists() else "n/a"),
        **plots}


def evaluation_assets(spec: PipelineSpec, key: dict[str, dg.AssetKey], common: dict[str, Any]
                      ) -> list[dg.AssetsDefinition]:
    n = spec.name

    @dg.asset(key=key["evaluation_report"],
              ins={"cand": dg.AssetIn(key["candidate_model"]),
                   "tset": dg.AssetIn(key["training_set"])},
              kinds={"mlflow", "scikitlearn"},
              check_specs=gate_check_specs(spec, key["evaluation_report"]), **common)
    def evaluation_asset(context: dg.AssetExecutionContext, platform: PlatformResource,
                         cand: train.Candidate, tset: dict) -> Iterator[Any]:
        """Holdout metrics by slice, calibration, confusion matrix and permutation importance;
        the candidate against a dummy and a linear baseline and the re-scored champion on the
        same frozen holdout; infra validation in a fresh process; a model card. The gates are
        blocking checks: a failure stops the run before registration and is recorded in the
        promotion ledger."""
        lineage = {"feature_service": tset.get("feature_service"),
                   "dagster_run_id": context.run.run_id, "code_version": code_version()}
        report = evaluate.evaluate(spec, platform.platform_home(), platform.tracking(), cand,
                                   Path(tset["path"]), lineage)
        if not report.passed:
            register.record_rejection(spec, platform.ledger(), report,
                                      register.pipeline_actor(run_tags(context)))
        yield dg.Output(report, metadata=_report_metadata(spec, report, cand))
        yield from gate_results(spec, report)

    @dg.asset(key=key["registered_model"],
              ins={"cand": dg.AssetIn(key["candidate_model"]),
                   "report": dg.AssetIn(key["evaluation_report"])},
              kinds={"mlflow"}, **common)
    def registered_asset(context: dg.AssetExecutionContext, platform: PlatformResource,
                         cand: train.Candidate, report: evaluate.EvaluationReport
                         ) -> dg.Output[dict]:
        """The registered model version (alias 'challenger', model card as description);
        promoted to 'champion' through the promotion ledger when it is the first model or
        scores at least as well as the champion it was compared with."""
        reg = register.register(spec, platform.tracking(), platform.ledger(), cand, report,
                                run_tags(context))
        return dg.Output(reg.to_dict(), metadata={
            "model": reg.model_name, "version": reg.version, "promoted": reg.promoted,
            "champion_version": reg.champion_version or "none", "decision": reg.decision,
            "model_uri": f"models:/{reg.model_name}/{reg.version}",
            "ledger": dg.MetadataValue.path(str(platform.platform_home().ledger_db)),
            "history": f"ml-platform models history {n}"})

    return [evaluation_asset, registered_asset]
