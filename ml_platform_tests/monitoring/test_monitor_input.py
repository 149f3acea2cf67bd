"""`ml-platform monitor` on bad input: each case exits 2 with a message that names the problem,
before any model is loaded (no champion needed, except to show that its absence is named)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ml_platform.cli import app
from ml_platform.home import PlatformHome
from ml_platform.spec import PipelineSpec
from ml_platform.training.tracking import Tracking
from ml_platform_tests.helpers import DEMO_SPEC
from ml_platform_tests.monitoring.helpers import demo_features

PIPELINE = "loan_default"


@pytest.fixture
def spec() -> PipelineSpec:
    from ml_platform.spec import load_spec_file

    return load_spec_file(DEMO_SPEC)


@pytest.fixture
def data(tmp_path: Path, spec: PipelineSpec) -> Path:
    path = tmp_path / "features.parquet"
    demo_features(spec, 500).to_parquet(path, index=False)
    return path


def _monitor(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["monitor", PIPELINE, *args])
    return result.exit_code, result.stdout, result.stderr


def test_no_champion_yet(home: PlatformHome, data: Path) -> None:
    code, out, err = _monitor("--data", str(data))
    assert code == 2 and out == ""
    assert err == (
        "error: no champion for 'loan_default' yet: run the training job first "
        "(ml-platform run loan_default)\n"
    )


def test_a_champion_without_a_training_reference(home: PlatformHome, data: Path) -> None:
    """A version registered before monitoring existed: named, with the fix."""
    tracking = Tracking(home.tracking_uri, home.artifact_root)
    experiment = tracking.experiment_id(PIPELINE)
    with tracking.run(experiment, "old-candidate", {}) as run:
        pass
    tracking.client.create_registered_model(PIPELINE)
    version = tracking.client.create_model_version(
        PIPELINE, str(home.artifact_root / "old" / "model"), run_id=run.run_id
    )
    tracking.client.set_registered_model_alias(PIPELINE, "champion", version.version)
    code, _, err = _monitor("--data", str(data))
    assert code == 2
    assert f"champion v1 of 'loan_default' (run {run.run_id}) has no training reference" in err
    assert "retrain it (ml-platform run loan_default)" in err


def test_missing_columns_are_named(data: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(data).drop(columns=["amount", "region", "apps_30d"])
    frame.to_csv(tmp_path / "short.csv", index=False)
    code, _, err = _monitor("--data", str(tmp_path / "short.csv"))
    assert code == 2
    assert "lacks the model's feature columns: missing columns amount, apps_30d, region" in err


def test_a_non_numeric_value_in_a_numeric_column(data: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(data).astype({"credit_score": object})
    frame.loc[7, "credit_score"] = "unknown"  # ("n/a" would read as a null: no error)
    frame.to_csv(tmp_path / "typed.csv", index=False)
    code, _, err = _monitor("--data", str(tmp_path / "typed.csv"))
    assert code == 2
    assert "column 'credit_score' must be numeric, found 'unknown' in data row 7" in err


def test_timestamps_in_a_numeric_column(data: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(data)
    frame["amount"] = frame["applied_at"]
    frame.to_parquet(tmp_path / "dates.parquet", index=False)
    code, _, err = _monitor("--data", str(tmp_path / "dates.parquet"))
    assert code == 2 and "column 'amount' must be numeric" in err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "cannot read the data file"),
        ("header_only.csv", b"customer_id,amount\n", "has no rows"),
        ("garbage.parquet", b"\x00not parquet at all", "cannot read the data file"),
        ("data.json", b"{}", "expected a .csv or .parquet file"),
    ],
)
def test_unreadable_and_empty_files(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    code, _, err = _monitor("--data", str(path))
    assert code == 2 and message in err and str(path) in err


def test_a_missing_file(tmp_path: Path) -> None:
    code, _, err = _monitor("--data", str(tmp_path / "nope.parquet"))
    assert code == 2 and "nope.parquet: no such file" in err


def test_chunk_options_are_exclusive_and_checked(data: Path) -> None:
    code, _, err = _monitor("--data", str(data), "--chunk-rows", "100", "--chunk-by", "day")
    assert code == 2 and err == "error: use --chunk-rows or --chunk-by, not both\n"
    code, _, err = _monitor("--data", str(data), "--chunk-rows", "0")
    assert code == 2 and "--chunk-rows" in err
    code, _, err = _monitor("--data", str(data), "--chunk-by", "week")
    assert code == 2 and "--chunk-by" in err


def test_an_unknown_pipeline_and_a_missing_data_option(data: Path) -> None:
    result = CliRunner().invoke(app, ["monitor", "nope", "--data", str(data)])
    assert result.exit_code == 2 and "no pipeline named 'nope'" in result.output
    result = CliRunner().invoke(app, ["monitor", PIPELINE])
    assert result.exit_code == 2 and "--data" in result.output


def test_bad_labels(data: Path, tmp_path: Path) -> None:
    keys = pd.read_parquet(data)[["customer_id", "applied_at"]]
    keys.to_csv(tmp_path / "no_label.csv", index=False)
    code, _, err = _monitor("--data", str(data), "--labels", str(tmp_path / "no_label.csv"))
    assert code == 2
    assert "lacks entity key, event timestamp and label: missing columns defaulted" in err
    keys.assign(defaulted=3).to_csv(tmp_path / "three.csv", index=False)
    code, _, err = _monitor("--data", str(data), "--labels", str(tmp_path / "three.csv"))
    assert code == 2 and "label 'defaulted' must be 0 or 1 for a binary classifier" in err
    keys.assign(applied_at="yesterday", defaulted=1).to_csv(tmp_path / "when.csv", index=False)
    code, _, err = _monitor("--data", str(data), "--labels", str(tmp_path / "when.csv"))
    assert code == 2 and "column 'applied_at' is not a timestamp" in err


def test_chunking_by_day_needs_the_timestamp(data: Path, tmp_path: Path) -> None:
    pd.read_parquet(data).drop(columns=["applied_at"]).to_parquet(tmp_path / "x.parquet")
    code, _, err = _monitor("--data", str(tmp_path / "x.parquet"), "--chunk-by", "day")
    assert code == 2 and "missing columns applied_at" in err
