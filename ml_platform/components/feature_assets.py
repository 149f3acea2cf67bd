"""Feature assets: the feature table, the Feast registry, the online store and the training set."""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dagster as dg

from ml_platform.featurestore import registry
from ml_platform.pipeline import features, sidecar
from ml_platform.resources import PlatformResource
from ml_platform.spec import PipelineSpec


class OnlineWindow(dg.Config):
    """Optional window for online materialization (ISO 8601; naive times are UTC)."""

    start: str = ""
    end: str = ""


def _when(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def online_key(spec: PipelineSpec) -> dg.AssetKey:
    return dg.AssetKey(f"{spec.name}_online_features")


def feature_assets(spec: PipelineSpec, key: dict[str, dg.AssetKey], common: dict[str, Any]
                  ) -> list[dg.AssetsDefinition]:
    registry_key = dg.AssetKey(f"{spec.name}_feature_registry")
    online = online_key(spec)
    skew_check = dg.AssetCheckSpec(
        "online_matches_offline", asset=online,
        description="Sampled entities' online vectors equal their offline point-in-time vectors.")

    # A spec naming a dbt model reads it; the dbt asset (ml_platform/defs/dbt) sits upstream.
    upstream = [dg.AssetKey(spec.features.dbt_model)] if spec.features.dbt_model else []

    @dg.asset(key=key["features"], deps=[key["validated"], *upstream], kinds={"duckdb", "sql"},
              **common)
    def features_asset(platform: PlatformResource) -> dg.Output[dict]:
        """Features per entity and event time (windowed aggregates as of each event), from the
        spec's declared SQL or its dbt model: the offline table Feast serves from."""
        info = features.build_features(spec, platform.platform_home())
        return dg.Output(info.__dict__, data_version=dg.DataVersion(info.data_version),
                         metadata={"rows": info.rows, "columns": len(info.columns),
                                   "data_version": info.data_version,
                                   "path": dg.MetadataValue.path(info.path)})

    @dg.asset(key=registry_key, deps=[key["features"]], kinds={"feast"}, **common)
    def feature_registry_asset(platform: PlatformResource) -> dg.MaterializeResult:
        """`feast apply` of this pipeline's entity, feature view and current feature service
        (`<pipeline>_v<N>`, the train/serve contract); metadata records the registry state."""
        state = sidecar.call(registry.apply, spec, platform.platform_home())
        return dg.MaterializeResult(
            data_version=dg.DataVersion(state.fingerprint),
            metadata={"feast_apply": "applied" if state.applied else
                      "skipped: the registry already holds these objects",
                      "feature_service": state.service, "feature_view": state.feature_view,
                      "fingerprint": state.fingerprint, "features": len(state.features),
                      "registry": dg.MetadataValue.path(state.registry_path),
                      "feature_services": dg.MetadataValue.json(state.feature_services),
                      "feature_views": dg.MetadataValue.json(state.feature_views),
                      "entities": dg.MetadataValue.json(state.entities)})

    @dg.asset(key=key["training_set"], deps=[key["features"], registry_key],
              kinds={"duckdb", "parquet"}, **common)
    def training_set_asset(platform: PlatformResource) -> dg.Output[dict]:
        """Label rows joined point-in-time through the feature service (TTL respected); the
        data version hashes the rows and the feature service name."""
        info = features.build_training_set(spec, platform.platform_home())
        return dg.Output(info.__dict__, data_version=dg.DataVersion(info.data_version),
                         metadata={"rows": info.rows, "data_version": info.data_version,
                                   "feature_service": info.feature_service,
                                   "path": dg.MetadataValue.path(info.path)})

    # Eager: in `dagster dev` the online store follows every new feature table on its own,
    # outside the training job (serving freshness does not wait on training, nor it on this).
    @dg.asset(key=online, deps=[key["features"], registry_key], kinds={"feast", "sqlite"},
              automation_condition=dg.AutomationCondition.eager(),
              check_specs=[skew_check], **common)
    def online_features_asset(platform: PlatformResource, config: OnlineWindow
                              ) -> Iterator[Any]:
        """Latest feature vector per entity in the online store, loaded incrementally from the
        last watermark; an older window never overwrites newer online values."""
        home = platform.platform_home()
        result = registry.materialize(spec, home, _when(config.start), _when(config.end))
        report = registry.skew(spec, home, result.watermark)
        yield dg.Output(None, metadata={
            "window_start": result.start.isoformat(), "window_end": result.end.isoformat(),
            "watermark": result.watermark.isoformat(),
            "entities_in_window": result.entities_in_window, "written": result.written,
            "skipped_not_newer": result.skipped_not_newer})
        yield dg.AssetCheckResult(
            check_name="online_matches_offline", passed=report.passed,
            metadata={"entities_checked": report.checked, "mismatches": len(report.mismatches),
                      "as_of": report.as_of.isoformat(), "feature_service": report.service,
                      "first_mismatches": dg.MetadataValue.json(report.mismatches[:10])})

    return [features_asset, feature_registry_asset, training_set_asset, online_features_asset]
