"""Where the prediction log keeps its rows: the store seam of
:class:`~ml_platform.serving.prediction_log.PredictionLog` and ``read_predictions``.

The log's logic (buffering, drop counting, validation, the columns and their types) is one code
path in ml_platform/serving/prediction_log.py; a store supplies only how one batch of a day is
written and how rows are read back, as an Arrow table with the log's schema.

- :class:`ParquetFiles` (the embedded profile): append-only Parquet files under the home, one per
  batch and day, each written under a temporary name and renamed into place.
- :class:`PostgresPredictions` (the production profile): the table ``predictions`` in the
  database named by ``ML_PLATFORM_PG_PREDICTIONS_DB`` (default ``ml_platform_predictions``,
  created on first use), shared by every pipeline (a ``pipeline`` column), made append-only by
  plpgsql triggers; each batch is one ``COPY`` in one transaction, so a writer killed mid-batch
  leaves nothing of it.
"""

from __future__ import annotations

import os
import re
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from ml_platform.profile import ProfileError, connect, create_database

if TYPE_CHECKING:
    from ml_platform.profile import ProductionSettings

TEMP_PREFIX = "."
PREDICTIONS_DB_ENV = "ML_PLATFORM_PG_PREDICTIONS_DB"
PREDICTIONS_DB_DEFAULT = "ml_platform_predictions"
APPEND_ONLY_MESSAGE = "the prediction log is append-only"
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class PredictionStore(Protocol):
    @property
    def description(self) -> str:
        """Names the store in messages (never a password)."""

    def write(self, day: date, table: pa.Table) -> None:
        """Append one batch of rows logged on ``day``: all of it or nothing."""

    def read(self, since: datetime | None, schema: pa.Schema) -> pa.Table:
        """The stored rows (of days from ``since`` on, when given) with ``schema``."""


# -- Parquet files: the embedded profile -----------------------------------------------------
def write_file(directory: Path, table: pa.Table) -> Path:
    """One Parquet file written under a temporary name, fsynced and renamed into place."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{os.getpid()}-{uuid.uuid4().hex}.parquet"
    tmp = directory / f"{TEMP_PREFIX}{name}.tmp"
    final = directory / name
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


@dataclass(frozen=True)
class ParquetFiles:
    """``<directory>/date=YYYY-MM-DD/<pid>-<uuid>.parquet``; readers skip temporary names."""

    directory: Path

    @property
    def description(self) -> str:
        return str(self.directory)

    def write(self, day: date, table: pa.Table) -> None:
        write_file(self.directory / f"date={day.isoformat()}", table)

    def files(self, since: datetime | None) -> list[Path]:
        if not self.directory.is_dir():
            return []
        first = since.astimezone(UTC).date() if since is not None else None
        out: list[Path] = []
        for part in sorted(self.directory.glob("date=*")):
            try:
                day = date.fromisoformat(part.name.removeprefix("date="))
            except ValueError:
                continue  # not a partition of ours
            if first is not None and day < first:
                continue
            out.extend(
                p
                for p in sorted(part.glob("*.parquet"))
                if not p.name.startswith(TEMP_PREFIX) and p.is_file()
            )
        return out

    def read(self, since: datetime | None, schema: pa.Schema) -> pa.Table:
        files = self.files(since)
        if not files:
            return schema.empty_table()
        return pa.concat_tables([pq.read_table(f, schema=schema) for f in files])


# -- PostgreSQL: the production profile ------------------------------------------------------
# The log's columns in SCHEMA's order ("row" quoted: a keyword). The CHECKs repeat the log's
# allowed arms and modes, so a row written by another client cannot break a reader.
_PG_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS predictions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline TEXT NOT NULL,
    request_id TEXT NOT NULL,
    "row" BIGINT NOT NULL,
    logged_at TIMESTAMPTZ NOT NULL,
    entity TEXT NOT NULL,
    model_version TEXT NOT NULL,
    arm TEXT NOT NULL CHECK (arm IN ('champion', 'challenger')),
    mode TEXT NOT NULL CHECK (mode IN ('off', 'shadow', 'ab')),
    served BOOLEAN NOT NULL,
    score DOUBLE PRECISION,
    label BIGINT,
    latency_ms DOUBLE PRECISION,
    features TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_by_pipeline_time ON predictions (pipeline, logged_at);
CREATE OR REPLACE FUNCTION predictions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%: % on % refused', '{APPEND_ONLY_MESSAGE}', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE OR REPLACE TRIGGER predictions_append_only BEFORE UPDATE OR DELETE ON predictions
    FOR EACH ROW EXECUTE FUNCTION predictions_append_only();
CREATE OR REPLACE TRIGGER predictions_no_truncate BEFORE TRUNCATE ON predictions
    FOR EACH STATEMENT EXECUTE FUNCTION predictions_append_only();
"""
_PG_TRIGGERS = ["predictions_append_only", "predictions_no_truncate"]
# A stable key for the transaction-level lock that serializes concurrent first schema creation.
_SCHEMA_LOCK_KEY = 0x6D6C705F70726564  # "mlp_pred"
_READY: set[tuple[object, ...]] = set()


def predictions_database() -> str:
    """The prediction log's database name in the production profile, checked."""
    name = os.environ.get(PREDICTIONS_DB_ENV) or PREDICTIONS_DB_DEFAULT
    if not _DB_NAME.match(name):
        raise ProfileError(
            f"{PREDICTIONS_DB_ENV}={name!r} is not a plain database name: use letters, digits "
            f"and '_' (at most 63, not starting with a digit)"
        )
    return name


def _sql_column(name: str) -> str:
    return f'"{name}"'


@dataclass
class PostgresPredictions:
    """One pipeline's rows in the shared ``predictions`` table of a PostgreSQL database."""

    pipeline: str
    host: str
    port: int
    user: str
    dbname: str
    password: str = field(default="", repr=False)
    admin_db: str = "postgres"

    @classmethod
    def from_settings(cls, settings: ProductionSettings, pipeline: str) -> PostgresPredictions:
        pg = settings.postgres
        return cls(
            pipeline, pg.host, pg.port, pg.user, predictions_database(), pg.password, pg.admin_db
        )

    @property
    def description(self) -> str:
        return f"table predictions in database '{self.dbname}' on {self.host}:{self.port}"

    def _connect(self, dbname: str, autocommit: bool = True) -> Any:
        return connect(self, dbname, "the prediction log", PREDICTIONS_DB_ENV, autocommit)

    def _ensure_database(self) -> None:
        with self._connect(self.admin_db) as con:
            create_database(con, self.dbname, "the prediction log's database", PREDICTIONS_DB_ENV)

    def create_schema(self) -> None:
        """Create the database, the table and its triggers when missing (once per process);
        concurrent first users take turns on a transaction-level advisory lock."""
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
                    con.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_LOCK_KEY])
                    con.execute(_PG_SCHEMA)
        _READY.add(key)

    def write(self, day: date, table: pa.Table) -> None:
        """The batch as one COPY in one transaction: all rows commit, or none."""
        self.create_schema()
        columns = ", ".join(["pipeline", *map(_sql_column, table.schema.names)])
        copy_sql = f"COPY predictions ({columns}) FROM STDIN"
        with (
            closing(self._connect(self.dbname, autocommit=False)) as con,
            con.transaction(),
            con.cursor() as cur,
            cur.copy(copy_sql) as copy,
        ):
            for row in table.to_pylist():
                copy.write_row([self.pipeline, *row.values()])

    def read(self, since: datetime | None, schema: pa.Schema) -> pa.Table:
        self.create_schema()
        columns = ", ".join(map(_sql_column, schema.names))
        query = f"SELECT {columns} FROM predictions WHERE pipeline = %s"
        args: list[Any] = [self.pipeline]
        if since is not None:
            query += " AND logged_at >= %s"
            args.append(since)
        with closing(self._connect(self.dbname)) as con:
            rows = con.execute(query, args).fetchall()
        data = {name: [r[i] for r in rows] for i, name in enumerate(schema.names)}
        return pa.Table.from_pydict(data, schema=schema)
