"""Where a secret could end up after a run, searched for one known value: the command's output,
every Dagster event of the instance, every MLflow param and tag (runs, registered models, model
versions), every file under the platform home and the artifact root, and a dump of each
service database."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dagster as dg
from mlflow.tracking import MlflowClient

from ml_platform.home import PlatformHome


def in_files(root: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [
        str(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes()
    ]


def in_events(instance: dg.DagsterInstance, secret: str) -> list[str]:
    found = []
    for record in instance.get_run_records():
        run = record.dagster_run
        if secret in dg.serialize_value(run):
            found.append(f"run {run.run_id}")
        for entry in instance.all_logs(run.run_id):
            if secret in dg.serialize_value(entry):
                found.append(f"event {entry.dagster_event_type} of run {run.run_id}")
    return found


def in_mlflow(client: MlflowClient, secret: str) -> list[str]:
    found = []
    experiments = client.search_experiments()
    for exp in experiments:
        if secret in str(exp.tags) or secret in (exp.artifact_location or ""):
            found.append(f"experiment {exp.name}")
    for run in client.search_runs([e.experiment_id for e in experiments], max_results=10_000):
        for kind, values in (("param", run.data.params), ("tag", run.data.tags)):
            found += [
                f"{kind} {k} of run {run.info.run_id}" for k, v in values.items() if secret in v
            ]
    for model in client.search_registered_models():
        found += [f"tag {k} of model {model.name}" for k, v in model.tags.items() if secret in v]
        for version in client.search_model_versions(f"name = '{model.name}'"):
            found += [
                f"tag {k} of {model.name} v{version.version}"
                for k, v in version.tags.items()
                if secret in v
            ]
            if secret in (version.source or ""):
                found.append(f"source of {model.name} v{version.version}")
    return found


def in_databases(databases: list[str], secret: str) -> list[str]:
    """Databases the run created that hold ``secret`` (a store the run never used, such as the
    prediction log's in a training run, was never created and holds nothing)."""
    existing = set(
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-Atc",
                "SELECT datname FROM pg_database",
            ],
            capture_output=True,
            check=True,
            text=True,
        ).stdout.split()
    )
    found = []
    for db in [d for d in databases if d in existing]:
        dump = subprocess.run(
            ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "--data-only", db],
            capture_output=True,
            check=True,
        ).stdout
        if secret.encode() in dump:
            found.append(f"database {db}")
    return found


def everywhere(home: PlatformHome, secret: str, output: str, databases: list[str]) -> list[str]:
    found = ["command output"] if secret in output else []
    found += in_files(home.root, secret)
    if not home.artifact_root.is_relative_to(home.root):
        found += in_files(home.artifact_root, secret)
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        found += in_events(instance, secret)
    found += in_mlflow(MlflowClient(home.tracking_uri, registry_uri=home.tracking_uri), secret)
    return found + in_databases(databases, secret)
