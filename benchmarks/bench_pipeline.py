"""Issue 2: the demo pipeline's wall time at 1M events against a plain script doing the same
computation (same data, same features, same model and search budget; no orchestration, no
tracking, no gates). Target: the platform costs at most 1.25x the plain script."""

from __future__ import annotations

import glob
import os
import tempfile
import time
from pathlib import Path

EVENTS = int(os.environ.get("BENCH_PIPELINE_EVENTS", "1000000"))


def plain_script(files: list[str], spec) -> float:  # noqa: ANN001 - a PipelineSpec
    """What an engineer would write by hand: DuckDB features, time split, Optuna, sklearn."""
    import duckdb
    import optuna
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.utils.class_weight import compute_sample_weight

    from ml_platform.spec import resolve_import

    aggs = ", ".join(
        f"{'COUNT(*)' if a.agg == 'count' else dict(sum='SUM', mean='AVG', max='MAX')[a.agg]}"
        f"{'' if a.agg == 'count' else f'({a.column})'} OVER (PARTITION BY customer_id "
        f"ORDER BY applied_at RANGE BETWEEN {a.window_sql} PRECEDING AND CURRENT ROW) "
        f"AS {a.name}" for a in spec.features.aggregates)
    frame = duckdb.execute(f"SELECT *, {aggs} FROM read_parquet(?)", [files]).df()
    frame = frame.sort_values(["applied_at", "customer_id"]).reset_index(drop=True)
    n = len(frame)
    test_start = frame["applied_at"].iloc[int(n * 0.85)]
    val_start = frame["applied_at"].iloc[int(n * 0.70)]
    train = frame[frame["applied_at"] < val_start]
    val = frame[(frame["applied_at"] >= val_start) & (frame["applied_at"] < test_start)]
    test = frame[frame["applied_at"] >= test_start]
    numeric, categorical = spec.features.model_numeric, spec.features.categorical

    def model(params: dict) -> Pipeline:
        pre = ColumnTransformer([
            ("num", SimpleImputer(strategy="median"), numeric),
            ("cat", Pipeline([("i", SimpleImputer(strategy="constant", fill_value="_")),
                              ("o", OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                                                  min_frequency=5))]), categorical)])
        est = resolve_import(spec.model.estimator)(**spec.model.params, **params,
                                                   random_state=spec.seed)
        return Pipeline([("pre", pre), ("model", est)])

    def fit(params: dict, data) -> Pipeline:  # noqa: ANN001
        y = data[spec.label].to_numpy()
        return model(params).fit(data[numeric + categorical], y,
                                 model__sample_weight=compute_sample_weight("balanced", y))

    def objective(trial: optuna.Trial) -> float:
        params = {"learning_rate": trial.suggest_float("learning_rate", 0.03, 0.3, log=True),
                  "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 8, 48),
                  "l2_regularization": trial.suggest_float("l2_regularization", 0.0, 1.0)}
        scores = fit(params, train).predict_proba(val[numeric + categorical])[:, 1]
        return roc_auc_score(val[spec.label], scores)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=spec.seed))
    study.optimize(objective, n_trials=spec.model.n_trials)
    final = fit(study.best_params, frame[frame["applied_at"] < test_start])
    scores = final.predict_proba(test[numeric + categorical])[:, 1]
    return float(roc_auc_score(test[spec.label], scores))


def run() -> str:
    from rich.console import Console

    from ml_platform.core.datagen import GeneratorConfig, land
    from ml_platform.home import platform_home
    from ml_platform.runner import run_pipeline
    from ml_platform.spec import load_spec_file

    spec_file = Path(__file__).resolve().parent.parent / "ml_platform/defs/pipelines/loan_default"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ML_PLATFORM_HOME"] = str(Path(tmp) / "home")
        home = platform_home().ensure()
        land(GeneratorConfig(events=EVENTS, days=120), home.landing / "loan_default")
        files = sorted(glob.glob(str(home.landing / "loan_default" / "*.parquet")))
        spec = load_spec_file(spec_file / "defs.yaml")

        started = time.perf_counter()
        plain_auc = plain_script(files, spec)
        plain = time.perf_counter() - started

        started = time.perf_counter()
        ok = run_pipeline(spec, Console(quiet=True))
        platform = time.perf_counter() - started
    ratio = platform / plain
    verdict = "meets" if ok and ratio <= 1.25 else "MISSES"
    return (f"## Demo pipeline vs a plain script ({EVENTS:,} events)\n\n"
            f"| | wall time | holdout ROC AUC |\n|---|---|---|\n"
            f"| plain script (DuckDB + Optuna + sklearn, no tracking) | {plain:.1f} s | "
            f"{plain_auc:.4f} |\n"
            f"| `ml-platform run loan_default` (validation, features, tracked tuning, "
            f"evaluation gates, registry) | {platform:.1f} s | see run |\n\n"
            f"Ratio platform / plain: **{ratio:.2f}x** (target <= 1.25x: {verdict}; "
            f"run {'succeeded' if ok else 'FAILED'}).")
