"""Infra validation, run in a fresh process: load a model from its URI, score a batch, and report
load time, batch latency and peak memory as JSON on stdout.

    python -m ml_platform.inference.infra_check MODEL_URI SAMPLE.parquet TRACKING_URI
"""

from __future__ import annotations

import json
import resource
import sys
import time

import pandas as pd


def check(model_uri: str, sample_path: str, tracking_uri: str, repeats: int = 5) -> dict:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(model_uri)
    load_seconds = time.perf_counter() - started
    sample = pd.read_parquet(sample_path)
    timings = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = model.predict(sample)
        timings.append((time.perf_counter() - t0) * 1000)
    schema = model.metadata.get_input_schema()
    return {
        "load_seconds": load_seconds,
        "batch_rows": len(sample),
        "batch_latency_ms": sorted(timings)[len(timings) // 2],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "predictions": len(out),
        "input_columns": schema.input_names() if schema else [],
    }


def main() -> None:
    try:
        print(json.dumps({"ok": True, **check(*sys.argv[1:4])}))
    except Exception as exc:  # report any load/predict failure to the parent as data
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
        sys.exit(1)


if __name__ == "__main__":
    main()
