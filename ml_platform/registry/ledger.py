"""The promotion ledger: an append-only record of every registry decision and of the evidence
behind it, and the only code path that moves the ``champion`` and ``challenger`` aliases.

Two append-only tables (triggers refuse UPDATE and DELETE):

- ``evidence``: one row per piece of evidence about a version, of an open-ended ``kind``.
  The offline evaluation writes ``offline_gates``; a later online step adds its own kinds
  (``shadow``, ``ab_test``) with no schema change, and promotion can require them.
- ``decisions``: one row per decision (challenger, reject, promote, force_promote, rollback),
  naming the evidence rows it relied on.

Writers serialise on the ledger database's write lock (``BEGIN IMMEDIATE``) and move the alias
while holding it, so racing promotions leave exactly one champion and a consistent ledger. The
champion is whatever the ledger's decisions replay to; the registry alias mirrors it, and
:meth:`PromotionLedger.consistency` reports any drift (an alias moved outside the ledger).
"""

from __future__ import annotations

import getpass
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ml_platform.training.tracking import Tracking

CHAMPION, CHALLENGER = "champion", "challenger"
OFFLINE_GATES = "offline_gates"
GATES_TAG = "gates_passed"
PROMOTING = ("promote", "force_promote")
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    version TEXT,
    run_id TEXT,
    kind TEXT NOT NULL,
    passed INTEGER NOT NULL,
    summary TEXT NOT NULL,
    actor TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}'
);
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
    evidence_ids TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS evidence_by_version ON evidence (pipeline, version, kind);
CREATE INDEX IF NOT EXISTS decisions_by_pipeline ON decisions (pipeline, id);
"""
_APPEND_ONLY = """
CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, 'the promotion ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, 'the promotion ledger is append-only'); END;
"""


class PromotionRefused(RuntimeError):
    """A promotion or rollback the ledger will not make; the message says why."""


@dataclass(frozen=True)
class Evidence:
    id: int
    recorded_at: str
    pipeline: str
    version: str | None
    run_id: str | None
    kind: str
    passed: bool
    summary: str
    actor: str
    payload: dict[str, Any]


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
    evidence_ids: list[int]


def default_actor() -> str:
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"


def _v(version: str | None) -> str:
    return "none" if version is None else f"v{version}"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def champion_stack(decisions: Sequence[Decision]) -> list[str]:
    """Replay promotions and rollbacks: the last item is the champion, the one before it is
    where a rollback goes."""
    stack: list[str] = []
    for d in decisions:
        if d.action in PROMOTING and d.version is not None:
            stack.append(d.version)
        elif d.action == "rollback" and stack:
            stack.pop()
    return stack


class PromotionLedger:
    def __init__(self, path: Path, tracking: Tracking,
                 required_evidence: Sequence[str] = (OFFLINE_GATES,)) -> None:
        self.path = path
        self.tracking = tracking
        self.required_evidence = tuple(required_evidence)
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as con:
            con.executescript(_SCHEMA + _APPEND_ONLY.format(table="evidence")
                              + _APPEND_ONLY.format(table="decisions"))
            columns = {row[1] for row in con.execute("PRAGMA table_info(decisions)")}
        if "evidence_ids" not in columns:  # a ledger from before the evidence table
            raise RuntimeError(f"the promotion ledger {path} has an older schema (no "
                               "decisions.evidence_ids); move it aside to start a new one")

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=120, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        """One writer at a time across processes: the registry is read and moved under it."""
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

    # -- registry access -------------------------------------------------------------------
    def _alias(self, model: str, alias: str) -> str | None:
        mv = self.tracking.version_by_alias(model, alias)
        return None if mv is None else str(mv.version)

    def _set_alias(self, model: str, alias: str, version: str) -> None:
        self.tracking.call(
            lambda: self.tracking.client.set_registered_model_alias(model, alias, version),
            f"set alias '{alias}' of '{model}'")

    def _drop_alias(self, model: str, alias: str) -> None:
        self.tracking.call(
            lambda: self.tracking.client.delete_registered_model_alias(model, alias),
            f"delete alias '{alias}' of '{model}'")

    def _require_version(self, pipeline: str, version: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.tracking.client.get_model_version(pipeline, version)
        except MlflowException as exc:
            raise PromotionRefused(f"'{pipeline}' has no registered version {version}: "
                                   f"{exc.message}") from None

    # -- appends ---------------------------------------------------------------------------
    def _append(self, con: sqlite3.Connection, pipeline: str, action: str, version: str | None,
                previous: str | None, actor: str, reason: str, forced: bool = False,
                evidence_ids: Sequence[int] = ()) -> Decision:
        cur = con.execute(
            "INSERT INTO decisions (decided_at, pipeline, action, version, previous_champion, "
            "actor, reason, forced, evidence_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_now(), pipeline, action, version, previous, actor, reason, int(forced),
             json.dumps(list(evidence_ids))))
        return self._decisions(con, "id = ?", (cur.lastrowid,))[0]

    def add_evidence(self, pipeline: str, version: str | None, kind: str, passed: bool,
                     summary: str, payload: dict[str, Any] | None = None,
                     run_id: str | None = None, actor: str | None = None) -> int:
        """Record evidence about a version (or a candidate run not registered, version None).
        Any step may add its own ``kind``; promotion requires the kinds in
        ``required_evidence``."""
        with self._locked() as con:
            cur = con.execute(
                "INSERT INTO evidence (recorded_at, pipeline, version, run_id, kind, passed, "
                "summary, actor, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_now(), pipeline, version, run_id, kind, int(passed), summary,
                 actor or default_actor(), json.dumps(payload or {}, default=str,
                                                      sort_keys=True)))
            return int(cur.lastrowid or 0)

    def record(self, pipeline: str, action: str, version: str | None, reason: str,
               evidence_ids: Sequence[int] = (), actor: str | None = None) -> Decision:
        """Append a decision that moves no alias (a rejected candidate, ...)."""
        with self._locked() as con:
            return self._append(con, pipeline, action, version, self._champion(con, pipeline),
                                actor or default_actor(), reason, False, evidence_ids)

    def register_challenger(self, pipeline: str, version: str, evidence_ids: Sequence[int],
                            actor: str = "pipeline") -> Decision:
        """Point ``challenger`` at a version whose offline gates passed."""
        with self._locked() as con:
            self._require_passed(con, pipeline, version, (OFFLINE_GATES,))
            decision = self._append(con, pipeline, "challenger", version,
                                    self._champion(con, pipeline), actor, "passed its gates",
                                    False, evidence_ids)
            self._set_alias(pipeline, CHALLENGER, version)
            return decision

    # -- promotion -------------------------------------------------------------------------
    def _require_passed(self, con: sqlite3.Connection, pipeline: str, version: str,
                        kinds: Sequence[str]) -> list[int]:
        """The ids of the latest evidence of each kind; refuse if one is missing or failed."""
        ids, problems = [], []
        for kind in kinds:
            row = con.execute(
                "SELECT id, passed, summary FROM evidence WHERE pipeline = ? AND version = ? "
                "AND kind = ? ORDER BY id DESC LIMIT 1", (pipeline, version, kind)).fetchone()
            if row is None:
                problems.append(f"no '{kind}' evidence")
            elif not row[1]:
                problems.append(f"'{kind}' failed (evidence #{row[0]}: {row[2]})")
            else:
                ids.append(int(row[0]))
        if problems:
            raise PromotionRefused(f"version {version} of '{pipeline}' has not passed its gates: "
                                   f"{'; '.join(problems)}")
        return ids

    def _champion(self, con: sqlite3.Connection, pipeline: str) -> str | None:
        stack = champion_stack(self._decisions(con, "pipeline = ?", (pipeline,)))
        return stack[-1] if stack else None

    def _check_registry(self, con: sqlite3.Connection, pipeline: str) -> str | None:
        """The ledger's champion, after checking that the registry alias still agrees."""
        ledger_champion = self._champion(con, pipeline)
        registry_champion = self._alias(pipeline, CHAMPION)
        if ledger_champion != registry_champion:
            raise PromotionRefused(
                f"registry alias '{CHAMPION}' of '{pipeline}' is {_v(registry_champion)} but the "
                f"ledger says {_v(ledger_champion)}: the alias was moved outside the ledger; "
                "promote a version with --force to reconcile (recorded)")
        return ledger_champion

    @staticmethod
    def _unless_forced(check: Callable[[], T], force: bool, fallback: T) -> T:
        """Run a promotion precondition; with ``force`` a refusal is overridden (and the
        decision is recorded as forced)."""
        try:
            return check()
        except PromotionRefused:
            if not force:
                raise
            return fallback

    def promote(self, pipeline: str, version: str, reason: str, actor: str | None = None,
                force: bool = False, expect_champion: str | None | bool = False,
                extra_evidence: Sequence[int] = ()) -> Decision:
        """Make ``version`` the champion.

        Refused unless it has passing evidence of every required kind, or ``force`` (recorded
        as ``force_promote``). ``expect_champion`` (a version, or None for "no champion yet")
        makes it compare-and-set: a pipeline that compared its candidate with champion vN must
        not overwrite a champion that changed since; ``False`` means any current champion.
        """
        version = str(version)
        if not reason.strip():
            raise PromotionRefused("a promotion needs a reason")
        self._require_version(pipeline, version)
        with self._locked() as con:
            ids = self._unless_forced(
                lambda: self._require_passed(con, pipeline, version, self.required_evidence),
                force, [])
            previous = self._unless_forced(lambda: self._check_registry(con, pipeline), force,
                                           self._alias(pipeline, CHAMPION))
            if expect_champion is not False and previous != expect_champion:
                raise PromotionRefused(
                    f"the champion of '{pipeline}' is now {_v(previous)}, not "
                    f"{_v(expect_champion)} "
                    "that the candidate was compared with; it stays a challenger")
            if previous == version and self._champion(con, pipeline) == version:
                raise PromotionRefused(f"version {version} is already the champion")
            decision = self._append(con, pipeline, "force_promote" if force else "promote",
                                    version, previous, actor or default_actor(), reason, force,
                                    [*ids, *extra_evidence])
            self._set_alias(pipeline, CHAMPION, version)
            if self._alias(pipeline, CHALLENGER) == version:
                self._drop_alias(pipeline, CHALLENGER)
            return decision

    def rollback(self, pipeline: str, reason: str, actor: str | None = None) -> Decision:
        """Champion back to the previous champion (the ledger's promotion stack)."""
        if not reason.strip():
            raise PromotionRefused("a rollback needs a reason")
        with self._locked() as con:
            current = self._check_registry(con, pipeline)
            stack = champion_stack(self._decisions(con, "pipeline = ?", (pipeline,)))
            if len(stack) < 2:
                raise PromotionRefused(f"'{pipeline}' has no previous champion to roll back to")
            target = stack[-2]
            decision = self._append(con, pipeline, "rollback", target, current,
                                    actor or default_actor(), reason)
            self._set_alias(pipeline, CHAMPION, target)
            return decision

    # -- reads -----------------------------------------------------------------------------
    def _decisions(self, con: sqlite3.Connection, where: str, args: tuple[Any, ...]
                   ) -> list[Decision]:
        rows = con.execute(
            "SELECT id, decided_at, pipeline, action, version, previous_champion, actor, "
            f"reason, forced, evidence_ids FROM decisions WHERE {where} ORDER BY id",
            args).fetchall()
        return [Decision(*r[:8], bool(r[8]), json.loads(r[9])) for r in rows]

    def history(self, pipeline: str) -> list[Decision]:
        with closing(self._connect()) as con:
            return self._decisions(con, "pipeline = ?", (pipeline,))

    def evidence(self, pipeline: str, version: str | None = None) -> list[Evidence]:
        where, args = "pipeline = ?", [pipeline]
        if version is not None:
            where, args = where + " AND version = ?", [*args, str(version)]
        with closing(self._connect()) as con:
            rows = con.execute(
                "SELECT id, recorded_at, pipeline, version, run_id, kind, passed, summary, "
                f"actor, payload FROM evidence WHERE {where} ORDER BY id", args).fetchall()
        return [Evidence(*r[:6], bool(r[6]), r[7], r[8], json.loads(r[9])) for r in rows]

    def champion(self, pipeline: str) -> str | None:
        with closing(self._connect()) as con:
            return self._champion(con, pipeline)

    def consistency(self, pipeline: str) -> list[str]:
        """Problems between the ledger and the registry (empty when they agree)."""
        problems = []
        ledger_champion, registry_champion = self.champion(pipeline), self._alias(pipeline,
                                                                                  CHAMPION)
        if ledger_champion != registry_champion:
            problems.append(f"champion: ledger {_v(ledger_champion)}, registry "
                            f"{_v(registry_champion)}")
        return problems
