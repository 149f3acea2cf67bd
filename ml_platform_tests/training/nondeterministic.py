"""An estimator that is deterministic within a process and not across processes.

It weighs its input columns by their rank in the iteration order of a set of strings. Python
randomizes str hashes per process (PYTHONHASHSEED), so a new process orders the set, and
predicts, differently; a refit in the same process gives the same order every time. The same
bug class: iterating over a set or dict of names when building features, an unseeded generator
created at import, ``os.getpid()`` in a seed.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class HashOrderClassifier(ClassifierMixin, BaseEstimator):
    def __init__(self, random_state: int | None = None) -> None:
        self.random_state = random_state  # honoured, and still not enough

    def fit(self, x: np.ndarray, y: np.ndarray) -> HashOrderClassifier:
        x = np.asarray(x, dtype=float)
        self.classes_ = np.unique(y)
        names = {f"column_{i}" for i in range(x.shape[1])}
        order = [int(name.removeprefix("column_")) for name in names]  # hash order
        self.weights_ = np.empty(x.shape[1])
        self.weights_[order] = 1.0 / (1.0 + np.arange(x.shape[1]))
        self.scale_ = np.nanstd(x, axis=0) + 1e-9
        self.mean_ = np.nanmean(x, axis=0)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = np.nan_to_num((np.asarray(x, dtype=float) - self.mean_) / self.scale_)
        p = 1.0 / (1.0 + np.exp(-(z @ self.weights_) / len(self.weights_)))
        return np.column_stack([1.0 - p, p])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[(self.predict_proba(x)[:, 1] >= 0.5).astype(int)]
