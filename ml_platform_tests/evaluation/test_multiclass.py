"""Multiclass classification (issue 17): metrics and baselines on a known case checked against
scikit-learn, the gates and the champion comparison on probability matrices, the per-class
diagnostics, and the errors a multiclass spec or label gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from ml_platform.evaluation import baselines, diagnostics, evaluate, report_artifacts
from ml_platform.ingest import prepare, splits
from ml_platform.spec import PipelineSpec, SpecError, parse_spec
from ml_platform.training import fitting
from ml_platform.training.metrics import higher_is_better, multiclass_metrics, score
from ml_platform.training.train import class_names, holdout_metrics, holdout_target

CLASSES = [3, 5, 7]  # class values that are not 0..K-1, as a user's codes may be


def mc_spec(**updates: Any) -> PipelineSpec:
    attributes: dict[str, Any] = {
        "name": "grapes",
        "source": {"path": "/nonexistent/grapes.csv"},
        "entity_key": "row_id",
        "label": "kind",
        "task": "multiclass_classification",
        "features": {"numeric": ["x", "z"], "categorical": ["region"]},
        "slices": ["region"],
        "model": {
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 300},
        },
        "gates": {"bootstrap_samples": 200, "min_slice_rows": 100},
        "monitoring": {"enabled": False},
        "seed": 7,
    }
    attributes.update(updates)
    return parse_spec(attributes, "grapes/defs.yaml")


def data(n: int = 1_500, seed: int = 4) -> pd.DataFrame:
    """Three classes (3, 5, 7; 50/30/20 %) separable by x and z, two regions."""
    rng = np.random.default_rng(seed)
    code = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    return pd.DataFrame(
        {
            "row_id": np.arange(1, n + 1),
            "x": code + rng.normal(0, 0.6, n),
            "z": (code == 1) + rng.normal(0, 0.6, n),
            "region": rng.choice(["north", "south"], n),
            "kind": np.asarray(CLASSES, dtype=float)[code],
        }
    )


def proba(y: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """Probabilities whose argmax is right more often the smaller ``noise`` is."""
    rng = np.random.default_rng(seed)
    logits = 2.0 * np.eye(3)[y] + rng.normal(0, noise, (len(y), 3))
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


# ---- metrics ---------------------------------------------------------------------------------


def test_metrics_on_a_known_case_match_sklearn() -> None:
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
    p = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.6, 0.3, 0.1],
            [0.2, 0.7, 0.1],  # wrong: class 1
            [0.1, 0.8, 0.1],
            [0.5, 0.4, 0.1],  # wrong: class 0
            [0.1, 0.1, 0.8],
            [0.2, 0.2, 0.6],
            [0.3, 0.1, 0.6],
            [0.1, 0.5, 0.4],  # wrong: class 1
            [0.7, 0.2, 0.1],
        ]
    )
    m = multiclass_metrics(y, p, CLASSES)
    pred = p.argmax(axis=1)
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["weighted_f1"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p))
    precision, recall, f1, _ = skm.precision_recall_fscore_support(y, pred)
    for k, c in enumerate(CLASSES):
        assert m[f"precision_class_{c}"] == pytest.approx(precision[k])
        assert m[f"recall_class_{c}"] == pytest.approx(recall[k])
        assert m[f"f1_class_{c}"] == pytest.approx(f1[k])
    # hand-checked: class 0 has 4 rows, 3 right and 1 false positive (row 4): P = R = 3/4
    assert m["precision_class_3"] == pytest.approx(0.75) and m["recall_class_3"] == 0.75
    # the bootstrap's fast single scores are the same numbers
    for name in ("macro_f1", "weighted_f1", "log_loss", "accuracy"):
        assert score(name, y, p) == pytest.approx(m[name], abs=1e-12), name
    assert higher_is_better("macro_f1") and higher_is_better("f1_class_5")
    assert not higher_is_better("log_loss")


def test_single_scores_match_sklearn_on_random_cases() -> None:
    """Including resamples where a class is never predicted or never present."""
    rng = np.random.default_rng(11)
    for _ in range(100):
        n, k = int(rng.integers(2, 30)), int(rng.integers(3, 6))
        p, y = rng.dirichlet(np.ones(k), size=n), rng.integers(0, k, n)
        labels = list(range(k))
        for average in ("macro", "weighted"):
            want = skm.f1_score(y, p.argmax(1), labels=labels, average=average, zero_division=0)
            assert score(f"{average}_f1", y, p) == pytest.approx(want, abs=1e-12)
        assert score("log_loss", y, p) == pytest.approx(skm.log_loss(y, p, labels=labels))
    with pytest.raises(ValueError, match="roc_auc' cannot be used .* multiclass"):
        score("roc_auc", y, p)


# ---- baselines and class alignment -------------------------------------------------------------


def test_baselines_are_the_prior_and_a_multinomial_linear_model() -> None:
    spec, frame = mc_spec(), data()
    history, holdout = frame.iloc[:1000], frame.iloc[1000:].reset_index(drop=True)
    classes = np.asarray(CLASSES, dtype=float)
    got = baselines.baseline_scores(spec, history, holdout, classes)
    prior = history["kind"].value_counts(normalize=True).reindex(classes).to_numpy()
    assert got["dummy"].shape == (len(holdout), 3)
    np.testing.assert_allclose(got["dummy"], np.tile(prior, (len(holdout), 1)))
    y = holdout_target(spec, holdout, classes)
    dummy = holdout_metrics(spec, y, got["dummy"], CLASSES)
    # majority class (3) for every row: its recall is 1, the others' 0; log loss is the entropy
    majority = (y == 0).mean()
    assert dummy["accuracy"] == pytest.approx(majority)
    assert dummy["recall_class_3"] == 1.0 and dummy["recall_class_7"] == 0.0
    assert dummy["log_loss"] == pytest.approx(skm.log_loss(y, got["dummy"]))
    linear = holdout_metrics(spec, y, got["linear"], CLASSES)
    assert linear["macro_f1"] > 0.7 > dummy["macro_f1"]


def test_a_model_missing_a_class_is_scored_against_the_candidates_classes() -> None:
    spec, frame = mc_spec(), data()
    without_7 = frame[frame["kind"] != 7.0]
    model = fitting.fit(spec, without_7)
    classes = np.asarray(CLASSES, dtype=float)
    p = fitting.scores(spec, model, frame, classes)
    assert p.shape == (len(frame), 3)
    assert (p[:, 2] == 0).all() and np.allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[:, :2], fitting.scores(spec, model, frame))
    with pytest.raises(ValueError, match=r"label value\(s\) \[7.0\] are not classes"):
        fitting.label_codes(frame["kind"].to_numpy(), fitting.classes_of(model))


# ---- gates and the champion comparison ---------------------------------------------------------


def _scored(
    n: int = 3_000,
) -> tuple[PipelineSpec, np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(5)
    y = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    holdout = pd.DataFrame({"region": rng.choice(["north", "south"], n)})
    return mc_spec(), y, proba(y, 0.8, 1), proba(y, 3.0, 2), holdout


def test_comparison_rules_on_macro_f1() -> None:
    spec, y, good, weak, _ = _scored()
    assert spec.primary_metric == "macro_f1"
    better = evaluate.comparison_gate(spec, "g", "weak", y, good, weak, 0.0, "better")
    assert better.passed and better.message.startswith("macro_f1: candidate")
    worse = evaluate.comparison_gate(spec, "g", "good", y, weak, good, 0.01, "better")
    assert not worse.passed and "not above 0" in worse.message
    same = evaluate.comparison_gate(spec, "g", "same", y, good, good, 0.01, "non_inferior")
    assert same.passed and same.evidence["overall"]["diff"] == 0.0
    assert not evaluate.comparison_gate(spec, "g", "good", y, weak, good, 0.01, "not_worse").passed


def test_log_loss_as_champion_metric_is_minimised() -> None:
    spec, y, good, weak, _ = _scored()
    spec = mc_spec(gates={"champion_metric": "log_loss", "bootstrap_samples": 200})
    gate = evaluate.comparison_gate(spec, "g", "weak", y, good, weak, 0.0, "better")
    comp = gate.evidence["overall"]
    assert gate.passed and comp["challenger"] < comp["champion"] and comp["diff"] > 0


def test_champion_gate_fails_a_candidate_worse_on_one_slice() -> None:
    spec, y, good, _, holdout = _scored()
    cand = good.copy()
    south = (holdout["region"] == "south").to_numpy()
    cand[south] = proba(y[south], 8.0, 3)  # near useless in the south
    champion = evaluate.Champion("4", good, None)
    gate = evaluate.champion_gate(spec, champion, y, cand, holdout)
    assert not gate.passed and "slice region=south" in gate.message
    assert gate.evidence["champion_version"] == "4"
    assert evaluate.champion_gate(spec, champion, y, good, holdout).passed


def test_slice_metrics_carry_the_per_class_metrics() -> None:
    spec, y, good, _, holdout = _scored()
    out = evaluate.slice_metrics(spec, holdout, good, y, CLASSES)
    north = (holdout["region"] == "north").to_numpy()
    assert out["region"]["north"]["rows"] == north.sum()
    assert out["region"]["north"]["macro_f1"] == pytest.approx(
        skm.f1_score(y[north], good[north].argmax(1), average="macro")
    )
    assert "f1_class_7" in out["region"]["south"]


# ---- diagnostics ------------------------------------------------------------------------------


def test_per_class_calibration_and_confusion(tmp_path: Path) -> None:
    spec, frame = mc_spec(), data()
    model = fitting.fit(spec, frame.iloc[:1000])
    holdout = frame.iloc[1000:].reset_index(drop=True)
    scores = fitting.scores(spec, model, holdout)
    found, pngs = report_artifacts.diagnose(spec, model, holdout, scores, tmp_path)
    y = holdout_target(spec, holdout, fitting.classes_of(model))
    assert found["classes"] == CLASSES == class_names(fitting.classes_of(model))
    assert found["confusion_matrix"] == skm.confusion_matrix(y, scores.argmax(1)).tolist()
    for k, c in enumerate(CLASSES):
        cal = found["calibration_per_class"][str(c)]
        want = diagnostics.calibration((y == k).astype(int), scores[:, k])
        assert cal["expected_calibration_error"] == pytest.approx(want.expected_calibration_error)
        assert Path(pngs[f"calibration_class_{c}"]).stat().st_size > 1000
    assert Path(pngs["confusion_matrix"]).exists()
    assert set(found["permutation_importance"]) == {"x", "z", "region"}
    # a class absent from the holdout has no curve rather than a crash
    one = diagnostics.calibration_per_class(np.zeros(50, int), scores[:50], CLASSES)
    assert one["3"] is None and one["5"] is None and one["7"] is None


# ---- errors -----------------------------------------------------------------------------------


def test_positive_label_is_refused_for_multiclass() -> None:
    with pytest.raises(SpecError) as err:
        mc_spec(positive_label=5)
    assert "positive_label 5 is only for binary_classification; task is " in str(err.value)
    assert "'multiclass_classification'. Fix: remove positive_label" in str(err.value)


def test_unknown_task_lists_multiclass() -> None:
    with pytest.raises(SpecError, match="multiclass_classification"):
        mc_spec(task="multiclass")


def _problem(values: object) -> str:
    _, problems = prepare.prepare(mc_spec(), data(30).assign(kind=values))
    assert [p.column for p in problems] == ["kind"], problems
    return problems[0].message


def test_labels_need_three_integer_classes() -> None:
    prepared, problems = prepare.prepare(
        mc_spec(), data(30).assign(kind=lambda f: f.kind.astype(int))
    )
    assert problems == [] and prepared["kind"].dtype == "float64"
    two = _problem(np.tile([0, 1], 15))
    assert two == (
        "multiclass_classification needs at least 3 classes; label 'kind' holds 2: [0, 1]. "
        "Fix: declare task: binary_classification (with positive_label: 1 if it is not 0/1), "
        "or land rows of the other classes"
    )
    text = _problem(np.tile(["red", "white", "rose"], 10))
    assert text.startswith(
        "multiclass_classification needs the label 'kind' as integer class values "
        "(e.g. 0, 1, 2); 30 values are not (e.g. ['red', 'white', 'rose'])"
    )
    assert "Fix: map each class to an integer code upstream" in text
    assert "(e.g. ['2.5'])" in _problem(np.r_[np.tile([0.0, 1.0, 2.0], 9), 2.5, 1.0, 1.0])


def test_stratified_split_keeps_every_class_in_every_window() -> None:
    spec, frame = mc_spec(), data(300)
    spec_frame = prepare.add_constant_event_time(spec, frame)
    a = splits.assign(spec_frame, spec)
    assert a.kind == "random"
    for window in (splits.TRAIN, splits.VALIDATION, splits.TEST):
        assert set(frame["kind"].to_numpy()[a.window == window]) == set(map(float, CLASSES))
    rare = spec_frame.assign(kind=np.r_[[9.0, 9.0], frame["kind"].to_numpy()[2:]])
    with pytest.raises(splits.SplitError, match="class 9 of label 'kind' has 2 row"):
        splits.assign(rare, spec)


def test_predict_is_one_class_value_per_row_for_serving_and_monitoring() -> None:
    """``fitting.predict`` (monitoring's score, like the pyfunc flavour serving loads) gives the
    most probable class's value, one float per row; only ``fitting.scores`` is a matrix."""
    from ml_platform.monitoring.reference import score as monitoring_score

    spec, frame = mc_spec(), data()
    model = fitting.fit(spec, frame.iloc[:1000])
    one = fitting.predict(spec, model, frame)
    assert one.shape == (len(frame),) and set(one) <= set(map(float, CLASSES))
    matrix = fitting.scores(spec, model, frame)
    np.testing.assert_array_equal(one, fitting.classes_of(model)[matrix.argmax(axis=1)])
    np.testing.assert_array_equal(monitoring_score(model, frame, spec), one)
