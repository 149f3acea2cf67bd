"""Point-in-time join: no leakage, TTL, late rows, timezones; and the training-set stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_platform.features.sql import point_in_time_join

KEY, TS = "customer_id", "event_time"
T0 = pd.Timestamp("2026-03-01 12:00", tz="UTC")


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False)
    return path


def _labels(tmp_path: Path, tz: str | None = "UTC") -> Path:
    times = [T0, T0 + pd.Timedelta(days=1), T0 + pd.Timedelta(days=2)]
    ts = pd.DatetimeIndex(times)
    ts = ts.tz_convert("UTC").tz_localize(None) if tz is None else ts.tz_convert(tz)
    return _write(pd.DataFrame({KEY: [1, 1, 2], TS: ts, "label": [0, 1, 1]}),
                  tmp_path / f"labels_{tz}.parquet".replace("/", "_"))


def _features(rows: list[tuple[int, pd.Timestamp, float]], path: Path) -> Path:
    return _write(pd.DataFrame({KEY: [r[0] for r in rows], TS: [r[1] for r in rows],
                                "spend": [r[2] for r in rows]}), path)


def _join(labels: Path, features: Path, ttl: int | None = None) -> pd.DataFrame:
    return point_in_time_join(labels, features, KEY, TS, ["spend"], ["label"], ttl)


def _epoch(ts: pd.Series) -> np.ndarray:
    return (pd.to_datetime(ts, utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()


def test_rows_stamped_after_label_time_never_leak(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    base = pd.Timestamp("2026-01-01", tz="UTC")
    labels = pd.DataFrame({KEY: rng.integers(0, 30, 400),
                           TS: base + pd.to_timedelta(rng.integers(0, 10**6, 400), unit="s"),
                           "label": 1})
    honest = pd.DataFrame({KEY: rng.integers(0, 30, 1_000),
                           TS: base + pd.to_timedelta(rng.integers(0, 10**6, 1_000), unit="s")})
    # Poison: for every label row, a row of its entity stamped 1 s to 1 h after its label time.
    after = pd.to_timedelta(rng.integers(1, 3_600, len(labels)), unit="s")
    poison = pd.DataFrame({KEY: labels[KEY], TS: labels[TS] + after})
    feats = pd.concat([honest, poison]).drop_duplicates([KEY, TS])
    # Each feature value is its own stamp, so a joined value shows when its row was stamped.
    feats = feats.assign(spend=_epoch(feats[TS]))
    out = _join(_write(labels, tmp_path / "l.parquet"), _write(feats, tmp_path / "f.parquet"))
    assert len(out) == len(labels)
    seen = out.dropna(subset=["spend"])
    assert len(seen) > 300
    assert (seen["spend"].to_numpy() <= _epoch(seen[TS])).all()


def test_feature_row_at_exactly_label_time_is_used(tmp_path: Path) -> None:
    labels = _labels(tmp_path)
    out = _join(labels, _features([(1, T0, 5.0)], tmp_path / "f.parquet"))
    assert out["spend"].iloc[0] == 5.0


def test_ttl_expires_old_feature_rows(tmp_path: Path) -> None:
    labels = _labels(tmp_path)
    rows = [(1, T0 - pd.Timedelta(hours=2), 10.0), (2, T0 + pd.Timedelta(hours=47), 20.0)]
    features = _features(rows, tmp_path / "f.parquet")
    no_ttl = _join(labels, features)
    with_ttl = _join(labels, features, ttl=3 * 3600)
    assert no_ttl["spend"].tolist() == [10.0, 10.0, 20.0]
    # Entity 1 at T0: row 2 h old, fresh; at T0+1d: 26 h old, expired. Entity 2: 1 h old.
    assert with_ttl["spend"].iloc[0] == 10.0
    assert np.isnan(with_ttl["spend"].iloc[1])
    assert with_ttl["spend"].iloc[2] == 20.0


def test_late_arriving_row_is_used_once_it_has_landed(tmp_path: Path) -> None:
    labels = _labels(tmp_path)
    early = [(1, T0 - pd.Timedelta(days=3), 1.0)]
    before = _join(labels, _features(early, tmp_path / "f1.parquet"))
    # A row for an event before the label time that only arrives later (appended at the end).
    late = early + [(1, T0 + pd.Timedelta(hours=6), 7.0)]
    after = _join(labels, _features(late, tmp_path / "f2.parquet"))
    assert before["spend"].tolist()[:2] == [1.0, 1.0]
    assert after["spend"].tolist()[:2] == [1.0, 7.0]


@pytest.mark.parametrize("label_tz", [None, "UTC", "America/New_York", "Asia/Kolkata"])
def test_naive_and_aware_timestamps_give_identical_joins(tmp_path: Path,
                                                         label_tz: str | None) -> None:
    rows = [(1, T0 - pd.Timedelta(minutes=30), 3.0), (1, T0 + pd.Timedelta(hours=12), 4.0),
            (2, T0 + pd.Timedelta(days=2), 9.0)]
    aware_features = _features(rows, tmp_path / "aware.parquet")
    naive_rows = [(k, t.tz_localize(None), v) for k, t, v in rows]
    naive_features = _features(naive_rows, tmp_path / "naive.parquet")
    reference = _join(_labels(tmp_path, "UTC"), aware_features)
    for features in (aware_features, naive_features):
        out = _join(_labels(tmp_path, label_tz), features)
        pd.testing.assert_frame_equal(out, reference)
    assert str(reference[TS].dt.tz) == "UTC"


def test_matches_pandas_merge_asof_on_random_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n_f, n_l = 2_000, 500
    base = pd.Timestamp("2026-01-01", tz="UTC")
    feats = pd.DataFrame({KEY: rng.integers(0, 50, n_f),
                          TS: base + pd.to_timedelta(rng.integers(0, 10**6, n_f), unit="s"),
                          "spend": rng.random(n_f)}).drop_duplicates([KEY, TS])
    labels = pd.DataFrame({KEY: rng.integers(0, 60, n_l),
                           TS: base + pd.to_timedelta(rng.integers(0, 10**6, n_l), unit="s"),
                           "label": rng.integers(0, 2, n_l)})
    out = _join(_write(labels, tmp_path / "l.parquet"), _write(feats, tmp_path / "f.parquet"))
    expected = pd.merge_asof(labels.sort_values(TS), feats.sort_values(TS), on=TS, by=KEY,
                             direction="backward")
    expected = expected.sort_values([TS, KEY], kind="stable").reset_index(drop=True)
    got = out.sort_values([TS, KEY], kind="stable").reset_index(drop=True)
    np.testing.assert_allclose(got["spend"].to_numpy(), expected["spend"].to_numpy())
    assert got["label"].tolist() == expected["label"].tolist()
