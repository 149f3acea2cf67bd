"""Chunking a frame into judged batches, and the persistence rule over their verdicts."""

from __future__ import annotations

import pandas as pd
import pytest

from ml_platform.monitoring.chunks import chunks
from ml_platform.monitoring.persistence import alerting, breach_streak


def _frame() -> pd.DataFrame:
    stamps = pd.to_datetime(
        ["2026-01-04 23:59", "2026-01-03 10:00", "2026-01-04 00:00", None, "2026-01-03 11:00"]
    )
    return pd.DataFrame({"ts": stamps, "v": range(5)})


def test_chunks_by_day_in_date_order() -> None:
    got = [(label, list(part["v"])) for label, part in chunks(_frame(), "ts", "day", None)]
    assert got == [("2026-01-03", [1, 4]), ("2026-01-04", [0, 2]), ("no timestamp", [3])]


def test_chunks_by_day_reads_text_and_converts_to_utc() -> None:
    frame = pd.DataFrame({"ts": ["2026-01-04T23:30:00-02:00", "2026-01-04T10:00:00Z"], "v": [0, 1]})
    assert [label for label, _ in chunks(frame, "ts", "day", None)] == ["2026-01-04", "2026-01-05"]


def test_chunks_by_rows_in_file_order_and_whole() -> None:
    frame = pd.DataFrame({"v": range(5)})
    got = [(label, list(part["v"])) for label, part in chunks(frame, "ts", None, 2)]
    assert got == [("rows 0-1", [0, 1]), ("rows 2-3", [2, 3]), ("rows 4-4", [4])]
    assert [label for label, _ in chunks(frame, "ts", None, None)] == ["all rows 0-4"]
    assert list(chunks(frame.iloc[:0], "ts", None, None)) == []


def test_chunks_refuse_both_or_a_bad_size() -> None:
    with pytest.raises(ValueError, match="not both"):
        list(chunks(_frame(), "ts", "day", 10))
    with pytest.raises(ValueError, match="at least one row"):
        list(chunks(_frame(), "ts", None, 0))


@pytest.mark.parametrize(
    ("history", "streak"),
    [([], 0), ([True], 1), ([True, False], 0), ([False, True, True], 2), ([True] * 5, 5)],
)
def test_breach_streak_counts_back_from_the_newest(history: list[bool], streak: int) -> None:
    assert breach_streak(history) == streak


def test_alerting_needs_persistence_breaches_in_a_row_including_the_newest() -> None:
    assert not alerting([True, False], 1)
    assert alerting([False, True], 1)
    assert not alerting([True, False, True], 2)
    assert alerting([False, True, True], 2)
    assert not alerting([True, True, False], 2)
