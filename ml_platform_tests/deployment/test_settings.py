"""The deployments' settings use the production profile's variables by their real names: every
Postgres/Redis/profile variable of the root .env.example (the list of everything ml_platform
reads) is set for compose (deploy/.env.example) and, except secrets, in the Kubernetes
ConfigMap; neither invents a variable ml_platform does not read; no secret in the ConfigMap."""

from __future__ import annotations

import re

from ml_platform.home import PROJECT_ROOT
from ml_platform_tests.deployment.artifacts import DEPLOY, load_yaml_docs

PRODUCTION = re.compile(
    r"^(ML_PLATFORM_(PG|REDIS)_\w+|ML_PLATFORM_PROFILE|ML_PLATFORM_ARTIFACT_ROOT)$"
)
OURS = re.compile(r"^(ML_PLATFORM_|MLFLOW_|DAGSTER_|FEAST_)")


def names(path: str) -> set[str]:
    text = (PROJECT_ROOT / path).read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


def configmap() -> dict[str, str]:
    for doc in load_yaml_docs(DEPLOY / "k8s" / "config.yaml"):
        if doc["kind"] == "ConfigMap":
            return doc["data"]
    raise AssertionError("no ConfigMap in deploy/k8s/config.yaml")


def problems(listed: set[str], compose: set[str], config: dict[str, str]) -> list[str]:
    wanted = {n for n in listed if PRODUCTION.match(n) and not n.endswith("_FILE")}
    found = [f"deploy/.env.example lacks {n}" for n in sorted(wanted - compose)]
    found += [
        f"the ConfigMap lacks {n}" for n in sorted(wanted - config.keys()) if "PASSWORD" not in n
    ]
    found += [f"the ConfigMap holds the secret {n}" for n in sorted(config) if "PASSWORD" in n]
    for where, got in (("deploy/.env.example", compose), ("the ConfigMap", set(config))):
        found += [
            f"{where} sets {n}, which ml_platform does not read"
            for n in sorted(got)
            if OURS.match(n) and n not in listed and n != "ML_PLATFORM_TAG"
        ]
    return found


def test_deployments_set_the_profiles_variables() -> None:
    listed = names(".env.example")
    assert "ML_PLATFORM_PG_HOST" in listed, "the root .env.example lists no production variable"
    assert problems(listed, names("deploy/.env.example"), configmap()) == []


def test_check_fails_on_a_missing_an_invented_and_a_secret_variable() -> None:
    listed = names(".env.example")
    compose = names("deploy/.env.example") - {"ML_PLATFORM_PG_HOST"}
    config = {**configmap(), "ML_PLATFORM_PG_HOSTNAME": "x", "ML_PLATFORM_PG_PASSWORD": "x"}
    found = problems(listed, compose, config)
    assert "deploy/.env.example lacks ML_PLATFORM_PG_HOST" in found
    assert "the ConfigMap sets ML_PLATFORM_PG_HOSTNAME, which ml_platform does not read" in found
    assert "the ConfigMap holds the secret ML_PLATFORM_PG_PASSWORD" in found
