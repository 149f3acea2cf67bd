"""Batch scoring on a real champion: the demo at test size trained in a temporary home, then the
batch predictions asset scores the newest landed day with the champion (resolved by alias),
writes it under its content hash with the model version, and scores nothing twice."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_platform.components.assets import pipeline_assets
from ml_platform.components.batch_predictions import (
    batch_dir,
    batch_prediction_assets,
    read_manifest,
)
from ml_platform.components.common import Stage
from ml_platform.home import PlatformHome
from ml_platform.monitoring.reference import score
from ml_platform.training.tracking import Tracking
from ml_platform_tests.helpers import materialize, resources, small_spec

PIPELINE = "loan_default"


def _score_batches(spec: object, home: PlatformHome, instance: dg.DagsterInstance) -> dict:
    assets = [
        a
        for a in [*pipeline_assets(spec), *batch_prediction_assets(Stage(spec))]  # type: ignore[arg-type]
        if isinstance(a, dg.AssetsDefinition) and a.is_materializable
    ]
    result = dg.materialize(
        assets,
        instance=instance,
        resources=resources(home),
        selection=[f"{PIPELINE}_batch_predictions"],
        raise_on_error=False,
    )
    assert result.success
    (mat,) = result.asset_materializations_for_node(f"{PIPELINE}_batch_predictions")
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


@pytest.mark.slow
def test_champion_scores_each_new_batch_once(home: PlatformHome, landed: list) -> None:
    spec = small_spec(n_trials=1)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(spec, home, instance).success
    tracking = Tracking(home.tracking_uri, artifact_root=home.artifact_root)
    champion = str(tracking.version_by_alias(PIPELINE, "champion").version)

    meta = _score_batches(spec, home, instance)
    assert meta["model_version"] == champion
    manifest = read_manifest(home, PIPELINE)["batches"]
    (day,) = manifest  # the first scoring: the newest landed day
    entry = manifest[day]
    written = pd.read_parquet(entry["path"])
    assert meta["rows"] == entry["rows"] == len(written) > 0
    assert set(written["model_version"]) == {champion} and set(written["batch"]) == {day}
    # the scores are the champion's on those feature rows
    features = pd.read_parquet(home.pipeline_dir(PIPELINE) / "features.parquet")
    stamps = pd.to_datetime(features[spec.event_timestamp], utc=True).dt.strftime("%Y-%m-%d")
    batch = features[stamps == day].reset_index(drop=True)
    model = tracking.load_sklearn_model(f"models:/{PIPELINE}/{champion}")
    np.testing.assert_allclose(written["score"], score(model, batch, spec))
    assert set(written["label"]) <= {0, 1}
    assert not [p for p in batch_dir(home, PIPELINE).iterdir() if p.name.startswith(".")]

    again = _score_batches(spec, home, instance)
    assert again["status"] == "no new batch since the last scoring"
    assert read_manifest(home, PIPELINE)["batches"] == manifest
