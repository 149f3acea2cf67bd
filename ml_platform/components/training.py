"""Training wiring: the candidate model (tuned, tracked training) and its reproducibility check."""

from typing import Any

import dagster as dg

from ml_platform.components.common import Stage
from ml_platform.components.mlflow_tracking import MlflowTrackingResource
from ml_platform.components.tags import run_tags
from ml_platform.features.tables import TableInfo
from ml_platform.resources import PlatformResource
from ml_platform.training import train


def _metadata(stage: Stage, cand: train.Candidate) -> dict[str, Any]:
    return {
        "mlflow_run": dg.MetadataValue.url(cand.run_url), "mlflow_run_id": cand.run_id,
        "model_uri": cand.model_uri, "trials": cand.trials, "pruned_trials": cand.pruned_trials,
        f"val_{stage.spec.primary_metric}": cand.validation_score,
        **{f"test_{k}": v for k, v in cand.test_metrics.items()},
        "best_params": dg.MetadataValue.json(cand.best_params),
        "data_version": cand.data_version, "holdout_hash": cand.holdout["hash"],
        "prediction_hash": cand.prediction_hash,
        "reproducibility_hash": cand.reproducibility_hash, "optuna_study": cand.study_name}


def training_assets(stage: Stage) -> list[Any]:
    spec, key = stage.spec, stage.key

    @dg.asset(ins={"training_set": dg.AssetIn(key["training_set"])},
              kinds={"scikitlearn", "optuna", "mlflow"}, **stage.common("candidate_model"))
    def candidate_model(context: dg.AssetExecutionContext, platform: PlatformResource,
                        mlflow: MlflowTrackingResource, training_set: dict) -> dg.Output[dict]:
        """A tuned scikit-learn Pipeline, tracked as one MLflow run with a nested run per trial;
        handed downstream as its MLflow run id and model URI. Fails (and registers nothing) when
        the tracking store is unreachable."""
        tracking = platform.tracking()
        cand = train.train_candidate(spec, platform.platform_home(), tracking,
                                     TableInfo(**training_set), run_tags(context),
                                     open_run=mlflow.opener(context, tracking))
        return dg.Output(cand.to_dict(), metadata=_metadata(stage, cand))

    @dg.asset_check(asset=key["candidate_model"], blocking=True,
                    name="candidate_model_is_reproducible")
    def candidate_model_is_reproducible(candidate_model: dict) -> dg.AssetCheckResult:
        """Retrains on a small fixed sample of the training set with the chosen parameters and
        compares the prediction hash with the one recorded at training time."""
        cand = train.Candidate(**candidate_model)
        same, again = train.check_reproducible(spec, cand)
        return dg.AssetCheckResult(
            passed=same, severity=dg.AssetCheckSeverity.ERROR,
            description=None if same else "retraining on the fixed sample gave different "
            "predictions: training is not deterministic for this spec and data",
            metadata={"recorded_hash": cand.reproducibility_hash, "retrained_hash": again,
                      "mlflow_run_id": cand.run_id})

    return [candidate_model, candidate_model_is_reproducible]
