"""Which services hold the platform's state: the profile, chosen by ``ML_PLATFORM_PROFILE``.

- ``embedded`` (the default): every store is a file under the platform home; nothing to start.
- ``production``: the Dagster instance, MLflow tracking + registry, the Feast registry and
  Optuna studies on PostgreSQL, the Feast online store on Redis, each configured only from the
  environment (docs/production.md lists every variable). The warehouse, the Feast offline
  source, the landing zone, reports, the promotion ledger and the prediction log stay files
  under the platform home, which must then be a path every host mounts.

Credentials come from ``ML_PLATFORM_PG_PASSWORD`` / ``ML_PLATFORM_REDIS_PASSWORD`` or from a
mounted secret file named by ``..._PASSWORD_FILE``. No URL built here holds a password: the
Postgres password reaches libpq (the client library under psycopg and psycopg2, so under
MLflow's, Optuna's, Feast's and Dagster's connections alike) as its standard ``PGPASSWORD``
variable of the process, and Dagster's instance config reads it with ``env:``. The Redis
password is only in the in-memory Feast config. Nothing here logs or prints a secret.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

PROFILE_ENV = "ML_PLATFORM_PROFILE"
EMBEDDED = "embedded"
PRODUCTION = "production"
PROFILES = (EMBEDDED, PRODUCTION)

# Every variable the production profile reads, with its default ("" = none). Dagster's instance
# config (deploy/production/dagster.yaml) reads the PG ones with `env:`, so `export_for_dagster`
# sets the defaults into the process environment for it and the processes it starts.
PG_DEFAULTS = {
    "ML_PLATFORM_PG_HOST": "127.0.0.1",
    "ML_PLATFORM_PG_PORT": "5432",
    "ML_PLATFORM_PG_USER": "postgres",
    "ML_PLATFORM_PG_DAGSTER_DB": "ml_platform_dagster",
    "ML_PLATFORM_PG_MLFLOW_DB": "ml_platform_mlflow",
    "ML_PLATFORM_PG_FEAST_DB": "ml_platform_feast",
    "ML_PLATFORM_PG_OPTUNA_DB": "ml_platform_optuna",
    # The database connected to in order to create the four above when they are missing.
    "ML_PLATFORM_PG_ADMIN_DB": "postgres",
}
REDIS_DEFAULTS = {
    "ML_PLATFORM_REDIS_HOST": "127.0.0.1",
    "ML_PLATFORM_REDIS_PORT": "6379",
    "ML_PLATFORM_REDIS_DB": "0",
}
PG_PASSWORD = "ML_PLATFORM_PG_PASSWORD"
REDIS_PASSWORD = "ML_PLATFORM_REDIS_PASSWORD"
ARTIFACT_ROOT = "ML_PLATFORM_ARTIFACT_ROOT"
# Seconds before a Redis connect or command gives up (a down Redis fails the step, retried by
# its retry policy, instead of hanging it).
REDIS_TIMEOUT_SECONDS = 5
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ProfileError(ValueError):
    """A profile setting is missing or malformed; the message names the variable and the fix."""


def current_profile() -> str:
    value = (os.environ.get(PROFILE_ENV) or EMBEDDED).strip().lower()
    if value not in PROFILES:
        raise ProfileError(
            f"{PROFILE_ENV}={value!r} is not a profile: set it to 'embedded' (the default, "
            f"every store a file in the platform home) or 'production' (Postgres and Redis)"
        )
    return value


def secret(name: str) -> str:
    """The secret in ``name``, or in the file named by ``name_FILE`` (a mounted secret; one
    trailing newline is dropped). Empty when neither is set. Never logged."""
    value, file_var = os.environ.get(name, ""), f"{name}_FILE"
    path = os.environ.get(file_var, "")
    if value and path:
        raise ProfileError(f"both {name} and {file_var} are set: keep one")
    if not path:
        return value
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ProfileError(
            f"{file_var} names {path}, which cannot be read ({exc.strerror}): mount the secret "
            f"there or unset {file_var}"
        ) from None
    return text[:-1] if text.endswith("\n") else text


def _setting(name: str, defaults: dict[str, str]) -> str:
    return os.environ.get(name) or defaults[name]


def _port(name: str, defaults: dict[str, str]) -> int:
    raw = _setting(name, defaults)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ProfileError(f"{name}={raw!r} is not a port number (1-65535)")
    return int(raw)


def _database(name: str) -> str:
    db = _setting(name, PG_DEFAULTS)
    if not _DB_NAME.match(db):
        raise ProfileError(
            f"{name}={db!r} is not a plain database name: use letters, digits and '_' "
            f"(at most 63, not starting with a digit)"
        )
    return db


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dagster_db: str
    mlflow_db: str
    feast_db: str
    optuna_db: str
    admin_db: str

    def url(self, database: str, driver: str = "psycopg2") -> str:
        """A SQLAlchemy URL without the password (libpq takes it from ``PGPASSWORD``)."""
        return (
            f"postgresql+{driver}://{quote(self.user, safe='')}@{self.host}:{self.port}/{database}"
        )

    @property
    def databases(self) -> tuple[str, ...]:
        return (self.dagster_db, self.mlflow_db, self.feast_db, self.optuna_db)


@dataclass(frozen=True)
class Redis:
    host: str
    port: int
    db: int
    password: str = field(repr=False)

    def connection_string(self) -> str:
        """Feast's ``host:port,key=value`` form. Holds the password: never log it."""
        parts = [
            f"{self.host}:{self.port}",
            f"db={self.db}",
            f"socket_timeout={REDIS_TIMEOUT_SECONDS}",
            f"socket_connect_timeout={REDIS_TIMEOUT_SECONDS}",
        ]
        if self.password:
            # Feast JSON-decodes each value: a quoted string stays a string ("123" too).
            parts.append(f"password={json.dumps(self.password)}")
        return ",".join(parts)


@dataclass(frozen=True)
class ProductionSettings:
    postgres: Postgres
    redis: Redis
    artifact_root: Path | None  # None: <home>/mlflow/artifacts
    tracking_uri_override: str  # MLFLOW_TRACKING_URI (an MLflow server), else Postgres

    @property
    def tracking_uri(self) -> str:
        return self.tracking_uri_override or self.postgres.url(self.postgres.mlflow_db)

    @property
    def optuna_storage(self) -> str:
        return self.postgres.url(self.postgres.optuna_db)

    @property
    def feast_registry_url(self) -> str:
        # Feast's SQL registry on psycopg 3 (what Feast's own Postgres stores use).
        return self.postgres.url(self.postgres.feast_db, driver="psycopg")


def production_settings() -> ProductionSettings:
    """The production profile's settings from the environment, checked; the Postgres password
    is handed to libpq (``PGPASSWORD``) for every connection this process and its children
    open."""
    password = secret(PG_PASSWORD)
    redis_password = secret(REDIS_PASSWORD)
    if "," in redis_password:
        raise ProfileError(
            f"{REDIS_PASSWORD} contains ',', which Feast's Redis connection string cannot hold: "
            f"choose a password without commas"
        )
    postgres = Postgres(
        host=_setting("ML_PLATFORM_PG_HOST", PG_DEFAULTS),
        port=_port("ML_PLATFORM_PG_PORT", PG_DEFAULTS),
        user=_setting("ML_PLATFORM_PG_USER", PG_DEFAULTS),
        password=password,
        dagster_db=_database("ML_PLATFORM_PG_DAGSTER_DB"),
        mlflow_db=_database("ML_PLATFORM_PG_MLFLOW_DB"),
        feast_db=_database("ML_PLATFORM_PG_FEAST_DB"),
        optuna_db=_database("ML_PLATFORM_PG_OPTUNA_DB"),
        admin_db=_database("ML_PLATFORM_PG_ADMIN_DB"),
    )
    if len(set(postgres.databases)) != len(postgres.databases):
        # MLflow, Optuna and Dagster each keep an `alembic_version` table: one database each.
        raise ProfileError(
            "ML_PLATFORM_PG_DAGSTER_DB, _MLFLOW_DB, _FEAST_DB and _OPTUNA_DB must name four "
            f"different databases (got {', '.join(postgres.databases)})"
        )
    db_raw = _setting("ML_PLATFORM_REDIS_DB", REDIS_DEFAULTS)
    if not db_raw.isdigit():
        raise ProfileError(f"ML_PLATFORM_REDIS_DB={db_raw!r} is not a Redis database number")
    redis = Redis(
        host=_setting("ML_PLATFORM_REDIS_HOST", REDIS_DEFAULTS),
        port=_port("ML_PLATFORM_REDIS_PORT", REDIS_DEFAULTS),
        db=int(db_raw),
        password=redis_password,
    )
    raw_root = os.environ.get(ARTIFACT_ROOT, "")
    if raw_root and not Path(raw_root).is_absolute():
        raise ProfileError(
            f"{ARTIFACT_ROOT}={raw_root!r} is not an absolute path: name a directory every "
            f"host mounts, e.g. /mnt/ml-platform/artifacts"
        )
    if password:
        os.environ["PGPASSWORD"] = password
    return ProductionSettings(
        postgres=postgres,
        redis=redis,
        artifact_root=Path(raw_root) if raw_root else None,
        tracking_uri_override=os.environ.get("MLFLOW_TRACKING_URI", ""),
    )


def export_for_dagster(settings: ProductionSettings) -> None:
    """Set what the production dagster.yaml reads with ``env:`` (defaults included; the password,
    possibly from its file, or empty) in this process, for the instance it opens and every
    process it starts."""
    for name in PG_DEFAULTS:
        if not os.environ.get(name):  # unset or empty (a blank line of .env.example): default
            os.environ[name] = PG_DEFAULTS[name]
    os.environ[PG_PASSWORD] = settings.postgres.password
    os.environ.pop(f"{PG_PASSWORD}_FILE", None)  # one source of the password from here on


def connect(
    store: Any, dbname: str, what: str, variable: str, autocommit: bool = True, **extra: Any
) -> Any:
    """A psycopg connection for ``store`` (anything with host, port, user and password) to
    ``dbname``; an unreachable server is a RuntimeError naming ``what``, the settings to check
    (``variable`` names the database's) and never the password."""
    import psycopg

    try:
        return psycopg.connect(
            host=store.host,
            port=store.port,
            user=store.user,
            password=store.password or None,  # else libpq's PGPASSWORD
            dbname=dbname,
            autocommit=autocommit,
            connect_timeout=10,
            **extra,
        )
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"{what} cannot reach PostgreSQL at {store.host}:{store.port} as '{store.user}' "
            f"(database '{dbname}'): {str(exc).strip()}. Check ML_PLATFORM_PG_HOST/_PORT/_USER, "
            f"{variable} and the password (ML_PLATFORM_PG_PASSWORD or "
            f"ML_PLATFORM_PG_PASSWORD_FILE)"
        ) from None


def create_database(con: Any, db: str, what: str, variable: str) -> None:
    """``CREATE DATABASE db`` on ``con`` (autocommit, on the admin database) unless it exists.
    Two processes creating it at once: the loser gets DuplicateDatabase or a unique violation
    on pg_database, both meaning it exists now. ``what`` and ``variable`` name the database and
    its setting in the error when the user may not create it."""
    import psycopg
    from psycopg import sql

    if con.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone():
        return
    try:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
        pass
    except psycopg.errors.InsufficientPrivilege:
        info = con.info
        raise ProfileError(
            f"{what} '{db}' does not exist on {info.host}:{info.port} and user '{info.user}' "
            f"may not create it: create it, or name an existing one in {variable}"
        ) from None


_ENSURED: set[tuple[object, ...]] = set()


def ensure_databases(settings: ProductionSettings) -> None:
    """Create the four databases when missing (once per process), then MLflow's schema, so that
    concurrent first users (tuning workers, two runs) do not race to create tables."""
    pg = settings.postgres
    key = (pg.host, pg.port, pg.user, pg.databases, settings.tracking_uri)
    if key in _ENSURED:
        return
    import psycopg

    try:
        with psycopg.connect(
            host=pg.host,
            port=pg.port,
            user=pg.user,
            password=pg.password or None,
            dbname=pg.admin_db,
            autocommit=True,
            connect_timeout=10,
        ) as con:
            for db in pg.databases:
                create_database(con, db, "database", "its ML_PLATFORM_PG_*_DB variable")
    except psycopg.OperationalError as exc:
        raise ProfileError(
            f"cannot reach PostgreSQL at {pg.host}:{pg.port} as '{pg.user}' (database "
            f"'{pg.admin_db}'): {str(exc).strip()}. Check ML_PLATFORM_PG_HOST/_PORT/_USER and "
            f"the password in {PG_PASSWORD} or {PG_PASSWORD}_FILE"
        ) from None
    if not settings.tracking_uri_override:
        from mlflow.tracking import MlflowClient

        # Creating the client's store runs MLflow's schema migrations on an empty database.
        MlflowClient(tracking_uri=settings.tracking_uri).search_experiments(max_results=1)
    _ENSURED.add(key)
