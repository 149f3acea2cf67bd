"""Bad landed files: each gives a RawDataError naming the file, never a crash or partial read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from ml_platform.ingest import raw

Maker = Callable[[Path, Path], Path]


def empty_file(src: Path, d: Path) -> Path:
    (d / "empty.parquet").write_bytes(b"")
    return d / "empty.parquet"


def truncated_parquet(src: Path, d: Path) -> Path:
    data = src.read_bytes()
    (d / "truncated.parquet").write_bytes(data[: len(data) // 2])
    return d / "truncated.parquet"


def corrupt_parquet(src: Path, d: Path) -> Path:
    data = bytearray(src.read_bytes())
    data[100:400] = b"\x00" * 300
    data[-8:-4] = b"\xff\xff\xff\x7f"  # footer length pointing nowhere
    (d / "corrupt.parquet").write_bytes(bytes(data))
    return d / "corrupt.parquet"


def csv_named_parquet(src: Path, d: Path) -> Path:
    (d / "really_csv.parquet").write_text("a,b\n1,2\n")
    return d / "really_csv.parquet"


def wrong_encoding_csv(src: Path, d: Path) -> Path:
    frame = pd.read_parquet(src).head(50).assign(region="Zürich")
    (d / "latin1.csv").write_bytes(frame.to_csv(index=False).encode("latin-1"))
    return d / "latin1.csv"


def binary_csv(src: Path, d: Path) -> Path:
    (d / "binary.csv").write_bytes(src.read_bytes())
    return d / "binary.csv"


def missing_file(src: Path, d: Path) -> Path:
    return d / "gone.parquet"


MAKERS = [
    empty_file,
    truncated_parquet,
    corrupt_parquet,
    csv_named_parquet,
    wrong_encoding_csv,
    binary_csv,
    missing_file,
]


@pytest.mark.parametrize("make", MAKERS, ids=[m.__name__ for m in MAKERS])
def test_bad_file_is_named(make: Maker, clean_files: list[Path], tmp_path: Path) -> None:
    bad = make(clean_files[0], tmp_path)
    with pytest.raises(raw.RawDataError) as info:
        raw.read_path(bad)
    assert str(bad) in str(info.value)


def test_wrong_delimiter_is_named(tmp_path: Path) -> None:
    # DuckDB's sniffer splits clean ';' files correctly; ragged ones it cannot, and then
    # the reader must name the file rather than return garbage columns and no rows.
    bad = tmp_path / "ragged.csv"
    bad.write_text("customer_id;amount;purpose\n1;2.5;car\n2;3.5\n3;4.5;car;x\n")
    with pytest.raises(raw.RawDataError, match="delimiter") as info:
        raw.read_path(bad)
    assert str(bad) in str(info.value)


def test_semicolon_file_is_sniffed(tmp_path: Path) -> None:
    (tmp_path / "semi.csv").write_text("customer_id;amount\n1;2.5\n2;3.5\n")
    frame = raw.read_path(tmp_path / "semi.csv")
    assert list(frame["amount"]) == [2.5, 3.5]


def test_one_bad_file_among_good_ones_is_named(clean_files: list[Path], tmp_path: Path) -> None:
    bad = truncated_parquet(clean_files[3], tmp_path)
    with pytest.raises(raw.RawDataError) as info:
        raw.read_files([*map(str, clean_files[:3]), str(bad)], "parquet")
    assert str(bad) in str(info.value) and str(clean_files[0]) not in str(info.value)


def test_good_files_keep_timezones_and_source(clean_files: list[Path]) -> None:
    frame = raw.read_files([str(f) for f in clean_files[:2]], "parquet")
    assert str(frame["applied_at"].dt.tz) == "UTC"
    assert set(frame["_source_file"]) == {clean_files[0].name, clean_files[1].name}


def test_csv_round_trip(clean_files: list[Path], tmp_path: Path) -> None:
    frame = pd.read_parquet(clean_files[0])
    frame.to_csv(tmp_path / "day.csv", index=False)
    read = raw.read_path(tmp_path / "day.csv")
    assert len(read) == len(frame) and read["credit_score"].dtype.kind == "i"


def test_naive_file_among_aware_ones_is_named(clean_files: list[Path], tmp_path: Path) -> None:
    frame = pd.read_parquet(clean_files[0])
    naive = tmp_path / "naive.parquet"
    frame.assign(applied_at=frame["applied_at"].dt.tz_localize(None)).to_parquet(naive)
    with pytest.raises(raw.RawDataError, match="tz-naive") as info:
        raw.read_files([*map(str, clean_files[1:4]), str(naive)], "parquet")
    assert str(naive) in str(info.value) and "applied_at" in str(info.value)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_user_column_named_filename_survives_the_read(tmp_path: Path, fmt: str) -> None:
    frame = pd.DataFrame({"filename": ["a.pdf", "b.pdf"], "x": [1, 2]})
    path = tmp_path / f"batch.{fmt}"
    frame.to_parquet(path) if fmt == "parquet" else frame.to_csv(path, index=False)
    read = raw.read_files([str(path)], fmt)
    assert read["filename"].tolist() == ["a.pdf", "b.pdf"]
    assert read["_source_file"].tolist() == [path.name, path.name]
