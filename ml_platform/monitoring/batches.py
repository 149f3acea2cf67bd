"""Which rows of a feature table make up the batches still to monitor, and their labels.

A batch is one UTC day of event timestamps. The first report against a champion judges the
newest day only; after that every day newer than the newest judged one (at most ``MAX_NEW`` at
a time), so a run that lands several days at once judges each of them.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from ml_platform.home import PROJECT_ROOT, PlatformHome
from ml_platform.spec import PipelineSpec

MAX_NEW = 7


def _days(frame: pd.DataFrame, column: str) -> pd.Series:
    stamps = pd.to_datetime(frame[column], utc=True)
    return stamps.dt.strftime("%Y-%m-%d")


def new_batches(
    spec: PipelineSpec, frame: pd.DataFrame, done: set[str]
) -> Iterator[tuple[str, pd.DataFrame]]:
    days = _days(frame, spec.event_timestamp)
    newer = sorted(d for d in set(days) if not done or d > max(done))
    pending = newer[-MAX_NEW:] if done else newer[-1:]
    for day in pending:
        yield day, frame[days == day].reset_index(drop=True)


def _utc(column: pd.Series) -> pd.Series:
    return pd.to_datetime(column, utc=True).astype("datetime64[ns, UTC]")


def _label_files(spec: PipelineSpec, home: PlatformHome) -> list[str]:
    if spec.monitoring.labels is None:
        return []
    raw = os.path.expandvars(spec.monitoring.labels.replace("{home}", str(home.root)))
    pattern = raw if os.path.isabs(raw) else str(PROJECT_ROOT / raw)
    return sorted(glob.glob(pattern))


def _read(path: str) -> pd.DataFrame:
    return (
        pd.read_csv(path) if path.lower().endswith((".csv", ".csv.gz")) else pd.read_parquet(path)
    )


def labels_for(
    spec: PipelineSpec, home: PlatformHome, batch: pd.DataFrame, validated_path: Path
) -> pd.Series | None:
    """The batch's labels, joined on entity key and event timestamp: from late-arriving label
    files when the spec names them (none landed yet: no labels), else from the validated data.
    None when no row has one."""
    keys = [spec.entity_key, spec.event_timestamp]
    files = _label_files(spec, home)
    if spec.monitoring.labels is not None and not files:
        return None
    if files:
        source = pd.concat([_read(f)[[*keys, spec.label]] for f in files], ignore_index=True)
    else:
        source = pd.read_parquet(validated_path, columns=[*keys, spec.label])
    source[spec.event_timestamp] = _utc(source[spec.event_timestamp])
    source = source.drop_duplicates(keys, keep="last")
    left = batch[keys].copy()
    left[spec.event_timestamp] = _utc(left[spec.event_timestamp])
    joined = left.merge(source, on=keys, how="left")[spec.label]
    return None if joined.isna().all() else joined.set_axis(batch.index)
