"""The contract's schema rules as a real pandera schema: dtypes and built-in checks, each check
failing on a case made to fail, every failure case counted in the report, quarantine masks from
the failure cases' row index, and the published batch keeping the dtypes it was read with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
import yaml
from pandera.errors import SchemaErrors

from ml_platform.contracts import Contract, check_contract, load_for_spec
from ml_platform.contracts.pandera_schema import FLOAT_MAX, compile_schema
from ml_platform.contracts.validate import validate_batch
from ml_platform.home import PlatformHome
from ml_platform_tests.helpers import small_spec

EVERY = 40


def _demo() -> Contract:
    return load_for_spec(small_spec())


def _with(**changes: object) -> Contract:
    return Contract.model_validate({**_demo().model_dump(), **changes})


def _rows(frame: pd.DataFrame) -> np.ndarray:
    return np.arange(len(frame)) % EVERY == 0


def _checks(column: pa.Column) -> list[str]:
    return [c.name for c in column.checks]


def test_compiled_schema_has_dtypes_and_builtin_checks() -> None:
    schema = compile_schema(_demo()).schema
    assert isinstance(schema, pa.DataFrameSchema)
    cols = schema.columns
    assert str(cols["credit_score"].dtype) == "Int64" and cols["credit_score"].coerce
    assert str(cols["amount"].dtype) == "float64" and str(cols["purpose"].dtype) == "str"
    assert str(cols["applied_at"].dtype) == "datetime64[ns, UTC]"
    assert _checks(cols["credit_score"]) == ["in_range"]
    assert _checks(cols["amount"]) == ["in_range", "in_range"]  # finite, then [min, max]
    assert _checks(cols["purpose"]) == ["isin"]
    assert _checks(cols["defaulted"]) == ["isin", "label_classes"]
    assert _checks(cols["applied_at"]) == ["not_future"]
    assert not cols["amount"].nullable and cols["employment_years"].nullable
    assert schema.strict is True and schema.unique == ["customer_id", "applied_at"]
    assert not cols["_source_file"].required  # the raw reader's column is tolerated


def test_portable_schema_holds_only_builtin_checks() -> None:
    compiled = compile_schema(_demo(), portable=True)
    cols = compiled.schema.columns
    assert "_source_file" not in cols
    assert _checks(cols["applied_at"]) == [] and _checks(cols["defaulted"]) == ["isin"]
    assert [s.split(":")[0] for s in compiled.skipped] == [
        "not_future(applied_at)",
        "label_classes(defaulted)",
    ]
    finite = cols["amount"].checks[0]
    assert finite.statistics == {
        "min_value": -FLOAT_MAX,
        "max_value": FLOAT_MAX,
        "include_min": True,
        "include_max": True,
    }


def test_every_failure_case_is_counted(batch: pd.DataFrame) -> None:
    """The report's failing rows are pandera's failure cases, row for row."""
    bad = batch.assign(
        credit_score=batch["credit_score"].mask(_rows(batch), 5_000),
        region=batch["region"].mask(np.arange(len(batch)) % 7 == 0, "mars"),
    )
    with pytest.raises(SchemaErrors) as caught:
        compile_schema(_demo()).schema.validate(bad, lazy=True)
    cases = caught.value.failure_cases
    result = check_contract(_demo(), bad)
    by_rule = {r.label: r for r in result.failures}
    for label, column, check in (
        ("in_range(credit_score)", "credit_score", "in_range"),
        ("allowed_values(region)", "region", "isin"),
    ):
        expected = cases[(cases["column"] == column) & cases["check"].str.startswith(check)]
        assert by_rule[label].failing_rows == expected["index"].nunique() > 0
        assert by_rule[label].sample[0] == expected["failure_case"].iloc[0]
        message = by_rule[label].message
        assert (
            column in message
            and "Fix:" in message
            and str(expected["failure_case"].iloc[0]) in message
        )


# (contract changes, defect, rule, column): each check made to fail, beyond the bad-input matrix
CASES = [
    ({"ordered": True}, lambda f: f[list(reversed(f.columns))], "column_order", None),
    (
        {},
        lambda f: f.assign(credit_score=f["credit_score"].astype("float64").mask(_rows(f), 700.5)),
        "dtype",
        "credit_score",
    ),
    (
        {},
        lambda f: f.assign(term_months=f["term_months"].astype(object).mask(_rows(f), "x")),
        "dtype",
        "term_months",
    ),
    (
        {},
        lambda f: f.assign(employment_years=f["employment_years"].mask(_rows(f), -3.0)),
        "in_range",
        "employment_years",
    ),
    ({}, lambda f: f.assign(applied_at=f["applied_at"].astype(str)), "dtype", "applied_at"),
]


@pytest.mark.parametrize(
    ("changes", "defect", "rule", "column"),
    CASES,
    ids=["order", "non_integral_int", "text_in_int", "below_min", "timestamps_as_text"],
)
def test_schema_check_fails_on_a_case_made_to_fail(
    changes: dict,
    defect,
    rule: str,  # noqa: ANN001
    column: str | None,
    batch: pd.DataFrame,
) -> None:
    contract = _with(**changes)
    assert check_contract(contract, batch).passed
    result = check_contract(contract, defect(batch))
    assert (rule, column) in {(r.rule, r.column) for r in result.failures}, [
        r.label for r in result.failures
    ]


def test_int_with_nulls_reports_nulls_not_the_type(batch: pd.DataFrame) -> None:
    """Readers turn an int column with nulls into floats: Int64 coercion keeps it an int column
    and the nulls are what fails."""
    frame = batch.assign(credit_score=batch["credit_score"].astype("float64").mask(_rows(batch)))
    failing = {r.label for r in check_contract(_demo(), frame).failures}
    assert "not_null(credit_score)" in failing and "dtype(credit_score)" not in failing


def test_timestamps_in_other_units_and_zones_are_accepted(batch: pd.DataFrame) -> None:
    micro = batch.assign(applied_at=batch["applied_at"].dt.as_unit("us"))
    paris = batch.assign(applied_at=batch["applied_at"].dt.tz_convert("Europe/Paris"))
    assert check_contract(_demo(), micro).passed and check_contract(_demo(), paris).passed


def test_custom_checks_element_wise_and_vectorised(batch: pd.DataFrame) -> None:
    path = "ml_platform_tests.contracts.custom_rules"
    checks = [
        {
            "name": "positive_amount",
            "column": "amount",
            "element_wise": True,
            "function": f"{path}.positive",
        },
        {
            "name": "amount_below_income",
            "function": f"{path}.amount_below_income",
            "on_fail": "quarantine",
        },
        {"name": "row_has_purpose", "element_wise": True, "function": f"{path}.has_purpose"},
    ]
    contract = _with(custom_checks=checks, max_quarantine_fraction=0.05)
    schema = compile_schema(contract).schema
    assert schema.columns["amount"].checks[-1].element_wise
    assert [c.name for c in schema.checks] == ["amount_below_income", "row_has_purpose"]
    assert check_contract(contract, batch).passed
    frame = batch.assign(amount=batch["amount"].mask(_rows(batch), -1.0)).assign(
        annual_income=batch["annual_income"].mask(np.arange(len(batch)) % EVERY == 1, 1.0)
    )
    frame.loc[frame.index[2], "purpose"] = None
    result = check_contract(contract, frame)
    failing = {(r.rule, r.column): r for r in result.rules if not r.passed}
    assert failing[("positive_amount", "amount")].failing_rows == int(_rows(batch).sum())
    quarantined = failing[("amount_below_income", None)]
    assert quarantined.policy == "quarantine" and quarantined.failing_rows > 0
    assert result.rows_quarantined == quarantined.failing_rows
    assert failing[("row_has_purpose", None)].failing_rows == 1


def test_two_quarantine_rules_share_rows_and_counts_add_up(
    batch: pd.DataFrame, home: PlatformHome, tmp_path: Path
) -> None:
    spec = small_spec()
    doc = yaml.safe_load(spec.contract_path().read_text())
    doc["columns"]["credit_score"]["on_fail"] = "quarantine"
    doc["columns"]["purpose"]["on_fail"] = "quarantine"
    doc["max_quarantine_fraction"] = 0.1
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(doc))
    spec = spec.model_copy(update={"contract": str(path)})
    both, credit = np.arange(len(batch)) % EVERY == 0, np.arange(len(batch)) % EVERY == 1
    frame = batch.assign(
        credit_score=batch["credit_score"].mask(both | credit, 9_999),
        purpose=batch["purpose"].mask(both, "crypto"),
    )
    outcome = validate_batch(spec, home, frame)
    assert outcome.passed, outcome.summary()
    assert outcome.rows_quarantined == int((both | credit).sum())
    assert outcome.rows_valid + outcome.rows_quarantined == outcome.rows_in == len(batch)
    quarantined = pd.read_parquet(outcome.quarantine_path)
    assert set(quarantined["_reasons"]) == {
        "in_range(credit_score)",
        "in_range(credit_score); allowed_values(purpose)",
    }


def test_published_batch_keeps_its_dtypes(batch: pd.DataFrame, home: PlatformHome) -> None:
    """Coercion to Int64 happens on pandera's copy; the published file has the read dtypes."""
    outcome = validate_batch(small_spec(), home, batch)
    published = pd.read_parquet(outcome.validated_path)
    assert str(published["credit_score"].dtype) == "int64"
    assert str(batch["credit_score"].dtype) == "int64"
