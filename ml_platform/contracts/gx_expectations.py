"""The few Great Expectations classes the contract needs beyond GX's built-ins.

All of them run on the batch through GX's own metrics (``column.value_counts``,
``column.histogram``, ``column_values.nonnull.count``); only the last step, the verdict, is
ours. Import this module before loading a suite that uses them (GX registers expectation
classes when they are defined).

- ``ExpectColumnQuantileValuesWithinRanges``: GX 1.24.1's
  ``ExpectColumnQuantileValuesToBeBetween`` returns its ``success`` as ``numpy.bool_``, which
  GX's own validation-results store then fails to serialise ("Object of type bool is not JSON
  serializable"), so no validation with a quantile expectation can complete. Same expectation,
  a plain ``bool`` (``ml_platform_tests/contracts/test_gx_suite.py`` watches for the fix).
- ``ExpectColumnCategoryFrequenciesToBeBetween``: each category's share of the non-null values
  within its band, from one ``column.value_counts``. The built-in way
  (``ExpectColumnValuesToBeInSet`` and ``...NotToBeInSet`` with ``mostly``, per category and
  bound) costs a pass over the column each (see the validation benchmark).
- ``ExpectColumnPsiToBeLessThan`` / ``ExpectColumnJsDistanceToBeLessThan``: the contract's
  distance from the reference profile when it is PSI or Jensen-Shannon; they take GX's KL
  divergence expectation (same partition object, same metrics) and change only the formula.
  ``distance: kl`` uses ``ExpectColumnKLDivergenceToBeLessThan`` itself.
"""

from __future__ import annotations

from typing import Any, ClassVar

import great_expectations.expectations as gxe
import numpy as np
from great_expectations.expectations.expectation import ColumnAggregateExpectation
from great_expectations.render import (
    LegacyDiagnosticRendererType,
    RenderedContentBlockContainer,
    RenderedStringTemplateContent,
)
from great_expectations.render.renderer.renderer import renderer
from great_expectations.render.util import num_to_str

from ml_platform.contracts import profile


class ExpectColumnQuantileValuesWithinRanges(gxe.ExpectColumnQuantileValuesToBeBetween):
    """``ExpectColumnQuantileValuesToBeBetween`` whose result GX can store (see module doc)."""

    def _validate(
        self, metrics: dict, runtime_configuration: dict | None = None, execution_engine: Any = None
    ) -> dict:
        out = super()._validate(metrics, runtime_configuration, execution_engine)
        return {**out, "success": bool(out["success"])}


class ExpectColumnCategoryFrequenciesToBeBetween(ColumnAggregateExpectation):
    """Expect each listed category's share of the column's non-null values to lie within its
    ``[low, high]`` band (None: open); a category that is absent has share 0."""

    frequencies: dict[str, list[float | None]]

    metric_dependencies: ClassVar[tuple[str, ...]] = ("column.value_counts",)
    success_keys: ClassVar[tuple[str, ...]] = ("frequencies",)
    args_keys: ClassVar[tuple[str, ...]] = ("column", "frequencies")

    def _validate(
        self, metrics: dict, runtime_configuration: dict | None = None, execution_engine: Any = None
    ) -> dict:
        counts = metrics["column.value_counts"]  # non-null values only
        n = int(counts.sum())
        shares = {str(k): float(v) / n for k, v in counts.items()} if n else {}
        details = {}
        for category, (low, high) in self.configuration.kwargs["frequencies"].items():
            share = shares.get(category, 0.0)
            ok = n > 0 and (low is None or share >= low) and (high is None or share <= high)
            details[category] = {
                "observed": round(share, 6),
                "low": low,
                "high": high,
                "success": bool(ok),
            }
        return {
            "success": all(d["success"] for d in details.values()),
            "result": {
                "observed_value": {c: d["observed"] for c, d in details.items()},
                "details": {"categories": details, "nonnull_count": n},
            },
        }


def _weights(partition: dict, metrics: dict) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(reference, batch) weights on the partition, and the category names: bins of a numeric
    partition, or the reference categories plus one bin for categories it never saw."""
    n = metrics["column_values.nonnull.count"]
    expected = np.asarray(partition["weights"], dtype="float64")
    if "values" in partition:
        counts = metrics["column.value_counts"]
        shares = {str(k): float(v) / n for k, v in counts.items()} if n else {}
        known = [str(v) for v in partition["values"]]
        observed = [shares.get(v, 0.0) for v in known]
        other = sum(v for k, v in shares.items() if k not in set(known))
        return (
            np.append(expected, 0.0),
            np.asarray([*observed, other]),
            [*known, "(not in the reference)"],
        )
    hist = np.asarray(metrics["column.histogram"], dtype="float64")
    return expected, (hist / n if n else np.zeros_like(expected)), []


def _partition_details(partition: dict, weights: np.ndarray, values: list[str]) -> dict:
    """A partition in the shape GX's KL divergence renderer draws in Data Docs."""
    w = [round(float(x), 6) for x in weights]
    if values:
        return {"values": values, "weights": w}
    bins = list(partition["bins"])
    if bins[0] == -np.inf and bins[-1] == np.inf and len(w) > 2:
        return {"bins": bins[1:-1], "weights": w[1:-1], "tail_weights": [w[0], w[-1]]}
    return {"bins": bins, "weights": w, "tail_weights": [0.0, 0.0]}


class _ReferenceDistance(gxe.ExpectColumnKLDivergenceToBeLessThan):
    """GX's KL divergence expectation with another distance on the same metrics."""

    label: ClassVar[str] = "distance"

    @classmethod
    @renderer(renderer_type=LegacyDiagnosticRendererType.OBSERVED_VALUE)
    def _diagnostic_observed_value_renderer(
        cls,
        configuration: Any = None,
        result: Any = None,
        runtime_configuration: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        """KL's Data Docs cell (the observed histogram), labelled with this distance."""
        if result is None or not result.result.get("details"):
            return "--"
        value = result.result.get("observed_value")
        text = RenderedStringTemplateContent(
            content_block_type="string_template",
            string_template={
                "template": f"{cls.label}: $observed_value",
                "params": {
                    "observed_value": num_to_str(value)
                    if value is not None
                    else "undefined (no values)"
                },
                "styling": {"classes": ["mb-2"]},
            },
        )
        chart = cls._get_kl_divergence_chart(result.result["details"]["observed_partition"])
        return RenderedContentBlockContainer(
            content_block_type="content_block_container", content_blocks=[text, chart]
        )

    def _distance(self, p: np.ndarray, q: np.ndarray) -> float:
        raise NotImplementedError

    def _validate(
        self, metrics: dict, runtime_configuration: dict | None = None, execution_engine: Any = None
    ) -> dict:
        kwargs = self.configuration.kwargs
        partition = kwargs["partition_object"]
        p, q, values = _weights(partition, metrics)
        value = self._distance(p, q) if q.sum() > 0 else float("inf")
        finite = bool(np.isfinite(value))
        return {
            "success": finite and value <= kwargs["threshold"],
            "result": {
                "observed_value": float(value) if finite else None,
                "details": {
                    "observed_partition": _partition_details(partition, q, values),
                    "expected_partition": _partition_details(partition, p, values),
                },
            },
        }


class ExpectColumnPsiToBeLessThan(_ReferenceDistance):
    """Expect the population stability index of the column against the reference partition
    (bins or categories, weights floored at 1e-4) to be at most ``threshold``."""

    label: ClassVar[str] = "PSI"

    def _distance(self, p: np.ndarray, q: np.ndarray) -> float:
        return profile.psi(p, q)


class ExpectColumnJsDistanceToBeLessThan(_ReferenceDistance):
    """Expect the Jensen-Shannon distance (base 2, in [0, 1]) of the column from the
    reference partition to be at most ``threshold``."""

    label: ClassVar[str] = "Jensen-Shannon distance"

    def _distance(self, p: np.ndarray, q: np.ndarray) -> float:
        return profile.js_distance(p, q)
