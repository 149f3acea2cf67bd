"""Online evaluation of a multiclass rollout (issue 17): the default metric (macro F1) and
accuracy on the logged predicted class, checked against scikit-learn; the paired (shadow) and
two-sample (A/B) tests reach the verdicts they should; log loss and non-integer outcomes are
refused with the reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from ml_platform.online_evaluation import outcomes as oc
from ml_platform.online_evaluation import stats
from ml_platform.online_evaluation.evaluate import evaluate, plan_from_spec
from ml_platform_tests.evaluation.test_multiclass import CLASSES, mc_spec

N = 3_000


def _predicted(y: np.ndarray, right: float, seed: int) -> np.ndarray:
    """The true class with probability ``right``, else a uniformly drawn class."""
    rng = np.random.default_rng(seed)
    other = rng.choice(CLASSES, len(y))
    return np.where(rng.random(len(y)) < right, y, other)


def _outcomes(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice(CLASSES, N, p=[0.5, 0.3, 0.2])


def _log(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, mode: str) -> pd.DataFrame:
    """A joined prediction log: shadow logs both arms on every request row; A/B each arm on
    its half. ``score`` is the predicted class's probability (not used by these metrics)."""
    rows = []
    for i in range(len(y)):
        for arm, labels, version in (("champion", champion, "1"), ("challenger", challenger, "2")):
            if mode == "ab" and (arm == "challenger") != (i % 2 == 1):
                continue
            rows.append(
                {
                    "request_id": f"r{i}",
                    "row": 0,
                    "arm": arm,
                    "model_version": version,
                    "score": 0.6,
                    "label": int(labels[i]),
                    "outcome": float(y[i]),
                }
            )
    frame = pd.DataFrame(rows)
    frame["label"] = frame["label"].astype("Int64")
    return frame


def test_macro_f1_and_accuracy_match_sklearn() -> None:
    y = _outcomes()
    p = _predicted(y, 0.6, seed=1)
    assert stats.macro_f1(y.astype(float), p.astype(float)) == pytest.approx(
        f1_score(y, p, average="macro"), abs=1e-12
    )
    accuracy = stats.metric_value(stats.statistic("accuracy", True), y, p)
    assert accuracy == pytest.approx(accuracy_score(y, p), abs=1e-12)
    # A class only predicted (never true) counts, as in scikit-learn.
    assert stats.macro_f1(np.array([3.0, 3.0]), np.array([3.0, 9.0])) == pytest.approx(
        f1_score([3, 3], [3, 9], average="macro")
    )


def test_the_default_metric_is_online_and_log_loss_is_refused() -> None:
    plan = plan_from_spec(mc_spec())
    assert (plan.metric, plan.statistic, plan.prediction) == ("macro_f1", "macro_f1", "label")
    assert plan_from_spec(mc_spec(rollout={"metric": "accuracy"})).statistic == "class_accuracy"
    with pytest.raises(stats.StatsError, match=r"'log_loss'.*multiclass.*true class"):
        plan_from_spec(mc_spec(rollout={"metric": "log_loss"}))
    with pytest.raises(stats.StatsError, match=r"'roc_auc'.*use one of macro_f1, accuracy"):
        plan_from_spec(mc_spec(rollout={"metric": "roc_auc"}))


@pytest.mark.parametrize("mode", ["shadow", "ab"])
@pytest.mark.parametrize("metric", ["macro_f1", "accuracy"])
def test_verdicts_on_the_logged_class(mode: str, metric: str) -> None:
    spec = mc_spec(rollout={"metric": metric, "test": "sequential", "margin": 0.02})
    plan = plan_from_spec(spec)
    y = _outcomes()
    champion = _predicted(y, 0.7, seed=2)

    same = evaluate(_log(y, champion, champion, mode), mode, "1", "2", plan)
    worse = evaluate(_log(y, champion, _predicted(y, 0.3, seed=3), mode), mode, "1", "2", plan)
    assert worse.verdict == "worse", worse.summary()
    if mode == "shadow":  # identical predictions on the same rows: d = 0 exactly
        assert same.verdict == "not_worse" and same.d == 0.0, same.summary()
        expected = f1_score if metric == "macro_f1" else accuracy_score
        kwargs = {"average": "macro"} if metric == "macro_f1" else {}
        challenger = _predicted(y, 0.3, seed=3)
        d = expected(y, challenger, **kwargs) - expected(y, champion, **kwargs)
        assert worse.d == pytest.approx(d, abs=1e-12)
        assert worse.arms["champion"]["value"] == pytest.approx(expected(y, champion, **kwargs))
    else:
        assert same.verdict in ("not_worse", "inconclusive"), same.summary()
        assert same.n_champion == same.n_challenger == N // 2


def test_outcomes_of_a_multiclass_pipeline_are_integer_classes() -> None:
    spec = mc_spec()
    frame = pd.DataFrame({"row_id": [1, 2], "at": ["2026-12-01T12:00:00Z"] * 2, "kind": [5, 7.0]})
    assert oc.normalise(frame, spec, timestamp_column="at")["outcome"].tolist() == [5.0, 7.0]
    with pytest.raises(
        oc.OutcomeError, match=r"'kind': a multiclass label must be an integer.*row 2: 2.5"
    ):
        oc.normalise(frame.assign(kind=[5, 2.5]), spec, timestamp_column="at")
