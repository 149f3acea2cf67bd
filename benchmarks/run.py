"""Run benchmarks and write docs/benchmarks.md.

Each ``bench_*.py`` module has ``run() -> str`` returning a markdown section: it times the
platform and the baseline named by its issue side by side in the same process and reports the
ratio. Sections are kept in docs/benchmarks/<name>.md, so ``python -m benchmarks.run NAME``
refreshes one and docs/benchmarks.md is rebuilt from all of them.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def main(argv: list[str]) -> None:
    names = argv or sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    (DOCS / "benchmarks").mkdir(parents=True, exist_ok=True)
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        section = module.run()
        stamp = (f"_Command: `python -m benchmarks.run {name}` (or `make bench`); "
                 f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} cores, "
                 f"took {time.perf_counter() - started:.0f} s._")
        print(section, flush=True)
        (DOCS / "benchmarks" / f"{name}.md").write_text(f"{section}\n\n{stamp}\n")
    header = ("# Benchmarks\n\nEach benchmark runs the platform and the baseline its issue names "
              "in the same process on the same data and reports the ratio; absolute times on "
              "these shared 2-core machines are noise. Regenerate with `make bench`.\n")
    parts = [p.read_text() for p in sorted((DOCS / "benchmarks").glob("bench_*.md"))]
    (DOCS / "benchmarks.md").write_text(header + "\n" + "\n".join(parts))
    print(f"wrote {DOCS / 'benchmarks.md'}")


if __name__ == "__main__":
    main(sys.argv[1:])
