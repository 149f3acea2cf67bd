"""Gate rules on synthetic scores: each verdict and its message, without training anything."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_platform.components.gates import gate_results
from ml_platform.evaluation import evaluate
from ml_platform.evaluation.gate import Gate
from ml_platform_tests.helpers import small_spec

SPEC = small_spec()


def _data(n: int = 3_000) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, n)
    good = y + rng.normal(0, 0.7, n)
    weak = y + rng.normal(0, 2.0, n)
    holdout = pd.DataFrame(
        {"purpose": rng.choice(["car", "home"], n), "region": rng.choice(["n", "s"], n)}
    )
    return y, good, weak, holdout


def test_comparison_rules() -> None:
    y, good, weak, _ = _data()
    assert evaluate.comparison_gate(SPEC, "g", "weak", y, good, weak, 0.0, "better").passed
    worse = evaluate.comparison_gate(SPEC, "g", "good", y, weak, good, 0.01, "better")
    assert not worse.passed and "not above 0" in worse.message
    # An identical model is non-inferior and not worse, but not significantly better.
    assert evaluate.comparison_gate(SPEC, "g", "same", y, good, good, 0.01, "non_inferior").passed
    assert not evaluate.comparison_gate(SPEC, "g", "same", y, good, good, 0.0, "better").passed
    assert not evaluate.comparison_gate(SPEC, "g", "good", y, weak, good, 0.01, "not_worse").passed


def test_a_slice_shown_worse_fails_the_champion_gate() -> None:
    y, good, _, holdout = _data()
    cand = good.copy()
    home = (holdout["purpose"] == "home").to_numpy()
    cand[home] = np.random.default_rng(9).normal(size=home.sum())  # useless on one slice
    gate = evaluate.comparison_gate(
        SPEC, "c", "champion", y, cand, good, 0.005, "non_inferior", holdout=holdout
    )
    assert not gate.passed and "slice purpose=home" in gate.message
    assert set(gate.evidence["slices"]) == {"purpose=car", "purpose=home", "region=n", "region=s"}


def test_threshold_gates_fail_on_a_missing_metric() -> None:
    spec = small_spec(
        gates=SPEC.gates.model_copy(
            update={"min_metrics": {"roc_auc": 0.6}, "max_metrics": {"brier": 0.2}}
        )
    )
    gates = {g.name: g for g in evaluate.threshold_gates(spec, {"roc_auc": 0.7})}
    assert gates["roc_auc_above_floor"].passed
    assert not gates["brier_below_ceiling"].passed  # absent metric -> NaN -> fails


def test_checks_say_why_and_no_champion_passes() -> None:
    names = evaluate.gate_names(SPEC)
    gates = [
        Gate(n, n != "beats_dummy_baseline", f"msg {n}")
        for n in names
        if n != evaluate.CHAMPION_GATE
    ]
    report = evaluate.EvaluationReport(SPEC.name, "r", {}, {}, {}, None, None, gates)
    checks = {c.check_name: c for c in gate_results(SPEC, report)}
    assert set(checks) == set(names)
    assert not checks["beats_dummy_baseline"].passed
    assert checks["beats_dummy_baseline"].description == "msg beats_dummy_baseline"
    assert checks[evaluate.CHAMPION_GATE].passed  # first model: nothing to compare with
    assert not report.passed
