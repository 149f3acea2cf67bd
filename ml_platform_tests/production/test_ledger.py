"""The promotion ledger on PostgreSQL (the production profile): racing promotions from
separate processes through a real MLflow registry on Postgres, a writer SIGKILLed between its
intent and its alias move, and the append-only triggers. (The ledger's behaviour tests run on
both stores in ml_platform_tests/registry/test_ledger.py.)"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ml_platform.home import PlatformHome
from ml_platform.registry.ledger import (
    CHALLENGER,
    CHAMPION,
    OFFLINE_GATES,
    PromotionLedger,
    PromotionRefused,
    open_ledger,
)
from ml_platform.registry.ledger_store import (
    APPEND_ONLY_TABLES,
    LEDGER_DB_ENV,
    PostgresStore,
    store_for,
)
from ml_platform.training.tracking import Tracking
from ml_platform_tests.production.conftest import ProductionEnv
from ml_platform_tests.production.ledger_db import PG, fresh_ledger_store

pytestmark = pytest.mark.production
MODEL = "loan_default"
RACERS = 4


@pytest.fixture
def ledger_db(production: ProductionEnv) -> str:
    """The production profile on fresh databases (the conftest's fixture), the ledger's among
    them, named in ML_PLATFORM_PG_LEDGER_DB as an operator would."""
    name = production.databases["LEDGER"]
    assert os.environ[LEDGER_DB_ENV] == name
    return name


def _pg(dbname: str, **extra: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=PG["host"], port=PG["port"], user=PG["user"], dbname=dbname, **extra
    )


def _versions(tracking: Tracking, home: PlatformHome, n: int) -> list[str]:
    """Registered versions pointing at an empty source: the ledger never loads models."""
    source = home.root / "artifact"
    source.mkdir(exist_ok=True)
    tracking.client.create_registered_model(MODEL)
    return [str(tracking.client.create_model_version(MODEL, str(source)).version) for _ in range(n)]


def _alias(tracking: Tracking, alias: str) -> str | None:
    mv = tracking.version_by_alias(MODEL, alias)
    return None if mv is None else str(mv.version)


def _production_ledger(env: ProductionEnv) -> tuple[PromotionLedger, Tracking]:
    home = env.home
    tracking = Tracking(home.tracking_uri, artifact_root=home.artifact_root)
    ledger = open_ledger(home, tracking)
    assert isinstance(ledger.store, PostgresStore)
    assert ledger.store.dbname == os.environ[LEDGER_DB_ENV]
    assert home.tracking_uri.endswith("/" + env.databases["MLFLOW"])
    return ledger, tracking


def _wait_for(what: str, check: Callable[[], Any], deadline: float = 60) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {deadline:.0f} s waiting for {what}")


# -- racing promotions ----------------------------------------------------------------------
def _racer(root: str, versions: tuple[str, str], champion: str, barrier: Any, out: Any) -> None:
    """One promoting process: a compare-and-set promotion against ``champion``, then (after
    every racer finished that) an unconditional one."""
    home = PlatformHome(Path(root))  # the production profile, from the inherited environment
    ledger = open_ledger(home, Tracking(home.tracking_uri, home.artifact_root))
    ledger.tracking.client.get_model_version(MODEL, versions[0])  # connections warm
    results = []
    for version, expect in ((versions[0], champion), (versions[1], False)):
        barrier.wait(timeout=300)
        try:
            ledger.promote(
                MODEL,
                version,
                f"race {version}",
                actor=f"proc:{os.getpid()}",
                expect_champion=expect,
            )
            results.append((version, "promoted"))
        except PromotionRefused as exc:
            results.append((version, f"refused: {exc}"))
    out.put(results)


@pytest.mark.slow
def test_racing_promotions_from_separate_processes_leave_one_winner_and_agree(
    production: ProductionEnv, ledger_db: str
) -> None:
    ledger, tracking = _production_ledger(production)
    home = production.home
    v1, *rest = _versions(tracking, home, 1 + 2 * RACERS)
    for v in (v1, *rest):
        ledger.add_evidence(MODEL, v, OFFLINE_GATES, True, "all gates passed")
    ledger.promote(MODEL, v1, "first")
    pairs = [(rest[i], rest[RACERS + i]) for i in range(RACERS)]

    ctx = multiprocessing.get_context("spawn")  # never fork after MLflow opened connections
    barrier, out = ctx.Barrier(RACERS), ctx.Queue()
    procs = [
        ctx.Process(target=_racer, args=(str(home.root), pair, v1, barrier, out)) for pair in pairs
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    first = dict(r[0] for r in results)
    second = dict(r[1] for r in results)

    # Compare-and-set against v1: exactly one winner, every loser told who won.
    winners = [v for v, r in first.items() if r == "promoted"]
    assert len(winners) == 1, first
    [winner] = winners
    for version, result in first.items():
        if version != winner:
            assert f"is now v{winner}, not v{v1}" in result, result
    # Unconditional promotions: all four, one at a time, each replacing the one before.
    assert all(r == "promoted" for r in second.values()), second

    promotes = [d for d in ledger.history(MODEL) if d.action == "promote"]
    assert [(d.version, d.previous_champion) for d in promotes[:2]] == [(v1, None), (winner, v1)]
    tail = promotes[2:]
    assert sorted(d.version for d in tail) == sorted(second)
    assert [d.previous_champion for d in tail] == [winner] + [d.version for d in tail[:-1]]
    # The ledger replays to the alias; nothing open, nothing drifted, nothing on file.
    assert ledger.champion(MODEL) == tail[-1].version == _alias(tracking, CHAMPION)
    assert ledger.consistency(MODEL) == []
    assert ledger.open_intents() == []
    outcomes = [o for _, o, _ in ledger.intent_outcomes(MODEL)]
    assert outcomes == ["done"] * (2 + RACERS)  # refused racers never recorded an intent
    assert not home.ledger_db.exists()


# -- a writer killed between its intent and its alias move ----------------------------------
_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from ml_platform.home import PlatformHome
    from ml_platform.registry.ledger import open_ledger
    from ml_platform.training.tracking import Tracking
    home = PlatformHome(Path(sys.argv[1]))
    ledger = open_ledger(home, Tracking(home.tracking_uri, home.artifact_root))
    ledger.promote("loan_default", sys.argv[2], "beat the champion", actor="proc:writer",
                   expect_champion=sys.argv[3])
""")
OPEN_INTENTS = (
    "SELECT id, alias, version FROM intents WHERE id NOT IN (SELECT intent_id FROM intent_outcomes)"
)
ADVISORY_HOLDERS = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
    "(SELECT oid FROM pg_database WHERE datname = current_database())"
)


def _rows(dbname: str, query: str) -> list[tuple[Any, ...]]:
    with _pg(dbname) as con:
        return con.execute(query).fetchall()


@pytest.mark.slow
def test_a_writer_killed_between_intent_and_alias_move_is_reconciled_by_the_next(
    production: ProductionEnv, ledger_db: str, tmp_path: Path
) -> None:
    ledger, tracking = _production_ledger(production)
    home = production.home
    v1, v2 = _versions(tracking, home, 2)
    for v in (v1, v2):
        ledger.add_evidence(MODEL, v, OFFLINE_GATES, True, "all gates passed")
    ledger.promote(MODEL, v1, "first")
    ledger.register_challenger(MODEL, v2, [])

    log = tmp_path / "writer.log"
    # Registry reads go on; alias writes wait: the writer stops right after its intent.
    held = _pg(production.databases["MLFLOW"])
    held.execute("LOCK TABLE registered_model_aliases IN SHARE MODE")
    try:
        with log.open("wb") as fh:
            writer = subprocess.Popen(
                [sys.executable, "-c", _WRITER, str(home.root), v2, v1],
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            [(intent_id, alias, version)] = _wait_for(
                "the writer's intent", lambda: _rows(ledger_db, OPEN_INTENTS), deadline=120
            )
        except AssertionError:
            writer.kill()
            raise AssertionError(log.read_text()) from None
        assert (alias, version) == (CHAMPION, v2)
        [(holder,)] = _rows(ledger_db, ADVISORY_HOLDERS)  # the writer holds the writers' lock
        os.killpg(writer.pid, signal.SIGKILL)
        assert writer.wait(30) == -signal.SIGKILL
        # The server ends the dead writer's session, and with it the lock.
        _wait_for("the lock's release", lambda: _rows(ledger_db, ADVISORY_HOLDERS) == [], 30)
    finally:
        held.rollback()
        held.close()

    after, _ = _production_ledger(production)  # the next process
    [problem] = after.consistency(MODEL)
    assert problem.startswith(f"unfinished intent #{intent_id}: promote moving 'champion'")
    # The next write (here: a rejection of another candidate) reconciles first.
    after.record(MODEL, "reject", None, "another candidate failed its gates")
    [(_, outcome, detail)] = [o for o in after.intent_outcomes(MODEL) if o[0].id == intent_id]
    assert outcome == "rolled_back" and "stopped before moving" in detail
    assert after.consistency(MODEL) == [] and after.open_intents() == []
    assert after.champion(MODEL) == v1 == _alias(tracking, CHAMPION)
    assert _alias(tracking, CHALLENGER) == v2
    assert [(d.action, d.version) for d in after.history(MODEL)] == [
        ("promote", v1),
        ("challenger", v2),
        ("reject", None),
    ]
    after.promote(MODEL, v2, "beat v1, again", expect_champion=v1)  # nothing left in the way
    assert after.champion(MODEL) == v2 == _alias(tracking, CHAMPION)
    assert after.consistency(MODEL) == []


# -- append-only ----------------------------------------------------------------------------
TEXT_COLUMNS = {
    "evidence": "summary",
    "decisions": "reason",
    "intents": "reason",
    "intent_outcomes": "detail",
}


def test_the_append_only_triggers_refuse_update_delete_and_truncate(tmp_path: Path) -> None:
    tracking = Tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=tmp_path / "a")
    source = tmp_path / "artifact"
    source.mkdir()
    tracking.client.create_registered_model(MODEL)
    v1 = str(tracking.client.create_model_version(MODEL, str(source)).version)
    with fresh_ledger_store() as store:
        ledger = PromotionLedger(store, tracking)
        ledger.add_evidence(MODEL, v1, OFFLINE_GATES, True, "all gates passed")
        ledger.promote(MODEL, v1, "first")
        assert sorted(TEXT_COLUMNS) == sorted(APPEND_ONLY_TABLES)
        with _pg(store.dbname, autocommit=True) as con:

            def counts() -> dict[str, Any]:
                return {
                    t: con.execute(f"SELECT count(*) FROM {t}").fetchone()
                    for t in APPEND_ONLY_TABLES
                }

            before = counts()
            assert all(n == (1,) for n in before.values()), before
            for table, column in TEXT_COLUMNS.items():
                for statement in (
                    f"UPDATE {table} SET {column} = 'rewritten'",
                    f"DELETE FROM {table}",
                    f"TRUNCATE {table} CASCADE",
                ):
                    with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
                        con.execute(statement)
            assert counts() == before
            # The refusals are the triggers' doing: without one, the same UPDATE goes through.
            con.execute("DROP TRIGGER decisions_append_only ON decisions")
            con.execute("UPDATE decisions SET reason = 'rewritten'")
        assert ledger.history(MODEL)[0].reason == "rewritten"


def test_the_profile_picks_the_store_and_a_bad_database_name_is_refused(
    home: PlatformHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert store_for(home).description == str(home.ledger_db)  # embedded: the SQLite file
    monkeypatch.setenv("ML_PLATFORM_PROFILE", "production")
    monkeypatch.setenv(LEDGER_DB_ENV, "ledger-db")
    with pytest.raises(ValueError, match=f"{LEDGER_DB_ENV}='ledger-db' is not a plain database"):
        store_for(PlatformHome(home.root))
    monkeypatch.delenv(LEDGER_DB_ENV)
    store = store_for(PlatformHome(home.root))
    assert isinstance(store, PostgresStore) and store.dbname == "ml_platform_ledger"
