"""The rollout store (refusals, history, append-only) and the A/B split (proportions at the
declared share, the same arm for an entity across calls and processes), without a model."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ml_platform.home import PlatformHome
from ml_platform.serving.rollout import (
    RolloutRefused,
    RolloutStore,
    rollout_db,
    serves_challenger,
)


@pytest.fixture
def store(tmp_path: Path) -> RolloutStore:
    return RolloutStore(PlatformHome(tmp_path / "home"), "loan_default")


def test_nothing_recorded_reads_as_off_without_creating_the_file(store: RolloutStore) -> None:
    assert store.current() is None and store.history() == []
    assert not store.path.exists()


def test_start_stop_and_history(store: RolloutStore) -> None:
    first = store.start("shadow", 0.1, "1", "2", "alice")
    assert store.current() == first and first.active
    assert (first.mode, first.champion_version, first.challenger_version) == ("shadow", "1", "2")
    stopped = store.stop("enough shadow traffic", "bob")
    assert stopped is not None and stopped.id == first.id
    assert stopped.stop_reason == "enough shadow traffic" and stopped.stopped_by == "bob"
    assert stopped.stopped_at is not None and not stopped.active
    assert store.current() is None
    assert store.stop("again", "bob") is None  # nothing active: nothing recorded
    second = store.start("ab", 0.25, "1", "3", "alice")
    assert second.id > first.id and second.traffic_share == 0.25
    assert [r.id for r in store.history()] == [first.id, second.id]
    assert store.history()[0] == stopped
    assert rollout_db(PlatformHome(store.path.parents[3]), "loan_default") == store.path


@pytest.mark.parametrize(
    ("mode", "share", "champion", "challenger", "words"),
    [
        ("shadow", 0.1, "1", None, "no challenger alias"),
        ("shadow", 0.1, "1", "", "no challenger alias"),
        ("shadow", 0.1, None, "2", "no champion alias"),
        ("ab", 0.1, "3", "3", "is the champion (version 3)"),
        ("off", 0.1, "1", "2", "cannot be started"),
        ("canary", 0.1, "1", "2", "use 'shadow' or 'ab'"),
        ("ab", 0.0, "1", "2", "needs 0 < traffic_share < 1"),
        ("ab", 1.0, "1", "2", "needs 0 < traffic_share < 1"),
        ("shadow", 1.5, "1", "2", "must be between 0 and 1"),
    ],
)
def test_refusals_name_the_problem(
    store: RolloutStore,
    mode: str,
    share: float,
    champion: str | None,
    challenger: str | None,
    words: str,
) -> None:
    with pytest.raises(RolloutRefused, match=words.replace("(", r"\(").replace(")", r"\)")):
        store.start(mode, share, champion, challenger, "alice")
    assert store.current() is None


def test_a_second_start_is_refused_while_one_is_active(store: RolloutStore) -> None:
    active = store.start("shadow", 0.1, "1", "2", "alice")
    with pytest.raises(RolloutRefused, match=r"already has an active shadow rollout .* stop it"):
        store.start("ab", 0.5, "1", "2", "bob")
    assert store.current() == active and len(store.history()) == 1


def test_racing_starts_record_exactly_one(store: RolloutStore) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def start(i: int) -> None:
        barrier.wait()
        try:
            RolloutStore(PlatformHome(store.path.parents[3]), "loan_default").start(
                "shadow", 0.1, "1", "2", f"actor{i}"
            )
            outcomes.append("ok")
        except RolloutRefused:
            outcomes.append("refused")

    threads = [threading.Thread(target=start, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] + ["refused"] * 7
    assert len(store.history()) == 1


def test_the_history_is_append_only(store: RolloutStore) -> None:
    store.start("shadow", 0.1, "1", "2", "alice")
    store.stop("done", "alice")
    with sqlite3.connect(store.path) as con:
        for sql in (
            "UPDATE rollouts SET challenger_version = '9'",
            "DELETE FROM rollouts",
            "DELETE FROM rollout_stops",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                con.execute(sql)
        with pytest.raises(sqlite3.IntegrityError):  # a rollout is stopped once
            con.execute(
                "INSERT INTO rollout_stops VALUES (1, '2026-01-01T00:00:00+00:00', 'x', 'y')"
            )


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_the_split_matches_the_share(share: float) -> None:
    n = 20_000
    hits = sum(serves_challenger("loan_default", 7, k, share) for k in range(n))
    sigma = (n * share * (1 - share)) ** 0.5
    assert abs(hits - n * share) < 4 * sigma, (hits, n * share)


def test_the_split_is_sticky_and_salted_by_rollout() -> None:
    keys = list(range(2_000))
    arms = [serves_challenger("loan_default", 7, k, 0.3) for k in keys]
    assert arms == [serves_challenger("loan_default", 7, k, 0.3) for k in keys]
    # A larger share keeps every entity already in the challenger's arm.
    wider = [serves_challenger("loan_default", 7, k, 0.6) for k in keys]
    assert all(w for a, w in zip(arms, wider, strict=True) if a)
    # Another rollout draws another split (about 30% + 30% - 9% differ... at least some).
    other = [serves_challenger("loan_default", 8, k, 0.3) for k in keys]
    assert sum(a != o for a, o in zip(arms, other, strict=True)) > 500
    # Another process with another hash seed: the same arms (not Python's salted hash()).
    code = (
        "from ml_platform.serving.rollout import serves_challenger as s;"
        "print(''.join('1' if s('loan_default', 7, k, 0.3) else '0' for k in range(2000)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.strip()
    assert out == "".join("1" if a else "0" for a in arms)
