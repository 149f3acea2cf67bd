"""Crash safety: runs killed with SIGKILL in the validation, training and registration steps,
then one more run. Nothing may be torn, stray, stuck or inconsistent afterwards:
- no half-written table (every file is written under a temporary name, then renamed), and no
  temporary file left (the next writer in a directory removes those of dead writers);
- no MLflow run left RUNNING (the next candidate step fails the runs of Dagster runs that are
  over, trial runs included);
- ledger and registry aliases agree (the ledger commits an intent before it moves an alias and
  the next ledger write reconciles an intent whose writer died);
- the killed run does not hold the pipeline: the next `ml-platform run` marks it failed
  (runner.py), and that run succeeds, once.

Each kill is of a real ``ml-platform run`` process group (the run's one process, which
executes every step with the project's in-process executor, and its children: dbt, the compute
log mirror), at a point observed from outside: a step's STEP_START in the Dagster instance, the
candidate's MLflow run RUNNING, the registration's evidence row in the ledger.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest

from ml_platform.home import PROJECT_ROOT, PlatformHome
from ml_platform.registry.ledger import CHALLENGER, CHAMPION, OFFLINE_GATES, PromotionLedger
from ml_platform.training.recovery import RECOVERED_TAG
from ml_platform.training.tracking import Tracking

pytestmark = pytest.mark.slow
PIPELINE = "loan_default"
SMALL_DEFS = "ml_platform_tests.cli.small_defs:defs"
VALIDATION, TRAINING, REGISTRATION = (
    f"{PIPELINE}_validated",
    f"{PIPELINE}_candidate_model",
    f"{PIPELINE}_registered_model",
)
# A test-size run takes 1-2 minutes alone; this machine's 2 cores are shared with other work.
STEP_DEADLINE = 900.0
RUN_DEADLINE = 1200.0


# -- processes ------------------------------------------------------------------------------
def _launch(log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``ml-platform run`` on the test's home, leading a process group of its own."""
    cli = str(Path(sys.executable).parent / "ml-platform")
    with log.open("wb") as out:
        return subprocess.Popen(
            [cli, *args],
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "COLUMNS": "200"},
        )


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the whole group (the run's process and its children) and wait until it is gone."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes of group {proc.pid} outlived SIGKILL")


def _wait_for(
    what: str,
    ready: Callable[[], Any],
    proc: subprocess.Popen[Any] | None,
    log: Path | None,
    deadline: float = STEP_DEADLINE,
    every: float = 0.05,
) -> Any:
    """Poll ``ready`` until it returns something truthy; fail if ``proc`` ends first."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        got = ready()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log else ""
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}:\n{tail}")
        time.sleep(every)
    if proc is not None:
        _kill_group(proc)
    raise AssertionError(f"timed out after {deadline:.0f} s waiting for {what}")


# -- observing a run from outside -----------------------------------------------------------
def _newest_run(instance: dg.DagsterInstance) -> str | None:
    records = instance.get_run_records(
        dg.RunsFilter(tags={"ml_platform/pipeline": PIPELINE}), limit=1
    )
    return records[0].dagster_run.run_id if records else None


def _step_started(instance: dg.DagsterInstance, step: str, after: set[str]) -> str | None:
    """The id of a new run (not in ``after``) in which ``step`` has started."""
    run_id = _newest_run(instance)
    if run_id is None or run_id in after:
        return None
    started = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START)
    return run_id if any(r.event_log_entry.step_key == step for r in started.records) else None


def _status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def _mlflow_runs(tracking: Tracking, status: str | None = None) -> list[Any]:
    experiment = tracking.client.get_experiment_by_name(PIPELINE)
    if experiment is None:
        return []
    query = f"attributes.status = '{status}'" if status else ""
    return list(tracking.client.search_runs([experiment.experiment_id], query, max_results=1000))


def _running_candidate(tracking: Tracking, run_id: str) -> str | None:
    runs = [
        r for r in _mlflow_runs(tracking, "RUNNING") if r.data.tags.get("dagster_run_id") == run_id
    ]
    return runs[0].info.run_id if runs else None


def _ledger_rows(home: PlatformHome, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
    """Read the ledger without taking any of its locks (a plain read of a WAL database)."""
    if not home.ledger_db.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{home.ledger_db}?mode=ro", uri=True, timeout=5)) as con:
            return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []


OPEN_INTENTS = (
    "SELECT id, alias, version FROM intents WHERE id NOT IN (SELECT intent_id FROM intent_outcomes)"
)


@contextmanager
def _registry_writes_held(home: PlatformHome) -> Iterator[None]:
    """Hold the MLflow store's write lock: the registry stays readable, and a process that
    writes to it (an alias move) waits there (MLflow sets a 20 s busy timeout on SQLite)."""
    con = sqlite3.connect(home.mlflow_dir / "mlflow.db", timeout=30, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        yield
    finally:
        con.execute("ROLLBACK")
        con.close()


@contextmanager
def _ledger_writes_held(home: PlatformHome) -> Iterator[None]:
    con = sqlite3.connect(home.ledger_db, timeout=30, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        yield
    finally:
        con.execute("ROLLBACK")
        con.close()


# -- the end state --------------------------------------------------------------------------
def _assert_nothing_torn_stray_stuck_or_inconsistent(
    home: PlatformHome, tracking: Tracking
) -> None:
    stray = sorted(str(p.relative_to(home.root)) for p in home.root.rglob("*.tmp"))
    assert stray == [], f"temporary files left: {stray}"
    for table in home.warehouse.rglob("*.parquet"):
        pq.read_metadata(table)  # a torn file has no footer
    running = [(r.info.run_id, r.info.run_name) for r in _mlflow_runs(tracking, "RUNNING")]
    assert running == [], f"MLflow runs still RUNNING: {running}"
    ledger = PromotionLedger(home.ledger_db, tracking)
    assert ledger.consistency(PIPELINE) == []
    assert ledger.open_intents() == []
    alias = tracking.version_by_alias(PIPELINE, CHAMPION)
    assert alias is not None and str(alias.version) == ledger.champion(PIPELINE)


def test_runs_killed_in_validation_training_and_registration_leave_a_consistent_home(
    home: PlatformHome, landed: list[Path], tmp_path: Path
) -> None:
    started = time.monotonic()
    tracking = Tracking(home.tracking_uri)
    # Create the MLflow store now, so that polling it below never races a step's first use
    # (both would create its tables).
    tracking.client.search_experiments()
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        killed: set[str] = set()

        # 1. Validation: killed as soon as the step has started.
        log = tmp_path / "run1.log"
        proc = _launch(log, "run", PIPELINE, "--definitions", SMALL_DEFS)
        run1 = _wait_for(
            "the validation step", lambda: _step_started(instance, VALIDATION, killed), proc, log
        )
        _kill_group(proc)
        killed.add(run1)
        # Nothing could report the run's end: it still looks in progress.
        assert _status(instance, run1) == dg.DagsterRunStatus.STARTED

        # 2. Training: killed while the candidate's MLflow run is RUNNING (tuning under way).
        log = tmp_path / "run2.log"
        proc = _launch(log, "run", PIPELINE, "--definitions", SMALL_DEFS)
        run2 = _wait_for(
            "the training step", lambda: _step_started(instance, TRAINING, killed), proc, log
        )
        # The next `ml-platform run` marked the killed run failed instead of refusing to start.
        assert _status(instance, run1) == dg.DagsterRunStatus.FAILURE
        orphan = _wait_for(
            "the candidate's MLflow run",
            lambda: _running_candidate(tracking, run2),
            proc,
            log,
            every=0.2,
        )
        _kill_group(proc)
        killed.add(run2)
        assert tracking.client.get_run(orphan).info.status == "RUNNING"  # left by the kill

        # 3. Registration: killed once its gate evidence is in the ledger, with the registry's
        # write lock held so that the next alias move waits: the kill lands after the
        # challenger's (or the promotion's) intent is committed and before its alias moves.
        log = tmp_path / "run3.log"
        proc = _launch(log, "run", PIPELINE, "--definitions", SMALL_DEFS)
        run3 = _wait_for(
            "the registration step",
            lambda: _step_started(instance, REGISTRATION, killed),
            proc,
            log,
        )
        _wait_for(
            "the registration's evidence",
            lambda: _ledger_rows(
                home,
                "SELECT id FROM evidence WHERE kind = ? AND actor = ?",
                (OFFLINE_GATES, f"pipeline:{run3}"),
            ),
            proc,
            log,
            every=0.005,
        )
        with _registry_writes_held(home):
            stranded = _wait_for(
                "an intent",
                lambda: _ledger_rows(home, OPEN_INTENTS),
                proc,
                log,
                deadline=60,
                every=0.01,
            )
            _kill_group(proc)
        killed.add(run3)
        [(intent_id, alias, version)] = stranded
        # Held lock or not, the move may have happened just before the lock was taken.
        moved = str(getattr(tracking.version_by_alias(PIPELINE, alias), "version", "")) == version
        assert alias in (CHALLENGER, CHAMPION)
        assert any(
            p.startswith("unfinished intent")
            for p in PromotionLedger(home.ledger_db, tracking).consistency(PIPELINE)
        )
        # Run 3's training step found run 2's candidate RUNNING and failed it.
        recovered = tracking.client.get_run(orphan)
        assert recovered.info.status == "FAILED"
        assert run2 in recovered.data.tags[RECOVERED_TAG]

        # 4. The next run completes, once.
        final = subprocess.run(
            [
                str(Path(sys.executable).parent / "ml-platform"),
                "run",
                PIPELINE,
                "--definitions",
                SMALL_DEFS,
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=RUN_DEADLINE,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
        assert f"SUCCESS {PIPELINE}" in final.stdout
        statuses = {r.dagster_run.run_id: r.dagster_run.status for r in instance.get_run_records()}
        assert sorted(s.value for s in statuses.values()) == ["FAILURE"] * 3 + ["SUCCESS"]
        registered = instance.fetch_materializations(dg.AssetKey(REGISTRATION), limit=10)
        assert [r.run_id for r in registered.records] == [
            r for r, s in statuses.items() if s == dg.DagsterRunStatus.SUCCESS
        ]

        _assert_nothing_torn_stray_stuck_or_inconsistent(home, tracking)
        outcomes = PromotionLedger(home.ledger_db, tracking).intent_outcomes(PIPELINE)
        assert [o for i, o, _ in outcomes if i.id == intent_id] == [
            "completed" if moved else "rolled_back"
        ]
    assert time.monotonic() - started < 4 * RUN_DEADLINE


# -- the ledger alone: a writer killed on either side of its alias write --------------------
_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from ml_platform.registry.ledger import PromotionLedger
    from ml_platform.training.tracking import Tracking
    db, uri, version, expect = sys.argv[1:5]
    PromotionLedger(Path(db), Tracking(uri)).promote(
        "loan_default", version, "beat the champion", actor="proc:writer",
        expect_champion=expect)
""")


def _registered_versions(tracking: Tracking, home: PlatformHome, n: int) -> list[str]:
    source = home.root / "artifact"
    source.mkdir(exist_ok=True)
    tracking.client.create_registered_model(PIPELINE)
    return [
        str(tracking.client.create_model_version(PIPELINE, str(source)).version) for _ in range(n)
    ]


@pytest.mark.parametrize(
    "moved", [False, True], ids=["before_the_alias_moved", "after_the_alias_moved"]
)
def test_a_ledger_writer_killed_around_its_alias_write_is_reconciled(
    home: PlatformHome, tmp_path: Path, moved: bool
) -> None:
    tracking = Tracking(home.tracking_uri)
    ledger = PromotionLedger(home.ledger_db, tracking)
    v1, v2 = _registered_versions(tracking, home, 2)
    for v in (v1, v2):
        ledger.add_evidence(PIPELINE, v, OFFLINE_GATES, True, "all gates passed")
    ledger.promote(PIPELINE, v1, "first")
    ledger.register_challenger(PIPELINE, v2, [])

    log = tmp_path / "writer.log"
    ledger_held = ExitStack()
    with _registry_writes_held(home):
        with log.open("wb") as out:
            writer = subprocess.Popen(
                [sys.executable, "-c", _WRITER, str(home.ledger_db), home.tracking_uri, v2, v1],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # The intent is committed; the alias move waits for the registry's write lock.
        [(intent_id, alias, version)] = _wait_for(
            "the promotion's intent",
            lambda: _ledger_rows(home, OPEN_INTENTS),
            writer,
            log,
            deadline=60,
            every=0.01,
        )
        assert (alias, version) == (CHAMPION, v2)
        if moved:  # hold the ledger before the registry lets go: the alias moves, then
            ledger_held.enter_context(_ledger_writes_held(home))  # the decision waits
        else:
            _kill_group(writer)
    with ledger_held:
        if moved:
            _wait_for(
                "the alias move",
                lambda: (
                    str(getattr(tracking.version_by_alias(PIPELINE, CHAMPION), "version", "")) == v2
                ),
                writer,
                log,
                deadline=60,
            )
            _kill_group(writer)

    after = PromotionLedger(home.ledger_db, tracking)
    problems = after.consistency(PIPELINE)
    assert problems[-1].startswith(f"unfinished intent #{intent_id}: promote moving 'champion'")
    assert (problems[0] == f"champion: ledger v{v1}, registry v{v2}") is moved
    # The next use of the ledger (here: a rejection of some other candidate) reconciles first.
    after.record(PIPELINE, "reject", None, "another candidate failed its gates")
    [(intent, outcome, _)] = [o for o in after.intent_outcomes(PIPELINE) if o[0].id == intent_id]
    assert outcome == ("completed" if moved else "rolled_back")
    assert after.consistency(PIPELINE) == [] and after.open_intents() == []
    champion = v2 if moved else v1
    assert after.champion(PIPELINE) == champion
    assert str(getattr(tracking.version_by_alias(PIPELINE, CHAMPION), "version", "")) == champion
    # A promoted challenger loses that alias, even when the promotion was completed for it.
    challenger = tracking.version_by_alias(PIPELINE, CHALLENGER)
    assert (challenger is None) is moved
    actions = [(d.action, d.version) for d in after.history(PIPELINE)]
    assert actions == [
        ("promote", v1),
        ("challenger", v2),
        *([("promote", v2)] if moved else []),
        ("reject", None),
    ]
