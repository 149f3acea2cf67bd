"""The real path: `dagster dev` on the test's home, the training job submitted over GraphQL the way
the UI's Launchpad does, queued, dequeued by the daemon under the instance's run queue limit (one
run per pipeline, a second job of the pipeline waiting its turn), run in the run worker that the
run launcher starts (the project's in-process executor), and its model version in MLflow's
registry."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests

from ml_platform.components.ml_pipeline import PIPELINE_TAG
from ml_platform.home import PROJECT_ROOT, PlatformHome

pytestmark = pytest.mark.slow

LOCATION = "ml_platform_small"
REPOSITORY = "__repository__"
JOB = "loan_default_training_job"
ONLINE_JOB = "loan_default_online_job"
START_TIMEOUT = 180.0
RUNS_TIMEOUT = 600.0
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

# The UI's own mutation (dagster-webserver's LaunchpadSession, LAUNCH_PIPELINE_EXECUTION_MUTATION).
LAUNCH = """
mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { id runId pipelineName } }
    ... on PipelineNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message stack }
  }
}"""
LOCATIONS = """
{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message stack } } } }
    ... on PythonError { message } } }"""
JOB_INFO = """
query Job($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) { __typename
    ... on Pipeline { isAssetJob tags { key value } } ... on PythonError { message } }
}"""
RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) { __typename
    ... on Run { status startTime endTime tags { key value } } ... on PythonError { message } }
}"""


@dataclass
class DagsterDev:
    url: str
    log: Path

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        resp = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60
        )
        body = resp.json()
        assert resp.status_code == 200 and "errors" not in body, self.diagnosis(str(body))
        return body["data"]

    def diagnosis(self, what: str, run_ids: list[str] = ()) -> str:  # type: ignore[assignment]
        """What failed, the failure events of the runs, and the tail of the dagster dev log."""
        parts = [what]
        for run_id in run_ids:
            parts.append(f"--- failure events of run {run_id}:\n{failure_events(run_id)}")
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        parts.append(f"--- dagster dev log ({self.log}), last 6000 chars:\n{text[-6000:]}")
        return "\n".join(parts)


def failure_events(run_id: str) -> str:
    """Failed steps, failed checks, engine errors and the run failure, from the instance."""
    lines = []
    try:
        with dg.DagsterInstance.get() as instance:
            for event in instance.all_logs(run_id):
                dagster_event = event.dagster_event
                if dagster_event is None:
                    continue
                kind = dagster_event.event_type_value
                data = dagster_event.event_specific_data
                error = getattr(data, "error", None)
                failed_check = kind == "ASSET_CHECK_EVALUATION" and not data.passed
                if failed_check:
                    lines.append(
                        f"{kind} {data.asset_check_key.to_user_string()} failed: "
                        f"{data.description or ''} "
                        f"{ {k: v.value for k, v in data.metadata.items()} }"
                    )
                elif error is not None or kind in ("STEP_FAILURE", "RUN_FAILURE"):
                    lines.append(
                        f"{kind} {event.step_key or ''}: {dagster_event.message or ''}"
                        + (f"\n{error.to_string()}" if error is not None else "")
                    )
    except Exception as exc:  # noqa: BLE001 - a diagnosis must not hide the failure it explains
        lines.append(f"(could not read the run's events: {exc!r})")
    return "\n".join(lines) or "(none)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the whole process group (webserver, daemon, code server, run workers), then
    kill what is left after a bounded wait."""
    with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):  # stragglers outlive the group's leader
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_until_loaded(dev: DagsterDev, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, dev.diagnosis(f"dagster dev exited ({proc.returncode})")
        try:
            requests.get(f"{dev.url}/server_info", timeout=5).raise_for_status()
            entries = dev.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
        except requests.RequestException:
            time.sleep(1)
            continue
        entry = next((e for e in entries if e["name"] == LOCATION), None)
        if entry and entry["loadStatus"] == "LOADED":
            loaded = entry["locationOrLoadError"]
            assert loaded["__typename"] == "RepositoryLocation", dev.diagnosis(
                f"code location failed to load: {loaded}"
            )
            return
        time.sleep(1)
    pytest.fail(dev.diagnosis(f"code location not loaded after {START_TIMEOUT:.0f} s"))


@pytest.fixture
def dagster_dev(home: PlatformHome, tmp_path: Path) -> Iterator[DagsterDev]:
    """`dagster dev` on the test's home (DAGSTER_HOME set by the autouse fixture) with a
    workspace holding the test-size demo."""
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n"
        "      module_name: ml_platform_tests.cli.small_defs\n      attribute: defs\n"
        f"      working_directory: {PROJECT_ROOT}\n      location_name: {LOCATION}\n"
    )
    port, log = free_port(), tmp_path / "dagster_dev.log"
    assert os.environ["DAGSTER_HOME"] == str(home.dagster_home)
    # The venv's commands first, as `make dev` has them (dagster-dbt's parse on load runs `dbt`).
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster",
                "dev",
                "-w",
                str(workspace),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PATH": path},
        )
    dev = DagsterDev(f"http://127.0.0.1:{port}", log)
    try:
        wait_until_loaded(dev, proc)
        yield dev
    finally:
        stop(proc)


def launch(dev: DagsterDev, selector: dict[str, str], tags: list[dict[str, str]]) -> str:
    """The executionParams of the Launchpad opened from the job's page: empty run config, no
    asset or check subset (empty lists: the whole job, its checks included), the job's tags."""
    params = {
        "runConfigData": "",
        "mode": "default",
        "selector": {**selector, "assetSelection": [], "assetCheckSelection": []},
        "executionMetadata": {"tags": tags},
    }
    result = dev.graphql(LAUNCH, executionParams=params)["launchPipelineExecution"]
    assert result["__typename"] == "LaunchRunSuccess", dev.diagnosis(f"launch failed: {result}")
    return result["run"]["runId"]


def follow(dev: DagsterDev, run_ids: list[str]) -> tuple[dict[str, dict], list[tuple]]:
    """Poll the runs until all finish (or one fails); return their last state and every status
    seen together."""
    deadline, seen, runs = time.monotonic() + RUNS_TIMEOUT, [], {}
    while time.monotonic() < deadline:
        runs = {r: dev.graphql(RUN, runId=r)["runOrError"] for r in run_ids}
        seen.append(tuple(runs[r]["status"] for r in run_ids))
        statuses = {run["status"] for run in runs.values()}
        if statuses <= FINISHED or statuses & {"FAILURE", "CANCELED"}:
            return runs, seen
        time.sleep(2)
    pytest.fail(dev.diagnosis(f"runs not finished after {RUNS_TIMEOUT:.0f} s: {runs}", run_ids))


def job_selector(dev: DagsterDev, job: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The job's selector as the UI builds it, and the job's tags (which the Launchpad sends)."""
    selector = {
        "repositoryLocationName": LOCATION,
        "repositoryName": REPOSITORY,
        "pipelineName": job,
    }
    info = dev.graphql(JOB_INFO, selector=selector)["pipelineOrError"]
    assert info["__typename"] == "Pipeline" and info["isAssetJob"], dev.diagnosis(str(info))
    return selector, [{"key": t["key"], "value": t["value"]} for t in info["tags"]]


def test_training_job_launched_like_the_ui_registers_a_version_one_run_per_pipeline(
    dagster_dev: DagsterDev, home: PlatformHome, landed: list[Path]
) -> None:
    dev = dagster_dev
    training, training_tags = job_selector(dev, JOB)
    online, online_tags = job_selector(dev, ONLINE_JOB)
    for tags in (training_tags, online_tags):
        assert {"key": PIPELINE_TAG, "value": "loan_default"} in tags

    # Back to back, two jobs of one pipeline. The training run as the Launchpad sends it (the
    # job's tags included); the online run as an API caller may (no tags): the server must stamp
    # the job's tags on it, since the instance's run queue limit keys on them.
    first = launch(dev, training, training_tags)
    second = launch(dev, online, [])
    runs, seen = follow(dev, [first, second])
    diagnose = lambda what: dev.diagnosis(what, [first, second])  # noqa: E731

    assert [runs[r]["status"] for r in (first, second)] == ["SUCCESS", "SUCCESS"], diagnose(
        f"runs did not succeed: {runs}"
    )
    for run_id in (first, second):
        tags = {t["key"]: t["value"] for t in runs[run_id]["tags"]}
        assert tags.get(PIPELINE_TAG) == "loan_default", diagnose(f"{run_id} tags: {tags}")

    # One run per pipeline (dagster.yaml, concurrency.runs.tag_concurrency_limits): the second
    # run was held in the queue while the first ran, and started after it had finished.
    active = {"STARTING", "STARTED"}
    assert not any(a in active and b in active for a, b in seen), diagnose(f"overlap: {seen}")
    assert any(a in active and b == "QUEUED" for a, b in seen), diagnose(
        f"the second run was never seen queued behind the first: {seen}"
    )
    assert runs[second]["startTime"] >= runs[first]["endTime"], diagnose(f"overlap: {runs}")

    # The gates ran and passed; the registered version is in the run's materialization and in
    # MLflow's registry on the home's tracking store, linked back to the run.
    with dg.DagsterInstance.get() as instance:
        evaluations = [
            e.dagster_event.event_specific_data
            for e in instance.all_logs(first, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        ]
        mats = {
            e.asset_materialization.asset_key.to_user_string(): e.asset_materialization
            for e in instance.all_logs(first, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        }
        engine = [e.dagster_event for e in instance.all_logs(first) if e.dagster_event]
    # The declared executor ran the steps: in the run worker's process, no step workers.
    in_process = [
        e.pid for e in engine if (e.message or "").startswith("Executing steps in process")
    ]
    workers = [e for e in engine if e.event_type_value.startswith("STEP_WORKER_")]
    assert len(in_process) == 1 and not workers, diagnose(f"{in_process}, {workers[:3]}")
    step_pids = {e.pid for e in engine if e.event_type_value == "STEP_START"}
    assert step_pids == set(in_process), diagnose(f"step pids {step_pids} vs {in_process}")
    assert evaluations and all(c.passed for c in evaluations), diagnose(
        f"the checks (gates) of {first}: {evaluations}"
    )
    registered = {k: v.value for k, v in mats["loan_default_registered_model"].metadata.items()}
    assert registered["version"] == "1" and registered["promoted"] is True, diagnose(
        str(registered)
    )

    from mlflow.tracking import MlflowClient

    client = MlflowClient(home.tracking_uri, registry_uri=home.tracking_uri)
    version = client.get_model_version("loan_default", "1")
    assert version.tags["dagster_run_id"] == first
    assert str(client.get_model_version_by_alias("loan_default", "champion").version) == "1"
