"""Infra validation gates: the artifact loads in a fresh process (as a server would load it),
predicts a batch within the spec's latency and memory budgets, and its signature is exactly the
feature service's columns and types."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from ml_platform.core import training
from ml_platform.pipeline.gate import Gate
from ml_platform.spec import PipelineSpec

INFRA, SIGNATURE = "infra_valid", "signature_matches_features"
GATES = (INFRA, SIGNATURE)
BATCH_ROWS = 1_000
TIMEOUT_SECONDS = 300


def run_check(model_uri: str, tracking_uri: str, sample: pd.DataFrame,
              timeout: float = TIMEOUT_SECONDS) -> dict[str, Any]:
    """Run ``ml_platform.inference.infra_check`` in a new interpreter; its JSON verdict."""
    with tempfile.TemporaryDirectory(prefix="infra-") as tmp:
        sample_path = Path(tmp) / "sample.parquet"
        sample.to_parquet(sample_path, index=False)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "ml_platform.inference.infra_check", model_uri,
                 str(sample_path), tracking_uri], capture_output=True, text=True,
                timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"no answer within {timeout:.0f} s"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {"ok": False, "error": proc.stderr.strip()[-500:] or
                f"exit code {proc.returncode}, no output"}


def expected_schema(spec: PipelineSpec) -> dict[str, str]:
    """What the feature service serves: numeric features as double, categoricals as string."""
    return {**{c: "double" for c in spec.features.model_numeric},
            **{c: "string" for c in spec.features.categorical}}


def signature_gate(spec: PipelineSpec, schema: dict[str, str]) -> Gate:
    expected = expected_schema(spec)
    problems = []
    if not schema:
        problems.append("the artifact has no input signature")
    missing, extra = sorted(set(expected) - set(schema)), sorted(set(schema) - set(expected))
    if schema and missing:
        problems.append(f"signature lacks feature columns {missing}")
    if extra:
        problems.append(f"signature has columns the feature service does not serve {extra}")
    problems += [f"column '{c}' is {schema[c]} in the signature, the feature service serves "
                 f"{t}" for c, t in expected.items() if c in schema and schema[c] != t]
    message = "; ".join(problems) or f"signature = the {len(expected)} feature columns and types"
    return Gate(SIGNATURE, not problems, message, {"signature": schema, "expected": expected})


def budget_gate(spec: PipelineSpec, result: dict[str, Any]) -> Gate:
    problems = []
    if result["predictions"] != result["batch_rows"] or not result["finite"]:
        problems.append(f"{result['predictions']} predictions for {result['batch_rows']} rows "
                        f"(all finite: {result['finite']})")
    if result["batch_latency_ms"] > spec.gates.max_latency_ms:
        problems.append(f"latency {result['batch_latency_ms']:.1f} ms > "
                        f"{spec.gates.max_latency_ms} ms per {BATCH_ROWS:,} rows")
    if result["peak_rss_mb"] > spec.gates.max_memory_mb:
        problems.append(f"peak memory {result['peak_rss_mb']:.0f} MB > "
                        f"{spec.gates.max_memory_mb} MB")
    message = "; ".join(problems) or (
        f"loaded in a fresh process in {result['load_seconds']:.2f} s; {result['batch_rows']:,} "
        f"rows in {result['batch_latency_ms']:.1f} ms; peak {result['peak_rss_mb']:.0f} MB")
    return Gate(INFRA, not problems, message, result)


def infra_gates(spec: PipelineSpec, model_uri: str, tracking_uri: str, holdout: pd.DataFrame
                ) -> list[Gate]:
    sample = training.features_of(holdout.head(BATCH_ROWS), spec)
    result = run_check(model_uri, tracking_uri, sample)
    if not result.get("ok"):
        why = f"the artifact failed to load or predict in a fresh process: {result.get('error')}"
        signature = (signature_gate(spec, result["input_schema"]) if "input_schema" in result
                     else Gate(SIGNATURE, False, f"not evaluated: {why}"))
        return [Gate(INFRA, False, why, result), signature]
    return [budget_gate(spec, result), signature_gate(spec, result["input_schema"])]
