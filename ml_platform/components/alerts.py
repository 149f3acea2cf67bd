"""Alert wiring: the home's notifier (alerts log, plus webhook and e-mail when configured in the
environment) and the sensor that reports failed runs of any job in this code location."""

import dagster as dg

from ml_platform.alerting import Alert, Notifier
from ml_platform.home import PlatformHome
from ml_platform.resources import PlatformResource


def notifier(home: PlatformHome) -> Notifier:
    """Never raises when notifying: a failing channel is written to the alerts log."""
    return Notifier.from_env(home.alerts_log)


@dg.run_failure_sensor(
    name="ml_platform_run_failure_alerts",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends an alert for every failed run of this code location's jobs (alerts log, "
    "and webhook / e-mail when configured): the job, the run, the failed steps' errors.",
)
def run_failure_alerts(context: dg.RunFailureSensorContext, platform: PlatformResource) -> None:
    run = context.dagster_run
    errors = [
        f"{e.step_key}: {e.event_specific_data.error.message.strip()[:300]}"  # type: ignore[union-attr]
        for e in context.get_step_failure_events()
        if e.event_specific_data is not None and getattr(e.event_specific_data, "error", None)
    ]
    notifier(platform.platform_home()).notify(
        Alert(
            kind="run_failure",
            pipeline=run.tags.get("ml_platform/pipeline", run.job_name),
            title=f"run {run.run_id[:8]} of {run.job_name} failed",
            details={
                "job": run.job_name,
                "run_id": run.run_id,
                "message": (context.failure_event.message or "")[:500],
                "step_errors": errors[:10],
                "trigger": run.tags.get("ml_platform/trigger", run.tags.get("trigger", "manual")),
            },
            severity="error",
            dagster_run_id=run.run_id,
        )
    )
