"""The executor of the training jobs, chosen by measurement (docs/operations.md, "Execution"):
the next day's run of ``loan_default_training_job`` on a demo home (300k events, the
``ml-platform generate`` default) under three executors, each run a fresh
``dagster job execute`` process timed from launch to exit:

1. the in-process executor (every step in the run's own process);
2. the multiprocess executor with its default start method, spawn (a fresh interpreter per
   step, which imports the code location again);
3. the multiprocess executor as ``ml_platform/defs/resources.py`` declares it (forkserver with
   preloaded modules, 2 steps at a time): what ``ml-platform run`` and runs launched from the UI
   use.

The declared executor is ``multiprocess_executor.configured({...})``: its config is fixed, and
Dagster 1.13 accepts any ``execution:`` run config for it and ignores it. So 1 and 2 run from a
code location in this module, ``executor_choice``: the project's definitions with Dagster's
``multi_or_in_process_executor``, chosen by run config (``execution: config: in_process:`` or
``execution: config: multiprocess: ...``); 3 runs from ``ml_platform.definitions`` itself.
Every run has the same quiet console logger as ``ml-platform run`` (events still go to the
instance's event log).

Method: a home with the demo data, a first run (``ml-platform run``: creates every store and the
champion), then ``BENCH_EXECUTOR_ROUNDS`` (default 3) rounds, each after one more day landed,
running all three executors on the same files, the order rotated every round; every run and the
median per executor are reported, with per-step times from each run's Dagster event log.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

from benchmarks.bench_pipeline import PIPELINE, ROOT, failures, launch, run_timeline

EVENTS = int(os.environ.get("BENCH_EXECUTOR_EVENTS", "300000"))
ROUNDS = int(os.environ.get("BENCH_EXECUTOR_ROUNDS", "3"))
JOB = f"{PIPELINE}_training_job"


@dg.definitions
def executor_choice() -> dg.Definitions:
    """The project's definitions, with an executor that run config chooses."""
    from ml_platform import definitions

    # a Definitions object, or (in older trees) a function returning one
    base = definitions.defs
    base = base if isinstance(base, dg.Definitions) else base()
    return dg.Definitions(
        assets=base.assets,
        asset_checks=base.asset_checks,
        schedules=base.schedules,
        sensors=base.sensors,
        jobs=base.jobs,
        resources=base.resources,
        loggers=base.loggers,
        metadata=base.metadata,
        component_tree=base.component_tree,
        executor=dg.multi_or_in_process_executor,
    )


def declared_config() -> dict[str, Any]:
    """The multiprocess config ``ml_platform/defs/resources.py`` fixes for the executor."""
    from ml_platform.defs.resources import EXECUTOR

    return EXECUTOR.config_schema.resolve_config({}).value["config"]


def cases() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Name -> (module, attribute, execution run config) of each executor measured."""
    spawn = {k: v for k, v in declared_config().items() if k != "start_method"}
    here = "benchmarks.bench_executor"
    return {
        "in-process": (here, "executor_choice", {"config": {"in_process": {}}}),
        "multiprocess, spawn (Dagster's default)": (
            here,
            "executor_choice",
            {"config": {"multiprocess": {**spawn, "start_method": {"spawn": {}}}}},
        ),
        "multiprocess, forkserver + preload_modules (declared)": (
            "ml_platform.definitions",
            "defs",
            {},
        ),
    }


def _execute(
    home: Path, module: str, attribute: str, execution: dict[str, Any], config: Path, log: Path
) -> dict[str, Any]:
    import yaml

    from ml_platform.runner import QUIET

    config.write_text(yaml.safe_dump({**QUIET, **({"execution": execution} if execution else {})}))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {
        "ML_PLATFORM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "PYTHONWARNINGS": "ignore",
    }  # as `ml-platform run` sets for its step processes
    cmd = [
        str(Path(sys.executable).parent / "dagster"),
        "job",
        "execute",
        "-m",
        module,
        "-a",
        attribute,
        "-j",
        JOB,
        "-c",
        str(config),
        "-d",
        str(ROOT),
    ]
    done = launch(cmd, env, log)
    return {**done, "ok": done["code"] == 0, **run_timeline(home, done["epoch"], done["seconds"])}


def _first_run(home: Path, log: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI")}
    done = launch(
        [str(Path(sys.executable).parent / "ml-platform"), "run", PIPELINE],
        {**env, "ML_PLATFORM_HOME": str(home)},
        log,
    )
    if done["code"]:
        raise RuntimeError(f"the first run failed; see {log}")
    return done["seconds"]


def _steps_table(medians: dict[str, dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for run in medians.values():
        for name, _ in sorted(run["steps"].items(), key=lambda kv: kv[1].get("start", 0.0)):
            if name not in names:
                names.append(name)
    rows = [
        "| step: launch + run s | "
        + " | ".join(f"{name} ({run['seconds']:.0f} s)" for name, run in medians.items())
        + " |",
        "|---|" + "---:|" * len(medians),
        "| before the run starts (process, imports, definitions, instance) | "
        + " | ".join(f"{run['before_run']:.1f}" for run in medians.values())
        + " |",
    ]
    for name in names:
        cells = []
        for run in medians.values():
            s = run["steps"].get(name)
            if not s or "start" not in s:
                cells.append("-")
                continue
            # in-process steps have no worker: the launch is the gap after the previous step
            launch = s["start"] - s.get("launch", s["start"])
            cells.append(f"{launch:.1f} + {s.get('end', float('nan')) - s['start']:.1f}")
        rows.append(f"| {name.removeprefix(PIPELINE + '_')} | {' | '.join(cells)} |")
    rows.append(
        "| in steps / between steps (union over the run) | "
        + " | ".join(
            f"{run['in_steps']:.1f} / {run['between_steps']:.1f}" for run in medians.values()
        )
        + " |"
    )
    rows.append(
        "| after the run ends (exit) | "
        + " | ".join(f"{run['after_run']:.1f}" for run in medians.values())
        + " |"
    )
    return rows


def run() -> str:
    from ml_platform.ingest.datagen import GeneratorConfig, land

    root = Path(tempfile.mkdtemp(prefix="bench_executor_"))
    print(f"  work dir {root} (logs are kept there)", flush=True)
    home = root / "home"
    config = GeneratorConfig(events=EVENTS, days=120)
    land(config, home / "landing" / PIPELINE)
    first = _first_run(home, root / "first_run.log")
    print(f"  first run (ml-platform run) {first:.1f} s", flush=True)
    chosen = cases()
    names = list(chosen)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    rows: list[str] = []
    failed: list[str] = []
    for r in range(ROUNDS):
        land(config, home / "landing" / PIPELINE, new_days=1)
        order = names[r % len(names) :] + names[: r % len(names)]
        for position, name in enumerate(order, 1):
            module, attribute, execution = chosen[name]
            tag = f"round{r + 1}_{names.index(name) + 1}"
            res = _execute(
                home, module, attribute, execution, root / f"{tag}.yaml", root / f"{tag}.log"
            )
            results[name].append(res)
            failed += failures(f"round {r + 1}, {name}", res)
            status = "" if res["ok"] else f" **{res['status']}**"
            rows.append(
                f"| {r + 1} | {position} | {name} | **{res['seconds']:.1f}**{status} | "
                f"{res['before_run']:.1f} / {res['in_steps']:.1f} / "
                f"{res['between_steps']:.1f} / {res['after_run']:.1f} | "
                f"{res['load']:.1f} | {res['roc_auc']:.4f} |"
            )
            print(f"  round {r + 1}: {name}: {res['seconds']:.1f} s ({res['status']})", flush=True)
    medians = {}
    verdicts = []
    for name, runs in results.items():
        ordered = sorted(runs, key=lambda x: x["seconds"])
        medians[name] = ordered[(len(ordered) - 1) // 2]
        every = ", ".join(f"{x['seconds']:.1f}" for x in runs)
        ok = "every run succeeded" if all(x["ok"] for x in runs) else "a run FAILED"
        verdicts.append(
            f"| {name} | **{statistics.median(x['seconds'] for x in runs):.1f}** | {every} | {ok} |"
        )
    declared = declared_config()
    section = "\n".join(
        [
            f"## Executor of the training job ({EVENTS:,} events, the next day's run)",
            "",
            "`loan_default_training_job` on one demo home after a first run "
            f"(`ml-platform run`, {first:.0f} s), each run a fresh `dagster job execute` process "
            "timed from launch to exit, after one more day landed per round; the three executors "
            "run on the same files in every round, in an order rotated from round to round. "
            "In-process and spawn run from `benchmarks.bench_executor:executor_choice` (the "
            "project's definitions with `multi_or_in_process_executor`, selected by `execution:` "
            "run config); the declared executor runs from `ml_platform.definitions` (its config is "
            "fixed by `.configured(...)`, so Dagster 1.13 accepts and ignores `execution:` run "
            f"config for it). Declared: `{declared}`; spawn uses the same `max_concurrent` and "
            "retries. Other engineers' tests ran on this machine meanwhile.",
            "",
            "| round | position | executor | wall s | before run / in steps / between steps / "
            "after run s | load at exit | holdout ROC AUC |",
            "|---:|---:|---|---:|---|---:|---:|",
            *rows,
            "",
            "| executor | median s | every run s | |",
            "|---|---:|---|---|",
            *verdicts,
            *failed,
            "",
            "Per step in the median run of each executor: launch (STEP_WORKER_STARTING to "
            "STEP_START; in-process steps have none) + the step's own run (STEP_START to "
            "STEP_SUCCESS), seconds, from the Dagster event log.",
            "",
            *_steps_table(medians),
        ]
    )
    shutil.rmtree(home, ignore_errors=True)  # the logs stay
    return section
