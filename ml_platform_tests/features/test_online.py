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
    assert (first.entities_in_window, first.written, first.via) == (20, 20, "feast materialize")
    assert set(_online(home, [1, 2])["spend"]) == {104.0, 204.0}  # day 4 is the last before mid

    # Incremental: starts at the watermark, brings the newest day online.
    second = online.materialize(feature_service(spec, home), home, now=NOW)
    assert second.start == mid and second.written == 20 and second.via == "feast materialize"
    newest = _online(home, list(range(1, 21)))
    assert newest["spend"].tolist() == [float(u * 100 + 9) for u in range(1, 21)]

    # An older window again: everything in it is older than what is online, nothing changes.
    again = registry.materialize(spec, home, start=T0.to_pydatetime(), end=mid)
    pd.testing.assert_frame_equal(_online(home, list(range(1, 21))), newest)
    assert (again.written, again.skipped_not_newer, again.via) == (0, 20, "guarded write")
    assert again.watermark == second.watermark

    # Idempotent: the same newest window again writes the same values (through Feast: no row
    # in it is older than what is online).
    rerun = online.materialize(feature_service(spec, home), home, start=mid, end=NOW, now=NOW)
    assert rerun.via == "feast materialize"
    pd.testing.assert_frame_equal(_online(home, list(range(1, 21))), newest)

    report = registry.skew(spec, home, second.watermark, sample=10)
    assert report.passed and report.checked == 10


def test_feast_materialize_alone_would_roll_serving_back(home: PlatformHome) -> None:
    """Why the guard exists: Feast's SQLite online store upserts whatever a window holds. If
    this starts failing, Feast guards on its own and our guard can go."""
    from ml_platform.features.feast_objects import feature_store

    spec = tiny_spec()
    write_features(spec, home, history(days=10, users=3))
    registry.apply(spec, home)
    store, mid = feature_store(home), T0.to_pydatetime() + timedelta(days=5)
    store.materialize(mid, NOW, feature_views=["shop_fv"])
    assert _online(home, [1])["spend"].tolist() == [109.0]
    store.materialize(T0.to_pydatetime(), mid, feature_views=["shop_fv"])
    assert _online(home, [1])["spend"].tolist() == [104.0]  # rolled back


def test_older_window_writes_only_entities_with_nothing_newer_online(home: PlatformHome) -> None:
    spec = tiny_spec()
    mid = T0 + pd.Timedelta(days=5)
    late_user = history(days=3, users=21).query("user_id == 21")  # rows only before mid
    write_features(spec, home, pd.concat([history(days=10, users=20), late_user]))
    registry.apply(spec, home)
    service = feature_service(spec, home)
    newer = online.materialize(service, home, start=mid.to_pydatetime(), end=NOW, now=NOW)
    assert newer.entities_in_window == 20
    before = _online(home, list(range(1, 22)))
    assert before["spend"].isna().tolist() == [False] * 20 + [True]

    older = online.materialize(
        service, home, start=T0.to_pydatetime(), end=mid.to_pydatetime(), now=NOW
    )
    after = _online(home, list(range(1, 22)))
    pd.testing.assert_frame_equal(after.iloc[:20], before.iloc[:20], check_dtype=False)
    assert after["spend"].iloc[20] == 21 * 100 + 2.0
    assert (older.via, older.written, older.skipped_not_newer) == ("guarded write", 1, 20)


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
    assert report.mismatches == [
        {
            "entity": 2,
            "feature": "spend",
            "offline": 202.0,
            "online": -1.0,
            "online_event_time": "2026-02-03T02:00:00+00:00",
        }
    ]


def test_skew_check_catches_a_stale_online_row(home: PlatformHome) -> None:
    from ml_platform.features.feast_objects import feature_store

    spec = tiny_spec()
    frame = history(days=3, users=5)
    write_features(spec, home, frame)
    registry.apply(spec, home)
    result = registry.materialize(spec, home, end=NOW)
    # Serving holds an older row for entity 4 (e.g. a write that bypassed the guard).
    stale = frame[frame["user_id"] == 4].head(1)
    feature_store(home).write_to_online_store("shop_fv", stale)
    report = registry.skew(spec, home, result.watermark)
    assert {(m["entity"], m["feature"], m["offline"], m["online"]) for m in report.mismatches} == {
        (4, "spend", 402.0, 400.0),
        (4, "visits_7d", 3, 1),
    }
    assert report.mismatches[0]["online_event_time"] == "2026-02-01T04:00:00+00:00"


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
    # It reaches back over loaded rows, so it was checked; none is newer online: Feast loads it.
    assert result.via == "feast materialize" and result.written == 6
    assert registry.skew(changed, home, result.watermark).passed


def test_apply_is_skipped_only_while_objects_and_registry_are_unchanged(
    home: PlatformHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml_platform.features import feast_objects

    spec = tiny_spec()
    write_features(spec, home, history(days=3, users=4))
    first = registry.apply(spec, home)
    assert first.applied and first.feature_services == ["shop_v1"]

    calls: list[str] = []
    real = feast_objects.feature_store
    monkeypatch.setattr(feast_objects, "feature_store", lambda h: calls.append("apply") or real(h))
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
