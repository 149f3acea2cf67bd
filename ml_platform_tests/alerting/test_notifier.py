"""All channels together: a failing one never stops the others or the caller, and no secret
reaches the log, the logging output or a Delivery."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ml_platform.alerting import Alert, Notifier, read_alerts_log
from ml_platform_tests.alerting.conftest import PASSWORD, fast
from ml_platform_tests.alerting.servers import free_port, smtp_server, webhook_receiver
from ml_platform_tests.alerting.test_smtp import smtp_env

HOOK_SECRET = "hook-secret-token"


def test_all_channels_deliver(alerts_log: Path, alert: Alert) -> None:
    with webhook_receiver() as hook, smtp_server(PASSWORD) as (mail, port):
        env = {**smtp_env(port), "ML_PLATFORM_ALERT_WEBHOOK_URL": hook.url()}
        deliveries = Notifier.from_env(alerts_log, environ=env).notify(alert)
    assert [(d.channel, d.ok) for d in deliveries] == [
        ("log", True),
        ("webhook", True),
        ("email", True),
    ]
    assert len(hook.bodies) == 1 and len(mail.messages) == 1


def test_failing_webhook_does_not_stop_email(alerts_log: Path, alert: Alert) -> None:
    with webhook_receiver(statuses=[500]) as hook, smtp_server(PASSWORD) as (mail, port):
        env = {**smtp_env(port), "ML_PLATFORM_ALERT_WEBHOOK_URL": hook.url()}
        deliveries = fast(Notifier.from_env(alerts_log, environ=env)).notify(alert)
    assert [(d.channel, d.ok) for d in deliveries] == [
        ("log", True),
        ("webhook", False),
        ("email", True),
    ]
    assert len(mail.messages) == 1


def test_failing_email_does_not_stop_the_webhook(alerts_log: Path, alert: Alert) -> None:
    with webhook_receiver() as hook:
        env = {**smtp_env(free_port()), "ML_PLATFORM_ALERT_WEBHOOK_URL": hook.url()}
        deliveries = Notifier.from_env(alerts_log, environ=env).notify(alert)
    assert [(d.channel, d.ok) for d in deliveries] == [
        ("log", True),
        ("webhook", True),
        ("email", False),
    ]
    assert len(hook.bodies) == 1
    assert [r["record"] for r in read_alerts_log(alerts_log)] == ["alert", "delivery_failed"]


def test_an_unwritable_log_does_not_stop_the_webhook(tmp_path: Path, alert: Alert) -> None:
    (tmp_path / "alerts").write_text("a file where the log's directory should be")
    with webhook_receiver() as hook:
        env = {"ML_PLATFORM_ALERT_WEBHOOK_URL": hook.url()}
        deliveries = Notifier.from_env(tmp_path / "alerts" / "alerts.jsonl", env).notify(alert)
    assert [(d.channel, d.ok) for d in deliveries] == [("log", False), ("webhook", True)]


def test_secrets_never_reach_the_log_the_logging_or_a_delivery(
    alerts_log: Path, alert: Alert, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with webhook_receiver(statuses=[500]) as hook, smtp_server("not-it") as (_, port):
        env = {**smtp_env(port), "ML_PLATFORM_ALERT_WEBHOOK_URL": hook.url()}
        notifier = fast(Notifier.from_env(alerts_log, environ=env))
        deliveries = notifier.notify(alert)
    unrefused = Notifier.from_env(
        alerts_log, environ={**smtp_env(free_port()), "ML_PLATFORM_ALERT_WEBHOOK_URL": hook.url()}
    )
    deliveries += fast(unrefused).notify(alert)
    assert [d.ok for d in deliveries] == [True, False, False, True, False, False]
    logged = alerts_log.read_text()
    assert "delivery_failed" in logged and "alert" in caplog.text
    for secret in (PASSWORD, HOOK_SECRET, "/services/T000"):
        assert secret not in logged
        assert secret not in caplog.text
        assert secret not in repr(deliveries) and secret not in repr(notifier)
    assert f"http://127.0.0.1:{hook.port}/***" in logged


def test_variables_from_the_process_environment(
    alerts_log: Path, alert: Alert, monkeypatch: pytest.MonkeyPatch
) -> None:
    with webhook_receiver() as hook:
        monkeypatch.setenv("ML_PLATFORM_ALERT_WEBHOOK_URL", hook.url())
        monkeypatch.delenv("ML_PLATFORM_SMTP_HOST", raising=False)
        deliveries = Notifier.from_env(alerts_log).notify(alert)
    assert [d.channel for d in deliveries] == ["log", "webhook"] and len(hook.bodies) == 1


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"ML_PLATFORM_ALERT_WEBHOOK_URL": "file:///etc/passwd"}, "not http(s)"),
        ({"ML_PLATFORM_SMTP_HOST": "h", "ML_PLATFORM_SMTP_PORT": "x"}, "not a port"),
        (
            {"ML_PLATFORM_SMTP_HOST": "h", "ML_PLATFORM_ALERT_EMAIL_TO": "a@b"}
            | {"ML_PLATFORM_SMTP_STARTTLS": "maybe"},
            "true or false",
        ),
        ({"ML_PLATFORM_SMTP_HOST": "h"}, "ML_PLATFORM_ALERT_EMAIL_TO is empty"),
    ],
)
def test_bad_settings_are_failed_deliveries_not_exceptions(
    alerts_log: Path, alert: Alert, env: dict[str, str], error: str
) -> None:
    deliveries = Notifier.from_env(alerts_log, environ=env).notify(alert)
    assert deliveries[0].ok and not deliveries[1].ok and error in (deliveries[1].error or "")
    assert error in read_alerts_log(alerts_log)[-1]["error"]
