"""Alerts for failed runs of any job in this code location (see ml_platform/components/alerts)."""

import dagster as dg

from ml_platform.components.alerts import run_failure_alerts


@dg.definitions
def alerts() -> dg.Definitions:
    return dg.Definitions(sensors=[run_failure_alerts])
