"""The local alerts log: JSON lines, always written, the record of every alert and of every
channel that failed to deliver one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def append_line(path: Path, record: dict[str, Any]) -> None:
    """One ``write`` per line in append mode, then fsync: concurrent writers (sensors, runs)
    never interleave within a line, and a line that was written survives a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, default=str, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_alerts_log(path: Path) -> list[dict[str, Any]]:
    """Every record of the log, oldest first; a torn last line (a crash mid-write) is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
