"""Infra validation, run in a fresh process: load a model from its URI as a server would
(pyfunc), score a batch, and report load time, batch latency, peak memory and the input
signature as one JSON line on stdout.

    python -m ml_platform.inference.infra_check MODEL_URI SAMPLE.parquet TRACKING_URI
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits


def _schema(model: Any) -> dict[str, str]:
    schema = model.metadata.get_input_schema()
    if schema is None:
        return {}
    return {spec.name: spec.type.name for spec in schema.inputs}


def peak_rss_mb() -> float:
    """This process's own peak RSS. ru_maxrss is not it: Linux carries the parent's high-water
    mark across fork + exec, so a big parent (a Dagster step holding the training data) would be
    charged to the model. VmHWM belongs to the process's own address space."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def check(
    model_uri: str, sample_path: str, tracking_uri: str, found: dict[str, Any], repeats: int = 5
) -> dict[str, Any]:
    """``found`` collects what is known before a failure (the signature survives a predict
    error, so the parent can still judge it)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(model_uri)
    load_seconds = time.perf_counter() - started
    found["input_schema"] = _schema(model)
    sample = pd.read_parquet(sample_path)
    timings, out = [], None
    # Measured on one native thread, as a server worker on a shared host should run: with
    # all cores, OpenMP contention made the figure swing by 25x with the host's load.
    with threadpool_limits(1):
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = model.predict(sample)
            timings.append((time.perf_counter() - t0) * 1000)
    values = np.asarray(out, dtype=float)
    return {
        "load_seconds": load_seconds,
        "batch_rows": len(sample),
        "batch_latency_ms": sorted(timings)[len(timings) // 2],  # median of the repeats
        "peak_rss_mb": peak_rss_mb(),
        "predictions": len(values),
        "finite": bool(np.isfinite(values).all()),
        "input_schema": found["input_schema"],
        "native_threads": 1,
    }


def main() -> None:
    found: dict[str, Any] = {}
    try:
        model_uri, sample, tracking_uri = sys.argv[1:4]
        print(json.dumps({"ok": True, **check(model_uri, sample, tracking_uri, found=found)}))
    except Exception as exc:  # report any load/predict failure to the parent as data
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:1000], **found}))
        sys.exit(1)


if __name__ == "__main__":
    main()
