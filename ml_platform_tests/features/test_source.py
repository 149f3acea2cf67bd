"""The Feast source: publishers wait for readers; a replacement during a read is caught."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from ml_platform.features import source


def _table(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


def test_publish_waits_for_a_pinned_reader(tmp_path: Path) -> None:
    src = tmp_path / "features.parquet"
    mine = _table(tmp_path, "mine.parquet", b"mine")
    stamp = source.publish(mine, src)
    theirs = _table(tmp_path, "theirs.parquet", b"theirs")
    done = threading.Event()
    with source.pinned(src, mine, stamp, "p"):
        worker = threading.Thread(target=lambda: (source.publish(theirs, src), done.set()))
        worker.start()
        time.sleep(0.3)
        assert not done.is_set() and src.read_bytes() == b"mine"
    worker.join(5)
    assert done.is_set() and src.read_bytes() == b"theirs"


def test_a_writer_outside_the_lock_is_caught_after_the_read(tmp_path: Path) -> None:
    src = tmp_path / "features.parquet"
    mine = _table(tmp_path, "mine.parquet", b"mine")
    stamp = source.publish(mine, src)
    replaced = pytest.raises(source.SourceReplaced, match="replaced while the training set")
    with replaced, source.pinned(src, mine, stamp, "p"):
        other = _table(tmp_path, "other.tmp", b"other")
        os.replace(other, src)  # e.g. a copy by hand, which takes no lock


def test_unknown_stamp_falls_back_to_the_bytes(tmp_path: Path) -> None:
    src = tmp_path / "features.parquet"
    mine = _table(tmp_path, "mine.parquet", b"mine")
    source.publish(mine, src)
    with source.pinned(src, mine, "", "p"):  # a hand-off written before stamps existed
        pass
    source.publish(_table(tmp_path, "theirs.parquet", b"theirs"), src)
    with (
        pytest.raises(source.SourceReplaced, match="another run of 'p'"),
        source.pinned(src, mine, "", "p"),
    ):
        pass
