"""Registry wiring: the registered model version, promoted only through the promotion ledger."""

from pathlib import Path

import dagster as dg

from ml_platform.alerting import Alert
from ml_platform.components.alerts import notifier
from ml_platform.components.common import Stage
from ml_platform.components.tags import run_tags
from ml_platform.evaluation.evaluate import EvaluationReport
from ml_platform.registry import register
from ml_platform.resources import PlatformResource
from ml_platform.training import train


def registry_assets(stage: Stage) -> list[dg.AssetsDefinition]:
    spec, key = stage.spec, stage.key

    @dg.asset(
        ins={
            "candidate_model": dg.AssetIn(key["candidate_model"]),
            "evaluation_report": dg.AssetIn(key["evaluation_report"]),
        },
        kinds={"mlflow"},
        **stage.common("registered_model"),
    )
    def registered_model(
        context: dg.AssetExecutionContext,
        platform: PlatformResource,
        candidate_model: dict,
        evaluation_report: dict,
    ) -> dg.Output[dict]:
        """The registered model version (alias 'challenger', model card as description);
        promoted to 'champion' through the promotion ledger when it is the first model or
        scores better than the champion it was compared with."""
        cand = train.Candidate(**candidate_model)
        report = EvaluationReport.load(Path(evaluation_report["report"]))
        tags = run_tags(context)
        reg = register.register(spec, platform.tracking(), platform.ledger(), cand, report, tags)
        if reg.promoted:
            notifier(platform.platform_home()).notify(
                Alert(
                    kind="promotion",
                    pipeline=spec.name,
                    title=f"{spec.name}: v{reg.version} is the champion",
                    details={"decision": reg.decision, "trigger": tags.get("trigger", "manual")},
                    severity="info",
                    dagster_run_id=context.run.run_id,
                )
            )
        return dg.Output(
            reg.to_dict(),
            metadata={
                "model": reg.model_name,
                "version": reg.version,
                "promoted": reg.promoted,
                "champion_version": reg.champion_version or "none",
                "decision": reg.decision,
                "model_uri": f"models:/{reg.model_name}/{reg.version}",
                "ledger": dg.MetadataValue.path(str(platform.platform_home().ledger_db)),
                "history": f"ml-platform models history {spec.name}",
            },
        )

    return [registered_model]
