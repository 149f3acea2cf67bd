"""A model card in markdown, generated from lineage: where the data came from, what the model
is, how it scored (overall, by slice, against baselines and champion) and what its gates said."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ml_platform.spec import PipelineSpec
from ml_platform.training.train import Candidate

if TYPE_CHECKING:
    from ml_platform.evaluation.evaluate import EvaluationReport


def _metrics_table(rows: dict[str, dict[str, float] | None]) -> list[str]:
    present = {k: v for k, v in rows.items() if v}
    if not present:
        return ["_not scored_"]
    names = list(next(iter(present.values())))
    lines = ["| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, values in present.items():
        lines.append(
            f"| {label} | " + " | ".join(f"{values.get(n, float('nan')):.4f}" for n in names) + " |"
        )
    return lines


def _slices(spec: PipelineSpec, report: EvaluationReport) -> list[str]:
    lines = []
    for col, values in report.slices.items():
        lines.append(f"\n**by {col}** ({spec.primary_metric}, rows)\n")
        lines += [
            f"- {value}: {m.get(spec.primary_metric, float('nan')):.4f} ({int(m['rows']):,} rows)"
            for value, m in values.items()
        ]
    return lines or ["_no slices declared_"]


def _importance(report: EvaluationReport, top: int = 8) -> list[str]:
    imp = report.diagnostics.get("permutation_importance", {})
    return [
        f"- {name}: {v['mean']:+.4f} ± {v['std']:.4f}" for name, v in list(imp.items())[:top]
    ] or ["_not computed_"]


def model_card(
    spec: PipelineSpec, candidate: Candidate, report: EvaluationReport, lineage: dict[str, Any]
) -> str:
    verdict = "PASSED" if report.passed else "FAILED"
    champion = (
        f"v{report.champion_version}"
        if report.champion_version
        else "none (first model of the pipeline)"
    )
    rows = {
        "candidate": report.metrics,
        **{f"{k} baseline": v for k, v in report.baseline_metrics.items()},
        f"champion {champion}": report.champion_metrics,
    }
    gates = [f"- {'✅' if g.passed else '❌'} `{g.name}`: {g.message}" for g in report.gates]
    lines = [
        f"# Model card: {spec.name}",
        "",
        spec.description,
        "",
        f"**Intended use.** {spec.intended_use or '_not stated in the spec_'}",
        "",
        f"**Owner.** {spec.owner}. **Task.** {spec.task}. **Gates.** {verdict}.",
        "",
        "## Lineage",
        f"- MLflow run: `{candidate.run_id}` ({candidate.run_url})",
        f"- model artifact: `{candidate.model_uri}`",
        f"- training set version: `{candidate.data_version}`",
        f"- feature service: `{lineage.get('feature_service') or 'n/a'}`",
        f"- code version: `{lineage.get('code_version', 'unknown')}`",
        f"- Dagster run: `{lineage.get('dagster_run_id', 'n/a')}`",
        f"- holdout: {candidate.holdout.get('rows', '?')} rows, "
        f"{candidate.holdout.get('start')} .. {candidate.holdout.get('end')}, "
        f"hash `{candidate.holdout.get('hash')}`",
        f"- seed: {spec.seed}",
        "",
        "## Model",
        f"- estimator: `{spec.model.estimator}`",
        f"- parameters: `{ {**spec.model.params, **candidate.best_params} }`",
        f"- features ({len(spec.features.all_columns)}): {', '.join(spec.features.all_columns)}",
        "",
        f"## Holdout metrics (champion: {champion})",
        *_metrics_table(rows),
        "",
        "## Slices",
        *_slices(spec, report),
        "",
        f"## Permutation importance (drop in {spec.primary_metric})",
        *_importance(report),
        "",
        "## Gates",
        *gates,
        "",
    ]
    return "\n".join(lines)
