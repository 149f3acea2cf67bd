"""Alerting, framework-free: an ``Alert`` goes to the local alerts log (always), a
Slack-compatible webhook and e-mail over SMTP (when configured in the environment). A failing
channel never fails the caller. See docs/alerting.md."""

from ml_platform.alerting.alert import Alert, Kind, Severity
from ml_platform.alerting.delivery import Delivery
from ml_platform.alerting.log import read_alerts_log
from ml_platform.alerting.notifier import Notifier
from ml_platform.alerting.slack import slack_payload

__all__ = ["Alert", "Delivery", "Kind", "Notifier", "Severity", "read_alerts_log", "slack_payload"]
