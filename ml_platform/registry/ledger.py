"""The promotion ledger: an append-only record of every registry decision, and the only code
path that moves the ``champion`` and ``challenger`` aliases.

Writers serialise on the ledger database's write lock (``BEGIN IMMEDIATE``) and move the alias
while holding it, so two racing promotions leave exactly one champion and a consistent ledger.
"""

from __future__ import annotations

import getpass
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml_platform.core.tracking import Tracking

CHAMPION, CHALLENGER = "champion", "challenger"
GATES_TAG = "gates_passed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    decided_at TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    action TEXT NOT NULL,
    version TEXT,
    previous_champion TEXT,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    forced INTEGER NOT NULL DEFAULT 0,
    evidence TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'the promotion ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'the promotion ledger is append-only'); END;
"""


class PromotionRefused(RuntimeError):
    """A promotion the ledger will not make; the message says why."""


@dataclass(frozen=True)
class Decision:
    id: int
    decided_at: str
    pipeline: str
    action: str
    version: str | None
    previous_champion: str | None
    actor: str
    reason: str
    forced: bool
    evidence: dict[str, Any]


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class PromotionLedger:
    def __init__(self, path: Path, tracking: Tracking) -> None:
        self.path = path
        self.tracking = tracking
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            yield con
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def _append(self, con: sqlite3.Connection, pipeline: str, action: str, version: str | None,
                previous: str | None, actor: str, reason: str, forced: bool,
                evidence: dict[str, Any]) -> None:
        con.execute(
            "INSERT INTO decisions (decided_at, pipeline, action, version, previous_champion, "
            "actor, reason, forced, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (datetime.now(UTC).isoformat(), pipeline, action, version, previous, actor, reason,
             int(forced), json.dumps(evidence, default=str, sort_keys=True)))

    def _alias(self, model: str, alias: str) -> str | None:
        mv = self.tracking.version_by_alias(model, alias)
        return None if mv is None else str(mv.version)

    def _set_alias(self, model: str, alias: str, version: str) -> None:
        self.tracking.call(
            lambda: self.tracking.client.set_registered_model_alias(model, alias, version),
            f"set alias '{alias}' of '{model}'")

    def record(self, pipeline: str, action: str, version: str | None, reason: str,
               evidence: dict[str, Any] | None = None, actor: str | None = None) -> None:
        """Append a decision that moves no alias (a rejection, shadow evidence, ...)."""
        with self._locked() as con:
            self._append(con, pipeline, action, version, self._alias(pipeline, CHAMPION),
                         actor or default_actor(), reason, False, evidence or {})

    def register_challenger(self, pipeline: str, version: str, evidence: dict[str, Any],
                            actor: str = "pipeline") -> None:
        with self._locked() as con:
            self._set_alias(pipeline, CHALLENGER, version)
            self._append(con, pipeline, "challenger", version, self._alias(pipeline, CHAMPION),
                         actor, "passed its gates", False, evidence)

    def promote(self, pipeline: str, version: str, reason: str, actor: str | None = None,
                evidence: dict[str, Any] | None = None, force: bool = False) -> Decision:
        """Make ``version`` the champion. Refused unless it passed its gates, or ``force``."""
        if not reason.strip():
            raise PromotionRefused("a promotion needs a reason")
        mv = self.tracking.call(
            lambda: self.tracking.client.get_model_version(pipeline, version),
            f"read version {version} of '{pipeline}'")
        passed = mv.tags.get(GATES_TAG) == "true"
        if not passed and not force:
            raise PromotionRefused(
                f"version {version} of '{pipeline}' did not pass its gates "
                f"({GATES_TAG}={mv.tags.get(GATES_TAG)!r}); use --force to override, recorded")
        with self._locked() as con:
            previous = self._alias(pipeline, CHAMPION)
            if previous == str(version):
                raise PromotionRefused(f"version {version} is already the champion")
            self._set_alias(pipeline, CHAMPION, str(version))
            action = "promote" if passed else "force_promote"
            self._append(con, pipeline, action, str(version), previous,
                         actor or default_actor(), reason, not passed, evidence or {})
        return self.history(pipeline)[-1]

    def rollback(self, pipeline: str, reason: str, actor: str | None = None) -> Decision:
        """Champion back to the one before it, as the ledger recorded."""
        with self._locked() as con:
            current = self._alias(pipeline, CHAMPION)
            row = con.execute(
                "SELECT previous_champion FROM decisions WHERE pipeline = ? AND version = ? AND "
                "action IN ('promote', 'force_promote', 'rollback') ORDER BY id DESC LIMIT 1",
                (pipeline, current)).fetchone()
            if current is None or row is None or row[0] is None:
                raise PromotionRefused(f"'{pipeline}' has no previous champion to roll back to")
            self._set_alias(pipeline, CHAMPION, row[0])
            # Stamp the version being replaced as previous, so a rollback of a rollback
            # restores it.
            self._append(con, pipeline, "rollback", row[0], current, actor or default_actor(),
                         reason, False, {"rolled_back_from": current})
        return self.history(pipeline)[-1]

    def history(self, pipeline: str) -> list[Decision]:
        with self._connect() as con:
            rows = con.execute(
                "SELECT id, decided_at, pipeline, action, version, previous_champion, actor, "
                "reason, forced, evidence FROM decisions WHERE pipeline = ? ORDER BY id",
                (pipeline,)).fetchall()
        return [Decision(*r[:8], bool(r[8]), json.loads(r[9])) for r in rows]
