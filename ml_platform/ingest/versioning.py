"""Code version: the git commit of the project checkout (with a dirty marker)."""

from __future__ import annotations

import functools
import subprocess

from ml_platform.home import PROJECT_ROOT


@functools.cache
def code_version() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    try:
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        dirty = False
    return f"{commit}-dirty" if dirty else commit
