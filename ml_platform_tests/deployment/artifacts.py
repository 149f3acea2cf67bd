"""Readers for the deployment artifacts under deploy/, shared by the static tests."""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from ml_platform.home import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
SCHEMAS = DEPLOY / "schemas"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def load_script(path: Path) -> ModuleType:
    """A script under deploy/ (not a package) as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str  # upper case: FROM, RUN, COPY, USER, ...
    args: str
    stage: str  # the stage this instruction belongs to ("" before the first FROM)


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped (enough for checks on
    our own Dockerfile; not a full BuildKit parser: no heredocs, no escape directive)."""
    out: list[Instruction] = []
    stage, buffer, start = "", "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, args = buffer.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.search(r"\bAS\s+(\S+)\s*$", args, re.IGNORECASE)
            stage = match.group(1) if match else args.split()[0]
        out.append(Instruction(start, keyword, args.strip(), stage))
        buffer = ""
    return out
