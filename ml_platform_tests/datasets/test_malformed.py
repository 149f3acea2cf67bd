"""The malformed-data matrix (issue 17 item 4): datasets a user might land for a valid spec,
each landed as a file (CSV or Parquet) in the landing zone and run through the validated
asset's work (``raw.snapshot`` then ``validate_snapshot``). Each stops at validation with a
message naming the column (or the file), the problem and the fix, publishes nothing, and never
surfaces an exception from pandas, pyarrow or DuckDB: only ``RawDataError`` (the file cannot be
read) or a failed rule. The spec has no contract file: the built-in minimal contract gates it,
as it does for a new user."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml_platform.contracts.validate import validate_snapshot
from ml_platform.home import PlatformHome
from ml_platform.ingest import raw
from ml_platform.spec import PipelineSpec
from ml_platform_tests.datasets.helpers import frame, spec
from ml_platform_tests.helpers import materialize

Lander = Callable[[Path], None]
EVERY = 50  # every 50th row gets the defect


def _rows(f: pd.DataFrame) -> np.ndarray:
    return np.arange(len(f)) % EVERY == 0


def _csv(f: pd.DataFrame, **kwargs: Any) -> Lander:
    return lambda d: f.to_csv(d / "data.csv", index=False, **kwargs)


def _text(content: str | bytes) -> Lander:
    def land(d: Path) -> None:
        data = content.encode() if isinstance(content, str) else content
        (d / "data.csv").write_bytes(data)

    return land


def _x_as(values: object, rows: np.ndarray | None = None) -> pd.DataFrame:
    f = frame()
    return f.assign(x=f["x"].astype(object).mask(_rows(f) if rows is None else rows, values))


def _dated(f: pd.DataFrame, start: str) -> pd.DataFrame:
    return f.assign(when=pd.date_range(start, periods=len(f), freq="D").strftime("%Y-%m-%d"))


def _truncated_parquet(d: Path) -> None:
    frame().to_parquet(d / "a.parquet", index=False)
    data = (d / "a.parquet").read_bytes()
    (d / "a.parquet").write_bytes(data[: len(data) // 2])


def _type_changed(d: Path) -> None:
    f = frame()
    f.iloc[:200].to_parquet(d / "2024-01.parquet", index=False)
    f.iloc[200:].assign(x=f["x"].iloc[200:].round(2).astype(str)).to_parquet(
        d / "2024-02.parquet", index=False
    )


def _numbers_as_text(d: Path) -> None:
    f = frame()
    f.assign(x=f["x"].round(3).astype(str)).to_parquet(d / "a.parquet", index=False)


def _latin1(d: Path) -> None:
    f = frame().assign(flag=lambda f: np.where(f["flag"], "Zürich", "Genève"))
    (d / "data.csv").write_bytes(f.to_csv(index=False).encode("latin-1"))


@dataclass(frozen=True)
class Case:
    id: str
    land: Lander
    rule: str | None  # the failed rule, or None: the file cannot be read (RawDataError)
    column: str | None  # the column the message names (a rule's column, or in the text)
    says: tuple[str, ...]  # what the message must say (problem and fix)
    fmt: str = "csv"
    spec: tuple[tuple[str, Any], ...] = ()


HEADER = "row_id,year,x,flag,label\n"
CLEAN = frame().to_csv(index=False)
CASES = [
    Case("empty_file", _text(b""), None, None, ("is empty", "land the export again")),
    Case("header_only", _text(HEADER), "non_empty", None, ("no rows", "land data")),
    Case(
        "missing_declared_column",
        _csv(frame().drop(columns="x")),
        "column_present",
        "x",
        ("'x' is missing", "restore the column"),
    ),
    Case(
        "duplicated_column_name",
        _text(CLEAN.replace(HEADER, "row_id,year,x,x,label\n", 1)),
        None,
        "x",
        ("'x' appears 2 times", "unique name"),
    ),
    Case(
        "label_all_null",
        _csv(frame().assign(label=np.nan)),
        "not_null",
        "label",
        ("400 of 400 rows", "are null", "Fix: fill or drop"),
    ),
    Case(
        "numeric_with_na_text",
        _csv(_x_as("n/a")),
        "numeric_feature",
        "x",
        ("'n/a'", "not numbers", "empty cells"),
    ),
    Case(
        "numeric_with_thousands_separator",
        _csv(_x_as("1,234")),
        "numeric_feature",
        "x",
        ("'1,234'", "without thousands separators"),
    ),
    Case(
        "mixed_types_in_one_column",
        _csv(_x_as("high", np.arange(400) % 2 == 0)),
        "numeric_feature",
        "x",
        ("200 of 400", "'high'", "features.categorical"),
    ),
    Case(
        "infinity",
        _csv(frame().assign(x=lambda f: f["x"].mask(_rows(f), np.inf))),
        "finite",
        "x",
        ("+/-infinity", "'inf'", "division by zero"),
    ),
    Case(
        "timestamp_unparseable",
        _csv(frame().assign(year=lambda f: f["year"].astype(object).mask(_rows(f), "soon"))),
        "event_timestamp_parse",
        "year",
        ("'soon'", "whole years", "declare the column's real form"),
    ),
    Case(
        "timestamp_impossible_date",
        _csv(
            _dated(frame(), "2020-01-01").assign(
                when=lambda f: f["when"].mask(_rows(f), "2020-02-30")
            )
        ),
        "event_timestamp_parse",
        "when",
        ("'2020-02-30'", "not timestamps", "format: '%d/%m/%Y'"),
        spec=(("event_timestamp", "when"),),
    ),
    Case(
        "timestamps_all_in_future",
        _csv(_dated(frame(), "2100-01-01")),
        "not_future",
        "when",
        ("400 of 400 rows", "in the future", "producer's clock"),
        spec=(("event_timestamp", "when"),),
    ),
    Case(
        "entity_key_null",
        _csv(frame().assign(row_id=lambda f: f["row_id"].astype(float).mask(_rows(f)))),
        "not_null",
        "row_id",
        ("8 of 400 rows", "are null"),
    ),
    Case(
        "duplicated_entity_and_timestamp",
        _csv(pd.concat([frame(), frame().iloc[:30]])),
        "unique_key",
        "row_id,year",
        ("60 of 430 rows", "share their (row_id, year)", "deduplicate upstream"),
    ),
    Case(
        "categorical_with_one_value",
        _csv(frame().assign(flag="retail")),
        "constant_feature",
        "flag",
        ("one value ('retail')", "remove it from features.categorical"),
    ),
    Case(
        "semicolons_and_decimal_commas",
        _csv(frame(), sep=";", decimal=","),
        "numeric_feature",
        "x",
        ("not numbers", "decimal point (0.5, not 0,5)"),
    ),
    Case("not_utf8_latin1", _latin1, None, None, ("not UTF-8", "byte 0xe8 on line 2", "iconv")),
    Case(
        "truncated_parquet",
        _truncated_parquet,
        None,
        None,
        ("not a readable Parquet file", "land the file again"),
        fmt="parquet",
    ),
    Case(
        "parquet_type_changed_between_files",
        _type_changed,
        None,
        "x",
        ("2024-02.parquet", "holds text", "2024-01.parquet", "holds numbers", "same type"),
        fmt="parquet",
    ),
    Case(
        "parquet_numbers_stored_as_text",
        _numbers_as_text,
        "numeric_feature",
        "x",
        ("numbers stored as text", "numeric type"),
        fmt="parquet",
    ),
    Case(
        "timestamps_in_a_numeric_feature",
        _csv(frame().assign(x=pd.date_range("2020-01-01", periods=400, freq="D"))),
        "numeric_feature",
        "x",
        ("holds timestamps", "'2020-01-01", "not numbers"),
    ),
    Case(
        "regression_label_with_infinity",
        _csv(frame().assign(label=lambda f: (f["x"] * 3.0).mask(_rows(f), -np.inf))),
        "finite",
        "label",
        ("the label 'label' are +/-infinity", "'-inf'", "infinite target"),
        spec=(
            ("task", "regression"),
            ("gates", {"min_metrics": {}, "bootstrap_samples": 50, "min_slice_rows": 50}),
        ),
    ),
    Case(
        "single_row",
        _csv(frame().head(1)),
        "label_classes",
        "label",
        ("fewer than 2 classes", "land more data"),
    ),
    Case(
        "label_one_class",
        _csv(frame().assign(label=0)),
        "label_classes",
        "label",
        ("fewer than 2 classes", "land more data"),
    ),
    Case(
        "label_words_without_positive_label",
        _csv(frame().assign(label=lambda f: np.where(f["label"] == 1, "bad", "good"))),
        "label_values",
        "label",
        ("'bad'", "positive_label"),
    ),
]


def _spec(case: Case, landing: Path) -> PipelineSpec:
    return spec(source={"path": str(landing / f"*.{case.fmt}")}, **dict(case.spec))


def _land(case: Case, tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    landing.mkdir()
    case.land(landing)
    return landing


def _nothing_published(spec: PipelineSpec, home: PlatformHome) -> None:
    published = home.pipeline_dir(spec.name) / "validated"
    assert not published.exists() or not list(published.iterdir())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_dataset_stops_at_validation(
    case: Case, home: PlatformHome, tmp_path: Path
) -> None:
    the_spec = _spec(case, _land(case, tmp_path))
    snap = raw.snapshot(the_spec, home)
    if case.rule is None:
        with pytest.raises(raw.RawDataError) as info:
            validate_snapshot(the_spec, home, snap)
        message = str(info.value)
        assert any(Path(f).name in message for f in snap.files), message  # names the file
    else:
        outcome = validate_snapshot(the_spec, home, snap)
        assert not outcome.passed
        failed = {(r.rule, r.column): r.message for r in outcome.failures}
        assert (case.rule, case.column) in failed, outcome.summary()
        message = failed[(case.rule, case.column)]
        assert message in outcome.summary()
        assert outcome.validated_path is None
    assert "Fix" in message, message
    if case.rule is None and case.column is not None:  # a read error names the column too
        assert f"'{case.column}'" in message, message
    for words in case.says:
        assert words in message, message
    _nothing_published(the_spec, home)


def test_there_are_at_least_15_malformed_datasets() -> None:
    assert len(CASES) >= 15 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_clean_dataset_passes(fmt: str, home: PlatformHome, tmp_path: Path) -> None:
    """The control: the same harness publishes the clean dataset, so every failure above is
    the defect's, not the harness's."""
    landing = tmp_path / "landing"
    landing.mkdir()
    clean = frame()
    if fmt == "csv":
        clean.to_csv(landing / "data.csv", index=False)
    else:  # two files: the per-file type check passes when the types agree
        clean.iloc[:200].to_parquet(landing / "a.parquet", index=False)
        clean.iloc[200:].to_parquet(landing / "b.parquet", index=False)
    the_spec = spec(source={"path": str(landing / f"*.{fmt}")})
    outcome = validate_snapshot(the_spec, home, raw.snapshot(the_spec, home))
    assert outcome.passed, outcome.summary()
    assert outcome.validated_path is not None and outcome.validated_path.is_file()
    assert outcome.rows_valid == len(clean)


def test_compatible_types_across_files_still_read(tmp_path: Path) -> None:
    """An integer column that became floats in a later file (a null appeared), and a text
    column with no value at all in one file (written as Parquet's null type), are the same
    kind of column: the type-change check must not refuse them."""
    clean = frame().assign(note="ok")
    clean.iloc[:200].to_parquet(tmp_path / "a.parquet", index=False)
    later = clean.iloc[200:].assign(row_id=lambda f: f["row_id"].astype("float64"), note=None)
    later.to_parquet(tmp_path / "b.parquet", index=False)
    read = raw.read_files(sorted(map(str, tmp_path.glob("*.parquet"))), "parquet")
    assert len(read) == len(clean) and read["note"].isna().sum() == 200


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_nullable_booleans_are_numeric_features(
    fmt: str, home: PlatformHome, tmp_path: Path
) -> None:
    """Booleans with gaps (object values from a CSV reader) are 0/1 numbers, not text."""
    landing = tmp_path / "landing"
    landing.mkdir()
    data = frame()
    flags = pd.array(data["flag"].to_numpy(), dtype="boolean")
    flags[::7] = pd.NA
    data = data.assign(flag_num=flags)
    if fmt == "csv":
        data.to_csv(landing / "data.csv", index=False)
    else:
        data.to_parquet(landing / "data.parquet", index=False)
    the_spec = spec(
        source={"path": str(landing / f"*.{fmt}")},
        features={"numeric": ["x", "flag_num"], "categorical": ["flag"]},
    )
    outcome = validate_snapshot(the_spec, home, raw.snapshot(the_spec, home))
    assert outcome.passed, outcome.summary()


def test_semicolon_file_with_decimal_points_is_read(home: PlatformHome, tmp_path: Path) -> None:
    """A semicolon-separated file is not malformed: DuckDB's sniffer finds the delimiter."""
    landing = tmp_path / "landing"
    landing.mkdir()
    frame().to_csv(landing / "data.csv", index=False, sep=";")
    the_spec = spec(source={"path": str(landing / "*.csv")})
    outcome = validate_snapshot(the_spec, home, raw.snapshot(the_spec, home))
    assert outcome.passed, outcome.summary()


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.id in ("numeric_with_na_text", "not_utf8_latin1")],
    ids=lambda c: c.id,
)
def test_in_dagster_the_run_stops_at_validated(
    case: Case, home: PlatformHome, tmp_path: Path
) -> None:
    """The whole graph materialized in Dagster: the validated step fails with the message (the
    rule's, or the file's), and no asset downstream of it materializes."""
    the_spec = _spec(case, _land(case, tmp_path))
    result = materialize(the_spec, home, selection="*tiny_registered_model")
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "tiny_validated"
    data = failure.step_failure_data
    error = data.error
    assert error is not None
    user = data.user_failure_data  # set when the step raised dg.Failure
    text = (user.description or "") if user is not None else ""
    chain = []  # Dagster's step error, caused by ours, caused by the library's
    cause: Any = error
    while cause is not None:
        chain.append(cause.cls_name)
        text += cause.message
        cause = cause.cause
    for words in case.says:
        assert words in text, text
    if case.rule is None:  # our error first, the library's chained beneath it
        assert chain[1] == "RawDataError" and len(chain) == 3, chain
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == set(), materialized
    _nothing_published(the_spec, home)
    assert not list(home.artifact_root.rglob("MLmodel"))
