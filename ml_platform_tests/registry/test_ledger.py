"""The promotion ledger: the only writer of registry aliases, append-only, race-safe."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml_platform.cli import app
from ml_platform.home import PlatformHome
from ml_platform.registry.ledger import (
    CHALLENGER,
    CHAMPION,
    OFFLINE_GATES,
    PromotionLedger,
    PromotionRefused,
)
from ml_platform.registry.ledger_store import LedgerStore, SqliteStore
from ml_platform.training.tracking import Tracking
from ml_platform_tests.production.ledger_db import fresh_ledger_store

MODEL = "loan_default"  # a declared pipeline, so the CLI accepts it


def _versions(tracking: Tracking, home: PlatformHome, n: int) -> list[str]:
    """Registered versions pointing at an empty source: the ledger never loads models."""
    source = home.root / "artifact"
    source.mkdir(exist_ok=True)
    tracking.client.create_registered_model(MODEL)
    return [str(tracking.client.create_model_version(MODEL, str(source)).version) for _ in range(n)]


def _passed(ledger: PromotionLedger, version: str) -> int:
    return ledger.add_evidence(MODEL, version, OFFLINE_GATES, True, "all gates passed")


@pytest.fixture(scope="module")
def empty_tracking_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty MLflow store, made once: creating one costs seconds per test."""
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    Tracking(f"sqlite:///{db}").client.search_registered_models()
    return db


@pytest.fixture
def tracking(home: PlatformHome, empty_tracking_db: Path) -> Tracking:
    home.mlflow_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty_tracking_db, home.mlflow_dir / "mlflow.db")
    return Tracking(home.tracking_uri, artifact_root=home.artifact_root)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.production)])
def store(request: pytest.FixtureRequest, home: PlatformHome) -> Iterator[LedgerStore]:
    """Each behaviour test on both stores: the embedded SQLite file, and a fresh database on
    the machine's PostgreSQL (the production profile's store; MLflow stays SQLite here)."""
    if request.param == "sqlite":
        yield SqliteStore(home.ledger_db)
    else:
        with fresh_ledger_store() as pg:
            yield pg


@pytest.fixture
def ledger(store: LedgerStore, tracking: Tracking) -> PromotionLedger:
    return PromotionLedger(store, tracking)


@pytest.fixture
def embedded_ledger(home: PlatformHome, tracking: Tracking) -> PromotionLedger:
    """For tests that open the SQLite file or run the CLI (an embedded home)."""
    return PromotionLedger(home.ledger_db, tracking)


def _assert_consistent(ledger: PromotionLedger, tracking: Tracking, champion: str | None) -> None:
    alias = tracking.version_by_alias(MODEL, CHAMPION)
    assert (None if alias is None else str(alias.version)) == champion
    assert ledger.champion(MODEL) == champion
    assert ledger.consistency(MODEL) == []


def test_promote_rollback_promote_keeps_aliases_and_ledger_consistent(
    ledger: PromotionLedger, tracking: Tracking, home: PlatformHome
) -> None:
    v1, v2, v3 = _versions(tracking, home, 3)
    for v in (v1, v2, v3):
        _passed(ledger, v)
    ledger.register_challenger(MODEL, v2, [])
    ledger.promote(MODEL, v1, "first model")
    _assert_consistent(ledger, tracking, v1)
    decision = ledger.promote(MODEL, v2, "beat v1")
    assert decision.previous_champion == v1 and decision.evidence_ids
    _assert_consistent(ledger, tracking, v2)
    # The promoted challenger no longer holds the challenger alias.
    assert tracking.version_by_alias(MODEL, CHALLENGER) is None
    ledger.promote(MODEL, v3, "beat v2")
    rolled = ledger.rollback(MODEL, "v3 misbehaves online")
    assert (rolled.version, rolled.previous_champion) == (v2, v3)
    _assert_consistent(ledger, tracking, v2)
    ledger.rollback(MODEL, "v2 too")  # a stack: rolls back to v1, not back to v3
    _assert_consistent(ledger, tracking, v1)
    with pytest.raises(PromotionRefused, match="no previous champion"):
        ledger.rollback(MODEL, "nothing left")
    ledger.promote(MODEL, v3, "fixed upstream data; v3 again")
    _assert_consistent(ledger, tracking, v3)
    actions = [d.action for d in ledger.history(MODEL)]
    assert actions == [
        "challenger",
        "promote",
        "promote",
        "promote",
        "rollback",
        "rollback",
        "promote",
    ]


def test_promotion_refused_without_passing_evidence_unless_forced(
    ledger: PromotionLedger, tracking: Tracking, home: PlatformHome
) -> None:
    v1, v2 = _versions(tracking, home, 2)
    with pytest.raises(PromotionRefused, match="no 'offline_gates' evidence"):
        ledger.promote(MODEL, v1, "try")
    ledger.add_evidence(MODEL, v1, OFFLINE_GATES, False, "roc_auc below floor")
    with pytest.raises(PromotionRefused, match="roc_auc below floor"):
        ledger.promote(MODEL, v1, "try again")
    with pytest.raises(PromotionRefused, match="has not passed"):
        ledger.register_challenger(MODEL, v1, [])
    with pytest.raises(PromotionRefused, match="needs a reason"):
        ledger.promote(MODEL, v1, " ", force=True)
    with pytest.raises(PromotionRefused, match="no registered version 9"):
        ledger.promote(MODEL, "9", "missing", force=True)
    forced = ledger.promote(MODEL, v1, "incident hotfix", force=True, actor="user:oncall")
    assert (forced.action, forced.forced, forced.actor) == ("force_promote", True, "user:oncall")
    _assert_consistent(ledger, tracking, v1)
    assert tracking.version_by_alias(MODEL, CHAMPION).version == int(v1)
    assert v2  # never promoted
    assert [d.version for d in ledger.history(MODEL)] == [v1]


def test_compare_and_set_refuses_a_stale_comparison(
    ledger: PromotionLedger, tracking: Tracking, home: PlatformHome
) -> None:
    v1, v2, v3 = _versions(tracking, home, 3)
    for v in (v1, v2, v3):
        _passed(ledger, v)
    ledger.promote(MODEL, v1, "first", expect_champion=None)
    ledger.promote(MODEL, v2, "beat v1", expect_champion=v1)
    with pytest.raises(PromotionRefused, match="now v2, not v1"):
        ledger.promote(MODEL, v3, "beat v1", expect_champion=v1)
    _assert_consistent(ledger, tracking, v2)


def test_ledger_is_append_only_and_detects_alias_drift(
    embedded_ledger: PromotionLedger, tracking: Tracking, home: PlatformHome
) -> None:
    ledger = embedded_ledger  # the Postgres triggers: ml_platform_tests/production/test_ledger.py
    v1, v2 = _versions(tracking, home, 2)
    _passed(ledger, v1)
    _passed(ledger, v2)
    ledger.promote(MODEL, v1, "first")
    with sqlite3.connect(home.ledger_db) as con:
        for sql in (
            "UPDATE decisions SET version = '2'",
            "DELETE FROM decisions",
            "DELETE FROM evidence",
            "UPDATE intents SET version = '2'",
            "DELETE FROM intents",
            "DELETE FROM intent_outcomes",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                con.execute(sql)
    tracking.client.set_registered_model_alias(MODEL, CHAMPION, v2)  # behind the ledger's back
    assert ledger.consistency(MODEL) == ["champion: ledger v1, registry v2"]
    with pytest.raises(PromotionRefused, match="moved outside the ledger"):
        ledger.rollback(MODEL, "x")
    with pytest.raises(PromotionRefused, match="moved outside the ledger"):
        ledger.promote(MODEL, v1, "x")


class Crash(BaseException):
    """Stands in for SIGKILL inside one process: nothing after the raise runs, the open
    transaction rolls back and the lock file is released, as the kernel does for a killed
    writer. (test_crash_safety.py kills real processes.)"""


def _crash_on_alias(
    ledger: PromotionLedger, monkeypatch: pytest.MonkeyPatch, alias: str, after_move: bool
) -> None:
    """The writer dies when it moves ``alias``: just before the registry call, or just after."""
    real = ledger._set_alias

    def set_alias(model: str, name: str, version: str) -> None:
        if name == alias and not after_move:
            raise Crash(f"killed before moving {name}")
        real(model, name, version)
        if name == alias:
            raise Crash(f"killed after moving {name}")

    monkeypatch.setattr(ledger, "_set_alias", set_alias)


def _outcomes(ledger: PromotionLedger) -> list[str]:
    return [outcome for _, outcome, _ in ledger.intent_outcomes(MODEL)]


def test_an_intent_is_committed_before_the_alias_moves_and_closed_with_the_decision(
    ledger: PromotionLedger, tracking: Tracking, home: PlatformHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    (v1,) = _versions(tracking, home, 1)
    _passed(ledger, v1)
    seen: list[list[str]] = []
    real = ledger._set_alias

    def set_alias(model: str, name: str, version: str) -> None:
        # What another process sees at the moment the registry is called.
        seen.append(
            [
                f"{i.alias}->{i.version}"
                for i in PromotionLedger(ledger.store, tracking).open_intents(MODEL)
            ]
        )
        real(model, name, version)

    monkeypatch.setattr(ledger, "_set_alias", set_alias)
    ledger.register_challenger(MODEL, v1, [])
    ledger.promote(MODEL, v1, "first")
    assert seen == [["challenger->" + v1], ["champion->" + v1]]
    assert ledger.open_intents() == []
    assert _outcomes(ledger) == ["done", "done"]
    _assert_consistent(ledger, tracking, v1)


def test_a_writer_stopped_before_moving_the_alias_is_rolled_back(
    ledger: PromotionLedger, tracking: Tracking, home: PlatformHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1, v2 = _versions(tracking, home, 2)
    for v in (v1, v2):
        _passed(ledger, v)
    ledger.promote(MODEL, v1, "first")
    _crash_on_alias(ledger, monkeypatch, CHAMPION, after_move=False)
    with pytest.raises(Crash):
        ledger.promote(MODEL, v2, "beat v1", expect_champion=v1)

    after = PromotionLedger(ledger.store, tracking)  # the next process
    [stranded] = after.open_intents(MODEL)
    assert (stranded.alias, stranded.alias_from, stranded.version) == (CHAMPION, v1, v2)
    [problem] = after.consistency(MODEL)  # the alias did not move, but the intent is open
    assert problem.startswith(f"unfinished intent #{stranded.id}: promote moving 'champion'")
    after.add_evidence(MODEL, v2, "shadow", True, "any write reconciles first")
    assert after.open_intents() == [] and _outcomes(after) == ["done", "rolled_back"]
    _assert_consistent(after, tracking, v1)
    assert [d.action for d in after.history(MODEL)] == ["promote"]
    after.promote(MODEL, v2, "beat v1, again", expect_champion=v1)  # nothing left in the way
    _assert_consistent(after, tracking, v2)


def test_a_writer_stopped_after_moving_the_alias_is_completed(
    ledger: PromotionLedger, tracking: Tracking, home: PlatformHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1, v2 = _versions(tracking, home, 2)
    for v in (v1, v2):
        _passed(ledger, v)
    ledger.promote(MODEL, v1, "first")
    ledger.register_challenger(MODEL, v2, [])
    _crash_on_alias(ledger, monkeypatch, CHAMPION, after_move=True)
    with pytest.raises(Crash):
        ledger.promote(MODEL, v2, "beat v1", actor="pipeline:run-1", expect_champion=v1)

    after = PromotionLedger(ledger.store, tracking)
    problems = after.consistency(MODEL)
    assert problems[0] == f"champion: ledger v{v1}, registry v{v2}"
    assert problems[1].startswith("unfinished intent #")
    [resolution] = after.reconcile(actor="user:oncall")
    assert (resolution.outcome, resolution.alias_found) == ("completed", v2)
    decision = resolution.decision
    assert decision is not None
    assert (decision.action, decision.version, decision.previous_champion, decision.actor) == (
        "promote",
        v2,
        v1,
        "pipeline:run-1",
    )
    assert "completed by reconciliation" in decision.reason
    _assert_consistent(after, tracking, v2)
    # The promotion's follow-up ran too: a champion is no longer the challenger.
    assert tracking.version_by_alias(MODEL, CHALLENGER) is None
    assert after.reconcile() == []  # idempotent
    after.rollback(MODEL, "the replayed stack has v2 on top of v1")
    _assert_consistent(after, tracking, v1)


def test_an_interrupted_challenger_and_rollback_are_reconciled(
    ledger: PromotionLedger, tracking: Tracking, home: PlatformHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1, v2, v3 = _versions(tracking, home, 3)
    for v in (v1, v2, v3):
        _passed(ledger, v)
    ledger.promote(MODEL, v1, "first")
    ledger.promote(MODEL, v2, "second")
    with monkeypatch.context() as patch:
        _crash_on_alias(ledger, patch, CHALLENGER, after_move=True)
        with pytest.raises(Crash):
            ledger.register_challenger(MODEL, v3, [])
    with monkeypatch.context() as patch:
        _crash_on_alias(ledger, patch, CHAMPION, after_move=True)
        with pytest.raises(Crash):  # reconciles the challenger first, then dies itself
            ledger.rollback(MODEL, "v2 misbehaves")
    assert _outcomes(ledger) == ["done", "done", "completed"]
    [resolution] = ledger.reconcile()
    assert resolution.outcome == "completed" and resolution.intent.action == "rollback"
    _assert_consistent(ledger, tracking, v1)
    assert getattr(tracking.version_by_alias(MODEL, CHALLENGER), "version", None) == int(v3)
    assert [d.action for d in ledger.history(MODEL)] == [
        "promote",
        "promote",
        "challenger",
        "rollback",
    ]


def test_an_alias_moved_by_someone_else_meanwhile_is_left_and_reported(
    ledger: PromotionLedger, tracking: Tracking, home: PlatformHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1, v2, v3 = _versions(tracking, home, 3)
    for v in (v1, v2):
        _passed(ledger, v)
    ledger.promote(MODEL, v1, "first")
    _crash_on_alias(ledger, monkeypatch, CHAMPION, after_move=False)
    with pytest.raises(Crash):
        ledger.promote(MODEL, v2, "beat v1")
    tracking.client.set_registered_model_alias(MODEL, CHAMPION, v3)  # behind the ledger's back
    [resolution] = PromotionLedger(ledger.store, tracking).reconcile()
    assert resolution.outcome == "abandoned" and "moved outside the ledger" in resolution.detail
    # Neither guessed nor hidden: the drift is reported, and fixing it takes a forced promotion.
    assert ledger.consistency(MODEL) == [f"champion: ledger v{v1}, registry v{v3}"]


def _race(
    db: str, uri: str, version: str, expect: str | None, barrier: object, out: object
) -> None:
    ledger = PromotionLedger(Path(db), Tracking(uri))
    barrier.wait()  # type: ignore[attr-defined]
    try:
        ledger.promote(
            MODEL, version, f"race {version}", actor=f"proc:{version}", expect_champion=expect
        )
        out.put((version, "promoted"))  # type: ignore[attr-defined]
    except PromotionRefused as exc:
        out.put((version, f"refused: {exc}"))  # type: ignore[attr-defined]


def _run_race(
    ledger: PromotionLedger, home: PlatformHome, versions: list[str], expect: str | None | bool
) -> dict[str, str]:
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(len(versions)), ctx.Queue()
    procs = [
        ctx.Process(
            target=_race, args=(str(home.ledger_db), home.tracking_uri, v, expect, barrier, out)
        )
        for v in versions
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    return dict(out.get(timeout=5) for _ in versions)


@pytest.mark.slow
def test_two_racing_pipeline_promotions_leave_one_champion(
    embedded_ledger: PromotionLedger, tracking: Tracking, home: PlatformHome
) -> None:
    ledger = embedded_ledger  # on Postgres: ml_platform_tests/production/test_ledger.py
    v1, v2, v3 = _versions(tracking, home, 3)
    for v in (v1, v2, v3):
        _passed(ledger, v)
    ledger.promote(MODEL, v1, "first")
    # Both candidates were compared with v1: exactly one may replace it.
    results = _run_race(ledger, home, [v2, v3], expect=v1)
    winners = [v for v, r in results.items() if r == "promoted"]
    assert len(winners) == 1, results
    loser = ({v2, v3} - set(winners)).pop()
    assert "not v1" in results[loser]
    _assert_consistent(ledger, tracking, winners[0])
    promotes = [d for d in ledger.history(MODEL) if d.action == "promote"]
    assert [(d.version, d.previous_champion) for d in promotes] == [(v1, None), (winners[0], v1)]


def _flat(text: str) -> str:
    """Rich wraps lines at the terminal width."""
    return " ".join(text.split())


def test_cli_refuses_without_evidence_and_records_a_forced_promotion(
    embedded_ledger: PromotionLedger, tracking: Tracking, home: PlatformHome
) -> None:
    ledger = embedded_ledger  # the CLI opens the home's ledger
    v1, v2 = _versions(tracking, home, 2)
    _passed(ledger, v1)
    runner = CliRunner()
    out = runner.invoke(app, ["models", "promote", MODEL, v2, "--reason", "try"])
    assert out.exit_code == 1 and "no 'offline_gates' evidence" in _flat(out.output)
    out = runner.invoke(app, ["models", "promote", MODEL, v1, "--reason", "first"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["models", "promote", MODEL, v2, "--reason", "hotfix", "--force"])
    assert out.exit_code == 0 and "force_promote" in _flat(out.output)
    out = runner.invoke(app, ["models", "list", MODEL])
    assert out.exit_code == 0 and "champion" in out.output and "disagree" not in out.output
    out = runner.invoke(app, ["models", "rollback", MODEL, "--reason", "undo hotfix"])
    assert out.exit_code == 0 and ledger.champion(MODEL) == v1
    out = runner.invoke(app, ["models", "history", MODEL, "--json"])
    actions = [d["action"] for d in json.loads(out.output)["decisions"]]
    assert actions == ["promote", "force_promote", "rollback"]
    _assert_consistent(ledger, tracking, v1)
