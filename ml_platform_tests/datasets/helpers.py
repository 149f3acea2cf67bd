"""Small datasets of every timestamp and label form, and specs declaring them (issue 17)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.spec import PipelineSpec, parse_spec

ROWS = 400


def frame(rows: int = ROWS, seed: int = 3) -> pd.DataFrame:
    """Yearly rows (2000..2019, 20 per year) with a signal in 'x' and a boolean 'flag'."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    flag = rng.random(rows) < 0.5
    logit = 1.5 * x + 1.0 * flag - 0.8
    label = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "row_id": np.arange(1, rows + 1),
            "year": 2000 + np.arange(rows) * 20 // rows,
            "x": x,
            "flag": flag,
            "label": label.astype("int64"),
        }
    )


def spec(tmp: Path | None = None, **updates: Any) -> PipelineSpec:
    attributes: dict[str, Any] = {
        "name": "tiny",
        "source": {"path": str((tmp or Path("/nonexistent")) / "tiny.csv")},
        "entity_key": "row_id",
        "event_timestamp": {"column": "year", "unit": "year"},
        "label": "label",
        "task": "binary_classification",
        "features": {"numeric": ["x"], "categorical": ["flag"]},
        "model": {
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 200},
        },
        "gates": {"min_metrics": {"roc_auc": 0.6}, "bootstrap_samples": 50, "min_slice_rows": 50},
        "monitoring": {"enabled": False},
        "seed": 5,
    }
    attributes.update(updates)
    return parse_spec({k: v for k, v in attributes.items() if v is not ...}, "tiny/defs.yaml")
