"""A batch's monitoring report as Markdown (the Dagster asset's description and the CLI's
detail), and the drift-over-time plot drawn from the history of batch analyses."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ml_platform.ingest.io import atomic_path
from ml_platform.monitoring.analyze import BatchAnalysis
from ml_platform.monitoring.drift import FeatureDrift

PREFERRED_METRICS = ("roc_auc", "macro_f1", "accuracy", "rmse", "mae")


def _num(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.3g}"


def _drift_row(f: FeatureDrift) -> str:
    extras = []
    if f.kind == "numeric":
        extras.append(f"psi {_num(f.psi)}, wasserstein {_num(f.wasserstein)}")
    if f.new_categories:
        extras.append(f"new: {', '.join(f.new_categories)}")
    return (
        f"| {f.feature} | {f.kind} | {f.statistic} | {_num(f.value)} | {_num(f.threshold)} | "
        f"{_num(f.p_adjusted)} | {'**yes**' if f.drifted else 'no'} | {'; '.join(extras)} |"
    )


def _performance(analysis: BatchAnalysis) -> list[str]:
    realized, estimated = analysis.realized or {}, analysis.estimated or {}
    metrics = [*realized, *(m for m in estimated if m not in realized)]
    if not metrics:
        return ["No labels and no estimate (not a binary classifier)."]
    lines = [
        f"Labelled rows: {analysis.labelled_rows} of {analysis.rows}.",
        "",
        "| metric | realized (95% CI) | estimated |",
        "|---|---|---|",
    ]
    for m in metrics:
        got = realized.get(m)
        real = "-" if got is None else f"{_num(got.value)} ({_num(got.low)}-{_num(got.high)})"
        lines.append(f"| {m} | {real} | {_num(estimated.get(m))} |")
    return lines


def markdown_report(analysis: BatchAnalysis) -> str:
    """Verdict, the drift table (the statistic that decides, its threshold, the Holm-adjusted
    p-value), data-quality breaches, realized vs estimated performance."""
    drift = analysis.drift
    if not drift.judged:
        verdict = f"not judged ({analysis.rows} rows < min_rows)"
    else:
        verdict = "**BREACHED**" if analysis.breached else "ok"
    lines = [
        f"## Batch {analysis.label}: {analysis.rows} rows vs champion v{analysis.champion_version}",
        "",
        f"Verdict: {verdict}. Reference: {drift.reference_rows} training rows.",
        "",
        "### Drift",
        "",
        "| feature | kind | statistic | value | threshold | p adj (Holm) | drifted | detail |",
        "|---|---|---|---|---|---|---|---|",
        *(_drift_row(f) for f in drift.features),
    ]
    if drift.prediction is not None:
        lines.append(_drift_row(drift.prediction))
    lines += ["", "### Data quality", ""]
    lines += [f"- {b}" for b in analysis.quality.breaches] or ["Within bounds."]
    lines += ["", "### Performance", "", *_performance(analysis)]
    if analysis.performance_breaches:
        lines += ["", *(f"- {b}" for b in analysis.performance_breaches)]
    return "\n".join(lines) + "\n"


def _series(history: list[dict[str, Any]]) -> dict[str, list[dict[str, Any] | None]]:
    """Each feature's drift entry per batch (None where a batch lacks it), prediction last."""
    names: list[str] = []
    for entry in history:
        for f in entry["drift"]["features"]:
            if f["feature"] not in names:
                names.append(f["feature"])
    out: dict[str, list[dict[str, Any] | None]] = {}
    for name in names:
        out[name] = [
            next((f for f in e["drift"]["features"] if f["feature"] == name), None) for e in history
        ]
    if any(e["drift"].get("prediction") for e in history):
        out["prediction"] = [e["drift"].get("prediction") for e in history]
    return out


def _metric(history: list[dict[str, Any]]) -> str | None:
    present = {
        m for e in history for m in (*(e.get("realized") or {}), *(e.get("estimated") or {}))
    }
    return next((m for m in PREFERRED_METRICS if m in present), None)


def _plot_feature(ax: Any, name: str, entries: list[dict[str, Any] | None]) -> None:
    x = range(len(entries))
    kind = next((e["kind"] for e in entries if e), "numeric")
    stats = {"numeric": ("psi", "wasserstein"), "prediction": ("psi",)}.get(kind, ("value",))
    if kind == "prediction" and all(e is None or e.get("psi") is None for e in entries):
        stats = ("value",)  # multiclass: predicted classes compared as a category (no PSI)
    for stat, color in zip(stats, ("tab:blue", "tab:orange"), strict=False):
        values = [math.nan if e is None or e.get(stat) is None else e[stat] for e in entries]
        ax.plot(x, values, marker=".", color=color, label=stat.replace("value", "js"))
        key = "jensen_shannon" if stat == "value" else stat
        threshold = next((e.get("thresholds", {}).get(key) for e in entries if e), None)
        if threshold is not None:
            ax.axhline(threshold, color=color, linestyle="--", linewidth=0.8)
    drifted = [(i, e["value"]) for i, e in enumerate(entries) if e and e["drifted"]]
    if drifted:
        ax.plot(*zip(*drifted, strict=True), "o", color="red", label="drifted")
    ax.set_title(name, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="upper left")


def _plot_metric(ax: Any, metric: str, history: list[dict[str, Any]]) -> None:
    x = range(len(history))
    for source, color in (("realized", "tab:green"), ("estimated", "tab:purple")):
        values = []
        for e in history:
            got = (e.get(source) or {}).get(metric)
            value = got.get("value") if isinstance(got, dict) else got
            values.append(math.nan if value is None else value)
        if not all(math.isnan(v) for v in values):
            ax.plot(x, values, marker=".", color=color, label=source)
    ax.set_title(f"model {metric}", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="lower left")


def drift_history_png(history: list[dict[str, Any]], path: Path) -> Path:
    """One panel per feature (its drift statistics over the batches, dashed threshold lines,
    drifted batches in red), one for the prediction and one for the model metric, realized
    and estimated, when the history has it. ``history`` holds ``BatchAnalysis.to_dict()``
    entries, oldest first. Drawn on a bare Figure (Agg), so no global pyplot state."""
    from matplotlib.figure import Figure

    series = _series(history)
    metric = _metric(history)
    panels = len(series) + (metric is not None)
    cols = min(4, max(panels, 1))
    rows = max(1, math.ceil(panels / cols))
    fig = Figure(figsize=(3.4 * cols, 2.5 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, entries) in zip(axes, series.items(), strict=False):
        _plot_feature(ax, name, entries)
    if metric is not None:
        _plot_metric(axes[len(series)], metric, history)
    for ax in axes[panels:]:
        ax.set_visible(False)
    labels = [str(e.get("label", i)) for i, e in enumerate(history)]
    step = max(1, math.ceil(len(labels) / 12))  # at most a dozen tick labels per panel
    ticks = list(range(0, len(labels), step))
    for ax in axes[:panels]:
        ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=60, ha="right", fontsize=6)
    fig.suptitle(f"Drift over {len(history)} batches (dashed: thresholds)", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    return path
