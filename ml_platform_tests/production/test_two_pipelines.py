"""Two pipelines' runs at once on the production profile: each pipeline's training job executed
in a process of its own (as two run workers would), sharing the Postgres instance, MLflow, the
Feast SQL registry and the Optuna database. (`ml-platform run` knows only the pipelines declared
under ml_platform/defs, so the runs are executed with `dg.execute_job`.)"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest
from mlflow.tracking import MlflowClient

from ml_platform.features.feast_objects import feature_store
from ml_platform.home import PROJECT_ROOT
from ml_platform.ingest.datagen import land
from ml_platform_tests.helpers import SMALL
from ml_platform_tests.production.conftest import ProductionEnv
from ml_platform_tests.production.two_pipelines_defs import PIPELINES

pytestmark = [pytest.mark.production, pytest.mark.slow]
DEFS = "ml_platform_tests.production.two_pipelines_defs:defs"
_EXECUTE = textwrap.dedent("""
    import sys
    import dagster as dg
    from ml_platform.home import activate_home
    from ml_platform.runner import QUIET
    target, job_name = sys.argv[1:3]
    activate_home()
    job = dg.build_reconstructable_job("ml_platform.runner", "training_job", (target, job_name))
    with dg.DagsterInstance.get() as instance:
        with dg.execute_job(job, instance=instance, run_config=QUIET) as result:
            print("RESULT", result.run_id, result.success, flush=True)
""")


def _start(pipeline: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", _EXECUTE, DEFS, f"{pipeline}_training_job"],
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
        )


def _failures(dagster_home: Path) -> list[str]:
    """Each failed step's error and failed check's metadata, from the instance (the runs'
    console is quiet)."""
    found = []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for record in instance.get_run_records():
            for entry in instance.all_logs(record.dagster_run.run_id):
                event = entry.dagster_event
                if event is None:
                    continue
                if event.event_type_value == "STEP_FAILURE":
                    error = event.step_failure_data.error  # type: ignore[union-attr]
                    found.append(f"{event.step_key}: {error.message if error else ''}")
                elif event.event_type_value == "ASSET_CHECK_EVALUATION":
                    data = event.event_specific_data
                    if not data.passed:  # type: ignore[union-attr]
                        meta = {k: v.value for k, v in data.metadata.items()}  # type: ignore[union-attr]
                        found.append(f"check {data.check_name} failed: {meta}")  # type: ignore[union-attr]
    return found


def test_two_pipelines_run_at_once(production: ProductionEnv, tmp_path: Path) -> None:
    home = production.home
    for name in PIPELINES:
        land(SMALL, home.landing / name)
    logs = {name: tmp_path / f"{name}.log" for name in PIPELINES}
    procs = {name: _start(name, logs[name]) for name in PIPELINES}
    codes = {name: proc.wait(timeout=1500) for name, proc in procs.items()}
    outputs = {name: logs[name].read_text() for name in PIPELINES}
    failures = _failures(home.dagster_home)
    print("\n".join(failures))  # shown in full when the test fails
    for name in PIPELINES:
        assert codes[name] == 0 and " True" in outputs[name], (failures, outputs[name][-2000:])

    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        runs = [r.dagster_run for r in instance.get_run_records()]
    assert {r.job_name for r in runs} == {f"{n}_training_job" for n in PIPELINES}
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    # They overlapped: each started before the other ended.
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        spans = [
            (r.start_time, r.end_time)
            for r in instance.get_run_records()
            if r.start_time is not None and r.end_time is not None
        ]
    assert len(spans) == 2 and max(s for s, _ in spans) < min(e for _, e in spans), spans

    client = MlflowClient(home.tracking_uri, registry_uri=home.tracking_uri)
    for name in PIPELINES:
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    # Both applied their objects to the one SQL registry; neither removed the other's.
    views = {v.name for v in feature_store(home).list_feature_views(allow_cache=False)}
    assert {f"{n}_fv" for n in PIPELINES} <= views
