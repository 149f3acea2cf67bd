"""Synthetic data for the monitoring tests: known distributions with known shifts."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from ml_platform.monitoring.reference import ChampionReference
from ml_platform.spec import MonitoringSpec, PipelineSpec
from ml_platform.training import fitting

CATEGORIES = np.array(["a", "b", "c", "d", "e"])
SHARES = np.array([0.4, 0.25, 0.15, 0.12, 0.08])


def settings(**updates: object) -> MonitoringSpec:
    return MonitoringSpec().model_copy(update=updates)


def numeric_column(rng: np.random.Generator, kind: int, n: int, shift: float = 0.0) -> np.ndarray:
    """Four shapes in turn (normal, log-normal, discrete counts, uniform); ``shift`` moves the
    location by that many standard deviations of the column."""
    if kind % 4 == 0:
        return rng.normal(10.0, 2.0, n) + shift * 2.0
    if kind % 4 == 1:
        sigma = 0.5
        std = np.sqrt((np.exp(sigma**2) - 1) * np.exp(2 * 3 + sigma**2))
        return rng.lognormal(3.0, sigma, n) + shift * std
    if kind % 4 == 2:
        return rng.poisson(4.0, n).astype("float64") + np.round(shift * 2.0)
    return rng.uniform(0.0, 1.0, n) + shift * np.sqrt(1 / 12)


def categorical_column(rng: np.random.Generator, n: int, shares: np.ndarray = SHARES) -> np.ndarray:
    return rng.choice(CATEGORIES[: len(shares)], size=n, p=shares / shares.sum())


def frame(
    rng: np.random.Generator,
    n: int,
    numeric: int,
    categorical: int,
    shifts: dict[str, float] | None = None,
    category_shares: dict[str, np.ndarray] | None = None,
    null_rate: float = 0.0,
) -> pd.DataFrame:
    """Columns ``x0..`` (numeric) and ``c0..`` (categorical); ``shifts`` moves named numeric
    columns, ``category_shares`` replaces named categorical columns' frequencies."""
    shifts, category_shares = shifts or {}, category_shares or {}
    data: dict[str, np.ndarray] = {}
    for i in range(numeric):
        name = f"x{i}"
        data[name] = numeric_column(rng, i, n, shifts.get(name, 0.0))
    for i in range(categorical):
        name = f"c{i}"
        data[name] = categorical_column(rng, n, category_shares.get(name, SHARES)).astype(object)
    out = pd.DataFrame(data)
    if null_rate:
        for name in out.columns:
            out.loc[rng.random(n) < null_rate, name] = None
    return out


def columns(numeric: int, categorical: int) -> tuple[list[str], list[str]]:
    return [f"x{i}" for i in range(numeric)], [f"c{i}" for i in range(categorical)]


def labelled(
    rng: np.random.Generator,
    n: int,
    shifts: dict[str, float] | None = None,
    start: str = "2026-01-01",
    intercept: float = -1.0,
) -> pd.DataFrame:
    """A tiny pipeline's rows (see ``tiny_spec``): 4 numeric and 1 categorical feature, a key,
    hourly timestamps from ``start``, and a label drawn from a known logistic model."""
    out = frame(rng, n, numeric=4, categorical=1, shifts=shifts)
    logit = 0.8 * (out["x0"] - 10) / 2 + 1.5 * (out["x3"] - 0.5) + (out["c0"] == "a") + intercept
    out["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    out["key"] = np.arange(n)
    out["ts"] = pd.date_range(start, periods=n, freq="h", tz="UTC")
    return out


def tiny_spec(**monitoring: object) -> PipelineSpec:
    """A logistic-regression pipeline over ``labelled`` rows."""
    return PipelineSpec.model_validate(
        {
            "name": "tiny",
            "source": {"path": "unused.parquet"},
            "entity_key": "key",
            "event_timestamp": "ts",
            "label": "label",
            "task": "binary_classification",
            "features": {"numeric": ["x0", "x1", "x2", "x3"], "categorical": ["c0"]},
            "model": {
                "estimator": "sklearn.linear_model.LogisticRegression",
                "balance_classes": False,  # balanced weights would uncalibrate the probabilities
            },
            "gates": {"min_metrics": {"roc_auc": 0.6}},
            "monitoring": monitoring,
        }
    )


def tiny_champion(spec: PipelineSpec, reference: pd.DataFrame) -> ChampionReference:
    """A champion fitted on ``reference`` without MLflow (the analysis needs only the model)."""
    model = fitting.fit(spec, reference)
    return ChampionReference("3", "run-id", datetime(2026, 1, 1, tzinfo=UTC), reference, model)


def demo_features(spec: PipelineSpec, n: int, seed: int = 0) -> pd.DataFrame:
    """Rows shaped like the demo's feature table (key, timestamp, every model feature), with
    made-up values: enough for input checks that stop before any model is loaded."""
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(
        {
            spec.entity_key: np.arange(n),
            spec.event_timestamp: pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
        }
    )
    for col in spec.features.model_numeric:
        out[col] = rng.normal(100.0, 10.0, n)
    for col in spec.features.categorical:
        out[col] = rng.choice(["a", "b", "c"], n)
    return out
