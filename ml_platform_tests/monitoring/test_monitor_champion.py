"""`ml-platform monitor` against a real champion: the demo at test size materialized on real
local backends (training, evaluation, registration, promotion), then the features table it
built judged as it is (exit 0), shifted (exit 1, each drifted feature named per chunk), with
labels, by day, and as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ml_platform.cli import app
from ml_platform.home import PlatformHome
from ml_platform.ingest.datagen import land
from ml_platform.monitoring.reference import REFERENCE_ARTIFACT
from ml_platform.training.tracking import Tracking
from ml_platform_tests.helpers import SMALL, materialize, ml_platform, small_spec

pytestmark = pytest.mark.slow
PIPELINE = "loan_default"


@dataclass(frozen=True)
class Trained:
    home: PlatformHome
    features: Path  # the features table the pipeline built (every model feature column)
    labels: Path  # entity key, event timestamp and label of every landed row
    drifted: Path  # the features table with amount x1.6 and 400 rows of an unseen region


def _assert_reference(home: PlatformHome) -> None:
    """The training step logged the champion's reference on its run (the convention
    monitoring reads)."""
    tracking = Tracking(home.tracking_uri, home.artifact_root)
    champion = tracking.version_by_alias(PIPELINE, "champion")
    assert champion is not None, "the first model was not promoted"
    folder = REFERENCE_ARTIFACT.rsplit("/", 1)[0]
    listed = {f.path for f in tracking.client.list_artifacts(champion.run_id, folder)}
    assert REFERENCE_ARTIFACT in listed, listed


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("monitor") / "home"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ML_PLATFORM_HOME", str(root))
        env.setenv("DAGSTER_HOME", str(root / "dagster"))
        env.setenv("FEAST_USAGE", "False")
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        home = PlatformHome(root).ensure()
        landed = land(SMALL, home.landing / PIPELINE)
        result = materialize(small_spec(n_trials=1), home)
        assert result.success
        _assert_reference(home)
    features = next((home.pipeline_dir(PIPELINE) / "features").glob("*.parquet"))
    raw = pd.concat([pd.read_parquet(p) for p in landed])
    labels = root.parent / "labels.csv"
    raw[["customer_id", "applied_at", "defaulted"]].to_csv(labels, index=False)
    shifted = pd.read_parquet(features)
    shifted["amount"] *= 1.6
    shifted.loc[shifted.index[:400], "region"] = "mars"
    drifted = root.parent / "drifted.csv"
    shifted.to_csv(drifted, index=False)
    return Trained(home, features, labels, drifted)


@pytest.fixture
def on_home(trained: Trained, home: PlatformHome, monkeypatch: pytest.MonkeyPatch) -> Trained:
    """The trained home instead of the test's empty one (``home`` is set up first)."""
    monkeypatch.setenv("ML_PLATFORM_HOME", str(trained.home.root))
    monkeypatch.setenv("DAGSTER_HOME", str(trained.home.dagster_home))
    return trained


def _monitor(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["monitor", PIPELINE, *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_data_the_champion_was_trained_on_does_not_drift(on_home: Trained) -> None:
    """Through the installed command in a fresh process: the command is registered."""
    proc = ml_platform("monitor", PIPELINE, "--data", str(on_home.features))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "against champion v1 (reference:" in proc.stdout
    assert "chunk all rows 0-" in proc.stdout and ": ok" in proc.stdout
    assert "roc_auc: estimated 0." in proc.stdout
    assert proc.stdout.rstrip().endswith("nothing breached") and proc.stderr == ""


def test_shifted_data_names_each_drifted_feature_per_chunk(on_home: Trained) -> None:
    code, out, err = _monitor("--data", str(on_home.drifted), "--chunk-rows", "3000")
    assert code == 1, out + err
    chunks = out.split("\nchunk ")[1:]
    assert len(chunks) == 2 and chunks[0].startswith("rows 0-2999: 3000 rows: BREACHED")
    for chunk in chunks:
        assert "  drifted amount: wasserstein 0.7" in chunk and ">= threshold 0.1" in chunk
    assert "  drifted region: jensen_shannon" in chunks[0] and "new categories: mars" in chunks[0]
    assert "quality: region: 13.3% of rows with a category unseen" in chunks[0]
    assert out.rstrip().endswith("2 breached chunk(s)")


def test_json_prints_one_object_per_chunk(on_home: Trained) -> None:
    code, out, err = _monitor("--data", str(on_home.drifted), "--chunk-rows", "2000", "--json")
    assert code == 1 and err == ""
    lines = out.splitlines()
    objects = [json.loads(line) for line in lines]
    assert [o["label"] for o in objects] == ["rows 0-1999", "rows 2000-3999", "rows 4000-5890"]
    for o in objects:
        assert o["pipeline"] == PIPELINE and o["champion_version"] == "1" and o["breached"]
        features = {f["feature"]: f for f in o["drift"]["features"]}
        assert len(features) == 13
        amount = features["amount"]
        assert amount["statistic"] == "wasserstein" and amount["threshold"] == 0.1
        assert amount["value"] > 0.5 and amount["drifted"] is True
        assert features["term_months"]["drifted"] is False
        assert o["drift"]["prediction"]["statistic"] == "psi"
        assert o["estimated"]["roc_auc"] is not None and o["realized"] is None


def test_labels_are_joined_on_entity_and_timestamp(on_home: Trained) -> None:
    code, out, _ = _monitor(
        "--data", str(on_home.features), "--labels", str(on_home.labels), "--json"
    )
    assert code == 0
    (result,) = [json.loads(line) for line in out.splitlines()]
    assert result["labelled_rows"] == result["rows"]
    auc = result["realized"]["roc_auc"]
    assert auc["low"] < auc["value"] < auc["high"] and auc["value"] > 0.65
    with_column = on_home.home.root.parent / "with_labels.parquet"
    labels = pd.read_csv(on_home.labels, parse_dates=["applied_at"])
    pd.read_parquet(on_home.features).merge(labels, on=["customer_id", "applied_at"]).to_parquet(
        with_column
    )
    code, out, _ = _monitor("--data", str(with_column), "--json")
    assert code == 0 and json.loads(out)["realized"]["roc_auc"]["value"] == auc["value"]


def test_chunks_by_day_below_min_rows_are_reported_not_judged(on_home: Trained) -> None:
    code, out, _ = _monitor("--data", str(on_home.drifted), "--chunk-by", "day")
    assert code == 0, out  # ~150 rows a day < min_rows 200: measured, not judged
    assert "chunk 2026-01-01: " in out and "not judged" in out
    assert "BREACHED" not in out
