"""The simulation's framework-free parts: which days land with how much drift, the verdict on a
timeline, and the plot. The daemon-driven loop itself is test_closed_loop.py."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml_platform.home import PlatformHome
from ml_platform.ingest.datagen import START_DAY, landed_days
from ml_platform.monitoring.history import BatchRecord
from ml_platform.monitoring.simulation import (
    RunInfo,
    SimulationError,
    SimulationPlan,
    TimelineRow,
    assess,
    land_day,
    land_history,
    landing_dir,
    plot,
)
from ml_platform_tests.helpers import small_spec

PLAN = SimulationPlan(days=4, drift_from=3, drift=1.0, events_per_day=300, history_days=5)


def test_days_land_in_order_with_drift_from_the_given_day(home: PlatformHome) -> None:
    landing = landing_dir(small_spec(), home)
    assert landing == home.landing / "loan_default"
    land_history(PLAN, landing)
    assert len(landed_days(landing)) == 5
    frames = []
    for day in range(1, 5):
        path, rows = land_day(PLAN, landing, day)
        assert path.name == f"applications_{PLAN.date_of(day).isoformat()}.parquet"
        frames.append(pd.read_parquet(path))
        assert rows == len(frames[-1]) > 200
    assert landed_days(landing)[-1] == PLAN.date_of(4)
    assert PLAN.date_of(1) == landed_days(landing)[5] and landed_days(landing)[0] == START_DAY
    # drift lowers credit scores (generator: -40 points at drift 1)
    stable = pd.concat(frames[:2])["credit_score"].mean()
    drifted = pd.concat(frames[2:])["credit_score"].mean()
    assert stable - drifted > 25
    with pytest.raises(SimulationError, match="already holds"):
        land_history(PLAN, landing)
    with pytest.raises(SimulationError, match="should be"):
        land_day(PLAN, landing, 2)


def test_a_pipeline_on_other_files_is_refused(home: PlatformHome) -> None:
    spec = small_spec()
    spec = spec.model_copy(
        update={"source": spec.source.model_copy(update={"path": "{home}/landing/x/*.csv"})}
    )
    with pytest.raises(SimulationError, match="demo generator"):
        landing_dir(spec, home)


def test_bad_plans_are_refused() -> None:
    with pytest.raises(SimulationError):
        SimulationPlan(days=0, drift_from=1, drift=0.5, events_per_day=10, history_days=3)
    with pytest.raises(SimulationError):
        SimulationPlan(days=3, drift_from=1, drift=1.5, events_per_day=10, history_days=3)


def _row(day: int, trigger: str | None = None, decisions: list[str] | None = None) -> TimelineRow:
    runs = [RunInfo(f"m{day:07d}", "loan_default_monitoring_job", "SUCCESS")]
    if trigger:
        runs.append(
            RunInfo(f"t{day:07d}", "loan_default_training_job", "SUCCESS", trigger, "{}", 9)
        )
    date = PLAN.date_of(day).isoformat()
    return TimelineRow(
        day, date, PLAN.drift_on(day), 300, True, [], None, "", runs, decisions or []
    )


def test_the_verdict_names_what_held_and_what_did_not() -> None:
    good = [_row(1), _row(2), _row(3), _row(4, "drift", ["hold v2: not better"])]
    assert [v.held for v in assess(PLAN, good)] == [True, True, True]
    early = [_row(1, "drift"), _row(2), _row(3, "drift"), _row(4, "drift")]
    verdicts = assess(PLAN, early)
    assert [v.held for v in verdicts] == [False, False, False]
    assert "2 retraining run(s) from day 3 on" in verdicts[1].detail
    stable = SimulationPlan(days=4, drift_from=9, drift=1.0, events_per_day=300, history_days=5)
    assert [v.claim for v in assess(stable, [_row(1), _row(2)])] == [
        "no retraining while the data is stable"
    ]


def test_plot_draws_drift_and_metric_per_day(tmp_path: Path) -> None:
    rows = [_row(day, "drift" if day == 4 else None) for day in range(1, 5)]
    records = [
        BatchRecord(
            "loan_default",
            row.date,
            "1",
            f"2026-01-01T00:00:0{row.day}",
            None,
            300,
            True,
            row.day >= 3,
            False,
            [],
            {
                "drift": {
                    "features": [
                        {"feature": "credit_score", "value": 0.05 * row.day**2, "threshold": 0.2},
                        {"feature": "purpose", "value": 0.01, "threshold": 0.1},
                    ]
                },
                "realized": {"roc_auc": {"value": 0.7 - 0.01 * row.day, "ci_low": 0.6}},
                "estimated": {"roc_auc": 0.7},
            },
        )
        for row in rows
    ]
    path = plot(PLAN, rows, records, "roc_auc", 0.65, tmp_path / "sim.png")
    assert path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
