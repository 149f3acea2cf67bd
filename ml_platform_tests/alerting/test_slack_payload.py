"""The webhook's JSON against Slack's incoming-webhook format: ``text`` plus Block Kit blocks
within their documented limits."""

from __future__ import annotations

from typing import Any

from ml_platform.alerting import Alert, slack_payload

BLOCK_TYPES = {"header", "section", "context", "divider"}


def assert_slack_compatible(payload: dict[str, Any]) -> None:
    assert set(payload) == {"text", "blocks"}
    assert isinstance(payload["text"], str) and payload["text"]
    blocks = payload["blocks"]
    assert isinstance(blocks, list) and 0 < len(blocks) <= 50
    for block in blocks:
        assert block["type"] in BLOCK_TYPES, block
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert 0 < len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert block["text"]["type"] == "mrkdwn"
                assert 0 < len(block["text"]["text"]) <= 3000
            for f in block.get("fields", []):
                assert f["type"] == "mrkdwn" and 0 < len(f["text"]) <= 2000
            assert len(block.get("fields", [])) <= 10
        if block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
            assert all(e["type"] in ("mrkdwn", "plain_text") for e in block["elements"])


def test_payload_is_slack_compatible(alert: Alert) -> None:
    payload = slack_payload(alert)
    assert_slack_compatible(payload)
    assert payload["text"] == "[WARNING] loan_default: drift in 2 batches in a row"
    other = Alert(kind="promotion", pipeline="p", title="v3 is champion", severity="info")
    assert slack_payload(other)["text"] == "[INFO] p: v3 is champion"
    text = str(payload["blocks"])
    assert "income" in text and "0123456789abcdef" in text


def test_long_titles_and_details_are_clipped_to_slacks_limits() -> None:
    alert = Alert(
        kind="gate_failed",
        pipeline="p" * 3000,
        title="t" * 500,
        details={f"k{i}": "v" * 100 for i in range(200)},
        severity="error",
    )
    assert_slack_compatible(slack_payload(alert))


def test_markup_is_escaped_and_the_run_links_to_dagster() -> None:
    alert = Alert(
        kind="run_failure",
        pipeline="<!channel>",
        title="x",
        details={"error": "a < b & c > d"},
        dagster_run_id="abcdef0123",
    )
    payload = slack_payload(alert, dagster_url="http://dagster.local:3000/")
    text = str(payload)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "a &lt; b &amp; c &gt; d" in text
    assert "<http://dagster.local:3000/runs/abcdef0123|abcdef01>" in text
