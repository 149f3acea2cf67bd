"""The prediction log on PostgreSQL (the production profile), in a fresh database of its own:
rows read back with exactly the columns, types and values the Parquet store gives; batches
from two processes all arrive; the table refuses UPDATE, DELETE and TRUNCATE; a writer
SIGKILLed in the middle of a batch leaves none of that batch (one transaction per batch)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest

from ml_platform.home import PlatformHome
from ml_platform.profile import EMBEDDED
from ml_platform.serving.prediction_log import COLUMNS, PredictionLog, read_predictions
from ml_platform.serving.prediction_store import (
    PREDICTIONS_DB_ENV,
    ParquetFiles,
    PostgresPredictions,
)
from ml_platform_tests.production.conftest import PG, ProductionEnv, drop_databases

pytestmark = pytest.mark.production
T0 = datetime(2026, 3, 1, 23, 59, 58, 123456, tzinfo=UTC)  # batches cross midnight


def _rows(n: int, arm: str = "champion", request_id: str = "r1", **extra: Any) -> list[dict]:
    return [
        {
            "request_id": request_id,
            "row": i,
            "logged_at": T0 + timedelta(seconds=i),
            "entity": 1000 + i,
            "model_version": "1" if arm == "champion" else "2",
            "arm": arm,
            "mode": "shadow",
            "served": arm == "champion",
            "score": None if i == 1 else i / max(n, 1),
            "label": None if i == 2 else int(i % 2),
            "latency_ms": 0.5 + i,
            "features": {"amount": 10.0 * i, "purpose": "car", "gap": float("nan")},
            **extra,
        }
        for i in range(n)
    ]


@pytest.fixture
def pg_log(production: ProductionEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The production profile with the prediction log in a fresh database (its name)."""
    name = f"mlp_test_{uuid.uuid4().hex[:10]}_predictions"
    monkeypatch.setenv(PREDICTIONS_DB_ENV, name)
    try:
        yield name
    finally:
        drop_databases([name])


def _count(dbname: str, pipeline: str) -> int:
    with psycopg.connect(**{**PG, "dbname": dbname}) as con:  # type: ignore[arg-type]
        row = con.execute(
            "SELECT count(*) FROM predictions WHERE pipeline = %s", [pipeline]
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_round_trip_matches_the_parquet_store(
    production: ProductionEnv, pg_log: str, tmp_path: Path
) -> None:
    rows = _rows(5) + _rows(4, arm="challenger", request_id="r2")
    with PredictionLog(production.home, "p", flush_seconds=30) as plog:  # flushed by close
        assert isinstance(plog.store, PostgresPredictions)
        plog.append([dict(r) for r in rows])
        plog.append(_rows(3, request_id="r3"))
    with PredictionLog(production.home, "q", flush_seconds=0.1) as other:  # same table
        other.append(_rows(3, request_id="q1"))
    assert plog.written_rows == 12 and plog.failed_rows == 0 and plog.dropped_rows == 0
    assert plog.files_written == 2  # one transaction per day: the rows cross midnight

    embedded = PlatformHome(tmp_path / "embedded_home", profile=EMBEDDED)
    with PredictionLog(embedded, "p", flush_seconds=30) as flog:
        assert isinstance(flog.store, ParquetFiles)
        flog.append([dict(r) for r in rows])
        flog.append(_rows(3, request_id="r3"))

    on_pg, on_files = read_predictions(production.home, "p"), read_predictions(embedded, "p")
    assert tuple(on_pg.columns) == COLUMNS and len(on_pg) == 12
    assert dict(on_pg.dtypes) == dict(on_files.dtypes)
    pd.testing.assert_frame_equal(on_pg, on_files)
    assert on_pg["score"].isna().sum() == 3 and on_pg["label"].isna().sum() == 3
    assert set(read_predictions(production.home, "q")["request_id"]) == {"q1"}

    since = T0 + timedelta(seconds=3)
    pd.testing.assert_frame_equal(
        read_predictions(production.home, "p", since), read_predictions(embedded, "p", since)
    )
    assert read_predictions(production.home, "never_logged").empty


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from ml_platform.home import PlatformHome
    from ml_platform.serving.prediction_log import PredictionLog

    name, batches, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    home = PlatformHome(Path(sys.argv[4]))
    with PredictionLog(home, "p", flush_rows=size, flush_seconds=30) as log:
        for b in range(batches):
            log.append([
                {"request_id": f"{name}-{b}", "row": i, "entity": i, "model_version": "1",
                 "arm": "champion", "mode": "off", "served": True, "score": 0.5,
                 "features": {}}
                for i in range(size)
            ])
            log.flush()
    assert log.written_rows == batches * size, log.written_rows
    """
)


def test_batches_from_two_processes_all_arrive(production: ProductionEnv, pg_log: str) -> None:
    home = str(production.home.root)
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, name, "5", "200", home])
        for name in ("a", "b")
    ]
    for proc in procs:
        assert proc.wait(timeout=300) == 0
    frame = read_predictions(production.home, "p")
    assert len(frame) == 2000
    assert not frame.duplicated(["request_id", "row"]).any()
    per_writer = frame["request_id"].str.split("-").str[0].value_counts()
    assert per_writer.to_dict() == {"a": 1000, "b": 1000}
    assert frame.groupby("request_id").size().eq(200).all()  # whole batches


def test_the_table_is_append_only(production: ProductionEnv, pg_log: str) -> None:
    with PredictionLog(production.home, "p", flush_seconds=0.1) as plog:
        plog.append(_rows(3))
    with psycopg.connect(**{**PG, "dbname": pg_log}, autocommit=True) as con:  # type: ignore[arg-type]
        for statement in (
            "UPDATE predictions SET score = 0",
            "DELETE FROM predictions",
            "TRUNCATE predictions",
        ):
            with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
                con.execute(statement)
    assert _count(pg_log, "p") == 3


_KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from ml_platform.home import PlatformHome
    from ml_platform.serving.prediction_log import PredictionLog

    def rows(request_id, n):
        return [
            {"request_id": request_id, "row": i, "entity": i, "model_version": "1",
             "arm": "champion", "mode": "off", "served": True, "score": 0.5,
             "features": {"x": i}}
            for i in range(n)
        ]

    log = PredictionLog(PlatformHome(Path(sys.argv[1])), "p", flush_rows=10**6, flush_seconds=3600,
                        max_buffer_rows=10**6)
    log.append(rows("first", 10))
    assert log.flush() == 10
    print("committed", flush=True)
    log.append(rows("big", 400_000))
    log.flush()  # killed while its COPY streams
    print("finished", flush=True)
    """
)


def _copy_backends(dbname: str) -> list[int]:
    with psycopg.connect(**PG, autocommit=True) as con:  # type: ignore[arg-type]
        rows = con.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = %s AND query LIKE 'COPY predictions%%'",
            [dbname],
        ).fetchall()
    return [int(r[0]) for r in rows]


def test_a_writer_killed_mid_batch_leaves_no_partial_batch(
    production: ProductionEnv, pg_log: str
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(production.home.root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "committed"
        deadline = time.monotonic() + 120
        while not _copy_backends(pg_log):  # the big batch's COPY has started
            assert proc.poll() is None, "the writer ended before its COPY was seen"
            assert time.monotonic() < deadline, "no COPY seen in 120 s"
            time.sleep(0.02)
        time.sleep(0.5)  # rows are streaming
        assert _count(pg_log, "p") == 10  # not visible before the commit either
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout.read() == ""  # it never finished the batch
    deadline = time.monotonic() + 30
    while _copy_backends(pg_log):  # the server notices the closed socket and rolls back
        assert time.monotonic() < deadline, "the killed writer's COPY is still on the server"
        time.sleep(0.1)
    assert _count(pg_log, "p") == 10
    frame = read_predictions(production.home, "p")
    assert set(frame["request_id"]) == {"first"} and len(frame) == 10


def test_postgres_down_counts_the_batch_as_not_written(
    production: ProductionEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """The service keeps answering: a batch the database refuses is dropped and counted (as
    the Parquet writer counts a full disk), and the log line names the store and the fix."""
    from ml_platform_tests.production.test_redis_password import _free_port

    down = PostgresPredictions("p", "127.0.0.1", _free_port(), "postgres", "mlp_never_created")
    drops: list[tuple[str, int]] = []
    plog = PredictionLog(
        production.home,
        "p",
        flush_seconds=30,
        store=down,
        on_drop=lambda r, n: drops.append((r, n)),
    )
    started = time.monotonic()
    plog.append(_rows(4))
    assert time.monotonic() - started < 0.5  # append never waits for the database
    plog.close()
    assert (plog.written_rows, plog.failed_rows) == (0, 4)
    assert drops == [("write_failed", 2)] * 2  # one batch per day: the rows cross midnight
    assert "ML_PLATFORM_PG_HOST" in caplog.text and PREDICTIONS_DB_ENV in caplog.text
    assert production.password not in caplog.text
