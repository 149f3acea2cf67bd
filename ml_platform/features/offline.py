"""Offline retrieval through Feast: ``get_historical_features`` with the model version's
feature service, on the DuckDB offline store. Point-in-time and TTL semantics are Feast's: the
latest feature row with ``entity time - ttl <= feature time <= entity time`` (both ends
included; no TTL when the spec sets none). Imports Feast: call it where Feast is needed.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ml_platform.features.definitions import ServiceDef


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


def historical_features(store: Any, service: ServiceDef, entity_df: pd.DataFrame) -> pd.DataFrame:
    """``entity_df`` (entity key, event timestamp, any carried columns) joined point-in-time to
    the feature service's features by Feast. Row order is Feast's (none in particular)."""
    fs = registered_service(store, service)
    return store.get_historical_features(entity_df=entity_df, features=fs).to_df()
