"""Run benchmarks and write docs/benchmarks.md.

Each ``bench_*.py`` module has ``run() -> str`` returning a markdown section: it times the
platform and the baseline named by its issue on the same data and reports the ratio (the
end-to-end benchmarks launch every run as a fresh process, as Dagster does). Sections are kept in
docs/benchmarks/<name>.md, so ``python -m benchmarks.run NAME`` refreshes one and
docs/benchmarks.md is rebuilt from all of them.

``BENCH_DOCS_DIR`` writes the sections and the index to another docs directory, e.g. when the
benchmarks run from an exported commit (``git archive``) while the checkout keeps changing;
``BENCH_CODE_VERSION`` then names the code measured (default: ``git rev-parse`` of this tree,
with a note if it has uncommitted changes).
"""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = Path(os.environ.get("BENCH_DOCS_DIR") or ROOT / "docs")
HEADER = (
    "# Benchmarks\n\nEach benchmark runs the platform and the baseline its issue names on "
    "the same data and reports the ratio: the end-to-end ones (pipeline, executor) launch "
    "every run as a fresh process, as Dagster does, and interleave the two sides; absolute "
    "times on these shared 2-core machines are noise. Regenerate with `make bench`.\n"
)


def code_version() -> str:
    if version := os.environ.get("BENCH_CODE_VERSION"):
        return version
    try:

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()

        dirty = " + uncommitted changes" if git("status", "--porcelain", "--", ".") else ""
        return f"commit {git('rev-parse', '--short', 'HEAD')}{dirty}"
    except (OSError, subprocess.CalledProcessError):
        return "unknown code version"


def write_index() -> None:
    parts = [p.read_text() for p in sorted((DOCS / "benchmarks").glob("bench_*.md"))]
    (DOCS / "benchmarks.md").write_text(HEADER + "\n" + "\n".join(parts))


def main(argv: list[str]) -> None:
    names = argv or sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    (DOCS / "benchmarks").mkdir(parents=True, exist_ok=True)
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        section = module.run()
        stamp = (
            f"_Command: `python -m benchmarks.run {name}` (or `make bench`); "
            f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} cores, "
            f"{code_version()}, took {time.perf_counter() - started:.0f} s._"
        )
        print(section, flush=True)
        (DOCS / "benchmarks" / f"{name}.md").write_text(f"{section}\n\n{stamp}\n")
    write_index()
    print(f"wrote {DOCS / 'benchmarks.md'}")


if __name__ == "__main__":
    main(sys.argv[1:])
