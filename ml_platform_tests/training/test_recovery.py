"""MLflow runs orphaned by a killed Dagster run are failed; nothing else is touched."""

from __future__ import annotations

from ml_platform.home import PlatformHome
from ml_platform.training.recovery import RECOVERED_TAG, fail_orphaned_runs, find_orphans
from ml_platform.training.tracking import Tracking

EXPERIMENT = "loan_default"


def test_running_runs_of_finished_dagster_runs_are_failed_with_their_trials(
    home: PlatformHome,
) -> None:
    tracking = Tracking(home.tracking_uri, artifact_root=home.artifact_root)
    client = tracking.client
    experiment = tracking.experiment_id(EXPERIMENT)

    def run(name: str, tags: dict[str, str], status: str = "RUNNING") -> str:
        run_id = client.create_run(experiment, run_name=name, tags=tags).info.run_id
        if status != "RUNNING":
            client.set_terminated(run_id, status=status)
        return run_id

    killed = run("killed-candidate", {"dagster_run_id": "dead-run"})
    trial = run("trial-3", {"mlflow.parentRunId": killed})  # the trial under way at the kill
    done_trial = run("trial-2", {"mlflow.parentRunId": killed}, status="FINISHED")
    live = run("live-candidate", {"dagster_run_id": "live-run"})
    live_trial = run("trial-0", {"mlflow.parentRunId": live})
    finished = run("old-candidate", {"dagster_run_id": "dead-run-2"}, status="FINISHED")
    notebook = run("someone's notebook", {})  # no Dagster link: not ours to judge
    other = tracking.experiment_id("another_pipeline")
    elsewhere = client.create_run(other, tags={"dagster_run_id": "dead-run"}).info.run_id

    assert sorted(o.run_id for o in find_orphans(tracking, EXPERIMENT, {"live-run"})) == sorted(
        [killed, trial]
    )
    orphans = fail_orphaned_runs(tracking, EXPERIMENT, {"live-run"})
    assert {(o.run_id, o.dagster_run_id) for o in orphans} == {
        (killed, "dead-run"),
        (trial, "dead-run"),
    }
    status = {
        r: client.get_run(r).info.status
        for r in (killed, trial, done_trial, live, live_trial, finished, notebook, elsewhere)
    }
    assert status == {
        killed: "FAILED",
        trial: "FAILED",
        done_trial: "FINISHED",
        live: "RUNNING",
        live_trial: "RUNNING",
        finished: "FINISHED",
        notebook: "RUNNING",
        elsewhere: "RUNNING",
    }
    assert "dead-run is no longer in progress" in client.get_run(killed).data.tags[RECOVERED_TAG]
    assert fail_orphaned_runs(tracking, EXPERIMENT, {"live-run"}) == []  # idempotent
    assert fail_orphaned_runs(tracking, "no_such_experiment", set()) == []
