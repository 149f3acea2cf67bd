"""The request path's numpy scorer against the fitted pipeline's own predict_proba on the
champion's frozen holdout (plus missing values and an unseen category), and what each costs."""

from __future__ import annotations

import time

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from threadpoolctl import threadpool_limits

from ml_platform.serving.vectorize import Scorer
from ml_platform.training.fitting import features_of
from ml_platform_tests.serving.conftest import PIPELINE, Champion


def _pipeline(champion: Champion):  # noqa: ANN202 - a fitted sklearn Pipeline
    home = champion.home
    client = MlflowClient(tracking_uri=home.tracking_uri, registry_uri=home.tracking_uri)
    mv = client.get_model_version_by_alias(PIPELINE, "champion")
    source = str(mv.source)
    if source.startswith("models:/"):
        source = client.get_logged_model(source.removeprefix("models:/")).artifact_location
    return mlflow.sklearn.load_model(source)


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[list[object]]:
    """Rows as the service builds them from JSON: Python scalars, None where missing."""
    out = frame[columns].astype(object).where(frame[columns].notna(), None)
    return out.to_numpy().tolist()


def _scorer(champion: Champion) -> tuple[Scorer, object]:
    pipeline = _pipeline(champion)
    spec = champion.spec
    columns = list(pipeline.feature_names_in_)
    return Scorer(pipeline, columns, spec.features.model_numeric, True), pipeline


def test_numpy_path_matches_predict_proba_on_the_holdout(champion: Champion) -> None:
    scorer, pipeline = _scorer(champion)
    assert scorer.numpy_path, "the demo's pipeline should compile to the numpy path"
    holdout = champion.holdout.copy()
    # Missing values and a category never seen in training must go the same way too.
    holdout.loc[holdout.index[:20], "amount"] = np.nan
    holdout.loc[holdout.index[10:30], "purpose"] = None
    holdout.loc[holdout.index[30:40], "region"] = "mars"
    expected = pipeline.predict_proba(features_of(holdout, champion.spec))[:, 1]
    got = scorer.score(_rows(holdout, scorer.columns))
    assert len(got) == len(holdout) > 100
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # One row at a time (the common request) is the same too.
    one = [scorer.score([row])[0] for row in _rows(holdout.head(50), scorer.columns)]
    np.testing.assert_allclose(one, expected[:50], rtol=0, atol=1e-12)


def test_dataframe_fallback_matches_too(champion: Champion) -> None:
    scorer, pipeline = _scorer(champion)
    expected = pipeline.predict_proba(features_of(champion.holdout, champion.spec))[:, 1]
    got = scorer._score_frame(_rows(champion.holdout, scorer.columns))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def _median_ms(fn, repeats: int = 100) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def test_numpy_path_costs_less_than_a_dataframe_per_request(champion: Champion) -> None:
    scorer, pipeline = _scorer(champion)
    row = _rows(champion.holdout.head(1), scorer.columns)
    frame = features_of(champion.holdout.head(1), champion.spec)
    # One native thread, as the service runs (app.py's lifespan).
    with threadpool_limits(1):
        numpy_ms = _median_ms(lambda: scorer.score(row))
        frame_ms = _median_ms(lambda: scorer._score_frame(row))
        pipeline_ms = _median_ms(lambda: pipeline.predict_proba(frame))
    print(
        f"\none row: numpy path {numpy_ms:.3f} ms, DataFrame built per request "
        f"{frame_ms:.3f} ms, pipeline.predict_proba on a ready DataFrame {pipeline_ms:.3f} ms"
    )
    assert numpy_ms < frame_ms


def test_a_compiled_transformer_that_differs_is_not_used(
    champion: Champion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load-time probe: a compiled imputer that fills the wrong value is dropped (the fitted
    transformer is called instead), and the scores stay exact."""
    from ml_platform.serving import vectorize

    monkeypatch.setattr(vectorize._FastNumeric, "__call__", lambda self, x: np.nan_to_num(x))
    scorer, pipeline = _scorer(champion)
    assert [type(p.fast).__name__ for p in scorer.parts or []] == ["NoneType", "_FastOneHot"]
    holdout = champion.holdout.copy()
    holdout.loc[holdout.index[:20], "amount"] = np.nan
    expected = pipeline.predict_proba(features_of(holdout, champion.spec))[:, 1]
    np.testing.assert_allclose(
        scorer.score(_rows(holdout, scorer.columns)), expected, rtol=0, atol=1e-12
    )
