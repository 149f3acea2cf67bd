"""A user adds a second pipeline with one spec file over their own CSV: no Python."""

import textwrap
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from ml_platform.components.mlflow_tracking import MlflowTrackingResource
from ml_platform.home import PlatformHome
from ml_platform.resources import PlatformResource

pytestmark = pytest.mark.slow

SPEC = """
type: ml_platform.components.MLPipelineComponent
attributes:
  name: delivery_time
  description: Minutes from order to delivery.
  source: {{path: "{csv}"}}
  entity_key: store_id
  event_timestamp: ordered_at
  label: minutes
  task: regression
  features:
    numeric: [distance_km, items]
    categorical: [weather]
    aggregates:
      - {{name: orders_7d, agg: count, window: 7d}}
      - {{name: distance_mean_7d, agg: mean, column: distance_km, window: 7d}}
    custom: [user_features.rush_hour]
    custom_outputs: [rush_hour]
  model:
    estimator: sklearn.linear_model.Ridge
    search_space:
      alpha: {{type: float, low: 0.01, high: 10.0, log: true}}
    n_trials: 3
  slices: [weather]
  gates:
    min_metrics: {{r2: 0.5}}
"""

USER_FEATURES = """
import pandas as pd

def rush_hour(frame: pd.DataFrame) -> pd.DataFrame:
    hour = frame["ordered_at"].dt.hour
    frame["rush_hour"] = ((hour >= 17) & (hour <= 19)).astype("float64")
    return frame
"""


def _orders(path: Path, rows: int = 3_000) -> None:
    rng = np.random.default_rng(3)
    ordered = pd.Timestamp("2026-03-01") + pd.to_timedelta(
        np.sort(rng.integers(0, 60 * 86_400, rows)), unit="s"
    )
    distance = rng.gamma(2.0, 2.0, rows)
    items = rng.integers(1, 10, rows)
    weather = rng.choice(["sun", "rain", "snow"], rows, p=[0.6, 0.3, 0.1])
    rush = ((ordered.hour >= 17) & (ordered.hour <= 19)).astype(float)
    minutes = (
        12
        + 4 * distance
        + 1.5 * items
        + 8 * rush
        + np.select([weather == "rain", weather == "snow"], [5, 15], 0)
        + rng.normal(0, 3, rows)
    )
    pd.DataFrame(
        {
            "store_id": rng.integers(1, 40, rows),
            "ordered_at": ordered.strftime("%Y-%m-%d %H:%M:%S"),
            "distance_km": distance.round(2),
            "items": items,
            "weather": weather,
            "minutes": minutes.round(1),
        }
    ).drop_duplicates(["store_id", "ordered_at"]).to_csv(path, index=False)


def test_second_pipeline_from_one_spec_file(
    home: PlatformHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = tmp_path / "orders.csv"
    _orders(csv)
    (tmp_path / "user_features.py").write_text(USER_FEATURES)
    monkeypatch.syspath_prepend(str(tmp_path))
    with create_defs_folder_sandbox() as sandbox:
        spec_dir = sandbox.defs_folder_path / "delivery_time"
        spec_dir.mkdir(parents=True)
        (spec_dir / "defs.yaml").write_text(textwrap.dedent(SPEC.format(csv=csv)))
        with sandbox.build_all_defs() as defs:
            defs = dg.Definitions.merge(
                defs,
                dg.Definitions(
                    resources={
                        "platform": PlatformResource(home=str(home.root)),
                        "mlflow": MlflowTrackingResource(),
                    }
                ),
            )
            job = defs.resolve_job_def("delivery_time_training_job")
            result = job.execute_in_process(
                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
            )
    assert result.success
    evaluation = result.asset_materializations_for_node("delivery_time_evaluation_report")[-1]
    assert evaluation.metadata["r2"].value > 0.5
    registered = result.asset_materializations_for_node("delivery_time_registered_model")[-1]
    assert registered.metadata["version"].value == "1"
    training_set = pd.read_parquet(result.output_for_node("delivery_time_training_set")["path"])
    assert {"rush_hour", "orders_7d", "distance_mean_7d"} <= set(training_set.columns)
