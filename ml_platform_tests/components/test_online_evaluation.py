"""The online evaluation asset on real stores: a shadow rollout's prediction log (written by the
serving side's PredictionLog), outcomes ingested as `ml-platform labels` stores them, the ledger
on a real MLflow registry. A challenger as good as the champion is promoted through the ledger
with its evidence and the rollout stops; a worse one is rejected, the rollout stops and an alert
is raised. Registered versions point at an empty source: nothing here loads a model."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_platform.alerting import read_alerts_log
from ml_platform.components.common import Stage
from ml_platform.components.online_evaluation import online_evaluation_assets
from ml_platform.home import PlatformHome
from ml_platform.online_evaluation import outcomes as oc
from ml_platform.registry.ledger import CHALLENGER, OFFLINE_GATES, ONLINE_TEST, PromotionLedger
from ml_platform.serving.prediction_log import PredictionLog
from ml_platform.serving.rollout import RolloutStore
from ml_platform.spec import PipelineSpec
from ml_platform.training.tracking import Tracking
from ml_platform_tests.helpers import resources, small_spec

PIPELINE = "loan_default"
N = 1500


@pytest.fixture(scope="module")
def empty_tracking_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    Tracking(f"sqlite:///{db}").client.search_registered_models()
    return db


@pytest.fixture
def spec() -> PipelineSpec:
    base = small_spec()
    rollout = base.rollout.model_copy(update={"min_samples": 500, "margin": 0.02})
    return base.model_copy(update={"rollout": rollout})


@pytest.fixture
def ledger(home: PlatformHome, empty_tracking_db: Path) -> PromotionLedger:
    """v1 the champion, v2 the challenger with passing offline gates."""
    home.mlflow_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty_tracking_db, home.mlflow_dir / "mlflow.db")
    tracking = Tracking(home.tracking_uri, artifact_root=home.artifact_root)
    source = home.root / "artifact"
    source.mkdir(exist_ok=True)
    tracking.client.create_registered_model(PIPELINE)
    for _ in range(2):
        tracking.client.create_model_version(PIPELINE, str(source))
    ledger = PromotionLedger(home.ledger_db, tracking)
    for v in ("1", "2"):
        ledger.add_evidence(PIPELINE, v, OFFLINE_GATES, True, "all gates passed")
    ledger.promote(PIPELINE, "1", "first model")
    ledger.register_challenger(PIPELINE, "2", [])
    return ledger


def _shadow_traffic(
    home: PlatformHome, challenger_noise: bool, mode: str = "shadow"
) -> pd.DataFrame:
    """N requests and their outcomes, 30 minutes later: in shadow both arms score every
    request; in ab even requests go to the champion, odd ones to the challenger."""
    rng = np.random.default_rng(42)
    y = rng.integers(0, 2, N)
    champion = 1 / (1 + np.exp(-(1.5 * (2 * y - 1) + rng.normal(0, 1, N))))
    other = rng.random(N) if challenger_noise else champion
    start = datetime.now(UTC) + timedelta(seconds=1)
    log = PredictionLog(home, PIPELINE)
    log.append(
        [
            {
                "request_id": f"req-{i}",
                "row": 0,
                "logged_at": start + timedelta(seconds=i),
                "entity": str(1000 + i),
                "model_version": version,
                "arm": arm,
                "mode": mode,
                "served": mode == "ab" or arm == "champion",
                "score": float(score[i]),
                "features": {},
            }
            for i in range(N)
            for arm, version, score in (
                ("champion", "1", champion),
                ("challenger", "2", other),
            )
            if mode == "shadow" or (arm == "champion") == (i % 2 == 0)
        ]
    )
    log.close()
    return pd.DataFrame(
        {
            "customer_id": 1000 + np.arange(N),
            "applied_at": [
                (start + timedelta(seconds=i, minutes=30)).isoformat() for i in range(N)
            ],
            "defaulted": y,
        }
    )


def _evaluate(spec: PipelineSpec, home: PlatformHome) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        online_evaluation_assets(Stage(spec)),
        instance=dg.DagsterInstance.ephemeral(),
        resources=resources(home),
        raise_on_error=False,
    )


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (mat,) = result.asset_materializations_for_node("loan_default_online_evaluation")
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def test_not_worse_challenger_is_promoted_through_the_ledger(
    spec: PipelineSpec, home: PlatformHome, ledger: PromotionLedger
) -> None:
    store = RolloutStore(home, PIPELINE)
    store.start("shadow", 0.0, "1", "2", "test")
    outcomes = _shadow_traffic(home, challenger_noise=False)

    # Before any outcome: pending evidence that blocks every other promotion path.
    first = _evaluate(spec, home)
    assert first.success and _metadata(first)["verdict"] == "insufficient_data"
    evidence = ledger.evidence(PIPELINE, "2")
    assert evidence[-1].kind == ONLINE_TEST and not evidence[-1].passed
    with pytest.raises(Exception, match="'online_test' failed"):
        ledger.promote(PIPELINE, "2", "by hand, before the online test")

    oc.store(home, PIPELINE, oc.normalise(outcomes, spec))
    result = _evaluate(spec, home)
    assert result.success
    meta = _metadata(result)
    assert meta["verdict"] == "not_worse" and meta["action"] == "promoted", meta["summary"]
    assert meta["n_champion"] == meta["n_challenger"] == N
    assert ledger.champion(PIPELINE) == "2"
    promotion = ledger.history(PIPELINE)[-1]
    assert promotion.action == "promote" and promotion.actor == "online-evaluation"
    assert "online shadow sequential test" in promotion.reason and "roc_auc d = +0.0000" in (
        promotion.reason
    )
    online = [e for e in ledger.evidence(PIPELINE, "2") if e.kind == ONLINE_TEST][-1]
    offline = [e for e in ledger.evidence(PIPELINE, "2") if e.kind == OFFLINE_GATES][-1]
    assert online.passed and set(promotion.evidence_ids) == {online.id, offline.id}
    assert store.current() is None
    assert "promoted v2" in (store.history()[-1].stop_reason or "")
    assert ledger.tracking.version_by_alias(PIPELINE, CHALLENGER) is None


def test_worse_challenger_stops_the_rollout_and_alerts(
    spec: PipelineSpec, home: PlatformHome, ledger: PromotionLedger
) -> None:
    store = RolloutStore(home, PIPELINE)
    store.start("shadow", 0.0, "1", "2", "test")
    oc.store(home, PIPELINE, oc.normalise(_shadow_traffic(home, challenger_noise=True), spec))
    result = _evaluate(spec, home)
    assert result.success
    meta = _metadata(result)
    assert meta["verdict"] == "worse" and meta["action"] == "stopped_worse", meta["summary"]
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"challenger_not_worse": False, "outcomes_join_predictions": True}
    assert store.current() is None and ledger.champion(PIPELINE) == "1"
    assert ledger.history(PIPELINE)[-1].action == "reject"
    alerts = [a for a in read_alerts_log(home.alerts_log) if a.get("kind") == "online_test"]
    assert alerts and alerts[-1]["severity"] == "error" and "worse" in alerts[-1]["title"]


def test_no_rollout_is_a_quiet_success(spec: PipelineSpec, home: PlatformHome) -> None:
    result = _evaluate(spec, home)
    assert result.success and _metadata(result)["status"] == "no active rollout"


def test_sensor_runs_when_a_rollout_starts_and_when_outcomes_arrive(
    spec: PipelineSpec, home: PlatformHome, ledger: PromotionLedger
) -> None:
    from ml_platform.components.online_evaluation import online_evaluation_sensor

    job = dg.define_asset_job("loan_default_online_evaluation_job")
    sensor = online_evaluation_sensor(Stage(spec), job)

    def tick(cursor: str | None) -> dg.SensorResult | dg.SkipReason:
        return sensor(dg.build_sensor_context(cursor=cursor))  # type: ignore[no-any-return]

    assert isinstance(tick(None), dg.SkipReason)  # no rollout
    RolloutStore(home, PIPELINE).start("shadow", 0.0, "1", "2", "test")
    started = tick(None)
    assert isinstance(started, dg.SensorResult) and len(started.run_requests or []) == 1
    assert isinstance(tick(started.cursor), dg.SkipReason)  # nothing new
    oc.store(home, PIPELINE, oc.normalise(_shadow_traffic(home, False), spec))
    labelled = tick(started.cursor)
    assert isinstance(labelled, dg.SensorResult)
    keys = [r.run_key for r in (started.run_requests or []) + (labelled.run_requests or [])]
    assert len(set(keys)) == 2


def test_ab_rollout_judges_each_arms_own_rows(
    spec: PipelineSpec, home: PlatformHome, ledger: PromotionLedger
) -> None:
    """A/B: every request row is scored by one arm; the two-sample test on 750 + 750 rows of a
    noise challenger finds it worse."""
    store = RolloutStore(home, PIPELINE)
    store.start("ab", 0.5, "1", "2", "test")
    outcomes = _shadow_traffic(home, challenger_noise=True, mode="ab")
    oc.store(home, PIPELINE, oc.normalise(outcomes, spec))
    result = _evaluate(spec, home)
    meta = _metadata(result)
    assert (meta["n_champion"], meta["n_challenger"]) == (N // 2, N // 2)
    assert meta["verdict"] == "worse", meta["summary"]
