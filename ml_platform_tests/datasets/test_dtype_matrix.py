"""Issue 17, the dtype matrix: every column type a CSV or Parquet file carries, as a feature in
the role declared. Fast tests per type for the conversion code (validation's derived date
columns, the model input, the feature table's and Feast's types, the encodings); one slow run
of a Parquet file holding all of them through the real graph to a registered model."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import mlflow.sklearn
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from ml_platform.contracts.validate import validate_batch
from ml_platform.features.definitions import view_def
from ml_platform.features.tables import build_features
from ml_platform.home import PlatformHome
from ml_platform.ingest.prepare import date_features
from ml_platform.serving.vectorize import Scorer
from ml_platform.spec import MAX_ONEHOT_CATEGORIES, SpecError, parse_spec
from ml_platform.training import fitting
from ml_platform_tests.helpers import materialize

ROWS = 800
NUMERIC = ["n_int", "n_float", "n_bool"]
CATEGORICAL = ["c_bool", "c_str", "c_dict", "c_code", "c_high"]
DATES = [
    {"column": "opened_at", "parts": ["day_of_week", "month"], "age_days": True},
    {"column": "seen_at", "parts": ["hour"]},
]


def matrix(rows: int = ROWS, seed: int = 11) -> pd.DataFrame:
    """One column of each type, in pandas' own dtypes (nullable Int64 / boolean / string, a
    categorical, NaN floats, dates, tz-aware datetimes), with the label depending on most."""
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(rows) * 6, unit="h")
    opened = ts.normalize() - pd.to_timedelta(rng.integers(0, 400, rows), unit="D")
    n_int = pd.array(rng.integers(0, 10, rows), dtype="Int64")
    n_int[::9] = pd.NA
    n_float = rng.normal(size=rows)
    n_float[::13] = np.nan
    n_bool = pd.array(rng.random(rows) < 0.5, dtype="boolean")
    n_bool[::11] = pd.NA
    c_str = pd.array(rng.choice(["red", "green", "blue"], rows), dtype="string")
    c_str[::17] = pd.NA
    high = rng.integers(0, 300, rows)  # 300 values: above MAX_ONEHOT_CATEGORIES
    age = (ts - opened).days.to_numpy()
    logit = (
        0.8 * np.nan_to_num(n_float)
        + 0.6 * (np.asarray(c_str.fillna("")) == "red")
        + 0.004 * age
        - 0.8
        + 0.8 * (high % 2)
    )
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    return pd.DataFrame(
        {
            "row_id": np.arange(1, rows + 1),
            "ts": ts,
            "n_int": n_int,
            "n_float": n_float,
            "n_bool": n_bool,
            "c_bool": rng.random(rows) < 0.3,
            "c_str": c_str,
            "c_dict": pd.Categorical(rng.choice(["a", "b", "c", "d"], rows)),
            "c_code": pd.array(rng.integers(1, 5, rows), dtype="Int64"),
            "c_high": pd.Series([f"shop_{v}" for v in high], dtype="string"),
            "opened_at": [d.date() for d in opened],
            "seen_at": ts - pd.to_timedelta(rng.integers(0, 24, rows), unit="h"),
            "label": label,
        }
    )


def spec(tmp: Path | None = None, **updates: Any) -> Any:
    attributes: dict[str, Any] = {
        "name": "tiny",
        "source": {"path": str((tmp or Path("/nonexistent")) / "tiny.parquet")},
        "entity_key": "row_id",
        "event_timestamp": "ts",
        "label": "label",
        "task": "binary_classification",
        "features": {"numeric": NUMERIC, "categorical": CATEGORICAL, "dates": DATES},
        "model": {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": 60},
        },
        "gates": {"min_metrics": {"roc_auc": 0.55}, "bootstrap_samples": 50, "min_slice_rows": 50},
        "slices": ["c_dict"],
        "monitoring": {"enabled": False},
        "seed": 5,
    }
    if "c_dict" not in updates.get("features", {"categorical": ["c_dict"]}).get("categorical", []):
        attributes["slices"] = []
    attributes.update(updates)
    return parse_spec(attributes, "tiny/defs.yaml")


# -- the spec ---------------------------------------------------------------------------------


def test_date_features_are_numeric_model_inputs() -> None:
    s = spec()
    assert s.features.date_outputs == [
        "opened_at_day_of_week",
        "opened_at_month",
        "opened_at_age_days",
        "seen_at_hour",
    ]
    assert set(s.features.date_outputs) <= set(s.features.model_numeric)
    assert "opened_at" not in s.features.all_columns


def test_a_spec_without_dates_or_encodings_dumps_as_before() -> None:
    dumped = spec(features={"numeric": ["n_float"]}).model_dump()["features"]
    assert "dates" not in dumped and "encodings" not in dumped


@pytest.mark.parametrize(
    ("updates", "expected"),
    [
        (
            {"event_timestamp": None},
            "date feature 'opened_at' asks for age_days, the days from it to each row's event "
            "time, and this spec declares no event_timestamp",
        ),
        (
            {"features": {"numeric": ["opened_at"], "dates": DATES}},
            "'opened_at' is declared under features.dates and as a numeric or categorical",
        ),
        (
            {"features": {"numeric": ["x"], "dates": [{"column": "opened_at"}]}},
            "date feature 'opened_at' derives nothing",
        ),
        (
            {"features": {"numeric": ["x"], "encodings": {"x": "target"}}},
            "encodings ['x'] are not categorical features",
        ),
        (
            {"features": {"numeric": ["opened_at_month"], "dates": DATES}},
            "date features would add columns ['opened_at_month']",
        ),
    ],
)
def test_spec_refuses(updates: dict[str, Any], expected: str) -> None:
    with pytest.raises(SpecError) as err:
        spec(**updates)
    assert expected in str(err.value)


# -- derived date columns (validation) -------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        [dt.date(2024, 3, 4), None, dt.date(2024, 3, 9)],  # Parquet date32 read by pandas
        ["2024-03-04", None, "2024-03-09"],  # CSV text
        pd.to_datetime(["2024-03-04", None, "2024-03-09"]),  # naive datetime64: UTC
        pd.to_datetime(["2024-03-04 01:00", None, "2024-03-09 01:00"]).tz_localize(
            "Europe/Paris"
        ),  # tz-aware: parts in UTC (00:00)
    ],
    ids=["date_objects", "iso_strings", "naive_datetime", "tz_aware"],
)
def test_date_parts_and_age_from_every_date_form(values: Any) -> None:
    s = spec(features={"numeric": ["x"], "dates": [DATES[0]]})
    frame = pd.DataFrame(
        {"ts": pd.to_datetime(["2024-03-14", "2024-03-14", "2024-03-10"], utc=True)}
    )
    frame["opened_at"] = values
    assert date_features(s, frame) == []
    assert frame["opened_at_day_of_week"].tolist()[::2] == [0.0, 5.0]  # Monday, Saturday
    assert frame["opened_at_month"].tolist()[::2] == [3.0, 3.0]
    assert frame["opened_at_age_days"].tolist()[::2] == [10.0, 1.0]
    derived = frame[s.features.date_outputs]
    assert (derived.dtypes == "float64").all() and derived.iloc[1].isna().all()


def test_date_in_a_declared_format() -> None:
    s = spec(features={"numeric": ["x"], "dates": [{**DATES[1], "format": "%d/%m/%Y %H:%M"}]})
    frame = pd.DataFrame(
        {"ts": pd.to_datetime(["2024-03-14"], utc=True), "seen_at": ["04/03/2024 17:30"]}
    )
    assert date_features(s, frame) == []
    assert frame["seen_at_hour"].tolist() == [17.0]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            [20240304, 20240305],
            "date feature 'opened_at' holds numbers (e.g. [20240304, 20240305])",
        ),
        (
            ["2024-03-04", "soon"],
            "1 of 2 values of date feature 'opened_at' are not dates or datetimes (e.g. ['soon'])",
        ),
    ],
)
def test_values_that_are_not_dates_are_named(values: list[Any], expected: str) -> None:
    s = spec(features={"numeric": ["x"], "dates": [DATES[0]]})
    frame = pd.DataFrame({"ts": pd.to_datetime(["2024-03-14"] * 2, utc=True), "opened_at": values})
    problems = date_features(s, frame)
    assert [p.column for p in problems] == ["opened_at"]
    assert expected in problems[0].message and "Fix:" in problems[0].message
    assert "opened_at_month" not in frame.columns


# -- the model input per type -----------------------------------------------------------------


def test_model_input_of_every_type() -> None:
    s = spec()
    data = matrix(60)
    problems = date_features(s, data)
    assert problems == []
    x = fitting.features_of(data, s)
    for column in [*NUMERIC, *s.features.date_outputs]:
        assert x[column].dtype == "float64", column
    assert x["n_int"].isna().sum() == 7 and x["n_bool"].isna().sum() == 6
    assert x["n_float"].isna().sum() == 5
    for column in CATEGORICAL:
        assert x[column].dtype == object, column
        present = x[column].dropna()
        assert all(isinstance(v, str) for v in present), column
    assert set(x["c_bool"]) <= {"True", "False"}
    assert set(x["c_code"]) <= {"1", "2", "3", "4"}
    assert set(x["c_dict"]) <= {"a", "b", "c", "d"}
    assert x["c_str"].isna().sum() == 4


def test_encodings_target_above_the_cardinality_or_declared() -> None:
    data = matrix()
    assert data["c_high"].nunique() > MAX_ONEHOT_CATEGORIES
    chosen = fitting.encodings(spec(), data)
    assert chosen == {c: "target" if c == "c_high" else "onehot" for c in CATEGORICAL}
    declared = spec(
        features={
            "numeric": NUMERIC,
            "categorical": CATEGORICAL,
            "encodings": {"c_high": "onehot", "c_str": "target"},
        }
    )
    chosen = fitting.encodings(declared, data)
    assert chosen["c_high"] == "onehot" and chosen["c_str"] == "target"


def test_target_encoding_stays_bounded() -> None:
    """300 categories: one-hot grows a column per frequent value, the target encoder one."""
    data = matrix()
    date_features(spec(), data)
    only_high = {"numeric": ["n_float"], "categorical": ["c_high"]}
    widths = {}
    for encoding in ("onehot", "target"):
        s = spec(features={**only_high, "encodings": {"c_high": encoding}})
        model = fitting.fit(s, data)
        widths[encoding] = (
            model.named_steps["preprocess"].transform(fitting.features_of(data, s)).shape[1]
        )
        assert model.predict_proba(fitting.features_of(data.head(3), s)).shape == (3, 2)
    assert widths["target"] == 2
    assert widths["onehot"] > 40
    unseen = fitting.features_of(data.head(2).assign(c_high="shop_never_seen"), s)
    assert np.isfinite(model.predict_proba(unseen)).all()


def test_missing_categoricals_are_imputed_not_a_category_of_their_own() -> None:
    """A missing category reaches the model as NaN, which the imputer turns into
    '__missing__' as serving does; as None (what features_of gave before) the imputer left it
    and the encoder learned None, so served scores differed (by up to 0.16 on this data)."""
    s = spec(features={"numeric": ["n_float"], "categorical": ["c_str"]})
    data = matrix()
    x = fitting.features_of(data, s)
    assert x["c_str"].isna().sum() > 0 and not any(v is None for v in x["c_str"])
    model = fitting.fit(s, data)
    encoder = model.named_steps["preprocess"].named_transformers_["cat"].named_steps["onehot"]
    assert "__missing__" in list(encoder.categories_[0])
    assert None not in list(encoder.categories_[0])


def test_served_scores_equal_the_pipeline_on_every_type() -> None:
    """The service's numpy scorer (rows of Python scalars, None where missing, as JSON or the
    online store gives them) against the fitted pipeline, every type, a target-encoded column
    included."""
    s = spec()
    data = matrix()
    date_features(s, data)
    model = fitting.fit(s, data)
    x = fitting.features_of(data, s)
    columns = list(model.feature_names_in_)
    rows = x[columns].astype(object).where(x[columns].notna(), None).to_numpy().tolist()
    scorer = Scorer(model, columns, s.features.model_numeric, True)
    assert scorer.numpy_path
    np.testing.assert_allclose(scorer.score(rows), model.predict_proba(x)[:, 1], atol=1e-12)


# -- validation, the feature table and Feast types --------------------------------------------


def test_every_type_through_validation_and_the_feature_table(home: PlatformHome) -> None:
    s = spec()
    outcome = validate_batch(s, home, matrix())
    assert outcome.passed, outcome.summary()
    table = build_features(s, home, outcome.validated_path)
    schema = pq.read_schema(table.path)
    for column in CATEGORICAL:
        assert str(schema.field(column).type) == "string", column
    for column in s.features.date_outputs:
        assert str(schema.field(column).type) == "double", column
    fields = {f.name: f.dtype for f in view_def(s, home).fields}
    assert {fields[c] for c in CATEGORICAL} == {"string"}
    assert {fields[c] for c in s.features.date_outputs} == {"float64"}
    assert fields["n_bool"] == "bool" and fields["n_float"] == "float64"


def test_a_date_passed_raw_as_a_numeric_feature_fails_validation(home: PlatformHome) -> None:
    """The check failing on a case made to fail: the date column declared numeric."""
    s = spec(features={"numeric": ["n_float", "opened_at"], "categorical": ["c_str"]})
    outcome = validate_batch(s, home, matrix())
    assert not outcome.passed
    assert "numeric feature 'opened_at' holds timestamps" in outcome.summary()
    assert "features.dates" in outcome.summary()


def write_matrix_parquet(path: Path) -> pa.Table:
    """The matrix as a real Parquet file: dictionary-encoded columns, nullable integers and
    booleans, a date32 column and a tz-aware timestamp."""
    data = matrix()
    table = pa.Table.from_pandas(data, preserve_index=False)
    table = table.set_column(
        table.schema.get_field_index("c_str"),
        "c_str",
        pa.compute.dictionary_encode(table.column("c_str")),
    )
    pq.write_table(table, path)
    return table


def test_the_parquet_file_carries_the_real_types(tmp_path: Path) -> None:
    write_matrix_parquet(tmp_path / "tiny.parquet")
    schema = pq.read_schema(tmp_path / "tiny.parquet")
    types = {f.name: str(f.type) for f in schema}
    assert types["c_dict"].startswith("dictionary<values=string")
    assert types["c_str"].startswith("dictionary<values=string")
    assert types["opened_at"] == "date32[day]"
    assert types["seen_at"] == "timestamp[ns, tz=UTC]"
    assert types["n_int"] == "int64" and schema.field("n_int").nullable
    assert types["n_bool"] == "bool"


@pytest.mark.slow
def test_every_column_type_end_to_end(home: PlatformHome, tmp_path: Path) -> None:
    """One Parquet file with every type through the whole graph: validation (dates derived),
    dbt-free SQL features, the Feast registry, tuned training with a target-encoded column,
    evaluation with its signature and infra checks, registration."""
    write_matrix_parquet(tmp_path / "tiny.parquet")
    s = spec(tmp_path)
    result = materialize(s, home, selection="*tiny_registered_model")
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    checks = result.get_asset_check_evaluations()
    assert len(checks) >= 5
    failed = {c.check_name: c.description for c in checks if not c.passed}
    assert not failed, failed
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "tiny_registered_model" in materialized
    client = MlflowClient(tracking_uri=home.tracking_uri, registry_uri=home.tracking_uri)
    source = str(client.get_model_version_by_alias("tiny", "champion").source)
    if source.startswith("models:/"):
        source = client.get_logged_model(source.removeprefix("models:/")).artifact_location
    pre = mlflow.sklearn.load_model(source).named_steps["preprocess"]
    assert pre.named_transformers_["cat_target"].named_steps["target"].n_features_in_ == 1
    assert set(s.features.date_outputs) <= set(pre.feature_names_in_)
