"""deploy/compose.yaml: valid against the Compose Specification's JSON schema (vendored, see
deploy/schemas/README.md), every service of a full deployment present with a healthcheck, its
dependencies waiting on health, images pinned, mounted files present, and every setting from
the env file (no secret written in the file). Each check is shown failing on a broken copy."""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema
import pytest

from ml_platform_tests.deployment.artifacts import DEPLOY, SCHEMAS, load_json, load_yaml

COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
SERVICES = {
    "postgres",
    "redis",
    "mlflow",
    "dagster-webserver",
    "dagster-daemon",
    "user-code",
    "serving",
}
EXACT_TAG = re.compile(r"^[\w.\-/]+:\d+\.\d+(\.\d+)?[\w.\-]*(@sha256:[0-9a-f]{64})?$")
OUR_IMAGE = re.compile(r"^ml-platform-(user-code|serving):\$\{ML_PLATFORM_TAG:-[\w.\-]+\}$")
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def schema_errors(document: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(load_json(SCHEMAS / "compose-spec.json"))
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def problems(compose: dict[str, Any]) -> list[str]:
    """What the schema cannot say about a full deployment of ours."""
    found: list[str] = []
    services = compose.get("services", {})
    missing = SERVICES - services.keys()
    if missing:
        found.append(f"services missing: {sorted(missing)}")
    for name, service in services.items():
        check = service.get("healthcheck")
        if not check or check.get("disable") or not check.get("test"):
            found.append(f"{name}: no healthcheck")
        image = service.get("image", "")
        if not (EXACT_TAG.match(image) or (OUR_IMAGE.match(image) and "build" in service)):
            found.append(f"{name}: image {image!r} is not pinned to an exact tag")
        for dep, how in (service.get("depends_on") or {}).items():
            if dep not in services:
                found.append(f"{name}: depends on unknown service {dep!r}")
            elif how.get("condition") != "service_healthy":
                found.append(f"{name}: does not wait for {dep} to be healthy")
        for key, value in (service.get("environment") or {}).items():
            if SECRET_KEY.search(key) and value and not str(value).startswith("${"):
                found.append(f"{name}: {key} has a literal value (set it in deploy/.env)")
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith(".") and not (DEPLOY / source).exists():
                found.append(f"{name}: mounts {source}, which does not exist under deploy/")
    return found


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_compose_file_is_valid_against_the_compose_spec(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []


def test_schema_rejects_a_misspelt_key(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["serving"]["helthcheck"] = broken["services"]["serving"].pop("healthcheck")
    errors = schema_errors(broken)
    assert any("helthcheck" in e for e in errors), errors


def test_schema_rejects_a_value_outside_its_enum(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["serving"]["depends_on"]["redis"]["condition"] = "service_happy"
    assert any("service_happy" in e for e in schema_errors(broken)), schema_errors(broken)


def test_full_deployment_with_healthchecks_and_pinned_images(compose: dict[str, Any]) -> None:
    assert problems(compose) == []


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda c: c["services"].pop("dagster-daemon"), "services missing"),
        (lambda c: c["services"]["mlflow"].pop("healthcheck"), "mlflow: no healthcheck"),
        (lambda c: c["services"]["redis"].update(image="redis:latest"), "not pinned"),
        (
            lambda c: c["services"]["serving"]["depends_on"]["mlflow"].update(
                condition="service_started"
            ),
            "does not wait for mlflow",
        ),
        (
            lambda c: c["services"]["mlflow"]["environment"].update(PGPASSWORD="hunter2"),
            "literal value",
        ),
        (
            lambda c: c["services"]["postgres"]["volumes"].append("./nowhere:/x"),
            "does not exist",
        ),
    ],
)
def test_each_check_fails_on_a_broken_copy(
    compose: dict[str, Any], breakage: Any, expected: str
) -> None:
    broken = copy.deepcopy(compose)
    breakage(broken)
    assert any(expected in p for p in problems(broken)), problems(broken)


def test_every_interpolated_variable_is_in_the_env_example() -> None:
    used = set(VARIABLE.findall(COMPOSE.read_text()))
    listed = env_example().keys()
    assert used, "the compose file interpolates nothing?"
    assert sorted(used - listed) == []


def test_env_example_sets_the_production_profile_and_no_secret() -> None:
    env = env_example()
    assert env["ML_PLATFORM_PROFILE"] == "production"
    assert {k: v for k, v in env.items() if SECRET_KEY.search(k) and v} == {}


def test_every_service_reads_the_env_file(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        paths = [e["path"] if isinstance(e, dict) else e for e in service.get("env_file", [])]
        assert ".env" in paths, f"{name} does not read deploy/.env"


def test_workspace_points_at_the_user_code_server(compose: dict[str, Any]) -> None:
    workspace = load_yaml(DEPLOY / "compose" / "workspace.yaml")
    server = workspace["load_from"][0]["grpc_server"]
    command = compose["services"]["user-code"]["command"]
    assert server["host"] == "user-code"
    assert command[command.index("-p") + 1] == str(server["port"])
