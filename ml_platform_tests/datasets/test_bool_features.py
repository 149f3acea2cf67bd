"""Issue 17's first bug: a boolean column declared categorical trained, then failed every
evaluation gate ("column is boolean in the signature, the feature service serves string").
Booleans (and pandas' nullable boolean) now work as categorical and as numeric features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow.models import infer_signature

from ml_platform.contracts.validate import validate_batch
from ml_platform.evaluation.infra import signature_gate
from ml_platform.features.definitions import view_def
from ml_platform.features.tables import build_features
from ml_platform.home import PlatformHome
from ml_platform.training import fitting
from ml_platform_tests.datasets.helpers import frame, spec
from ml_platform_tests.helpers import materialize

BOTH = {"numeric": ["x", "flag_num"], "categorical": ["flag"]}


def with_flags(rows: int = 400) -> pd.DataFrame:
    data = frame(rows)
    nullable = pd.array(data["flag"].to_numpy(), dtype="boolean")
    nullable[::7] = pd.NA
    return data.assign(flag_num=nullable)


def signature(spec_: object, data: pd.DataFrame) -> dict[str, str]:
    sample = fitting.features_of(data.head(5), spec_)
    schema = infer_signature(sample, np.zeros(5)).inputs.to_dict()
    return {c["name"]: c["type"] for c in schema}


def test_model_input_types_match_the_feature_service() -> None:
    s = spec(features=BOTH)
    data = with_flags()
    inputs = fitting.features_of(data, s)
    assert set(inputs["flag"].dropna()) == {"True", "False"}
    assert inputs["flag_num"].dtype == "float64" and inputs["flag_num"].isna().sum() > 0
    gate = signature_gate(s, signature(s, data))
    assert gate.passed, gate.message


def test_signature_gate_names_a_boolean_categorical() -> None:
    """The gate itself still catches the mismatch (what the bug looked like)."""
    s = spec(features=BOTH)
    gate = signature_gate(s, {"x": "double", "flag_num": "double", "flag": "boolean"})
    assert not gate.passed
    assert "column 'flag' is boolean in the signature, the feature service serves string" in (
        gate.message
    )


def test_feature_table_serves_categorical_booleans_as_strings(home: PlatformHome) -> None:
    s = spec(features=BOTH)
    outcome = validate_batch(s, home, with_flags())
    assert outcome.passed, outcome.summary()
    table = build_features(s, home, outcome.validated_path)
    schema = pq.read_schema(table.path)
    assert str(schema.field("flag").type) == "string"
    assert str(schema.field("flag_num").type) == "bool"
    fields = {f.name: f.dtype for f in view_def(s, home).fields}
    assert fields == {"x": "float64", "flag_num": "bool", "flag": "string"}


@pytest.mark.slow
def test_boolean_features_year_timestamp_and_string_labels_end_to_end(
    home: PlatformHome, tmp_path: Path
) -> None:
    """The reported dataset shape through the whole graph: a boolean categorical, a nullable
    boolean numeric, an integer year as event time, 'yes' / 'no' labels."""
    data = with_flags(600).assign(
        label=lambda f: np.where(f["label"] == 1, "yes", "no"),
        year=lambda f: 1990 + np.arange(len(f)) * 30 // len(f),
    )
    data.to_csv(tmp_path / "tiny.csv", index=False)
    s = spec(tmp_path, features=BOTH, positive_label="yes", slices=["flag"])
    result = materialize(s, home, selection="*tiny_registered_model")
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    checks = result.get_asset_check_evaluations()
    assert checks, "no asset check ran"
    failed = {c.check_name: c.description for c in checks if not c.passed}
    assert not failed, failed
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "tiny_registered_model" in materialized
