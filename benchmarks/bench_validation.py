"""Validation at 1M rows x 20 columns: the platform's whole gate against the same rules written
by hand as a pandera schema plus a Great Expectations checkpoint (target: the platform at most
1.1x their sum), with the bare vectorised-pandas pass as the floor and import time apart.

Method, fixed before any result was seen:
- Data: ``make_frame`` (20 columns shaped like the demo: key, time, label, 10 float with 2% nulls
  in four, 3 int, 4 categorical); the contract is ``infer-contract``'s draft for it (dtypes,
  nulls, ranges, categories, unique key, future timestamps, label domain and classes; null
  fractions, means, quartiles, category sets and frequencies, PSI from the reference profile).
  The batch passes every rule. ``now`` is fixed once for all runs.
- ``platform``: what the validated asset runs before publishing: ``check_contract`` with the
  GX project under a platform home (compiled pandera schema, failure cases read back,
  quarantine, the GX checkpoint with its Data Docs) and the HTML report.
- ``by hand``: a pandera ``DataFrameSchema`` written column by column from the contract's
  values (same dtypes, coercion and built-in checks; the two rules pandera has no built-in for
  as ``pa.Check`` functions), run as its docs show: ``schema.validate(df, lazy=True)``; and a GX
  file context of its own with the suite written expectation by expectation, a validation
  definition and a checkpoint with ``UpdateDataDocsAction``, run on the whole frame. Both sides
  use the same expectation classes and result format (BASIC), including ml_platform's
  category-frequency and PSI expectations (GX has no built-in for either; GX's built-in way of
  the frequency bands is timed once, as context) and its quantile expectation (GX 1.24.1's own
  cannot store its result).
- ``floor``: the same rules as a hand-written vectorised pandas pass (counts and statistics).
- One untimed warm-up run of each (imports, GX contexts, stored suites). Then REPEATS rounds,
  the order rotating each round; the median per side is reported and every run is listed.
  Ratio: median(platform) / (median(pandera by hand) + median(GX by hand)); the median of the
  per-round ratios is given too.
- Where the time goes: inside the same platform runs, the pandera validation with its failure
  cases read back (of which pandera's ``str`` dtype checks), and the GX checkpoint (of which its
  Data Docs action), are timed by wrapping those calls; the rest is each run's total minus the
  two, and medians are taken over runs.
- Import time, in fresh processes: ``import pandera.pandas``, ``import great_expectations``,
  and a first gate call on a 10k-row batch (imports, GX context, stored suite) against a second.
"""

from __future__ import annotations

import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.contracts import Contract, profile

ROWS = int(os.environ.get("BENCH_VALIDATION_ROWS", "1000000"))
REPEATS = int(os.environ.get("BENCH_VALIDATION_REPEATS", "5"))
ROOT = Path(__file__).resolve().parent.parent


def make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """20 columns shaped like the demo: key, time, label, 10 float, 3 int, 4 categorical."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    data: dict[str, object] = {
        "customer_id": rng.permutation(n).astype("int64"),
        "applied_at": start + pd.to_timedelta(rng.integers(0, 86_400 * 120, n), unit="s"),
        "defaulted": (rng.random(n) < 0.1).astype("int64"),
    }
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


def _contract(df: pd.DataFrame) -> Contract:
    from ml_platform.contracts.infer import infer_contract
    from ml_platform_tests.helpers import small_spec

    return infer_contract(small_spec(), df, source="bench")


# -- the floor ----------------------------------------------------------------------------------


def plain_pass(c: Contract, df: pd.DataFrame, now: pd.Timestamp) -> dict[str, float]:
    """The same rules written by hand with vectorised pandas: counts and statistics only."""
    out: dict[str, float] = {"rows": len(df), "columns": float(set(df.columns) == set(c.columns))}
    for name, rule in c.columns.items():
        s = df[name]
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
            data = s.to_numpy(dtype="float64", na_value=np.nan)
            data = data[np.isfinite(data)]
            out[f"mean_{name}"] = data.mean()
            qs = list(d.quantiles)
            out |= {f"q{q}_{name}": v for q, v in zip(qs, np.quantile(data, qs), strict=True)}
            if ref is not None:
                hist = np.bincount(
                    np.searchsorted(np.asarray(ref.edges[1:-1]), data), minlength=len(ref.fractions)
                ) / max(len(data), 1)
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


# -- by hand: a pandera schema and a GX checkpoint, written directly ----------------------------


def hand_schema(c: Contract, now: pd.Timestamp) -> Any:
    import pandera.pandas as pa

    dtypes = {
        "int": "Int64",
        "float": "float64",
        "string": "str",
        "datetime": "datetime64[ns, UTC]",
    }
    columns = {}
    for name, rule in c.columns.items():
        checks = []
        if rule.dtype == "float":
            checks.append(pa.Check.in_range(-sys.float_info.max, sys.float_info.max))
        if rule.min is not None and rule.max is not None:
            checks.append(pa.Check.in_range(rule.min, rule.max))
        if rule.allowed is not None:
            checks.append(pa.Check.isin(rule.allowed))
        if name == c.event_timestamp:
            checks.append(pa.Check.le(now + pd.Timedelta(seconds=c.max_future_seconds)))
        if name == c.label.column:
            checks += [
                pa.Check.isin(c.label.values),
                pa.Check(lambda s: s.nunique() >= c.label.min_classes),
            ]
        columns[name] = pa.Column(
            dtypes[rule.dtype],
            checks,
            nullable=rule.nullable,
            coerce=rule.dtype in ("int", "float"),
        )
    return pa.DataFrameSchema(columns, strict=True, unique=c.unique)


def hand_checkpoint(c: Contract, root: Path) -> Any:
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from ml_platform.contracts import gx_expectations as ml

    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("pandas")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = gx.ExpectationSuite(name="by_hand")
    d = c.distribution
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=d.min_rows))
    for name, r in d.columns.items():
        suite.add_expectation(
            gxe.ExpectColumnValuesToNotBeNull(column=name, mostly=1 - r.max_null_fraction)
        )
        ref = c.reference.columns.get(name)
        if r.mean is not None:
            suite.add_expectation(
                gxe.ExpectColumnMeanToBeBetween(
                    column=name, min_value=r.mean[0], max_value=r.mean[1]
                )
            )
            qs = sorted(r.quantiles)
            suite.add_expectation(
                ml.ExpectColumnQuantileValuesWithinRanges(
                    column=name,
                    quantile_ranges={
                        "quantiles": qs,
                        "value_ranges": [list(r.quantiles[q]) for q in qs],
                    },
                )
            )
            suite.add_expectation(
                ml.ExpectColumnPsiToBeLessThan(
                    column=name,
                    partition_object={
                        "bins": ref.edges,
                        "weights": list(np.asarray(ref.fractions) / sum(ref.fractions)),
                    },
                    threshold=r.max_distance,
                )
            )
        if r.category_frequency:
            suite.add_expectation(
                gxe.ExpectColumnValuesToBeInSet(column=name, value_set=c.columns[name].allowed)
            )
            suite.add_expectation(
                ml.ExpectColumnCategoryFrequenciesToBeBetween(
                    column=name, frequencies={k: list(v) for k, v in r.category_frequency.items()}
                )
            )
            w = np.asarray(list(ref.categories.values()))
            suite.add_expectation(
                ml.ExpectColumnPsiToBeLessThan(
                    column=name,
                    partition_object={"values": list(ref.categories), "weights": list(w / w.sum())},
                    threshold=r.max_distance,
                )
            )
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="by_hand", data=batch, suite=suite)
    )
    return context.checkpoints.add(
        gx.Checkpoint(
            name="by_hand",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs")],
            result_format={"result_format": "BASIC"},
        )
    )


def builtin_bands_seconds(c: Contract, df: pd.DataFrame) -> tuple[float, int]:
    """GX's built-in way of the category bands (context, one run): per category, values in
    the set with mostly=low and not in it with mostly=1-high."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("p")
        .add_dataframe_asset("a")
        .add_batch_definition_whole_dataframe("b")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="bands"))
    for name, r in c.distribution.columns.items():
        for cat, (low, high) in r.category_frequency.items():
            if low:
                suite.add_expectation(
                    gxe.ExpectColumnValuesToBeInSet(column=name, value_set=[cat], mostly=low)
                )
            if high is not None and high < 1:
                suite.add_expectation(
                    gxe.ExpectColumnValuesToNotBeInSet(
                        column=name, value_set=[cat], mostly=1 - high
                    )
                )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="bands", data=batch, suite=suite)
    )
    started = time.perf_counter()
    definition.run(batch_parameters={"dataframe": df}, result_format="BASIC")
    return time.perf_counter() - started, len(suite.expectations)


# -- timing -------------------------------------------------------------------------------------


class Parts:
    """Times spent inside wrapped functions, per call, while installed."""

    def __init__(self, targets: dict[str, tuple[Any, str]]) -> None:
        self.targets, self.spent = targets, {k: 0.0 for k in targets}

    def __enter__(self) -> Parts:
        self.originals = {}
        for label, (owner, attr) in self.targets.items():
            original = getattr(owner, attr)
            self.originals[label] = original

            @functools.wraps(original)
            def timed(*args: Any, _f: Callable = original, _l: str = label, **kw: Any) -> Any:
                started = time.perf_counter()
                try:
                    return _f(*args, **kw)
                finally:
                    self.spent[_l] += time.perf_counter() - started

            setattr(owner, attr, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        for label, (owner, attr) in self.targets.items():
            setattr(owner, attr, self.originals[label])


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


IMPORTS = {
    "import pandera.pandas": "import pandera.pandas",
    "import great_expectations": "import great_expectations",
    "import ml_platform.contracts (pandera and GX load at the first validation)": (
        "import ml_platform.contracts"
    ),
}
COLD = """
import sys, time, tempfile
from pathlib import Path
started = time.perf_counter()
from benchmarks.bench_validation import make_frame, _contract
from ml_platform.contracts import check_contract
df = make_frame(10_000)
contract = _contract(df)
root = Path(tempfile.mkdtemp())
t0 = time.perf_counter()
check_contract(contract, df, gx_root=root)
first = time.perf_counter() - t0
t1 = time.perf_counter()
check_contract(contract, df, gx_root=root)
print(first, time.perf_counter() - t1, t0 - started)
"""


def import_times() -> dict[str, float]:
    out = {}
    for label, statement in IMPORTS.items():
        code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
        run = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
        )
        out[label] = float(run.stdout.split()[-1])
    run = subprocess.run(
        [sys.executable, "-c", COLD], capture_output=True, text=True, cwd=ROOT, check=True
    )
    first, second, setup = (float(x) for x in run.stdout.split()[-3:])
    out["first gate call in a process, 10k rows (pandera + GX imports, GX context)"] = first
    out["second gate call, same process and batch"] = second
    out["(setup before it: ml_platform, pandas, data)"] = setup
    return out


def run() -> str:
    import great_expectations as gx
    from pandera.engines import pandas_engine

    from ml_platform.contracts import check_contract, distribution_rules, schema_rules
    from ml_platform.contracts.report import write_report

    df = make_frame(ROWS)
    contract = _contract(df)
    now = pd.Timestamp.now(tz="UTC")
    work = Path(tempfile.mkdtemp(prefix="bench_validation_"))
    home, hand_root = work / "home", work / "hand"

    def platform() -> None:
        result = check_contract(contract, df, now, gx_root=home, run_name="bench")
        write_report(home / "reports", "bench", "bench", result, "run")
        assert result.passed, [r.label for r in result.failures]

    schema = hand_schema(contract, now)
    checkpoint = hand_checkpoint(contract, hand_root)

    def by_hand_pandera() -> None:
        schema.validate(df, lazy=True)

    def by_hand_gx() -> None:
        assert checkpoint.run(batch_parameters={"dataframe": df}).success

    sides: dict[str, Callable[[], None]] = {
        "platform": platform,
        "pandera by hand": by_hand_pandera,
        "GX by hand": by_hand_gx,
        "floor": lambda: plain_pass(contract, df, now),
    }
    warm = {name: _timed(fn) for name, fn in sides.items()}
    times: dict[str, list[float]] = {name: [] for name in sides}
    targets = {
        "pandera": (schema_rules, "check"),
        "str dtype checks": (pandas_engine.NpString, "check"),
        "GX checkpoint": (distribution_rules, "run_suite"),
        "Data Docs": (gx.checkpoint.UpdateDataDocsAction, "run"),
    }
    parts: dict[str, list[float]] = {k: [] for k in [*targets, "rest"]}
    names = list(sides)
    for i in range(REPEATS):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            if name != "platform":
                times[name].append(_timed(sides[name]))
                continue
            with Parts(targets) as spent:
                times[name].append(_timed(platform))
            for k in targets:
                parts[k].append(spent.spent[k])
            parts["rest"].append(
                times[name][-1] - spent.spent["pandera"] - spent.spent["GX checkpoint"]
            )
    med = {name: statistics.median(v) for name, v in times.items()}
    hand = med["pandera by hand"] + med["GX by hand"]
    ratio = med["platform"] / hand
    per_round = statistics.median(
        p / (a + b)
        for p, a, b in zip(
            times["platform"], times["pandera by hand"], times["GX by hand"], strict=True
        )
    )
    bands, n_bands = builtin_bands_seconds(contract, df)
    failing = df.assign(int_0=df["int_0"].mask(np.arange(len(df)) % 50 == 0, 10_000))
    fail_time = _timed(
        lambda: check_contract(contract, failing, now, gx_root=home, run_name="bench-failing")
    )
    imports = import_times()
    rules = len(check_contract(contract, df, now).rules)
    part = {k: statistics.median(v) for k, v in parts.items()}
    verdict = "met" if ratio <= 1.1 else "**missed**"

    def row(name: str, label: str, note: str = "") -> str:
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        return (
            f"| {label} | {med[name]:.2f} | {med[name] / hand:.2f}x | {runs} | "
            f"{warm[name]:.2f} | {note} |"
        )

    lines = [
        "## Data validation (issue 13)",
        "",
        f"{ROWS:,} rows x {df.shape[1]} columns, the contract `infer-contract` drafts for them "
        f"({rules} rule results: dtypes, nulls, ranges, categories, unique key, future "
        "timestamps, label domain and classes; null fractions, means, quartiles, category sets "
        "and frequencies, PSI from the reference profile). Same process, same data, "
        f"{REPEATS} interleaved rounds after a warm-up; method in "
        "`benchmarks/bench_validation.py`.",
        "",
        "| side | median s | vs pandera + GX by hand | runs s | warm-up s | what |",
        "|---|---|---|---|---|---|",
        row(
            "platform",
            "**platform gate**",
            "compiled pandera schema (lazy) + failure cases "
            "read back + quarantine + GX checkpoint with Data Docs + HTML report",
        ),
        row("pandera by hand", "pandera schema by hand", "`schema.validate(df, lazy=True)`"),
        row(
            "GX by hand",
            "GX checkpoint by hand",
            "file context, same expectations, UpdateDataDocsAction, whole frame",
        ),
        f"| pandera + GX by hand | {hand:.2f} | 1.00x | | | the sum |",
        row("floor", "vectorised pandas (floor)", "the same rules' counts and statistics"),
        "",
        f"**platform / (pandera + GX by hand) = {ratio:.2f}x** (median of per-round ratios "
        f"{per_round:.2f}x); target at most 1.1x: {verdict}. The platform takes "
        f"{med['platform'] / med['floor']:.1f}x the floor.",
        "",
        "Where the platform's time goes (medians over the same runs): pandera validation with "
        f"its failure cases read back {part['pandera']:.2f} s (of which pandera's `str` dtype "
        f"checks, each value's type in the 4 string columns, {part['str dtype checks']:.2f} s); "
        f"the GX checkpoint {part['GX checkpoint']:.2f} s (of which its Data Docs action "
        f"{part['Data Docs']:.2f} s); the rest (schema compilation, quarantine, results, "
        f"report) {part['rest']:.2f} s.",
        "",
        "Context, one run each:",
        f"- GX's built-in way of the category bands ({n_bands} `ExpectColumnValuesToBeInSet` / "
        f"`...NotToBeInSet` with `mostly`, per category and bound): {bands:.2f} s on its own; "
        "the platform's one-expectation-per-column frequencies share GX's `column.value_counts`.",
        f"- The platform on a failing batch (2% of rows out of range in one int column, "
        f"{len(df) // 50:,} failure cases): {fail_time:.2f} s.",
        "",
        "Import and first-call time (fresh processes, outside the figures above):",
        "",
        "| what | s |",
        "|---|---|",
        *[f"| {k} | {v:.2f} |" for k, v in imports.items()],
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
