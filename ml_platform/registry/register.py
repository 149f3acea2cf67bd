"""The registration stage: a candidate that passed every gate becomes a registered version with
lineage tags, its model card as description and the ``challenger`` alias; the promotion ledger
then decides on ``champion``. A failed candidate is only recorded in the ledger (``reject``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ml_platform.evaluation.evaluate import CHAMPION_GATE, EvaluationReport
from ml_platform.registry.ledger import (
    GATES_TAG,
    OFFLINE_GATES,
    PROMOTING,
    Decision,
    PromotionLedger,
    PromotionRefused,
)
from ml_platform.spec import PipelineSpec
from ml_platform.training.tracking import Tracking
from ml_platform.training.train import Candidate


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
    return {
        "run_id": report.run_id,
        "metrics": report.metrics,
        "champion_version": report.champion_version,
        "gates": {g.name: {"passed": g.passed, "message": g.message} for g in report.gates},
        "report": report.report_dir,
    }


def gate_summary(report: EvaluationReport) -> str:
    failed = report.failed_gates
    if not failed:
        return f"all {len(report.gates)} gates passed"
    return "failed: " + "; ".join(f"{g.name} ({g.message})" for g in failed)[:1500]


def pipeline_actor(tags: dict[str, str]) -> str:
    return f"pipeline:{tags.get('dagster_run_id', 'direct-call')}"


def with_trigger(reason: str, tags: dict[str, str]) -> str:
    """A decision's reason, with the trigger of the retraining run that led to it."""
    if "trigger" not in tags:
        return reason
    detail = tags.get("trigger_detail", "")
    return f"{reason} [retrain trigger: {tags['trigger']} {detail}]".strip()


def record_rejection(
    spec: PipelineSpec, ledger: PromotionLedger, report: EvaluationReport, tags: dict[str, str]
) -> Decision:
    """A candidate that failed its gates: evidence and a ``reject`` decision, no version."""
    actor = pipeline_actor(tags)
    evidence = ledger.add_evidence(
        spec.name,
        None,
        OFFLINE_GATES,
        False,
        gate_summary(report),
        gate_evidence(report),
        run_id=report.run_id,
        actor=actor,
    )
    names = ", ".join(g.name for g in report.failed_gates)
    return ledger.record(
        spec.name,
        "reject",
        None,
        with_trigger(f"run {report.run_id} failed: {names}", tags),
        [evidence],
        actor=actor,
    )


def _version_tags(
    spec: PipelineSpec,
    tracking: Tracking,
    candidate: Candidate,
    report: EvaluationReport,
    tags: dict[str, str],
) -> dict[str, str]:
    run_tags = tracking.client.get_run(candidate.run_id).data.tags
    metric = spec.primary_metric
    return {
        **tags,
        GATES_TAG: "true",
        "mlflow_run_id": candidate.run_id,
        "data_version": candidate.data_version,
        "code_version": run_tags.get("code_version", "unknown"),
        "feature_service": run_tags.get("feature_service", "none"),
        "holdout_hash": str(candidate.holdout.get("hash")),
        "primary_metric": metric,
        metric: f"{report.metrics[metric]:.6f}",
        "compared_with_champion": report.champion_version or "none",
    }


def _register_version(
    spec: PipelineSpec,
    tracking: Tracking,
    candidate: Candidate,
    report: EvaluationReport,
    tags: dict[str, str],
) -> str:
    from mlflow.exceptions import MlflowException

    try:
        tracking.call(
            lambda: tracking.client.create_registered_model(spec.name),
            f"create registered model '{spec.name}'",
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    model_id = (
        candidate.model_uri.removeprefix("models:/")
        if candidate.model_uri.startswith("models:/m-")
        else None
    )
    # The storage location, not models:/<id>, as the source: given a models:/ source, MLflow's
    # SQL registry store looks the logged model up through a new MlflowClient() on the global
    # tracking URI (a TODO in its code), i.e. possibly another store.
    source = tracking.artifact_location(candidate.model_uri)
    # No retry wrapper: a retried create after a lost reply would create a second version.
    mv = tracking.client.create_model_version(
        spec.name,
        source,
        run_id=candidate.run_id,
        tags=_version_tags(spec, tracking, candidate, report, tags),
        model_id=model_id,
    )
    version = str(mv.version)
    if report.model_card and Path(report.model_card).exists():
        card = Path(report.model_card).read_text()
        tracking.call(
            lambda: tracking.client.update_model_version(spec.name, version, card),
            f"describe version {version} of '{spec.name}'",
        )
    return version


def _existing_version(spec: PipelineSpec, tracking: Tracking, candidate: Candidate) -> str | None:
    """The version already registered from this candidate's run (a retried or re-executed
    step), so registering again creates no second version."""
    found = tracking.call(
        lambda: tracking.client.search_model_versions(
            f"name = '{spec.name}' and run_id = '{candidate.run_id}'"
        ),
        f"look up versions of run {candidate.run_id}",
    )
    return str(min(int(v.version) for v in found)) if found else None


def _already_decided(
    spec: PipelineSpec, ledger: PromotionLedger, version: str
) -> Registration | None:
    """A registration that reached its decision before: the same answer, nothing recorded."""
    decided = [
        d
        for d in ledger.history(spec.name)
        if d.version == version and d.action in ("hold", *PROMOTING)
    ]
    if not decided:
        return None
    champion = ledger.champion(spec.name)
    return Registration(
        spec.name,
        version,
        champion == version,
        champion,
        f"already registered: {decided[-1].reason}",
    )


def _promotion_reason(spec: PipelineSpec, report: EvaluationReport) -> str | None:
    """Why the pipeline may promote on its own, or None when the challenger should wait."""
    if report.champion_version is None:
        return "first model of the pipeline passed its gates"
    gate = report.gate(CHAMPION_GATE)
    if not spec.gates.auto_promote or gate is None:
        return None
    # Strictly better: an identical retrain (diff 0) stays challenger instead of churning the
    # champion alias on every run.
    diff = gate.evidence.get("overall", {}).get("diff", float("nan"))
    return (
        f"scored better than champion v{report.champion_version}: {gate.message}"
        if diff > 0
        else None
    )


def register(
    spec: PipelineSpec,
    tracking: Tracking,
    ledger: PromotionLedger,
    candidate: Candidate,
    report: EvaluationReport,
    tags: dict[str, str],
) -> Registration:
    if not report.passed:  # the asset graph never gets here; guard direct callers too
        raise ValueError(
            f"candidate {candidate.run_id} failed its gates "
            f"({gate_summary(report)}); it is not registered"
        )
    actor = pipeline_actor(tags)
    version = _existing_version(spec, tracking, candidate)
    if version is not None and (done := _already_decided(spec, ledger, version)):
        return done
    version = version or _register_version(spec, tracking, candidate, report, tags)
    evidence = ledger.add_evidence(
        spec.name,
        version,
        OFFLINE_GATES,
        True,
        gate_summary(report),
        gate_evidence(report),
        run_id=candidate.run_id,
        actor=actor,
    )
    ledger.register_challenger(spec.name, version, [evidence], actor=actor)
    reason = _promotion_reason(spec, report)
    if reason is None:
        held = (
            "challenger does not score above the champion"
            if spec.gates.auto_promote
            else "auto_promote is off"
        )
        ledger.record(spec.name, "hold", version, with_trigger(held, tags), [evidence], actor=actor)
        return Registration(
            spec.name,
            version,
            False,
            ledger.champion(spec.name),
            f"registered as challenger ({held})",
        )
    try:
        # Compare-and-set: only replace the champion this candidate was compared with.
        ledger.promote(
            spec.name,
            version,
            with_trigger(reason, tags),
            actor=actor,
            expect_champion=report.champion_version,
        )
    except PromotionRefused as exc:
        ledger.record(spec.name, "hold", version, f"not promoted: {exc}", [evidence], actor=actor)
        return Registration(
            spec.name,
            version,
            False,
            ledger.champion(spec.name),
            f"registered as challenger ({exc})",
        )
    label = "first model" if report.champion_version is None else f"over v{report.champion_version}"
    return Registration(spec.name, version, True, version, f"promoted: {label}")
