"""Feature definitions: versioned feature services, types, and the Feast repo configuration."""

from __future__ import annotations

import os

import pytest
import yaml

from ml_platform.features.definitions import feature_service, fingerprint, view_def
from ml_platform.home import PROJECT_ROOT, PlatformHome
from ml_platform.spec import SpecError
from ml_platform_tests.features.helpers import history, tiny_spec, write_features


def test_same_contract_keeps_its_service_name_and_a_change_gets_a_new_one(
    home: PlatformHome,
) -> None:
    spec = tiny_spec()
    write_features(spec, home, history())
    first = feature_service(spec, home)
    assert first.name == "shop_v1"
    assert feature_service(spec, home).name == "shop_v1"
    with_ttl = tiny_spec(ttl="30d")
    assert feature_service(with_ttl, home).name == "shop_v2"
    # Going back to the first contract resolves to its original name.
    assert feature_service(spec, home).name == "shop_v1"


def test_reading_without_register_assigns_no_version(home: PlatformHome) -> None:
    spec = tiny_spec()
    assert feature_service(spec, home, register=False).name == "shop_v1"
    assert feature_service(tiny_spec(ttl="1d"), home, register=False).name == "shop_v1"


def test_types_come_from_the_feature_table(home: PlatformHome) -> None:
    spec = tiny_spec()
    declared = {f.name: f.dtype for f in view_def(spec, home).fields}
    assert declared == {"spend": "float64", "visits_7d": "int64", "tier": "string"}
    write_features(spec, home, history().assign(spend=lambda f: f["spend"].astype("int64")))
    view = view_def(spec, home)
    assert {f.name: f.dtype for f in view.fields}["spend"] == "int64"
    assert fingerprint(view) != fingerprint(view_def(spec, PlatformHome(home.root / "none")))


def test_unservable_feature_type_is_named(home: PlatformHome) -> None:
    spec = tiny_spec()
    frame = history().assign(spend=lambda f: f["spend"].map(lambda v: [v]))
    write_features(spec, home, frame)
    with pytest.raises(ValueError, match="'spend'"):
        view_def(spec, home)


def test_missing_feature_column_is_named(home: PlatformHome) -> None:
    spec = tiny_spec()
    write_features(spec, home, history().drop(columns=["tier"]))
    with pytest.raises(ValueError, match="no column 'tier'"):
        view_def(spec, home)


def test_bad_ttl_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="ttl"):
        tiny_spec(ttl="30 days")
    assert tiny_spec(ttl="12h").features.ttl_seconds == 12 * 3600


def test_feature_store_yaml_matches_the_programmatic_config(home: PlatformHome) -> None:
    from ml_platform.features.feast_objects import repo_config

    text = (PROJECT_ROOT / "feature_repo" / "feature_store.yaml").read_text()
    expanded = yaml.safe_load(os.path.expandvars(text))
    config = repo_config(home)
    assert expanded["project"] == config.project
    assert expanded["registry"]["path"] == config.registry.path
    assert expanded["online_store"]["path"] == config.online_store.path
    assert expanded["offline_store"]["type"] == config.offline_store.type
    assert expanded["entity_key_serialization_version"] == config.entity_key_serialization_version


def test_float_entity_key_is_refused_by_name(home: PlatformHome) -> None:
    spec = tiny_spec()
    write_features(spec, home, history().assign(user_id=lambda f: f["user_id"] * 1.5))
    with pytest.raises(ValueError, match="entity key 'user_id'"):
        view_def(spec, home)
