"""Online materialization (incremental, idempotent, never rolling back) and the skew check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from ml_platform.features import online, registry
from ml_platform.features.definitions import feature_service
from ml_platform.home import PlatformHome
from ml_platform_tests.features.helpers import T0, history, tiny_spec, write_features

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _online(home: PlatformHome, users: list[int]) -> pd.DataFrame:
    from ml_platform.features.feast_objects import feature_store

    spec = tiny_spec()
    store = feature_store(home)
    service = store.get_feature_service(feature_service(spec, home, register=False).name)
    rows = [{"user_id": u} for u in users]
    return store.get_online_features(features=service, entity_rows=rows).to_df()


def test_incremental_materialization_never_rolls_back(home: PlatformHome) -> None:
    spec = tiny_spec()
    write_features(spec, home, history(days=10, users=20))
    registry.apply(spec, home)
    mid = T0.to_pydatetime() + timedelta(days=5)

    first = registry.materialize(spec, home, end=mid)
    assert (first.entities_in_window, first.written) == (20, 20)
    assert set(_online(home, [1, 2])["spend"]) == {104.0, 204.0}  # day 4 is the last before mid

    # Incremental: starts at the watermark, brings the newest day online.
    second = online.materialize(feature_service(spec, home), home, now=NOW)
    assert second.start == mid and second.written == 20
    newest = _online(home, list(range(1, 21)))
    assert newest["spend"].tolist() == [float(u * 100 + 9) for u in range(1, 21)]

    # An older window again: everything in it is older than what is online, nothing changes.
    again = registry.materialize(spec, home, start=T0.to_pydatetime(), end=mid)
    assert (again.written, again.skipped_not_newer) == (0, 20)
    assert again.watermark == second.watermark
    pd.testing.assert_frame_equal(_online(home, list(range(1, 21))), newest)

    # Idempotent: the same newest window again writes the same values.
    online.materialize(feature_service(spec, home), home, start=mid, end=NOW, now=NOW)
    pd.testing.assert_frame_equal(_online(home, list(range(1, 21))), newest)

    report = registry.skew(spec, home, second.watermark, sample=10)
    assert report.passed and report.checked == 10


def test_future_end_and_empty_window_are_refused(home: PlatformHome) -> None:
    spec = tiny_spec()
    write_features(spec, home, history(days=2, users=3))
    registry.apply(spec, home)
    service = feature_service(spec, home)
    with pytest.raises(ValueError, match="in the future"):
        online.materialize(service, home, end=NOW + timedelta(seconds=1), now=NOW)
    with pytest.raises(ValueError, match="empty materialization window"):
        online.materialize(service, home, start=NOW, end=NOW, now=NOW)


def test_skew_check_catches_an_online_value_that_differs(home: PlatformHome) -> None:
    from ml_platform.features.feast_objects import feature_store

    spec = tiny_spec()
    frame = history(days=3, users=5)
    write_features(spec, home, frame)
    registry.apply(spec, home)
    result = registry.materialize(spec, home, end=NOW)
    assert registry.skew(spec, home, result.watermark).passed
    # Serving drifts from the offline table: one entity's latest row is rewritten online.
    tampered = frame[frame["user_id"] == 2].tail(1).assign(spend=-1.0)
    feature_store(home).write_to_online_store("shop_fv", tampered)
    report = registry.skew(spec, home, result.watermark)
    assert not report.passed
    assert report.mismatches == [{"entity": 2, "feature": "spend", "offline": 202.0,
                                  "online": -1.0}]


def test_skew_respects_ttl_on_both_sides(home: PlatformHome) -> None:
    spec = tiny_spec(ttl="1d")
    write_features(spec, home, history(days=3, users=4))
    registry.apply(spec, home)
    result = registry.materialize(spec, home, end=NOW)
    # A month after the last rows, offline TTL says "missing": serving must agree.
    report = registry.skew(spec, home, result.watermark)
    assert report.checked == 4
    assert report.passed, report.mismatches[:3]


def test_a_new_feature_contract_reloads_every_entity(home: PlatformHome) -> None:
    spec = tiny_spec()
    write_features(spec, home, history(days=4, users=6))
    registry.apply(spec, home)
    registry.materialize(spec, home, end=NOW - timedelta(days=1))
    unchanged = registry.materialize(spec, home, end=NOW)
    assert unchanged.entities_in_window == 0  # nothing new since the watermark

    changed = tiny_spec(ttl="90d")  # a new contract: shop_v2
    registry.apply(changed, home)
    result = registry.materialize(changed, home, end=NOW)
    assert result.start == online.EPOCH and result.entities_in_window == 6
    assert registry.skew(changed, home, result.watermark).passed


def test_apply_is_skipped_only_while_objects_and_registry_are_unchanged(
        home: PlatformHome, monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_platform.features import feast_objects

    spec = tiny_spec()
    write_features(spec, home, history(days=3, users=4))
    first = registry.apply(spec, home)
    assert first.applied and first.feature_services == ["shop_v1"]

    calls: list[str] = []
    real = feast_objects.feature_store
    monkeypatch.setattr(feast_objects, "feature_store",
                        lambda h: calls.append("apply") or real(h))
    again = registry.apply(spec, home)
    assert not again.applied and calls == []  # Feast not touched
    assert {**again.__dict__, "applied": True} == first.__dict__

    # Another writer changed the registry (here an online load records its interval).
    registry.materialize(spec, home, end=T0.to_pydatetime() + timedelta(days=2))
    calls.clear()
    assert registry.apply(spec, home).applied and calls == ["apply"]
    assert not registry.apply(spec, home).applied

    # A changed feature contract is applied as a new service version.
    changed = tiny_spec(ttl="2d")
    state = registry.apply(changed, home)
    assert state.applied and state.service == "shop_v2"
    assert state.feature_services == ["shop_v1", "shop_v2"]
