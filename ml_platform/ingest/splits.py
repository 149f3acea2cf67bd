"""Train / validation / test assignment of a validated batch, shared by validation (which stops
a batch whose split cannot work) and training (which uses it).

With an event timestamp the split is by time: the test window is the most recent, and windows
are cut at timestamps, so rows sharing one stay together. Without one it is a seeded random
split, stratified by class for classification: each row's place comes from a seeded hash of
its entity key (and row content), so it does not depend on the file's row order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml_platform.spec import PipelineSpec

WINDOWS = ("train", "validation", "test")
TRAIN, VALIDATION, TEST = 0, 1, 2


class SplitError(ValueError):
    """A batch whose split cannot work; the message names the problem and the fix."""


@dataclass(frozen=True)
class Assignment:
    window: np.ndarray  # per row: TRAIN, VALIDATION or TEST
    kind: str  # "time" or "random"

    def rows(self, which: int) -> np.ndarray:
        return np.flatnonzero(self.window == which)


def _fix_time(spec: PipelineSpec) -> str:
    return (
        "Fix: land data spanning more event times, change split.validation_fraction / "
        "split.test_fraction, or omit event_timestamp for a seeded random split"
        if spec.has_event_time
        else "Fix: land more rows"
    )


def _plain(value: object) -> str:
    """A class value as the user wrote it: 1 (a 0/1 label is read as 0.0/1.0 at times), 'a'."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return repr(value)


def _time(frame: pd.DataFrame, spec: PipelineSpec) -> np.ndarray:
    ts = frame[spec.event_timestamp]
    n = len(frame)
    ordered = ts.sort_values(kind="stable")
    distinct = ts.nunique()
    if distinct == 1:
        raise SplitError(
            f"event_timestamp '{spec.event_timestamp}' has one distinct value "
            f"({ordered.iloc[0]}) in all {n} rows: a time split needs the test window "
            f"after the validation window after the training window. {_fix_time(spec)}"
        )
    n_test = max(1, int(n * spec.split.test_fraction))
    n_val = max(1, int(n * spec.split.validation_fraction))
    test_start = ordered.iloc[n - n_test]
    val_start = ordered.iloc[n - n_test - n_val]
    after_val, after_test = (ts >= val_start).to_numpy(), (ts >= test_start).to_numpy()
    window = np.where(after_test, TEST, np.where(after_val, VALIDATION, TRAIN))
    for which, name in enumerate(WINDOWS):
        if not (window == which).any():
            raise SplitError(
                f"the {name} window of the time split is empty: '{spec.event_timestamp}' has "
                f"{distinct} distinct values in {n} rows, and the "
                f"{spec.split.validation_fraction:g} / {spec.split.test_fraction:g} "
                f"validation / test cut points fall on shared timestamps (test from "
                f"{test_start}, validation from {val_start}). "
                f"{_fix_time(spec)}"
            )
    return window


def _seeded_rank(frame: pd.DataFrame, spec: PipelineSpec) -> np.ndarray:
    salt = np.uint64(int(hashlib.sha256(f"split:{spec.seed}".encode()).hexdigest()[:16], 16))
    keys = frame[[spec.entity_key, spec.event_timestamp]]
    hashed = pd.util.hash_pandas_object(keys, index=False).to_numpy() ^ salt
    return pd.util.hash_array(hashed)


def _random(frame: pd.DataFrame, spec: PipelineSpec) -> np.ndarray:
    n = len(frame)
    window = np.full(n, TRAIN, dtype=np.int64)
    rank = _seeded_rank(frame, spec)
    groups = (
        frame.groupby(spec.label, sort=True).indices if spec.is_classifier else {None: np.arange(n)}
    )
    for value, idx in groups.items():
        m = len(idx)
        if m < 3:
            raise SplitError(
                f"class {_plain(value)} of label '{spec.label}' has {m} row(s); the stratified "
                f"split needs at least 3 (one each for train, validation and test). Fix: land more "
                f"rows of that class"
            )
        ordered = idx[np.argsort(rank[idx], kind="stable")]
        n_test = max(1, int(m * spec.split.test_fraction))
        n_val = max(1, int(m * spec.split.validation_fraction))
        window[ordered[:n_test]] = TEST
        window[ordered[n_test : n_test + n_val]] = VALIDATION
    return window


def _classes(frame: pd.DataFrame, spec: PipelineSpec, a: Assignment) -> None:
    classes = sorted(frame[spec.label].dropna().unique().tolist())
    for which, name in enumerate(WINDOWS):
        part = frame[spec.label].to_numpy()[a.window == which]
        missing = [c for c in classes if not (part == c).any()]
        if missing:
            where = ""
            if a.kind == "time":
                ts = frame[spec.event_timestamp][a.window == which]
                where = f" ({pd.Timestamp(ts.min())} .. {pd.Timestamp(ts.max())})"
            raise SplitError(
                f"class {', '.join(_plain(c) for c in missing)} of label '{spec.label}' is missing "
                f"from the {name} window{where}, {len(part)} rows: the model could not be "
                f"{'trained' if which == TRAIN else 'evaluated'} on it. {_fix_time(spec)}"
            )


def assign(frame: pd.DataFrame, spec: PipelineSpec) -> Assignment:
    """Each row's window, or SplitError when the split cannot work for this batch."""
    n = len(frame)
    n_test = max(1, int(n * spec.split.test_fraction))
    n_val = max(1, int(n * spec.split.validation_fraction))
    if n - n_test - n_val < 2:
        raise SplitError(
            f"{n} rows are too few to split into train/validation/test. Fix: land more rows"
        )
    if spec.has_event_time:
        a = Assignment(_time(frame, spec), "time")
    else:
        a = Assignment(_random(frame, spec), "random")
    if spec.is_classifier:
        _classes(frame, spec, a)
    return a
