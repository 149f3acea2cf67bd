"""Memory bounds of the feature stage: Feast's retrieval in chunks of whole keys gives the
training set of one call; every DuckDB the platform opens (its sessions, the warehouse, the
ibis backend Feast runs on, dbt's profile) has the platform's memory limit and a spill
directory of its own under the home; feature tables read through Arrow are ``.df()``'s."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml_platform.features import offline, registry
from ml_platform.features.dbt_project import DBT_PROJECT_DIR
from ml_platform.features.sql import fetch_frame
from ml_platform.features.tables import build_training_set
from ml_platform.home import PlatformHome
from ml_platform.ingest.io import (
    DUCKDB_MEMORY_LIMIT,
    DUCKDB_MEMORY_LIMIT_ENV,
    duckdb_session,
    frame_hash,
)
from ml_platform_tests.features.helpers import publish_features, tiny_spec

KEY, TS, LABEL = "user_id", "ts", "bought"


def _limit(value: str) -> str:
    """DuckDB's own spelling of a memory limit ('256MB' reads back as '244.1 MiB')."""
    con = duckdb.connect(config={"memory_limit": value})
    try:
        return str(con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0])
    finally:
        con.close()


SETTINGS = "SELECT current_setting('memory_limit'), current_setting('temp_directory')"


def _settings(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    ((limit, spill),) = con.execute(SETTINGS).fetchall()
    return str(limit), str(spill)


def test_key_chunks_hold_whole_keys_within_the_bound() -> None:
    rng = np.random.default_rng(0)
    keys = pd.Series(np.concatenate([rng.integers(0, 40, 300), np.full(25, 99)]))  # 99: 25 rows
    chunks = offline.key_chunks(keys, max_rows=20)
    positions = np.concatenate(chunks)
    assert sorted(positions.tolist()) == list(range(len(keys)))
    seen: set[int] = set()
    for chunk in chunks:
        assert (np.diff(chunk) > 0).all()  # rows keep their order
        chunk_keys = set(keys.iloc[chunk])
        assert not chunk_keys & seen  # a key's rows all in one chunk
        seen |= chunk_keys
        assert len(chunk) <= 20 or chunk_keys == {99}
    assert len(chunks) > len(keys) // 20
    assert [len(c) for c in offline.key_chunks(keys, max_rows=10_000)] == [len(keys)]


def test_chunked_retrieval_gives_the_training_set_of_one_call(
    home: PlatformHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(11)
    base = pd.Timestamp("2026-01-01", tz="UTC")

    def rows(n: int, keys: int) -> pd.DataFrame:
        times = base + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s")
        return pd.DataFrame({KEY: rng.integers(0, keys, n), TS: times})

    # No two feature rows of a key at one time: Feast picks either of such a pair, per call.
    feats = rows(3_000, 60).drop_duplicates([KEY, TS])
    feats = feats.assign(
        spend=rng.random(len(feats)), tier=rng.choice(["a", "b", None], len(feats)), visits_7d=1
    )
    labels = rows(600, 70).assign(**{LABEL: rng.integers(0, 2, 600)})
    labels = pd.concat([labels, labels.iloc[:20].assign(**{LABEL: 1})])  # same key and time
    labels.to_parquet(tmp_path / "labels.parquet", index=False)
    spec = tiny_spec(ttl="12h")
    info = publish_features(spec, home, feats)
    registry.apply(spec, home)

    calls: list[int] = []
    chunks_of = offline.key_chunks

    def counted(keys: pd.Series, max_rows: int) -> list[np.ndarray]:
        chunks = chunks_of(keys, max_rows)
        calls.append(len(chunks))
        return chunks

    monkeypatch.setattr(offline, "key_chunks", counted)
    one = build_training_set(spec, home, tmp_path / "labels.parquet", info)
    monkeypatch.setattr(offline, "RETRIEVAL_CHUNK_ROWS", 7)
    many = build_training_set(spec, home, tmp_path / "labels.parquet", info)
    assert calls[0] == 1 and calls[1] > 30
    assert many.data_version == one.data_version and many.path == one.path
    frame = pd.read_parquet(many.path)
    assert len(frame) == len(labels) and frame["spend"].notna().sum() > 100
    assert frame.equals(frame.sort_values([TS, KEY], kind="stable").reset_index(drop=True))


def test_feast_retrieves_on_a_bounded_duckdb_under_the_home(
    home: PlatformHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ibis
    from feast import FeatureStore

    monkeypatch.setenv(DUCKDB_MEMORY_LIMIT_ENV, "256MB")
    seen: list[tuple[str, str]] = []
    retrieve = FeatureStore.get_historical_features

    def spy(self: FeatureStore, *args: Any, **kwargs: Any) -> Any:
        ((limit, spill),) = ibis.get_backend().raw_sql(SETTINGS).fetchall()
        seen.append((str(limit), str(spill)))
        return retrieve(self, *args, **kwargs)

    monkeypatch.setattr(FeatureStore, "get_historical_features", spy)
    spec = tiny_spec()
    info = publish_features(
        spec,
        home,
        pd.DataFrame({KEY: [1], TS: [pd.Timestamp("2026-01-01", tz="UTC")]}).assign(
            spend=1.0, tier="a", visits_7d=1
        ),
    )
    registry.apply(spec, home)
    labels = home.root / "labels.parquet"
    pd.DataFrame({KEY: [1], TS: [pd.Timestamp("2026-01-02", tz="UTC")], LABEL: [1]}).to_parquet(
        labels, index=False
    )
    before = ibis.options.default_backend
    build_training_set(spec, home, labels, info)
    assert ibis.options.default_backend is before  # the previous default is back
    ((limit, spill),) = seen
    assert limit == _limit("256MB")
    assert Path(spill).parent == home.root / "tmp" / "duckdb"
    assert not Path(spill).exists()  # removed with the connection


def test_duckdb_sessions_are_bounded_and_spill_apart_under_the_home(
    home: PlatformHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    with duckdb_session() as a, duckdb_session() as b:
        (limit_a, spill_a), (_, spill_b) = _settings(a), _settings(b)
    assert limit_a == _limit(DUCKDB_MEMORY_LIMIT)
    assert spill_a != spill_b
    assert Path(spill_a).parent == home.root / "tmp" / "duckdb"
    monkeypatch.setenv(DUCKDB_MEMORY_LIMIT_ENV, "300MB")
    with duckdb_session() as con:
        assert _settings(con)[0] == _limit("300MB")


def test_spill_directories_of_processes_that_are_gone_are_removed(home: PlatformHome) -> None:
    root = home.root / "tmp" / "duckdb"
    with duckdb_session() as con:
        host = Path(_settings(con)[1]).name.split("-")[0]
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = root / f"{host}-{int(gone.stdout)}-0badc0de"
    alive = root / f"{host}-{os.getppid()}-0badc0de"  # the parent runs still
    for directory in (dead, alive):
        (directory / "spill").mkdir(parents=True)
    with duckdb_session():
        pass
    assert not dead.exists() and alive.exists()


def test_arrow_read_gives_the_frame_df_gives() -> None:
    query = """
        SELECT * FROM (VALUES
            (1, 10::INTEGER, 1::TINYINT, true, 1.5, 'a', DATE '2026-01-01',
             TIMESTAMPTZ '2026-01-01 10:00:00', 1::HUGEINT, 'x'::ENUM('x', 'y')),
            (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
            (3, 30, 3, false, 2.25, 'a', DATE '2026-01-03',
             TIMESTAMPTZ '2026-01-03 11:00:00', 3, 'y')
        ) t(k, i, ti, flag, amount, word, day, stamp, big, kind) WHERE k >= ? ORDER BY k
    """
    with duckdb_session() as con:
        expected = con.execute(query, [1]).df()
        frame = fetch_frame(con, query, [1])
        strings_only = fetch_frame(con, "SELECT 'a' AS s UNION ALL SELECT NULL")
        empty = fetch_frame(con, query, [9])
        assert strings_only.equals(con.execute("SELECT 'a' AS s UNION ALL SELECT NULL").df())
        pd.testing.assert_frame_equal(empty, con.execute(query, [9]).df())
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    assert frame_hash(frame) == frame_hash(expected)
    assert frame["word"].map(id).nunique() == 2  # one str object for the two 'a's (and None)


def test_dbt_profile_has_the_platforms_memory_limit() -> None:
    profile = (DBT_PROJECT_DIR / "profiles.yml").read_text()
    assert f"env_var('{DUCKDB_MEMORY_LIMIT_ENV}', '') or '{DUCKDB_MEMORY_LIMIT}'" in profile
