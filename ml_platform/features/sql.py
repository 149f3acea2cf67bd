"""Feature computation in DuckDB SQL generated from the spec (the training set's point-in-time
join is Feast's: ``offline``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from ml_platform.ingest.io import duckdb_session
from ml_platform.spec import PipelineSpec, resolve_import

_AGG_SQL = {
    "count": "COUNT(*)",
    "sum": "SUM({c})",
    "mean": "AVG({c})",
    "min": "MIN({c})",
    "max": "MAX({c})",
    "std": "STDDEV_SAMP({c})",
}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def utc_source(path: Path | str, ts: str) -> str:
    """A parquet file as a relation whose event time is TIMESTAMPTZ (naive values are UTC)."""
    return (
        f"(SELECT * REPLACE (CAST({_q(ts)} AS TIMESTAMPTZ) AS {_q(ts)}) "
        f"FROM read_parquet('{path}'))"
    )


def fetch_frame(
    con: duckdb.DuckDBPyConnection, query: str, params: list[Any] | None = None
) -> pd.DataFrame:
    """``con.execute(query, params).df()``, same dtypes and values, through Arrow: ``.df()``
    makes one Python str per row of every VARCHAR column (~64 B a row each), Arrow one per
    distinct value. Arrow converts other types unlike ``.df()`` (a nullable integer to float64,
    a DECIMAL to Decimal objects, a DATE to datetime.date), so the other columns go back through
    DuckDB's own ``.df()`` from the Arrow table: the query runs once."""
    table = con.sql(query, params=params).to_arrow_table()
    strings = {f.name for f in table.schema if _is_string(f.type)}
    others = [name for name in table.column_names if name not in strings]
    converted = con.from_arrow(table.select(others)).df() if others else pd.DataFrame()
    columns = {
        name: table[name].to_pandas() if name in strings else converted[name]
        for name in table.column_names
    }
    return pd.DataFrame(columns, copy=False)


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def as_utc(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """DuckDB may hand back naive timestamps for TIMESTAMPTZ_NS; they are UTC."""
    col = frame[column]
    frame[column] = col.dt.tz_localize("UTC") if col.dt.tz is None else col.dt.tz_convert("UTC")
    return frame


def feature_sql(spec: PipelineSpec, source_sql: str) -> str:
    """SELECT computing every declared feature per (entity, event time) over ``source_sql``."""
    key, ts = _q(spec.entity_key), _q(spec.event_timestamp)
    declared = [*spec.features.numeric, *spec.features.date_outputs, *spec.features.categorical]
    cols = [key, ts] + [_q(c) for c in declared]
    windows = {}
    for agg in spec.features.aggregates:
        win = f"w_{agg.window}"
        windows[win] = (
            f"(PARTITION BY {key} ORDER BY {ts} "
            f"RANGE BETWEEN {agg.window_sql} PRECEDING AND CURRENT ROW)"
        )
        expr = _AGG_SQL[agg.agg].format(c=_q(agg.column or ""))
        cast = "BIGINT" if agg.agg == "count" else "DOUBLE"
        cols.append(f"CAST({expr} OVER {win} AS {cast}) AS {_q(agg.name)}")
    window_clause = ""
    if windows:
        window_clause = " WINDOW " + ", ".join(f"{n} AS {d}" for n, d in windows.items())
    return f"SELECT {', '.join(cols)} FROM ({source_sql}) AS src{window_clause}"


def compute_features(spec: PipelineSpec, validated: Path) -> pd.DataFrame:
    """Compute the feature table from the validated batch and return it (sorted by key, time)."""
    sql = feature_sql(spec, f"SELECT * FROM {utc_source(validated, spec.event_timestamp)}")
    with duckdb_session() as con:
        frame = fetch_frame(
            con, f"{sql} ORDER BY {_q(spec.entity_key)}, {_q(spec.event_timestamp)}"
        )
    return apply_custom(spec, as_utc(frame, spec.event_timestamp))


def apply_custom(spec: PipelineSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Run the spec's custom feature functions (DataFrame -> DataFrame) in order."""
    for path in spec.features.custom:
        frame = resolve_import(path)(frame)
    missing = set(spec.features.custom_outputs) - set(frame.columns)
    if missing:
        raise ValueError(f"custom feature functions did not produce {sorted(missing)}")
    return frame
