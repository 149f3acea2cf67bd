"""Evaluation report (with its gates as blocking checks) and the registered model version."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from ml_platform.components.gates import gate_check_specs, gate_results
from ml_platform.components.tags import run_tags
from ml_platform.pipeline import evaluate, register, train
from ml_platform.resources import PlatformResource
from ml_platform.spec import PipelineSpec


def evaluation_assets(spec: PipelineSpec, key: dict[str, dg.AssetKey], common: dict[str, Any]
                     ) -> list[dg.AssetsDefinition]:
    n = spec.name
    @dg.asset(key=key["evaluation_report"],
              ins={"cand": dg.AssetIn(key["candidate_model"]),
                   "tset": dg.AssetIn(key["training_set"])},
              kinds={"mlflow"}, check_specs=gate_check_specs(spec, key["evaluation_report"]),
              **common)
    def evaluation_asset(platform: PlatformResource, cand: train.Candidate, tset: dict
                         ) -> Iterator[Any]:
        """Holdout metrics by slice, the candidate against baseline and champion on the same
        frozen holdout, and the gates (blocking checks) that decide registration."""
        report = evaluate.evaluate(spec, platform.platform_home(), platform.tracking(), cand,
                                   Path(tset["path"]))
        if not report.passed:
            platform.ledger().record(n, "reject", None, "candidate failed its gates",
                                     register.gate_evidence(report), actor="pipeline")
        yield from gate_results(spec, report)
        yield dg.Output(report, metadata={
            **{k: v for k, v in report.metrics.items()},
            "gates_passed": report.passed,
            "champion_version": report.champion_version or "none",
            "report": dg.MetadataValue.path(report.report_dir)})

    @dg.asset(key=key["registered_model"],
              ins={"cand": dg.AssetIn(key["candidate_model"]),
                   "report": dg.AssetIn(key["evaluation_report"])},
              kinds={"mlflow"}, **common)
    def registered_asset(context: dg.AssetExecutionContext, platform: PlatformResource,
                         cand: train.Candidate, report: evaluate.EvaluationReport
                         ) -> dg.Output[dict]:
        """The registered model version (alias 'challenger'); promoted to 'champion' through the
        promotion ledger when it is the first model or beats the champion."""
        reg = register.register(spec, platform.tracking(), platform.ledger(), cand, report,
                                run_tags(context))
        return dg.Output(reg.to_dict(), metadata={
            "model": reg.model_name, "version": reg.version, "promoted": reg.promoted,
            "champion_version": reg.champion_version or "none", "decision": reg.decision,
            "model_uri": f"models:/{reg.model_name}/{reg.version}"})

    return [evaluation_asset, registered_asset]
