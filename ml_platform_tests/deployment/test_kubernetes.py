"""deploy/k8s/: every manifest valid for Kubernetes (kubernetes-validate, strict: unknown
fields are errors, offline with the schemas the package ships), and what validity cannot say:
the prediction service's probes hit the service's real endpoints, its Service and autoscaler
point at it, the tuning Job runs parallel workers on the production profile's shared study,
every pod runs as non-root, and secrets are only referenced. Each check is shown failing on a
broken copy."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from ml_platform.home import PROJECT_ROOT
from ml_platform_tests.deployment.artifacts import DEPLOY, load_yaml_docs

K8S = DEPLOY / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))
# The oldest Kubernetes still commonly run and the newest the package knows.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
SERVING_APP = PROJECT_ROOT / "ml_platform" / "serving" / "app.py"


def validation_errors(resource: dict[str, Any], version: str) -> list[str]:
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'/'.join(map(str, exc.path))}: {exc.message}"]
    return []


def resources() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in MANIFESTS:
        for doc in load_yaml_docs(path):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    return resource["spec"]["template"]["spec"]


def test_manifests_exist() -> None:
    names = {p.name for p in MANIFESTS}
    assert {"serving.yaml", "tuning-job.yaml", "config.yaml"} <= names


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: Path(p).name)
def test_manifest_is_valid_kubernetes(path: Path, version: str) -> None:
    for doc in load_yaml_docs(path):
        assert validation_errors(doc, version) == [], f"{doc['kind']} in {path.name}"


def test_validation_fails_on_an_unknown_field_and_a_wrong_type() -> None:
    deployment = resources()[("Deployment", "ml-platform-serving")]
    misspelt = copy.deepcopy(deployment)
    container = pod_spec(misspelt)["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    assert validation_errors(misspelt, VERSIONS[-1])
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    assert validation_errors(wrong_type, VERSIONS[-1])


def serving_problems(found: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    deployment = found.get(("Deployment", "ml-platform-serving"))
    if deployment is None:
        return ["no Deployment ml-platform-serving"]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    app_source = SERVING_APP.read_text()
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = (container.get(probe) or {}).get("httpGet", {})
        if get.get("path") != path:
            problems.append(f"{probe} does not GET {path}")
        elif f'"{path}"' not in app_source:
            problems.append(f"the serving app has no {path} route")
        if get.get("port") not in ports and get.get("port") not in ports.values():
            problems.append(f"{probe} port {get.get('port')!r} is not a container port")
    if "ml_platform.serving.app:app_from_env" not in container.get("command", []):
        problems.append("the container does not run ml_platform.serving.app:app_from_env")
    service = found.get(("Service", "ml-platform-serving"), {})
    selector = service.get("spec", {}).get("selector", {})
    if not selector or not selector.items() <= pod["metadata"]["labels"].items():
        problems.append("the Service does not select the serving pods")
    hpa = found.get(("HorizontalPodAutoscaler", "ml-platform-serving"), {})
    target = hpa.get("spec", {}).get("scaleTargetRef", {})
    if (target.get("kind"), target.get("name")) != ("Deployment", "ml-platform-serving"):
        problems.append("the HorizontalPodAutoscaler does not scale the serving Deployment")
    return problems


def tuning_problems(found: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    jobs = [r for (kind, _), r in found.items() if kind == "Job"]
    if not jobs:
        return ["no tuning Job"]
    job = jobs[0]
    problems = []
    if job["spec"].get("parallelism", 1) < 2:
        problems.append("the tuning Job runs fewer than 2 pods at once")
    command = pod_spec(job)["containers"][0].get("command", [])
    if command[:2] != ["ml-platform", "tune"] or "--storage" in command or "--study" in command:
        problems.append("the workers must run `ml-platform tune` on the profile's default study")
    if "user-code" not in pod_spec(job)["containers"][0]["image"]:
        problems.append("tuning needs the user-code image (Optuna is not in the serving one)")
    return problems


def shared_problems(found: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    problems = []
    config = found.get(("ConfigMap", "ml-platform-env"), {}).get("data", {})
    if config.get("ML_PLATFORM_PROFILE") != "production":
        problems.append("ml-platform-env does not set ML_PLATFORM_PROFILE=production")
    claims = {name for (kind, name) in found if kind == "PersistentVolumeClaim"}
    for (kind, name), resource in found.items():
        if kind == "Secret":
            problems.append(f"Secret {name} is committed: create it from your secret store")
        if kind not in ("Deployment", "Job"):
            continue
        spec = pod_spec(resource)
        if not spec.get("securityContext", {}).get("runAsNonRoot"):
            problems.append(f"{kind} {name} may run as root")
        for volume in spec.get("volumes", []):
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            if claim and claim not in claims:
                problems.append(f"{kind} {name} mounts unknown claim {claim}")
        for container in spec["containers"]:
            image = container["image"]
            if image.endswith(":latest") or ":" not in image:
                problems.append(f"{kind} {name}: image {image} has no fixed tag")
            for env in container.get("env", []):
                if "PASSWORD" in env["name"] and not env["name"].endswith("_FILE"):
                    problems.append(f"{kind} {name}: {env['name']} set in the manifest")
    return problems


def all_problems(found: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    return serving_problems(found) + tuning_problems(found) + shared_problems(found)


def test_manifests_fit_together() -> None:
    assert all_problems(resources()) == []


def _container(found: dict[tuple[str, str], dict[str, Any]], kind: str, name: str) -> Any:
    return pod_spec(found[(kind, name)])["containers"][0]


SERVING = ("Deployment", "ml-platform-serving")
TUNING = ("Job", "ml-platform-tune-loan-default")


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda f: _container(f, *SERVING)["readinessProbe"]["httpGet"].update(path="/"), "GET"),
        (
            lambda f: _container(f, *SERVING)["livenessProbe"]["httpGet"].update(port=9000),
            "not a container port",
        ),
        (
            lambda f: f[("Service", "ml-platform-serving")]["spec"]["selector"].update(app="x"),
            "does not select",
        ),
        (
            lambda f: f[("HorizontalPodAutoscaler", "ml-platform-serving")]["spec"][
                "scaleTargetRef"
            ].update(name="other"),
            "does not scale",
        ),
        (lambda f: f[TUNING]["spec"].update(parallelism=1), "fewer than 2"),
        (lambda f: _container(f, *TUNING)["command"].extend(["--storage", "x"]), "default study"),
        (lambda f: _container(f, *TUNING).update(image="ml-platform-serving:0.1.0"), "user-code"),
        (
            lambda f: f[("ConfigMap", "ml-platform-env")]["data"].update(
                ML_PLATFORM_PROFILE="embedded"
            ),
            "ML_PLATFORM_PROFILE",
        ),
        (lambda f: pod_spec(f[TUNING])["securityContext"].pop("runAsNonRoot"), "as root"),
        (
            lambda f: _container(f, *SERVING)["env"].append(
                {"name": "ML_PLATFORM_PG_PASSWORD", "value": "x"}
            ),
            "set in the manifest",
        ),
        (lambda f: _container(f, *SERVING).update(image="ml-platform-serving:latest"), "fixed"),
        (
            lambda f: f.update({("Secret", "s"): {"kind": "Secret", "data": {}}}),
            "is committed",
        ),
    ],
)
def test_each_check_fails_on_a_broken_copy(breakage: Any, expected: str) -> None:
    broken = copy.deepcopy(resources())
    breakage(broken)
    found = all_problems(broken)
    assert any(expected in p for p in found), found
