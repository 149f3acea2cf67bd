"""Feature and training-set assets."""

from typing import Any

import dagster as dg

from ml_platform.pipeline import features
from ml_platform.resources import PlatformResource
from ml_platform.spec import PipelineSpec


def feature_assets(spec: PipelineSpec, key: dict[str, dg.AssetKey], common: dict[str, Any]
                  ) -> list[dg.AssetsDefinition]:

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

    return [features_asset, training_set_asset]
