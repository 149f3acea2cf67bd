"""The closed loop simulated on demo data, framework-free: which days to land with how much drift,
one timeline row per landed day, whether the loop behaved as promised, and the plot of drift and
model quality over the days. ``ml-platform simulate`` (ml_platform/cli/simulate.py) lands the
days and lets the real Dagster daemon react; nothing here knows about Dagster.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ml_platform.home import PROJECT_ROOT, PlatformHome
from ml_platform.ingest.datagen import START_DAY, GeneratorConfig, land, landed_days
from ml_platform.monitoring.history import BatchRecord
from ml_platform.spec import PipelineSpec

DEMO_FILE = "applications_{day}.parquet"  # what ingest/datagen.py lands, one file a day


class SimulationError(RuntimeError):
    """The simulation cannot run or could not finish; the message says why."""


@dataclass(frozen=True)
class SimulationPlan:
    """``days`` demo days landed one at a time after ``history_days`` stable ones; day numbers
    start at 1 and every day from ``drift_from`` on is generated with ``drift``."""

    days: int
    drift_from: int
    drift: float
    events_per_day: int
    history_days: int
    seed: int = 7

    def __post_init__(self) -> None:
        if self.days < 1 or self.history_days < 1 or self.events_per_day < 1:
            raise SimulationError("days, history days and events per day must be at least 1")
        if not 0.0 <= self.drift <= 1.0:
            raise SimulationError(f"drift must be within [0, 1], got {self.drift}")

    def drift_on(self, day: int) -> float:
        return self.drift if day >= self.drift_from else 0.0

    @property
    def drift_starts(self) -> bool:
        """Whether any simulated day is drifted."""
        return self.drift > 0 and self.drift_from <= self.days

    def generator(self, drift: float) -> GeneratorConfig:
        # Events and days fixed for every call: the customer population (a function of the seed
        # and the event count) stays the same, and each day gets ``events_per_day`` on average.
        return GeneratorConfig(
            events=self.events_per_day * self.history_days,
            days=self.history_days,
            seed=self.seed,
            drift=drift,
        )

    def date_of(self, day: int) -> date:
        return START_DAY + timedelta(self.history_days + day - 1)


def landing_dir(spec: PipelineSpec, home: PlatformHome) -> Path:
    """Where the demo generator's files must land for ``spec`` to read them; an error when the
    spec's source does not read the generator's daily files."""
    pattern = Path(spec.source_path(home.root, PROJECT_ROOT))
    sample = DEMO_FILE.format(day=START_DAY.isoformat())
    if not fnmatch.fnmatch(sample, pattern.name) or any(c in str(pattern.parent) for c in "*?["):
        raise SimulationError(
            f"'{spec.name}' reads '{spec.source.path}', not the demo generator's daily files "
            f"(<folder>/{DEMO_FILE}): simulate runs on the demo pipeline's data only"
        )
    return pattern.parent


def land_history(plan: SimulationPlan, landing: Path) -> list[Path]:
    """The stable days the first champion is trained on."""
    if landed_days(landing):
        raise SimulationError(f"{landing} already holds landed files: simulate needs a new home")
    return land(plan.generator(0.0), landing)


def land_day(plan: SimulationPlan, landing: Path, day: int) -> tuple[Path, int]:
    """Land simulated day ``day`` (the next one after the landed files) and count its rows."""
    expected = plan.date_of(day)
    days = landed_days(landing)
    if days and days[-1] + timedelta(1) != expected:
        raise SimulationError(f"day {day} should be {expected}, but the last landed is {days[-1]}")
    [path] = land(plan.generator(plan.drift_on(day)), landing, new_days=1)
    return path, parquet_rows(path)


def parquet_rows(path: Path) -> int:
    return int(pq.ParquetFile(path).metadata.num_rows)


@dataclass
class RunInfo:
    run_id: str
    job: str
    status: str
    trigger: str | None = None  # the retrain trigger's reason, for training runs a sensor asked
    trigger_detail: str | None = None  # its numbers, JSON
    gates_passed: int = 0
    gates_failed: list[str] = field(default_factory=list)
    label: str = ""  # what the run did, in a word or two (e.g. "training")

    def short(self) -> str:
        return f"{self.label or self.job} {self.run_id[:8]} {self.status}"

    def trigger_text(self) -> str:
        """'drift (drifted=credit_score,purpose, streak=2)': the reason and its main numbers."""
        if self.trigger is None:
            return ""
        try:
            detail = json.loads(self.trigger_detail or "{}")
        except ValueError:
            detail = {}
        keep = {k: v for k, v in detail.items() if k not in ("batch", "champion_version")}
        numbers = ", ".join(f"{k}={v}" for k, v in sorted(keep.items()))
        return f"{self.trigger} ({numbers})" if numbers else self.trigger


@dataclass
class TimelineRow:
    day: int  # 0: the landed history, before the first simulated day
    date: str
    drift: float
    rows: int
    judged: bool | None = None  # None: no monitoring record for this batch
    drifted: list[str] = field(default_factory=list)
    metric: str | None = None  # e.g. "roc_auc 0.741 (realized)"
    retrain_sensor: str = ""  # the retraining sensor's last word: trigger or skip reason
    runs: list[RunInfo] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)  # promotion ledger, this day
    seconds: float = 0.0  # wall time from landing to a settled loop

    @property
    def retrains(self) -> list[RunInfo]:
        return [r for r in self.runs if r.trigger is not None]

    def gates(self) -> str:
        parts = []
        for run in self.runs:
            if run.gates_passed or run.gates_failed:
                failed = f" (failed: {', '.join(run.gates_failed)})" if run.gates_failed else ""
                total = run.gates_passed + len(run.gates_failed)
                parts.append(f"{run.gates_passed}/{total} passed{failed}")
        return "; ".join(parts) or "-"

    def cells(self) -> list[str]:
        drifted = "-" if self.judged is None else (", ".join(self.drifted) or "none")
        if self.judged is False:
            drifted += " (not judged)"
        trigger = "; ".join(r.trigger_text() for r in self.retrains) or self.retrain_sensor
        return [
            "history" if self.day == 0 else str(self.day),
            self.date,
            f"{self.drift:g}",
            f"{self.rows:,}",
            drifted,
            self.metric or "-",
            trigger or "-",
            ", ".join(r.short() for r in self.runs) or "-",
            self.gates(),
            "; ".join(self.decisions) or "-",
        ]

    def compact(self) -> list[str]:
        """The row in a few words a cell, for the summary table (``cells`` has everything)."""
        sensor = self.retrain_sensor
        if self.retrains:
            trigger = ", ".join(r.trigger or "" for r in self.retrains)
        elif "held back" in sensor:
            cooldown = " (cooldown)" if "cooldown" in sensor else ""
            trigger = f"{sensor.split(' ', 1)[0]} held back{cooldown}"
        elif "no trigger holds" in sensor:
            trigger = "-"
        else:
            trigger = sensor[:40] or "-"
        runs = [
            r.label if r.status == "SUCCESS" else f"{r.label} {r.status}"
            for r in self.runs
            if not r.label.startswith("materialize")
        ]
        gates = [
            f"{r.gates_passed}/{r.gates_passed + len(r.gates_failed)}"
            for r in self.runs
            if r.gates_passed or r.gates_failed
        ]
        ledger = [" ".join(d.split(":", 1)[0].split()[:2]) for d in self.decisions]
        # "roc_auc 0.741 realized, 0.739 estimated" -> "0.741 / 0.739"
        values = self.metric.split(" ", 1)[1].split(", ") if self.metric else []
        metric = " / ".join(v.split()[0] for v in values) or "-"
        drifted = "-" if self.judged is None else (", ".join(self.drifted) or "none")
        return [
            "history" if self.day == 0 else str(self.day),
            self.date,
            f"{self.drift:g}",
            f"{self.rows:,}",
            drifted,
            metric,
            trigger,
            ", ".join(runs) or "-",
            ", ".join(gates) or "-",
            ", ".join(ledger) or "-",
        ]


COLUMNS = [
    "day",
    "date",
    "drift",
    "rows",
    "drifted features",
    "metric",
    "trigger (retrain sensor)",
    "runs",
    "gates",
    "promotion ledger",
]


def newest_records(records: list[BatchRecord]) -> dict[str, BatchRecord]:
    """The last analysis of each batch (a batch judged again against a new champion keeps the
    newer record)."""
    out: dict[str, BatchRecord] = {}
    for record in sorted(records, key=lambda r: r.analyzed_at):
        out[record.batch] = record
    return out


def metric_values(record: BatchRecord, metric: str) -> dict[str, float]:
    """source ("realized", "estimated") -> the batch's value of ``metric``, where it has one."""
    found: dict[str, float] = {}
    for source in ("realized", "estimated"):
        got = record.analysis.get(source)
        value = got.get(metric) if isinstance(got, dict) else None
        if isinstance(value, dict):  # a realized metric: its value with a confidence interval
            value = value.get("value")
        if isinstance(value, int | float):
            found[source] = float(value)
    return found


def metric_text(record: BatchRecord, metric: str) -> str | None:
    values = metric_values(record, metric)
    if not values:
        return None
    return f"{metric} " + ", ".join(f"{v:.3f} {source}" for source, v in values.items())


def describe_decision(action: str, version: str | None, reason: str) -> str:
    text = f"{action} v{version}" if version else action
    return f"{text}: {reason}" if reason else text


@dataclass(frozen=True)
class Verdict:
    claim: str
    held: bool
    detail: str


def assess(plan: SimulationPlan, rows: list[TimelineRow]) -> list[Verdict]:
    """Did the loop close as promised: no retraining while the data was stable, exactly one
    after the drift started (dedupe and cooldown), and a worse retrain refused."""
    simulated = [r for r in rows if r.day >= 1]
    before = [run for r in simulated if r.day < plan.drift_from for run in r.retrains]
    after = [(r.day, run) for r in simulated if r.day >= plan.drift_from for run in r.retrains]
    verdicts = [
        Verdict(
            "no retraining while the data is stable",
            not before,
            f"{len(before)} retraining run(s) before day {plan.drift_from}"
            + (f": {', '.join(r.short() for r in before)}" if before else ""),
        )
    ]
    if plan.drift_starts:
        verdicts.append(
            Verdict(
                "exactly one retraining after the drift starts",
                len(after) == 1,
                f"{len(after)} retraining run(s) from day {plan.drift_from} on"
                + (f": {', '.join(f'day {d}: {r.short()}' for d, r in after)}" if after else ""),
            )
        )
    refused = [d for r in simulated for d in r.decisions if d.startswith(("reject", "hold"))]
    promoted = [d for r in simulated for d in r.decisions if d.startswith("promote")]
    failed = [run for _, run in after if run.status != "SUCCESS" or run.gates_failed]
    if after:
        verdicts.append(
            Verdict(
                "a retrain that is not better is refused, the champion stays",
                bool(refused) or (bool(promoted) and not failed),
                f"refused: {refused or 'none'}; promoted: {promoted or 'none'}",
            )
        )
    return verdicts


def summary(plan: SimulationPlan, rows: list[TimelineRow]) -> list[str]:
    """A few lines on the whole simulation: days, drift, retraining runs, decisions."""
    simulated = [r for r in rows if r.day >= 1]
    flagged = [r.day for r in simulated if r.drifted]
    retrains = [(r.day, run) for r in rows for run in r.retrains]
    decisions = [(r.day, d.split(":", 1)[0]) for r in rows for d in r.decisions]
    minutes = sum(r.seconds for r in rows) / 60
    return [
        f"{len(simulated)} days landed after {plan.history_days} stable ones, drift "
        f"{plan.drift:g} from day {plan.drift_from}; the daemon took {minutes:.0f} min to settle "
        "them all",
        f"drift flagged on days: {', '.join(map(str, flagged)) or 'none'}",
        "retraining runs: "
        + (
            "; ".join(f"day {d}: {run.trigger_text()} -> {run.status}" for d, run in retrains)
            or "none"
        ),
        "promotion ledger: "
        + ("; ".join(f"day {d}: {text}" for d, text in decisions) or "no decision"),
    ]


def save_timeline(path: Path, plan: SimulationPlan, rows: list[TimelineRow]) -> Path:
    doc = {"plan": asdict(plan), "rows": [asdict(r) for r in rows]}
    path.write_text(json.dumps(doc, indent=2, default=str))
    return path


def _drift_series(records: dict[str, BatchRecord]) -> dict[str, dict[str, float]]:
    """feature -> batch -> statistic / threshold (1.0 is the threshold for every statistic)."""
    series: dict[str, dict[str, float]] = {}
    for batch, record in records.items():
        drift = record.analysis.get("drift") or {}
        columns = list(drift.get("features") or [])
        if drift.get("prediction"):
            columns.append(drift["prediction"])
        for col in columns:
            value, threshold = col.get("value"), col.get("threshold")
            if value is not None and threshold:
                series.setdefault(col["feature"], {})[batch] = float(value) / float(threshold)
    return series


def _metric_series(records: dict[str, BatchRecord], metric: str) -> dict[str, dict[str, float]]:
    """source (realized / estimated) -> batch -> value, both where the analysis has both."""
    out: dict[str, dict[str, float]] = {}
    for batch, record in records.items():
        for source, value in metric_values(record, metric).items():
            out.setdefault(source, {})[batch] = value
    return out


def plot(
    plan: SimulationPlan,
    rows: list[TimelineRow],
    records: list[BatchRecord],
    metric: str,
    floor: float | None,
    path: Path,
) -> Path:
    """Each feature's drift statistic (over its threshold) and the model metric per day, the
    first drifted day and the retraining runs marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    newest = newest_records(records)
    batches = [r.date for r in rows]
    x = {b: i for i, b in enumerate(batches)}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(14, 8), sharex=True, height_ratios=[3, 2])
    colours = [plt.get_cmap("tab20")(i) for i in range(20)]
    for i, (feature, values) in enumerate(sorted(_drift_series(newest).items())):
        points = sorted((x[b], v) for b, v in values.items() if b in x)
        if points:
            top.plot(
                *zip(*points, strict=True),
                marker="o",
                ms=3,
                lw=1,
                color=colours[i % len(colours)],
                label=feature,
            )
    top.axhline(1.0, color="black", ls="--", lw=1, label="threshold")
    top.set_ylabel("drift statistic / threshold")
    top.set_title(f"drift per feature (drift {plan.drift:g} from day {plan.drift_from})")
    top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for source, values in sorted(_metric_series(newest, metric).items()):
        points = sorted((x[b], v) for b, v in values.items() if b in x)
        if points:
            bottom.plot(*zip(*points, strict=True), marker="o", ms=3, label=f"{metric} {source}")
    if floor is not None:
        bottom.axhline(floor, color="red", ls="--", lw=1, label=f"floor {floor:g}")
    bottom.set_ylabel(metric)
    bottom.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for axis in (top, bottom):
        start = next((x[r.date] for r in rows if r.day >= plan.drift_from), None)
        if start is not None:
            axis.axvline(start - 0.5, color="grey", lw=1)
        for row in rows:
            for run in row.retrains:
                axis.axvline(x[row.date], color="purple", ls=":", lw=1.5)
                axis.annotate(
                    f"retrain ({run.trigger})",
                    (x[row.date], 1),
                    xycoords=("data", "axes fraction"),
                    fontsize=7,
                    rotation=90,
                    va="top",
                )
    bottom.set_xticks(range(len(batches)))
    bottom.set_xticklabels(
        ["history" if r.day == 0 else f"{r.day}\n{r.date[5:]}" for r in rows], fontsize=7
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def drift_summary(record: BatchRecord) -> dict[str, Any]:
    """The drifted features of a batch with the statistic that decided each."""
    drift = record.analysis.get("drift") or {}
    return {
        col["feature"]: f"{col.get('statistic')} {col.get('value'):.3g}"
        for col in drift.get("features") or []
        if col.get("drifted") and col.get("value") is not None
    }
