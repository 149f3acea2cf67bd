"""Serving a multiclass champion (issue 17): the numpy path's probability matrix is exactly the
fitted pipeline's ``predict_proba`` (missing values and an unseen category included), and a
response row carries the most probable class as ``label``, its probability as ``score`` and
every class's probability; the prediction log keeps that score and label."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml_platform.home import PlatformHome
from ml_platform.serving import schemas
from ml_platform.serving.models import CHAMPION, Deployment, ServedModel
from ml_platform.serving.prediction_log import PredictionLog, read_predictions
from ml_platform.serving.service import Service
from ml_platform.serving.vectorize import Scorer
from ml_platform.spec import PipelineSpec
from ml_platform.training import fitting
from ml_platform_tests.evaluation.test_multiclass import CLASSES, data, mc_spec

HGB = {"estimator": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {"max_iter": 30}}


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[list[Any]]:
    """Rows as the service builds them from JSON: Python scalars, None where missing."""
    out = frame[columns].astype(object).where(frame[columns].notna(), None)
    return out.to_numpy().tolist()


def _fitted(spec: PipelineSpec) -> tuple[Any, pd.DataFrame]:
    frame = data(1_200)
    pipeline = fitting.fit(spec, frame.iloc[:900])
    holdout = frame.iloc[900:].copy()
    holdout.loc[holdout.index[:20], "x"] = np.nan
    holdout.loc[holdout.index[10:30], "region"] = None
    holdout.loc[holdout.index[30:40], "region"] = "mars"  # never seen in training
    return pipeline, holdout


def _scorer(spec: PipelineSpec, pipeline: Any) -> Scorer:
    columns = list(pipeline.feature_names_in_)
    return Scorer(pipeline, columns, spec.features.model_numeric, spec.is_classification)


@pytest.mark.parametrize("model", [None, HGB], ids=["logistic", "hgb"])
def test_probabilities_match_predict_proba_exactly(model: dict[str, Any] | None) -> None:
    spec = mc_spec() if model is None else mc_spec(model=model)
    pipeline, holdout = _fitted(spec)
    scorer = _scorer(spec, pipeline)
    assert scorer.numpy_path
    expected = pipeline.predict_proba(fitting.features_of(holdout, spec))
    rows = _rows(holdout, scorer.columns)
    got = scorer.probabilities(rows)
    assert got.shape == (300, 3)
    np.testing.assert_array_equal(got, expected)
    one = np.vstack([scorer.probabilities([row]) for row in rows[:40]])
    np.testing.assert_allclose(one, expected[:40], rtol=0, atol=1e-12)
    assert scorer.classes == [float(c) for c in CLASSES]
    # The DataFrame fallback gives the same matrix.
    fallback = _scorer(spec, pipeline)
    object.__setattr__(fallback, "parts", None)
    np.testing.assert_array_equal(fallback.probabilities(rows), expected)


def _service(home: PlatformHome, spec: PipelineSpec, pipeline: Any) -> Service:
    service = Service(home, [spec], prediction_log=False)
    model = ServedModel(
        pipeline=spec.name,
        alias=CHAMPION,
        version="1",
        run_id="r",
        feature_service=None,
        scorer=_scorer(spec, pipeline),
        online=None,  # every feature comes in the request
        loaded_at=time.time(),
    )
    service.deployments[spec.name] = Deployment(spec.name, champion=model)
    return service


def _request_rows(holdout: pd.DataFrame) -> list[dict[str, Any]]:
    rows = holdout[["row_id", "x", "z", "region"]].astype(object)
    rows = rows.where(holdout[["row_id", "x", "z", "region"]].notna(), None)
    return [
        {k: (int(v) if k == "row_id" else v) for k, v in r.items()} for r in rows.to_dict("records")
    ]


def test_response_carries_class_probability_and_all_probabilities(home: PlatformHome) -> None:
    spec = mc_spec()
    pipeline, _ = _fitted(spec)
    holdout = data(1_200).iloc[900:]  # no missing value: every feature is in the request
    service = _service(home, spec, pipeline)
    service.logs[spec.name] = PredictionLog(home, spec.name, flush_seconds=0.05)
    rows = _request_rows(holdout.head(60))
    answer = service.answer(spec.name, rows, "req-1")
    service.logs[spec.name].close()

    body = schemas.PredictResponse(
        pipeline=spec.name, request_id="req-1", predictions=answer.predictions
    )
    expected_proba = pipeline.predict_proba(fitting.features_of(holdout.head(60), spec))
    expected_class = pipeline.predict(fitting.features_of(holdout.head(60), spec))
    labels = [p.label for p in body.predictions]
    assert labels == [int(c) for c in expected_class]
    assert set(labels) <= set(CLASSES) and len(set(labels)) > 1
    for p, row in zip(body.predictions, expected_proba, strict=True):
        assert p.probabilities == {str(c): v for c, v in zip(CLASSES, row, strict=True)}
        assert p.score == row.max() == p.probabilities[str(p.label)]
    # A 0.5 threshold would have said nothing here: many rows' best class is below it.
    assert any(p.score < spec.serving.threshold for p in body.predictions)

    logged = read_predictions(home, spec.name)
    assert len(logged) == 60
    np.testing.assert_array_equal(logged["score"].to_numpy(), [p.score for p in body.predictions])
    assert logged["label"].astype(int).tolist() == labels


@pytest.mark.slow
def test_wine_champion_served_end_to_end(home: PlatformHome) -> None:
    """`ml-platform example wine` trains and promotes a real multiclass champion; the service
    loads it from the registry by alias (its feature service, its numpy path) and answers with
    the classes and probabilities of the registered pipeline itself."""
    import asyncio

    from ml_platform.cli import examples
    from ml_platform_tests.helpers import ml_platform

    result = ml_platform("example", "wine", timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    spec = examples.load_example("wine")
    wines = pd.read_csv(home.landing / "wine" / "wine.csv").head(40)
    rows = [
        {
            spec.entity_key: int(r[spec.entity_key]),
            **{c: float(r[c]) for c in spec.features.numeric},
        }
        for _, r in wines.iterrows()
    ]

    async def served() -> tuple[list[dict[str, Any]], Any]:
        service = Service(home, [spec], prediction_log=False)
        await service.start()
        try:
            model = service.champion(spec.name)
            return service.answer(spec.name, rows, "wine-1").predictions, model
        finally:
            await service.stop()

    predictions, model = asyncio.run(served())
    logged = model.scorer.pipeline  # the registered champion, as the service loaded it
    x = fitting.features_of(wines, spec)
    expected = logged.predict_proba(x)
    assert model.scorer.numpy_path
    assert [p["label"] for p in predictions] == [int(c) for c in logged.predict(x)]
    for p, row in zip(predictions, expected, strict=True):
        assert p["probabilities"] == {str(c): v for c, v in zip([0, 1, 2], row, strict=True)}
        assert p["score"] == row.max()
    accuracy = np.mean([p["label"] for p in predictions] == wines[spec.label].to_numpy())
    assert accuracy > 0.8  # in-sample rows mostly: a sanity floor, not a quality claim
