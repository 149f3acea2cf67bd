"""The one error monitoring raises on purpose: something the operator must fix first."""

from __future__ import annotations


class MonitoringError(RuntimeError):
    """Monitoring cannot run (no champion yet, no training reference, unusable input); the
    message says what is missing and how to fix it."""
