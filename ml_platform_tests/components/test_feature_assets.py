"""The feature assets through Dagster on real local backends (Feast file registry, SQLite)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_platform.home import PlatformHome
from ml_platform.spec import PipelineSpec
from ml_platform_tests.helpers import materialize

SELECTION = "+key:loan_default_training_set or +key:loan_default_online_features"


def _metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    mats = result.asset_materializations_for_node(key)
    assert mats, f"{key} was not materialized"
    return {k: v.value for k, v in mats[-1].metadata.items()}


@pytest.mark.slow
def test_feature_assets_materialize_and_online_matches_offline(
    demo_spec: PipelineSpec, home: PlatformHome, landed: list[Path]
) -> None:
    result = materialize(demo_spec, home, selection=SELECTION)
    assert result.success
    reg = _metadata(result, "loan_default_feature_registry")
    assert reg["feature_service"] == "loan_default_v1"
    assert "loan_default_fv" in reg["feature_views"]
    tset = _metadata(result, "loan_default_training_set")
    assert tset["feature_service"] == "loan_default_v1"
    frame = pd.read_parquet(result.output_for_node("loan_default_training_set")["path"])
    assert set(demo_spec.features.all_columns) <= set(frame.columns)
    assert len(frame) == tset["rows"]
    _assert_feast_gives_the_same_rows(
        demo_spec, home, frame, result.output_for_node("loan_default_validated")["path"]
    )
    online = _metadata(result, "loan_default_online_features")
    assert online["written"] > 0
    checks = result.get_asset_check_evaluations()
    skew = [c for c in checks if c.check_name == "online_matches_offline"]
    assert skew and skew[0].passed and skew[0].metadata["entities_checked"].value == 50

    # A second run: same data, same contract, same training set version; nothing new online.
    again = materialize(demo_spec, home, selection=SELECTION)
    assert again.success
    assert _metadata(again, "loan_default_training_set")["data_version"] == tset["data_version"]
    # Nothing new since the watermark (a row stamped exactly at it may be loaded again: Feast's
    # window includes both ends); a forward window goes to Feast's materialize as is.
    online_again = _metadata(again, "loan_default_online_features")
    assert online_again["entities_in_window"] <= 1
    assert online_again["loaded_via"] == "feast materialize"


def _assert_feast_gives_the_same_rows(
    spec: PipelineSpec, home: PlatformHome, frame: pd.DataFrame, validated: str
) -> None:
    """What a user gets from Feast by hand, with the same feature service, is the training set."""
    from ml_platform.features.feast_objects import feature_store

    store = feature_store(home)
    key, ts = spec.entity_key, spec.event_timestamp
    entities = pd.read_parquet(validated, columns=[key, ts, spec.label])
    direct = store.get_historical_features(
        entity_df=entities, features=store.get_feature_service("loan_default_v1")
    ).to_df()
    direct = direct.sort_values([ts, key, spec.label], kind="stable").reset_index(drop=True)
    ours = frame.sort_values([ts, key, spec.label], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, direct[ours.columns], check_dtype=False)
