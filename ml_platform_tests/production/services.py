"""The machine's real PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) as the production
profile's tests and the scale benchmark use them: fresh databases created by the profile on first
use and dropped here, and an empty Redis database claimed for one user and flushed after it."""

from __future__ import annotations

import psycopg
import redis
from psycopg import sql

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
CLAIM_KEY = "ml_platform_tests:claimed_by"
# LEDGER (added by the ledger-on-Postgres slice): every test that runs on the profile gets its
# own promotion ledger database too, instead of the shared default ml_platform_ledger.
STORES = ("DAGSTER", "MLFLOW", "FEAST", "OPTUNA", "LEDGER", "PREDICTIONS")


def drop_databases(names: list[str]) -> None:
    with psycopg.connect(**PG, autocommit=True) as con:  # type: ignore[arg-type]
        for name in names:
            con.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def claim_redis_db(token: str) -> int:
    """A Redis database (1-15) that is empty, claimed with a key only this test writes."""
    for db in range(1, 16):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        if client.dbsize() == 0 and client.set(CLAIM_KEY, token, nx=True):
            if client.dbsize() == 1:
                return db
            client.delete(CLAIM_KEY)
    raise RuntimeError("no empty Redis database (1-15) on 127.0.0.1:6379 for this test")


def release_redis_db(db: int) -> None:
    """Empty a database claimed with ``claim_redis_db`` (the claim key with it)."""
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()
