"""Rollout state of one pipeline: which challenger is in shadow or A/B, since when, who said so.

A SQLite file per pipeline, ``<home.warehouse>/<pipeline>/rollout/rollout.db``, append-only
(triggers refuse UPDATE and DELETE): a rollout is a row of ``rollouts`` written at start, and
its end is a row of ``rollout_stops`` (at most one per rollout: its primary key). The active
rollout is the newest one without a stop. Starting and stopping run in one ``BEGIN IMMEDIATE``
transaction each, so two racing starts cannot both succeed.

The service polls :meth:`RolloutStore.current` in its refresh loop; ``ml-platform rollout``
starts and stops; online evaluation stops a rollout whose challenger is significantly worse.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ml_platform.home import PlatformHome

MODES = ("off", "shadow", "ab")
ACTIVE_MODES = ("shadow", "ab")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollouts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('shadow', 'ab')),
    traffic_share REAL NOT NULL CHECK (traffic_share >= 0 AND traffic_share <= 1),
    champion_version TEXT NOT NULL,
    challenger_version TEXT NOT NULL,
    started_at TEXT NOT NULL,
    actor TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rollout_stops (
    rollout_id INTEGER PRIMARY KEY REFERENCES rollouts(id),
    stopped_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL
);
"""
_APPEND_ONLY = """
CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, 'the rollout history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, 'the rollout history is append-only'); END;
"""
_SELECT = """
SELECT r.id, r.pipeline, r.mode, r.traffic_share, r.champion_version, r.challenger_version,
       r.started_at, s.stopped_at, s.reason, r.actor, s.actor
FROM rollouts r LEFT JOIN rollout_stops s ON s.rollout_id = r.id
"""


class RolloutRefused(ValueError):
    """A start or stop that the rollout state does not allow (the message says why and what
    to do)."""


@dataclass(frozen=True)
class Rollout:
    id: int
    pipeline: str
    mode: str  # "shadow" | "ab"
    traffic_share: float  # the challenger's share of callers in ab; unused in shadow
    champion_version: str
    challenger_version: str
    started_at: datetime
    stopped_at: datetime | None
    stop_reason: str | None
    actor: str  # who started it
    stopped_by: str | None = None

    @property
    def active(self) -> bool:
        return self.stopped_at is None

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "mode": self.mode,
            "traffic_share": self.traffic_share,
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "started_at": self.started_at.isoformat(),
            "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
            "stop_reason": self.stop_reason,
            "actor": self.actor,
            "stopped_by": self.stopped_by,
            "active": self.active,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _row(r: tuple[object, ...]) -> Rollout:
    return Rollout(
        id=int(r[0]),  # type: ignore[call-overload]
        pipeline=str(r[1]),
        mode=str(r[2]),
        traffic_share=float(r[3]),  # type: ignore[arg-type]
        champion_version=str(r[4]),
        challenger_version=str(r[5]),
        started_at=datetime.fromisoformat(str(r[6])),
        stopped_at=datetime.fromisoformat(str(r[7])) if r[7] is not None else None,
        stop_reason=None if r[8] is None else str(r[8]),
        actor=str(r[9]),
        stopped_by=None if r[10] is None else str(r[10]),
    )


def rollout_db(home: PlatformHome, pipeline: str) -> Path:
    return home.pipeline_dir(pipeline) / "rollout" / "rollout.db"


class RolloutStore:
    def __init__(self, home: PlatformHome, pipeline: str) -> None:
        self.pipeline = pipeline
        self.path = rollout_db(home, pipeline)
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        if not self._ready:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(
                _SCHEMA
                + "".join(_APPEND_ONLY.format(table=t) for t in ("rollouts", "rollout_stops"))
            )
            self._ready = True
        return con

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with closing(self._connect()) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    @staticmethod
    def _active(con: sqlite3.Connection) -> Rollout | None:
        row = con.execute(
            _SELECT + " WHERE s.rollout_id IS NULL ORDER BY r.id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else _row(row)

    def start(
        self,
        mode: str,
        traffic_share: float,
        champion_version: str | None,
        challenger_version: str | None,
        actor: str,
    ) -> Rollout:
        """Record a new active rollout; refused (:class:`RolloutRefused`) when one is active,
        when there is no champion or no challenger, or when they are the same version."""
        name = self.pipeline
        if mode not in ACTIVE_MODES:
            raise RolloutRefused(
                f"rollout mode {mode!r} cannot be started for '{name}': use 'shadow' or 'ab' "
                "('off' is what stop gives)"
            )
        if not 0.0 <= traffic_share <= 1.0:
            raise RolloutRefused(
                f"traffic_share {traffic_share} for '{name}' must be between 0 and 1"
            )
        if mode == "ab" and not 0.0 < traffic_share < 1.0:
            raise RolloutRefused(
                f"an A/B rollout of '{name}' needs 0 < traffic_share < 1 (got {traffic_share}): "
                "at 0 the challenger serves nobody, at 1 nobody is left for the champion"
            )
        if not champion_version:
            raise RolloutRefused(
                f"'{name}' has no champion alias: train and promote a model before a rollout"
            )
        if not challenger_version:
            raise RolloutRefused(
                f"'{name}' has no challenger alias: register a challenger (a training run "
                "that passes its gates without auto-promotion) before a rollout"
            )
        if str(challenger_version) == str(champion_version):
            raise RolloutRefused(
                f"the challenger of '{name}' is the champion (version {champion_version}): "
                "there is nothing to compare; train a new challenger first"
            )
        if not actor:
            raise RolloutRefused("a rollout needs an actor (who starts it)")
        with self._transaction() as con:
            active = self._active(con)
            if active is not None:
                raise RolloutRefused(
                    f"'{name}' already has an active {active.mode} rollout (id {active.id}, "
                    f"challenger version {active.challenger_version}, started "
                    f"{active.started_at:%Y-%m-%d %H:%M} UTC by {active.actor}): stop it "
                    f"first with `ml-platform rollout {name} stop`"
                )
            cur = con.execute(
                "INSERT INTO rollouts (pipeline, mode, traffic_share, champion_version, "
                "challenger_version, started_at, actor) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    mode,
                    float(traffic_share),
                    str(champion_version),
                    str(challenger_version),
                    _now(),
                    actor,
                ),
            )
            row = con.execute(_SELECT + " WHERE r.id = ?", (cur.lastrowid,)).fetchone()
        return _row(row)

    def stop(self, reason: str, actor: str) -> Rollout | None:
        """Stop the active rollout; the stopped rollout, or None when none was active."""
        if not reason:
            raise RolloutRefused("stopping a rollout needs a reason")
        with self._transaction() as con:
            active = self._active(con)
            if active is None:
                return None
            con.execute(
                "INSERT INTO rollout_stops (rollout_id, stopped_at, reason, actor) "
                "VALUES (?, ?, ?, ?)",
                (active.id, _now(), reason, actor),
            )
            row = con.execute(_SELECT + " WHERE r.id = ?", (active.id,)).fetchone()
        return _row(row)

    def current(self) -> Rollout | None:
        """The active rollout, or None (mode off). Never creates the file to answer."""
        if not self._ready and not self.path.exists():
            return None
        with closing(self._connect()) as con:
            return self._active(con)

    def history(self) -> list[Rollout]:
        """Every rollout of the pipeline, oldest first."""
        if not self._ready and not self.path.exists():
            return []
        with closing(self._connect()) as con:
            return [_row(r) for r in con.execute(_SELECT + " ORDER BY r.id")]


def challenger_share_of(pipeline: str, rollout_id: int, entity: object) -> float:
    """Where an entity falls in [0, 1): the first 8 bytes of sha256(pipeline, rollout, entity)
    (stable across processes and restarts, unlike Python's salted ``hash``). Salted by the
    rollout id, so each rollout draws a fresh split while an entity stays in its arm for the
    whole rollout."""
    digest = hashlib.sha256(f"{pipeline}\x1f{rollout_id}\x1f{entity}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def serves_challenger(pipeline: str, rollout_id: int, entity: object, share: float) -> bool:
    """A/B: whether ``entity`` is in the challenger's arm at ``share``."""
    return challenger_share_of(pipeline, rollout_id, entity) < share
