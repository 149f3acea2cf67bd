"""The bad-input matrix: each defect stops the batch at the gate, naming the rule and column,
and publishes nothing. Runs against the committed demo contract through ``validate_batch``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ml_platform.contracts.validate import validate_batch
from ml_platform.home import PlatformHome
from ml_platform.ingest.io import frame_hash
from ml_platform_tests.helpers import small_spec

Defect = Callable[[pd.DataFrame], pd.DataFrame]
EVERY = 50  # every 50th row gets the defect (2%)


def _rows(frame: pd.DataFrame) -> np.ndarray:
    return np.arange(len(frame)) % EVERY == 0


def missing_column(f: pd.DataFrame) -> pd.DataFrame:
    return f.drop(columns=["amount"])


def extra_column(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(notes="free text")


def dtype_change(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(region=f["region"].astype("category").cat.codes.astype("int64"))


def label_nulls(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(defaulted=f["defaulted"].astype("float64").mask(_rows(f)))


def feature_null_spike(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(employment_years=f["employment_years"].mask(np.arange(len(f)) % 3 == 0))


def out_of_range(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(credit_score=f["credit_score"].mask(_rows(f), 2_000))


def unseen_category(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(purpose=f["purpose"].mask(_rows(f), "crypto"))


def duplicate_key(f: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([f, f.iloc[:30]], ignore_index=True)


def future_timestamps(f: pd.DataFrame) -> pd.DataFrame:
    ts = f["applied_at"].mask(_rows(f), pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=30))
    return f.assign(applied_at=ts)


def naive_timestamps(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(applied_at=f["applied_at"].dt.tz_localize(None))


def empty_batch(f: pd.DataFrame) -> pd.DataFrame:
    return f.iloc[:0]


def single_class_label(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(defaulted=0)


def label_outside_domain(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(defaulted=f["defaulted"].mask(_rows(f), 2))


def nan_values(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(amount=f["amount"].mask(_rows(f)))


def inf_values(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(annual_income=f["annual_income"].mask(_rows(f), np.inf))


def string_in_numeric(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(amount=f["amount"].astype(object).mask(_rows(f), "n/a"))


def renamed_column(f: pd.DataFrame) -> pd.DataFrame:
    return f.rename(columns={"credit_score": "fico_score"})


def row_count_collapse(f: pd.DataFrame) -> pd.DataFrame:
    return f.iloc[::20].reset_index(drop=True)  # ~300 rows where thousands land


def mean_shift(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(amount=f["amount"] * 1.8)


def category_frequency_shift(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(channel=f["channel"].mask(np.arange(len(f)) % 4 != 0, "partner"))


# (defect, rule, column): the rule and column the failure must name
MATRIX: list[tuple[Defect, str, str | None]] = [
    (missing_column, "column_present", "amount"),
    (extra_column, "no_extra_column", "notes"),
    (dtype_change, "dtype", "region"),
    (label_nulls, "not_null", "defaulted"),
    (feature_null_spike, "null_fraction", "employment_years"),
    (out_of_range, "in_range", "credit_score"),
    (unseen_category, "allowed_values", "purpose"),
    (duplicate_key, "unique_key", "customer_id,applied_at"),
    (future_timestamps, "not_future", "applied_at"),
    (naive_timestamps, "timezone", "applied_at"),
    (empty_batch, "non_empty", None),
    (single_class_label, "label_classes", "defaulted"),
    (label_outside_domain, "label_domain", "defaulted"),
    (nan_values, "not_null", "amount"),
    (inf_values, "finite", "annual_income"),
    (string_in_numeric, "dtype", "amount"),
    (renamed_column, "column_present", "credit_score"),
    (row_count_collapse, "row_count", None),
    (mean_shift, "mean", "amount"),
    (category_frequency_shift, "category_frequency", "channel"),
]


@pytest.mark.parametrize(
    ("defect", "rule", "column"), MATRIX, ids=[d.__name__ for d, _, _ in MATRIX]
)
def test_defect_stops_the_batch(
    defect: Defect, rule: str, column: str | None, batch: pd.DataFrame, home: PlatformHome
) -> None:
    spec = small_spec()
    outcome = validate_batch(spec, home, defect(batch))
    assert not outcome.passed
    failing = {(r.rule, r.column) for r in outcome.failures}
    assert (rule, column) in failing, outcome.summary()
    assert rule in outcome.summary() and (column or rule) in outcome.summary()
    assert outcome.validated_path is None
    assert not (home.pipeline_dir(spec.name) / "validated.parquet").exists()
    assert outcome.report_path is not None and rule in outcome.report_path.read_text()


def test_failing_rows_are_counted_and_sampled(batch: pd.DataFrame, home: PlatformHome) -> None:
    outcome = validate_batch(small_spec(), home, out_of_range(batch))
    (failure,) = [r for r in outcome.failures if r.rule == "in_range"]
    assert failure.failing_rows == int(_rows(batch).sum())
    assert failure.failing_fraction == pytest.approx(failure.failing_rows / len(batch))
    assert failure.sample and set(failure.sample) == {2000}


def test_string_in_numeric_column_samples_the_strings(
    batch: pd.DataFrame, home: PlatformHome
) -> None:
    outcome = validate_batch(small_spec(), home, string_in_numeric(batch))
    (failure,) = [r for r in outcome.failures if r.rule == "dtype"]
    assert failure.sample[0] == "n/a" and failure.failing_rows == int(_rows(batch).sum())


def test_distribution_shift_from_the_generator(
    drifted_frame: pd.DataFrame, home: PlatformHome
) -> None:
    outcome = validate_batch(small_spec(), home, drifted_frame)
    assert ("psi_distance", "purpose") in {(r.rule, r.column) for r in outcome.failures}
    assert all(r.kind == "distribution" for r in outcome.failures if r.rule == "psi_distance")


def test_clean_batch_passes_and_is_published(batch: pd.DataFrame, home: PlatformHome) -> None:
    spec = small_spec()
    outcome = validate_batch(spec, home, batch)
    assert outcome.passed, outcome.summary()
    assert outcome.rows_in == outcome.rows_valid == len(batch)
    published = pd.read_parquet(outcome.validated_path)
    assert len(published) == len(batch) and "_source_file" not in published.columns
    assert str(published["applied_at"].dt.tz) == "UTC"


def test_validation_leaves_its_input_as_read(
    clean_frame: pd.DataFrame, home: PlatformHome, tmp_path: Path
) -> None:
    """Validation converts columns of shallow copies: the frame as read (numeric columns
    zero-copy from Arrow) is left as it was, with or without quarantined rows."""
    spec = _spec_with_contract(
        tmp_path, columns__credit_score__on_fail="quarantine", max_quarantine_fraction=0.05
    )
    for frame in (clean_frame, out_of_range(clean_frame)):
        before, dtypes = frame_hash(frame), frame.dtypes.copy()
        assert validate_batch(spec, home, frame).passed
        assert frame_hash(frame) == before and frame.dtypes.equals(dtypes)


def _spec_with_contract(tmp_path: Path, **changes: object):  # noqa: ANN202
    """The demo spec gated by a copy of its contract with ``changes`` applied."""
    spec = small_spec()
    doc = yaml.safe_load(spec.contract_path().read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = doc
        for p in parents:
            node = node[p]
        node[leaf] = value
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(doc))
    return spec.model_copy(update={"contract": str(path)})


def test_quarantine_above_the_limit_fails(
    batch: pd.DataFrame, home: PlatformHome, tmp_path: Path
) -> None:
    spec = _spec_with_contract(
        tmp_path, columns__credit_score__on_fail="quarantine", max_quarantine_fraction=0.01
    )
    outcome = validate_batch(spec, home, out_of_range(batch))  # 2% bad rows, 1% allowed
    assert [r.rule for r in outcome.failures] == ["quarantine_limit"]
    assert "in_range(credit_score)" in outcome.summary()
    assert outcome.validated_path is None and outcome.quarantine_path is None


def test_quarantine_within_the_limit_loses_no_row(
    batch: pd.DataFrame, home: PlatformHome, tmp_path: Path
) -> None:
    spec = _spec_with_contract(
        tmp_path, columns__credit_score__on_fail="quarantine", max_quarantine_fraction=0.05
    )
    outcome = validate_batch(spec, home, out_of_range(batch))
    assert outcome.passed, outcome.summary()
    bad = int(_rows(batch).sum())
    assert outcome.rows_quarantined == bad
    assert outcome.rows_valid + outcome.rows_quarantined == outcome.rows_in == len(batch)
    quarantined = pd.read_parquet(outcome.quarantine_path)
    published = pd.read_parquet(outcome.validated_path)
    assert len(quarantined) == bad and len(published) == len(batch) - bad
    assert set(quarantined["_reasons"]) == {"in_range(credit_score)"}
    assert set(quarantined["credit_score"]) == {2000}
    assert published["credit_score"].max() < 2000


def test_custom_check_by_import_path(
    batch: pd.DataFrame, home: PlatformHome, tmp_path: Path
) -> None:
    check = {
        "name": "amount_below_income",
        "column": "amount",
        "function": "ml_platform_tests.contracts.custom_rules.amount_below_income",
    }
    spec = _spec_with_contract(tmp_path, custom_checks=[check])
    frame = batch.assign(amount=batch["amount"].mask(_rows(batch), 10_000_000.0))
    outcome = validate_batch(spec, home, frame)
    assert ("amount_below_income", "amount") in {(r.rule, r.column) for r in outcome.failures}
    assert validate_batch(spec, home, batch).passed


def test_custom_check_that_raises_fails_the_batch(
    batch: pd.DataFrame, home: PlatformHome, tmp_path: Path
) -> None:
    check = {"name": "buggy", "function": "ml_platform_tests.contracts.custom_rules.broken"}
    outcome = validate_batch(_spec_with_contract(tmp_path, custom_checks=[check]), home, batch)
    assert [r.rule for r in outcome.failures] == ["buggy"]
    assert "no_such_column" in outcome.failures[0].message
    assert outcome.validated_path is None


def test_custom_check_that_does_not_import_is_a_contract_error(tmp_path: Path) -> None:
    from ml_platform.contracts import ContractError, load_for_spec

    check = {"name": "x", "function": "ml_platform_tests.contracts.custom_rules.nope"}
    with pytest.raises(ContractError, match="custom_checks.0.function"):
        load_for_spec(_spec_with_contract(tmp_path, custom_checks=[check]))
