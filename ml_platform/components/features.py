"""Feature wiring: the feature table, the Feast registry, the training set and the online store."""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ml_platform.components.common import Stage
from ml_platform.features import registry, tables
from ml_platform.resources import PlatformResource


class OnlineWindow(dg.Config):
    """Optional window for online materialization (ISO 8601; naive times are UTC)."""

    start: str = ""
    end: str = ""


def _when(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def online_key(stage: Stage) -> dg.AssetKey:
    return dg.AssetKey(f"{stage.spec.name}_online_features")


def registry_key(stage: Stage) -> dg.AssetKey:
    return dg.AssetKey(f"{stage.spec.name}_feature_registry")


def feature_assets(stage: Stage) -> list[dg.AssetsDefinition]:
    spec, key = stage.spec, stage.key
    online = online_key(stage)
    skew_check = dg.AssetCheckSpec(
        "online_matches_offline",
        asset=online,
        description="Sampled entities' online vectors (Feast online store, TTL applied) equal "
        "Feast's offline point-in-time rows for the same entity and time.",
    )
    # A spec naming a dbt model reads it; the dbt asset (ml_platform/defs/dbt) sits upstream.
    upstream = [dg.AssetKey(spec.features.dbt_model)] if spec.features.dbt_model else []

    @dg.asset(
        ins={"validated": dg.AssetIn(key["validated"])},
        deps=upstream,
        kinds={"duckdb", "sql"},
        **stage.common("features"),
    )
    def features(
        context: dg.AssetExecutionContext, platform: PlatformResource, validated: dict
    ) -> dg.Output[dict]:
        """Features per entity and event time (windowed aggregates as of each event), from the
        spec's declared SQL or its dbt model over this run's validated batch; also published
        as the Feast source the online store loads from."""
        info = tables.build_features(
            spec, platform.platform_home(), Path(validated["path"]), run_id=context.run.run_id
        )
        return dg.Output(
            info.to_dict(),
            data_version=dg.DataVersion(info.data_version),
            metadata={
                "rows": info.rows,
                "columns": len(info.columns),
                "data_version": info.data_version,
                "path": dg.MetadataValue.path(info.path),
            },
        )

    @dg.asset(
        key=registry_key(stage),
        deps=[key["features"]],
        kinds={"feast"},
        group_name=spec.name,
        owners=stage.owners,
        tags=stage.tags,
        code_version=stage.code_version,
        pool=stage.pool,
    )
    def feature_registry(platform: PlatformResource) -> dg.MaterializeResult:
        """`feast apply` of this pipeline's entity, feature view and current feature service
        (`<pipeline>_v<N>`, the train/serve contract); metadata records the registry state."""
        state = registry.apply(spec, platform.platform_home())
        return dg.MaterializeResult(
            data_version=dg.DataVersion(state.fingerprint),
            metadata={
                "feast_apply": "applied"
                if state.applied
                else "skipped: the registry already holds these objects",
                "feature_service": state.service,
                "feature_view": state.feature_view,
                "fingerprint": state.fingerprint,
                "features": len(state.features),
                "registry": dg.MetadataValue.path(state.registry_path),
                "feature_services": dg.MetadataValue.json(state.feature_services),
                "feature_views": dg.MetadataValue.json(state.feature_views),
                "entities": dg.MetadataValue.json(state.entities),
            },
        )

    @dg.asset(
        ins={"validated": dg.AssetIn(key["validated"]), "features": dg.AssetIn(key["features"])},
        deps=[registry_key(stage)],
        kinds={"feast", "duckdb", "parquet"},
        **stage.common("training_set"),
    )
    def training_set(
        platform: PlatformResource, validated: dict, features: dict
    ) -> dg.Output[dict]:
        """This run's validated rows at their label time, each feature as of that time, from
        Feast's `get_historical_features` with the feature service `<pipeline>_v<N>` (Feast's
        point-in-time and TTL rules), read while the Feast source holds this run's feature
        table; the data version hashes the rows and the feature service."""
        info = tables.build_training_set(
            spec, platform.platform_home(), Path(validated["path"]), tables.TableInfo(**features)
        )
        return dg.Output(
            info.to_dict(),
            data_version=dg.DataVersion(info.data_version),
            metadata={
                "rows": info.rows,
                "data_version": info.data_version,
                "feature_service": info.feature_service,
                "path": dg.MetadataValue.path(info.path),
            },
        )

    # Eager: in `dagster dev` the online store follows every new feature table on its own,
    # outside the training job (serving freshness does not wait on training, nor it on this).
    @dg.asset(
        key=online,
        deps=[key["features"], registry_key(stage)],
        kinds={"feast", "sqlite"},
        automation_condition=dg.AutomationCondition.eager(),
        check_specs=[skew_check],
        group_name=spec.name,
        owners=stage.owners,
        tags=stage.tags,
        code_version=stage.code_version,
        pool=stage.pool,
    )
    def online_features(platform: PlatformResource, config: OnlineWindow) -> Iterator[Any]:
        """Latest feature vector per entity in the online store, loaded with Feast's
        `materialize` incrementally from the last watermark; an older window never overwrites
        newer online values."""
        home = platform.platform_home()
        result = registry.materialize(spec, home, _when(config.start), _when(config.end))
        report = registry.skew(spec, home, result.watermark)
        yield dg.MaterializeResult(
            metadata={
                "window_start": result.start.isoformat(),
                "window_end": result.end.isoformat(),
                "watermark": result.watermark.isoformat(),
                "entities_in_window": result.entities_in_window,
                "written": result.written,
                "skipped_not_newer": result.skipped_not_newer,
                "loaded_via": result.via,
            }
        )
        yield dg.AssetCheckResult(
            check_name="online_matches_offline",
            passed=report.passed,
            metadata={
                "entities_checked": report.checked,
                "mismatches": len(report.mismatches),
                "as_of": report.as_of.isoformat(),
                "feature_service": report.service,
                "first_mismatches": dg.MetadataValue.json(report.mismatches[:10]),
            },
        )

    return [features, feature_registry, training_set, online_features]
