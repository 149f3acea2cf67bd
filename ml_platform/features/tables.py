"""Feature and training-set stages: the feature table of one validated batch, then the
training set, retrieved by Feast through the pipeline's feature service.

Every table is written once under a content-addressed name and handed downstream by path, so
two runs of one pipeline never read each other's tables. The feature table is also published
(atomically) as the Feast source; the training-set step reads it through Feast only while the
source still holds this run's table (``source.pinned``).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from ml_platform.features import source
from ml_platform.features.dbt_project import read_model
from ml_platform.features.definitions import ServiceDef, feature_service, features_table
from ml_platform.features.sql import apply_custom, compute_features
from ml_platform.home import PlatformHome
from ml_platform.ingest.io import write_parquet_hashed
from ml_platform.ingest.prepare import category_strings
from ml_platform.spec import PipelineSpec

ROW = "__ml_platform_row"  # carried through Feast to give the training set a fixed row order


@dataclass(frozen=True)
class TableInfo:
    path: str
    rows: int
    data_version: str
    columns: list[str]
    feature_service: str = ""
    source_stamp: str = ""  # feature tables: the Feast source as published (source.stamp)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_features(
    spec: PipelineSpec, home: PlatformHome, validated: Path, run_id: str | None = None
) -> TableInfo:
    """The offline feature table of the ``validated`` batch: the spec's declared SQL over it, or
    the dbt model the spec names (built from the same batch); published as the Feast source."""
    if spec.features.dbt_model:
        frame = apply_custom(spec, read_model(spec, home, run_id))
    else:
        frame = compute_features(spec, validated)
    frame = _categoricals_as_strings(spec, frame)
    directory = home.pipeline_dir(spec.name) / "features"
    path, version = write_parquet_hashed(frame, directory, lambda h: f"{h}.parquet")
    published = source.publish(path, features_table(spec, home))
    return TableInfo(str(path), len(frame), version, list(frame.columns), source_stamp=published)


def _categoricals_as_strings(spec: PipelineSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Categorical features are served as strings, whatever their type in the data (a boolean
    or an integer code declared categorical): the feature view, the model signature and the
    online reads then agree. Columns already of strings are left untouched."""
    for column in spec.features.categorical:
        if column in frame.columns:
            column_values = frame[column]
            values = category_strings(column_values)
            if values is not column_values:
                frame[column] = values.astype("string")
    return frame


def training_set_version(content_hash: str, service: ServiceDef) -> str:
    """Same rows through a different feature contract is a different training set."""
    return hashlib.sha256(
        f"{service.name}:{service.fingerprint}:{content_hash}".encode()
    ).hexdigest()[:16]


def entity_rows(spec: PipelineSpec, validated: Path) -> pd.DataFrame:
    """Feast's entity_df: every validated row's key, event time and label, numbered in
    (time, key, file) order so the retrieved rows can be put back in a fixed order."""
    frame = pd.read_parquet(validated, columns=[spec.entity_key, spec.event_timestamp, spec.label])
    ts = frame[spec.event_timestamp]
    frame[spec.event_timestamp] = (
        ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
    )
    frame = frame.sort_values([spec.event_timestamp, spec.entity_key], kind="stable")
    frame[ROW] = np.arange(len(frame), dtype=np.int64)
    return frame.reset_index(drop=True)


def retrieve(
    spec: PipelineSpec,
    home: PlatformHome,
    entities: pd.DataFrame,
    features: TableInfo,
    service: ServiceDef,
) -> pd.DataFrame:
    """Feast's point-in-time rows for ``entities`` through the registry's feature service,
    read while the Feast source holds this run's feature table; in entity-row order. Put in
    order and cut to the columns in Arrow, then converted once."""
    from ml_platform.features.feast_objects import feature_store
    from ml_platform.features.offline import historical_table

    store = feature_store(home)
    with source.pinned(
        features_table(spec, home), Path(features.path), features.source_stamp, spec.name
    ):
        table = historical_table(store, service, entities)
    columns = [spec.entity_key, spec.event_timestamp, *service.view.feature_names, spec.label]
    table = table.select(columns).take(pc.sort_indices(table[ROW]))  # stable
    return table.to_pandas()


def build_training_set(
    spec: PipelineSpec, home: PlatformHome, validated: Path, features: TableInfo
) -> TableInfo:
    """Every validated row at its label time with each feature as of that time, retrieved by
    Feast (``get_historical_features`` with the feature service ``<pipeline>_v<N>``)."""
    service = feature_service(spec, home)
    entities = entity_rows(spec, validated)
    frame = retrieve(spec, home, entities, features, service)
    if len(frame) != len(entities):
        raise RuntimeError(
            f"Feast returned {len(frame)} rows for {len(entities)} validated rows "
            f"of '{spec.name}' (one per validated row expected)"
        )
    path, content = write_parquet_hashed(
        frame,
        home.pipeline_dir(spec.name) / "training_sets",
        lambda h: f"{training_set_version(h, service)}.parquet",
    )
    version = training_set_version(content, service)
    return TableInfo(str(path), len(frame), version, list(frame.columns), service.name)
