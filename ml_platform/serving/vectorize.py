"""Scores from plain arrays: the fitted sklearn Pipeline's own transformers applied to numpy
columns, without a pandas DataFrame on the request path.

A ``Pipeline([("preprocess", ColumnTransformer), ("model", estimator)])`` (the artifact the
training side logs) is split once, at load, into per-transformer column indices and copies of
the fitted transformers; a batch is then one float64 matrix for the numeric columns and one
object matrix for the categoricals. The copies drop ``feature_names_in_`` (the originals were
fitted on a DataFrame and would warn on every array). The imputer and the imputer + one-hot
encoder the training side builds are compiled further to ``np.where`` and a dict lookup (their
validation cost 0.8 ms a row), kept only where they reproduce the fitted transformer exactly on a
probe at load. Anything of another shape falls back to
the pipeline itself on a DataFrame built once per batch. Exactness against the pipeline's own
``predict_proba`` is tested on the holdout (ml_platform_tests/serving/test_parity.py).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def _strip_feature_names(estimator: Any) -> Any:
    """A deep copy with ``feature_names_in_`` removed from it and every nested estimator."""
    clone = copy.deepcopy(estimator)
    stack = [clone]
    while stack:
        est = stack.pop()
        if "feature_names_in_" in getattr(est, "__dict__", {}):
            del est.feature_names_in_
        stack.extend(step for _, step in getattr(est, "steps", []))
    return clone


@dataclass(frozen=True)
class _Part:
    transformer: Any  # a fitted transformer, or "passthrough"
    columns: tuple[int, ...]  # indices into the model's columns
    fast: Any = None  # the same transform as plain numpy/dict operations, when compiled


def _imputer_fill(imputer: Any) -> np.ndarray | None:
    """A fitted SimpleImputer on NaN that keeps every column: its fill values."""
    missing = imputer.missing_values
    if not (isinstance(missing, float) and np.isnan(missing)) or imputer.add_indicator:
        return None
    stats = np.asarray(imputer.statistics_)
    if stats.dtype.kind == "f" and np.isnan(stats).any() and not imputer.keep_empty_features:
        return None  # all-missing columns would be dropped
    return stats


class _FastNumeric:
    """SimpleImputer (NaN -> its statistics) on a float block: np.where."""

    def __init__(self, fill: np.ndarray) -> None:
        self.fill = fill.astype("float64")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(x), self.fill, x)


class _FastOneHot:
    """SimpleImputer(constant) then OneHotEncoder(handle_unknown="ignore"): each value's output
    column, learnt at load by asking the fitted encoder itself about every known category."""

    def __init__(self, imputer: Any, encoder: Any) -> None:
        self.fill = imputer.statistics_
        self.width = len(encoder.get_feature_names_out())
        probe_rows = max(len(c) for c in encoder.categories_)
        self.lookup: list[dict[Any, int]] = []
        for j, cats in enumerate(encoder.categories_):
            probe = np.empty((probe_rows, len(encoder.categories_)), dtype=object)
            for k, other in enumerate(encoder.categories_):
                probe[:, k] = other[0]
            probe[: len(cats), j] = cats
            out = encoder.transform(probe)
            out = out.toarray() if hasattr(out, "toarray") else np.asarray(out)
            mapping: dict[Any, int] = {}
            columns = self._columns_of(encoder, j)
            for i, cat in enumerate(cats):
                ours = [int(h) for h in np.flatnonzero(out[i]) if h in columns]
                mapping[cat] = ours[0] if ours else -1
            self.lookup.append(mapping)

    @staticmethod
    def _columns_of(encoder: Any, j: int) -> set[int]:
        names = encoder.get_feature_names_out()
        prefix = (
            f"{encoder.feature_names_in_[j]}_"
            if hasattr(encoder, "feature_names_in_")
            else f"x{j}_"
        )
        return {i for i, n in enumerate(names) if str(n).startswith(prefix)}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((x.shape[0], self.width), dtype="float64")
        for j, mapping in enumerate(self.lookup):
            fill = self.fill[j]
            for i in range(x.shape[0]):
                v = x[i, j]
                if v is None or (isinstance(v, float) and np.isnan(v)):
                    v = fill
                col = mapping.get(v, -1)
                if col >= 0:
                    out[i, col] = 1.0
        return out


def _fast(transformer: Any) -> Any:
    """A plain-numpy equivalent of the transformers the training side builds, or None."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    if isinstance(transformer, SimpleImputer) and transformer.strategy != "constant":
        fill = _imputer_fill(transformer)
        return None if fill is None or fill.dtype.kind not in "fiu" else _FastNumeric(fill)
    if isinstance(transformer, Pipeline) and len(transformer.steps) == 2:
        imputer, encoder = transformer.steps[0][1], transformer.steps[1][1]
        if (
            isinstance(imputer, SimpleImputer)
            and imputer.strategy == "constant"
            and _imputer_fill(imputer) is not None
            and isinstance(encoder, OneHotEncoder)
            and encoder.handle_unknown == "ignore"
            and encoder.drop is None
        ):
            return _FastOneHot(imputer, encoder)
    return None


class Scorer:
    """Scores rows given as a list of model columns (values in the model's column order).

    ``numeric`` columns are float64 (None -> NaN); the others are kept as Python objects
    (None -> NaN, as pandas gives the pipeline a missing value in an object column).
    """

    def __init__(
        self, pipeline: Any, columns: Sequence[str], numeric: Sequence[str], classifier: bool
    ) -> None:
        self.pipeline = pipeline
        self.columns = list(columns)
        self.numeric = set(numeric)
        self.classifier = classifier
        self.parts, self.estimator = self._compile(pipeline)

    @property
    def numpy_path(self) -> bool:
        return self.parts is not None

    def _compile(self, pipeline: Any) -> tuple[list[_Part] | None, Any]:
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            return None, None
        pre, estimator = pipeline.steps[0][1], pipeline.steps[1][1]
        if not isinstance(pre, ColumnTransformer) or getattr(pre, "sparse_output_", False):
            return None, None
        index = {name: i for i, name in enumerate(self.columns)}
        parts = []
        for _, transformer, cols in pre.transformers_:
            if transformer == "drop" or (isinstance(cols, list | tuple) and not cols):
                continue
            if not isinstance(cols, list | tuple) or not all(c in index for c in cols):
                return None, None  # columns by position, mask or callable: not compiled
            fitted = (
                transformer if transformer == "passthrough" else _strip_feature_names(transformer)
            )
            part = _Part(fitted, tuple(index[c] for c in cols))
            if fitted != "passthrough":
                part = _Part(fitted, part.columns, self._checked(_fast(transformer), part))
            parts.append(part)
        return parts, estimator

    def _checked(self, fast: Any, part: _Part) -> Any:
        """``fast`` only if it gives exactly what the fitted transformer gives on a probe of
        missing, known and unknown values; else None (the transformer is used)."""
        if fast is None:
            return None
        numeric = all(self.columns[c] in self.numeric for c in part.columns)
        probe: list[list[Any]] = [[None] * len(self.columns) for _ in range(3)]
        for c in part.columns:
            probe[1][c] = 1.5 if numeric else "__never_seen__"
        if not numeric and isinstance(fast, _FastOneHot):
            for cat_index, c in enumerate(part.columns):
                for cat in list(fast.lookup[cat_index])[:50]:
                    row: list[Any] = [None] * len(self.columns)
                    row[c] = cat
                    probe.append(row)
        x = self._block(probe, part.columns)
        expected = part.transformer.transform(x)
        expected = expected.toarray() if hasattr(expected, "toarray") else expected
        got = fast(x)
        same = got.shape == expected.shape and np.array_equal(
            got, np.asarray(expected, dtype="float64"), equal_nan=True
        )
        return fast if same else None

    def _block(self, rows: Sequence[Sequence[Any]], cols: tuple[int, ...]) -> np.ndarray:
        if all(self.columns[c] in self.numeric for c in cols):
            out = np.array(
                [[np.nan if r[c] is None else r[c] for c in cols] for r in rows], dtype="float64"
            )
        else:
            out = np.empty((len(rows), len(cols)), dtype=object)
            for i, r in enumerate(rows):
                for j, c in enumerate(cols):
                    out[i, j] = np.nan if r[c] is None else r[c]
        return out

    def matrix(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """The estimator's input: each transformer's output, side by side."""
        assert self.parts is not None
        blocks = []
        for part in self.parts:
            x = self._block(rows, part.columns)
            if part.transformer == "passthrough":
                blocks.append(x)
            else:
                blocks.append(part.fast(x) if part.fast else part.transformer.transform(x))
        return np.hstack([b.toarray() if hasattr(b, "toarray") else b for b in blocks])

    def score(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """P(label = 1) for a binary classifier, the prediction otherwise, one per row (a
        multiclass model's is ``probabilities``)."""
        if self.parts is None:
            return self._score_frame(rows)
        x = self.matrix(rows)
        if self.classifier:
            return np.asarray(self.estimator.predict_proba(x)[:, 1], dtype="float64")
        return np.asarray(self.estimator.predict(x), dtype="float64")

    @property
    def classes(self) -> list[Any]:
        """A classifier's class values, in the order of ``probabilities``' columns."""
        holder = self.estimator if self.estimator is not None else self.pipeline
        return np.asarray(holder.classes_).tolist()

    def probabilities(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """The (rows, classes) matrix of ``predict_proba`` (a multiclass model's scores), its
        columns in the order of ``classes``."""
        if self.parts is None:
            return np.asarray(self.pipeline.predict_proba(self._frame(rows)), dtype="float64")
        return np.asarray(self.estimator.predict_proba(self.matrix(rows)), dtype="float64")

    def _frame(self, rows: Sequence[Sequence[Any]]) -> Any:
        """One DataFrame per batch, typed as the training side types it."""
        import pandas as pd

        frame = pd.DataFrame(list(rows), columns=self.columns)
        for col in self.columns:
            frame[col] = frame[col].astype("float64" if col in self.numeric else "object")
        return frame

    def _score_frame(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """The fallback: the pipeline itself on a DataFrame."""
        frame = self._frame(rows)
        if self.classifier:
            return np.asarray(self.pipeline.predict_proba(frame)[:, 1], dtype="float64")
        return np.asarray(self.pipeline.predict(frame), dtype="float64")
