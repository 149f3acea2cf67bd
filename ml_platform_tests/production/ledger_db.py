"""A fresh PostgreSQL database for one test's promotion ledger on the machine's server
(127.0.0.1:5432), dropped afterwards. Used by the production ledger tests and by the ledger's
behaviour tests (ml_platform_tests/registry/test_ledger.py) parametrized over both stores."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from ml_platform.registry.ledger_store import PostgresStore

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


def drop_database(name: str) -> None:
    with psycopg.connect(**PG, autocommit=True) as con:  # type: ignore[arg-type]
        con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def new_ledger_db_name() -> str:
    return f"mlp_test_{uuid.uuid4().hex[:10]}_ledger"


@contextmanager
def fresh_ledger_store() -> Iterator[PostgresStore]:
    """A Postgres ledger store on a database of its own (created by the store's first use)."""
    name = new_ledger_db_name()
    try:
        yield PostgresStore(str(PG["host"]), int(PG["port"]), str(PG["user"]), name)
    finally:
        drop_database(name)
