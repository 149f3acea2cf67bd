"""The asset graph of one declared pipeline: the wiring of every stage, in data-flow order."""

from typing import Any

from ml_platform.components.common import Stage
from ml_platform.components.evaluation import evaluation_assets
from ml_platform.components.features import feature_assets
from ml_platform.components.ingest import ingest_assets
from ml_platform.components.monitoring import monitoring_assets
from ml_platform.components.registry import registry_assets
from ml_platform.components.training import training_assets
from ml_platform.spec import PipelineSpec


def pipeline_assets(spec: PipelineSpec) -> list[Any]:
    stage = Stage(spec)
    return [
        *ingest_assets(stage),
        *feature_assets(stage),
        *training_assets(stage),
        *evaluation_assets(stage),
        *registry_assets(stage),
        *monitoring_assets(stage),
    ]
