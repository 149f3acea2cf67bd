"""The monitoring history of each pipeline: one row per analysed batch and champion version.

Kept in SQLite under the home (``pipelines/<name>/monitoring/history.db``) so the persistence
rule ("drifted two batches in a row") and the drift-over-time plot survive runs. Writing a
batch again (a retried step, a re-executed run) replaces its row: nothing is duplicated.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
create table if not exists batches (
    pipeline text not null,
    batch text not null,
    champion_version text not null,
    analyzed_at text not null,
    dagster_run_id text,
    rows integer not null,
    judged integer not null,
    drifted integer not null,
    breached integer not null,
    reasons text not null,
    analysis text not null,
    primary key (pipeline, batch, champion_version)
)
"""


@dataclass(frozen=True)
class BatchRecord:
    pipeline: str
    batch: str
    champion_version: str
    analyzed_at: str
    dagster_run_id: str | None
    rows: int
    judged: bool
    drifted: bool
    breached: bool
    reasons: list[str]
    analysis: dict[str, Any]  # BatchAnalysis.to_dict() and the drifted features' names


class MonitoringHistory:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=30)) as con:
            con.execute(SCHEMA)
            with con:
                yield con

    def record(self, record: BatchRecord) -> None:
        """Store (or replace) the analysis of one batch against one champion version."""
        r = record
        with self._connect() as con:
            con.execute(
                "insert or replace into batches values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    r.pipeline,
                    r.batch,
                    r.champion_version,
                    r.analyzed_at,
                    r.dagster_run_id,
                    r.rows,
                    int(r.judged),
                    int(r.drifted),
                    int(r.breached),
                    json.dumps(r.reasons),
                    json.dumps(r.analysis, default=str),
                ),
            )

    def batches(self, pipeline: str, champion_version: str | None = None) -> list[BatchRecord]:
        """Every analysed batch of the pipeline in batch order (of one champion, if given)."""
        query = "select * from batches where pipeline = ?"
        args: tuple[str, ...] = (pipeline,)
        if champion_version is not None:
            query += " and champion_version = ?"
            args += (champion_version,)
        with self._connect() as con:
            rows = con.execute(query + " order by batch, analyzed_at", args).fetchall()
        return [
            BatchRecord(
                pipeline=r[0],
                batch=r[1],
                champion_version=r[2],
                analyzed_at=r[3],
                dagster_run_id=r[4],
                rows=r[5],
                judged=bool(r[6]),
                drifted=bool(r[7]),
                breached=bool(r[8]),
                reasons=json.loads(r[9]),
                analysis=json.loads(r[10]),
            )
            for r in rows
        ]


def history_path(pipeline_dir: Path) -> Path:
    return pipeline_dir / "monitoring" / "history.db"
