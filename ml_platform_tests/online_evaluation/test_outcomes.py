"""Outcomes: validation errors that name column, row and value; append-only, idempotent storage;
the join to the prediction log (exact by request id, else per entity within the window); the
`ml-platform labels` command on a real prediction log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ml_platform.cli import app
from ml_platform.home import PlatformHome
from ml_platform.online_evaluation import outcomes as oc
from ml_platform.serving.prediction_log import PredictionLog, read_predictions
from ml_platform.spec import PipelineSpec

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(days=7)


def _frame(**columns: list[object]) -> pd.DataFrame:
    base: dict[str, list[object]] = {
        "customer_id": [1, 2],
        "applied_at": ["2026-12-01T12:00:00Z", "2026-12-02 08:00"],
        "defaulted": [0, 1],
    }
    return pd.DataFrame({**base, **columns})


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (_frame().drop(columns="customer_id"), r"missing column 'customer_id' \(the spec's entity"),
        (_frame(applied_at=["2026-12-01", "yesterday"]), r"'applied_at'.*data row 2: 'yesterday'"),
        (_frame(defaulted=[0, 2]), r"'defaulted': a classifier's label must be 0 or 1.*row 2: 2"),
        (_frame(defaulted=[0, None]), r"'defaulted'.*0 or 1.*row 2"),
        (_frame(customer_id=[1, None]), r"'customer_id': empty entity key at data row 2"),
    ],
)
def test_bad_outcomes_name_column_row_and_value(
    demo_spec: PipelineSpec, frame: pd.DataFrame, message: str
) -> None:
    with pytest.raises(oc.OutcomeError, match=message):
        oc.normalise(frame, demo_spec)


def test_storage_is_idempotent_and_keeps_the_latest_label(
    home: PlatformHome, demo_spec: PipelineSpec
) -> None:
    first = oc.store(home, "loan_default", oc.normalise(_frame(), demo_spec))
    again = oc.store(home, "loan_default", oc.normalise(_frame().iloc[::-1], demo_spec))
    assert first.new and not again.new and first.path == again.path
    corrected = oc.store(home, "loan_default", oc.normalise(_frame(defaulted=[1, 1]), demo_spec))
    assert corrected.new
    stored = oc.read_outcomes(home, "loan_default")
    assert len(stored) == 2 and stored["outcome"].tolist() == [1.0, 1.0]
    assert not list(oc.outcomes_dir(home, "loan_default").glob(".*"))  # no temporaries left


def _log(rows: list[tuple[str, int, str, str, str, timedelta]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "request_id": rid,
                "row": row,
                "entity": entity,
                "arm": arm,
                "model_version": version,
                "served": arm == "champion",
                "logged_at": pd.Timestamp(T0 + offset),
                "score": 0.5,
            }
            for rid, row, entity, arm, version, offset in rows
        ]
    )


def _outcomes(rows: list[tuple[str, timedelta, float, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entity": pd.Series([r[0] for r in rows], dtype="string"),
            "outcome_at": pd.Series([pd.Timestamp(T0 + r[1]) for r in rows]).astype(
                "datetime64[us, UTC]"
            ),
            "outcome": [r[2] for r in rows],
            "request_id": pd.Series([r[3] for r in rows], dtype="string"),
        }
    )


def test_join_rule() -> None:
    h = timedelta(hours=1)
    log = _log(
        [
            ("a", 0, "1", "champion", "1", 0 * h),  # entity 1, first request
            ("a", 0, "1", "challenger", "2", 0 * h),  # its shadow row
            ("b", 0, "1", "champion", "1", 5 * h),  # entity 1 again, later
            ("b", 0, "1", "challenger", "2", 5 * h),
            ("c", 0, "2", "champion", "1", 0 * h),  # entity 2
            ("c", 1, "3", "champion", "1", 0 * h),  # entity 3, row 1 of request c
        ]
    )
    outs = _outcomes(
        [
            ("1", 6 * h, 1.0, None),  # latest prediction at or before: request b
            ("1", 7 * h, 0.0, "a"),  # exact: request a, though b is later
            ("2", -1 * h, 1.0, None),  # before any prediction of entity 2: no match
            ("3", 8 * 24 * h, 1.0, None),  # 8 days after: outside the 7-day window
        ]
    )
    joined = oc.join_outcomes(log, outs, WINDOW).set_index(["request_id", "row", "arm"])
    assert joined.loc[("b", 0, "champion"), "outcome"] == 1.0
    assert joined.loc[("b", 0, "challenger"), "outcome"] == 1.0  # both arms of the request row
    assert joined.loc[("a", 0, "champion"), "outcome"] == 0.0
    assert joined.loc[("a", 0, "challenger"), "outcome"] == 0.0
    assert pd.isna(joined.loc[("c", 0, "champion"), "outcome"])
    assert pd.isna(joined.loc[("c", 1, "champion"), "outcome"])
    wider = oc.join_outcomes(log, outs, timedelta(days=9)).set_index(["request_id", "row", "arm"])
    assert wider.loc[("c", 1, "champion"), "outcome"] == 1.0


def _write_log(home: PlatformHome, n: int) -> None:
    log = PredictionLog(home, "loan_default")
    log.append(
        [
            {
                "request_id": f"req-{i}",
                "row": 0,
                "logged_at": T0 + timedelta(minutes=i),
                "entity": str(i),
                "model_version": version,
                "arm": arm,
                "mode": "shadow",
                "served": arm == "champion",
                "score": 0.3,
                "features": {"amount": 100.0},
            }
            for i in range(n)
            for arm, version in (("champion", "1"), ("challenger", "2"))
        ]
    )
    log.close()


def test_labels_command_stores_and_reports_the_join(home: PlatformHome, tmp_path: Path) -> None:
    _write_log(home, 10)
    assert len(read_predictions(home, "loan_default")) == 20
    data = tmp_path / "outcomes.csv"
    pd.DataFrame(
        {
            "customer_id": [0, 1, 2, 99],
            "applied_at": [(T0 + timedelta(hours=2)).isoformat()] * 4,
            "defaulted": [0, 1, 0, 1],
            "request_id": ["req-0", "", "", ""],  # one exact, two by window, one unknown
        }
    ).to_csv(data, index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["labels", "loan_default", "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["new"] and report["rows"] == 4 and report["with_request_id"] == 1
    assert report["joined"] == {
        "request_rows": 3,
        "outcomes_unmatched": 1,
        "rows_challenger": 3,
        "rows_champion": 3,
    }
    again = runner.invoke(app, ["labels", "loan_default", "--data", str(data)])
    assert again.exit_code == 0 and "already stored" in again.stdout


def test_labels_command_rejects_bad_input(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("customer_id,applied_at,defaulted\n1,2026-12-01,yes\n")
    result = CliRunner().invoke(app, ["labels", "loan_default", "--data", str(data)])
    assert result.exit_code == 2
    assert "'defaulted': a classifier's label must be 0 or 1, not data row 1: 'yes'" in (
        result.stderr
    )
    assert not oc.outcomes_dir(PlatformHome(Path(tmp_path / "home")), "loan_default").exists()


def test_positive_label_maps_to_one(demo_spec: PipelineSpec) -> None:
    spec = demo_spec.model_copy(update={"positive_label": "yes"})
    frame = oc.normalise(_frame(defaulted=["yes", "no"]), spec)
    assert frame["outcome"].tolist() == [1.0, 0.0]
    with pytest.raises(oc.OutcomeError, match="two values, found 3"):
        oc.normalise(
            pd.concat([_frame(defaulted=["yes", "no"]), _frame(defaulted=["maybe", "no"])]), spec
        )
