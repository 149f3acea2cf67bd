"""Feature and prediction drift of one batch against the training reference.

A feature drifts when its effect size reaches the spec's threshold AND its Holm-adjusted
p-value is below ``alpha``. Either condition alone fails in practice: p-values alone flag
trivial shifts in large batches (everything is significant at 1M rows) and, over 10+ features,
flag something in about half of undrifted windows; effect sizes alone are noisy in small
batches. Holm runs over every test of the batch (features and the prediction), so an undrifted
batch raises any drift with probability at most ``alpha``. See docs/monitoring.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ml_platform.monitoring import stats
from ml_platform.spec import MonitoringSpec

Kind = Literal["numeric", "categorical", "prediction"]
Statistic = Literal["psi", "wasserstein", "jensen_shannon"]
MAX_LISTED_CATEGORIES = 20  # new categories named in a result; the quality check counts all


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN or infinity: such values are reported as null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class FeatureDrift:
    """One column's drift. ``statistic``/``value``/``threshold`` are the measure that decided:
    for numeric features the one of PSI and normalized Wasserstein nearest its threshold
    (relative to it), so a flag always shows the number that raised it."""

    feature: str
    kind: Kind
    statistic: Statistic
    value: float
    threshold: float
    p_value: float
    p_adjusted: float
    drifted: bool
    reason: str
    rows: int
    reference_rows: int
    psi: float | None = None
    wasserstein: float | None = None  # 1-Wasserstein / the reference's standard deviation
    ks_statistic: float | None = None
    new_categories: list[str] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)  # every statistic judged

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("value", "p_value", "p_adjusted", "psi", "wasserstein", "ks_statistic"):
            out[key] = finite_or_none(out[key])
        return out


@dataclass(frozen=True)
class DriftResult:
    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    rows: int
    reference_rows: int
    judged: bool  # False when the batch is smaller than min_rows: reported, not judged

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def any_drift(self) -> bool:
        return bool(self.drifted_features) or bool(self.prediction and self.prediction.drifted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "judged": self.judged,
            "any_drift": self.any_drift,
            "drifted_features": self.drifted_features,
            "features": [f.to_dict() for f in self.features],
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
        }


@dataclass(frozen=True)
class _Measured:
    """A column's statistics before the batch's p-values are Holm-adjusted together."""

    feature: str
    kind: Kind
    effects: dict[str, tuple[float, float]]  # statistic -> (value, threshold)
    p_value: float
    rows: int
    reference_rows: int
    extras: dict[str, Any]


def _numeric(
    name: str, kind: Kind, ref: np.ndarray, cur: np.ndarray, settings: MonitoringSpec
) -> _Measured:
    """PSI on reference deciles, KS p-value, Wasserstein over the reference's std. Predictions
    are judged on PSI only (a score's std is not a natural unit)."""
    extras: dict[str, Any] = {}
    if len(ref) == 0 or len(cur) == 0:
        nan = float("nan")
        effects = {"psi": (nan, settings.psi_threshold)}
        return _Measured(name, kind, effects, nan, len(cur), len(ref), extras)
    edges = stats.decile_edges(ref)
    psi = stats.psi(stats.bin_shares(ref, edges), stats.bin_shares(cur, edges))
    ks, distance = stats.ks_and_wasserstein(ref, cur)
    std = float(ref.std())
    normalized = distance / std if std > 0 else (0.0 if distance == 0 else math.inf)
    extras = {"psi": psi, "wasserstein": normalized, "ks_statistic": ks}
    effects = {"psi": (psi, settings.psi_threshold)}
    if kind == "numeric":
        effects["wasserstein"] = (normalized, settings.wasserstein_threshold)
    p_value = stats.ks_p_value(ks, len(ref), len(cur))
    return _Measured(name, kind, effects, p_value, len(cur), len(ref), extras)


def _categorical(
    name: str,
    reference: pd.Series,
    current: pd.Series,
    settings: MonitoringSpec,
    kind: Kind = "categorical",
) -> _Measured:
    """Jensen-Shannon distance of the category frequencies, chi-square p-value of the
    2 x k table; categories absent from the reference are listed."""
    ref_counts, cur_counts = stats.category_counts(reference), stats.category_counts(current)
    index = ref_counts.index.union(cur_counts.index)
    ref = ref_counts.reindex(index, fill_value=0).to_numpy()
    cur = cur_counts.reindex(index, fill_value=0).to_numpy()
    threshold = settings.jensen_shannon_threshold
    if ref.sum() == 0 or cur.sum() == 0:
        nan = float("nan")
        effects = {"jensen_shannon": (nan, threshold)}
        return _Measured(name, kind, effects, nan, int(cur.sum()), int(ref.sum()), {})
    new = cur_counts.index.difference(ref_counts.index)
    new = cur_counts[new].sort_values(ascending=False).index[:MAX_LISTED_CATEGORIES]
    _, p_value = stats.chi2_p_value(ref, cur)
    return _Measured(
        name,
        kind,
        {"jensen_shannon": (stats.jensen_shannon(ref, cur), threshold)},
        p_value,
        int(cur.sum()),
        int(ref.sum()),
        {"new_categories": [str(c) for c in new]},
    )


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _decide(
    m: _Measured, p_adjusted: float, batch_rows: int, settings: MonitoringSpec
) -> FeatureDrift:
    """The effect nearest its threshold decides; drift needs it breached and p_adjusted < alpha.
    A batch below ``min_rows`` is measured and reported, never flagged."""
    judged = batch_rows >= settings.min_rows
    name, (value, threshold) = max(
        m.effects.items(),
        key=lambda kv: kv[1][0] / kv[1][1] if math.isfinite(kv[1][0]) else -math.inf,
    )
    breached = [f"{s} {_fmt(v)} >= {_fmt(t)}" for s, (v, t) in m.effects.items() if v >= t]
    significant = p_adjusted < settings.alpha
    test = f"Holm p {_fmt(p_adjusted)} {'<' if significant else '>='} {_fmt(settings.alpha)}"
    if math.isnan(value):
        reason = "no non-null values to compare"
    elif not judged:
        reason = f"not judged: {batch_rows} rows < min_rows {settings.min_rows}"
    elif not breached:
        reason = " and ".join(f"{s} {_fmt(v)} < {_fmt(t)}" for s, (v, t) in m.effects.items())
    else:
        reason = f"{' or '.join(breached)}{',' if significant else ' but'} {test}"
    drifted = judged and bool(breached) and significant and not math.isnan(value)
    return FeatureDrift(
        feature=m.feature,
        kind=m.kind,
        statistic=name,  # type: ignore[arg-type]  # keys are Statistic names
        value=value,
        threshold=threshold,
        p_value=m.p_value,
        p_adjusted=p_adjusted,
        drifted=drifted,
        reason=reason,
        rows=m.rows,
        reference_rows=m.reference_rows,
        thresholds={s: t for s, (_, t) in m.effects.items()},
        **m.extras,
    )


def _class_names(classes: np.ndarray) -> pd.Series:
    """Predicted classes as category names: 3.0 -> "3" (classes are integers)."""
    values = pd.Series(np.asarray(classes, dtype="float64"))
    return values[np.isfinite(values)].astype("int64").astype(str)


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    settings: MonitoringSpec,
    reference_scores: np.ndarray | None = None,
    current_scores: np.ndarray | None = None,
    classes: bool = False,
) -> DriftResult:
    """Drift of every listed column of ``current`` against ``reference`` (non-null values
    only), and of the model's scores when both score arrays are given. ``classes``: the scores
    are predicted classes (multiclass), compared as a category (Jensen-Shannon, chi-square);
    a class value's size means nothing, so deciles and PSI would not."""
    measured = [
        _numeric(
            col,
            "numeric",
            stats.finite_sorted(reference[col]),
            stats.finite_sorted(current[col]),
            settings,
        )
        for col in numeric
    ]
    measured += [_categorical(col, reference[col], current[col], settings) for col in categorical]
    if reference_scores is not None and current_scores is not None and classes:
        measured.append(
            _categorical(
                "prediction",
                _class_names(reference_scores),
                _class_names(current_scores),
                settings,
                "prediction",
            )
        )
    elif reference_scores is not None and current_scores is not None:
        measured.append(
            _numeric(
                "prediction",
                "prediction",
                stats.finite_sorted(pd.Series(reference_scores)),
                stats.finite_sorted(pd.Series(current_scores)),
                settings,
            )
        )
    adjusted = stats.holm(np.array([m.p_value for m in measured]))
    results = [
        _decide(m, float(p), len(current), settings)
        for m, p in zip(measured, adjusted, strict=True)
    ]
    prediction = results.pop() if results and results[-1].kind == "prediction" else None
    judged = len(current) >= settings.min_rows
    return DriftResult(results, prediction, len(current), len(reference), judged)
