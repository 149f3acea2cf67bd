"""Splitting a frame into the batches that are judged one by one (``ml-platform monitor``'s
``--chunk-by day`` / ``--chunk-rows N``): drift is a property of a period, and one verdict over
months of data would average a shift away."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import pandas as pd


def chunks(
    frame: pd.DataFrame, timestamp: str, by: Literal["day"] | None, rows: int | None
) -> Iterator[tuple[str, pd.DataFrame]]:
    """(label, rows) pairs: by UTC day of ``timestamp`` in date order ("2026-01-04"), by
    consecutive runs of ``rows`` rows in file order ("rows 0-49999"), or the whole frame
    ("all rows 0-N") when neither is given. Rows without a timestamp form a "no timestamp"
    chunk (after the dates) rather than vanish."""
    if by is not None and rows is not None:
        raise ValueError("chunk by day or by a number of rows, not both")
    if rows is not None and rows < 1:
        raise ValueError(f"a chunk needs at least one row, got {rows}")
    if by == "day":
        stamps = pd.to_datetime(frame[timestamp], utc=True)
        days = stamps.dt.strftime("%Y-%m-%d").fillna("no timestamp")
        for day, part in frame.groupby(days.to_numpy(), sort=True):
            yield str(day), part
        return
    size = rows or max(len(frame), 1)
    prefix = "rows" if rows else "all rows"
    for start in range(0, len(frame), size):
        part = frame.iloc[start : start + size]
        yield f"{prefix} {start}-{start + len(part) - 1}", part
