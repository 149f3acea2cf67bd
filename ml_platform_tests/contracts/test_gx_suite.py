"""The contract's distribution rules as a Great Expectations 1.x suite run on the batch: what the
suite holds, each expectation failing on a case made to fail, the suite stored with the
contract version under the home, Data Docs built there, and the GX defect we work around."""

from __future__ import annotations

import json
from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
import pytest

from ml_platform.contracts import Contract, check_contract, load_for_spec
from ml_platform.contracts.gx_suite import build_suite, contract_digest, suite_name
from ml_platform.contracts.validate import validate_batch
from ml_platform.home import PlatformHome
from ml_platform_tests.helpers import small_spec


def _demo() -> Contract:
    return load_for_spec(small_spec())


def _with_distribution(**changes: object) -> Contract:
    doc = _demo().model_dump()
    doc["distribution"].update(changes)
    return Contract.model_validate(doc)


def _types(suite: gx.ExpectationSuite, column: str | None) -> list[str]:
    return [e.expectation_type for e in suite.expectations if getattr(e, "column", None) == column]


def test_suite_holds_one_expectation_per_rule() -> None:
    suite = build_suite(_demo())
    assert suite.name == "loan_default.contract_v1" == suite_name(_demo())
    assert suite.meta["ml_platform"]["contract_sha256"] == contract_digest(_demo())
    assert _types(suite, None) == ["expect_table_row_count_to_be_between"]
    assert _types(suite, "amount") == [
        "expect_column_values_to_not_be_null",
        "expect_column_mean_to_be_between",
        "expect_column_quantile_values_within_ranges",
        "expect_column_psi_to_be_less_than",
    ]
    assert _types(suite, "purpose") == [
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_category_frequencies_to_be_between",
        "expect_column_psi_to_be_less_than",
    ]
    nulls = next(e for e in suite.expectations if getattr(e, "column", "") == "employment_years")
    assert nulls.mostly == pytest.approx(1 - 0.049852)
    rules = {
        (e.meta["ml_platform"]["rule"], e.meta["ml_platform"]["column"]) for e in suite.expectations
    }
    assert ("category_frequency", "channel") in rules and ("row_count", None) in rules


def _shifted(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(amount=f["amount"] * 1.8)


def _raised(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(amount=f["amount"] * 1.3)


def _few_rows(f: pd.DataFrame) -> pd.DataFrame:
    return f.iloc[:500].reset_index(drop=True)


def _null_spike(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(employment_years=f["employment_years"].mask(np.arange(len(f)) % 4 == 0))


def _mostly_web(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(channel=f["channel"].mask(np.arange(len(f)) % 5 != 0, "web"))


def _new_category(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(region=f["region"].mask(np.arange(len(f)) % 100 == 0, "atlantis"))


def _distance(metric: str) -> Contract:
    """The demo contract measuring distance with ``metric`` (threshold on its own scale)."""
    doc = _demo().model_dump()
    doc["distribution"]["distance"] = metric
    for rules in doc["distribution"]["columns"].values():
        if rules.get("max_distance") is not None:
            rules["max_distance"] = 0.1
    return Contract.model_validate(doc)


def _tight_median() -> Contract:
    """The demo contract with a narrow band on the median of amount (its mean band is wide)."""
    doc = _demo().model_dump()
    doc["distribution"]["columns"]["amount"]["quantiles"] = {0.5: (9_000.0, 11_000.0)}
    return Contract.model_validate(doc)


# (contract, defect, rule, column): each expectation made to fail
CASES = [
    (_demo, _few_rows, "row_count", None),
    (_demo, _null_spike, "null_fraction", "employment_years"),
    (_demo, _shifted, "mean", "amount"),
    (_tight_median, _raised, "quantile", "amount"),
    (_demo, _new_category, "category_set", "region"),
    (_demo, _mostly_web, "category_frequency", "channel"),
    (_demo, _mostly_web, "psi_distance", "channel"),
    (lambda: _distance("js"), _mostly_web, "js_distance", "channel"),
    (lambda: _distance("kl"), _mostly_web, "kl_distance", "channel"),
    (lambda: _distance("kl"), _shifted, "kl_distance", "amount"),
]


@pytest.mark.parametrize(
    ("make", "defect", "rule", "column"), CASES, ids=[f"{r}-{c}" for _, _, r, c in CASES]
)
def test_expectation_fails_on_a_case_made_to_fail(
    make,
    defect,
    rule: str,  # noqa: ANN001
    column: str | None,
    batch: pd.DataFrame,
) -> None:
    contract = make()
    clean = check_contract(contract, batch)
    assert clean.passed, [r.message for r in clean.failures]
    result = check_contract(contract, defect(batch))
    failing = {(r.rule, r.column): r for r in result.failures}
    assert (rule, column) in failing, sorted(failing)
    failure = failing[(rule, column)]
    assert failure.kind == "distribution" and "Fix:" in failure.message
    assert column is None or column in failure.message


def test_rules_on_a_missing_column_are_left_to_the_schema(batch: pd.DataFrame) -> None:
    result = check_contract(_demo(), batch.drop(columns=["amount"]))
    assert [(r.rule, r.column) for r in result.failures] == [("column_present", "amount")]


def test_suite_stored_with_the_contract_version_and_data_docs_built(
    batch: pd.DataFrame, home: PlatformHome
) -> None:
    outcome = validate_batch(small_spec(), home, batch)
    assert outcome.passed
    stored = home.root / "gx" / "expectations" / "loan_default" / "contract_v1.json"
    doc = json.loads(stored.read_text())
    assert doc["name"] == "loan_default.contract_v1"
    assert doc["meta"]["ml_platform"]["contract_version"] == 1
    assert len(doc["expectations"]) == len(build_suite(_demo()).expectations)
    docs = outcome.data_docs
    assert docs is not None and docs.index.is_file()
    assert (
        docs.index == home.root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    )
    page = docs.page.read_text()
    assert "loan_default" in page and "PSI" in page and "share of each category" in page
    second = validate_batch(small_spec(), home, _shifted(batch))
    assert second.data_docs.page != docs.page and second.data_docs.page.is_file()
    assert "<td>mean</td><td>amount</td>" in second.report_path.read_text()
    assert second.data_docs.page.as_uri() in second.report_path.read_text()


def test_a_changed_contract_rewrites_its_suite(
    batch: pd.DataFrame, home: PlatformHome, tmp_path: Path
) -> None:
    from ml_platform.contracts.engine import check_contract as check

    check(_demo(), batch, gx_root=home.root)
    changed = _with_distribution(min_rows=10)
    check(changed, batch, gx_root=home.root)
    stored = json.loads(
        (home.root / "gx" / "expectations" / "loan_default" / "contract_v1.json").read_text()
    )
    assert stored["meta"]["ml_platform"]["contract_sha256"] == contract_digest(changed)
    assert check(_demo(), batch, gx_root=home.root).passed  # and back again


def test_gx_quantile_expectation_still_cannot_store_its_result() -> None:
    """Why ExpectColumnQuantileValuesWithinRanges exists: GX 1.24.1's quantile expectation
    returns ``success`` as numpy.bool_, and its validation-results store cannot serialise that.
    When this test fails, GX fixed it: use ExpectColumnQuantileValuesToBeBetween directly."""
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("p")
        .add_dataframe_asset("a")
        .add_batch_definition_whole_dataframe("b")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="quantiles"))
    suite.add_expectation(
        gxe.ExpectColumnQuantileValuesToBeBetween(
            column="x", quantile_ranges={"quantiles": [0.5], "value_ranges": [[0, 10]]}
        )
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="quantiles", data=batch, suite=suite)
    )
    with pytest.raises(TypeError, match="not JSON serializable"):
        definition.run(batch_parameters={"dataframe": pd.DataFrame({"x": [1.0, 2.0, 3.0]})})
