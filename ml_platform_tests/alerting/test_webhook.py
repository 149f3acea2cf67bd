"""The webhook channel against a real local HTTP receiver."""

from __future__ import annotations

from pathlib import Path

from ml_platform.alerting import Alert, Notifier, read_alerts_log
from ml_platform_tests.alerting.conftest import fast
from ml_platform_tests.alerting.servers import free_port, webhook_receiver
from ml_platform_tests.alerting.test_slack_payload import assert_slack_compatible


def _notifier(log: Path, url: str) -> Notifier:
    return fast(Notifier.from_env(log, environ={"ML_PLATFORM_ALERT_WEBHOOK_URL": url}))


def test_posts_slack_json_to_the_webhook(alerts_log: Path, alert: Alert) -> None:
    with webhook_receiver() as receiver:
        deliveries = _notifier(alerts_log, receiver.url()).notify(alert)
    assert [(d.channel, d.ok, d.attempts) for d in deliveries] == [
        ("log", True, 1),
        ("webhook", True, 1),
    ]
    (body,) = receiver.bodies
    assert_slack_compatible(body)
    assert "drift in 2 batches" in body["text"]
    assert receiver.paths == ["/services/T000/B000/hook-secret-token"]


def test_one_retry_after_a_transient_failure(alerts_log: Path, alert: Alert) -> None:
    with webhook_receiver(statuses=[503, 200]) as receiver:
        deliveries = _notifier(alerts_log, receiver.url()).notify(alert)
    assert deliveries[1].ok and deliveries[1].attempts == 2
    assert len(receiver.bodies) == 2
    assert [r["record"] for r in read_alerts_log(alerts_log)] == ["alert"]


def test_a_failing_webhook_is_logged_not_raised(alerts_log: Path, alert: Alert) -> None:
    with webhook_receiver(statuses=[500]) as receiver:
        deliveries = _notifier(alerts_log, receiver.url()).notify(alert)
    webhook = deliveries[1]
    assert not webhook.ok and webhook.attempts == 2 and "HTTP 500" in (webhook.error or "")
    assert len(receiver.bodies) == 2  # the first try and one retry, no more
    alert_line, failure = read_alerts_log(alerts_log)
    assert alert_line["id"] == alert.id
    assert failure["record"] == "delivery_failed" and failure["alert_id"] == alert.id
    assert failure["channel"] == "webhook" and "HTTP 500" in failure["error"]


def test_a_refusal_is_not_retried(alerts_log: Path, alert: Alert) -> None:
    with webhook_receiver(statuses=[400]) as receiver:
        deliveries = _notifier(alerts_log, receiver.url()).notify(alert)
    assert not deliveries[1].ok and deliveries[1].attempts == 1 and len(receiver.bodies) == 1
    assert deliveries[1].error == "HTTP 400 Bad Request"


def test_connection_refused_is_logged_not_raised(alerts_log: Path, alert: Alert) -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T000/B000/hook-secret-token"
    deliveries = _notifier(alerts_log, url).notify(alert)
    assert not deliveries[1].ok and deliveries[1].attempts == 2
    assert "refused" in (deliveries[1].error or "").lower()
    assert read_alerts_log(alerts_log)[-1]["channel"] == "webhook"


def test_a_slow_webhook_times_out(alerts_log: Path, alert: Alert) -> None:
    from dataclasses import replace

    with webhook_receiver(delay=2.0) as receiver:
        notifier = _notifier(alerts_log, receiver.url())
        notifier = replace(notifier, channels=(replace(notifier.channels[0], timeout=0.3),))
        deliveries = notifier.notify(alert)
    assert not deliveries[1].ok and deliveries[1].attempts == 2
    assert "timed out" in (deliveries[1].error or "").lower()
