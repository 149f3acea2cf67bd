"""Validating 1M rows x 20 columns with the full data contract, against a plain vectorised
pandas pass over the same rules (issue 3: target at most 2x the plain pass)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from ml_platform.contracts import Contract, check_contract, profile
from ml_platform.contracts.infer import infer_contract
from ml_platform_tests.conftest import small_spec

ROWS = int(os.environ.get("BENCH_VALIDATION_ROWS", "1000000"))
REPEATS = 3


def make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """20 columns shaped like the demo: key, time, label, 10 float, 3 int, 4 categorical."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    data: dict[str, object] = {
        "customer_id": rng.permutation(n).astype("int64"),
        "applied_at": start + pd.to_timedelta(rng.integers(0, 86_400 * 120, n), unit="s"),
        "defaulted": (rng.random(n) < 0.1).astype("int64")}
    for i in range(10):
        col = rng.lognormal(8 + i * 0.1, 0.6, n)
        if i % 3 == 0:
            col[rng.random(n) < 0.02] = np.nan
        data[f"num_{i}"] = col
    for i in range(3):
        data[f"int_{i}"] = rng.integers(0, 100 * (i + 1), n)
    for i, k in enumerate((4, 6, 8, 12)):
        cats = np.array([f"cat_{i}_{j}" for j in range(k)], dtype=object)
        data[f"cat_{i}"] = cats[rng.integers(0, k, n)]
    return pd.DataFrame(data)


def plain_pass(c: Contract, df: pd.DataFrame, now: pd.Timestamp) -> dict[str, float]:
    """The same rules written by hand with vectorised pandas: counts and statistics only."""
    out: dict[str, float] = {"rows": len(df)}
    out["columns"] = float(set(df.columns) == set(c.columns))
    for name, rule in c.columns.items():
        s = df[name]
        out[f"dtype_{name}"] = float(str(s.dtype) != "")
        isna = s.isna()
        if not rule.nullable:
            out[f"null_{name}"] = isna.sum()
        if rule.dtype == "float":
            out[f"inf_{name}"] = np.isinf(s.to_numpy()).sum()
        if rule.min is not None or rule.max is not None:
            out[f"range_{name}"] = (~s.between(rule.min, rule.max) & ~isna).sum()
        if rule.allowed is not None:
            out[f"allowed_{name}"] = (~s.isin(rule.allowed) & ~isna).sum()
        d = c.distribution.columns.get(name)
        if d is None:
            continue
        out[f"nullfrac_{name}"] = isna.mean()
        ref = c.reference.columns.get(name) if c.reference else None
        if d.mean is not None:
            # one finite float array per column, reused for mean, quantiles and histogram
            data = s.to_numpy(dtype="float64", na_value=np.nan)
            data = data[np.isfinite(data)]
            out[f"mean_{name}"] = data.mean()
            qs = list(d.quantiles)
            out |= {f"q{q}_{name}": v for q, v in zip(qs, np.quantile(data, qs), strict=True)}
            if ref is not None:
                hist = np.bincount(np.searchsorted(np.asarray(ref.edges[1:-1]), data),
                                   minlength=len(ref.fractions)) / max(len(data), 1)
                out[f"psi_{name}"] = profile.psi(np.array(ref.fractions), hist)
        if d.category_frequency:
            freq = s.value_counts(normalize=True)
            out |= {f"freq_{k}": freq.get(k, 0.0) for k in d.category_frequency}
            if ref is not None:
                p = np.array(list(ref.categories.values()))
                q = np.array([freq.get(k, 0.0) for k in ref.categories])
                out[f"psi_{name}"] = profile.psi(p, q)
    out["future"] = (df[c.event_timestamp] > now + pd.Timedelta(seconds=300)).sum()
    out["dupes"] = df.duplicated(c.unique).sum()
    out["label"] = (~df[c.label.column].isin(c.label.values)).sum()
    out["classes"] = df[c.label.column].nunique()
    return out


def _best(fn: Callable[[], object]) -> tuple[float, float]:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


def _pandera_default(c: Contract, df: pd.DataFrame) -> None:
    """pandera used the obvious way (built-in checks, default options), for context."""
    import pandera.pandas as pa

    cols = {}
    for name, rule in c.columns.items():
        checks = []
        if rule.min is not None:
            checks.append(pa.Check.in_range(rule.min, rule.max))
        if rule.allowed is not None:
            checks.append(pa.Check.isin(rule.allowed))
        cols[name] = pa.Column(None, checks, nullable=rule.nullable)
    pa.DataFrameSchema(cols, unique=c.unique, strict=True).validate(df, lazy=True)


def run() -> str:
    df = make_frame(ROWS)
    contract = infer_contract(small_spec(), df, source="bench")
    now = pd.Timestamp.now(tz="UTC")
    started = time.perf_counter()
    first = check_contract(contract, df, now)  # imports pandera + GX, builds the GX context
    cold = time.perf_counter() - started
    assert first.passed, [r.label for r in first.failures]
    plain_best, plain_med = _best(lambda: plain_pass(contract, df, now))
    ours_best, ours_med = _best(lambda: check_contract(contract, df, now))
    pandera_best, _ = _best(lambda: _pandera_default(contract, df))
    rules = len(first.rules)
    return "\n".join([
        "## Data validation (issue 3)",
        "",
        f"{ROWS:,} rows x {df.shape[1]} columns, the full contract inferred from the frame "
        f"({rules} rules: dtypes, nulls, ranges, categories, unique key, future timestamps, "
        "label domain and classes; null fractions, means, quartiles, category frequencies, "
        "PSI against the reference profile). Best of "
        f"{REPEATS}, same process, same data.",
        "",
        "| pass | best s | median s | ratio to plain |",
        "|---|---|---|---|",
        f"| plain vectorised pandas (baseline) | {plain_best:.3f} | {plain_med:.3f} | 1.00x |",
        f"| ml_platform `check_contract` (pandera + GX) | {ours_best:.3f} | {ours_med:.3f} | "
        f"**{ours_best / plain_best:.2f}x** |",
        f"| pandera, default usage, schema rules only (context) | {pandera_best:.3f} | | "
        f"{pandera_best / plain_best:.2f}x |",
        "",
        f"Target: at most 2x the plain pass. First call in a process (imports pandera and "
        f"Great Expectations, builds the GX context): {cold:.1f} s, paid once per process.",
    ])


if __name__ == "__main__":
    print(run())
