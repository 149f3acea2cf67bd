"""Evaluation gates as blocking asset checks on the evaluation report."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from ml_platform.pipeline.evaluate import EvaluationReport
from ml_platform.spec import PipelineSpec


def gate_names(spec: PipelineSpec) -> list[str]:
    names = [f"{m}_above_floor" for m in spec.gates.min_metrics]
    names += [f"{m}_below_ceiling" for m in spec.gates.max_metrics]
    if spec.gates.beat_baseline:
        names.append("beats_baseline")
    return [*names, "beats_champion", "infra_valid"]


def gate_check_specs(spec: PipelineSpec, asset: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(name, asset=asset, blocking=True,
                              description=f"Evaluation gate '{name}' of '{spec.name}'.")
            for name in gate_names(spec)]


def gate_results(spec: PipelineSpec, report: EvaluationReport) -> Iterator[dg.AssetCheckResult]:
    for name in gate_names(spec):
        gate = report.gate(name)
        if gate is None:  # only the champion gate can be absent: there is no champion yet
            yield dg.AssetCheckResult(check_name=name, passed=True,
                                      metadata={"message": "no champion yet"})
            continue
        yield dg.AssetCheckResult(
            check_name=name, passed=gate.passed, severity=dg.AssetCheckSeverity.ERROR,
            description=gate.message,
            metadata={"message": gate.message,
                      "evidence": dg.MetadataValue.json(gate.evidence)})
