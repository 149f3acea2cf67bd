"""The champion's training reference: what monitoring compares every batch with.

Convention shared with the training step, which writes it (ml_platform/training/reference.py;
its names are re-exported here): the candidate's MLflow run carries the artifact
``monitoring/reference.parquet`` with the training rows' entity key, event timestamp, label and
every model feature column, sampled to at most ``MAX_ROWS`` rows with the spec's seed. It
travels with the model version, so anything that can reach the registry can monitor the model;
the champion is found through the registry alias, never "latest".
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.monitoring.errors import MonitoringError
from ml_platform.registry.ledger import CHAMPION
from ml_platform.spec import PipelineSpec, window_seconds
from ml_platform.training.fitting import predict
from ml_platform.training.reference import MAX_ROWS, REFERENCE_ARTIFACT, write_reference
from ml_platform.training.tracking import Tracking

__all__ = [
    "MAX_ROWS",
    "REFERENCE_ARTIFACT",
    "ChampionReference",
    "load_champion_reference",
    "score",
    "write_reference",
]


def score(model: Any, frame: pd.DataFrame, spec: PipelineSpec) -> np.ndarray:
    """The model's scores (P(label = 1), or the prediction) with the feature selection and
    types it was trained with."""
    return np.asarray(predict(spec, model, frame), dtype="float64")


@dataclass(frozen=True)
class ChampionReference:
    """The current champion: its version, run, creation time, training reference and model."""

    version: str
    run_id: str
    created_at: datetime
    frame: pd.DataFrame
    model: Any
    _scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def reference_scores(self, spec: PipelineSpec) -> np.ndarray:
        """The champion's scores on its own reference, computed once per object (every
        batch and chunk compares with the same ones)."""
        if spec.name not in self._scores:
            self._scores[spec.name] = score(self.model, self.frame, spec)
        return self._scores[spec.name]


def _download(tracking: Tracking, run_id: str, folder: Path) -> Path | None:
    """The run's reference file, or None when the run has none."""
    folder_name = REFERENCE_ARTIFACT.rsplit("/", 1)[0]
    listed = tracking.call(
        lambda: tracking.client.list_artifacts(run_id, folder_name),
        f"list the monitoring artifacts of run {run_id}",
    )
    if REFERENCE_ARTIFACT not in {f.path for f in listed}:
        return None
    local = tracking.call(
        lambda: tracking.client.download_artifacts(run_id, REFERENCE_ARTIFACT, str(folder)),
        f"download the monitoring reference of run {run_id}",
    )
    return Path(local)


def steady_state(frame: pd.DataFrame, spec: PipelineSpec) -> pd.DataFrame:
    """The reference rows whose windowed aggregates had a whole window of history behind them.
    Rows within the longest aggregate window of the data's first event were computed on less
    history than any later batch will be (counts, sums and maxima smaller, means noisier):
    compared with them, every new batch drifts. All rows are kept when fewer than the spec's
    ``min_rows`` would remain."""
    windows = [window_seconds(a.window) for a in spec.features.aggregates]
    if not windows or frame.empty:
        return frame
    stamps = pd.to_datetime(frame[spec.event_timestamp], utc=True)
    settled = (stamps >= stamps.min() + pd.Timedelta(seconds=max(windows))).to_numpy()
    if int(settled.sum()) < spec.monitoring.min_rows:
        return frame
    return frame[settled].reset_index(drop=True)


def load_champion_reference(spec: PipelineSpec, tracking: Tracking) -> ChampionReference:
    """The champion of ``spec.name`` with its training reference and model, or a
    MonitoringError saying what is missing and how to fix it."""
    version = tracking.version_by_alias(spec.name, CHAMPION)
    if version is None:
        raise MonitoringError(
            f"no champion for '{spec.name}' yet: run the training job first "
            f"(ml-platform run {spec.name})"
        )
    number, run_id = str(version.version), str(version.run_id or "")
    with tempfile.TemporaryDirectory(prefix="reference-") as tmp:
        path = _download(tracking, run_id, Path(tmp)) if run_id else None
        if path is None:
            raise MonitoringError(
                f"champion v{number} of '{spec.name}' (run {run_id or 'unknown'}) has no "
                f"training reference ({REFERENCE_ARTIFACT}): it was trained before monitoring "
                f"existed; retrain it (ml-platform run {spec.name}) and promote the new version"
            )
        frame = steady_state(pd.read_parquet(path), spec)
    model = tracking.load_sklearn_model(f"models:/{spec.name}/{number}")
    created = datetime.fromtimestamp((version.creation_timestamp or 0) / 1000, UTC)
    return ChampionReference(number, run_id, created, frame, model)
