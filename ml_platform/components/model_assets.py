"""The candidate-model asset: tuned, tracked training."""

from typing import Any

import dagster as dg

from ml_platform.components.tags import run_tags
from ml_platform.pipeline import features, train
from ml_platform.resources import PlatformResource
from ml_platform.spec import PipelineSpec


def model_assets(spec: PipelineSpec, key: dict[str, dg.AssetKey], common: dict[str, Any]
                ) -> list[dg.AssetsDefinition]:

    @dg.asset(key=key["candidate_model"], ins={"tset": dg.AssetIn(key["training_set"])},
              kinds={"scikitlearn", "optuna", "mlflow"}, **common)
    def candidate_asset(context: dg.AssetExecutionContext, platform: PlatformResource,
                        tset: dict) -> dg.Output[train.Candidate]:
        """A tuned scikit-learn Pipeline, tracked as one MLflow run with a nested run per trial."""
        cand = train.train_candidate(spec, platform.platform_home(), platform.tracking(),
                                     features.TableInfo(**tset), run_tags(context))
        return dg.Output(cand, metadata={
            "mlflow_run": dg.MetadataValue.url(cand.run_url), "mlflow_run_id": cand.run_id,
            "model_uri": cand.model_uri, "trials": cand.trials,
            f"val_{spec.primary_metric}": cand.validation_score,
            **{f"test_{k}": v for k, v in cand.test_metrics.items()},
            "best_params": dg.MetadataValue.json(cand.best_params),
            "holdout_hash": cand.holdout["hash"], "prediction_hash": cand.prediction_hash})

    return [candidate_asset]
