"""dbt feature models: loaded as assets with tests as checks, upstream of a pipeline's features;
the dbt model and the spec's declared SQL give the same feature table."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_platform.home import PlatformHome
from ml_platform.spec import PipelineSpec


def _dbt_defs() -> dg.AssetsDefinition:
    from ml_platform.defs.dbt.assets import dbt_feature_models

    return dbt_feature_models


def test_dbt_models_are_assets_downstream_of_validated_with_tests_as_checks() -> None:
    assets = _dbt_defs()
    keys = {k.to_user_string() for k in assets.keys}
    assert {"stg_loan_applications", "loan_default_customer_features"} <= keys
    stg = dg.AssetKey("stg_loan_applications")
    assert dg.AssetKey("loan_default_validated") in assets.asset_deps[stg]
    checks = {c.name for c in assets.check_specs}
    assert "loan_default_windows_nest" in checks
    assert "not_null_stg_loan_applications_customer_id" in checks


def test_spec_with_dbt_model_puts_it_upstream_of_features(demo_spec: PipelineSpec) -> None:
    from ml_platform.components.assets import pipeline_assets

    spec = _with_dbt(demo_spec)
    features = next(
        a for a in pipeline_assets(spec) if dg.AssetKey("loan_default_features") in a.keys
    )
    deps = features.asset_deps[dg.AssetKey("loan_default_features")]
    assert dg.AssetKey("loan_default_customer_features") in deps


def _with_dbt(spec: PipelineSpec) -> PipelineSpec:
    feats = spec.features.model_copy(update={"dbt_model": "loan_default_customer_features"})
    return spec.model_copy(update={"features": feats})


@pytest.mark.slow
def test_dbt_model_and_declared_sql_give_the_same_features(
    home: PlatformHome, landed: list[Path]
) -> None:
    from ml_platform.features.sql import compute_features
    from ml_platform_tests.helpers import materialize, small_spec

    result = materialize(small_spec(dbt=True), home, selection="*loan_default_features")
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) >= 8 and all(c.passed for c in checks)
    from_dbt = pd.read_parquet(result.output_for_node("loan_default_features")["path"])
    validated = result.output_for_node("loan_default_validated")["path"]
    declared = compute_features(small_spec(), Path(validated))
    pd.testing.assert_frame_equal(from_dbt, declared, check_dtype=False)
