"""Multiclass labels through validation (issue 17): a batch with integer classes passes and is
stored with the classes as floats; one with two classes or text classes stops there, naming the
label, the values and the fix."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_platform.contracts.validate import validate_batch
from ml_platform.home import PlatformHome
from ml_platform_tests.datasets.helpers import frame, spec

MULTI = {"task": "multiclass_classification", "gates": {"bootstrap_samples": 50}}


def three(values: list[object]) -> pd.DataFrame:
    data = frame()
    return data.assign(label=np.resize(np.asarray(values, dtype=object), len(data)))


def test_integer_classes_pass_validation(home: PlatformHome) -> None:
    outcome = validate_batch(spec(**MULTI), home, three([4, 8, 15]).astype({"label": "int64"}))
    assert outcome.passed, outcome.summary()
    stored = pd.read_parquet(outcome.validated_path)["label"]
    assert stored.dtype == "float64" and set(stored) == {4.0, 8.0, 15.0}


def test_two_classes_or_text_stop_validation(home: PlatformHome) -> None:
    outcome = validate_batch(spec(**MULTI), home, three([0, 1]).astype({"label": "int64"}))
    assert not outcome.passed and outcome.validated_path is None
    summary = " ".join(outcome.summary().split())
    assert "label_values(label)" in summary
    assert "needs at least 3 classes; label 'label' holds 2: [0, 1]" in summary
    outcome = validate_batch(spec(**MULTI), home, three(["red", "white", "rose"]))
    assert not outcome.passed
    summary = " ".join(outcome.summary().split())
    assert "needs the label 'label' as integer class values" in summary
