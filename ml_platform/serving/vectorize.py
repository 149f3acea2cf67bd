"""Scores from plain arrays: the fitted sklearn Pipeline's own transformers applied to numpy
columns, without a pandas DataFrame on the request path.

A ``Pipeline([("preprocess", ColumnTransformer), ("model", estimator)])`` (the artifact the
training side logs) is split once, at load, into per-transformer column indices and copies of
the fitted transformers; a batch is then one float64 matrix for the numeric columns and one
object matrix for the categoricals. The copies drop ``feature_names_in_`` (the originals were
fitted on a DataFrame and would warn on every array). Anything of another shape falls back to
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
            parts.append(_Part(fitted, tuple(index[c] for c in cols)))
        return parts, estimator

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
            blocks.append(x if part.transformer == "passthrough" else part.transformer.transform(x))
        return np.hstack([b.toarray() if hasattr(b, "toarray") else b for b in blocks])

    def score(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """P(label = 1) for a classifier, the prediction otherwise, one per row."""
        if self.parts is None:
            return self._score_frame(rows)
        x = self.matrix(rows)
        if self.classifier:
            return np.asarray(self.estimator.predict_proba(x)[:, 1], dtype="float64")
        return np.asarray(self.estimator.predict(x), dtype="float64")

    def _score_frame(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """The fallback: one DataFrame per batch, typed as the training side types it."""
        import pandas as pd

        frame = pd.DataFrame(list(rows), columns=self.columns)
        for col in self.columns:
            frame[col] = frame[col].astype("float64" if col in self.numeric else "object")
        if self.classifier:
            return np.asarray(self.pipeline.predict_proba(frame)[:, 1], dtype="float64")
        return np.asarray(self.pipeline.predict(frame), dtype="float64")
