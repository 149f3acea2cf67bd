"""POST an alert to a Slack-compatible incoming webhook: a timeout, one retry on a transient
failure (no connection, a timeout, HTTP 429 or 5xx), none on a refusal (other 4xx)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import ClassVar

from ml_platform.alerting.alert import Alert
from ml_platform.alerting.delivery import Channel, Delivery, redact, redact_url
from ml_platform.alerting.slack import slack_payload


class TransientError(Exception):
    """Worth one more try."""


class RefusedError(Exception):
    """The endpoint answered and refused (4xx other than 429): another try gets the same."""


@dataclass(frozen=True)
class WebhookChannel:
    channel: ClassVar[Channel] = "webhook"
    url: str = field(repr=False)
    dagster_url: str | None = None
    timeout: float = 5.0
    retry_delay: float = 1.0

    @property
    def target(self) -> str:
        return redact_url(self.url)

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as e:
            if e.code == 429 or e.code >= 500:
                raise TransientError(f"HTTP {e.code} {e.reason}") from e
            raise RefusedError(f"HTTP {e.code} {e.reason}") from e
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            raise TransientError(f"{type(e).__name__}: {e}") from e

    def send(self, alert: Alert) -> Delivery:
        body = json.dumps(slack_payload(alert, self.dagster_url), default=str).encode()
        attempts, error = 0, ""
        for attempt in (1, 2):
            attempts = attempt
            try:
                self._post(body)
                return Delivery("webhook", True, self.target, attempts=attempts)
            except TransientError as e:
                error = str(e)
                if attempt == 1:
                    time.sleep(self.retry_delay)
            except RefusedError as e:
                error = str(e)
                break
            except Exception as e:  # anything unexpected: reported, not retried
                error = f"{type(e).__name__}: {e}"
                break
        path = self.url.split("://", 1)[-1].split("/", 1)[-1]
        return Delivery("webhook", False, self.target, redact(error, [self.url, path]), attempts)
