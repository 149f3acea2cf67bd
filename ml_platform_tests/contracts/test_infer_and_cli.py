"""infer-contract and validate: a contract inferred from clean data passes that data and fails
a copy with injected defects, naming them; the CLI exits 0 only when a file passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ml_platform.cli import app
from ml_platform.contracts import (
    ContractError,
    check_contract,
    dump_contract,
    load_contract,
    load_for_spec,
)
from ml_platform.contracts.infer import infer_contract
from ml_platform_tests.helpers import small_spec

runner = CliRunner()


def _defective(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame.copy()
    bad.loc[bad.index[::40], "credit_score"] = 5_000
    bad.loc[bad.index[::60], "region"] = "atlantis"
    return pd.concat([bad, bad.iloc[:10]], ignore_index=True)


def test_inferred_contract_passes_its_data_and_fails_defects(
    clean_frame: pd.DataFrame, tmp_path: Path
) -> None:
    contract = infer_contract(small_spec(), clean_frame, source="test")
    path = tmp_path / "contract.yaml"
    path.write_text(dump_contract(contract))
    reloaded = load_contract(path)
    assert reloaded == contract
    assert check_contract(reloaded, clean_frame).passed
    result = check_contract(reloaded, _defective(clean_frame))
    failing = {(r.rule, r.column) for r in result.failures}
    assert {
        ("in_range", "credit_score"),
        ("allowed_values", "region"),
        ("unique_key", "customer_id,applied_at"),
    } <= failing


def test_inferred_rules_look_like_schemagen(clean_frame: pd.DataFrame) -> None:
    c = infer_contract(small_spec(), clean_frame)
    assert c.columns["applied_at"].dtype == "datetime" and c.columns["applied_at"].timezone_aware
    assert c.columns["employment_years"].nullable and not c.columns["amount"].nullable
    assert c.columns["purpose"].allowed and "car" in c.columns["purpose"].allowed
    assert c.columns["application_id"].allowed is None  # an identifier, not a category
    assert c.columns["credit_score"].min <= clean_frame["credit_score"].min()
    assert c.unique == ["customer_id", "applied_at"] and c.label.min_classes == 2
    ref = c.reference.columns["amount"]
    assert sum(ref.fractions) == pytest.approx(1.0, abs=1e-4)


def test_contract_file_errors_name_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "contract.yaml"
    path.write_text("pipeline: p\ncolumns:\n  a: {dtype: float, min: 5, max: 1}\n")
    with pytest.raises(ContractError, match=r"contract.yaml(.|\n)*columns.a"):
        load_contract(path)
    path.write_text("pipeline: p\ncolumns: {a: {}}\nunique: [b]\n")
    with pytest.raises(ContractError, match=r"\['b'\]"):
        load_contract(path)
    with pytest.raises(ContractError, match="does not exist"):
        load_contract(tmp_path / "nope.yaml")


def test_committed_demo_contract_loads() -> None:
    contract = load_for_spec(small_spec())
    assert contract.pipeline == "loan_default" and contract.distribution.min_rows == 1000
    assert set(contract.reference.columns) >= {"amount", "purpose", "credit_score"}


def test_cli_validate_exit_codes(clean_files: list[Path], tmp_path: Path) -> None:
    day = pd.concat([pd.read_parquet(f) for f in clean_files], ignore_index=True)
    good, bad = tmp_path / "good.parquet", tmp_path / "bad.csv"
    day.to_parquet(good)
    _defective(day).to_csv(bad, index=False)
    ok = runner.invoke(app, ["validate", "loan_default", "--data", str(good)])
    assert ok.exit_code == 0, ok.output
    assert "PASSED" in ok.output and "report:" in ok.output
    assert "Great Expectations Data Docs:" in ok.output and "index.html" in ok.output
    failed = runner.invoke(app, ["validate", "loan_default", "--data", str(bad)])
    assert failed.exit_code == 1, failed.output
    for name in ("in_range", "credit_score", "allowed_values", "region", "unique_key"):
        assert name in failed.output
    missing = runner.invoke(app, ["validate", "loan_default", "--data", str(tmp_path / "x.csv")])
    assert missing.exit_code == 2 and "x.csv" in missing.output


def test_cli_infer_contract_writes_a_loadable_draft(
    clean_files: list[Path], tmp_path: Path
) -> None:
    data = tmp_path / "ref.parquet"
    pd.concat([pd.read_parquet(f) for f in clean_files]).to_parquet(data)
    out = tmp_path / "draft.yaml"
    result = runner.invoke(
        app, ["infer-contract", "loan_default", "--data", str(data), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("# Data contract of 'loan_default'")
    assert load_contract(out).reference.rows == len(pd.read_parquet(data))
    again = runner.invoke(
        app, ["infer-contract", "loan_default", "--data", str(data), "--output", str(out)]
    )
    assert again.exit_code == 1 and "--force" in again.output


def test_psi_and_js_grow_with_shift() -> None:
    from ml_platform.contracts import profile

    rng = np.random.default_rng(0)
    ref = profile.numeric_reference(pd.Series(rng.normal(size=20_000)))
    same = pd.Series(rng.normal(size=20_000))
    shifted = pd.Series(rng.normal(1.0, 1.0, size=20_000))
    for metric in ("psi", "js"):
        near = profile.distance(ref, same, metric)
        far = profile.distance(ref, shifted, metric)
        assert near < 0.05 < far and far > 10 * near, (metric, near, far)
    assert profile.distance(ref, pd.Series([np.nan, np.nan]), "psi") == float("inf")
