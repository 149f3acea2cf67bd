"""Temporary files of writers killed mid-write: the old table stays whole, and the next writer in
that directory removes what the dead writer left (and nothing of a live writer's)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd

from ml_platform.ingest import io

_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ml_platform.ingest import io
    target, marker = Path(sys.argv[1]), Path(sys.argv[2])
    with io.atomic_path(target) as tmp:
        tmp.write_bytes(b'{"half": ')
        marker.write_text(str(tmp))
        time.sleep(300)
""")


def _killed_mid_write(target: Path, tmp_path: Path) -> tuple[Path, int]:
    """A writer process SIGKILLed while its temporary file holds half a table."""
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target), str(marker)])
    deadline = time.monotonic() + 60
    while not marker.exists() or not marker.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, "the writer never wrote"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return Path(marker.read_text()), proc.pid


def test_a_writer_killed_mid_write_leaves_the_old_table_and_the_next_writer_cleans_up(
    tmp_path: Path,
) -> None:
    target = tmp_path / "warehouse" / "report.json"
    io.write_json({"version": 1}, target)
    stray, pid = _killed_mid_write(target, tmp_path)

    assert stray.exists() and stray.parent == target.parent and f"-{pid}-" in stray.name
    assert json.loads(target.read_text()) == {"version": 1}  # not torn
    io.write_json({"version": 2}, target)  # the next writer in the directory
    assert not stray.exists()
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]
    assert json.loads(target.read_text()) == {"version": 2}


def test_the_parquet_writer_cleans_up_too(tmp_path: Path) -> None:
    directory = tmp_path / "training_sets"
    stray, _ = _killed_mid_write(directory / "ignored.parquet", tmp_path)
    path, _ = io.write_parquet_hashed(
        pd.DataFrame({"x": [1, 2]}), directory, lambda h: f"{h}.parquet"
    )
    assert not stray.exists() and [p.name for p in directory.iterdir()] == [path.name]


def test_temp_files_of_live_writers_and_of_other_hosts_stay(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    ended = subprocess.Popen(["true"])
    ended.wait()
    try:
        host = io._host()
        live = tmp_path / f".a.parquet.{host}-{sleeper.pid}-00000001.tmp"
        reused = tmp_path / f".b.parquet.{host}-{sleeper.pid}-00000002.tmp"
        dead = tmp_path / f".c.parquet.{host}-{ended.pid}-00000003.tmp"
        elsewhere = (
            tmp_path / f".d.parquet.{'0' * 8 if host != '0' * 8 else '1' * 8}-"
            f"{ended.pid}-00000004.tmp"
        )
        unknown = tmp_path / ".someone-elses.tmp"
        for path in (live, reused, dead, elsewhere, unknown):
            path.write_bytes(b"partial")
        # Written an hour before the process now holding that pid started: the pid was reused.
        an_hour_ago = time.time() - 3600
        os.utime(reused, (an_hour_ago, an_hour_ago))

        removed = io.remove_stale_temp_files(tmp_path)
        assert sorted(removed) == sorted([reused, dead])
        assert live.exists() and elsewhere.exists() and unknown.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
