"""Automation: Dagster's automation-condition sensor starts STOPPED in a new instance, so eager
assets (the online store following each new feature table) would silently never run. This one
is RUNNING by default; stop it in the UI to pause all automation."""

import dagster as dg


@dg.definitions
def automation() -> dg.Definitions:
    return dg.Definitions(
        sensors=[
            dg.AutomationConditionSensorDefinition(
                "ml_platform_automation",
                target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING,
                description="Evaluates the assets' automation conditions "
                "(e.g. the eager online store).",
            )
        ]
    )
