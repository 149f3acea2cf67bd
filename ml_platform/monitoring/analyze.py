"""One batch judged against the champion's training reference: drift, data quality and
performance. The single entry point of the Dagster monitoring asset and ``ml-platform
monitor``, so both reach the same verdict on the same rows."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.monitoring.drift import DriftResult, compute_drift
from ml_platform.monitoring.performance import (
    MetricEstimate,
    estimated_performance,
    prior_corrected,
    realized_metrics,
    true_class_probability,
)
from ml_platform.monitoring.quality import QualityResult, data_quality
from ml_platform.monitoring.reference import ChampionReference, score
from ml_platform.spec import PipelineSpec
from ml_platform.training.fitting import classes_of
from ml_platform.training.fitting import scores as scores_matrix
from ml_platform.training.metrics import higher_is_better


@dataclass(frozen=True)
class BatchAnalysis:
    label: str
    rows: int
    drift: DriftResult
    quality: QualityResult
    realized: dict[str, MetricEstimate] | None  # None: no labelled row in the batch
    estimated: dict[str, float] | None  # None: not a binary classifier
    champion_version: str
    performance_breaches: list[str] = field(default_factory=list)
    labelled_rows: int = 0

    @property
    def breached(self) -> bool:
        """Drift (a feature or the prediction), a data-quality bound or the performance floor."""
        return self.drift.any_drift or self.quality.breached or bool(self.performance_breaches)

    @property
    def reasons(self) -> list[str]:
        """Every breach as a sentence naming the column or metric, its value and its bound."""
        drifted = [f for f in self.drift.features if f.drifted]
        if self.drift.prediction is not None and self.drift.prediction.drifted:
            drifted.append(self.drift.prediction)
        return [
            *(f"drift in {f.feature}: {f.reason}" for f in drifted),
            *self.quality.breaches,
            *self.performance_breaches,
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "rows": self.rows,
            "champion_version": self.champion_version,
            "breached": self.breached,
            "reasons": self.reasons,
            "drift": self.drift.to_dict(),
            "quality": self.quality.to_dict(),
            "labelled_rows": self.labelled_rows,
            "realized": None
            if self.realized is None
            else {k: v.to_dict() for k, v in self.realized.items()},
            "estimated": None
            if self.estimated is None
            else {k: (v if math.isfinite(v) else None) for k, v in self.estimated.items()},
            "performance_breaches": list(self.performance_breaches),
        }


def performance_floors(spec: PipelineSpec) -> dict[str, float]:
    """The spec's monitoring floor, by default the gates' min_metrics."""
    floors = spec.monitoring.min_performance
    return dict(spec.gates.min_metrics if floors is None else floors)


def _performance_breaches(
    spec: PipelineSpec,
    realized: dict[str, MetricEstimate] | None,
    estimated: dict[str, float] | None,
    labelled_rows: int,
    rows: int,
) -> list[str]:
    """Realized metrics decide when at least ``min_rows`` rows have labels; before that the
    estimate does (for the metrics it has). A metric neither provides is not monitored."""
    min_rows = spec.monitoring.min_rows
    found = []
    for metric, floor in performance_floors(spec).items():
        value, source = None, ""
        if realized and metric in realized and labelled_rows >= min_rows:
            got = realized[metric]
            value = got.value
            source = f"realized {metric} {value:.4g} (95% CI {got.low:.4g}-{got.high:.4g})"
        elif estimated and metric in estimated and rows >= min_rows:
            value = estimated[metric]
            source = f"estimated {metric} {value:.4g} (from the champion's probabilities)"
        if value is None or not math.isfinite(value):
            continue
        if higher_is_better(metric) and value < floor:
            found.append(f"{source} below the floor {floor:g}")
        elif not higher_is_better(metric) and value > floor:
            found.append(f"{source} above the bound {floor:g} (lower is better)")
    return found


def trained_balanced(spec: PipelineSpec, model: Any) -> bool:
    """Whether training weighted the classes equally (fitting._sample_weight's condition),
    which moves the probabilities off the training prior."""
    import inspect

    estimator = getattr(model, "named_steps", {}).get("model")
    if not (spec.is_classification and spec.model.balance_classes and estimator is not None):
        return False
    return "sample_weight" in inspect.signature(estimator.fit).parameters


def estimate(
    spec: PipelineSpec, reference: ChampionReference, scores: np.ndarray
) -> dict[str, float]:
    """The confidence-based estimate, with the probabilities put back on the training prior
    when the champion was trained with balanced class weights."""
    probabilities = None
    if trained_balanced(spec, reference.model):
        prior = float(pd.to_numeric(reference.frame[spec.label], errors="coerce").mean())
        if 0 < prior < 1:
            probabilities = prior_corrected(scores, prior)
    return estimated_performance(scores, probabilities)


def _labels(labels: pd.Series | None, rows: int) -> np.ndarray | None:
    if labels is None:
        return None
    if len(labels) != rows:
        raise ValueError(f"{len(labels)} labels for a batch of {rows} rows")
    return pd.to_numeric(labels, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _true_class_proba(
    spec: PipelineSpec, model: Any, rows: pd.DataFrame, y: np.ndarray
) -> np.ndarray | None:
    """Multiclass: each labelled row's probability of its true class (for log loss), from the
    champion's probability matrix; None otherwise or when a label is not a class it knows."""
    if not spec.is_multiclass or len(rows) == 0:
        return None
    proba = scores_matrix(spec, model, rows)
    return true_class_probability(y, proba, classes_of(model))


def analyze_batch(
    spec: PipelineSpec,
    reference: ChampionReference,
    batch: pd.DataFrame,
    labels: pd.Series | None,
    label: str,
    scores: np.ndarray | None = None,
) -> BatchAnalysis:
    """Drift of every model feature and of the champion's scores, data quality, realized
    metrics on the rows whose label is known (``labels`` is aligned with the batch's rows, NaN
    where unknown) and, for binary classifiers, the estimate from the probabilities.
    ``scores``: the champion's scores of the batch's rows when the caller has them already
    (``ml-platform monitor`` scores a whole file once: a model call per small chunk cost more
    than the chunk's statistics)."""
    settings = spec.monitoring
    numeric, categorical = spec.features.model_numeric, spec.features.categorical
    if scores is None:
        scores = score(reference.model, batch, spec) if len(batch) else np.empty(0)
    elif len(scores) != len(batch):
        raise ValueError(f"{len(scores)} scores for a batch of {len(batch)} rows")
    drift = compute_drift(
        reference.frame,
        batch,
        numeric,
        categorical,
        settings,
        reference.reference_scores(spec),
        scores,
        classes=spec.is_multiclass,
    )
    quality = data_quality(reference.frame, batch, numeric, categorical, settings)
    y = _labels(labels, len(batch))
    known = np.zeros(len(batch), bool) if y is None else ~np.isnan(y)
    realized = (
        realized_metrics(
            spec.task,
            y[known],
            scores[known],
            spec.seed,
            true_class_proba=_true_class_proba(spec, reference.model, batch[known], y[known]),
        )
        if y is not None and known.any()
        else None
    )
    estimated = estimate(spec, reference, scores) if spec.is_classification else None
    breaches = _performance_breaches(spec, realized, estimated, int(known.sum()), len(batch))
    return BatchAnalysis(
        label=label,
        rows=len(batch),
        drift=drift,
        quality=quality,
        realized=realized,
        estimated=estimated,
        champion_version=reference.version,
        performance_breaches=breaches,
        labelled_rows=int(known.sum()),
    )
