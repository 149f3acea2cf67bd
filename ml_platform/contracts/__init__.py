"""Data contracts: schema rules compiled into a pandera DataFrameSchema, distribution rules
compiled into a Great Expectations 1.x expectation suite.

Framework-free: no Dagster here. ``load_for_spec`` gives the contract a pipeline is gated by
(its committed file, or the built-in minimal one), ``check_contract`` checks a batch.
"""

from __future__ import annotations

from ml_platform.contracts.engine import ContractResult, check_contract
from ml_platform.contracts.model import (
    ColumnRule,
    Contract,
    ContractError,
    LabelRule,
    dump_contract,
    load_contract,
)
from ml_platform.contracts.results import RuleResult
from ml_platform.spec import PipelineSpec

__all__ = [
    "ContractError",
    "ContractResult",
    "Contract",
    "RuleResult",
    "check_contract",
    "dump_contract",
    "load_contract",
    "load_for_spec",
    "minimal_contract",
]


def minimal_contract(spec: PipelineSpec) -> Contract:
    """What every pipeline gets without a contract file: its declared columns exist, the key,
    time and label are never null, (entity, event time) is unique (the entity alone without
    an event time), no event is in the future, a classification label is 0/1 with both
    classes present."""
    required = [
        spec.entity_key,
        spec.event_timestamp,
        spec.label,
        *spec.features.numeric,
        *spec.features.categorical,
        *(a.column for a in spec.features.aggregates if a.column),
    ]
    if not spec.has_event_time:  # added at ingest, after the contract (spec.NO_EVENT_TIME)
        required.remove(spec.event_timestamp)
    columns = {c: ColumnRule() for c in dict.fromkeys(required)}
    for c in (spec.entity_key, spec.event_timestamp, spec.label):
        if c in columns:
            columns[c] = ColumnRule(nullable=False)
    label = LabelRule(
        column=spec.label,
        values=[0.0, 1.0] if spec.is_classification else None,
        min_classes=2 if spec.is_classification else 1,
    )
    key = [spec.entity_key, spec.event_timestamp] if spec.has_event_time else [spec.entity_key]
    return Contract(
        pipeline=spec.name,
        columns=columns,
        extra_columns="allow",
        unique=key,
        event_timestamp=spec.event_timestamp if spec.has_event_time else None,
        label=label,
    )


def load_for_spec(spec: PipelineSpec) -> Contract:
    path = spec.contract_path()
    if path is None:
        return minimal_contract(spec)
    contract = load_contract(path)
    if contract.pipeline != spec.name:
        raise ContractError(
            f"{path}: the contract is for pipeline '{contract.pipeline}', not '{spec.name}'"
        )
    return contract
