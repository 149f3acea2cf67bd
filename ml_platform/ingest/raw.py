"""Raw data: the landed files a pipeline's source glob matches, snapshotted with a content hash.

Reading goes through DuckDB and Arrow (Arrow keeps timestamp time zones, which the data contract
checks). Every way a file can be bad (missing, empty, truncated, not the declared format, wrong
delimiter, wrong encoding) raises RawDataError naming the file; nothing is written on the way.
"""

from __future__ import annotations

import glob
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import pandas as pd

from ml_platform.home import PROJECT_ROOT, PlatformHome
from ml_platform.ingest.io import duckdb_session, file_hash
from ml_platform.spec import PipelineSpec

DELIMITERS = (";", "\t", "|")


class RawDataError(ValueError):
    """A landed file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class RawSnapshot:
    files: list[str]
    bytes: int
    data_version: str

    def to_dict(self) -> dict:
        return asdict(self)


def _matching(spec: PipelineSpec, home: PlatformHome) -> list[str]:
    pattern = spec.source_path(home.root, PROJECT_ROOT)
    files = sorted(glob.glob(pattern))
    if not files:
        raise RawDataError(f"no file matches the source path '{pattern}' of '{spec.name}'")
    return files


def listing_version(spec: PipelineSpec, home: PlatformHome) -> tuple[str, int, int]:
    """(version, files, bytes) of the landed files from their names, sizes and modification
    times, without reading a byte: what the raw asset's observation and the new-data sensor
    compare. The content hash is taken once, by validation (``snapshot``)."""
    digest = hashlib.sha256()
    files = _matching(spec, home)
    total = 0
    for name in files:
        stat = Path(name).stat()
        total += stat.st_size
        digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16], len(files), total


def snapshot(spec: PipelineSpec, home: PlatformHome) -> RawSnapshot:
    """The landed files with a hash of their names and contents (the batch's data version)."""
    files = _matching(spec, home)
    digest = hashlib.sha256()
    total = 0
    for name in files:
        path = Path(name)
        total += path.stat().st_size
        digest.update(f"{path.name}:{file_hash(path)}".encode())
    return RawSnapshot(files=files, bytes=total, data_version=digest.hexdigest()[:16])


def file_format(path: str | Path) -> str:
    """'csv' or 'parquet' from the file name (``.csv``, ``.csv.gz``, ``.tsv``; else Parquet)."""
    return "csv" if str(path).lower().endswith((".csv", ".csv.gz", ".tsv")) else "parquet"


def _reader(fmt: str) -> str:
    if fmt == "csv":
        return (
            "read_csv($files, header=true, auto_detect=true, union_by_name=true, "
            "filename='_source_file')"
        )
    # A named filename column: a user column called 'filename' must survive the read.
    return "read_parquet($files, union_by_name=true, filename='_source_file')"


def _check_file(path: str) -> None:
    file = Path(path)
    if not file.is_file():
        raise RawDataError(f"{path}: the file does not exist (moved or deleted after listing?)")
    if file.stat().st_size == 0:
        raise RawDataError(f"{path}: the file is empty")


def _query(con: duckdb.DuckDBPyConnection, files: list[str], fmt: str) -> pd.DataFrame:
    table = con.sql(f"SELECT * FROM {_reader(fmt)}", params={"files": files}).to_arrow_table()
    return table.to_pandas()


def _delimited_header(frame: pd.DataFrame) -> str | None:
    """A column name that still contains a delimiter: the file was split on the wrong one."""
    return next((str(c) for c in frame.columns if any(d in str(c) for d in DELIMITERS)), None)


def _check_csv(path: str, frame: pd.DataFrame) -> None:
    column = _delimited_header(frame)
    if column is not None:
        raise RawDataError(
            f"{path}: read a column named '{column[:80]}': wrong delimiter? "
            f"(expected comma-separated values with a header row)"
        )
    if frame.empty:
        with Path(path).open("rb") as fh:
            lines = sum(1 for line in fh if line.strip())
        if lines > 1:  # the sniffer gave up on ragged lines and returned no rows
            raise RawDataError(
                f"{path}: {lines} lines but no row could be parsed: ragged "
                f"lines or a wrong delimiter?"
            )


def _check_csvs(con: duckdb.DuckDBPyConnection, files: list[str], frame: pd.DataFrame) -> None:
    if _delimited_header(frame) is None and not frame.empty:
        return
    for path in files:  # only when something looks wrong: find the file it came from
        _check_csv(path, frame if len(files) == 1 else _read_one(con, path, "csv"))


def _check_timezones(con: duckdb.DuckDBPyConnection, files: list[str]) -> None:
    """Reading tz-naive and tz-aware timestamps together would silently take the naive ones as
    UTC; name a file whose timestamps disagree with the majority of files instead."""
    rows = con.sql(
        "SELECT file_name, name, logical_type FROM parquet_schema($files) "
        "WHERE logical_type LIKE 'TimestampType%'",
        params={"files": files},
    ).fetchall()
    kinds: dict[str, dict[bool, list[str]]] = {}
    for path, column, logical in rows:
        kinds.setdefault(column, {}).setdefault("isAdjustedToUTC=1" in logical, []).append(path)
    for column, by_kind in kinds.items():
        if len(by_kind) == 2:
            aware = len(by_kind[True]) < len(by_kind[False])  # the minority is the odd one
            kind = "timezone-aware" if aware else "tz-naive"
            raise RawDataError(
                f"{by_kind[aware][0]}: column '{column}' holds {kind} "
                f"timestamps, unlike {len(by_kind[not aware])} other files; "
                f"land every file with the same kind"
            )


def read_files(files: list[str], fmt: str) -> pd.DataFrame:
    """All rows of ``files``, with ``_source_file`` naming the file of each row."""
    for path in files:
        _check_file(path)
    with duckdb_session() as con:
        try:
            if fmt == "parquet" and len(files) > 1:
                _check_timezones(con, files)
            frame = _query(con, files, fmt)
        except RawDataError:
            raise
        except (duckdb.Error, OSError, ValueError):
            for path in files:  # find and name the file that breaks the read
                _read_one(con, path, fmt)
            raise
        if fmt == "csv":
            _check_csvs(con, files, frame)
    names = {f: Path(f).name for f in frame["_source_file"].unique()}  # per file, not per row
    frame["_source_file"] = frame["_source_file"].map(names)
    return frame


def _read_one(con: duckdb.DuckDBPyConnection, path: str, fmt: str) -> pd.DataFrame:
    try:
        return _query(con, [path], fmt)
    except (duckdb.Error, OSError, ValueError) as exc:
        kind = "CSV" if fmt == "csv" else "Parquet"
        first = str(exc).strip().splitlines()[0][:300]
        raise RawDataError(
            f"{path}: not a readable {kind} file (truncated, corrupt or another format?): {first}"
        ) from None


def read(spec: PipelineSpec, snap: RawSnapshot) -> pd.DataFrame:
    """All rows of the snapshot's files."""
    return read_files(snap.files, spec.source.file_format)


def read_path(path: str | Path) -> pd.DataFrame:
    """One file outside any pipeline's landing area (``ml-platform validate --data``)."""
    return read_files([str(path)], file_format(path))
