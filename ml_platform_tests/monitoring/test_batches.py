"""Which days of a feature table the monitoring report judges, and the labels it joins."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ml_platform.home import PlatformHome
from ml_platform.monitoring.batches import MAX_NEW, labels_for, new_batches
from ml_platform_tests.helpers import small_spec


def _frame(days: int) -> pd.DataFrame:
    stamps = pd.date_range("2026-03-01", periods=days * 4, freq="6h", tz="UTC")
    return pd.DataFrame({"customer_id": range(len(stamps)), "applied_at": stamps})


def _labels(batches: object) -> list[str]:
    return [label for label, _ in batches]  # type: ignore[attr-defined]


def test_first_report_judges_the_newest_day_then_only_newer_days() -> None:
    spec, frame = small_spec(), _frame(10)
    assert _labels(new_batches(spec, frame, set())) == ["2026-03-10"]
    assert _labels(new_batches(spec, frame, {"2026-03-10"})) == []
    # Older days never judged are not gone back to; newer ones are, at most MAX_NEW.
    later = _labels(new_batches(spec, frame, {"2026-03-02"}))
    assert later == [f"2026-03-{d:02d}" for d in range(10 - MAX_NEW + 1, 11)]
    label, rows = next(iter(new_batches(spec, frame, set())))
    assert len(rows) == 4 and rows["applied_at"].dt.strftime("%Y-%m-%d").eq(label).all()


def test_labels_come_from_label_files_when_the_spec_names_them(tmp_path: Path) -> None:
    home = PlatformHome(tmp_path / "home").ensure()
    spec = small_spec()
    batch = _frame(1)
    validated = tmp_path / "validated.parquet"
    batch.assign(defaulted=1).to_parquet(validated)
    from_data = labels_for(spec, home, batch, validated)
    assert from_data is not None and from_data.tolist() == [1, 1, 1, 1]

    late = batch.iloc[:2].assign(defaulted=0)
    late["applied_at"] = late["applied_at"].dt.tz_convert("Europe/Paris")  # same instants
    late.to_csv(home.landing / "labels_1.csv", index=False)
    monitoring = spec.monitoring.model_copy(update={"labels": "{home}/landing/labels_*.csv"})
    with_files = spec.model_copy(update={"monitoring": monitoring})
    joined = labels_for(with_files, home, batch, validated)
    assert joined is not None
    assert joined.iloc[:2].tolist() == [0, 0] and joined.iloc[2:].isna().all()
    # Named label files not landed yet: no labels (the data's own label column is not used).
    monitoring = spec.monitoring.model_copy(update={"labels": "{home}/landing/none_*.csv"})
    not_yet = spec.model_copy(update={"monitoring": monitoring})
    assert labels_for(not_yet, home, batch, validated) is None
