"""Atomic file writes and content hashing shared by every stage.

Every file is written to a temporary name beside its target and renamed into place, so a
reader sees the old file or the new one, never half of one. A writer killed mid-write (SIGKILL,
out of memory) leaves its temporary file behind; the name says whose it was
(``.<target>.<host>-<pid>-<random>.tmp``), and the next writer in that directory removes the
temporary files of writers on this host that are gone (:func:`remove_stale_temp_files`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import psutil

from ml_platform.home import platform_home

TEMP_SUFFIX = ".tmp"
# A process started this long after a temp file was last written cannot have written it.
PID_REUSE_SLACK_SECONDS = 1.0
_TEMP_NAME = re.compile(r"^\..*\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")
_SPILL_NAME = re.compile(r"^(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{8}$")
DUCKDB_MEMORY_LIMIT_ENV = "ML_PLATFORM_DUCKDB_MEMORY_LIMIT"
# DuckDB's own default is 80% of RAM for each instance: the run process holds its frames beside
# it, and a run, its dbt build and another run may each have one open at once. 4GB covers the
# largest query (a training-set chunk, the dbt model's windows at 1e7 rows); beyond it, spill.
DUCKDB_MEMORY_LIMIT = "4GB"


def _host() -> str:
    """This machine, short: a pid means something only on the host (pid namespace) it ran on."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temp_file(directory: Path, stem: str) -> Path:
    """Create an empty temporary file in ``directory`` whose name carries this process's pid."""
    directory.mkdir(parents=True, exist_ok=True)
    while True:
        path = directory / f".{stem}.{_host()}-{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            return path
        except FileExistsError:
            continue


def _writer_gone(pid: int, written_at: float) -> bool:
    """True when no process with ``pid`` runs here, or the one that does is a zombie or started
    after the file was last written (the pid was reused)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True
        return proc.create_time() > written_at + PID_REUSE_SLACK_SECONDS
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # exists but cannot be inspected (another user): assume it writes
        return False


def remove_stale_temp_files(directory: Path) -> list[Path]:
    """Remove the temporary files in ``directory`` left by writers of this host that are gone;
    files of live writers and of other hosts stay. Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    host = _host()
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or match["host"] != host or int(match["pid"]) == os.getpid():
            continue
        try:
            written_at = entry.stat(follow_symlinks=False).st_mtime
            if _writer_gone(int(match["pid"]), written_at):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except FileNotFoundError:  # another writer removed it first
            continue
    return removed


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it into place only if the block succeeds."""
    remove_stale_temp_files(target.parent)
    tmp_path = temp_file(target.parent, target.name)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def duckdb_memory_limit() -> str:
    """The memory limit of every DuckDB the platform opens, in DuckDB's syntax ('4GB', '512MB'):
    ``ML_PLATFORM_DUCKDB_MEMORY_LIMIT``, read when a connection opens."""
    return os.environ.get(DUCKDB_MEMORY_LIMIT_ENV) or DUCKDB_MEMORY_LIMIT


@contextmanager
def duckdb_spill_directory() -> Iterator[Path]:
    """A spill directory of its own for one DuckDB instance, under the platform home
    (``tmp/duckdb/<host>-<pid>-<random>``): instances sharing one (DuckDB's default is ``.tmp``
    of the current directory) overwrite and delete each other's files (duckdb#15173). DuckDB
    makes it on its first spill and removes it on close; so does this, after the block, and the
    next instance removes those of processes that are gone (killed mid-spill)."""
    root = platform_home().root / "tmp" / "duckdb"
    root.mkdir(parents=True, exist_ok=True)  # DuckDB creates the last level only
    _remove_stale_spill_directories(root)
    path = root / f"{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _remove_stale_spill_directories(root: Path) -> None:
    host = _host()
    for entry in os.scandir(root):
        match = _SPILL_NAME.match(entry.name)
        if match is None or match["host"] != host or int(match["pid"]) == os.getpid():
            continue
        try:
            if _writer_gone(int(match["pid"]), entry.stat(follow_symlinks=False).st_mtime):
                shutil.rmtree(entry.path, ignore_errors=True)
        except FileNotFoundError:  # removed by another instance first
            continue


@contextmanager
def duckdb_session(
    database: Path | None = None, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection (in memory, or to ``database``) in UTC (naive timestamps are UTC
    everywhere here), within the platform's memory limit and spilling to a directory of its own
    under the home (not the file's ``.tmp`` beside it, which two readers would share)."""
    with duckdb_spill_directory() as spill:
        con = duckdb.connect(
            str(database) if database else ":memory:",
            read_only=read_only,
            config={"memory_limit": duckdb_memory_limit(), "temp_directory": str(spill)},
        )
        try:
            con.execute("SET TimeZone = 'UTC'; SET enable_progress_bar = false")
            yield con
        finally:
            con.close()


def write_parquet(df: pd.DataFrame, target: Path) -> Path:
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)
    return target


def write_parquet_hashed(
    df: pd.DataFrame, directory: Path, name: Callable[[str], str]
) -> tuple[Path, str]:
    """Write ``df`` as parquet and take its ``frame_hash`` at the same time: the parquet
    encoder releases the GIL, so the hash runs beside it. The file, named ``name(hash)``
    under ``directory``, appears only once both have succeeded."""
    remove_stale_temp_files(directory)
    tmp = temp_file(directory, "parquet")
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="write-parquet") as pool:
            written = pool.submit(df.to_parquet, tmp, index=False)
            version = frame_hash(df)
            written.result()
        target = directory / name(version)
        os.replace(tmp, target)
        return target, version
    finally:
        tmp.unlink(missing_ok=True)


def write_json(data: Any, target: Path) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    return target


def write_text(text: str, target: Path) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return target


def frame_hash(df: pd.DataFrame) -> str:
    """Content hash of a frame (values, column names and order): the data version."""
    digest = hashlib.sha256()
    digest.update("|".join(f"{c}:{t}" for c, t in df.dtypes.astype(str).items()).encode())
    digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def file_hash(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:16]
