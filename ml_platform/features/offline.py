"""Offline retrieval through Feast: ``get_historical_features`` with the model version's
feature service, on the DuckDB offline store. Point-in-time and TTL semantics are Feast's: the
latest feature row with ``entity time - ttl <= feature time <= entity time`` (both ends
included; no TTL when the spec sets none). Imports Feast: call it where Feast is needed.

Feast's point-in-time join on DuckDB joins every entity row to every earlier feature row of its
key and keeps the latest through a window over all those pairs (about 9 per entity row on the
demo data): the entity rows go to Feast in chunks of whole keys, on a DuckDB within the
platform's memory limit (``bounded_offline_store``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ml_platform.features.definitions import ServiceDef
from ml_platform.ingest.io import duckdb_memory_limit, duckdb_spill_directory

# Entity rows per get_historical_features call. DuckDB holds a chunk's (entity row, earlier
# feature row) pairs at once, ~9 per entity row at ~350 B each on the demo data: ~1.5 GB for
# 500k rows, well inside the default memory limit, where 1e7 rows in one call want 20-30 GB.
RETRIEVAL_CHUNK_ROWS = 500_000


class ContractMismatch(RuntimeError):
    """The registry's feature service is not the contract this run computed."""


def registered_service(store: Any, service: ServiceDef) -> Any:
    """The Feast ``FeatureService`` named ``service.name`` from the registry, checked to be the
    same contract (fingerprint) over the same source path as ``service``."""
    from feast.errors import FeatureServiceNotFoundException

    try:
        fs = store.get_feature_service(service.name, allow_cache=False)
    except FeatureServiceNotFoundException:
        raise ContractMismatch(
            f"feature service '{service.name}' is not in the Feast registry: "
            f"materialize the pipeline's feature registry first"
        ) from None
    if fs.tags.get("fingerprint") != service.fingerprint:
        raise ContractMismatch(
            f"the registry's feature service '{service.name}' has fingerprint "
            f"{fs.tags.get('fingerprint')}, this run's feature contract is {service.fingerprint}: "
            f"materialize the pipeline's feature registry again"
        )
    fv = store.get_feature_view(service.view.name, allow_registry_cache=False)
    if fv.batch_source.path != service.view.source_path:
        raise ContractMismatch(
            f"the registry's feature view '{fv.name}' reads {fv.batch_source.path}, not this "
            f"home's feature table {service.view.source_path} (was `feast apply` run with another "
            f"ML_PLATFORM_HOME?): materialize the pipeline's feature registry again"
        )
    return fs


@contextmanager
def bounded_offline_store() -> Iterator[None]:
    """Feast's DuckDB offline store runs on ibis's default backend, which ibis opens with
    DuckDB's defaults (80% of RAM, spilling to ``.tmp`` of the current directory). In the block
    the default is a DuckDB of its own within the platform's memory limit, spilling under the
    home; the previous default comes back after."""
    import ibis

    previous = ibis.options.default_backend
    with duckdb_spill_directory() as spill:
        backend = ibis.duckdb.connect(memory_limit=duckdb_memory_limit(), temp_directory=str(spill))
        ibis.set_backend(backend)
        try:
            yield
        finally:
            ibis.options.default_backend = previous
            backend.disconnect()


def key_chunks(keys: pd.Series, max_rows: int) -> list[np.ndarray]:
    """Positions of the rows of ``keys`` in chunks of at most ``max_rows`` rows (more only for
    a key that has more alone), every key's rows in one chunk, in ascending order. Keys go to
    chunks in sorted order, so a chunk is a key range: DuckDB then skips the parts of the
    (key, time)-sorted feature table outside it."""
    codes, _ = pd.factorize(keys, sort=True, use_na_sentinel=False)
    counts = np.bincount(codes)
    ends = np.cumsum(counts)
    chunk_of_key = np.empty(len(counts), dtype=np.int64)
    start = chunk = 0
    while start < len(counts):
        stop = int(np.searchsorted(ends, ends[start] - counts[start] + max_rows, side="right"))
        chunk_of_key[start : max(stop, start + 1)] = chunk
        start, chunk = max(stop, start + 1), chunk + 1
    row_chunk = chunk_of_key[codes]
    order = np.argsort(row_chunk, kind="stable")
    return np.split(order, np.searchsorted(row_chunk[order], np.arange(1, chunk)))


def historical_table(
    store: Any, service: ServiceDef, entity_df: pd.DataFrame, chunk_rows: int | None = None
) -> pa.Table:
    """``entity_df`` (entity key, event timestamp, any carried columns) joined point-in-time to
    the feature service's features by Feast, as Arrow; row order is Feast's (none in
    particular). One call per chunk of whole keys (``RETRIEVAL_CHUNK_ROWS``): an entity row's
    lookup reads only its own key's feature rows, so the chunks' rows are the rows of one call.
    Row ranges would be as right; whole keys also keep the entity rows of one key and time (one
    ``entity_row_id`` in Feast) in one call, so they get the same of two tied feature rows, and
    a key range lets DuckDB skip the feature table's row groups of other keys."""
    fs = registered_service(store, service)
    rows = chunk_rows or RETRIEVAL_CHUNK_ROWS
    chunks = key_chunks(entity_df[service.view.entity_key], rows) if len(entity_df) else []
    parts = []
    with bounded_offline_store():
        for positions in chunks or [np.arange(0)]:
            # A copy (Feast writes its UTC times into it) with a RangeIndex, like the whole frame.
            chunk = entity_df.iloc[positions].reset_index(drop=True)
            parts.append(store.get_historical_features(entity_df=chunk, features=fs).to_arrow())
    return pa.concat_tables(parts)


def historical_features(store: Any, service: ServiceDef, entity_df: pd.DataFrame) -> pd.DataFrame:
    """:func:`historical_table` as a frame. Row order is Feast's (none in particular)."""
    return historical_table(store, service, entity_df).to_pandas()
