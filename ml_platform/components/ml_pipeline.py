"""The ML pipeline Component: one ``defs.yaml`` spec becomes one asset graph."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import BaseModel, ConfigDict

from ml_platform.components.assets import pipeline_assets
from ml_platform.components.feature_assets import online_key
from ml_platform.components.sensors import new_data_sensor
from ml_platform.spec import PipelineSpec, parse_spec


class _Attributes(BaseModel):
    # The spec is validated by PipelineSpec in `load`, which names the file and key on error.
    model_config = ConfigDict(extra="allow")


class MLPipelineComponent(dg.Component):
    """A declared ML pipeline: raw data to a gated, registered model version."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        return _Attributes

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext
             ) -> MLPipelineComponent:
        data = attributes.model_dump() if attributes is not None else {}
        path = Path(context.path)
        spec_dir = path if path.is_dir() else path.parent
        return cls(parse_spec(data, str(spec_dir / "defs.yaml"), spec_dir=spec_dir))

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        assets = pipeline_assets(self.spec)
        job = dg.define_asset_job(f"{self.spec.name}_training_job",
                                  # upstream(): a dbt feature model the spec reads is part
                                  # of the run too. The online store is not: serving
                                  # freshness has its own job and automation condition.
                                  selection=dg.AssetSelection.groups(self.spec.name).upstream()
                                  - dg.AssetSelection.assets(online_key(self.spec)),
                                  description=f"Raw data to registered model for "
                                  f"'{self.spec.name}'.")
        online_job = dg.define_asset_job(
            f"{self.spec.name}_online_job", selection=dg.AssetSelection.assets(
                online_key(self.spec)),
            description=f"Load the newest features of '{self.spec.name}' into the online store.")
        return dg.Definitions(assets=assets, jobs=[job, online_job],
                              sensors=[new_data_sensor(self.spec, job)])
