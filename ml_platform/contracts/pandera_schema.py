"""The contract's schema rules compiled into a pandera ``DataFrameSchema`` (pandera.pandas).

Each contract column becomes a ``pa.Column`` with a real dtype and pandera's built-in checks
(``in_range``, ``isin``, ``nullable``, table-level ``unique``, ``strict``, ``ordered``), so the
schema can be exported with ``to_yaml`` / ``to_script`` and reused in a notebook. A few rules
have no built-in equivalent (an event time not in the future relative to *now*, the minimum
number of label classes, user functions); they are vectorised ``pa.Check`` objects in the gate's
schema and are left out of the portable (exported) one, which lists them in ``skipped``.

Every check is recorded with the contract rule it implements, so pandera's failure cases map
back to our report (``schema_rules``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.contracts.model import ColumnRule, Contract, CustomCheck
from ml_platform.spec import resolve_import

METADATA_COLUMNS = ("_source_file",)  # added by the raw reader, never part of the contract
# Finite <=> within +/- the largest float: a built-in range check that YAML and Python
# scripts can both write (an infinite bound would be written as a bare `inf` in a script).
FLOAT_MAX = sys.float_info.max

# int columns are nullable integers, coerced: an int column read as float because of nulls
# stays an int column (the nulls are reported by not_null), while 2.5 or "n/a" fail the dtype.
DTYPES: dict[str, tuple[str, bool]] = {
    "int": ("Int64", True),
    "float": ("float64", True),
    "bool": ("bool", False),
    "string": ("str", False),
}

FIXES = {
    "column_present": "restore the column upstream, or remove it from the contract's columns "
    "(a renamed column shows up as missing + extra)",
    "no_extra_column": "drop it upstream, declare it under columns:, or set extra_columns: allow",
    "column_order": "send the columns in the contract's order, or set ordered: false",
    "dtype": "fix the values upstream (e.g. text in a numeric column), or change the column's "
    "dtype in the contract",
    "timezone": "write UTC timestamps of the declared kind upstream, or change the column's "
    "timezone_aware",
    "not_null": "fill or drop the null rows upstream, set nullable: true, or on_fail: quarantine",
    "finite": "replace +/-inf upstream (often a division by zero), or on_fail: quarantine",
    "in_range": "correct the rows upstream; if the values are legitimate, widen min/max; or "
    "on_fail: quarantine",
    "allowed_values": "map the category upstream, or add it to allowed (and re-infer the "
    "reference profile)",
    "not_future": "check the producer's clock and time zone; raise max_future_seconds only for "
    "a known skew",
    "label_domain": "correct the labels upstream, or change label.values",
    "label_classes": "the batch holds too few label classes: land more data, or lower "
    "label.min_classes",
    "unique_key": "deduplicate upstream (a file landed twice?), or change unique:",
}


@dataclass(frozen=True)
class Rule:
    """The contract rule a pandera check implements."""

    rule: str
    column: str | None
    what: str  # completes "<n> of <N> rows ...", e.g. "are outside [0, 10]"
    policy: str = "fail"
    fix: str = ""

    @property
    def label(self) -> str:
        return f"{self.rule}({self.column})" if self.column else self.rule


@dataclass
class CompiledSchema:
    schema: Any  # pa.DataFrameSchema
    column_checks: dict[tuple[str, int], Rule] = field(default_factory=dict)
    frame_checks: dict[int, Rule] = field(default_factory=dict)  # table-level checks by number
    not_null: dict[str, Rule] = field(default_factory=dict)
    unique: Rule | None = None
    skipped: list[str] = field(default_factory=list)  # rules a portable schema omits

    @property
    def value_rules(self) -> list[Rule]:
        """Every row- or batch-level value rule, in the order the report lists them."""
        rules = [*self.not_null.values(), *self.column_checks.values()]
        return rules + ([self.unique] if self.unique else []) + list(self.frame_checks.values())


def dtype_of(rule: ColumnRule) -> tuple[str | None, bool]:
    """(pandera dtype, coerce) of a contract column; None when pandera has no single dtype."""
    if rule.dtype == "datetime":
        if rule.timezone_aware is None:
            return None, False  # naive or aware: checked by a custom check, see _any_datetime
        return ("datetime64[ns, UTC]" if rule.timezone_aware else "datetime64[ns]"), False
    return DTYPES[rule.dtype] if rule.dtype else (None, False)


def _any_datetime(series: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(series)


def _not_future(limit: pd.Timestamp, series: pd.Series) -> pd.Series:
    if not pd.api.types.is_datetime64_any_dtype(series):  # timestamps landed as text
        parsed = pd.to_datetime(series, utc=True, errors="coerce", format="mixed")
        return parsed.isna() | (parsed <= limit)  # unparseable: the event_timestamp_parse rule
    if getattr(series.dtype, "tz", None) is None:
        limit = limit.tz_convert("UTC").tz_localize(None)  # naive values are taken as UTC
    return series <= limit


def _bounds(lo: float | None, hi: float | None) -> Any:
    import pandera.pandas as pa

    if lo is not None and hi is not None:
        return pa.Check.in_range(lo, hi)
    return pa.Check.ge(lo) if lo is not None else pa.Check.le(hi)


class _Builder:
    def __init__(self, contract: Contract, now: pd.Timestamp, portable: bool) -> None:
        self.contract, self.now, self.portable = contract, now, portable
        self.out = CompiledSchema(schema=None)

    def rule(
        self,
        rule: str,
        column: str | None,
        what: str,
        policy: str | None = None,
        fix: str | None = None,
    ) -> Rule:
        return Rule(
            rule,
            column,
            what,
            policy or self.contract.policy(column),
            fix if fix is not None else FIXES.get(rule, ""),
        )

    def skip(self, description: str) -> None:
        self.out.skipped.append(description)

    def column(self, name: str, spec: ColumnRule) -> Any:
        import pandera.pandas as pa

        dtype, coerce = dtype_of(spec)
        checks: list[tuple[Any, Rule]] = []
        if spec.dtype == "datetime" and dtype is None:
            if self.portable:
                self.skip(f"dtype({name}): a datetime column of either kind (set timezone_aware)")
            else:
                checks.append(
                    (
                        pa.Check(_any_datetime, name="dtype"),
                        self.rule("dtype", name, "are not datetimes", "fail"),
                    )
                )
        if spec.dtype == "float":
            checks.append(
                (pa.Check.in_range(-FLOAT_MAX, FLOAT_MAX), self.rule("finite", name, "are +/-inf"))
            )
        if spec.min is not None or spec.max is not None:
            checks.append(
                (
                    _bounds(spec.min, spec.max),
                    self.rule("in_range", name, f"are outside [{spec.min}, {spec.max}]"),
                )
            )
        if spec.allowed is not None:
            checks.append(
                (
                    pa.Check.isin(list(spec.allowed)),
                    self.rule(
                        "allowed_values",
                        name,
                        f"are not in the allowed categories {spec.allowed[:10]}",
                    ),
                )
            )
        checks += self._time_and_label_checks(name, spec)
        checks += [c for c in self._custom(name) if c]
        for number, (_, rule) in enumerate(checks):
            self.out.column_checks[(name, number)] = rule
        if not spec.nullable:
            self.out.not_null[name] = self.rule("not_null", name, "are null")
        return pa.Column(
            dtype,
            [c for c, _ in checks],
            nullable=spec.nullable,
            coerce=coerce,
            required=True,
            name=name,
        )

    def _time_and_label_checks(self, name: str, spec: ColumnRule) -> list[tuple[Any, Rule]]:
        import pandera.pandas as pa

        contract, checks = self.contract, []
        if name == contract.event_timestamp:
            limit = self.now + pd.Timedelta(seconds=contract.max_future_seconds)
            if self.portable:
                self.skip(
                    f"not_future({name}): no later than now + "
                    f"{contract.max_future_seconds:g} s (now is the time of validation)"
                )
            else:
                checks.append(
                    (
                        pa.Check(lambda s, t=limit: _not_future(t, s), name="not_future"),
                        self.rule("not_future", name, "are in the future"),
                    )
                )
        label = contract.label
        if label and name == label.column and label.values is not None:
            checks.append(
                (
                    pa.Check.isin(list(label.values)),
                    self.rule("label_domain", name, f"are outside the label domain {label.values}"),
                )
            )
        if label and name == label.column and label.min_classes > 1:
            if self.portable:
                self.skip(f"label_classes({name}): at least {label.min_classes} classes")
            else:
                k = label.min_classes
                checks.append(
                    (
                        pa.Check(
                            lambda s, k=k: bool(s.nunique() >= k),
                            name="label_classes",
                            ignore_na=False,  # an all-null label: False, not an empty check
                        ),
                        self.rule("label_classes", name, f"the label has fewer than {k} classes"),
                    )
                )
        return checks

    def _custom(self, column: str | None) -> list[tuple[Any, Rule] | None]:
        """Custom checks attached to ``column`` (element-wise on its values), or the table."""
        out: list[tuple[Any, Rule] | None] = []
        for custom in self.contract.custom_checks:
            on_column = custom.element_wise and custom.column is not None
            if (column is None) == on_column or (on_column and custom.column != column):
                continue
            if self.portable:
                self.skip(f"{custom.name}({custom.column or ''}): {custom.function}")
                continue
            out.append(
                (
                    _custom_check(custom, on_column),
                    self.rule(
                        custom.name,
                        custom.column,
                        f"fail {custom.function}",
                        custom.on_fail,
                        f"see {custom.function}",
                    ),
                )
            )
        return out

    def build(self) -> CompiledSchema:
        import pandera.pandas as pa

        contract = self.contract
        columns = {n: self.column(n, r) for n, r in contract.columns.items()}
        if not self.portable:
            columns.update(
                {
                    m: pa.Column(None, required=False, nullable=True, name=m)
                    for m in METADATA_COLUMNS
                    if m not in columns
                }
            )
        frame = [c for c in self._custom(None) if c]
        self.out.frame_checks = {i: rule for i, (_, rule) in enumerate(frame)}
        if contract.unique:
            key = list(contract.unique)
            self.out.unique = self.rule(
                "unique_key",
                ",".join(key),
                f"share their ({', '.join(key)}) with another row",
                contract.policy(None),
            )
        self.out.schema = pa.DataFrameSchema(
            columns,
            checks=[c for c, _ in frame],
            strict=contract.extra_columns == "forbid",
            ordered=contract.ordered,
            unique=list(contract.unique) or None,
            report_duplicates="all",
            name=f"{contract.pipeline} contract v{contract.version}",
            description=f"Schema rules of the data contract of '{contract.pipeline}' "
            f"(version {contract.version}), compiled by ml_platform.",
        )
        return self.out


def _custom_check(custom: CustomCheck, on_column: bool) -> Any:
    import pandera.pandas as pa

    fn = resolve_import(custom.function)
    if custom.element_wise:
        # on a column, nulls are skipped as for built-in checks; a row is passed whole
        return pa.Check(fn, element_wise=True, name=custom.name, ignore_na=on_column)
    return pa.Check(_vectorised(fn), name=custom.name, ignore_na=False)


def _vectorised(fn: Callable[[pd.DataFrame], Any]) -> Callable[[pd.DataFrame], Any]:
    def check(frame: pd.DataFrame) -> Any:
        out = fn(frame)
        return (
            out
            if isinstance(out, pd.Series)
            else (pd.Series(out, index=frame.index) if isinstance(out, np.ndarray) else bool(out))
        )

    return check


def compile_schema(
    contract: Contract, now: pd.Timestamp | None = None, portable: bool = False
) -> CompiledSchema:
    """The contract's schema rules as a pandera schema. ``portable``: only what pandera can
    write to YAML / a script and load without ml_platform (see ``CompiledSchema.skipped``)."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    return _Builder(contract, now, portable).build()


def export(contract: Contract, fmt: str) -> str:
    """The portable schema as pandera YAML or a Python script, with a header naming the
    contract rules it cannot carry (the platform's gate still checks them)."""
    compiled = compile_schema(contract, portable=True)
    if fmt == "yaml":
        body = compiled.schema.to_yaml()
    else:  # pandera 0.35 writes the top-level import it deprecates for pandas schemas
        body = compiled.schema.to_script().replace(
            "from pandera import ", "from pandera.pandas import ", 1
        )
    comment = "#"
    lines = [
        f"{comment} pandera schema of the data contract of '{contract.pipeline}' "
        f"(version {contract.version}), exported by `ml-platform contract export`.",
        f"{comment} Load it with "
        + (
            "pandera.pandas.DataFrameSchema.from_yaml(path)"
            if fmt == "yaml"
            else "`from <this module> import schema`"
        )
        + "; validate with "
        "schema.validate(df, lazy=True).",
        f"{comment} Distribution rules (Great Expectations) are not part of it.",
    ]
    if compiled.skipped:
        lines.append(
            f"{comment} Checked by the platform's gate but not exportable as built-in "
            "pandera checks:"
        )
        lines += [f"{comment}   - {s}" for s in compiled.skipped]
    return "\n".join(lines) + "\n" + body
