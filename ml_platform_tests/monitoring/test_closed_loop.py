"""The closed loop on a real Dagster daemon (issue 14): a temporary home with a first champion,
`dagster-daemon run` on it, stable days landed (the new-data sensor runs the monitoring job; the
retraining sensor asks for nothing), then drifted days (exactly one retraining run, its trigger
on the run's tags, the MLflow run and model version, and the promotion ledger's decision).

The daemon loads this module as its code location (``defs`` below): the demo pipeline at test
size, its windowed aggregates left out. Aggregates over 7 to 90 days computed from data that
starts on the first landed day are smaller in the first 90 days than ever after; the reference
leaves those rows out, but a 30-day history has no other rows, so it keeps them and every new
day would drift on those features (``ml-platform simulate`` runs the demo with them, on 120
days); this test is about the loop, not about those features. ``retrain_on: [drift]``: a batch of a
few hundred rows can dip under the performance floor by chance, and that trigger has its own
tests (test_triggers.py). ``champion_margin`` is wide so that the retrain passes the champion
gate and is registered whether or not it scores better (promoted or held, both recorded with
its trigger).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import dagster as dg
import pytest
from rich.console import Console

from ml_platform.cli.simulate import ClosedLoop
from ml_platform.components.ml_pipeline import MLPipelineComponent, training_job_name
from ml_platform.home import PROJECT_ROOT, PlatformHome
from ml_platform.monitoring import triggers
from ml_platform.monitoring.simulation import SimulationPlan
from ml_platform.spec import PipelineSpec
from ml_platform_tests.helpers import small_spec

pytestmark = pytest.mark.slow

MODULE = "ml_platform_tests.monitoring.test_closed_loop"
DEADLINE_SECONDS = 1500.0
# Two stable days after the history's last one, then two drifted ones (persistence 2).
PLAN = SimulationPlan(days=4, drift_from=3, drift=1.0, events_per_day=600, history_days=30)


def loop_spec() -> PipelineSpec:
    spec = small_spec()
    features = spec.features.model_copy(update={"aggregates": []})
    gates = spec.gates.model_copy(update={"champion_margin": 1.0})
    monitoring = spec.monitoring.model_copy(update={"retrain_on": ["drift"]})
    return spec.model_copy(update={"features": features, "gates": gates, "monitoring": monitoring})


def defs() -> dg.Definitions:
    """The code location of this test's daemon and of its first `ml-platform run`."""
    from ml_platform.defs.resources import resources

    shared = resources()
    pipeline = MLPipelineComponent(loop_spec()).build_defs(None)  # type: ignore[arg-type]
    return dg.Definitions.merge(
        pipeline, dg.Definitions(resources=shared.resources, executor=shared.executor)
    )


def test_stable_days_request_nothing_drifted_days_one_retrain_with_its_trigger_stamped(
    home: PlatformHome, tmp_path: Path
) -> None:
    started = time.monotonic()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n"
        f"      module_name: {MODULE}\n      attribute: defs\n"
        f"      working_directory: {PROJECT_ROOT}\n      location_name: closed_loop\n"
    )
    out = Console(file=io.StringIO(), width=200)
    spec = loop_spec()
    loop = ClosedLoop(spec, PLAN, home, out, workspace=workspace, definitions=f"{MODULE}:defs")

    def remaining() -> float:
        left = DEADLINE_SECONDS - (time.monotonic() - started)
        assert left > 0, f"deadline of {DEADLINE_SECONDS:.0f} s passed"
        return left

    try:
        loop.timeout = remaining()
        rows = loop.land_history()
        assert loop.train_first_champion() == "1"
        loop.timeout = remaining()
        baseline = loop.baseline(rows)
        loop.timeout = remaining()
        stable = loop.step([1, 2])
        loop.timeout = remaining()
        drifted = loop.step([3, 4])
    finally:
        loop.stop()
    timeline = out.file.getvalue()  # type: ignore[attr-defined]

    # Stable: the new-data sensor ran the monitoring job, the retraining sensor asked nothing.
    for row in (baseline, stable):
        jobs = [r.job for r in row.runs]
        assert f"{spec.name}_monitoring_job" in jobs, timeline
        assert not row.retrains and training_job_name(spec.name) not in jobs, timeline
        assert row.drifted == [], timeline
        assert "no trigger holds" in row.retrain_sensor, timeline

    # Drifted: exactly one retraining run, for drift, which succeeded; the sensor's next look
    # after it requested nothing more (cooldown, one run per trigger and data version).
    assert {"annual_income", "credit_score", "purpose"} <= set(drifted.drifted), timeline
    [retrain] = drifted.retrains
    assert retrain.trigger == "drift" and retrain.status == "SUCCESS", timeline
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        training_runs = instance.get_run_records(
            dg.RunsFilter(job_name=training_job_name(spec.name))
        )
        run = instance.get_run_by_id(retrain.run_id)
    assert len(training_runs) == 2, timeline  # the first champion's and the retrain
    assert run is not None
    tags = run.tags
    detail = tags[triggers.DETAIL_TAG]
    assert tags[triggers.TAG] == "drift" and '"streak": 2' in detail, tags
    assert "credit_score" in detail and tags[triggers.DATA_TAG], tags

    # The MLflow run and the model version made by the retrain carry the same trigger.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(home.tracking_uri, registry_uri=home.tracking_uri)
    [version] = [
        v
        for v in client.search_model_versions(f"name = '{spec.name}'")
        if v.tags.get("dagster_run_id") == retrain.run_id
    ]
    expected = {
        "trigger": "drift",
        "trigger_detail": detail,
        "trigger_data_version": tags[triggers.DATA_TAG],
    }
    assert {k: version.tags.get(k) for k in expected} == expected, version.tags
    mlflow_run = client.get_run(str(version.run_id))
    assert {k: mlflow_run.data.tags.get(k) for k in expected} == expected

    # The promotion ledger's decision on that version names the trigger.
    number = str(version.version)
    decisions = [d for d in loop.ledger().history(spec.name) if d.version == number]
    final = [d for d in decisions if d.action in ("promote", "hold")]
    assert len(final) == 1 and "[retrain trigger: drift" in final[0].reason, decisions
