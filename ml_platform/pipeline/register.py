"""The registration stage: a candidate that passed every gate becomes a registered version with
lineage tags and the ``challenger`` alias; the ledger then decides on promotion."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import mlflow

from ml_platform.core.tracking import Tracking
from ml_platform.pipeline.evaluate import EvaluationReport
from ml_platform.pipeline.train import Candidate
from ml_platform.registry.ledger import CHAMPION, GATES_TAG, PromotionLedger
from ml_platform.spec import PipelineSpec


@dataclass(frozen=True)
class Registration:
    model_name: str
    version: str
    promoted: bool
    champion_version: str | None
    decision: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate_evidence(report: EvaluationReport) -> dict[str, Any]:
    return {"run_id": report.run_id, "metrics": report.metrics,
            "gates": {g.name: {"passed": g.passed, "message": g.message} for g in report.gates}}


def register(spec: PipelineSpec, tracking: Tracking, ledger: PromotionLedger,
             candidate: Candidate, report: EvaluationReport, tags: dict[str, str]
             ) -> Registration:
    if not report.passed:  # the asset graph never gets here; guard direct callers too
        raise ValueError(f"candidate {candidate.run_id} failed its gates; it is not registered")
    mlflow.set_tracking_uri(tracking.tracking_uri)
    mlflow.set_registry_uri(tracking.tracking_uri)
    run_tags = tracking.client.get_run(candidate.run_id).data.tags
    version_tags = {**tags, GATES_TAG: "true", "mlflow_run_id": candidate.run_id,
                    "data_version": candidate.data_version,
                    "code_version": run_tags.get("code_version", "unknown"),
                    "holdout_hash": candidate.holdout["hash"],
                    "primary_metric": spec.primary_metric,
                    spec.primary_metric: f"{report.metrics[spec.primary_metric]:.6f}"}
    mv = tracking.call(lambda: mlflow.register_model(candidate.model_uri, spec.name,
                                                     tags=version_tags),
                       f"register a version of '{spec.name}'")
    version = str(mv.version)
    evidence = gate_evidence(report)
    ledger.register_challenger(spec.name, version, evidence)
    champion = report.champion_version
    gate = report.gate("beats_champion")
    if champion is None:
        ledger.promote(spec.name, version, "first model of the pipeline passed its gates",
                       actor="pipeline", evidence=evidence)
        return Registration(spec.name, version, True, version, "promoted: first model")
    better = gate is not None and gate.evidence["overall"]["diff"] >= 0
    if spec.gates.auto_promote and better:
        ledger.promote(spec.name, version, f"beat champion v{champion}: {gate.message}",
                       actor="pipeline", evidence=evidence)
        return Registration(spec.name, version, True, version, f"promoted over v{champion}")
    current = tracking.version_by_alias(spec.name, CHAMPION)
    return Registration(spec.name, version, False, None if current is None else
                        str(current.version), "registered as challenger")
