"""The outcome of one channel for one alert, and what keeps secrets out of it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

Channel = Literal["log", "webhook", "email"]


@dataclass(frozen=True)
class Delivery:
    """``target`` and ``error`` are redacted: safe to log, print and store."""

    channel: Channel
    ok: bool
    target: str
    error: str | None = None
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "ok": self.ok,
            "target": self.target,
            "error": self.error,
            "attempts": self.attempts,
        }


def redact_url(url: str) -> str:
    """Scheme and host only: a webhook's path (and any user info) is its secret."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}/***"


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced (longest first, so a URL goes before the
    path inside it)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
