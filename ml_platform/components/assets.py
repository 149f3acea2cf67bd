"""The asset graph of one declared pipeline, assembled from one module per stage."""

from typing import Any

import dagster as dg

from ml_platform.components.data_assets import data_assets
from ml_platform.components.evaluation_assets import evaluation_assets
from ml_platform.components.feature_assets import feature_assets
from ml_platform.components.model_assets import model_assets
from ml_platform.spec import PipelineSpec

STAGES = ("raw", "validated", "features", "training_set", "candidate_model",
          "evaluation_report", "registered_model")


def asset_keys(spec: PipelineSpec) -> dict[str, dg.AssetKey]:
    return {stage: dg.AssetKey(f"{spec.name}_{stage}") for stage in STAGES}


def pipeline_assets(spec: PipelineSpec) -> list[dg.AssetsDefinition]:
    key = asset_keys(spec)
    common: dict[str, Any] = {"group_name": spec.name, "tags": {"pipeline": spec.name}}
    return [*data_assets(spec, key, common), *feature_assets(spec, key, common),
            *model_assets(spec, key, common), *evaluation_assets(spec, key, common)]
