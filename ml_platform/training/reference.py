"""The training reference that monitoring compares new data with: the rows the final model was
fitted on (entity key, event timestamp, label, every model feature), sampled to at most
``MAX_ROWS`` with the spec's seed, logged as an artifact of the candidate's MLflow run. It
travels with the model version, so any store the registry can reach can monitor it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from ml_platform.spec import PipelineSpec
from ml_platform.training.tracking import Tracking

REFERENCE_ARTIFACT = "monitoring/reference.parquet"
MAX_ROWS = 200_000


def write_reference(frame: pd.DataFrame, spec: PipelineSpec, path: Path) -> Path:
    columns = [spec.entity_key, spec.event_timestamp, spec.label, *spec.features.all_columns]
    if len(frame) > MAX_ROWS:
        # Rows first, then columns: the seeded draw depends on the number of rows only, so
        # these are the rows a draw from frame[columns] gives, without a copy of every row.
        frame = frame.sample(n=MAX_ROWS, random_state=spec.seed).sort_index()
    rows = frame[columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(path, index=False)
    return path


def log_reference(tracking: Tracking, run_id: str, frame: pd.DataFrame, spec: PipelineSpec) -> None:
    folder, name = REFERENCE_ARTIFACT.rsplit("/", 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_reference(frame, spec, Path(tmp) / name)
        tracking.call(
            lambda: tracking.client.log_artifact(run_id, str(path), folder),
            f"log the monitoring reference of run {run_id}",
        )
