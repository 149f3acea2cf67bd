"""Evaluation gates as blocking asset checks on the evaluation report: a failed gate stops the
run before registration, and each check's description says why."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from ml_platform.evaluation.evaluate import CHAMPION_GATE, EvaluationReport, gate_names
from ml_platform.spec import PipelineSpec

_DESCRIPTIONS = {
    "beats_dummy_baseline": "The candidate is significantly better than a constant model "
    "(paired bootstrap CI of the difference above 0).",
    "not_worse_than_linear_baseline": "The candidate is not significantly worse than a linear "
    "model (whole CI below -margin fails).",
    CHAMPION_GATE: "Champion re-scored on the same frozen holdout: the candidate is not worse "
    "by more than the margin overall, and no slice is significantly worse.",
    "infra_valid": "The artifact loads in a fresh process and scores 1,000 rows within the "
    "latency and memory budgets.",
    "signature_matches_features": "The artifact's input signature is exactly the feature "
    "service's columns and types.",
}


def gate_check_specs(spec: PipelineSpec, asset: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            name,
            asset=asset,
            blocking=True,
            description=_DESCRIPTIONS.get(name, f"Gate '{name}' of the spec of '{spec.name}'."),
        )
        for name in gate_names(spec)
    ]


def gate_results(spec: PipelineSpec, report: EvaluationReport) -> Iterator[dg.AssetCheckResult]:
    for name in gate_names(spec):
        gate = report.gate(name)
        if gate is None:  # only the champion gate can be absent: there is no champion yet
            yield dg.AssetCheckResult(
                check_name=name,
                passed=True,
                description="no champion yet: nothing to compare with",
                metadata={"message": "no champion yet"},
            )
            continue
        yield dg.AssetCheckResult(
            check_name=name,
            passed=gate.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=gate.message,
            metadata={"message": gate.message, "evidence": dg.MetadataValue.json(gate.evidence)},
        )
