"""Schema rules: the compiled pandera schema validated lazily, its failure cases read back.

``pandera_schema`` compiles the contract into a ``pa.DataFrameSchema``; here it validates the
batch with ``lazy=True`` so that every failure is collected in ``SchemaErrors.failure_cases``.
Each failure case names its column, check and row index: grouped by the contract rule the check
implements, they give the failing rows (row masks for quarantine), the fraction and a sample of
failing values for the report.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.contracts.model import Contract
from ml_platform.contracts.pandera_schema import (
    FIXES,
    METADATA_COLUMNS,
    CompiledSchema,
    Rule,
    compile_schema,
    dtype_of,
)
from ml_platform.contracts.results import SAMPLE_SIZE, RuleResult, jsonable

__all__ = ["METADATA_COLUMNS", "SchemaCheck", "check"]
STRUCTURE = {
    "column_in_dataframe": "column_present",
    "column_in_schema": "no_extra_column",
    "column_ordered": "column_order",
}


@dataclass
class SchemaCheck:
    results: list[RuleResult]
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # rule label -> ok mask
    usable_columns: set[str] = field(default_factory=set)  # present with the right type


def check(contract: Contract, frame: pd.DataFrame, now: pd.Timestamp | None = None) -> SchemaCheck:
    """Validate ``frame`` (indexed 0..n-1) against the contract's pandera schema."""
    from pandera.errors import SchemaErrors

    compiled = compile_schema(contract, now)
    schema, text_times = compiled.schema, _not_datetimes(contract, frame)
    if text_times:
        # pandera looks for the failure cases of a wrong dtype by converting every value on
        # its own: pd.to_datetime per value, minutes for a large batch of timestamps as text.
        # The dtype of such a column is checked here instead (one failure for the column).
        schema = schema.update_columns({name: {"dtype": None} for name in text_times})
    try:
        schema.validate(_timestamps_in_ns_utc(contract, frame), lazy=True, inplace=True)
        cases = pd.DataFrame(
            columns=["schema_context", "column", "check", "check_number", "failure_case", "index"]
        )
    except SchemaErrors as exc:
        cases = exc.failure_cases
    except Exception as exc:  # noqa: BLE001 - pandera itself failed: the gate fails closed
        message = (
            f"pandera could not validate the batch: {exc!r}. Fix: report it with the "
            "batch; the rules above this one were not evaluated"
        )
        return SchemaCheck([RuleResult("schema", None, False, len(frame), 1.0, [], message)])
    # pandera's validation leaves reference cycles that hold its coerced copies of columns;
    # free them now rather than at a later full collection, before the next checks allocate.
    gc.collect()
    if text_times:
        cases = pd.concat(
            [
                cases,
                pd.DataFrame(
                    {
                        "schema_context": "Column",
                        "column": text_times,
                        "check": [
                            f"dtype('{dtype_of(contract.columns[n])[0]}')" for n in text_times
                        ],
                        "check_number": None,
                        "failure_case": [str(frame[n].dtype) for n in text_times],
                        "index": None,
                    }
                ),
            ],
            ignore_index=True,
        )
    return _Reader(contract, compiled, frame).read(cases)


def _not_datetimes(contract: Contract, frame: pd.DataFrame) -> list[str]:
    """Columns the contract declares as timestamps (with a known kind) that arrived as another
    type."""
    return [
        name
        for name, rule in contract.columns.items()
        if rule.dtype == "datetime"
        and rule.timezone_aware is not None
        and name in frame.columns
        and not pd.api.types.is_datetime64_any_dtype(frame[name])
    ]


def _timestamps_in_ns_utc(contract: Contract, frame: pd.DataFrame) -> pd.DataFrame:
    """A shallow copy for pandera (its coercion to Int64 / float64 replaces columns of the copy
    only: the published batch keeps the dtypes it was read with), with tz-aware timestamps in
    UTC nanoseconds. The schema declares ``datetime64[ns, UTC]``; readers deliver other units
    (DuckDB's CSV reader: microseconds) or zones, and the publisher converts to UTC anyway."""
    out = frame.copy(deep=False)
    for name, rule in contract.columns.items():
        if rule.dtype != "datetime" or name not in out.columns:
            continue
        s = out[name]
        if not pd.api.types.is_datetime64_any_dtype(s):
            continue
        if s.dt.tz is not None and str(s.dt.tz) != "UTC" and rule.timezone_aware:
            s = s.dt.tz_convert("UTC")
        if getattr(s.dtype, "unit", "ns") != "ns":
            s = s.dt.as_unit("ns")
        if s is not out[name]:
            out[name] = s
    return out


def _message(count: int, n: int, column: str | None, what: str, sample: list[Any], fix: str) -> str:
    where = f" of '{column}'" if column and "," not in column else ""
    text = f"{count} of {n} rows ({count / max(n, 1):.2%}){where} {what}"
    return text + (f"; e.g. {sample}" if sample else "") + (f". Fix: {fix}" if fix else "")


class _Reader:
    """Turns pandera's failure cases into one RuleResult per contract rule."""

    def __init__(self, contract: Contract, compiled: CompiledSchema, frame: pd.DataFrame) -> None:
        self.contract, self.compiled, self.frame = contract, compiled, frame
        self.n = len(frame)
        self.results: list[RuleResult] = []
        self.masks: dict[str, np.ndarray] = {}
        self.unusable: set[str] = set()

    def read(self, cases: pd.DataFrame) -> SchemaCheck:
        context = cases["schema_context"].astype(str)
        check = cases["check"].astype(str)
        structural = check.isin(list(STRUCTURE))
        typed = check.str.startswith(("dtype(", "coerce_dtype("))
        self._structure(cases[structural])
        self._dtypes(cases[typed])
        rest = cases[~structural & ~typed]
        failing = self._group(rest, context[~structural & ~typed])
        for rule in self.compiled.value_rules:
            if self._applies(rule):
                self.results.append(self._result(rule, failing.get(rule)))
        usable = {c for c in self.contract.columns if c in self.frame.columns} - self.unusable
        return SchemaCheck(self.results, self.masks, usable)

    def _applies(self, rule: Rule) -> bool:
        """Rules on a missing or mistyped column are not evaluated (the dtype failure says
        why): their checks ran on the wrong type, or not at all."""
        return not set((rule.column or "").split(",")) & self.unusable

    def _structure(self, cases: pd.DataFrame) -> None:
        for check, name in zip(cases["check"].astype(str), cases["failure_case"], strict=True):
            rule = STRUCTURE[check]
            if rule == "column_present":
                self.unusable.add(str(name))
                what = f"required column '{name}' is missing"
            elif rule == "no_extra_column":
                what = f"column '{name}' is not in the contract"
            else:
                what = f"columns are not in the contract's order: {name}"
            column = None if rule == "column_order" else str(name)
            self.results.append(
                RuleResult(rule, column, False, self.n, 1.0, [], f"{what}. Fix: {FIXES[rule]}")
            )

    def _dtypes(self, cases: pd.DataFrame) -> None:
        for column, group in cases.groupby("column", sort=False):
            name = str(column)
            self.unusable.add(name)
            spec = self.contract.columns.get(name)
            got = self.frame[name].dtype if name in self.frame.columns else "?"
            rows = _positions(group["index"])
            if len(rows) and len(rows) < self.n:  # values that cannot be read as the type
                sample = [jsonable(v) for v in _ordered_sample(group)]
                what = (
                    f"are not {spec.dtype if spec else 'of the declared type'} (column dtype {got})"
                )
                self.results.append(
                    RuleResult(
                        "dtype",
                        name,
                        False,
                        len(rows),
                        len(rows) / max(self.n, 1),
                        sample,
                        _message(len(rows), self.n, name, what, sample, FIXES["dtype"]),
                    )
                )
                continue
            rule, want = self._type_rule(name, got)
            self.results.append(
                RuleResult(
                    rule,
                    name,
                    False,
                    self.n,
                    1.0,
                    [str(got)],
                    f"column '{name}': expected {want}, got dtype {got}. Fix: {FIXES[rule]}",
                )
            )

    def _type_rule(self, name: str, got: Any) -> tuple[str, str]:
        spec = self.contract.columns[name]
        if (
            spec.dtype == "datetime"
            and spec.timezone_aware is not None
            and pd.api.types.is_datetime64_any_dtype(got)
        ):
            tz = getattr(got, "tz", None)
            if (tz is not None) != spec.timezone_aware or (tz is not None and str(tz) != "UTC"):
                return "timezone", (
                    "timezone-aware UTC timestamps"
                    if spec.timezone_aware
                    else "tz-naive timestamps"
                )
        return "dtype", f"{spec.dtype} ({dtype_of(spec)[0] or 'any datetime'})"

    def _group(self, cases: pd.DataFrame, context: pd.Series) -> dict[Rule, pd.DataFrame]:
        """Failure cases by the contract rule whose check produced them."""
        compiled = self.compiled
        out: dict[Rule, list[pd.DataFrame]] = {}
        table = context == "DataFrameSchema"
        numbers = pd.to_numeric(cases["check_number"], errors="coerce")
        keys = pd.DataFrame(
            {
                "table": table,
                "column": cases["column"].astype(str),
                "check": cases["check"].astype(str),
                "number": numbers,
            }
        )
        for (is_table, column, check, number), group in cases.groupby(
            [keys["table"], keys["column"], keys["check"], keys["number"]], sort=False, dropna=False
        ):
            rule: Rule | None
            if check == "not_nullable":
                rule = compiled.not_null.get(column)
            elif check == "multiple_fields_uniqueness":
                rule = compiled.unique
            elif pd.isna(number):
                rule = None
            elif is_table:
                rule = compiled.frame_checks.get(int(number))
            else:
                rule = compiled.column_checks.get((column, int(number)))
            if rule is None:
                rule = Rule("schema", None, f"failed pandera check {check} ({column})")
            out.setdefault(rule, []).append(group)
        return {rule: pd.concat(groups) for rule, groups in out.items()}

    def _result(self, rule: Rule, cases: pd.DataFrame | None) -> RuleResult:
        if cases is None or cases.empty:
            return RuleResult(rule.rule, rule.column, True, policy=rule.policy)
        rows = _positions(cases["index"])
        if not len(rows):  # a batch-level check, or a check that raised
            case = str(cases["failure_case"].iloc[0])
            # a False beside null failure cases (a float column of them) reads back as 0.0
            failed = case in ("False", "false", "0.0", "0")
            what = rule.what if failed else f"the check raised {case}"
            return RuleResult(
                rule.rule,
                rule.column,
                False,
                self.n,
                1.0,
                [],
                f"{what}. Fix: {rule.fix}" if rule.fix else what,
            )
        ok = np.ones(self.n, dtype=bool)
        ok[rows] = False
        self.masks[rule.label] = ok
        sample = self._sample(rule, rows, cases)
        return RuleResult(
            rule.rule,
            rule.column,
            False,
            len(rows),
            len(rows) / max(self.n, 1),
            sample,
            _message(len(rows), self.n, rule.column, rule.what, sample, rule.fix),
            policy=rule.policy,
        )

    def _sample(self, rule: Rule, rows: np.ndarray, cases: pd.DataFrame) -> list[Any]:
        column = rule.column or ""
        if "," in column:  # a key: show the key of the first failing rows
            key = [c for c in column.split(",") if c in self.frame.columns]
            shown = self.frame.iloc[rows[:SAMPLE_SIZE]][key]
            return [str(tuple(jsonable(v) for v in r)) for r in shown.itertuples(index=False)]
        if column in self.frame.columns:  # the values as landed (before any coercion)
            return [jsonable(v) for v in self.frame[column].to_numpy()[rows[:SAMPLE_SIZE]]]
        return [jsonable(v) for v in _ordered_sample(cases)]


def _positions(index: pd.Series) -> np.ndarray:
    """Distinct row positions of failure cases (the frame is indexed 0..n-1), sorted."""
    values = pd.to_numeric(index, errors="coerce").dropna()
    return np.unique(values.to_numpy(dtype=np.int64))


def _ordered_sample(cases: pd.DataFrame) -> list[Any]:
    order = pd.to_numeric(cases["index"], errors="coerce").fillna(-1).to_numpy()
    values = cases["failure_case"].to_numpy()[np.argsort(order, kind="stable")]
    return list(values[:SAMPLE_SIZE])
