"""Training wiring: the candidate model (tuned, tracked training) and its reproducibility check."""

from typing import Any

import dagster as dg

from ml_platform.components.common import Stage
from ml_platform.components.mlflow_tracking import MlflowTrackingResource
from ml_platform.components.tags import run_tags
from ml_platform.features.tables import TableInfo
from ml_platform.resources import PlatformResource
from ml_platform.training import recovery, train

# A Dagster run in one of these may still own an MLflow run that is RUNNING.
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def _metadata(stage: Stage, cand: train.Candidate) -> dict[str, Any]:
    return {
        "mlflow_run": dg.MetadataValue.url(cand.run_url),
        "mlflow_run_id": cand.run_id,
        "model_uri": cand.model_uri,
        "trials": cand.trials,
        "pruned_trials": cand.pruned_trials,
        f"val_{stage.spec.primary_metric}": cand.validation_score,
        **{f"test_{k}": v for k, v in cand.test_metrics.items()},
        "best_params": dg.MetadataValue.json(cand.best_params),
        "data_version": cand.data_version,
        "holdout_hash": cand.holdout["hash"],
        "prediction_hash": cand.prediction_hash,
        "reproducibility_hash": cand.reproducibility_hash,
        "optuna_study": cand.study_name,
    }


def training_assets(stage: Stage) -> list[Any]:
    spec, key = stage.spec, stage.key

    @dg.asset(
        ins={"training_set": dg.AssetIn(key["training_set"])},
        kinds={"scikitlearn", "optuna", "mlflow"},
        **stage.common("candidate_model"),
    )
    def candidate_model(
        context: dg.AssetExecutionContext,
        platform: PlatformResource,
        mlflow: MlflowTrackingResource,
        training_set: dict,
    ) -> dg.Output[dict]:
        """A tuned scikit-learn Pipeline, tracked as one MLflow run with a nested run per trial;
        handed downstream as its MLflow run id and model URI. Fails (and registers nothing) when
        the tracking store is unreachable."""
        tracking = platform.tracking()
        # A killed run left its MLflow runs RUNNING: fail those whose Dagster run is over.
        live = {
            r.dagster_run.run_id
            for r in context.instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS))
        } | {context.run_id}
        for orphan in recovery.fail_orphaned_runs(tracking, spec.name, live):
            context.log.warning(
                f"MLflow run {orphan.run_id} ({orphan.name}) of Dagster run "
                f"{orphan.dagster_run_id}, which is over, was RUNNING: "
                "marked FAILED"
            )
        cand = train.train_candidate(
            spec,
            platform.platform_home(),
            tracking,
            TableInfo(**training_set),
            run_tags(context),
            open_run=mlflow.opener(context, tracking),
        )
        return dg.Output(cand.to_dict(), metadata=_metadata(stage, cand))

    @dg.asset_check(
        asset=key["candidate_model"],
        blocking=True,
        name="candidate_model_is_reproducible",
        pool=stage.pool,
    )
    def candidate_model_is_reproducible(
        platform: PlatformResource, candidate_model: dict
    ) -> dg.AssetCheckResult:
        """Retrains on the candidate's fixed sample with the chosen parameters in a fresh
        Python process with another native thread count (bounded in time), and compares the
        prediction hash with the one recorded at training time. The verdict is also tagged on
        the candidate's MLflow run."""
        cand = train.Candidate(**candidate_model)
        verdict = train.check_reproducible(spec, cand)
        tracking = platform.tracking()
        tracking.log_batch(
            cand.run_id,
            tags={"reproducibility_check": "passed" if verdict.passed else "failed"},
            what="tag the reproducibility verdict on run",
        )
        return dg.AssetCheckResult(
            passed=verdict.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=verdict.description,
            metadata={
                "recorded_hash": verdict.recorded_hash,
                "retrained_hash": verdict.retrained_hash or "",
                "training_threads": verdict.training_threads,
                "check_threads": verdict.check_threads or 0,
                "check_seconds": round(verdict.seconds, 2),
                "mlflow_run_id": cand.run_id,
            },
        )

    return [candidate_model, candidate_model_is_reproducible]
