"""An alert as Slack's incoming-webhook JSON: ``text`` (the notification and fallback line) and
Block Kit ``blocks``. Other chat tools that accept Slack-compatible webhooks read the same."""

from __future__ import annotations

import json
from typing import Any

from ml_platform.alerting.alert import Alert

# Block Kit limits: header text 150 characters, section text 3000, a section's field 2000.
HEADER_MAX, SECTION_MAX, FIELD_MAX = 150, 3000, 2000
ICONS = {"info": ":information_source:", "warning": ":warning:", "error": ":rotating_light:"}


def escape(text: str) -> str:
    """Slack reads ``&``, ``<`` and ``>`` as markup (``<!channel>`` pings everyone)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _clip(f"*{label}*\n{value}", FIELD_MAX)}


def summary_line(alert: Alert) -> str:
    """One line: severity, pipeline (unless the title starts with it) and title."""
    title = alert.title
    if not title.startswith(alert.pipeline):
        title = f"{alert.pipeline}: {title}"
    return f"[{alert.severity.upper()}] {title}"


def slack_payload(alert: Alert, dagster_url: str | None = None) -> dict[str, Any]:
    run = escape(alert.dagster_run_id or "-")
    if alert.dagster_run_id and dagster_url:
        run = f"<{dagster_url.rstrip('/')}/runs/{alert.dagster_run_id}|{run[:8]}>"
    details = json.dumps(alert.details, indent=2, default=str, sort_keys=True)
    # The code fence and its newlines take 8 characters of the section's 3000.
    details_text = "```" + _clip(escape(details), SECTION_MAX - 8) + "```"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(alert.title, HEADER_MAX)},
        },
        {
            "type": "section",
            "fields": [
                _field("Pipeline", escape(alert.pipeline)),
                _field("Kind", alert.kind),
                _field("Severity", f"{ICONS[alert.severity]} {alert.severity}"),
                _field("Dagster run", run),
            ],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": details_text}},
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"ml_platform · {alert.created_at.isoformat()}"}
            ],
        },
    ]
    return {"text": escape(_clip(summary_line(alert), SECTION_MAX)), "blocks": blocks}
