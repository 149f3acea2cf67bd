"""Feature definitions as plain data: one feature view per pipeline, one feature service per
version of its feature set (``<pipeline>_v<N>``), the train/serve contract.

Nothing here imports Feast: ``feast_objects`` turns these definitions into the Feast objects
applied to the registry, through which the training set (``offline``) and the online store
(``online``) are read, so both sides read one source of truth.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ml_platform.home import PlatformHome
from ml_platform.ingest.io import write_json
from ml_platform.spec import PipelineSpec

FEAST_PROJECT = "ml_platform"
DTYPES = ("int64", "float64", "string", "bool")


@dataclass(frozen=True)
class FieldDef:
    name: str
    dtype: str  # one of DTYPES


@dataclass(frozen=True)
class ViewDef:
    name: str
    entity: str
    entity_key: str
    entity_dtype: str
    timestamp: str
    source_path: str
    fields: tuple[FieldDef, ...]
    ttl_seconds: int | None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.fields]


@dataclass(frozen=True)
class ServiceDef:
    name: str
    version: int
    view: ViewDef
    fingerprint: str

    @property
    def feature_refs(self) -> list[str]:
        return [f"{self.view.name}:{name}" for name in self.view.feature_names]


def features_table(spec: PipelineSpec, home: PlatformHome) -> Path:
    """The Feast source: every run's feature table is published here (``source.publish``)."""
    return home.pipeline_dir(spec.name) / "features.parquet"


def _arrow_dtype(column: str, typ: pa.DataType) -> str:
    if pa.types.is_boolean(typ):
        return "bool"
    if pa.types.is_integer(typ):
        return "int64"
    if pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return "float64"
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_dictionary(typ):
        return "string"
    raise ValueError(
        f"feature column '{column}' has type {typ}, which the feature store cannot "
        f"serve; cast it to an integer, float, boolean or string"
    )


def _declared_dtypes(spec: PipelineSpec) -> dict[str, str]:
    """Types before any data exists: counts are integers, other numerics floats."""
    dtypes = {name: "float64" for name in spec.features.model_numeric}
    dtypes.update({a.name: "int64" for a in spec.features.aggregates if a.agg == "count"})
    dtypes.update({name: "string" for name in spec.features.categorical})
    dtypes[spec.entity_key] = "int64"
    return dtypes


def column_dtypes(spec: PipelineSpec, table: Path) -> dict[str, str]:
    """Feature and entity types, read from the feature table's schema when it exists."""
    dtypes = _declared_dtypes(spec)
    if table.exists():
        schema = pq.read_schema(table)
        for name in [spec.entity_key, *spec.features.all_columns]:
            if name not in schema.names:
                raise ValueError(f"feature table {table} has no column '{name}'")
            dtypes[name] = _arrow_dtype(name, schema.field(name).type)
    return dtypes


def view_def(spec: PipelineSpec, home: PlatformHome) -> ViewDef:
    table = features_table(spec, home)
    dtypes = column_dtypes(spec, table)
    if dtypes[spec.entity_key] not in ("int64", "string"):
        raise ValueError(
            f"entity key '{spec.entity_key}' has type {dtypes[spec.entity_key]}; "
            f"the feature store needs an integer or string key"
        )
    return ViewDef(
        name=f"{spec.name}_fv",
        entity=f"{spec.name}_{spec.entity_key}",
        entity_key=spec.entity_key,
        entity_dtype=dtypes[spec.entity_key],
        timestamp=spec.event_timestamp,
        source_path=str(table),
        fields=tuple(FieldDef(c, dtypes[c]) for c in spec.features.all_columns),
        ttl_seconds=spec.features.ttl_seconds,
    )


def registry_file(home: PlatformHome) -> Path:
    """The Feast registry (a file registry in the home)."""
    return home.feast_dir / "registry.db"


def fingerprint(view: ViewDef) -> str:
    """What makes two feature sets the same contract: names, types, keys and TTL (not paths)."""
    contract = {k: v for k, v in asdict(view).items() if k != "source_path"}
    return hashlib.sha256(json.dumps(contract, sort_keys=True).encode()).hexdigest()[:16]


def _versions_file(spec: PipelineSpec, home: PlatformHome) -> Path:
    return home.feast_dir / spec.name / "feature_services.json"


def known_versions(spec: PipelineSpec, home: PlatformHome) -> dict[str, int]:
    """Fingerprint -> service version for every feature set this pipeline has trained on."""
    path = _versions_file(spec, home)
    return json.loads(path.read_text()) if path.exists() else {}


def feature_service(spec: PipelineSpec, home: PlatformHome, register: bool = True) -> ServiceDef:
    """The current feature service: a new version whenever the feature contract changes.

    With ``register`` the version number is recorded, so the same contract keeps its name and
    older model versions keep resolving to the features they were trained on.
    """
    view = view_def(spec, home)
    fp = fingerprint(view)
    versions = known_versions(spec, home)
    version = versions.get(fp, max(versions.values(), default=0) + 1)
    if register and fp not in versions:
        write_json({**versions, fp: version}, _versions_file(spec, home))
    return ServiceDef(name=f"{spec.name}_v{version}", version=version, view=view, fingerprint=fp)
