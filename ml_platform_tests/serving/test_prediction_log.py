"""The prediction log on its own (no model): rows round-trip with the declared columns and
types, appends never block and count what a full buffer drops, readers see whole files only
(a writer SIGKILLed mid-stream leaves no torn file), and bad rows are refused by name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ml_platform.home import PlatformHome
from ml_platform.serving.prediction_log import (
    COLUMNS,
    PredictionLog,
    predictions_dir,
    read_predictions,
)


def _rows(n: int, arm: str = "champion", request_id: str = "r1", **extra: Any) -> list[dict]:
    return [
        {
            "request_id": request_id,
            "row": i,
            "entity": 1000 + i,
            "model_version": "1" if arm == "champion" else "2",
            "arm": arm,
            "mode": "shadow",
            "served": arm == "champion",
            "score": i / max(n, 1),
            "label": int(i % 2),
            "latency_ms": 0.5,
            "features": {"amount": 10.0 * i, "purpose": "car", "gap": float("nan")},
            **extra,
        }
        for i in range(n)
    ]


@pytest.fixture
def home(tmp_path: Path) -> PlatformHome:
    return PlatformHome(tmp_path / "home")


def test_rows_round_trip_with_the_declared_columns(home: PlatformHome) -> None:
    with PredictionLog(home, "p", flush_seconds=0.1) as plog:
        plog.append(_rows(3) + _rows(3, arm="challenger"))
        plog.append(_rows(2, label=None, request_id="r2"))
    frame = read_predictions(home, "p")
    assert tuple(frame.columns) == COLUMNS
    assert len(frame) == 8
    assert str(frame["logged_at"].dtype) == "datetime64[us, UTC]"
    assert str(frame["row"].dtype) == "int64" and str(frame["label"].dtype) == "Int64"
    assert frame["served"].dtype == bool and frame["score"].dtype == "float64"
    assert frame.loc[frame["request_id"] == "r2", "label"].isna().all()
    assert set(frame["arm"]) == {"champion", "challenger"}
    assert frame["entity"].iloc[0] == "1000"  # entity keys are logged as text
    # NaN is not JSON: a missing feature value is logged as null.
    assert frame["features"].iloc[0] == '{"amount":0.0,"gap":null,"purpose":"car"}'
    day = datetime.now(UTC).date().isoformat()
    files = list(predictions_dir(home, "p").glob(f"date={day}/*.parquet"))
    assert files and all(f.name.startswith(f"{os.getpid()}-") for f in files)


def test_the_background_thread_flushes_without_close(home: PlatformHome) -> None:
    plog = PredictionLog(home, "p", flush_rows=5, flush_seconds=30)
    try:
        plog.append(_rows(5))  # flush_rows reached: the thread is woken, not the timer
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and plog.written_rows < 5:
            time.sleep(0.05)
        assert plog.written_rows == 5
        assert len(read_predictions(home, "p")) == 5
    finally:
        plog.close()


def test_a_full_buffer_drops_and_counts_instead_of_blocking(home: PlatformHome) -> None:
    dropped: list[tuple[str, int]] = []
    plog = PredictionLog(
        home,
        "p",
        flush_rows=100,
        flush_seconds=60,
        max_buffer_rows=100,
        on_drop=lambda reason, n: dropped.append((reason, n)),
    )
    plog._write_lock.acquire()  # a writer stuck on a slow disk: nothing leaves the buffer
    try:
        started = time.perf_counter()
        for _ in range(50):
            plog.append(_rows(10))
        elapsed = time.perf_counter() - started
    finally:
        plog._write_lock.release()
    plog.close()
    assert elapsed < 1.0, f"append blocked for {elapsed:.2f}s"
    assert plog.dropped_rows == 400 and sum(n for _, n in dropped) == 400
    assert {reason for reason, _ in dropped} == {"buffer_full"}
    assert len(read_predictions(home, "p")) == 100
    plog.append(_rows(3))  # after close: counted, not raised
    assert plog.dropped_rows == 403 and dropped[-1] == ("closed", 3)


def test_bad_rows_are_refused_by_name(home: PlatformHome) -> None:
    with PredictionLog(home, "p") as plog:
        bad = _rows(1)
        del bad[0]["arm"]
        with pytest.raises(ValueError, match=r"missing \['arm'\]"):
            plog.append(bad)
        plog.append(_rows(2, arm="canary"))  # a value outside the schema: not written, counted
        assert plog.flush() == 0
        assert plog.failed_rows == 2
    assert read_predictions(home, "p").empty


def test_since_filters_and_must_be_aware(home: PlatformHome) -> None:
    old = datetime.now(UTC) - timedelta(days=3)
    with PredictionLog(home, "p") as plog:
        plog.append(_rows(2, logged_at=old, request_id="old"))
        plog.append(_rows(2, request_id="new"))
    assert len(read_predictions(home, "p")) == 4
    recent = read_predictions(home, "p", since=datetime.now(UTC) - timedelta(days=1))
    assert set(recent["request_id"]) == {"new"}
    parts = sorted(p.name for p in predictions_dir(home, "p").iterdir())
    assert parts == sorted({f"date={old.date()}", f"date={datetime.now(UTC).date()}"})
    with pytest.raises(ValueError, match="has no timezone"):
        read_predictions(home, "p", since=datetime(2026, 1, 1))


def test_an_empty_log_reads_as_an_empty_frame(home: PlatformHome) -> None:
    frame = read_predictions(home, "nothing_yet")
    assert frame.empty and tuple(frame.columns) == COLUMNS


WRITER = textwrap.dedent(
    """
    import io, sys, time
    from pathlib import Path
    import pyarrow.parquet as pq
    from ml_platform.home import PlatformHome
    from ml_platform.serving.prediction_log import PredictionLog

    real_write = pq.write_table

    def slow_disk(table, where, **kwargs):
        # A slow disk: the file grows in 20 pieces over ~60 ms, so a kill lands mid-write.
        buffer = io.BytesIO()
        real_write(table, buffer, **kwargs)
        data = buffer.getvalue()
        step = len(data) // 20 + 1
        print("writing", flush=True)
        with open(where, "wb") as out:
            for i in range(0, len(data), step):
                out.write(data[i : i + step])
                out.flush()
                time.sleep(0.003)

    pq.write_table = slow_disk
    rows = [dict(request_id="r", row=i, entity=i, model_version="1", arm="champion",
                 mode="off", served=True, score=0.5, label=1, latency_ms=1.0,
                 features={"x": "y" * 50}) for i in range(ROWS)]
    plog = PredictionLog(PlatformHome(Path(sys.argv[1])), "p", flush_rows=ROWS,
                         flush_seconds=0.001)
    print("ready", flush=True)
    while True:  # about one file per append: the thread spends its time writing
        plog.append(rows)
        time.sleep(0.02)
    """
).replace("ROWS", "200")


def test_a_killed_writer_leaves_no_torn_file(home: PlatformHome) -> None:
    """SIGKILL a process writing files back to back on a slow disk: every file a reader sees
    is whole (only temporaries, which readers skip, may be cut). Written in place instead of
    renamed, the same kill leaves a torn file that fails this test (checked once)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(home.root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        folder = predictions_dir(home, "p")
        for _ in range(6):  # five files written, the sixth being written
            assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.02)  # a third of the way into the sixth file's ~60 ms
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    files = [p for p in folder.rglob("*.parquet") if not p.name.startswith(".")]
    assert len(files) >= 5
    total = 0
    for f in files:
        rows = pq.read_table(f).num_rows  # reads every page: a torn file would raise
        assert rows > 0 and rows % 200 == 0, (f, rows)  # whole appends only
        total += rows
    frame = read_predictions(home, "p")
    assert isinstance(frame, pd.DataFrame) and len(frame) == total
