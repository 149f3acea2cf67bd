"""The asset graph of one declared pipeline. Each asset is a thin call into ml_platform.pipeline."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from ml_platform.components.gates import gate_check_specs, gate_results
from ml_platform.pipeline import evaluate, features, raw, register, train, validate
from ml_platform.resources import PlatformResource
from ml_platform.spec import PipelineSpec


def _run_tags(context: dg.AssetExecutionContext) -> dict[str, str]:
    tags = {"dagster_run_id": context.run_id,
            "dagster_asset_key": context.asset_key.to_user_string()}
    if context.has_partition_key:
        tags["dagster_partition"] = context.partition_key
    return tags


def pipeline_assets(spec: PipelineSpec) -> tuple[list[dg.AssetsDefinition],
                                                 list[dg.AssetChecksDefinition]]:
    n = spec.name
    key = {stage: dg.AssetKey(f"{n}_{stage}") for stage in
           ("raw", "validated", "features", "training_set", "candidate_model",
            "evaluation_report", "registered_model")}
    common: dict[str, Any] = {"group_name": n, "owners": [], "tags": {"pipeline": n}}
    contract_check = dg.AssetCheckSpec("contract_holds", asset=key["validated"], blocking=True,
                                       description="Every rule of the data contract holds.")

    @dg.asset(key=key["raw"], kinds={spec.source.file_format}, **common)
    def raw_asset(platform: PlatformResource) -> dg.Output[dict]:
        """Landed source files matched by the spec's source path, snapshotted by content hash."""
        snap = raw.snapshot(spec, platform.platform_home())
        return dg.Output(snap.to_dict(), data_version=dg.DataVersion(snap.data_version),
                         metadata={"files": len(snap.files), "bytes": snap.bytes,
                                   "data_version": snap.data_version,
                                   "latest_file": Path(snap.files[-1]).name})

    @dg.asset(key=key["validated"], ins={"snap": dg.AssetIn(key["raw"])}, kinds={"pandas"},
              check_specs=[contract_check], **common)
    def validated_asset(context: dg.AssetExecutionContext, platform: PlatformResource,
                        snap: dict) -> Iterator[Any]:
        """The raw batch after the data contract: published only if every blocking rule holds,
        so a bad batch never replaces the last good one."""
        frame = raw.read(spec, raw.RawSnapshot(**snap))
        outcome = validate.validate_batch(spec, platform.platform_home(), frame)
        failures = {f"{r.rule}[{r.column}]": r.message for r in outcome.failures}
        yield dg.AssetCheckResult(
            check_name="contract_holds", passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rules": len(outcome.rules), "failed_rules": len(failures),
                      "failures": dg.MetadataValue.json(
                          [r.to_dict() for r in outcome.failures]),
                      "rows_in": outcome.rows_in})
        if not outcome.passed:
            raise dg.Failure(description=f"data contract failed for '{n}': {outcome.summary()}",
                             metadata={"failures": dg.MetadataValue.json(failures)})
        yield dg.Output({"path": str(outcome.validated_path), "rows": outcome.rows_valid},
                        data_version=dg.DataVersion(outcome.data_version),
                        metadata={"rows_in": outcome.rows_in, "rows_valid": outcome.rows_valid,
                                  "rows_quarantined": outcome.rows_quarantined,
                                  "data_version": outcome.data_version})

    @dg.asset(key=key["features"], deps=[key["validated"]], kinds={"duckdb", "sql"}, **common)
    def features_asset(platform: PlatformResource) -> dg.Output[dict]:
        """Declared features per entity and event time (windowed aggregates as of each event)."""
        info = features.build_features(spec, platform.platform_home())
        return dg.Output(info.__dict__, data_version=dg.DataVersion(info.data_version),
                         metadata={"rows": info.rows, "columns": len(info.columns),
                                   "data_version": info.data_version,
                                   "path": dg.MetadataValue.path(info.path)})

    @dg.asset(key=key["training_set"], deps=[key["features"]], kinds={"duckdb", "parquet"},
              **common)
    def training_set_asset(platform: PlatformResource) -> dg.Output[dict]:
        """Label rows joined point-in-time to features; its content hash is the data version."""
        info = features.build_training_set(spec, platform.platform_home())
        return dg.Output(info.__dict__, data_version=dg.DataVersion(info.data_version),
                         metadata={"rows": info.rows, "data_version": info.data_version,
                                   "path": dg.MetadataValue.path(info.path)})

    @dg.asset(key=key["candidate_model"], ins={"tset": dg.AssetIn(key["training_set"])},
              kinds={"scikitlearn", "optuna", "mlflow"}, **common)
    def candidate_asset(context: dg.AssetExecutionContext, platform: PlatformResource,
                        tset: dict) -> dg.Output[train.Candidate]:
        """A tuned scikit-learn Pipeline, tracked as one MLflow run with a nested run per trial."""
        cand = train.train_candidate(spec, platform.platform_home(), platform.tracking(),
                                     features.TableInfo(**tset), _run_tags(context))
        return dg.Output(cand, metadata={
            "mlflow_run": dg.MetadataValue.url(cand.run_url), "mlflow_run_id": cand.run_id,
            "model_uri": cand.model_uri, "trials": cand.trials,
            f"val_{spec.primary_metric}": cand.validation_score,
            **{f"test_{k}": v for k, v in cand.test_metrics.items()},
            "best_params": dg.MetadataValue.json(cand.best_params),
            "holdout_hash": cand.holdout["hash"], "prediction_hash": cand.prediction_hash})

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
                                _run_tags(context))
        return dg.Output(reg.to_dict(), metadata={
            "model": reg.model_name, "version": reg.version, "promoted": reg.promoted,
            "champion_version": reg.champion_version or "none", "decision": reg.decision,
            "model_uri": f"models:/{reg.model_name}/{reg.version}"})

    assets = [raw_asset, validated_asset, features_asset, training_set_asset, candidate_asset,
              evaluation_asset, registered_asset]
    return assets, []
