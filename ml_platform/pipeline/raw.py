"""Raw data: the landed files a pipeline's source glob matches, snapshotted with a content hash."""

from __future__ import annotations

import glob
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import pandas as pd

from ml_platform.core.io import file_hash
from ml_platform.home import PROJECT_ROOT, PlatformHome
from ml_platform.spec import PipelineSpec


class RawDataError(ValueError):
    """A landed file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class RawSnapshot:
    files: list[str]
    bytes: int
    data_version: str

    def to_dict(self) -> dict:
        return asdict(self)


def snapshot(spec: PipelineSpec, home: PlatformHome) -> RawSnapshot:
    pattern = spec.source_path(home.root, PROJECT_ROOT)
    files = sorted(glob.glob(pattern))
    if not files:
        raise RawDataError(f"no file matches the source path '{pattern}' of '{spec.name}'")
    digest = hashlib.sha256()
    total = 0
    for name in files:
        path = Path(name)
        total += path.stat().st_size
        digest.update(f"{path.name}:{file_hash(path)}".encode())
    return RawSnapshot(files=files, bytes=total, data_version=digest.hexdigest()[:16])


def _read_one(con: duckdb.DuckDBPyConnection, path: str, fmt: str) -> pd.DataFrame:
    if Path(path).stat().st_size == 0:
        raise RawDataError(f"{path}: the file is empty")
    try:
        if fmt == "csv":
            return con.execute("SELECT * FROM read_csv(?, header=true, auto_detect=true)",
                               [path]).df()
        return con.execute("SELECT * FROM read_parquet(?)", [path]).df()
    except (duckdb.Error, OSError) as exc:
        kind = "CSV" if fmt == "csv" else "Parquet"
        raise RawDataError(f"{path}: not a readable {kind} file: {exc}") from None


def read(spec: PipelineSpec, snap: RawSnapshot) -> pd.DataFrame:
    """All rows of the snapshot's files, with ``_source_file`` naming the file of each row."""
    fmt = spec.source.file_format
    reader = ("read_csv(?, header=true, auto_detect=true, union_by_name=true, filename=true)"
              if fmt == "csv" else "read_parquet(?, union_by_name=true, filename=true)")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for path in snap.files:
            if Path(path).stat().st_size == 0:
                raise RawDataError(f"{path}: the file is empty")
        try:
            frame = con.execute(f"SELECT * FROM {reader}", [snap.files]).df()
        except (duckdb.Error, OSError):
            for path in snap.files:  # find and name the file that breaks the read
                _read_one(con, path, fmt)
            raise
    finally:
        con.close()
    frame["filename"] = frame["filename"].map(lambda f: Path(f).name)
    return frame.rename(columns={"filename": "_source_file"})
