"""The Feast source of a pipeline: one path that every run's feature table is published to.

Feast reads a feature view's rows from the path its registry names, so a run that wants *its*
rows out of ``get_historical_features`` must make sure that path holds its table while Feast
reads it. Publishing replaces the path atomically under an exclusive lock; a reader pins the
path under a shared lock and checks, before and after it reads, that the file there is the one
this run published (or byte-identical to this run's table), else it fails naming both.

Why verify instead of pointing Feast at the run's own content-addressed table: Feast takes the
source from the registry, so the only public way to read another path is a second registry per
run with a copy of the feature view and service; the training set would then no longer come
from the feature service users see in `feast ui`. Why a file identity instead of re-hashing
the content: the stamp (device, inode, size, mtime) is taken right after the atomic rename that
published this run's table, so while it matches, the path still holds those bytes; hashing
the 520 MB source of a 10M-row table took 0.7 s here for each check (before and after).
"""

from __future__ import annotations

import fcntl
import filecmp
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ml_platform.ingest.io import atomic_path


class SourceReplaced(RuntimeError):
    """The Feast source no longer holds this run's feature table."""


def stamp(path: Path) -> str:
    """Identity of the file now at ``path`` ("missing" if none): a rename puts another inode
    there, a write in place changes the size or the mtime."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def _same_bytes(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and filecmp.cmp(a, b, shallow=False)


def _lock_file(source: Path) -> Path:
    # Beside the source; never renamed or deleted, so every process locks the same inode.
    return source.parent / f".{source.name}.lock"


@contextmanager
def _locked(source: Path, mode: int) -> Iterator[None]:
    lock = _lock_file(source)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as fh:
        fcntl.flock(fh, mode)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def publish(table: Path, source: Path) -> str:
    """Replace the Feast source with a copy of ``table`` in one rename (a reader sees one file
    or the other) and return the stamp of what was published. Readers holding the source
    (:func:`pinned`) finish first."""
    with _locked(source, fcntl.LOCK_EX):
        with atomic_path(source) as tmp:
            shutil.copyfile(table, tmp)
        return stamp(source)


@contextmanager
def reading(source: Path) -> Iterator[None]:
    """Hold off publishers while the current source is read (whoever published it)."""
    with _locked(source, fcntl.LOCK_SH):
        yield


def _check(source: Path, table: Path, published: str, pipeline: str) -> str:
    now = stamp(source)
    if now != "missing" and (now == published or _same_bytes(source, table)):
        return now
    raise SourceReplaced(
        f"the Feast source {source} no longer holds this run's feature table {table.name}: "
        f"another run of '{pipeline}' published its features after this run's features step. "
        f"The training set must come from this run's rows; re-run from '{pipeline}_features'."
    )


@contextmanager
def pinned(source: Path, table: Path, published: str, pipeline: str) -> Iterator[None]:
    """Run the block while ``source`` holds this run's ``table``; fail if it does not, before
    or after. ``published`` is the stamp :func:`publish` returned ("" if unknown: then the
    bytes are compared). The shared lock keeps our publishers out meanwhile; the check after
    catches a writer that does not take it."""
    with reading(source):
        before = _check(source, table, published, pipeline)
        yield
        if stamp(source) != before:
            raise SourceReplaced(
                f"the Feast source {source} was replaced while the training set was read from "
                f"it (by a writer outside ml_platform's lock); re-run from '{pipeline}_features'."
            )
