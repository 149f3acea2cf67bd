"""Writing a table and taking its data version at once, all or nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_platform.ingest import io


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "id": np.arange(50_000),
            "x": rng.normal(size=50_000),
            "region": rng.choice(["north", "south", None], 50_000),
        }
    )


def test_write_parquet_hashed_writes_the_frame_under_its_hash(tmp_path: Path) -> None:
    frame = _frame()
    path, version = io.write_parquet_hashed(frame, tmp_path / "sets", lambda h: f"{h}.parquet")
    assert version == io.frame_hash(frame)
    assert path == tmp_path / "sets" / f"{version}.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
    assert [p.name for p in (tmp_path / "sets").iterdir()] == [path.name]  # no temp file left


def test_a_failed_hash_leaves_the_previous_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, where = pd.DataFrame({"id": [1, 2]}), tmp_path / "pipeline"
    target, _ = io.write_parquet_hashed(old, where, lambda _: "validated.parquet")

    def broken(df: pd.DataFrame) -> str:
        raise MemoryError("hashing ran out of memory")

    monkeypatch.setattr(io, "frame_hash", broken)
    with pytest.raises(MemoryError):
        io.write_parquet_hashed(_frame(), where, lambda _: "validated.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(target), old)
    assert [p.name for p in where.iterdir()] == ["validated.parquet"]
