"""The e-mail channel against a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
from pathlib import Path

from ml_platform.alerting import Alert, Notifier, read_alerts_log
from ml_platform_tests.alerting.conftest import PASSWORD
from ml_platform_tests.alerting.servers import free_port, smtp_server


def smtp_env(port: int, **extra: str) -> dict[str, str]:
    return {
        "ML_PLATFORM_SMTP_HOST": "127.0.0.1",
        "ML_PLATFORM_SMTP_PORT": str(port),
        "ML_PLATFORM_SMTP_USER": "alerts",
        "ML_PLATFORM_SMTP_PASSWORD": PASSWORD,
        "ML_PLATFORM_SMTP_FROM": "ml-platform@example.com",
        "ML_PLATFORM_ALERT_EMAIL_TO": "oncall@example.com, ds-team@example.com",
        "ML_PLATFORM_SMTP_STARTTLS": "false",
        **extra,
    }


def test_sends_the_alert_by_email(alerts_log: Path, alert: Alert) -> None:
    with smtp_server(PASSWORD) as (server, port):
        deliveries = Notifier.from_env(alerts_log, environ=smtp_env(port)).notify(alert)
    assert [(d.channel, d.ok) for d in deliveries] == [("log", True), ("email", True)]
    assert server.logins == [("alerts", PASSWORD)]
    (message,) = server.messages
    assert server.envelopes == [
        ("ml-platform@example.com", ["oncall@example.com", "ds-team@example.com"])
    ]
    assert message["Subject"] == (
        "[ml_platform] [WARNING] loan_default: drift in 2 batches in a row"
    )
    body = message.get_payload(decode=True).decode()
    assert '"income"' in body and "0123456789abcdef" in body


def test_no_server_listening_is_logged_not_raised(alerts_log: Path, alert: Alert) -> None:
    env = smtp_env(free_port())
    deliveries = Notifier.from_env(alerts_log, environ=env).notify(alert)
    assert deliveries[0].ok and not deliveries[1].ok
    assert "refused" in (deliveries[1].error or "").lower()
    failure = read_alerts_log(alerts_log)[-1]
    assert failure["record"] == "delivery_failed" and failure["channel"] == "email"


def test_wrong_password_is_logged_without_the_password(alerts_log: Path, alert: Alert) -> None:
    with smtp_server("another-password") as (server, port):
        deliveries = Notifier.from_env(alerts_log, environ=smtp_env(port)).notify(alert)
    assert not deliveries[1].ok and "Authentication" in (deliveries[1].error or "")
    # smtplib tries each mechanism the server offers (PLAIN, then LOGIN).
    assert set(server.logins) == {("alerts", PASSWORD)} and server.messages == []
    assert PASSWORD not in alerts_log.read_text() and PASSWORD not in repr(deliveries)


def test_starttls_is_the_default_and_is_not_skipped(alerts_log: Path, alert: Alert) -> None:
    # This server offers no STARTTLS: with the default the message is not sent in clear text.
    env = smtp_env(0)
    del env["ML_PLATFORM_SMTP_STARTTLS"]
    with smtp_server(PASSWORD) as (server, port):
        env["ML_PLATFORM_SMTP_PORT"] = str(port)
        deliveries = Notifier.from_env(alerts_log, environ=env).notify(alert)
    assert not deliveries[1].ok and "STARTTLS" in (deliveries[1].error or "")
    assert server.logins == [] and server.messages == []
    assert json.loads(alerts_log.read_text().splitlines()[-1])["channel"] == "email"
