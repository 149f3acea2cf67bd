"""The data contract: a reviewable YAML file beside the pipeline spec (framework-free).

Schema rules (checked with pandera) say what every row must look like; distribution rules
(checked with Great Expectations) say what the batch as a whole must look like, including its
distance from the reference profile that ``infer-contract`` recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DType = Literal["int", "float", "bool", "string", "datetime"]
Policy = Literal["fail", "quarantine"]
Bounds = tuple[float | None, float | None]


class ContractError(ValueError):
    """A contract file that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnRule(_Strict):
    """Row-level rules for one column."""

    dtype: DType | None = Field(default=None, description="None: any type.")
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = Field(default=None, description="Allowed categories.")
    timezone_aware: bool | None = Field(
        default=None, description="datetime only: true requires tz-aware, false tz-naive."
    )
    on_fail: Policy | None = Field(
        default=None, description="Row-level policy; None inherits the contract default."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ColumnRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if (self.min is not None or self.max is not None) and self.dtype not in (
            None,
            "int",
            "float",
        ):
            raise ValueError(f"min/max need a numeric dtype, not '{self.dtype}'")
        return self


class LabelRule(_Strict):
    column: str
    values: list[float] | None = Field(default=None, description="The label's domain.")
    min_classes: int = Field(default=1, ge=1, description="2: a single-class batch fails.")


class CustomCheck(_Strict):
    """A pandera check by import path: ``function(frame) -> bool Series`` (True = row ok) or a
    single bool; with ``element_wise`` the function takes one value of ``column`` (or one row
    when no column is named) and returns a bool."""

    name: str
    function: str
    column: str | None = None
    element_wise: bool = False
    on_fail: Policy | None = None

    @field_validator("function")
    @classmethod
    def _importable(cls, path: str) -> str:
        from ml_platform.spec import resolve_import

        if not callable(resolve_import(path)):
            raise ValueError(f"'{path}' is not callable")
        return path


class ColumnDistribution(_Strict):
    max_null_fraction: float | None = Field(default=None, ge=0, le=1)
    mean: Bounds | None = None
    quantiles: dict[float, Bounds] = Field(default_factory=dict)
    category_frequency: dict[str, Bounds] = Field(default_factory=dict)
    max_distance: float | None = Field(
        default=None, gt=0, description="Threshold on the distance from the reference profile."
    )

    @field_validator("quantiles")
    @classmethod
    def _quantiles(cls, value: dict[float, Bounds]) -> dict[float, Bounds]:
        bad = [q for q in value if not 0 <= q <= 1]
        if bad:
            raise ValueError(f"quantiles {bad} are not within [0, 1]")
        return value


class DistributionRules(_Strict):
    min_rows: int | None = Field(default=None, ge=0)
    max_rows: int | None = Field(default=None, ge=0)
    distance: Literal["psi", "js", "kl"] = "psi"
    columns: dict[str, ColumnDistribution] = Field(default_factory=dict)


class ReferenceColumn(_Strict):
    """A column's reference histogram: numeric bin edges and fractions, or category fractions."""

    edges: list[float] | None = None
    fractions: list[float] | None = None
    categories: dict[str, float] | None = None

    @model_validator(mode="after")
    def _shape(self) -> ReferenceColumn:
        numeric = self.edges is not None and self.fractions is not None
        if numeric == (self.categories is not None):
            raise ValueError("give either 'edges' and 'fractions', or 'categories'")
        if numeric and len(self.edges) != len(self.fractions) + 1:  # type: ignore[arg-type]
            raise ValueError("'edges' must have one more entry than 'fractions'")
        return self


class ReferenceProfile(_Strict):
    rows: int
    source: str = ""
    columns: dict[str, ReferenceColumn] = Field(default_factory=dict)


class Contract(_Strict):
    pipeline: str
    version: int = 1
    columns: dict[str, ColumnRule]
    extra_columns: Literal["forbid", "allow"] = "forbid"
    ordered: bool = Field(default=False, description="Columns must arrive in the declared order.")
    unique: list[str] = Field(default_factory=list, description="Key that must be unique.")
    event_timestamp: str | None = None
    max_future_seconds: float = Field(
        default=300, ge=0, description="Clock skew allowed for 'not in the future'."
    )
    label: LabelRule | None = None
    custom_checks: list[CustomCheck] = Field(default_factory=list)
    default_on_fail: Policy = "fail"
    max_quarantine_fraction: float = Field(default=0.0, ge=0, le=1)
    distribution: DistributionRules = Field(default_factory=DistributionRules)
    reference: ReferenceProfile | None = None

    @model_validator(mode="after")
    def _known_columns(self) -> Contract:
        named = [
            *self.unique,
            *self.distribution.columns,
            *(self.reference.columns if self.reference else []),
        ]
        if self.event_timestamp:
            named.append(self.event_timestamp)
        if self.label:
            named.append(self.label.column)
        named += [c.column for c in self.custom_checks if c.column]
        unknown = sorted(set(named) - set(self.columns))
        if unknown:
            raise ValueError(f"columns {unknown} are used by rules but not declared in 'columns'")
        return self

    def policy(self, column: str | None) -> Policy:
        rule = self.columns.get(column) if column else None
        return (rule.on_fail if rule and rule.on_fail else None) or self.default_on_fail


def _format(exc: ValidationError) -> str:
    return "\n".join(
        f"  key '{'.'.join(str(p) for p in e['loc']) or '<top level>'}': {e['msg']}"
        for e in exc.errors()
    )


def load_contract(path: Path) -> Contract:
    """Read and validate a contract file, or raise ContractError naming the file and key."""
    if not path.is_file():
        raise ContractError(f"contract file '{path}' does not exist")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ContractError(f"{path}: expected a mapping at the top level")
    try:
        return Contract.model_validate(doc)
    except ValidationError as exc:
        raise ContractError(f"invalid data contract {path}:\n{_format(exc)}") from None


def _pruned(value: object) -> object:
    """Drop empty lists and mappings: a reviewer reads only the rules that exist."""
    if isinstance(value, dict):
        items = ((k, _pruned(v)) for k, v in value.items())
        return {k: v for k, v in items if v not in ({}, [])}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


class _Dumper(yaml.SafeDumper):
    """Lists of scalars (bounds, categories, bin edges) on one line: easier to review."""


def _list(dumper: yaml.SafeDumper, value: list) -> yaml.Node:
    flow = all(not isinstance(v, dict | list) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(list, _list)


def dump_contract(contract: Contract, header: str = "") -> str:
    data = _pruned(contract.model_dump(mode="json", exclude_none=True))
    return header + yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100)
