"""Binary labels in every accepted form, and a clear error for anything else (issue 17)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_platform.contracts.validate import validate_batch
from ml_platform.home import PlatformHome
from ml_platform.ingest import prepare
from ml_platform.spec import SpecError
from ml_platform_tests.datasets.helpers import frame, spec

EXPECTED = frame()["label"].to_numpy(dtype=float)


def encoded(values: object, **updates: object) -> np.ndarray:
    out, problems = prepare.prepare(spec(**updates), frame().assign(label=values))
    assert problems == []
    return out["label"].to_numpy(dtype=float)


def refused(values: object, **updates: object) -> str:
    _, problems = prepare.prepare(spec(**updates), frame().assign(label=values))
    assert [p.column for p in problems] == ["label"]
    return problems[0].message


@pytest.mark.parametrize(
    "values",
    [
        EXPECTED.astype("int64"),
        EXPECTED,  # 0.0 / 1.0
        EXPECTED.astype(bool),
        pd.array(EXPECTED.astype(bool), dtype="boolean"),
        EXPECTED.astype(bool).astype(object),
        EXPECTED.astype("int64").astype(str),  # '0' / '1' read as text
    ],
    ids=["int", "float", "bool", "nullable-boolean", "bool-objects", "digit-strings"],
)
def test_zero_one_forms(values: object) -> None:
    np.testing.assert_array_equal(encoded(values), EXPECTED)


def test_strings_with_positive_label() -> None:
    words = np.where(EXPECTED == 1, "malignant", "benign")
    np.testing.assert_array_equal(encoded(words, positive_label="malignant"), EXPECTED)
    np.testing.assert_array_equal(encoded(words, positive_label="benign"), 1 - EXPECTED)
    # numbers other than 0/1 with a declared positive class
    np.testing.assert_array_equal(encoded(EXPECTED * 2 + 2, positive_label=4), EXPECTED)
    # 'yes' / 'no' read as booleans by the CSV reader, positive_label still as written
    np.testing.assert_array_equal(encoded(EXPECTED == 1, positive_label="yes"), EXPECTED)
    np.testing.assert_array_equal(encoded(EXPECTED == 1, positive_label="No"), 1 - EXPECTED)
    # a boolean label where False is the positive class
    np.testing.assert_array_equal(encoded(EXPECTED == 1, positive_label=False), 1 - EXPECTED)


def test_nulls_stay_for_the_contract() -> None:
    words = np.where(EXPECTED == 1, "yes", "no").astype(object)
    words[3] = None
    out = encoded(words, positive_label="yes")
    assert np.isnan(out[3]) and out[0] == EXPECTED[0]


def test_strings_without_positive_label_named() -> None:
    message = refused(np.where(EXPECTED == 1, "M", "B"))
    assert "'label'" in message and "['B', 'M']" in message
    assert "positive_label: 'M'" in message


def test_other_numbers_named() -> None:
    message = refused(EXPECTED + 1)
    assert "[1.0, 2.0]" in message and "positive_label" in message


def test_more_than_two_values_named() -> None:
    values = np.array(["a", "b", "c"])[np.arange(len(EXPECTED)) % 3]
    message = refused(values, positive_label="a")
    assert "two label values" in message and "['a', 'b', 'c']" in message


def test_positive_label_not_found_hints_yaml_booleans() -> None:
    message = refused(np.where(EXPECTED == 1, "yes", "no"), positive_label=True)
    assert "positive_label True is not among" in message and "quote it in YAML" in message


def test_regression_labels() -> None:
    reg = {"task": "regression", "gates": {}}
    np.testing.assert_array_equal(encoded(EXPECTED == 1, **reg), EXPECTED)
    assert encoded(["1.5"] * 400, **reg)[0] == 1.5
    message = refused(["n/a"] * 10 + ["2"] * 390, **reg)
    assert "numeric label" in message and "n/a" in message
    with pytest.raises(SpecError, match="positive_label 'x' is only for binary_classification"):
        spec(positive_label="x", **reg)


def test_validation_fails_on_bad_labels(home: PlatformHome) -> None:
    outcome = validate_batch(spec(), home, frame().assign(label=lambda f: f["label"] + 5))
    assert not outcome.passed and outcome.validated_path is None
    assert "label_values(label)" in outcome.summary() and "[5, 6]" in outcome.summary()
    words = frame().assign(label=lambda f: np.where(f["label"] == 1, "bad", "good"))
    outcome = validate_batch(spec(positive_label="bad"), home, words)
    assert outcome.passed, outcome.summary()
    assert set(pd.read_parquet(outcome.validated_path)["label"]) == {0, 1}
