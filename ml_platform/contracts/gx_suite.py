"""The contract's distribution rules compiled into a Great Expectations 1.x ExpectationSuite.

One expectation per rule, GX's built-ins where they exist:

| contract rule | expectation |
|---|---|
| `min_rows` / `max_rows` | `ExpectTableRowCountToBeBetween` |
| `max_null_fraction` | `ExpectColumnValuesToNotBeNull(mostly=1 - max_null_fraction)` |
| `mean` | `ExpectColumnMeanToBeBetween` |
| `quantiles` | `ExpectColumnQuantileValuesToBeBetween` (as `...WithinRanges`) |
| the column's `allowed` categories | `ExpectColumnValuesToBeInSet` |
| `category_frequency` | `ExpectColumnCategoryFrequenciesToBeBetween` (gx_expectations) |
| `max_distance`, `distance: kl` | `ExpectColumnKLDivergenceToBeLessThan` on the reference profile |
| `max_distance`, `distance: psi` | `ExpectColumnPsiToBeLessThan` (gx_expectations) |
| `max_distance`, `distance: js` | `ExpectColumnJsDistanceToBeLessThan` (gx_expectations) |

The suite is named ``<pipeline>.contract_v<version>`` and carries the contract's content hash
in its meta; each expectation's meta names the contract rule and column it implements.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ml_platform.contracts.model import ColumnDistribution, Contract, ReferenceColumn
from ml_platform.contracts.profile import EPS

META_KEY = "ml_platform"


def suite_name(contract: Contract) -> str:
    return f"{contract.pipeline}.contract_v{contract.version}"


def contract_digest(contract: Contract) -> str:
    return hashlib.sha256(contract.model_dump_json().encode()).hexdigest()[:16]


def _meta(rule: str, column: str | None) -> dict[str, Any]:
    return {META_KEY: {"rule": rule, "column": column}}


def _partition(ref: ReferenceColumn, floor: bool) -> dict[str, Any]:
    """The reference profile as a GX partition object (weights summing to 1; ``floor``: no
    empty bin, so a KL divergence stays finite when the batch fills it)."""
    raw = ref.fractions if ref.categories is None else list(ref.categories.values())
    weights = np.asarray(raw, dtype="float64")
    if floor:
        weights = np.clip(weights, EPS, None)
    weights = (weights / weights.sum()).tolist() if weights.sum() > 0 else weights.tolist()
    if ref.categories is not None:
        return {"values": list(ref.categories), "weights": weights}
    return {"bins": list(ref.edges or []), "weights": weights}


def _distance(contract: Contract, name: str, rules: ColumnDistribution) -> Any:
    from ml_platform.contracts import gx_expectations as ours

    ref = contract.reference.columns.get(name) if contract.reference else None
    if rules.max_distance is None or ref is None:
        return None
    metric = contract.distribution.distance
    cls = {
        "kl": ours.gxe.ExpectColumnKLDivergenceToBeLessThan,
        "psi": ours.ExpectColumnPsiToBeLessThan,
        "js": ours.ExpectColumnJsDistanceToBeLessThan,
    }[metric]
    what = {
        "kl": "KL divergence",
        "psi": "population stability index (PSI)",
        "js": "Jensen-Shannon distance",
    }[metric]
    return cls(
        column=name,
        partition_object=_partition(ref, floor=metric == "kl"),
        threshold=rules.max_distance,
        meta=_meta(f"{metric}_distance", name),
        description=f"{name}: {what} from the reference profile "
        f"({len(ref.categories or ref.fractions or [])} "
        f"{'categories' if ref.categories else 'bins'}) is at most "
        f"{rules.max_distance:g}",
    )


def _column(contract: Contract, name: str, rules: ColumnDistribution) -> list[Any]:
    import great_expectations.expectations as gxe

    from ml_platform.contracts import gx_expectations as ours

    out: list[Any] = []
    if rules.max_null_fraction is not None:
        out.append(
            gxe.ExpectColumnValuesToNotBeNull(
                column=name,
                mostly=round(1.0 - rules.max_null_fraction, 12),
                meta=_meta("null_fraction", name),
            )
        )
    if rules.mean is not None:
        out.append(
            gxe.ExpectColumnMeanToBeBetween(
                column=name,
                min_value=rules.mean[0],
                max_value=rules.mean[1],
                meta=_meta("mean", name),
            )
        )
    if rules.quantiles:
        qs = sorted(rules.quantiles)
        out.append(
            ours.ExpectColumnQuantileValuesWithinRanges(
                column=name,
                quantile_ranges={
                    "quantiles": qs,
                    "value_ranges": [list(rules.quantiles[q]) for q in qs],
                },
                meta=_meta("quantile", name),
            )
        )
    allowed = contract.columns[name].allowed
    if allowed:
        # ExpectColumnDistinctValuesToBeInSet would reuse the value counts, but GX 1.24.1's
        # Data Docs cannot render it when it fails (KeyError 'unexpected_percent')
        out.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=name, value_set=list(allowed), meta=_meta("category_set", name)
            )
        )
    if rules.category_frequency:
        bands = {k: list(v) for k, v in rules.category_frequency.items()}
        out.append(
            ours.ExpectColumnCategoryFrequenciesToBeBetween(
                column=name,
                frequencies=bands,
                meta=_meta("category_frequency", name),
                description=f"{name}: share of each category within its band: "
                + ", ".join(f"{k} [{_g(lo)}, {_g(hi)}]" for k, (lo, hi) in bands.items()),
            )
        )
    distance = _distance(contract, name, rules)
    return out + ([distance] if distance is not None else [])


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def build_suite(contract: Contract) -> Any:
    """The contract's distribution rules as an (unsaved) ``gx.ExpectationSuite``."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    dist = contract.distribution
    expectations: list[Any] = []
    if dist.min_rows is not None or dist.max_rows is not None:
        expectations.append(
            gxe.ExpectTableRowCountToBeBetween(
                min_value=dist.min_rows, max_value=dist.max_rows, meta=_meta("row_count", None)
            )
        )
    for name, rules in dist.columns.items():
        expectations += _column(contract, name, rules)
    return gx.ExpectationSuite(
        name=suite_name(contract),
        expectations=expectations,
        meta={
            META_KEY: {
                "pipeline": contract.pipeline,
                "contract_version": contract.version,
                "contract_sha256": contract_digest(contract),
                "note": "compiled from the data contract by ml_platform; edit the "
                "contract, not this suite",
            }
        },
    )


def suite_columns(contract: Contract) -> list[str]:
    """The columns the suite reads (the batch handed to GX is narrowed to them)."""
    return list(contract.distribution.columns)
