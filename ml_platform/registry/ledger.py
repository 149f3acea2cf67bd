"""The promotion ledger: an append-only record of every registry decision and of the evidence
behind it, and the only code path that moves the ``champion`` and ``challenger`` aliases.

Two append-only tables (triggers refuse UPDATE and DELETE):

- ``evidence``: one row per piece of evidence about a version, of an open-ended ``kind``.
  The offline evaluation writes ``offline_gates``; a later online step adds its own kinds
  (``shadow``, ``ab_test``) with no schema change, and promotion can require them.
- ``decisions``: one row per decision (challenger, reject, promote, force_promote, rollback),
  naming the evidence rows it relied on.

Writers serialise on the writers' lock of the ledger's store (ml_platform/registry/ledger_store.py):
in the embedded profile a SQLite file in the home with a lock file beside it (``flock``,
released by the kernel when a writer dies) and the database's write lock (``BEGIN IMMEDIATE``);
in the production profile a PostgreSQL database with a session advisory lock (released by the
server when the writer's connection ends), which holds across hosts. Racing promotions leave
exactly one champion and a consistent ledger. The champion is whatever the ledger's decisions
replay to; the registry alias mirrors it, and :meth:`PromotionLedger.consistency` reports any
drift (an alias moved outside the ledger).

Crash safety. The registry is another store, so moving an alias and recording the decision
cannot be one transaction. A write that moves an alias therefore commits an *intent* first
(``intents``: the alias, where it points now, where it will point, and the decision to record),
then moves the alias, then records the decision with the intent's *outcome*
(``intent_outcomes``) in one transaction. A writer killed in between leaves an intent with no
outcome; the next write (any of them, under the lock, so no live writer can be mid-way) reads
the alias and reconciles (:meth:`PromotionLedger.reconcile`): if it points where the intent
said, the move happened and the decision is recorded (``completed``: serving may already have
loaded that version, so it is not moved back); if it still points where it did, nothing
happened (``rolled_back``); anything else was moved outside the ledger (``abandoned``, and
:meth:`~PromotionLedger.consistency` reports the drift). All four tables are append-only.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ml_platform.registry.ledger_store import (
    LOCK_TIMEOUT_SECONDS,
    Connection,
    Cursor,
    LedgerStore,
    SqliteStore,
    store_for,
)
from ml_platform.training.tracking import Tracking

if TYPE_CHECKING:
    from ml_platform.home import PlatformHome

CHAMPION, CHALLENGER = "champion", "challenger"
OFFLINE_GATES = "offline_gates"
# Evidence that, once recorded for a version, promotion requires to be passing: a challenger
# under an online test (shadow / A/B, ml_platform/online_evaluation) is promoted by no path
# until its latest online test passed (or with --force, recorded as forced).
ONLINE_TEST = "online_test"
GATES_TAG = "gates_passed"
PROMOTING = ("promote", "force_promote")
T = TypeVar("T")

# Intent outcomes: the writer finished; or, reconciled after the writer stopped part-way, the
# alias had moved (decision recorded), had not (nothing to record), or was moved by someone else.
DONE, COMPLETED, ROLLED_BACK, ABANDONED = "done", "completed", "rolled_back", "abandoned"


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
class Intent:
    """A decision that moves ``alias`` from ``alias_from`` to ``version``, committed before the
    move; its outcome is recorded once the move is known to have happened or not."""

    id: int
    created_at: str
    pipeline: str
    alias: str
    alias_from: str | None
    action: str
    version: str
    previous_champion: str | None
    actor: str
    reason: str
    forced: bool
    evidence_ids: list[int]
    writer: str


@dataclass(frozen=True)
class Resolution:
    """How reconciliation closed an intent its writer left open."""

    intent: Intent
    outcome: str
    alias_found: str | None
    decision: Decision | None
    detail: str


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


def _writer() -> str:
    """Who holds an intent: enough to find the process in logs after it died."""
    return f"{os.uname().nodename}:{os.getpid()}"


def _new_id(cur: Cursor) -> int:
    """The id an ``INSERT ... RETURNING id`` gave its row (the whole result read, so that
    SQLite can commit)."""
    [(row_id,)] = cur.fetchall()
    return int(row_id)


def open_ledger(
    home: PlatformHome,
    tracking: Tracking,
    required_evidence: Sequence[str] = (OFFLINE_GATES,),
    required_once_recorded: Sequence[str] = (ONLINE_TEST,),
) -> PromotionLedger:
    """The promotion ledger of ``home``'s profile: a SQLite file in the home (embedded) or the
    ``ML_PLATFORM_PG_LEDGER_DB`` database (production). Every command and resource gets its
    ledger here."""
    return PromotionLedger(store_for(home), tracking, required_evidence, required_once_recorded)


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
    def __init__(
        self,
        store: LedgerStore | Path,
        tracking: Tracking,
        required_evidence: Sequence[str] = (OFFLINE_GATES,),
        required_once_recorded: Sequence[str] = (ONLINE_TEST,),
    ) -> None:
        """``store``: where the tables are (ml_platform/registry/ledger_store.py); a path is a
        SQLite file. :func:`open_ledger` picks the store of the home's profile."""
        self.store: LedgerStore = SqliteStore(store) if isinstance(store, Path) else store
        self.tracking = tracking
        self.required_evidence = tuple(required_evidence)
        self.required_once_recorded = tuple(required_once_recorded)
        self.store.create_schema()
        with closing(self._connect()) as con:
            columns = self.store.columns(con, "decisions")
        if "evidence_ids" not in columns:  # a ledger from before the evidence table
            raise RuntimeError(
                f"the promotion ledger {self.store.description} has an older schema (no "
                "decisions.evidence_ids); move it aside to start a new one"
            )

    def _connect(self) -> Connection:
        return self.store.connect()

    @contextmanager
    def _exclusive(self, shared: bool = False) -> Iterator[None]:
        """The writers' lock, held across an intent, its alias move and its outcome (two
        database transactions with a registry call between them). Readers that must not see a
        write half-way take it shared. It is released when its holder dies (``flock`` by the
        kernel, a Postgres advisory lock by the server with the holder's session), so an
        intent without an outcome found under this lock belongs to a writer that stopped."""
        with self.store.lock(shared, LOCK_TIMEOUT_SECONDS):
            yield

    @contextmanager
    def _writing(self, actor: str) -> Iterator[None]:
        """A ledger write: the writers' lock, after reconciling what a stopped writer left."""
        with self._exclusive():
            self._reconcile_open(actor)
            yield

    @contextmanager
    def _locked(self) -> Iterator[Connection]:
        """One database transaction holding its write lock (callers hold ``_exclusive``)."""
        con = self._connect()
        try:
            con.execute(self.store.begin)
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
            f"set alias '{alias}' of '{model}'",
        )

    def _drop_alias(self, model: str, alias: str) -> None:
        self.tracking.call(
            lambda: self.tracking.client.delete_registered_model_alias(model, alias),
            f"delete alias '{alias}' of '{model}'",
        )

    def _require_version(self, pipeline: str, version: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.tracking.client.get_model_version(pipeline, version)
        except MlflowException as exc:
            raise PromotionRefused(
                f"'{pipeline}' has no registered version {version}: {exc.message}"
            ) from None

    # -- appends ---------------------------------------------------------------------------
    def _append(
        self,
        con: Connection,
        pipeline: str,
        action: str,
        version: str | None,
        previous: str | None,
        actor: str,
        reason: str,
        forced: bool = False,
        evidence_ids: Sequence[int] = (),
    ) -> Decision:
        cur = con.execute(
            "INSERT INTO decisions (decided_at, pipeline, action, version, previous_champion, "
            "actor, reason, forced, evidence_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING id",
            (
                _now(),
                pipeline,
                action,
                version,
                previous,
                actor,
                reason,
                int(forced),
                json.dumps(list(evidence_ids)),
            ),
        )
        return self._decisions(con, "id = ?", (_new_id(cur),))[0]

    def add_evidence(
        self,
        pipeline: str,
        version: str | None,
        kind: str,
        passed: bool,
        summary: str,
        payload: dict[str, Any] | None = None,
        run_id: str | None = None,
        actor: str | None = None,
    ) -> int:
        """Record evidence about a version (or a candidate run not registered, version None).
        Any step may add its own ``kind``; promotion requires the kinds in
        ``required_evidence``."""
        actor = actor or default_actor()
        with self._writing(actor), self._locked() as con:
            cur = con.execute(
                "INSERT INTO evidence (recorded_at, pipeline, version, run_id, kind, passed, "
                "summary, actor, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    _now(),
                    pipeline,
                    version,
                    run_id,
                    kind,
                    int(passed),
                    summary,
                    actor,
                    json.dumps(payload or {}, default=str, sort_keys=True),
                ),
            )
            return _new_id(cur)

    def record(
        self,
        pipeline: str,
        action: str,
        version: str | None,
        reason: str,
        evidence_ids: Sequence[int] = (),
        actor: str | None = None,
    ) -> Decision:
        """Append a decision that moves no alias (a rejected candidate, ...)."""
        actor = actor or default_actor()
        with self._writing(actor), self._locked() as con:
            return self._append(
                con,
                pipeline,
                action,
                version,
                self._champion(con, pipeline),
                actor,
                reason,
                False,
                evidence_ids,
            )

    def register_challenger(
        self, pipeline: str, version: str, evidence_ids: Sequence[int], actor: str = "pipeline"
    ) -> Decision:
        """Point ``challenger`` at a version whose offline gates passed."""
        with self._writing(actor):
            with self._locked() as con:
                self._require_passed(con, pipeline, version, (OFFLINE_GATES,))
                intent = self._intend(
                    con,
                    pipeline,
                    CHALLENGER,
                    "challenger",
                    version,
                    self._champion(con, pipeline),
                    actor,
                    "passed its gates",
                    False,
                    evidence_ids,
                )
            return self._carry_out(intent)

    # -- promotion -------------------------------------------------------------------------
    def _require_passed(
        self, con: Connection, pipeline: str, version: str, kinds: Sequence[str]
    ) -> list[int]:
        """The ids of the latest evidence of each kind; refuse if one is missing or failed."""
        ids, problems = [], []
        for kind in kinds:
            row = con.execute(
                "SELECT id, passed, summary FROM evidence WHERE pipeline = ? AND version = ? "
                "AND kind = ? ORDER BY id DESC LIMIT 1",
                (pipeline, version, kind),
            ).fetchone()
            if row is None:
                problems.append(f"no '{kind}' evidence")
            elif not row[1]:
                problems.append(f"'{kind}' failed (evidence #{row[0]}: {row[2]})")
            else:
                ids.append(int(row[0]))
        if problems:
            raise PromotionRefused(
                f"version {version} of '{pipeline}' has not passed its gates: {'; '.join(problems)}"
            )
        return ids

    def _recorded(self, con: Connection, pipeline: str, version: str) -> list[str]:
        """The kinds of ``required_once_recorded`` this version has evidence of."""
        return [
            kind
            for kind in self.required_once_recorded
            if kind not in self.required_evidence
            and con.execute(
                "SELECT 1 FROM evidence WHERE pipeline = ? AND version = ? AND kind = ? LIMIT 1",
                (pipeline, version, kind),
            ).fetchone()
        ]

    def _champion(self, con: Connection, pipeline: str) -> str | None:
        stack = champion_stack(self._decisions(con, "pipeline = ?", (pipeline,)))
        return stack[-1] if stack else None

    def _check_registry(self, con: Connection, pipeline: str) -> str | None:
        """The ledger's champion, after checking that the registry alias still agrees."""
        ledger_champion = self._champion(con, pipeline)
        registry_champion = self._alias(pipeline, CHAMPION)
        if ledger_champion != registry_champion:
            raise PromotionRefused(
                f"registry alias '{CHAMPION}' of '{pipeline}' is {_v(registry_champion)} but the "
                f"ledger says {_v(ledger_champion)}: the alias was moved outside the ledger; "
                "promote a version with --force to reconcile (recorded)"
            )
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

    def promote(
        self,
        pipeline: str,
        version: str,
        reason: str,
        actor: str | None = None,
        force: bool = False,
        expect_champion: str | None | bool = False,
        extra_evidence: Sequence[int] = (),
    ) -> Decision:
        """Make ``version`` the champion.

        Refused unless it has passing evidence of every required kind (and, for each kind of
        ``required_once_recorded`` it has evidence of, its latest such evidence passed), or
        ``force`` (recorded as ``force_promote``). ``expect_champion`` (a version, or None
        for "no champion yet") makes it compare-and-set: a pipeline that compared its
        candidate with champion vN must not overwrite a champion that changed since; ``False``
        means any current champion.
        """
        version = str(version)
        if not reason.strip():
            raise PromotionRefused("a promotion needs a reason")
        self._require_version(pipeline, version)
        actor = actor or default_actor()
        with self._writing(actor):
            with self._locked() as con:
                intent = self._promotion_intent(
                    con, pipeline, version, reason, actor, force, expect_champion, extra_evidence
                )
            return self._carry_out(intent)

    def _promotion_intent(
        self,
        con: Connection,
        pipeline: str,
        version: str,
        reason: str,
        actor: str,
        force: bool,
        expect_champion: str | None | bool,
        extra_evidence: Sequence[int],
    ) -> Intent:
        """Check a promotion's preconditions and record its intent (or refuse)."""
        no_ids: list[int] = []
        kinds = [*self.required_evidence, *self._recorded(con, pipeline, version)]
        ids = self._unless_forced(
            lambda: self._require_passed(con, pipeline, version, kinds),
            force,
            no_ids,
        )
        previous = self._unless_forced(
            lambda: self._check_registry(con, pipeline), force, self._alias(pipeline, CHAMPION)
        )
        if expect_champion is not False and previous != expect_champion:
            raise PromotionRefused(
                f"the champion of '{pipeline}' is now {_v(previous)}, not "
                f"{_v(None if expect_champion is None else str(expect_champion))} "
                "that the candidate was compared with; it stays a challenger"
            )
        if previous == version and self._champion(con, pipeline) == version:
            raise PromotionRefused(f"version {version} is already the champion")
        return self._intend(
            con,
            pipeline,
            CHAMPION,
            "force_promote" if force else "promote",
            version,
            previous,
            actor,
            reason,
            force,
            [*ids, *extra_evidence],
            alias_from=previous,
        )

    def rollback(self, pipeline: str, reason: str, actor: str | None = None) -> Decision:
        """Champion back to the previous champion (the ledger's promotion stack)."""
        if not reason.strip():
            raise PromotionRefused("a rollback needs a reason")
        actor = actor or default_actor()
        with self._writing(actor):
            with self._locked() as con:
                current = self._check_registry(con, pipeline)
                stack = champion_stack(self._decisions(con, "pipeline = ?", (pipeline,)))
                if len(stack) < 2:
                    raise PromotionRefused(f"'{pipeline}' has no previous champion to roll back to")
                intent = self._intend(
                    con,
                    pipeline,
                    CHAMPION,
                    "rollback",
                    stack[-2],
                    current,
                    actor,
                    reason,
                    alias_from=current,
                )
            return self._carry_out(intent)

    # -- intents: an alias move that survives its writer -----------------------------------
    def _intend(
        self,
        con: Connection,
        pipeline: str,
        alias: str,
        action: str,
        version: str,
        previous: str | None,
        actor: str,
        reason: str,
        forced: bool = False,
        evidence_ids: Sequence[int] = (),
        alias_from: str | None | bool = False,
    ) -> Intent:
        """Record the intent to point ``alias`` at ``version`` (committed with ``con``'s
        transaction, before the alias moves). ``alias_from`` is where it points now, if the
        caller already read it."""
        if alias_from is False:
            alias_from = self._alias(pipeline, alias)
        cur = con.execute(
            "INSERT INTO intents (created_at, pipeline, alias, alias_from, action, version, "
            "previous_champion, actor, reason, forced, evidence_ids, writer) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                _now(),
                pipeline,
                alias,
                alias_from,
                action,
                version,
                previous,
                actor,
                reason,
                int(forced),
                json.dumps(list(evidence_ids)),
                _writer(),
            ),
        )
        return self._intents(con, "id = ?", (_new_id(cur),))[0]

    def _follow_up(self, intent: Intent) -> None:
        """What a move entails besides the alias: a promoted challenger stops being one."""
        if (
            intent.action in PROMOTING
            and self._alias(intent.pipeline, CHALLENGER) == intent.version
        ):
            self._drop_alias(intent.pipeline, CHALLENGER)

    def _carry_out(self, intent: Intent) -> Decision:
        """Move the alias, then record the decision and the intent's outcome at once."""
        self._set_alias(intent.pipeline, intent.alias, intent.version)
        self._follow_up(intent)
        with self._locked() as con:
            return self._close(con, intent, DONE, intent.actor, "")

    def _close(
        self, con: Connection, intent: Intent, outcome: str, resolved_by: str, detail: str
    ) -> Decision:
        """Record the intent's decision and its outcome (one transaction)."""
        reason = (
            intent.reason
            if outcome == DONE
            else f"{intent.reason} [completed by reconciliation of intent #{intent.id}: {detail}]"
        )
        decision = self._append(
            con,
            intent.pipeline,
            intent.action,
            intent.version,
            intent.previous_champion,
            intent.actor,
            reason,
            intent.forced,
            intent.evidence_ids,
        )
        self._outcome(con, intent, outcome, resolved_by, detail, decision.id)
        return decision

    def _outcome(
        self,
        con: Connection,
        intent: Intent,
        outcome: str,
        resolved_by: str,
        detail: str,
        decision_id: int | None = None,
    ) -> None:
        con.execute(
            "INSERT INTO intent_outcomes (intent_id, resolved_at, outcome, decision_id, "
            "resolved_by, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (intent.id, _now(), outcome, decision_id, resolved_by, detail),
        )

    def _resolve(self, intent: Intent, resolved_by: str) -> Resolution:
        """Close an intent whose writer stopped, from where the registry alias points now."""
        found = self._alias(intent.pipeline, intent.alias)
        move = (
            f"'{intent.alias}' {_v(intent.alias_from)} -> {_v(intent.version)} "
            f"({intent.action} by {intent.actor}, writer {intent.writer})"
        )
        decision = None
        with self._locked() as con:
            if found == intent.version:
                self._follow_up(intent)
                detail = f"the writer stopped after moving {move}"
                outcome, decision = (
                    COMPLETED,
                    self._close(con, intent, COMPLETED, resolved_by, detail),
                )
            elif found == intent.alias_from:
                outcome, detail = ROLLED_BACK, f"the writer stopped before moving {move}"
                self._outcome(con, intent, outcome, resolved_by, detail)
            else:
                outcome = ABANDONED
                detail = (
                    f"the writer stopped while moving {move}, and the alias now points "
                    f"at {_v(found)}: moved outside the ledger"
                )
                self._outcome(con, intent, outcome, resolved_by, detail)
        return Resolution(intent, outcome, found, decision, detail)

    def _reconcile_open(self, actor: str) -> list[Resolution]:
        """Close every open intent (callers hold the writers' lock)."""
        with closing(self._connect()) as con:
            stranded = self._open_intents(con)
        return [self._resolve(intent, f"reconcile:{actor}") for intent in stranded]

    def reconcile(self, actor: str | None = None) -> list[Resolution]:
        """Close the intents of writers that stopped part-way (every write does this first)."""
        with self._exclusive():
            return self._reconcile_open(actor or default_actor())

    # -- reads -----------------------------------------------------------------------------
    def _decisions(self, con: Connection, where: str, args: tuple[Any, ...]) -> list[Decision]:
        rows = con.execute(
            "SELECT id, decided_at, pipeline, action, version, previous_champion, actor, "
            f"reason, forced, evidence_ids FROM decisions WHERE {where} ORDER BY id",
            args,
        ).fetchall()
        return [
            Decision(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), json.loads(r[9]))
            for r in rows
        ]

    def _intents(self, con: Connection, where: str, args: tuple[Any, ...]) -> list[Intent]:
        fields = [f.name for f in dataclasses.fields(Intent)]
        rows = con.execute(
            f"SELECT {', '.join(fields)} FROM intents WHERE {where} ORDER BY id", args
        ).fetchall()
        intents = []
        for row in rows:
            values = dict(zip(fields, row, strict=True))
            values.update(
                forced=bool(values["forced"]), evidence_ids=json.loads(values["evidence_ids"])
            )
            intents.append(Intent(**values))
        return intents

    def _open_intents(self, con: Connection, pipeline: str | None = None) -> list[Intent]:
        where = "id NOT IN (SELECT intent_id FROM intent_outcomes)"
        if pipeline is None:
            return self._intents(con, where, ())
        return self._intents(con, where + " AND pipeline = ?", (pipeline,))

    def open_intents(self, pipeline: str | None = None) -> list[Intent]:
        """Intents with no outcome: a write in flight, or one whose writer stopped."""
        with closing(self._connect()) as con:
            return self._open_intents(con, pipeline)

    def intent_outcomes(self, pipeline: str) -> list[tuple[Intent, str, str]]:
        """Every closed intent of ``pipeline`` with its outcome and detail, oldest first."""
        with closing(self._connect()) as con:
            rows = con.execute(
                "SELECT intent_id, outcome, detail FROM intent_outcomes WHERE intent_id IN "
                "(SELECT id FROM intents WHERE pipeline = ?) ORDER BY id",
                (pipeline,),
            ).fetchall()
            intents = {i.id: i for i in self._intents(con, "pipeline = ?", (pipeline,))}
        return [(intents[r[0]], r[1], r[2]) for r in rows]

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
                f"actor, payload FROM evidence WHERE {where} ORDER BY id",
                args,
            ).fetchall()
        return [
            Evidence(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7], r[8], json.loads(r[9]))
            for r in rows
        ]

    def champion(self, pipeline: str) -> str | None:
        with closing(self._connect()) as con:
            return self._champion(con, pipeline)

    def consistency(self, pipeline: str) -> list[str]:
        """Problems between the ledger and the registry (empty when they agree). Waits for a
        write in flight, so an intent still open here is one whose writer stopped."""
        problems = []
        with self._exclusive(shared=True):
            ledger_champion, registry_champion = (
                self.champion(pipeline),
                self._alias(pipeline, CHAMPION),
            )
            stranded = self.open_intents(pipeline)
        if ledger_champion != registry_champion:
            problems.append(
                f"champion: ledger {_v(ledger_champion)}, registry {_v(registry_champion)}"
            )
        problems += [
            f"unfinished intent #{i.id}: {i.action} moving '{i.alias}' "
            f"{_v(i.alias_from)} -> {_v(i.version)} by {i.actor} (writer {i.writer}, "
            f"{i.created_at}); the next ledger write reconciles it"
            for i in stranded
        ]
        return problems
