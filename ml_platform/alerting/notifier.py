"""Sends each alert to every configured channel. ``notify`` never raises: a run or sensor must
not fail because a notification did; each failure is written to the alerts log and logged."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from ml_platform.alerting.alert import Alert
from ml_platform.alerting.delivery import Channel, Delivery
from ml_platform.alerting.log import append_line
from ml_platform.alerting.settings import smtp_from_env, webhook_from_env

logger = logging.getLogger(__name__)


class Sender(Protocol):
    @property
    def channel(self) -> Channel: ...

    @property
    def target(self) -> str: ...

    def send(self, alert: Alert) -> Delivery: ...


@dataclass(frozen=True)
class Notifier:
    alerts_log: Path
    channels: Sequence[Sender] = ()

    @classmethod
    def from_env(cls, home_alerts_log: Path, environ: Mapping[str, str] | None = None) -> Notifier:
        """The alerts log at ``home_alerts_log`` (always), plus the webhook and the e-mail
        channel when their variables are set (see docs/alerting.md)."""
        env = os.environ if environ is None else environ
        found = (webhook_from_env(env), smtp_from_env(env))
        return cls(home_alerts_log, tuple(c for c in found if c is not None))

    def notify(self, alert: Alert) -> list[Delivery]:
        deliveries = [self._log(alert)]
        for channel in self.channels:
            try:
                delivery = channel.send(alert)
            except Exception as e:  # channels report their own failures; this is the backstop
                delivery = Delivery(channel.channel, False, channel.target, type(e).__name__)
            deliveries.append(delivery)
            if not delivery.ok:
                self._record_failure(alert, delivery)
        return deliveries

    def _log(self, alert: Alert) -> Delivery:
        target = str(self.alerts_log)
        try:
            append_line(self.alerts_log, {"record": "alert", **alert.to_dict()})
            return Delivery("log", True, target)
        except Exception as e:
            logger.error("alert %s (%s) not written to %s: %s", alert.id, alert.title, target, e)
            return Delivery("log", False, target, f"{type(e).__name__}: {e}")

    def _record_failure(self, alert: Alert, delivery: Delivery) -> None:
        logger.warning(
            "alert %s (%s) not delivered by %s to %s: %s",
            alert.id,
            alert.kind,
            delivery.channel,
            delivery.target,
            delivery.error,
        )
        record = {
            "record": "delivery_failed",
            "alert_id": alert.id,
            "at": datetime.now(UTC).isoformat(),
            **delivery.to_dict(),
        }
        try:
            append_line(self.alerts_log, record)
        except Exception as e:
            logger.error("delivery failure of alert %s not written to the log: %s", alert.id, e)
