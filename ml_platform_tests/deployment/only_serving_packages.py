"""Run Python code as if only requirements-serving.txt were installed: a meta-path finder
refuses any top-level module that belongs to an installed distribution the file does not pin
(the standard library and ml_platform itself are allowed), as the serving image would.

    python only_serving_packages.py REQUIREMENTS_FILE CODE
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata as md
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(requirements: Path) -> set[str]:
    names = set()
    for raw in requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            names.add(canonical(line.split("==")[0]))
    return names


class OnlyPinned(importlib.abc.MetaPathFinder):
    def __init__(self, allowed: set[str]) -> None:
        dists = md.packages_distributions()
        self.owners = {m: {canonical(d) for d in ds} for m, ds in dists.items()}
        self.allowed = allowed | {"ml-platform"}
        self.refused: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> None:
        top = fullname.partition(".")[0]
        owners = self.owners.get(top)
        if owners and not owners & self.allowed:
            self.refused.append(top)
            raise ModuleNotFoundError(
                f"No module named '{top}' (its distribution {sorted(owners)} is not in "
                "requirements-serving.txt)",
                name=top,
            )
        return None


if __name__ == "__main__":
    finder = OnlyPinned(pinned(Path(sys.argv[1])))
    sys.meta_path.insert(0, finder)
    exec(compile(sys.argv[2], "<serving-check>", "exec"))
