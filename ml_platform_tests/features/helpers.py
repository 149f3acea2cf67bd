"""A tiny pipeline spec and hand-made feature tables for feature-store tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ml_platform.features import source
from ml_platform.features.definitions import features_table
from ml_platform.features.tables import TableInfo
from ml_platform.home import PlatformHome
from ml_platform.ingest.io import write_parquet_hashed
from ml_platform.spec import PipelineSpec, parse_spec

T0 = pd.Timestamp("2026-02-01", tz="UTC")


def tiny_spec(**features: object) -> PipelineSpec:
    attrs = {
        "name": "shop",
        "source": {"path": "{home}/landing/shop/*.csv"},
        "entity_key": "user_id",
        "event_timestamp": "ts",
        "label": "bought",
        "task": "binary_classification",
        "features": {
            "numeric": ["spend"],
            "categorical": ["tier"],
            "aggregates": [{"name": "visits_7d", "agg": "count", "window": "7d"}],
            **features,
        },
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
    }
    return parse_spec(attrs, "tiny_spec")


def feature_rows(rows: list[tuple[int, pd.Timestamp, float, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "ts": [r[1] for r in rows],
            "spend": [r[2] for r in rows],
            "tier": [r[3] for r in rows],
            "visits_7d": [r[4] for r in rows],
        }
    )


def write_features(spec: PipelineSpec, home: PlatformHome, frame: pd.DataFrame) -> Path:
    path = features_table(spec, home)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def publish_features(spec: PipelineSpec, home: PlatformHome, frame: pd.DataFrame) -> TableInfo:
    """What a run's features step hands on: its content-addressed table, published as the
    Feast source."""
    path, version = write_parquet_hashed(
        frame, home.pipeline_dir(spec.name) / "features", lambda h: f"{h}.parquet"
    )
    stamp = source.publish(path, features_table(spec, home))
    return TableInfo(str(path), len(frame), version, list(frame.columns), source_stamp=stamp)


def history(days: int = 10, users: int = 20) -> pd.DataFrame:
    """One row per user per day: spend = user * 100 + day, so a value names its row."""
    rows = [
        (
            u,
            T0 + pd.Timedelta(days=d, hours=u % 5),
            float(u * 100 + d),
            "gold" if u % 3 == 0 else "basic",
            min(d + 1, 7),
        )
        for u in range(1, users + 1)
        for d in range(days)
    ]
    return feature_rows(rows)
