"""deploy/helm/dagster-values.yaml for the official Dagster chart, checked offline: the whole
file against the chart's own values.schema.json (a 1.13-era version; deploy/schemas/README.md
says which and why not the 1.13.27 tag's), each user-code deployment against the chart's
UserDeployment with its required keys, every Kubernetes object inside the values with
kubernetes-validate, the run launcher's keys against what dagster-k8s 0.29.27's K8sRunLauncher
accepts, the code location it serves really has the k8s_job_executor, the instance settings
mirror deploy/production/dagster.yaml, and no password is in the values. Each check is shown
failing on a broken copy."""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from ml_platform_tests.deployment.artifacts import (
    DEPLOY,
    SCHEMAS,
    load_json,
    load_script,
    load_yaml,
)

VALUES = DEPLOY / "helm" / "dagster-values.yaml"
CHART_SCHEMA = SCHEMAS / "dagster.values.schema.json"
PRODUCTION_INSTANCE = DEPLOY / "production" / "dagster.yaml"
K8S_VERSION = kubernetes_validate.latest_version()


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return load_yaml(VALUES)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def local_only(node: Any) -> Any:
    """The schema without its references to a remote Kubernetes schema site (unreachable
    offline); the Kubernetes objects they describe are checked by kubernetes-validate."""
    if isinstance(node, dict):
        return {
            k: local_only(v)
            for k, v in node.items()
            if not (k == "$ref" and str(v).startswith("http"))
        }
    if isinstance(node, list):
        return [local_only(v) for v in node]
    return node


def without_required(node: Any) -> Any:
    """The schema with no required keys: Helm validates the chart's defaults merged with an
    override file, so a key the file leaves out keeps its default."""
    if isinstance(node, dict):
        return {k: without_required(v) for k, v in node.items() if k != "required"}
    if isinstance(node, list):
        return [without_required(v) for v in node]
    return node


def _errors(schema: dict[str, Any], instance: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    ]


def chart_errors(values: dict[str, Any]) -> list[str]:
    """The values file against the chart's schema, as an override of the chart's defaults.
    The schema's root admits unknown keys (kept for the old ``dagit`` alias), so a top-level
    key the chart does not declare is named here."""
    schema = without_required(local_only(load_json(CHART_SCHEMA)))
    unknown = [f"{k}: not a key of the chart" for k in values if k not in schema["properties"]]
    return unknown + _errors(schema, values)


def user_deployment_errors(deployment: dict[str, Any]) -> list[str]:
    """Against the chart's UserDeployment definition, required keys included: Helm replaces
    lists whole, so a deployment entry gets no defaults."""
    schema = local_only(load_json(CHART_SCHEMA))
    return _errors({"$defs": schema["$defs"], "$ref": "#/$defs/UserDeployment"}, deployment)


def pod(spec_extra: dict[str, Any], container_extra: dict[str, Any]) -> dict[str, Any]:
    container = {"name": "c", "image": "ml-platform-user-code:0.1.0", **container_extra}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "values-check"},
        "spec": {**spec_extra, "containers": [container]},
    }


def kubernetes_errors(resource: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'/'.join(map(str, exc.path))}: {exc.message}"]
    return []


def embedded_pods(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Kubernetes objects the values hand to pods, as Pods a validator can read."""
    pods = {}
    for d in values["dagster-user-deployments"]["deployments"]:
        pods[f"user deployment {d['name']}"] = pod(
            {
                "volumes": d.get("volumes", []),
                "securityContext": d.get("podSecurityContext", {}),
            },
            {
                "volumeMounts": d.get("volumeMounts", []),
                "resources": d.get("resources", {}),
                "securityContext": d.get("securityContext", {}),
            },
        )
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run = launcher.get("runK8sConfig", {})
    pods["run pods"] = pod(
        {"volumes": launcher.get("volumes", []), **run.get("podSpecConfig", {})},
        {"volumeMounts": launcher.get("volumeMounts", []), **run.get("containerConfig", {})},
    )
    return pods


def launcher_problems(values: dict[str, Any]) -> list[str]:
    import dagster_k8s  # installed by `make venv` from deploy/requirements-k8s.txt
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    launcher = values["runLauncher"]
    if launcher.get("type") != "K8sRunLauncher":
        return [f"runLauncher.type is {launcher.get('type')!r}, not K8sRunLauncher"]
    accepted = set(dagster_k8s.K8sRunLauncher.config_type().keys())
    renamed = {"image": "job_image"}
    problems = [
        f"runLauncher.config.k8sRunLauncher.{key}: K8sRunLauncher has no {snake(key)}"
        for key in launcher["config"]["k8sRunLauncher"]
        if renamed.get(key, snake(key)) not in accepted
    ]
    fields = set(UserDefinedDagsterK8sConfig._fields)
    problems += [
        f"runK8sConfig.{key}: not a field of the user-defined k8s config"
        for key in launcher["config"]["k8sRunLauncher"].get("runK8sConfig", {})
        if snake(key) not in fields
    ]
    return problems


def instance_problems(values: dict[str, Any]) -> list[str]:
    """The instance settings the chart renders must match the production profile's."""
    instance = load_yaml(PRODUCTION_INSTANCE)
    problems = []
    runs = values.get("concurrency", {}).get("runs", {})
    want = instance["concurrency"]["runs"]
    if not values.get("concurrency", {}).get("enabled"):
        problems.append("concurrency is not enabled")
    if runs.get("maxConcurrentRuns") != want["max_concurrent_runs"]:
        problems.append("maxConcurrentRuns differs from deploy/production/dagster.yaml")
    limits = [
        {"key": t["key"], "value": t["value"], "limit": t["limit"]}
        for t in runs.get("tagConcurrencyLimits", [])
    ]
    if limits != want["tag_concurrency_limits"]:
        problems.append("tagConcurrencyLimits differ from deploy/production/dagster.yaml")
    daemon = values.get("dagsterDaemon", {})
    for key, section in (("runMonitoring", "run_monitoring"), ("runRetries", "run_retries")):
        got = {snake(k): v for k, v in daemon.get(key, {}).items()}
        if got != instance[section]:
            problems.append(f"dagsterDaemon.{key} differs from {section} in the production yaml")
    return problems


def secret_problems(values: dict[str, Any]) -> list[str]:
    problems = []
    postgres = values["postgresql"]
    if postgres.get("enabled") or values.get("generatePostgresqlPasswordSecret", True):
        problems.append("the chart would run or generate its own Postgres password")
    if postgres.get("postgresqlPassword"):
        problems.append("postgresql.postgresqlPassword is set in the values")
    if not values.get("global", {}).get("postgresqlSecretName"):
        problems.append("global.postgresqlSecretName does not name the password's Secret")
    return problems


def test_values_match_the_chart_schema(values: dict[str, Any]) -> None:
    assert chart_errors(values) == []


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        (("dagsterWebserverr",), {"replicaCount": 1}, "dagsterWebserverr: not a key"),
        (("runLauncher", "type"), "K8sLauncher", "'K8sLauncher' is not one of"),
        (("runLauncher", "config", "k8sRunLauncher", "jobNamespaces"), "x", "'jobNamespaces'"),
        (("runLauncher", "config", "k8sRunLauncher", "failPodOnRunFailure"), "yes", "'yes'"),
        (("concurrency", "runs", "maxConcurentRuns"), 4, "'maxConcurentRuns' was unexpected"),
        (("dagsterWebserver", "replicaCount"), "one", "'one' is not of type 'integer'"),
    ],
)
def test_chart_schema_rejects_a_broken_value(
    values: dict[str, Any], path: tuple[str, ...], value: Any, error: str
) -> None:
    broken = copy.deepcopy(values)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    errors = chart_errors(broken)
    assert any(error in e for e in errors), errors


def test_user_deployments_match_the_chart_schema(values: dict[str, Any]) -> None:
    deployments = values["dagster-user-deployments"]["deployments"]
    assert values["dagster-user-deployments"]["enabled"] is True
    assert deployments
    for deployment in deployments:
        assert user_deployment_errors(deployment) == []


def test_user_deployment_schema_rejects_a_broken_entry(values: dict[str, Any]) -> None:
    broken = copy.deepcopy(values["dagster-user-deployments"]["deployments"][0])
    broken["image"]["pullPolicy"] = "Sometimes"
    del broken["port"]
    errors = user_deployment_errors(broken)
    assert any("Sometimes" in e for e in errors) and any("'port'" in e for e in errors), errors


def test_kubernetes_objects_in_the_values_are_valid(values: dict[str, Any]) -> None:
    for what, resource in embedded_pods(values).items():
        assert kubernetes_errors(resource) == [], what


def test_kubernetes_validation_fails_on_a_broken_volume(values: dict[str, Any]) -> None:
    broken = copy.deepcopy(values)
    broken["runLauncher"]["config"]["k8sRunLauncher"]["volumes"][0]["persistentVolumeClaim"] = {
        "claim": "ml-platform-home"
    }
    assert kubernetes_errors(embedded_pods(broken)["run pods"])


def test_run_launcher_keys_are_k8s_run_launcher_config(values: dict[str, Any]) -> None:
    assert launcher_problems(values) == []


def test_run_launcher_check_fails_on_an_unknown_key(values: dict[str, Any]) -> None:
    broken = copy.deepcopy(values)
    broken["runLauncher"]["config"]["k8sRunLauncher"]["jobNamespaces"] = "x"
    broken["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["podConfig"] = {}
    problems = launcher_problems(broken)
    assert any("job_namespaces" in p for p in problems), problems
    assert any("podConfig" in p for p in problems), problems


def test_instance_settings_mirror_the_production_profile(values: dict[str, Any]) -> None:
    assert instance_problems(values) == []


def test_instance_check_fails_when_they_drift(values: dict[str, Any]) -> None:
    broken = copy.deepcopy(values)
    broken["concurrency"]["runs"]["tagConcurrencyLimits"][0]["limit"] = 2
    broken["dagsterDaemon"]["runRetries"]["maxRetries"] = 3
    problems = instance_problems(broken)
    assert any("tagConcurrencyLimits" in p for p in problems), problems
    assert any("runRetries" in p for p in problems), problems


def test_no_password_in_the_values(values: dict[str, Any]) -> None:
    assert secret_problems(values) == []
    broken = copy.deepcopy(values)
    broken["postgresql"]["postgresqlPassword"] = "hunter2"
    assert any("postgresqlPassword" in p for p in secret_problems(broken))


def test_code_location_file_exists_in_the_image_layout(values: dict[str, Any]) -> None:
    args = values["dagster-user-deployments"]["deployments"][0]["dagsterApiGrpcArgs"]
    path = args[args.index("--python-file") + 1]
    assert path.startswith("/opt/ml_platform/")
    assert (DEPLOY.parent / path.removeprefix("/opt/ml_platform/")).is_file()
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "COPY deploy/k8s/code_location.py" in dockerfile


def executor_problems(defs: Any) -> list[str]:
    """Jobs whose steps would not each run in a Kubernetes Job."""
    from dagster_k8s import k8s_job_executor

    repo = defs.get_repository_def()
    return [
        f"{job.name} runs with {job.executor_def.name}"
        for job in repo.get_all_jobs()
        if job.executor_def.executor_creation_fn is not k8s_job_executor.executor_creation_fn
    ]


def test_code_location_runs_every_step_in_its_own_pod() -> None:
    from ml_platform.definitions import defs as project_defs

    location = load_script(DEPLOY / "k8s" / "code_location.py")
    assert executor_problems(location.defs) == []
    # The same check on the project's own definitions (in-process executor) fails.
    assert any("in_process" in p for p in executor_problems(project_defs))
