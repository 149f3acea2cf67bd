"""Atomic file writes and content hashing shared by every stage."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it into place only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def duckdb_session() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection in UTC (naive timestamps are UTC everywhere here)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'; SET enable_progress_bar = false")
        yield con
    finally:
        con.close()


def write_parquet(df: pd.DataFrame, target: Path) -> Path:
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)
    return target


def write_parquet_hashed(df: pd.DataFrame, directory: Path, name: Callable[[str], str]
                         ) -> tuple[Path, str]:
    """Write ``df`` as parquet and take its ``frame_hash`` at the same time: the parquet
    encoder releases the GIL, so the hash runs beside it. The file, named ``name(hash)``
    under ``directory``, appears only once both have succeeded."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".parquet-", suffix=".tmp")
    os.close(fd)
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="write-parquet") as pool:
            written = pool.submit(df.to_parquet, tmp, index=False)
            version = frame_hash(df)
            written.result()
        target = directory / name(version)
        os.replace(tmp, target)
        return target, version
    finally:
        Path(tmp).unlink(missing_ok=True)


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
