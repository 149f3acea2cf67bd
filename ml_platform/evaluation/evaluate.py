"""The evaluation stage: check the artifact loads and serves in a fresh process, score the
candidate on its frozen holdout beside the champion and two baselines, then judge the spec's
gates. Each gate is a verdict with its evidence; diagnostics, plots and a model card are written
to the report directory and logged to the candidate's MLflow run."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits

from ml_platform.evaluation import infra, report_artifacts
from ml_platform.evaluation.baselines import baseline_scores
from ml_platform.evaluation.bootstrap import PairedComparison, paired_bootstrap
from ml_platform.evaluation.gate import Gate
from ml_platform.home import PlatformHome
from ml_platform.ingest.io import write_json, write_text
from ml_platform.spec import PipelineSpec
from ml_platform.training import fitting
from ml_platform.training.tracking import Tracking
from ml_platform.training.train import (
    Candidate,
    class_names,
    holdout_metrics,
    holdout_of,
    holdout_target,
)

DUMMY, LINEAR, CHAMPION_GATE = (
    "beats_dummy_baseline",
    "not_worse_than_linear_baseline",
    "not_worse_than_champion",
)


@dataclass
class EvaluationReport:
    pipeline: str
    run_id: str
    metrics: dict[str, float]
    slices: dict[str, dict[str, dict[str, float]]]
    baseline_metrics: dict[str, dict[str, float]]
    champion_version: str | None
    champion_metrics: dict[str, float] | None
    gates: list[Gate]
    report_dir: str = ""
    diagnostics: dict[str, Any] = field(default_factory=dict)
    plots: dict[str, str] = field(default_factory=dict)
    model_card: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.gates) and all(g.passed for g in self.gates)

    @property
    def failed_gates(self) -> list[Gate]:
        return [g for g in self.gates if not g.passed]

    def gate(self, name: str) -> Gate | None:
        return next((g for g in self.gates if g.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    @classmethod
    def load(cls, path: Path) -> EvaluationReport:
        """The report ``_finish`` wrote as ``evaluation.json``."""
        data = json.loads(path.read_text())
        data.pop("passed", None)
        data["gates"] = [Gate(**g) for g in data["gates"]]
        return cls(**data)


def gate_names(spec: PipelineSpec) -> list[str]:
    """Every gate the spec declares, in report order (the blocking asset checks)."""
    names = [f"{m}_above_floor" for m in spec.gates.min_metrics]
    names += [f"{m}_below_ceiling" for m in spec.gates.max_metrics]
    if spec.gates.beat_baseline:
        names += [DUMMY, LINEAR]
    return [*names, CHAMPION_GATE, *infra.GATES]


def slice_metrics(
    spec: PipelineSpec,
    holdout: pd.DataFrame,
    scores: np.ndarray,
    y: np.ndarray | None = None,
    classes: list[Any] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per value of each slice column; ``y`` as ``holdout_target`` gives it (default
    the label column: binary and regression) and ``classes`` the multiclass class names."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    y_all = holdout[spec.label].to_numpy() if y is None else y
    for col in spec.slices:
        out[col] = {}
        for value, idx in holdout.groupby(col, dropna=False).indices.items():
            out[col][str(value)] = {
                "rows": float(len(idx)),
                **holdout_metrics(spec, y_all[idx], scores[idx], classes),
            }
    return out


def threshold_gates(spec: PipelineSpec, metrics: dict[str, float]) -> list[Gate]:
    gates = []
    for name, floor in spec.gates.min_metrics.items():
        value = metrics.get(name, float("nan"))  # NaN compares False: an absent metric fails
        gates.append(
            Gate(
                f"{name}_above_floor",
                bool(value >= floor),
                f"{name} = {value:.4f}, floor {floor}",
                {"value": value, "floor": floor},
            )
        )
    for name, ceiling in spec.gates.max_metrics.items():
        value = metrics.get(name, float("nan"))
        gates.append(
            Gate(
                f"{name}_below_ceiling",
                bool(value <= ceiling),
                f"{name} = {value:.4f}, ceiling {ceiling}",
                {"value": value, "ceiling": ceiling},
            )
        )
    return gates


def _slice_comparisons(
    spec: PipelineSpec, holdout: pd.DataFrame, y: np.ndarray, cand: np.ndarray, other: np.ndarray
) -> dict[str, PairedComparison]:
    """Paired comparisons in every slice big enough (and with both classes) to judge."""
    out = {}
    for col in spec.slices:
        for value, idx in holdout.groupby(col, dropna=False).indices.items():
            if len(idx) < spec.gates.min_slice_rows or (
                spec.is_classifier and len(np.unique(y[idx])) < 2
            ):
                continue
            out[f"{col}={value}"] = paired_bootstrap(
                spec.primary_metric,
                y[idx],
                cand[idx],
                other[idx],
                samples=spec.gates.bootstrap_samples,
                seed=spec.seed,
            )
    return out


RULES = {
    "better": "the CI's lower bound must be above 0 (significantly better)",
    "non_inferior": "the CI's lower bound must be above -margin (shown not worse by more "
    "than the margin)",
    "not_worse": "fails only if the whole CI is below -margin (significantly worse by more "
    "than the margin)",
}


def _rule_fails(rule: str, comp: PairedComparison, margin: float) -> str | None:
    if rule == "better" and not comp.ci_low > 0:
        return f"diff CI low {comp.ci_low:+.4f} is not above 0"
    if rule == "non_inferior" and not comp.ci_low > -margin:
        return f"diff CI low {comp.ci_low:+.4f} is not above {-margin:+.4f}"
    if rule == "not_worse" and comp.ci_high < -margin:
        return f"diff CI [{comp.ci_low:+.4f}, {comp.ci_high:+.4f}] is below {-margin:+.4f}"
    return None


def comparison_gate(
    spec: PipelineSpec,
    gate: str,
    other_name: str,
    y: np.ndarray,
    cand: np.ndarray,
    other: np.ndarray,
    margin: float,
    rule: str,
    holdout: pd.DataFrame | None = None,
) -> Gate:
    """Judge (candidate - other) on a paired bootstrap CI of the primary metric, overall by
    ``rule`` (see RULES) and, when ``holdout`` is given, per slice by "not_worse": slices are
    small, so asking each one to prove non-inferiority would fail equal models by chance.
    """
    metric = spec.primary_metric
    overall = paired_bootstrap(
        metric, y, cand, other, samples=spec.gates.bootstrap_samples, seed=spec.seed
    )
    failures = []
    if why := _rule_fails(rule, overall, margin):
        failures.append(f"overall {why}")
    slices = {} if holdout is None else _slice_comparisons(spec, holdout, y, cand, other)
    for name, comp in slices.items():
        if why := _rule_fails("not_worse", comp, margin):
            failures.append(f"slice {name} {why}")
    message = (
        f"{metric}: candidate {overall.challenger:.4f} vs {other_name} "
        f"{overall.champion:.4f}, diff {overall.diff:+.4f}, 95% CI "
        f"[{overall.ci_low:+.4f}, {overall.ci_high:+.4f}], margin {margin}"
    )
    if failures:
        message += "; FAILED: " + "; ".join(failures[:5])
    return Gate(
        gate,
        not failures,
        message,
        {
            "overall": overall.to_dict(),
            "margin": margin,
            "rule": RULES[rule],
            "slices": {k: v.to_dict() for k, v in slices.items()},
        },
    )


def _history(spec: PipelineSpec, training_set: Path, holdout: pd.DataFrame) -> pd.DataFrame:
    """The training set's rows outside the holdout, in file order, with the columns the
    baselines fit on. A time split reads only the rows before the holdout window (a Parquet
    filter) instead of every row and column, masked afterwards."""
    ts, needed = spec.event_timestamp, [spec.label, *spec.features.all_columns]
    if not spec.has_event_time:  # a random split: every row outside the holdout
        keys = [spec.entity_key, ts]
        frame = pd.read_parquet(training_set, columns=[*keys, *needed])
        held = pd.MultiIndex.from_frame(holdout[keys])
        return frame[~pd.MultiIndex.from_frame(frame[keys]).isin(held)]
    # The bound in the column's own Arrow type: inferred from a pandas Timestamp it would be
    # in microseconds, its nanoseconds dropped.
    start = pa.scalar(holdout[ts].min(), type=pq.read_schema(training_set).field(ts).type)
    return pd.read_parquet(training_set, columns=needed, filters=[(ts, "<", start)])


@dataclass(frozen=True)
class Champion:
    version: str
    scores: np.ndarray | None
    error: str | None


def score_champion(
    spec: PipelineSpec,
    tracking: Tracking,
    holdout: pd.DataFrame,
    version: str | None,
    classes: np.ndarray | None = None,
) -> Champion | None:
    """Re-score the champion ``version`` (the registry's, read by the caller; pinned, as the alias
    may move while we evaluate) on the candidate's holdout; None when there is no champion.
    Multiclass: the probabilities of the candidate's ``classes``, in their order."""
    if version is None:
        return None
    try:
        model = tracking.load_sklearn_model(f"models:/{spec.name}/{version}")
        return Champion(version, fitting.scores(spec, model, holdout, classes), None)
    except Exception as exc:  # a champion on other features or a lost artifact: say so
        return Champion(version, None, f"{type(exc).__name__}: {exc}"[:500])


def champion_gate(
    spec: PipelineSpec, champion: Champion, y: np.ndarray, scores: np.ndarray, holdout: pd.DataFrame
) -> Gate:
    if champion.scores is None:
        return Gate(
            CHAMPION_GATE,
            False,
            f"champion v{champion.version} cannot be re-scored on this holdout "
            f"({champion.error}); a human must decide (promote --force)",
            {"champion_version": champion.version, "error": champion.error},
        )
    gate = comparison_gate(
        spec,
        CHAMPION_GATE,
        f"champion v{champion.version}",
        y,
        scores,
        champion.scores,
        spec.gates.champion_margin,
        "non_inferior",
        holdout=holdout,
    )
    gate.evidence["champion_version"] = champion.version
    return gate


def not_evaluated(spec: PipelineSpec, done: list[Gate], why: str) -> list[Gate]:
    """Gates that could not run still appear, failed, so every check says why."""
    have = {g.name for g in done}
    return [Gate(n, False, f"not evaluated: {why}") for n in gate_names(spec) if n not in have]


def evaluate(
    spec: PipelineSpec,
    home: PlatformHome,
    tracking: Tracking,
    candidate: Candidate,
    training_set: Path,
    lineage: dict[str, Any] | None = None,
    champion_version: str | None = None,
) -> EvaluationReport:
    """Judge ``candidate``; ``champion_version`` is the current champion to re-score beside it
    (the promotion ledger's), None for the first model."""
    # One native thread: on a shared host OpenMP oversubscription made HistGradientBoosting's
    # predict ~25x slower (2.2 s vs 0.08 s for 3k rows), and evaluation predicts ~45 times.
    with threadpool_limits(1):
        return _evaluate(spec, home, tracking, candidate, training_set, lineage, champion_version)


def _evaluate(
    spec: PipelineSpec,
    home: PlatformHome,
    tracking: Tracking,
    candidate: Candidate,
    training_set: Path,
    lineage: dict[str, Any] | None,
    champion_version: str | None,
) -> EvaluationReport:
    holdout = holdout_of(candidate)
    report_dir = home.reports / spec.name / candidate.run_id
    # The fresh-process check loads the artifact on the other core while we score here.
    artifact = infra.local_artifact(tracking.client, candidate.model_uri)
    with infra.start(spec, artifact, tracking.tracking_uri, holdout) as check:
        try:
            model = tracking.load_sklearn_model(candidate.model_uri)
        except Exception as exc:  # judged below: the fresh process fails to load it too
            model, load_error = None, f"{type(exc).__name__}: {exc}"[:500]
        report = (
            None
            if model is None
            else _judge(
                spec,
                tracking,
                candidate,
                model,
                holdout,
                training_set,
                report_dir,
                champion_version,
            )
        )
        infra_gates = infra.gates_of(spec, check.result())
    if report is None and all(g.passed for g in infra_gates):
        infra_gates[0] = Gate(
            infra.INFRA,
            False,
            f"the artifact loads in a fresh process but not in the evaluating one: {load_error}",
        )
    if report is None or not all(g.passed for g in infra_gates):
        gates = [
            *infra_gates,
            *not_evaluated(spec, infra_gates, "the artifact failed infra validation"),
        ]
        report = EvaluationReport(
            spec.name, candidate.run_id, {}, {}, {}, None, None, gates, str(report_dir)
        )
    else:
        report.gates += infra_gates
    return _finish(spec, tracking, candidate, report, lineage)


def _judge(
    spec: PipelineSpec,
    tracking: Tracking,
    candidate: Candidate,
    model: Any,
    holdout: pd.DataFrame,
    training_set: Path,
    report_dir: Path,
    champion_version: str | None,
) -> EvaluationReport:
    """Score the candidate, the baselines and the champion on the holdout and judge every
    gate but the infra ones; diagnostics and plots go to ``report_dir``.

    The baselines are fitted on a thread while this one scores: the linear fit spends most of
    its time in native code, outside the GIL."""
    # Multiclass: every model's probabilities in the candidate's class order, the label as the
    # column index of its class in them.
    classes = fitting.classes_of(model) if spec.is_multiclass else None
    names = None if classes is None else class_names(classes)
    y = holdout_target(spec, holdout, classes)
    with ThreadPoolExecutor(1, thread_name_prefix="baselines") as pool:
        fitted = pool.submit(_baselines_one_thread, spec, training_set, holdout, classes)
        scores = fitting.scores(spec, model, holdout)
        metrics = holdout_metrics(spec, y, scores, names)
        slices = slice_metrics(spec, holdout, scores, y, names)
        champion = score_champion(spec, tracking, holdout, champion_version, classes)
        diagnostics, plots = report_artifacts.diagnose(spec, model, holdout, scores, report_dir)
        bases = fitted.result()
    gates = threshold_gates(spec, metrics)
    if spec.gates.beat_baseline:
        gates.append(
            comparison_gate(spec, DUMMY, "dummy baseline", y, scores, bases["dummy"], 0.0, "better")
        )
        gates.append(
            comparison_gate(
                spec,
                LINEAR,
                "linear baseline",
                y,
                scores,
                bases["linear"],
                spec.gates.champion_margin,
                "not_worse",
            )
        )
    if champion is not None:
        gates.append(champion_gate(spec, champion, y, scores, holdout))
    report = EvaluationReport(
        spec.name,
        candidate.run_id,
        metrics,
        slices,
        {name: holdout_metrics(spec, y, s, names) for name, s in bases.items()},
        None if champion is None else champion.version,
        None
        if champion is None or champion.scores is None
        else holdout_metrics(spec, y, champion.scores, names),
        gates,
        str(report_dir),
    )
    report.diagnostics, report.plots = diagnostics, plots
    return report


def _baselines_one_thread(
    spec: PipelineSpec, training_set: Path, holdout: pd.DataFrame, classes: np.ndarray | None
) -> dict[str, np.ndarray]:
    # OpenMP's thread count is per thread: a new thread starts from the default, so limit again.
    with threadpool_limits(1):
        return baseline_scores(spec, _history(spec, training_set, holdout), holdout, classes)


def _finish(
    spec: PipelineSpec,
    tracking: Tracking,
    candidate: Candidate,
    report: EvaluationReport,
    lineage: dict[str, Any] | None,
) -> EvaluationReport:
    """Write the card and report atomically, then log them to the candidate's MLflow run."""
    from ml_platform.evaluation.model_card import model_card

    report_dir = Path(report.report_dir)
    report.model_card = str(
        write_text(model_card(spec, candidate, report, lineage or {}), report_dir / "model_card.md")
    )
    write_json(report.to_dict(), report_dir / "evaluation.json")
    report_artifacts.log_to_mlflow(
        tracking, candidate.run_id, report_dir, report.metrics, report.passed
    )
    return report
