"""`ml-platform simulate`: the closed loop on demo data, with the real Dagster daemon.

A fresh home gets ``history_days`` stable demo days and a first champion trained the way users
train one (``ml-platform run``). Then ``dagster-daemon run`` starts on that home with the
project's workspace, and the simulated days land one at a time; after each, the command waits
(bounded) until the new-data sensor has started its monitoring run, every run the sensors asked
for has finished, and the retraining sensor has evaluated the result, and prints a timeline row
from what the instance, the monitoring history and the promotion ledger recorded. The daemon
decides everything; this command only lands files and reads.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ml_platform.cli.app import _spec, app, console
from ml_platform.home import HOME_ENV_VAR, PROJECT_ROOT, PlatformHome, platform_home
from ml_platform.spec import PipelineSpec

DEFINITIONS = "ml_platform.definitions:defs"
WORKSPACE = PROJECT_ROOT / "workspace.yaml"
IN_FLIGHT = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}
POLL_SECONDS = 2.0


class SimulationTimeout(RuntimeError):
    """The daemon did not react, or its runs did not finish, in time."""


def process_env(home: PlatformHome) -> dict[str, str]:
    """The environment of every process the simulation starts: its home, and the venv's
    commands first on PATH (dagster-dbt runs ``dbt`` when the code location loads)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {
        **os.environ,
        HOME_ENV_VAR: str(home.root),
        "DAGSTER_HOME": str(home.dagster_home),
        "PATH": path,
        "FEAST_USAGE": os.environ.get("FEAST_USAGE", "False"),
        "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "ignore"),
    }


def _venv_command(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@dataclass
class Daemon:
    """``dagster-daemon run`` in its own process group; stopped with everything it started."""

    home: PlatformHome
    workspace: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [_venv_command("dagster-daemon"), "run", "-w", str(self.workspace)],
                cwd=PROJECT_ROOT,
                env=process_env(self.home),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"the Dagster daemon exited ({self.proc.returncode}); its log:\n{self.tail()}"
            )

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM to the group (daemon, code server, run workers), SIGKILL to what is left,
        descendants that left the group included."""
        import psutil

        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            family = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            family = []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        for child in family:
            with contextlib.suppress(psutil.Error):
                child.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


@dataclass
class ClosedLoop:
    """Land days, let the daemon react, read what happened. Usable from tests with another code
    location (``workspace`` for the daemon, ``definitions`` for the first champion's run)."""

    spec: PipelineSpec
    plan: Any  # SimulationPlan (imported lazily: matplotlib and pandas stay off CLI start)
    home: PlatformHome
    out: Console
    timeout: float = 1800.0
    workspace: Path = WORKSPACE
    definitions: str = DEFINITIONS
    daemon: Daemon | None = None
    rows: list[Any] = field(default_factory=list)
    _instance: Any = None

    @property
    def logs(self) -> Path:
        return self.home.root / "logs"

    def instance(self) -> Any:
        import dagster as dg

        if self._instance is None:
            self._instance = dg.DagsterInstance.from_config(str(self.home.dagster_home))
        return self._instance

    # --- set-up ------------------------------------------------------------------------------

    def land_history(self) -> int:
        from ml_platform.monitoring.simulation import land_history, landing_dir, parquet_rows

        files = land_history(self.plan, landing_dir(self.spec, self.home))
        return sum(parquet_rows(f) for f in files)

    def train_first_champion(self) -> str:
        """``ml-platform run <pipeline>``, as a user trains a first model; the champion's
        version, or an error with the run's output."""
        log = self.logs / "first_champion.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            subprocess.run(
                [
                    _venv_command("ml-platform"),
                    "run",
                    self.spec.name,
                    "--definitions",
                    self.definitions,
                ],
                cwd=PROJECT_ROOT,
                env={**process_env(self.home), "COLUMNS": "160"},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=self.timeout,
                check=False,
            )
        champion = self.ledger().champion(self.spec.name)
        if champion is None:
            raise RuntimeError(
                f"the first run did not promote a champion; its output ({log}):\n"
                + log.read_text(errors="replace")[-3000:]
            )
        return champion

    def start_daemon(self) -> None:
        self.daemon = Daemon(self.home, self.workspace, self.logs / "daemon.log")
        self.daemon.start()

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        if self._instance is not None:
            with contextlib.suppress(Exception):
                self._instance.dispose()
            self._instance = None

    # --- reading what happened -----------------------------------------------------------------

    def ledger(self) -> Any:
        from ml_platform.registry.ledger import open_ledger
        from ml_platform.training.tracking import Tracking

        tracking = Tracking(self.home.tracking_uri, artifact_root=self.home.artifact_root)
        return open_ledger(self.home, tracking)

    def _sensor(self, name: str) -> Any:
        for state in self.instance().all_instigator_state():
            if state.instigator_type.value == "SENSOR" and state.instigator_name == name:
                return state
        return None

    def ticks(self, name: str, after: float) -> list[Any]:
        """Completed ticks of sensor ``name`` that started after ``after``, oldest first."""
        state = self._sensor(name)
        if state is None:
            return []
        ticks = self.instance().get_ticks(
            state.instigator_origin_id, state.selector_id, after=after
        )
        done = [t for t in ticks if t.status.value in ("SUCCESS", "SKIPPED", "FAILURE")]
        return sorted(done, key=lambda t: t.timestamp)

    def runs_since(self, since: float) -> list[Any]:
        import dagster as dg

        created_after = datetime.fromtimestamp(since, UTC)
        records = self.instance().get_run_records(dg.RunsFilter(created_after=created_after))
        return sorted(records, key=lambda r: r.create_timestamp)

    def run_info(self, record: Any) -> Any:
        import dagster as dg

        from ml_platform.components.ml_pipeline import training_job_name
        from ml_platform.monitoring import triggers
        from ml_platform.monitoring.simulation import RunInfo

        run = record.dagster_run
        info = RunInfo(
            run.run_id,
            run.job_name,
            run.status.value,
            run.tags.get(triggers.TAG),
            run.tags.get(triggers.DETAIL_TAG),
            label=self._label(run),
        )
        if run.job_name == training_job_name(self.spec.name):
            checks = self.instance().all_logs(
                run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
            for entry in checks:
                data = entry.dagster_event.event_specific_data
                if data.passed:
                    info.gates_passed += 1
                else:
                    info.gates_failed.append(data.check_name)
        return info

    def _label(self, run: Any) -> str:
        """'training', 'monitoring', or the assets of an ad-hoc run (e.g. automation's)."""
        prefix = f"{self.spec.name}_"
        if run.job_name.startswith(prefix) and run.job_name.endswith("_job"):
            return run.job_name[len(prefix) : -len("_job")]
        keys = sorted(k.to_user_string().removeprefix(prefix) for k in run.asset_selection or [])
        return f"materialize {','.join(keys)}" if keys else run.job_name

    # --- waiting for the daemon ----------------------------------------------------------------

    def _deadline_passed(self, deadline: float, what: str) -> None:
        if self.daemon is not None:
            self.daemon.check_alive()
        if time.monotonic() > deadline:
            last = {
                name: [
                    (t.status.value, t.skip_reason, t.error and t.error.message)
                    for t in self.ticks(name, time.time() - 300)[-2:]
                ]
                for name in (self.new_data_sensor, self.retrain_sensor)
            }
            raise SimulationTimeout(
                f"{what} after {self.timeout:.0f} s; last sensor ticks: {last}; daemon log:\n"
                + (self.daemon.tail(3000) if self.daemon else "")
            )

    @property
    def new_data_sensor(self) -> str:
        return f"{self.spec.name}_new_data_sensor"

    @property
    def retrain_sensor(self) -> str:
        return f"{self.spec.name}_retrain_sensor"

    def run_sensors(self) -> list[str]:
        """The sensors that react to a finished run: the retraining sensor, and automation
        (e.g. the eager online store after new features), if the code location has it."""
        names = [self.retrain_sensor]
        for state in self.instance().all_instigator_state():
            kind = getattr(getattr(state.instigator_data, "sensor_type", None), "value", None)
            running = state.status.value in ("RUNNING", "DECLARED_IN_CODE")
            if state.instigator_type.value == "SENSOR" and kind == "AUTO_MATERIALIZE" and running:
                names.append(state.instigator_name)
        return names

    def settle(self, since: float, listing: str) -> list[Any]:
        """Wait until the new-data sensor has started the monitoring run for ``listing``, no
        run is in flight, and the retraining sensor (and automation) evaluated after the last
        run ended without asking for another; the runs created since ``since``."""
        deadline = time.monotonic() + self.timeout
        while not any(
            r.dagster_run.tags.get("landed_version") == listing for r in self.runs_since(since)
        ):
            self._deadline_passed(deadline, f"no monitoring run for listing {listing}")
            time.sleep(POLL_SECONDS)
        while True:
            runs = self.runs_since(since)
            finished = {
                r.dagster_run.run_id for r in runs if r.dagster_run.status.value not in IN_FLIGHT
            }
            if len(finished) == len(runs):
                last_end = max((r.end_time or r.update_timestamp.timestamp()) for r in runs)
                looked = [self.ticks(name, last_end) for name in self.run_sensors()]
                if all(ticks and set(ticks[0].run_ids) <= finished for ticks in looked):
                    return runs
            self._deadline_passed(deadline, "the sensors' runs did not settle")
            time.sleep(POLL_SECONDS)

    def _monitoring_end(self, runs: list[Any]) -> float:
        from ml_platform.components.ml_pipeline import monitoring_job_name

        ends = [
            r.end_time or 0.0
            for r in runs
            if r.dagster_run.job_name == monitoring_job_name(self.spec.name)
        ]
        return max(ends, default=0.0)

    def reaction_after(self, runs: list[Any]) -> str:
        """The retraining sensor's first evaluation after the monitoring run ended."""
        ticks = self.ticks(self.retrain_sensor, self._monitoring_end(runs))
        return _reaction(ticks[0]) if ticks else ""

    # --- one step of the timeline --------------------------------------------------------------

    def step(self, days: list[int]) -> Any:
        """Land ``days`` (the next ones, together; the CLI lands one at a time), wait for the
        loop to settle, and return the timeline row."""
        from ml_platform.ingest.raw import listing_version
        from ml_platform.monitoring.simulation import TimelineRow, land_day, landing_dir

        since, rows, started = time.time(), 0, time.monotonic()
        for day in days:
            _, n = land_day(self.plan, landing_dir(self.spec, self.home), day)
            rows += n
        listing = listing_version(self.spec, self.home)[0]
        runs = self.settle(since, listing)
        dates = [self.plan.date_of(d).isoformat() for d in days]
        row = TimelineRow(
            day=days[-1],
            date=dates[-1] if len(dates) == 1 else f"{dates[0]}..{dates[-1]}",
            drift=self.plan.drift_on(days[-1]),
            rows=rows,
        )
        self._fill(row, runs, since, dates)
        row.seconds = round(time.monotonic() - started)
        self.rows.append(row)
        return row

    def baseline(self, rows: int) -> Any:
        """Start the daemon on the landed history and wait for its first reaction (the first
        monitoring report against the champion judges the newest history day)."""
        from ml_platform.ingest.raw import listing_version
        from ml_platform.monitoring.simulation import TimelineRow

        since, started = time.time(), time.monotonic()
        self.start_daemon()
        listing = listing_version(self.spec, self.home)[0]
        runs = self.settle(since, listing)
        last = self.plan.date_of(0).isoformat()
        row = TimelineRow(day=0, date=last, drift=0.0, rows=rows)
        self._fill(row, runs, since, [last])
        row.seconds = round(time.monotonic() - started)
        self.rows.append(row)
        return row

    def _fill(self, row: Any, runs: list[Any], since: float, dates: list[str]) -> None:
        from ml_platform.monitoring.history import MonitoringHistory, history_path
        from ml_platform.monitoring.simulation import describe_decision, metric_text, newest_records

        history = MonitoringHistory(history_path(self.home.pipeline_dir(self.spec.name)))
        records = newest_records(history.batches(self.spec.name))
        judged = [records[d] for d in dates if d in records]
        if judged:
            row.judged = any(r.judged for r in judged)
            row.drifted = sorted(
                {f for r in judged for f in r.analysis.get("drifted_features", [])}
            )
            if any(r.drifted for r in judged) and not row.drifted:
                row.drifted = ["prediction"]
            row.metric = metric_text(judged[-1], self.spec.primary_metric)
        row.runs = [self.run_info(r) for r in runs]
        row.retrain_sensor = self.reaction_after(runs)
        started = datetime.fromtimestamp(since, UTC).isoformat()
        row.decisions = [
            describe_decision(d.action, d.version, d.reason)
            for d in self.ledger().history(self.spec.name)
            if d.decided_at >= started and d.action != "challenger"
        ]


def _reaction(tick: Any) -> str:
    if tick.status.value == "FAILURE":
        return f"sensor error: {tick.error.message.strip() if tick.error else '?'}"[:300]
    if tick.run_ids:
        return f"requested run {tick.run_ids[0][:8]}"
    return tick.skip_reason or tick.status.value.lower()


def print_row(out: Console, row: Any) -> None:
    from ml_platform.monitoring.simulation import COLUMNS

    cells = dict(zip(COLUMNS, (escape(c) for c in row.cells()), strict=True))
    label = "history" if row.day == 0 else f"day {row.day:>2}"
    out.print(
        f"[bold]{label}[/bold] {cells['date']}  drift {cells['drift']}  rows {cells['rows']}"
        f"  ({getattr(row, 'seconds', 0)} s)\n"
        f"    drifted: {cells['drifted features']} | {cells['metric']}\n"
        f"    trigger: {cells['trigger (retrain sensor)']}\n"
        f"    runs: {cells['runs']} | gates: {cells['gates']}\n"
        f"    ledger: {cells['promotion ledger']}",
        soft_wrap=True,
    )


def print_table(out: Console, rows: list[Any]) -> None:
    from ml_platform.monitoring.simulation import COLUMNS

    table = Table(*COLUMNS, title="timeline", box=None, padding=(0, 1))
    for row in rows:
        table.add_row(*(escape(c) for c in row.compact()))
    # A pipe or a log file gets 80 columns by default: too narrow for ten.
    Console(file=out.file, width=max(out.width, 160), highlight=False).print(table)
    out.print("metric: realized / estimated, where the batch has them")


def new_simulation_home(pipeline: str) -> PlatformHome:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return PlatformHome(platform_home().root / "simulations" / f"{pipeline}-{stamp}")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@app.command()
def simulate(
    pipeline: str,
    days: Annotated[int, typer.Option(min=1, help="Days to land one at a time.")],
    drift_from: Annotated[
        int | None,
        typer.Option(help="First drifted day (days count from 1); default: half-way."),
    ] = None,
    drift: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="The demo generator's population shift on drifted days."
        ),
    ] = 0.5,
    events_per_day: Annotated[int, typer.Option(min=1, help="Mean events per day.")] = 1000,
    history_days: Annotated[
        int, typer.Option(min=1, help="Stable days the first champion is trained on.")
    ] = 120,
    home: Annotated[
        Path | None,
        typer.Option(
            help="The simulation's home (new or empty); default: a new folder "
            "under <home>/simulations/."
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the loop to settle after each step.")
    ] = 1800.0,
    seed: int = 7,
) -> None:
    """Land demo days one at a time on a fresh home and let the real Dagster daemon (sensors,
    run queue, automation) react; print a timeline (drift, triggers, runs, gates, promotions),
    a plot of drift and model quality, and whether the loop closed as promised."""
    from ml_platform.monitoring.simulation import SimulationError, SimulationPlan, save_timeline

    spec = _spec(pipeline)
    try:
        plan = SimulationPlan(
            days=days,
            drift_from=drift_from if drift_from is not None else max(1, days // 2),
            drift=drift,
            events_per_day=events_per_day,
            history_days=history_days,
            seed=seed,
        )
    except SimulationError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    sim_home = PlatformHome(home.expanduser().resolve()) if home else new_simulation_home(pipeline)
    if sim_home.root.exists() and any(sim_home.root.iterdir()):
        console.print(f"[red]error:[/red] {sim_home.root} is not empty: simulate needs a new home")
        raise typer.Exit(2)
    sim_home.ensure()
    os.environ[HOME_ENV_VAR] = str(sim_home.root)
    os.environ["DAGSTER_HOME"] = str(sim_home.dagster_home)
    signal.signal(signal.SIGTERM, _interrupt)
    loop = ClosedLoop(spec, plan, sim_home, console, timeout=timeout)
    code = None
    try:
        code = _simulate(loop)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: stopping the daemon")
    except (SimulationError, SimulationTimeout, RuntimeError, subprocess.TimeoutExpired) as exc:
        console.print(f"[red]simulation failed:[/red] {escape(str(exc))}")
    finally:
        loop.stop()
    if code is None and loop.rows:  # what happened up to the failure or the interrupt
        print_table(console, loop.rows)
        save_timeline(sim_home.root / "timeline.json", plan, loop.rows)
    console.print(f"simulation home: {sim_home.root}")
    raise typer.Exit(1 if code is None else code)


def _simulate(loop: ClosedLoop) -> int:
    from ml_platform.monitoring.simulation import assess, save_timeline, summary

    plan, out, home = loop.plan, loop.out, loop.home
    out.print(f"simulation home: {home.root}")
    out.print(
        f"landing {plan.history_days} stable days ({plan.events_per_day:,} events a day), then "
        f"{plan.days} days one at a time, drift {plan.drift:g} from day {plan.drift_from}"
    )
    rows = loop.land_history()
    out.print(f"training the first champion: ml-platform run {loop.spec.name} ...")
    started = time.monotonic()
    champion = loop.train_first_champion()
    out.print(f"champion v{champion} ({time.monotonic() - started:.0f} s); starting the daemon")
    print_row(out, loop.baseline(rows))
    for day in range(1, plan.days + 1):
        print_row(out, loop.step([day]))
    print_table(out, loop.rows)
    save_timeline(home.root / "timeline.json", plan, loop.rows)
    plot_path = _plot(loop)
    out.print(f"plot: {plot_path}")
    for line in summary(plan, loop.rows):
        out.print(escape(line))
    verdicts = assess(plan, loop.rows)
    for v in verdicts:
        mark = "[green]held[/green]" if v.held else "[red]did not hold[/red]"
        out.print(f"{mark}: {v.claim} — {escape(v.detail)}")
    return 0 if all(v.held for v in verdicts) else 1


def _plot(loop: ClosedLoop) -> Path:
    from ml_platform.monitoring.analyze import performance_floors
    from ml_platform.monitoring.history import MonitoringHistory, history_path
    from ml_platform.monitoring.simulation import plot

    spec, home = loop.spec, loop.home
    records = MonitoringHistory(history_path(home.pipeline_dir(spec.name))).batches(spec.name)
    metric = spec.primary_metric
    return plot(
        loop.plan,
        loop.rows,
        records,
        metric,
        performance_floors(spec).get(metric),
        home.root / "simulation.png",
    )
