"""The training set comes from Feast's get_historical_features through the feature service:
no leakage, Feast's TTL (both edges), late rows, ties, timezones; the rows Feast reads are this
run's feature table; the registry's service must be this run's contract."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_platform.features import registry, source
from ml_platform.features.definitions import feature_service
from ml_platform.features.offline import ContractMismatch
from ml_platform.features.tables import TableInfo, build_training_set
from ml_platform.home import PlatformHome
from ml_platform.spec import PipelineSpec
from ml_platform_tests.features.helpers import (
    T0,
    feature_rows,
    history,
    publish_features,
    tiny_spec,
)

KEY, TS, LABEL = "user_id", "ts", "bought"


def _labels(
    tmp_path: Path, rows: list[tuple[int, pd.Timestamp, int]], name: str = "validated.parquet"
) -> Path:
    path = tmp_path / name
    pd.DataFrame(
        {KEY: [r[0] for r in rows], TS: [r[1] for r in rows], LABEL: [r[2] for r in rows]}
    ).to_parquet(path, index=False)
    return path


def _setup(
    home: PlatformHome, features: pd.DataFrame, ttl: str | None = None
) -> tuple[PipelineSpec, TableInfo]:
    spec = tiny_spec(**({"ttl": ttl} if ttl else {}))
    info = publish_features(spec, home, features)
    registry.apply(spec, home)
    return spec, info


def _train(spec: PipelineSpec, home: PlatformHome, labels: Path, info: TableInfo) -> pd.DataFrame:
    out = build_training_set(spec, home, labels, info)
    return pd.read_parquet(out.path)


def _epoch(ts: pd.Series) -> np.ndarray:
    return (pd.to_datetime(ts, utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()


def _random(rng: np.random.Generator, n: int, keys: int) -> pd.DataFrame:
    base = pd.Timestamp("2026-01-01", tz="UTC")
    return pd.DataFrame(
        {
            KEY: rng.integers(0, keys, n),
            TS: base + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
        }
    )


def test_rows_stamped_after_label_time_never_leak(home: PlatformHome, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    labels = _random(rng, 400, 30).assign(**{LABEL: 1})
    honest = _random(rng, 1_000, 30)
    # Poison: for every label row, a row of its entity stamped 1 s to 1 h after its label time.
    after = pd.to_timedelta(rng.integers(1, 3_600, len(labels)), unit="s")
    poison = pd.DataFrame({KEY: labels[KEY], TS: labels[TS] + after})
    feats = pd.concat([honest, poison]).drop_duplicates([KEY, TS])
    # Each feature value is its own stamp, so a joined value shows when its row was stamped.
    feats = feats.assign(spend=_epoch(feats[TS]), tier="a", visits_7d=1)
    spec, info = _setup(home, feats)
    labels.to_parquet(tmp_path / "l.parquet", index=False)
    out = _train(spec, home, tmp_path / "l.parquet", info)
    assert len(out) == len(labels)
    seen = out.dropna(subset=["spend"])
    assert len(seen) > 300
    assert (seen["spend"].to_numpy() <= _epoch(seen[TS])).all()


def test_feast_ttl_edges_late_rows_and_exact_times(home: PlatformHome, tmp_path: Path) -> None:
    hour = pd.Timedelta(hours=1)
    feats = feature_rows(
        [
            (1, T0 - 3 * hour, 10.0, "a", 1),  # exactly the TTL old at T0: still fresh
            (2, T0 - 3 * hour - pd.Timedelta(seconds=1), 20.0, "b", 2),  # 1 s past the TTL
            (3, T0, 30.0, "c", 3),  # stamped exactly at label time: used
            (4, T0 + pd.Timedelta(seconds=1), 40.0, "d", 4),  # 1 s after: never
            (5, T0 - 5 * hour, 50.0, "e", 5),  # expired ...
        ]
    )
    # ... and a late row for entity 5 (an earlier event, landed after the others): used.
    feats = pd.concat([feats, feature_rows([(5, T0 - hour, 55.0, "e", 6)])])
    spec, info = _setup(home, feats, ttl="3h")
    labels = _labels(tmp_path, [(k, T0, 0) for k in (1, 2, 3, 4, 5)])
    out = _train(spec, home, labels, info).set_index(KEY)
    assert out.loc[1, "spend"] == 10.0 and out.loc[1, "tier"] == "a"
    assert np.isnan(out.loc[2, "spend"]) and out.loc[2, "tier"] is None
    assert out.loc[3, "spend"] == 30.0
    assert np.isnan(out.loc[4, "spend"])
    assert out.loc[5, "spend"] == 55.0 and out.loc[5, "visits_7d"] == 6


def test_ties_pick_one_tied_row_and_tied_labels_keep_their_own(
    home: PlatformHome, tmp_path: Path
) -> None:
    # Two feature rows of one entity at one time: Feast keeps one of them (no tie-break without
    # a created timestamp); we only promise it is one of the two, the same for both labels.
    feats = feature_rows(
        [(1, T0 - pd.Timedelta(hours=1), 1.0, "x", 1), (1, T0 - pd.Timedelta(hours=1), 2.0, "y", 2)]
    )
    spec, info = _setup(home, feats)
    labels = _labels(tmp_path, [(1, T0, 0), (1, T0, 1)])
    out = _train(spec, home, labels, info)
    assert out[LABEL].tolist() == [0, 1]  # both label rows, each with its own label, in order
    assert out["spend"].nunique() == 1 and out["spend"].iloc[0] in (1.0, 2.0)
    picked = {1.0: ("x", 1), 2.0: ("y", 2)}[out["spend"].iloc[0]]
    assert (out.iloc[0]["tier"], out.iloc[0]["visits_7d"]) == picked  # a whole row, not a mix


@pytest.mark.parametrize("label_tz", [None, "UTC", "America/New_York", "Asia/Kolkata"])
def test_naive_and_aware_label_times_give_identical_training_sets(
    home: PlatformHome, tmp_path: Path, label_tz: str | None
) -> None:
    feats = feature_rows(
        [
            (1, T0 - pd.Timedelta(minutes=30), 3.0, "a", 1),
            (1, T0 + pd.Timedelta(hours=12), 4.0, "a", 2),
            (2, T0 + pd.Timedelta(days=2), 9.0, "b", 1),
        ]
    )
    spec, info = _setup(home, feats)
    times = pd.DatetimeIndex([T0, T0 + pd.Timedelta(days=1), T0 + pd.Timedelta(days=2)])
    local = times.tz_localize(None) if label_tz is None else times.tz_convert(label_tz)
    reference = _train(
        spec,
        home,
        _labels(tmp_path, list(zip([1, 1, 2], times, [0, 1, 1], strict=True)), "utc.parquet"),
        info,
    )
    other = _train(
        spec,
        home,
        _labels(tmp_path, list(zip([1, 1, 2], local, [0, 1, 1], strict=True)), "local.parquet"),
        info,
    )
    pd.testing.assert_frame_equal(other, reference)
    assert reference["spend"].tolist() == [3.0, 4.0, 9.0]
    assert str(reference[TS].dt.tz) == "UTC"


def test_matches_an_independent_point_in_time_reference_with_ttl(
    home: PlatformHome, tmp_path: Path
) -> None:
    """pandas merge_asof with the TTL as tolerance (both edges included) on random data."""
    rng = np.random.default_rng(3)
    feats = _random(rng, 3_000, 50).drop_duplicates([KEY, TS])
    feats = feats.assign(spend=rng.random(len(feats)), tier="t", visits_7d=1)
    labels = _random(rng, 800, 60).assign(**{LABEL: rng.integers(0, 2, 800)})
    spec, info = _setup(home, feats, ttl="12h")
    labels.to_parquet(tmp_path / "l.parquet", index=False)
    out = _train(spec, home, tmp_path / "l.parquet", info)
    expected = pd.merge_asof(
        labels.sort_values(TS),
        feats.sort_values(TS)[[KEY, TS, "spend"]],
        on=TS,
        by=KEY,
        direction="backward",
        tolerance=pd.Timedelta(hours=12),
    )
    expected = expected.sort_values([TS, KEY], kind="stable").reset_index(drop=True)
    assert out[TS].equals(pd.Series(expected[TS].to_numpy(), name=TS).astype(out[TS].dtype))
    np.testing.assert_allclose(out["spend"].to_numpy(), expected["spend"].to_numpy())
    assert out[LABEL].tolist() == expected[LABEL].tolist()
    assert out["spend"].isna().sum() > 50  # the TTL did expire rows


def test_same_rows_give_the_same_training_set_version(home: PlatformHome, tmp_path: Path) -> None:
    spec, info = _setup(home, history(days=5, users=8))
    labels = _labels(
        tmp_path,
        [(u, T0 + pd.Timedelta(days=d, hours=6), d % 2) for d in range(5) for u in (8, 3, 5)],
    )
    first = build_training_set(spec, home, labels, info)
    second = build_training_set(spec, home, labels, info)
    assert first.data_version == second.data_version and first.path == second.path
    assert first.feature_service == "shop_v1"
    frame = pd.read_parquet(first.path)
    assert frame.columns.tolist() == [KEY, TS, *spec.features.all_columns, LABEL]
    assert frame.equals(frame.sort_values([TS, KEY], kind="stable").reset_index(drop=True))


def test_another_run_replacing_the_source_fails_the_training_set(
    home: PlatformHome, tmp_path: Path
) -> None:
    spec, mine = _setup(home, history(days=3, users=4))
    labels = _labels(tmp_path, [(1, T0 + pd.Timedelta(days=2), 1)])
    # Another run of the pipeline publishes its (different) features after ours.
    theirs = publish_features(spec, home, history(days=3, users=4).assign(spend=0.0))
    with pytest.raises(
        source.SourceReplaced,
        match=r"another run of 'shop' published .* "
        r"re-run from 'shop_features'",
    ):
        build_training_set(spec, home, labels, mine)
    assert _train(spec, home, labels, theirs)["spend"].tolist() == [0.0]
    # The same bytes published again by another run: still this run's rows, so it passes.
    again = publish_features(spec, home, history(days=3, users=4))
    assert again.source_stamp != mine.source_stamp
    assert _train(spec, home, labels, mine)["spend"].tolist() == [101.0]


def test_registry_must_hold_this_runs_contract(home: PlatformHome, tmp_path: Path) -> None:
    from ml_platform.features.feast_objects import feature_store, service_objects

    spec = tiny_spec()
    info = publish_features(spec, home, history(days=2, users=2))
    labels = _labels(tmp_path, [(1, T0 + pd.Timedelta(days=1), 1)])
    with pytest.raises(ContractMismatch, match="'shop_v1' is not in the Feast registry"):
        build_training_set(spec, home, labels, info)
    # `feast apply` run with another home: the view reads another file.
    service = feature_service(spec, home)
    elsewhere = dataclasses.replace(
        service, view=dataclasses.replace(service.view, source_path="/elsewhere/features.parquet")
    )
    feature_store(home).apply(service_objects(elsewhere, spec.name))
    with pytest.raises(ContractMismatch, match="reads /elsewhere/features.parquet"):
        build_training_set(spec, home, labels, info)
