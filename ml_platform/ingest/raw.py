"""Raw data: the landed files a pipeline's source glob matches, snapshotted with a content hash.

Reading goes through DuckDB and Arrow (Arrow keeps timestamp time zones, which the data contract
checks). Every way a file can be bad (missing, empty, truncated, not the declared format, wrong
delimiter, wrong encoding) raises RawDataError naming the file; nothing is written on the way.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import re
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
        raise RawDataError(
            f"{path}: the file is empty (0 bytes). Fix: land the export again (an export that "
            f"failed or matched nothing?), or remove the file from the landing zone"
        )


def _query(con: duckdb.DuckDBPyConnection, files: list[str], fmt: str) -> pd.DataFrame:
    # The file's name, not its path, in every row: the path was 40% of the Arrow table.
    query = (
        "SELECT * REPLACE (parse_filename(_source_file, false, 'system') AS _source_file) "
        f"FROM {_reader(fmt)}"
    )
    table = con.sql(query, params={"files": files}).to_arrow_table()
    # Each Arrow column is freed once converted, and no column is copied into a 2-D block:
    # the table and the frame are never both held whole (numeric columns stay zero-copy and
    # read-only, which nothing here writes into).
    return table.to_pandas(self_destruct=True, split_blocks=True)


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


# DuckDB reads a repeated header name 'x' as 'x', 'x_1', ...
_RENAMED = re.compile(r"^(?P<base>.+)_\d+$")


def _header_names(path: str) -> list[str]:
    """The header row of a CSV file as written, split on its most likely delimiter."""
    with Path(path).open("rb") as fh:
        line = fh.readline().decode("utf-8", errors="replace").rstrip("\r\n")
    splits = [next(csv.reader([line], delimiter=d)) for d in (",", *DELIMITERS)]
    return max(splits, key=len)


def _check_duplicate_names(files: list[str], frame: pd.DataFrame) -> None:
    columns = set(map(str, frame.columns))
    if not any((m := _RENAMED.match(c)) and m["base"] in columns for c in columns):
        return
    for path in files:
        names = _header_names(path)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise RawDataError(
                f"{path}: column '{repeated[0]}' appears {names.count(repeated[0])} times in the "
                f"header row (duplicated column names: {repeated}). Fix: give every column a "
                f"unique name in the export"
            )


def _check_csvs(con: duckdb.DuckDBPyConnection, files: list[str], frame: pd.DataFrame) -> None:
    _check_duplicate_names(files, frame)
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


def _family(physical: str, logical: str | None) -> str:
    """What a Parquet column holds, coarsely: widening within a family (INT32 to INT64, an
    integer column that got a null and became DOUBLE) reads fine together; across, it does not."""
    logical = logical or ""
    if logical.startswith(("Timestamp", "Date", "Time")):
        return "timestamps"
    if physical == "BOOLEAN":
        return "booleans"
    if physical in ("INT32", "INT64", "INT96", "FLOAT", "DOUBLE") or logical.startswith("Decimal"):
        return "numbers"
    if logical.startswith(("String", "Enum", "Json")) or physical == "BYTE_ARRAY":
        return "text"
    return physical.lower()


def _check_types(con: duckdb.DuckDBPyConnection, files: list[str]) -> None:
    """Files read together must agree on what each column holds: a union of numbers in one
    file and text in another would silently turn every value into text. Name the column and
    both files."""
    rows = con.sql(
        "SELECT file_name, name, type, logical_type FROM parquet_schema($files) "
        "WHERE coalesce(num_children, 0) = 0",
        params={"files": files},
    ).fetchall()
    top = set(
        con.sql(f"SELECT * FROM {_reader('parquet')} LIMIT 0", params={"files": files}).columns
    )
    seen: dict[str, tuple[str, str]] = {}
    for path, column, physical, logical in rows:
        if column not in top or str(logical).startswith("Null"):  # nested; all null: fits any
            continue
        family = _family(str(physical), logical)
        if column not in seen:
            seen[column] = (path, family)
        elif seen[column][1] != family:
            first, was = seen[column]
            raise RawDataError(
                f"{path}: column '{column}' holds {family}, but in {first} it holds {was}: "
                f"the column's type changed between landed files. Fix: land every file with "
                f"the same type for '{column}' (re-export {Path(path).name} with the old type, "
                f"or all files with the new one)"
            )


def read_files(files: list[str], fmt: str) -> pd.DataFrame:
    """All rows of ``files``, with ``_source_file`` naming the file of each row (its name)."""
    for path in files:
        _check_file(path)
    with duckdb_session() as con:
        try:
            if fmt == "parquet" and len(files) > 1:
                _check_timezones(con, files)
                _check_types(con, files)
            frame = _query(con, files, fmt)
        except RawDataError:
            raise
        except (duckdb.Error, OSError, ValueError):
            for path in files:  # find and name the file that breaks the read
                _read_one(con, path, fmt)
            raise
        if fmt == "csv":
            _check_csvs(con, files, frame)
    return frame


def _not_utf8(path: str) -> str | None:
    """Where a CSV file stops being UTF-8 text, or None if it is."""
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"byte 0x{data[exc.start]:02x} on line {line}"
    return None


def _read_one(con: duckdb.DuckDBPyConnection, path: str, fmt: str) -> pd.DataFrame:
    try:
        return _query(con, [path], fmt)
    except (duckdb.Error, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:300]
        where = _not_utf8(path) if fmt == "csv" else None
        if where is not None:
            raise RawDataError(
                f"{path}: the file is not UTF-8 text ({where}; latin-1 or Windows-1252?). "
                f"Fix: export it as UTF-8 (e.g. iconv -f latin1 -t utf-8 in > out)"
            ) from exc
        kind = "CSV" if fmt == "csv" else "Parquet"
        raise RawDataError(
            f"{path}: not a readable {kind} file (truncated, corrupt or another format?): "
            f"{first}. Fix: land the file again, complete (a copy still in progress or cut "
            f"short?), and check it is {kind} as the spec's source declares"
        ) from exc


def read(spec: PipelineSpec, snap: RawSnapshot) -> pd.DataFrame:
    """All rows of the snapshot's files."""
    return read_files(snap.files, spec.source.file_format)


def read_path(path: str | Path) -> pd.DataFrame:
    """One file outside any pipeline's landing area (``ml-platform validate --data``)."""
    return read_files([str(path)], file_format(path))
