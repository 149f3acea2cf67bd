"""The channels configured in the environment. Nothing here raises: a variable that cannot be
used becomes a channel that reports the problem as a failed delivery on every alert."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ml_platform.alerting.alert import Alert
from ml_platform.alerting.delivery import Channel, Delivery
from ml_platform.alerting.smtp import SmtpChannel
from ml_platform.alerting.webhook import WebhookChannel

WEBHOOK_URL = "ML_PLATFORM_ALERT_WEBHOOK_URL"
SMTP_HOST = "ML_PLATFORM_SMTP_HOST"
SMTP_PORT = "ML_PLATFORM_SMTP_PORT"
SMTP_USER = "ML_PLATFORM_SMTP_USER"
SMTP_PASSWORD = "ML_PLATFORM_SMTP_PASSWORD"
SMTP_FROM = "ML_PLATFORM_SMTP_FROM"
SMTP_STARTTLS = "ML_PLATFORM_SMTP_STARTTLS"
EMAIL_TO = "ML_PLATFORM_ALERT_EMAIL_TO"
DAGSTER_URL = "DAGSTER_WEBSERVER_URL"
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class MisconfiguredChannel:
    channel: Channel
    target: str
    error: str

    def send(self, alert: Alert) -> Delivery:
        return Delivery(self.channel, False, self.target, self.error, attempts=0)


def webhook_from_env(env: Mapping[str, str]) -> WebhookChannel | MisconfiguredChannel | None:
    url = env.get(WEBHOOK_URL, "").strip()
    if not url:
        return None
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        return MisconfiguredChannel("webhook", "(invalid URL)", f"{WEBHOOK_URL} is not http(s)")
    return WebhookChannel(url, dagster_url=env.get(DAGSTER_URL) or None)


def smtp_from_env(env: Mapping[str, str]) -> SmtpChannel | MisconfiguredChannel | None:
    host = env.get(SMTP_HOST, "").strip()
    if not host:
        return None
    target = f"smtp://{host}"
    starttls_raw = env.get(SMTP_STARTTLS, "true").strip().lower() or "true"
    if starttls_raw not in TRUE | FALSE:
        return MisconfiguredChannel("email", target, f"{SMTP_STARTTLS} must be true or false")
    starttls = starttls_raw in TRUE
    port_raw = env.get(SMTP_PORT, "").strip() or ("587" if starttls else "25")
    if not port_raw.isdigit():
        return MisconfiguredChannel("email", target, f"{SMTP_PORT} is not a port number")
    recipients = tuple(a.strip() for a in env.get(EMAIL_TO, "").split(",") if a.strip())
    if not recipients:
        return MisconfiguredChannel("email", target, f"{SMTP_HOST} is set but {EMAIL_TO} is empty")
    return SmtpChannel(
        host=host,
        port=int(port_raw),
        sender=env.get(SMTP_FROM, "").strip() or f"ml-platform@{socket.getfqdn()}",
        recipients=recipients,
        starttls=starttls,
        user=env.get(SMTP_USER, "").strip() or None,
        password=env.get(SMTP_PASSWORD) or None,
    )
