"""Alert only on a breach that persists: one drifted batch is often noise or a one-off (a
holiday, a late file); ``persistence`` drifted batches in a row is a trend worth a retrain."""

from __future__ import annotations

from collections.abc import Sequence


def breach_streak(history: Sequence[bool]) -> int:
    """How many of the newest entries (oldest first) are breaches, counting back from the last."""
    streak = 0
    for breached in reversed(history):
        if not breached:
            break
        streak += 1
    return streak


def alerting(history: Sequence[bool], persistence: int) -> bool:
    """Whether the newest ``persistence`` entries are all breaches (the newest included)."""
    return breach_streak(history) >= persistence
