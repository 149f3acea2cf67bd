"""The ML pipeline Component: one ``defs.yaml`` spec becomes one asset graph, its jobs and its
sensor. The spec model is the Component's own model, so `dg check yaml` validates spec files."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import BaseModel

from ml_platform.components.assets import pipeline_assets
from ml_platform.components.batch_predictions import batch_prediction_assets, batch_predictions_key
from ml_platform.components.common import Stage
from ml_platform.components.features import online_key
from ml_platform.components.online_evaluation import (
    online_evaluation_assets,
    online_evaluation_job_name,
    online_evaluation_key,
    online_evaluation_sensor,
)
from ml_platform.components.sensors import freshness_alert_sensor, new_data_sensor, retrain_sensor
from ml_platform.spec import PipelineSpec, SpecError, parse_spec

# Runs carrying this tag are limited to one per value (dagster.yaml, concurrency.runs): one run
# of a pipeline's jobs at a time, however it was launched.
PIPELINE_TAG = "ml_platform/pipeline"


def training_job_name(pipeline: str) -> str:
    return f"{pipeline}_training_job"


def monitoring_job_name(pipeline: str) -> str:
    return f"{pipeline}_monitoring_job"


class MLPipelineComponent(dg.Component):
    """A declared ML pipeline: raw data to a gated, registered model version."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        return PipelineSpec

    @classmethod
    def load(
        cls, attributes: BaseModel | None, context: dg.ComponentLoadContext
    ) -> MLPipelineComponent:
        path = Path(context.path)
        spec_dir = path if path.is_dir() else path.parent
        if not isinstance(attributes, PipelineSpec):
            raise SpecError(f"{spec_dir / 'defs.yaml'}: 'attributes' must be a pipeline spec")
        data = attributes.model_dump(exclude_unset=True)
        return cls(parse_spec(data, str(spec_dir / "defs.yaml"), spec_dir=spec_dir))

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        spec, stage = self.spec, Stage(self.spec)
        tags = {PIPELINE_TAG: spec.name}
        job = dg.define_asset_job(
            training_job_name(spec.name),
            # upstream(): a dbt feature model the spec reads is part of the run too. The online
            # store is not: serving freshness has its own job and automation condition. The
            # observable source of landed files is observed, not materialized. Nor are the
            # operating assets (monitoring, batch scoring, online evaluation).
            selection=dg.AssetSelection.groups(spec.name).upstream().materializable()
            - dg.AssetSelection.assets(
                online_key(stage),
                stage.key["monitoring_report"],
                batch_predictions_key(stage),
                online_evaluation_key(stage),
            ),
            tags=tags,
            description=f"Raw data to registered model for '{spec.name}'.",
        )
        monitoring_job = dg.define_asset_job(
            monitoring_job_name(spec.name),
            # validation, the features (and their dbt model), the monitoring report and the
            # champion's batch predictions
            selection=dg.AssetSelection.assets(
                stage.key["monitoring_report"], batch_predictions_key(stage)
            )
            .upstream()
            .materializable(),
            tags=tags,
            description=f"New data to monitoring report and batch predictions for "
            f"'{spec.name}' (no training).",
        )
        online_job = dg.define_asset_job(
            f"{spec.name}_online_job",
            selection=dg.AssetSelection.assets(online_key(stage)),
            tags=tags,
            description=f"Load the newest features of '{spec.name}' into the online store.",
        )
        online_evaluation_job = dg.define_asset_job(
            online_evaluation_job_name(spec.name),
            selection=dg.AssetSelection.assets(online_evaluation_key(stage)),
            tags=tags,
            description=f"Judge the active rollout of '{spec.name}' on live traffic.",
        )
        return dg.Definitions(
            assets=[
                *pipeline_assets(spec),
                *batch_prediction_assets(stage),
                *online_evaluation_assets(stage),
            ],
            jobs=[job, monitoring_job, online_job, online_evaluation_job],
            sensors=[
                new_data_sensor(stage, monitoring_job),
                online_evaluation_sensor(stage, online_evaluation_job),
                retrain_sensor(stage, job),
                freshness_alert_sensor(stage),
            ],
        )
