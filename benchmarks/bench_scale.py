"""Issue 16: the demo pipeline at 1e5, 1e6 and 1e7 events on the embedded profile, and at 1e6
on the production profile (PostgreSQL and Redis on this machine). Targets: the run's wall time
grows no faster than linearly from 1e6 to 1e7 events (ratio at most 11x); the peak memory of
the run at 1e7 events is at most 12 GB; at 1e6 events the production profile's wall time is at
most 1.5x the embedded profile's.

Method (fixed before any result was looked at):

- Sizes ``BENCH_SCALE_SIZES`` (default ``100000,1000000,10000000``), each over 120 days of the
  demo generator (``ml_platform.ingest.datagen``, seeded). For each size, a new home with the
  generated files landed, then one run of ``ml-platform run loan_default`` (the training job
  with the executor the definitions declare, on the home's Dagster instance) in a fresh
  process, timed from launch to exit. ``BENCH_SCALE_REPEATS`` (default 1: the 1e7 run alone
  takes about an hour on this machine) runs per size, each on its own new home; every run is
  reported, and the median where there are several.
- At ``BENCH_SCALE_PRODUCTION_EVENTS`` (default 1e6) the same number of runs on the production
  profile (``ML_PLATFORM_PROFILE=production``), each on fresh Postgres databases
  (``mlp_bench_<id>_<store>``) and an empty Redis database, dropped afterwards; each
  production run follows the embedded run of that size on a copy of the same landed files, so
  load from other work falls on both alike.
- Time per step: STEP_START to STEP_SUCCESS from the run's Dagster event log; before the run
  (process start, imports, definitions, instance) and after it (summary, exit) as in the
  pipeline benchmark.
- Memory: every 0.2 s the resident set size (RSS) of the run's process and all its descendants
  (dbt, the fresh-process checks) is summed; a step's peak is the largest sum while the step
  runs, and its rise that peak minus the sum when the step started (the in-process executor
  runs every step in one process, which keeps memory an earlier step freed, so the rise is
  the step's own footprint and the peak what the machine had to hold). The run's peak is also
  read exactly from the kernel's high-water mark of the run's process (``VmHWM``, the
  largest RSS it ever had). For the production profile the services' own memory (Postgres,
  Redis) is not counted.
- Growth from 1e6 to 1e7: the ratio of the medians of the whole run and of each step.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from benchmarks.bench_pipeline import PIPELINE, failures, run_timeline

ROOT = Path(__file__).resolve().parent.parent
SIZES = [int(x) for x in os.environ.get("BENCH_SCALE_SIZES", "100000,1000000,10000000").split(",")]
PRODUCTION_EVENTS = int(os.environ.get("BENCH_SCALE_PRODUCTION_EVENTS", "1000000"))
REPEATS = int(os.environ.get("BENCH_SCALE_REPEATS", "1"))
DAYS = 120
SAMPLE_S = 0.2
TARGET_GROWTH = 11.0
TARGET_PEAK_GB = 12.0
TARGET_PRODUCTION = 1.5
GB = 1024**3


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants every ``SAMPLE_S`` seconds, and
    the process's own high-water mark (VmHWM)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.samples: list[tuple[float, int]] = []  # (epoch, bytes)
        self.hwm = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            total = 0
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                with open(f"/proc/{self.root.pid}/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            self.hwm = max(self.hwm, int(line.split()[1]) * 1024)
            except (psutil.Error, OSError):
                procs = []
            for proc in procs:
                with contextlib.suppress(psutil.Error):  # ended since the listing
                    total += proc.memory_info().rss
            if procs:
                self.samples.append((time.time(), total))
            self.done.wait(SAMPLE_S)


def launch_sampled(env: dict[str, str], log: Path) -> dict[str, Any]:
    """``ml-platform run`` in a fresh process, its tree's memory sampled while it runs."""
    cmd = [str(Path(sys.executable).parent / "ml-platform"), "run", PIPELINE]
    with log.open("w") as out:
        epoch, started = time.time(), time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        code = proc.wait()
        seconds = time.perf_counter() - started
        sampler.done.set()
        sampler.join()
    return {
        "seconds": seconds,
        "epoch": epoch,
        "code": code,
        "ok": code == 0,
        "load": os.getloadavg()[0],
        "samples": [(t - epoch, b) for t, b in sampler.samples],
        "hwm": sampler.hwm,
    }


def step_memory(run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per step: the peak summed RSS while it ran and its rise over the sum at its start."""
    samples = run["samples"]
    out = {}
    for name, s in run["steps"].items():
        if "start" not in s:
            continue
        end = s.get("end", run["seconds"])
        window = [b for t, b in samples if s["start"] <= t <= end]
        before = [b for t, b in samples if t <= s["start"]]
        if not window:  # shorter than one sampling interval
            continue
        base = before[-1] if before else window[0]
        out[name] = {"peak": max(window), "rise": max(window) - base}
    return out


def production_env(token: str) -> tuple[dict[str, str], list[str], int]:
    """The production profile's variables for fresh databases and an empty Redis database (the
    machine's Postgres trusts local users; the password is a placeholder it ignores)."""
    from ml_platform_tests.production.services import PG, STORES, claim_redis_db

    names = {s: f"mlp_bench_{token}_{s.lower()}" for s in STORES}
    redis_db = claim_redis_db(token)
    env = {
        "ML_PLATFORM_PROFILE": "production",
        "ML_PLATFORM_PG_HOST": str(PG["host"]),
        "ML_PLATFORM_PG_PORT": str(PG["port"]),
        "ML_PLATFORM_PG_USER": str(PG["user"]),
        "ML_PLATFORM_PG_ADMIN_DB": str(PG["dbname"]),
        "ML_PLATFORM_PG_PASSWORD": f"bench-{token}",
        "ML_PLATFORM_REDIS_DB": str(redis_db),
        **{f"ML_PLATFORM_PG_{s}_DB": n for s, n in names.items()},
    }
    return env, list(names.values()), redis_db


def one_run(template: Path, root: Path, name: str, production: bool) -> dict[str, Any]:
    """One run on a new home holding a copy of ``template``'s landed files; the home (and on
    the production profile its databases and Redis database) removed afterwards."""
    from ml_platform_tests.production.services import drop_databases, release_redis_db

    home = root / f"{name}_home"
    shutil.copytree(template, home / "landing" / PIPELINE)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI", "PGPASSWORD")
        and not k.startswith("ML_PLATFORM_")
    }
    env["ML_PLATFORM_HOME"] = str(home)
    extra: dict[str, str] = {}
    databases: list[str] = []
    redis_db = None
    if production:
        extra, databases, redis_db = production_env(uuid.uuid4().hex[:10])
    saved = {k: os.environ.get(k) for k in extra}
    try:
        run = launch_sampled({**env, **extra}, root / f"{name}.log")
        os.environ.update(extra)  # the instance's dagster.yaml reads its Postgres settings
        run.update(run_timeline(home, run["epoch"], run["seconds"]))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if redis_db is not None:
            drop_databases(databases)
            release_redis_db(redis_db)
        shutil.rmtree(home, ignore_errors=True)
    run["ok"] = run["code"] == 0 and run["status"] == "SUCCESS"
    run["memory"] = step_memory(run)
    run["peak"] = max((b for _, b in run["samples"]), default=0)
    run.pop("samples")
    return run


def _succeeded(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Targets are judged on successful runs only: a run that stopped early is not a time."""
    return [r for r in runs if r["ok"]]


def _median(runs: list[dict[str, Any]], key: str = "seconds") -> float:
    return statistics.median(r[key] for r in runs)


def _step_median(runs: list[dict[str, Any]], step: str) -> float | None:
    times = [
        r["steps"][step]["end"] - r["steps"][step]["start"]
        for r in runs
        if "end" in r["steps"].get(step, {}) and "start" in r["steps"][step]
    ]
    return statistics.median(times) if times else None


def _mem_median(runs: list[dict[str, Any]], step: str, key: str) -> float | None:
    values = [r["memory"][step][key] for r in runs if step in r["memory"]]
    return statistics.median(values) / GB if values else None


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


Results = list[tuple[str, int, list[dict[str, Any]]]]  # (profile, events, runs)


def _runs_table(results: Results) -> list[str]:
    rows = [
        "| profile | events | run | wall s | before run / in steps / after run s | peak RSS of "
        "the run's processes GB (sampled sum / run process VmHWM) | load at exit | status |",
        "|---|---:|---:|---:|---|---|---:|---|",
    ]
    for profile, events, runs in results:
        for i, r in enumerate(runs, 1):
            rows.append(
                f"| {profile} | {events:,} | {i} | **{r['seconds']:.1f}** | "
                f"{r['before_run']:.1f} / {r['in_steps']:.1f} / {r['after_run']:.1f} | "
                f"{r['peak'] / GB:.2f} / {r['hwm'] / GB:.2f} | {r['load']:.1f} | "
                f"{r['status']} |"
            )
    return rows


def _steps_table(results: Results) -> tuple[list[str], list[str]]:
    """Per step, per (profile, size): median seconds, median peak GB, median rise GB."""
    names: list[str] = []
    for _, _, runs in results:
        for r in runs:
            for name, _ in sorted(r["steps"].items(), key=lambda kv: kv[1].get("start", 0.0)):
                if name not in names:
                    names.append(name)
    head = " | ".join(f"{p}, {e:,}" for p, e, _ in results)
    rows = [
        f"| step: s (peak GB, rise GB) | {head} |",
        "|---|" + "---:|" * len(results),
    ]
    for name in names:
        cells = [
            f"{_cell(_step_median(runs, name), '.1f')} "
            f"({_cell(_mem_median(runs, name, 'peak'), '.2f')}, "
            f"{_cell(_mem_median(runs, name, 'rise'), '.2f')})"
            for _, _, runs in results
        ]
        rows.append(f"| {name.removeprefix(PIPELINE + '_')} | {' | '.join(cells)} |")
    return rows, names


def _growth(results: Results, names: list[str]) -> list[str]:
    """The ratio of the medians from 1e6 to 1e7 events (embedded), whole run and per step."""
    by_size = {e: _succeeded(runs) for p, e, runs in results if p == "embedded"}
    if not by_size.get(1_000_000) or not by_size.get(10_000_000):
        return ["- Growth from 1e6 to 1e7 and peak at 1e7: not judged (no successful run of both)."]
    small, large = by_size[1_000_000], by_size[10_000_000]
    ratio = _median(large) / _median(small)
    lines = [
        f"- Whole run, 1e6 to 1e7 events: {_median(small):.1f} s to {_median(large):.1f} s, "
        f"**{ratio:.2f}x** (target at most {TARGET_GROWTH:.0f}x: "
        f"{'met' if ratio <= TARGET_GROWTH else 'MISSED'}).",
        "- Per step (1e6 to 1e7): "
        + "; ".join(
            f"{name.removeprefix(PIPELINE + '_')} {b / a:.1f}x"
            for name in names
            if (a := _step_median(small, name))
            and (b := _step_median(large, name)) is not None
            and a > 0.05
        )
        + ".",
    ]
    peak = max(max(r["peak"], r["hwm"]) for r in large) / GB
    lines.append(
        f"- Peak memory at 1e7 events: **{peak:.2f} GB** (the larger of the sampled sum and the "
        f"run process's high-water mark; target at most {TARGET_PEAK_GB:.0f} GB: "
        f"{'met' if peak <= TARGET_PEAK_GB else 'MISSED'})."
    )
    return lines


def _production(results: Results) -> list[str]:
    runs = {(p, e): _succeeded(r) for p, e, r in results}
    emb, prod = (
        runs.get(("embedded", PRODUCTION_EVENTS)),
        runs.get(("production", PRODUCTION_EVENTS)),
    )
    if not emb or not prod:
        return ["- Production vs embedded: not judged (no successful run of both)."]
    ratio = _median(prod) / _median(emb)
    return [
        f"- Production vs embedded profile at {PRODUCTION_EVENTS:,} events: median "
        f"{_median(prod):.1f} s against {_median(emb):.1f} s, **{ratio:.2f}x** (target at most "
        f"{TARGET_PRODUCTION}x: {'met' if ratio <= TARGET_PRODUCTION else 'MISSED'})."
    ]


def run() -> str:
    from ml_platform.ingest.datagen import GeneratorConfig, land

    root = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    print(f"  work dir {root} (logs and results.json are kept there)", flush=True)
    results: Results = []
    for events in SIZES:
        template = root / f"landed_{events}"
        started = time.perf_counter()
        land(GeneratorConfig(events=events, days=DAYS), template)
        print(f"  {events:,} events generated in {time.perf_counter() - started:.0f} s", flush=True)
        sides = ["embedded"] + (["production"] if events == PRODUCTION_EVENTS else [])
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
        for i in range(1, REPEATS + 1):
            for side in sides:
                r = one_run(template, root, f"{side}_{events}_{i}", side == "production")
                runs[side].append(r)
                print(
                    f"  {side} {events:,} #{i}: {r['seconds']:.1f} s, peak "
                    f"{max(r['peak'], r['hwm']) / GB:.2f} GB, {r['status']}",
                    flush=True,
                )
                (root / "results.json").write_text(
                    json.dumps([*results, *[(s, events, v) for s, v in runs.items()]], indent=1)
                )
        results += [(side, events, runs[side]) for side in sides]
        shutil.rmtree(template, ignore_errors=True)
    steps, names = _steps_table(results)
    section = "\n".join(
        [
            "## Scale: the demo pipeline at 1e5, 1e6 and 1e7 events (issue 16)",
            "",
            "Each run is `ml-platform run loan_default` in a fresh process on a new home with the "
            f"generated files landed ({DAYS} days), timed from launch to exit; {REPEATS} run(s) "
            "per size. Memory: the summed resident set size of the run's process and its "
            f"descendants, sampled every {SAMPLE_S} s, and the run process's exact high-water "
            "mark (VmHWM). The production runs use fresh Postgres databases and an empty Redis "
            "database on this machine (the services' own memory not counted), each right after "
            "the embedded run of the same size on the same files.",
            "",
            *_runs_table(results),
            "",
            *_growth(results, names),
            *_production(results),
            *[
                line
                for profile, events, runs in results
                for i, r in enumerate(runs, 1)
                for line in failures(f"{profile}, {events:,} events, run {i}", r)
            ],
            "",
            "Per step: median seconds (STEP_START to STEP_SUCCESS), and in parentheses the "
            "median peak of the sampled memory while the step ran and its rise over the memory "
            "when the step started, in GB ('-': shorter than one sample).",
            "",
            *steps,
        ]
    )
    return section
