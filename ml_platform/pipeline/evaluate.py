"""The evaluation stage: score the candidate on its frozen holdout beside the champion and a
baseline, then judge the spec's gates. Each gate is a verdict with its evidence."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier, DummyRegressor

from ml_platform.core import training
from ml_platform.core.bootstrap import paired_bootstrap
from ml_platform.core.io import write_json, write_parquet
from ml_platform.core.tracking import Tracking
from ml_platform.home import PlatformHome
from ml_platform.pipeline.train import Candidate, holdout_metrics, holdout_of
from ml_platform.registry.ledger import CHAMPION
from ml_platform.spec import PipelineSpec


@dataclass
class Gate:
    name: str
    passed: bool
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluationReport:
    pipeline: str
    run_id: str
    metrics: dict[str, float]
    slices: dict[str, dict[str, dict[str, float]]]
    baseline_metrics: dict[str, float]
    champion_version: str | None
    champion_metrics: dict[str, float] | None
    gates: list[Gate]
    report_dir: str = ""

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def gate(self, name: str) -> Gate | None:
        return next((g for g in self.gates if g.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def _slice_metrics(spec: PipelineSpec, holdout: pd.DataFrame, scores: np.ndarray
                   ) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for col in spec.slices:
        out[col] = {}
        for value, idx in holdout.groupby(col, dropna=False).indices.items():
            y = holdout[spec.label].to_numpy()[idx]
            out[col][str(value)] = {"rows": float(len(idx)),
                                    **holdout_metrics(spec, y, scores[idx])}
    return out


def threshold_gates(spec: PipelineSpec, metrics: dict[str, float]) -> list[Gate]:
    gates = []
    for name, floor in spec.gates.min_metrics.items():
        value = metrics.get(name, float("nan"))
        gates.append(Gate(f"{name}_above_floor", bool(value >= floor),
                          f"{name} = {value:.4f}, floor {floor}", {"value": value,
                                                                  "floor": floor}))
    for name, ceiling in spec.gates.max_metrics.items():
        value = metrics.get(name, float("nan"))
        gates.append(Gate(f"{name}_below_ceiling", bool(value <= ceiling),
                          f"{name} = {value:.4f}, ceiling {ceiling}", {"value": value,
                                                                      "ceiling": ceiling}))
    return gates


def baseline_scores(spec: PipelineSpec, training_set: Path, holdout: pd.DataFrame) -> np.ndarray:
    """A dummy model fitted on the rows before the holdout window."""
    frame = pd.read_parquet(training_set, columns=[spec.event_timestamp, spec.label])
    start = holdout[spec.event_timestamp].min()
    y = frame.loc[frame[spec.event_timestamp] < start, spec.label].to_numpy()
    x = np.zeros((len(y), 1))
    if spec.is_classification:
        return DummyClassifier(strategy="prior").fit(x, y).predict_proba(
            np.zeros((len(holdout), 1)))[:, 1]
    return DummyRegressor(strategy="mean").fit(x, y).predict(np.zeros((len(holdout), 1)))


def comparison_gate(spec: PipelineSpec, name: str, y: np.ndarray, cand: np.ndarray,
                    other: np.ndarray, margin: float, holdout: pd.DataFrame | None = None
                    ) -> Gate:
    """Pass when the CI's lower bound of (candidate - other) is above -margin, overall and in
    every slice with at least ``min_slice_rows`` rows (only when ``holdout`` is given)."""
    metric, gates_cfg = spec.primary_metric, spec.gates
    overall = paired_bootstrap(metric, y, cand, other, samples=gates_cfg.bootstrap_samples,
                               seed=spec.seed)
    failures, per_slice = [], {}
    if overall.ci_low <= -margin:
        failures.append(f"overall {metric} diff CI low {overall.ci_low:+.4f} <= {-margin:+.4f}")
    for col in spec.slices if holdout is not None else []:
        for value, idx in holdout.groupby(col, dropna=False).indices.items():
            if len(idx) < gates_cfg.min_slice_rows or len(np.unique(y[idx])) < 2:
                continue
            comp = paired_bootstrap(metric, y[idx], cand[idx], other[idx],
                                    samples=gates_cfg.bootstrap_samples, seed=spec.seed)
            per_slice[f"{col}={value}"] = comp.to_dict()
            if comp.ci_low <= -margin:
                failures.append(f"slice {col}={value}: CI low {comp.ci_low:+.4f}")
    message = (f"{metric}: candidate {overall.challenger:.4f} vs {name} {overall.champion:.4f}, "
               f"diff 95% CI [{overall.ci_low:+.4f}, {overall.ci_high:+.4f}], margin {margin}")
    if failures:
        message += "; FAILED: " + "; ".join(failures[:5])
    return Gate(f"beats_{name}", not failures, message,
                {"overall": overall.to_dict(), "slices": per_slice})


def infra_gate(spec: PipelineSpec, candidate: Candidate, tracking: Tracking,
               holdout: pd.DataFrame, work_dir: Path) -> Gate:
    """Load the logged artifact in a fresh process and score 1,000 rows within budget."""
    sample_path = write_parquet(training.features_of(holdout.head(1000), spec),
                                work_dir / "infra_sample.parquet")
    proc = subprocess.run(
        [sys.executable, "-m", "ml_platform.inference.infra_check", candidate.model_uri,
         str(sample_path), tracking.tracking_uri], capture_output=True, text=True, timeout=600)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        result = {"ok": False, "error": proc.stderr.strip()[-500:] or "no output"}
    if not result.get("ok"):
        return Gate("infra_valid", False, f"artifact failed to load or predict: "
                    f"{result.get('error')}", result)
    problems = []
    if result["batch_latency_ms"] > spec.gates.max_latency_ms:
        problems.append(f"latency {result['batch_latency_ms']:.1f} ms > "
                        f"{spec.gates.max_latency_ms} ms")
    if result["peak_rss_mb"] > spec.gates.max_memory_mb:
        problems.append(f"memory {result['peak_rss_mb']:.0f} MB > {spec.gates.max_memory_mb} MB")
    if sorted(result["input_columns"]) != sorted(spec.features.all_columns):
        problems.append(f"signature columns {result['input_columns']} do not match the features")
    message = "; ".join(problems) or (
        f"loaded in {result['load_seconds']:.2f} s, {result['batch_rows']} rows in "
        f"{result['batch_latency_ms']:.1f} ms, peak {result['peak_rss_mb']:.0f} MB")
    return Gate("infra_valid", not problems, message, result)


def evaluate(spec: PipelineSpec, home: PlatformHome, tracking: Tracking, candidate: Candidate,
             training_set: Path) -> EvaluationReport:
    holdout = holdout_of(candidate)
    y = holdout[spec.label].to_numpy()
    mlflow.set_tracking_uri(tracking.tracking_uri)
    model = mlflow.sklearn.load_model(candidate.model_uri)
    scores = training.predict(spec, model, holdout)
    metrics = holdout_metrics(spec, y, scores)
    base = baseline_scores(spec, training_set, holdout)
    gates = threshold_gates(spec, metrics)
    if spec.gates.beat_baseline:
        gates.append(comparison_gate(spec, "baseline", y, scores, base, margin=0.0))
    champion = tracking.version_by_alias(spec.name, CHAMPION)
    champion_metrics = None
    if champion is not None:
        champ_model = mlflow.sklearn.load_model(f"models:/{spec.name}@{CHAMPION}")
        champ_scores = training.predict(spec, champ_model, holdout)
        champion_metrics = holdout_metrics(spec, y, champ_scores)
        gates.append(comparison_gate(spec, "champion", y, scores, champ_scores,
                                     spec.gates.champion_margin, holdout))
    report_dir = home.reports / spec.name / candidate.run_id
    gates.append(infra_gate(spec, candidate, tracking, holdout, report_dir))
    report = EvaluationReport(
        spec.name, candidate.run_id, metrics, _slice_metrics(spec, holdout, scores),
        holdout_metrics(spec, y, base), None if champion is None else str(champion.version),
        champion_metrics, gates, str(report_dir))
    write_json(report.to_dict(), report_dir / "evaluation.json")
    return report
