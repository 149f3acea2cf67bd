"""Where the promotion ledger keeps its tables: the backend seam of
:class:`~ml_platform.registry.ledger.PromotionLedger`.

The ledger's logic (ml_platform/registry/ledger.py) is one code path; a store supplies only
what differs between databases: how to connect (placeholders included), how to open a write
transaction, the schema with its append-only triggers, and the writers' lock.

- :class:`SqliteStore` (the embedded profile): a SQLite file in the platform home; the writers'
  lock is ``flock`` on a lock file beside it, released by the kernel when its holder dies.
- :class:`PostgresStore` (the production profile): the same four tables in the database named
  by ``ML_PLATFORM_PG_LEDGER_DB`` (default ``ml_platform_ledger``, created on first use), made
  append-only by plpgsql triggers; the writers' lock is a session-level advisory lock held on a
  connection of the writer's own, released by the server when that connection ends (the writer
  exits, crashes or is killed), so it holds across hosts.

Both number rows in commit order: every insert happens under the writers' lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ml_platform.profile import ProfileError, connect, create_database

if TYPE_CHECKING:
    from ml_platform.home import PlatformHome
    from ml_platform.profile import ProductionSettings

APPEND_ONLY_TABLES = ("evidence", "decisions", "intents", "intent_outcomes")
APPEND_ONLY_MESSAGE = "the promotion ledger is append-only"
LOCK_TIMEOUT_SECONDS = 120.0
LEDGER_DB_ENV = "ML_PLATFORM_PG_LEDGER_DB"
LEDGER_DB_DEFAULT = "ml_platform_ledger"
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What the ledger uses of a connection: ``?`` placeholders, rows as tuples, autocommit
    unless the ledger opens a transaction itself."""

    def execute(self, sql: str, args: Sequence[Any] = ...) -> Cursor: ...
    def close(self) -> None: ...


class LedgerStore(Protocol):
    @property
    def description(self) -> str:
        """Names the ledger in messages (never a password)."""

    @property
    def begin(self) -> str:
        """The statement that opens a write transaction."""

    def connect(self) -> Connection: ...
    def create_schema(self) -> None: ...
    def columns(self, con: Connection, table: str) -> set[str]: ...
    def lock(self, shared: bool, timeout: float) -> Any: ...  # a context manager


# -- SQLite: the embedded profile ------------------------------------------------------------
_SQLITE_SCHEMA = """
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
CREATE TABLE IF NOT EXISTS intents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    alias TEXT NOT NULL,
    alias_from TEXT,
    action TEXT NOT NULL,
    version TEXT NOT NULL,
    previous_champion TEXT,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    forced INTEGER NOT NULL DEFAULT 0,
    evidence_ids TEXT NOT NULL DEFAULT '[]',
    writer TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS intent_outcomes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    intent_id INTEGER NOT NULL UNIQUE REFERENCES intents (id),
    resolved_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    decision_id INTEGER REFERENCES decisions (id),
    resolved_by TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS evidence_by_version ON evidence (pipeline, version, kind);
CREATE INDEX IF NOT EXISTS decisions_by_pipeline ON decisions (pipeline, id);
"""
_SQLITE_APPEND_ONLY = f"""
CREATE TRIGGER IF NOT EXISTS {{table}}_no_update BEFORE UPDATE ON {{table}}
BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END;
CREATE TRIGGER IF NOT EXISTS {{table}}_no_delete BEFORE DELETE ON {{table}}
BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END;
"""


@dataclass(frozen=True)
class SqliteStore:
    """The ledger in a SQLite file; writers take ``flock`` on ``<file>.lock`` and the database's
    write lock (``BEGIN IMMEDIATE``)."""

    path: Path
    begin: str = "BEGIN IMMEDIATE"

    @property
    def description(self) -> str:
        return str(self.path)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def connect(self) -> Connection:
        con = sqlite3.connect(self.path, timeout=120, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    def create_schema(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=120, isolation_level=None)) as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(
                _SQLITE_SCHEMA
                + "".join(_SQLITE_APPEND_ONLY.format(table=t) for t in APPEND_ONLY_TABLES)
            )

    def columns(self, con: Connection, table: str) -> set[str]:
        return {row[1] for row in con.execute(f"PRAGMA table_info({table})").fetchall()}

    @contextmanager
    def lock(self, shared: bool, timeout: float) -> Iterator[None]:
        with self.lock_path.open("a+b") as fh:
            deadline = time.monotonic() + timeout
            mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
            while True:
                try:
                    fcntl.flock(fh, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"the promotion ledger {self.description} stayed locked "
                            f"for {timeout:.0f} s"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


# -- PostgreSQL: the production profile ------------------------------------------------------
_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS evidence (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
CREATE TABLE IF NOT EXISTS intents (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    alias TEXT NOT NULL,
    alias_from TEXT,
    action TEXT NOT NULL,
    version TEXT NOT NULL,
    previous_champion TEXT,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    forced INTEGER NOT NULL DEFAULT 0,
    evidence_ids TEXT NOT NULL DEFAULT '[]',
    writer TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS intent_outcomes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    intent_id BIGINT NOT NULL UNIQUE REFERENCES intents (id),
    resolved_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    decision_id BIGINT REFERENCES decisions (id),
    resolved_by TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS evidence_by_version ON evidence (pipeline, version, kind);
CREATE INDEX IF NOT EXISTS decisions_by_pipeline ON decisions (pipeline, id);
CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%: % on % refused', 'APPEND_ONLY_MESSAGE', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;
""".replace("APPEND_ONLY_MESSAGE", APPEND_ONLY_MESSAGE)
# Row triggers refuse UPDATE and DELETE; a statement trigger refuses TRUNCATE (which skips row
# triggers). CREATE OR REPLACE TRIGGER needs PostgreSQL 14 or later.
_PG_APPEND_ONLY = """
CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
"""
_PG_TRIGGERS = [
    f"{t}_{kind}" for t in APPEND_ONLY_TABLES for kind in ("append_only", "no_truncate")
]


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key (advisory locks are scoped to the database)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


WRITERS_LOCK_KEY = _advisory_key("ml_platform.promotion_ledger.writers")
SCHEMA_LOCK_KEY = _advisory_key("ml_platform.promotion_ledger.schema")
# The server ends the session of a writer whose host went away within about a minute (TCP
# keepalives), which releases its lock; a killed process's session ends at once.
_KEEPALIVES = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"


class _PgConnection:
    """A psycopg connection taking the ledger's ``?`` placeholders (its SQL has no ``%``)."""

    def __init__(self, con: Any) -> None:
        self._con = con

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        if "%" in sql:  # would be read as a placeholder: pass such values as parameters
            raise ValueError(f"the ledger's SQL may not contain '%': {sql}")
        return self._con.execute(sql.replace("?", "%s"), list(args))

    def close(self) -> None:
        self._con.close()

    @property
    def backend_pid(self) -> int:
        return int(self._con.info.backend_pid)


def ledger_database() -> str:
    """The ledger's database name in the production profile, checked."""
    name = os.environ.get(LEDGER_DB_ENV) or LEDGER_DB_DEFAULT
    if not _DB_NAME.match(name):
        raise ProfileError(
            f"{LEDGER_DB_ENV}={name!r} is not a plain database name: use letters, digits and "
            f"'_' (at most 63, not starting with a digit)"
        )
    return name


_READY: set[tuple[object, ...]] = set()


@dataclass
class PostgresStore:
    """The ledger in a PostgreSQL database; writers take a session advisory lock."""

    host: str
    port: int
    user: str
    dbname: str
    password: str = field(default="", repr=False)
    admin_db: str = "postgres"
    begin: str = "BEGIN"

    @classmethod
    def from_settings(cls, settings: ProductionSettings) -> PostgresStore:
        pg = settings.postgres
        return cls(pg.host, pg.port, pg.user, ledger_database(), pg.password, pg.admin_db)

    @property
    def description(self) -> str:
        return f"database '{self.dbname}' on {self.host}:{self.port}"

    def _connect(self, dbname: str, **extra: Any) -> Any:
        return connect(self, dbname, "the promotion ledger", LEDGER_DB_ENV, **extra)

    def connect(self) -> Connection:
        return _PgConnection(self._connect(self.dbname))

    def _ensure_database(self) -> None:
        with self._connect(self.admin_db) as con:
            create_database(con, self.dbname, "the promotion ledger's database", LEDGER_DB_ENV)

    def create_schema(self) -> None:
        """Create the database and the tables when missing (once per process); concurrent
        first users take turns on a transaction-level advisory lock."""
        key = (self.host, self.port, self.user, self.dbname)
        if key in _READY:
            return
        self._ensure_database()
        with closing(self._connect(self.dbname)) as con:
            present = con.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname = ANY(%s)", [_PG_TRIGGERS]
            ).fetchone()[0]
            if present != len(_PG_TRIGGERS):
                with con.transaction():
                    con.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK_KEY])
                    con.execute(
                        _PG_SCHEMA
                        + "".join(_PG_APPEND_ONLY.format(table=t) for t in APPEND_ONLY_TABLES)
                    )
        _READY.add(key)

    def columns(self, con: Connection, table: str) -> set[str]:
        rows = con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        ).fetchall()
        return {row[0] for row in rows}

    @contextmanager
    def lock(self, shared: bool, timeout: float) -> Iterator[None]:
        """The writers' lock: an advisory lock on a session of its own, held while the block
        runs and released with that session (by the server, if this process dies)."""
        con = self._connect(self.dbname, options=_KEEPALIVES)
        try:
            try_lock = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
            deadline = time.monotonic() + timeout
            while not con.execute(f"SELECT {try_lock}(%s)", [WRITERS_LOCK_KEY]).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the promotion ledger ({self.description}) stayed locked for "
                        f"{timeout:.0f} s"
                    )
                time.sleep(0.05)
            yield
        finally:
            con.close()  # ends the session, which releases its advisory locks


def store_for(home: PlatformHome) -> LedgerStore:
    """The ledger's store for ``home``'s profile: SQLite in the home, or Postgres."""
    settings = home.production
    if settings is None:
        return SqliteStore(home.ledger_db)
    return PostgresStore.from_settings(settings)
