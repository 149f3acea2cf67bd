"""Issue 2: the demo pipeline's wall time at 1M events against a plain script doing the same
computation, in the same process on the same landed files. Target: the platform costs at most
1.25x the plain script.

Two scenarios, each ``BENCH_PIPELINE_REPEATS`` times (default 2): on a new platform home (the
first run creates the Dagster, MLflow and Feast stores and the dbt parse cache), then on the
same home after one more day of data landed, as a daily retraining runs. Each side is judged on
its best run, since the training that dominates both varies by 10% or more between runs here.

The plain script is what an engineer would write by hand for the same results, with no
orchestration, tracking, registry, feature store or validation framework:

- validation: the demo contract's rules as one vectorised pandas pass (the baseline of the
  validation benchmark);
- features: the dbt model's window aggregates as one DuckDB query over the landed files;
- the same time split, the same search (seeded TPE, median pruning on the same warm-start
  stages, the preprocessing fitted once), the final fit on train + validation;
- the same evaluation numbers: holdout metrics, dummy and logistic baselines, paired
  bootstraps against both, slice metrics, calibration, confusion matrix and permutation
  importance (the framework-free functions of ``ml_platform.core``).

What the platform adds on top is the overhead measured: Dagster, MLflow tracking and registry,
data versions and hashes, pandera + Great Expectations, dbt, `feast apply`, the fresh-process
infra check, the reproducibility retrain, plots and the model card. ``run_pipeline`` is the
``ml-platform run`` path, helper processes included (the sidecar and the dbt server).
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

EVENTS = int(os.environ.get("BENCH_PIPELINE_EVENTS", "1000000"))
REPEATS = int(os.environ.get("BENCH_PIPELINE_REPEATS", "2"))
TARGET = 1.25
STAGES = (0.25, 0.5, 1.0)


def plain_script(files: list[str], spec: Any) -> dict[str, float]:
    """Seconds per part and the holdout ROC AUC."""
    import duckdb
    import numpy as np
    import optuna
    import pandas as pd
    from sklearn.calibration import calibration_curve
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        confusion_matrix,
        f1_score,
        log_loss,
        roc_auc_score,
    )
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.utils.class_weight import compute_sample_weight

    from benchmarks.bench_validation import plain_pass
    from ml_platform.contracts import load_for_spec
    from ml_platform.evaluation.bootstrap import paired_bootstrap
    from ml_platform.evaluation.diagnostics import permutation_importance
    from ml_platform.spec import resolve_import

    times: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        times[name] = now - mark
        mark = now

    raw = duckdb.execute("SELECT * FROM read_parquet(?)", [files]).df()
    raw[spec.event_timestamp] = pd.to_datetime(raw[spec.event_timestamp], utc=True)
    counts = plain_pass(load_for_spec(spec), raw, pd.Timestamp.now(tz="UTC"))
    assert counts["rows"] == len(raw)
    lap("validate")

    aggs = ", ".join(
        f"{'COUNT(*)' if a.agg == 'count' else dict(sum='SUM', mean='AVG', max='MAX')[a.agg]}"
        f"{'' if a.agg == 'count' else f'({a.column})'} OVER (PARTITION BY customer_id "
        f"ORDER BY applied_at RANGE BETWEEN {a.window_sql} PRECEDING AND CURRENT ROW) "
        f"AS {a.name}" for a in spec.features.aggregates)
    frame = duckdb.execute(f"SELECT *, {aggs} FROM read_parquet(?)", [files]).df()
    lap("features")

    frame = frame.sort_values(["applied_at", "customer_id"]).reset_index(drop=True)
    n, label = len(frame), spec.label
    test_start = frame["applied_at"].iloc[n - int(n * spec.split.test_fraction)]
    val_start = frame["applied_at"].iloc[
        n - int(n * spec.split.test_fraction) - int(n * spec.split.validation_fraction)]
    train = frame[frame["applied_at"] < val_start]
    val = frame[(frame["applied_at"] >= val_start) & (frame["applied_at"] < test_start)]
    history = frame[frame["applied_at"] < test_start]
    test = frame[frame["applied_at"] >= test_start].reset_index(drop=True)
    numeric, categorical = spec.features.model_numeric, spec.features.categorical
    cols = numeric + categorical

    def preprocess() -> ColumnTransformer:
        return ColumnTransformer([
            ("num", SimpleImputer(strategy="median"), numeric),
            ("cat", Pipeline([("i", SimpleImputer(strategy="constant", fill_value="_")),
                              ("o", OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                                                  min_frequency=5))]), categorical)])

    def estimator(params: dict) -> Any:
        return resolve_import(spec.model.estimator)(**spec.model.params, **params,
                                                    random_state=spec.seed)

    pre = preprocess()
    x_train, y_train = pre.fit_transform(train[cols]), train[label].to_numpy()
    x_val, y_val = pre.transform(val[cols]), val[label].to_numpy()
    weight = compute_sample_weight("balanced", y_train)

    def objective(trial: optuna.Trial) -> float:
        model = estimator({
            "learning_rate": trial.suggest_float("learning_rate", 0.03, 0.3, log=True),
            "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 8, 48),
            "l2_regularization": trial.suggest_float("l2_regularization", 0.0, 1.0)})
        value, total = 0.0, spec.model.params["max_iter"]
        for step, fraction in enumerate(STAGES):
            model.set_params(warm_start=True, max_iter=max(1, round(total * fraction)))
            model.fit(x_train, y_train, sample_weight=weight)
            value = roc_auc_score(y_val, model.predict_proba(x_val)[:, 1])
            trial.report(value, step)
            if step < len(STAGES) - 1 and trial.should_prune():
                raise optuna.TrialPruned()
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=spec.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0))
    study.optimize(objective, n_trials=spec.model.n_trials)
    y_hist = history[label].to_numpy()
    final = Pipeline([("pre", preprocess()), ("model", estimator(study.best_params))]).fit(
        history[cols], y_hist, model__sample_weight=compute_sample_weight("balanced", y_hist))
    lap("train")

    y = test[label].to_numpy()
    scores = final.predict_proba(test[cols])[:, 1]

    def metrics(y_: np.ndarray, s: np.ndarray) -> dict[str, float]:
        return {"roc_auc": roc_auc_score(y_, s), "pr_auc": average_precision_score(y_, s),
                "log_loss": log_loss(y_, np.clip(s, 1e-15, 1 - 1e-15), labels=[0, 1]),
                "brier": brier_score_loss(y_, s), "f1": f1_score(y_, s >= 0.5)}

    holdout = metrics(y, scores)
    linear = make_pipeline(ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="_"),
                              OneHotEncoder(handle_unknown="ignore", min_frequency=5)),
         categorical)]), LogisticRegression(max_iter=500, class_weight="balanced"))
    baselines = {"dummy": np.full(len(y), y_hist.mean()),
                 "linear": linear.fit(history[cols], y_hist).predict_proba(test[cols])[:, 1]}
    for other in baselines.values():
        metrics(y, other)
        paired_bootstrap("roc_auc", y, scores, other, samples=spec.gates.bootstrap_samples,
                         seed=spec.seed)
    for col in spec.slices:
        for idx in test.groupby(col).indices.values():
            metrics(y[idx], scores[idx])
    calibration_curve(y, scores, n_bins=10, strategy="quantile")
    confusion_matrix(y, scores >= 0.5, labels=[0, 1])
    permutation_importance(lambda x: final.predict_proba(x)[:, 1], test[cols], y, "roc_auc",
                           seed=spec.seed)
    lap("evaluate")
    return {**times, "roc_auc": holdout["roc_auc"]}


def platform_auc(home: Any, run_started: float) -> float:
    """The holdout ROC AUC of the evaluation the run just wrote."""
    reports = [Path(p) for p in glob.glob(str(home.reports / "loan_default" / "*" /
                                              "evaluation.json"))]
    (report,) = [p for p in reports if p.stat().st_mtime >= run_started]
    return float(json.loads(report.read_text())["metrics"]["roc_auc"])


def pair(home: Any, spec: Any) -> dict[str, Any]:
    """The plain script, then the platform, on the same landed files in this process."""
    from rich.console import Console

    from ml_platform.runner import run_pipeline

    files = sorted(glob.glob(str(home.landing / "loan_default" / "*.parquet")))
    plain = plain_script(files, spec)
    plain["all"] = sum(plain[k] for k in ("validate", "features", "train", "evaluate"))
    wall_clock, started = time.time(), time.perf_counter()
    ok = run_pipeline(spec, Console(quiet=True))
    seconds = time.perf_counter() - started
    return {"plain": plain, "platform": seconds, "ok": ok, "ratio": seconds / plain["all"],
            "auc": platform_auc(home, wall_clock) if ok else float("nan")}


def run() -> str:
    from ml_platform.home import platform_home
    from ml_platform.ingest.datagen import GeneratorConfig, land
    from ml_platform.spec import load_spec_file

    spec_file = Path(__file__).resolve().parent.parent / "ml_platform/defs/pipelines/loan_default"
    spec = load_spec_file(spec_file / "defs.yaml")
    config = GeneratorConfig(events=EVENTS, days=120)
    scenarios = {"new home (first run: creates every store)": [],
                 "same home, one more day landed (the daily retraining)": []}
    new_home, next_day = scenarios.values()
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["ML_PLATFORM_HOME"] = str(Path(tmp) / "home")
            home = platform_home().ensure()
            land(config, home.landing / "loan_default")
            new_home.append(pair(home, spec))
            land(config, home.landing / "loan_default", new_days=1)  # the next day's retraining
            next_day.append(pair(home, spec))

    rows, verdicts = [], []
    for name, runs in scenarios.items():
        for i, r in enumerate(runs, 1):
            p = r["plain"]
            rows.append(f"| {name}, pair {i} | {p['validate']:.1f} | {p['features']:.1f} | "
                        f"{p['train']:.1f} | {p['evaluate']:.1f} | {p['all']:.1f} | "
                        f"{r['platform']:.1f} | {r['ratio']:.2f}x | "
                        f"{p['roc_auc']:.4f} / {r['auc']:.4f} |")
        ok = all(r["ok"] for r in runs)
        best = min(r["platform"] for r in runs) / min(r["plain"]["all"] for r in runs)
        met = "meets" if ok and best <= TARGET else "MISSES"
        ratios = ", ".join(f"{r['ratio']:.2f}x" for r in runs)
        runs_ok = "every run succeeded" if ok else "a run FAILED: a step or a gate failed"
        verdicts.append(f"- {name}: best platform run / best plain run = **{best:.2f}x** "
                        f"({met}; {runs_ok}); pair ratios {ratios}.")
    return "\n".join([
        f"## Demo pipeline vs a plain script ({EVENTS:,} events)",
        "",
        f"Same process, same landed files, the plain script first, then `ml-platform run "
        f"loan_default`. Two scenarios, {REPEATS} times each: on a new platform home, then on the "
        f"same home after one more day of data landed. The plain script does the same "
        f"computation by hand (see `benchmarks/bench_pipeline.py`): the contract's rules in "
        f"vectorised pandas, the feature SQL in DuckDB, the same seeded search with the same "
        f"pruning, the final fit and the same evaluation numbers (baselines, paired bootstraps, "
        f"slices, calibration, permutation importance); no orchestration, tracking, registry or "
        f"feature store. The platform's wall time includes its helper processes, which work "
        f"on the second core while its own process starts Dagster: the sidecar (validation, "
        f"`feast apply`) and the dbt server (docs/operations.md). On the second run the "
        f"platform also scores the champion from the first run, which the plain script does "
        f"not. Each side is judged on its best run: "
        f"the training, about 80% of both, varies by 10% or more from run to run on this "
        f"shared machine.",
        "",
        f"| run | plain: validation s | plain: features s | plain: split, search "
        f"({spec.model.n_trials} trials), final fit s | plain: evaluation s | plain, all s | "
        f"platform s | ratio | holdout ROC AUC plain / platform |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        f"Target: the platform costs at most {TARGET}x the plain script.",
        "",
        *verdicts,
    ])
