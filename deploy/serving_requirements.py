"""Derive requirements-serving.txt: the exact pins the prediction service needs, a subset of
requirements.txt.

The service (ml_platform/serving) needs its web stack, the model's libraries, the MLflow client
and Feast's online read path, never the training side (Optuna, dbt, Great Expectations, Dagster).
ROOTS names what it imports; their dependencies are followed through the installed packages'
metadata (markers evaluated for this Python and for the extras asked for), and every package
reached must be pinned in requirements.txt: the serving image installs the same versions as
the user-code image, only fewer of them.

    python deploy/serving_requirements.py          # write requirements-serving.txt
    python deploy/serving_requirements.py --check  # exit 1 if the file is out of date
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import re
import sys
import tempfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
FULL = ROOT / "requirements.txt"
SERVING = ROOT / "requirements-serving.txt"

# What the serving process imports (a distribution name, with the extras it needs), and why.
ROOTS: dict[str, tuple[str, ...]] = {
    "fastapi": (),
    "uvicorn": ("standard",),  # uvloop + httptools: the event loop the service is measured on
    "orjson": (),
    "prometheus_client": (),
    "pydantic": (),
    "PyYAML": (),  # pipeline specs
    "numpy": (),
    "pandas": (),  # the DataFrame fallback path, Feast responses
    "pyarrow": (),
    "scikit-learn": (),  # the fitted Pipeline
    "skops": (),  # models are logged in the skops format
    "threadpoolctl": (),  # one native thread per worker
    "mlflow-skinny": (),  # MlflowClient, mlflow.sklearn, mlflow.artifacts
    "SQLAlchemy": (),  # the embedded profile's SQLite registry
    "alembic": (),
    "feast": (),
    "duckdb": (),  # the feature_store config names the DuckDB offline store (imported at open)
    "ibis-framework": (),
    "redis": (),  # the production online store
    "hiredis": (),
    "psycopg": (),  # Feast's SQL registry on Postgres
    "psycopg-binary": (),
    "psycopg-pool": (),
    "psycopg2-binary": (),  # MLflow's store on Postgres (the production profile's default)
}
# Never in the serving image (the fresh-process import test checks the modules too).
FORBIDDEN = {"optuna", "dbt-core", "great-expectations", "dagster", "dagster-dbt", "pandera"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements file, by canonical name."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not version.strip():
            raise ValueError(f"{path.name}:{number}: '{line}' is not an exact pin (name==version)")
        pins[canonical(name.strip())] = f"{name.strip()}=={version.strip()}"
    return pins


def _requires(dist: str, extras: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    try:
        requires = md.distribution(dist).requires or []
    except md.PackageNotFoundError as exc:
        raise SystemExit(f"'{dist}' is not installed: run 'make venv' first") from exc
    found = []
    for text in requires:
        req = Requirement(text)
        for extra in ("", *extras):
            env = {**default_environment(), "extra": extra}
            if req.marker is None or req.marker.evaluate(env):  # type: ignore[arg-type]
                found.append((req.name, tuple(sorted(req.extras))))
                break
    return found


def closure(roots: dict[str, tuple[str, ...]]) -> set[str]:
    """Every distribution the roots need (canonical names), extras included."""
    seen: dict[str, set[str]] = {}
    todo = [(name, tuple(extras)) for name, extras in roots.items()]
    while todo:
        name, extras = todo.pop()
        key = canonical(name)
        done = seen.setdefault(key, set())
        new = [e for e in ("", *extras) if e not in done]
        if not new:
            continue
        done.update(new)
        todo.extend(_requires(name, tuple(e for e in new if e)))
    return set(seen)


def serving_pins() -> list[str]:
    pins = read_pins(FULL)
    needed = closure(ROOTS)
    unpinned = sorted(needed - pins.keys())
    if unpinned:
        raise SystemExit(
            f"serving needs packages requirements.txt does not pin: {', '.join(unpinned)}; "
            "pin them there (exact versions) and run this again"
        )
    banned = sorted(needed & {canonical(n) for n in FORBIDDEN})
    if banned:
        raise SystemExit(f"a serving root pulls in training-side packages: {', '.join(banned)}")
    return sorted((pins[n] for n in needed), key=str.lower)


def render(lines: list[str]) -> str:
    header = (
        "# The prediction service's exact pins: a subset of requirements.txt, derived by\n"
        "# deploy/serving_requirements.py (do not edit by hand; run it after changing pins).\n"
        "# No Optuna, dbt, Great Expectations or Dagster. Install it with --no-deps (it is the\n"
        "# whole closure), then the project.\n"
    )
    return header + "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    parser.add_argument("--output", type=Path, default=SERVING)
    args = parser.parse_args(argv)
    text = render(serving_pins())
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(
                f"{args.output.name} is out of date with requirements.txt and ROOTS: "
                "run 'python deploy/serving_requirements.py'",
                file=sys.stderr,
            )
            return 1
        return 0
    write_atomic(args.output, text)
    print(f"wrote {args.output} ({text.count('==')} pins)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
