"""deploy/Dockerfile, read statically (no container daemon on these machines): two targets,
the base image pinned to the interpreter the pins were resolved with, a non-root user in each
image, the user-code image on requirements.txt, the serving image on requirements-serving.txt
only, every copied path present and not ignored, commands that exist. Each check is shown
failing on a broken copy."""

from __future__ import annotations

import fnmatch
import re
import shlex
import sys

import pytest

from ml_platform.home import PROJECT_ROOT
from ml_platform_tests.deployment.artifacts import DEPLOY, Instruction, parse_dockerfile

DOCKERFILE = DEPLOY / "Dockerfile"
IGNORE = DEPLOY / "Dockerfile.dockerignore"
PINNED = re.compile(r"^python:(\d+\.\d+\.\d+)-slim-[a-z]+(@sha256:[0-9a-f]{64})?$")
TARGETS = ("user-code", "serving")
ARG = "ARG PYTHON_IMAGE="


def stages(instructions: list[Instruction]) -> dict[str, list[Instruction]]:
    """Each stage's instructions, with those of the stages it is built FROM before them."""
    own: dict[str, list[Instruction]] = {}
    parent: dict[str, str] = {}
    for ins in instructions:
        own.setdefault(ins.stage, []).append(ins)
        if ins.keyword == "FROM":
            parent[ins.stage] = ins.args.split()[0]
    full: dict[str, list[Instruction]] = {}
    for name in own:
        chain, at, seen = [], name, set()
        while at in own and at not in seen:
            seen.add(at)
            chain = own[at] + chain
            at = parent.get(at, "")
        full[name] = chain
    return full


def ignored(path: str) -> bool:
    patterns = [
        p.strip() for p in IGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, pat) for pat in patterns for prefix in prefixes)


def problems(text: str) -> list[str]:
    instructions = parse_dockerfile(text)
    found: list[str] = []
    args = {
        i.args.split("=", 1)[0]: i.args.split("=", 1)[1]
        for i in instructions
        if i.keyword == "ARG" and "=" in i.args
    }
    by_stage = stages(instructions)
    for target in TARGETS:
        if target not in by_stage:
            found.append(f"no target {target!r}")
    for ins in instructions:
        if ins.keyword == "FROM":
            image = ins.args.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
            if image in by_stage:
                continue
            match = PINNED.match(image)
            if not match:
                found.append(f"line {ins.line}: base image {image!r} is not an exact tag")
            elif match.group(1) != ".".join(map(str, sys.version_info[:3])):
                found.append(
                    f"line {ins.line}: base image Python {match.group(1)} is not the "
                    f"{sys.version.split()[0]} the pins were resolved with"
                )
        if ins.keyword == "COPY" and "--from" not in ins.args:
            for source in shlex.split(ins.args)[:-1]:
                if not (PROJECT_ROOT / source).exists():
                    found.append(f"line {ins.line}: COPY {source}: no such path")
                elif ignored(source):
                    found.append(f"line {ins.line}: COPY {source}: excluded by the ignore file")
    for target in TARGETS:
        body = by_stage.get(target, [])
        users = [i.args for i in body if i.keyword == "USER"]
        if not users or users[-1].split(":")[0] in ("root", "0"):
            found.append(f"{target}: runs as root")
        runs = " ".join(i.args for i in body if i.keyword == "RUN")
        if target == "user-code" and "-r requirements.txt" not in runs:
            found.append("user-code: does not install requirements.txt")
        if target == "serving":
            if "-r requirements.txt" in runs:
                found.append("serving: installs requirements.txt (the training side)")
            if "--no-deps -r requirements-serving.txt" not in runs:
                found.append("serving: does not install requirements-serving.txt with --no-deps")
        if not any(i.keyword == "CMD" for i in body):
            found.append(f"{target}: no CMD")
    return found


def test_dockerfile_passes_every_check() -> None:
    assert problems(DOCKERFILE.read_text()) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (f"{ARG}python:3.11.7-slim-bookworm", f"{ARG}python:3.11-slim", "not an exact tag"),
        (f"{ARG}python:3.11.7-slim-bookworm", f"{ARG}python:3.11.6-slim-bookworm", "resolved"),
        ("FROM base AS serving", "FROM base AS web", "no target 'serving'"),
        (
            "COPY requirements-serving.txt ./",
            "COPY requirements-serving.txt requirements.txt ./\n"
            "RUN pip install -r requirements.txt",
            "serving: installs requirements.txt",
        ),
        ("COPY dbt_project ./dbt_project", "COPY dbt_projects ./dbt_project", "no such path"),
        (
            "COPY feature_repo ./feature_repo\nCOPY deploy",
            "COPY docs ./docs\nCOPY deploy",
            "excluded by the ignore file",
        ),
    ],
)
def test_each_check_fails_on_a_broken_copy(old: str, new: str, expected: str) -> None:
    text = DOCKERFILE.read_text()
    assert old in text
    found = problems(text.replace(old, new, 1))
    assert any(expected in p for p in found), found


def test_root_user_at_the_end_of_a_target_is_caught() -> None:
    text = DOCKERFILE.read_text().rstrip() + "\nUSER root\n"
    assert "serving: runs as root" in problems(text)


def test_commands_exist() -> None:
    from ml_platform.serving import app

    text = DOCKERFILE.read_text()
    assert '"-m", "ml_platform.definitions"' in text
    assert (PROJECT_ROOT / "ml_platform" / "definitions.py").is_file()
    assert '"ml_platform.serving.app:app_from_env"' in text
    assert callable(app.app_from_env)


def test_local_state_and_secrets_never_reach_the_build() -> None:
    for path in (".env", ".ml_platform", ".venv", ".git", "dbt_project/target"):
        assert ignored(path), path
    for path in ("ml_platform/serving/app.py", "requirements.txt", "dbt_project/dbt_project.yml"):
        assert not ignored(path), path
