"""Distribution rules: the contract's Great Expectations suite run on the batch.

The suite (``gx_suite``) is stored in a GX file context under the platform home
(``<home>/gx/``), run through a Validation Definition and a Checkpoint whose
``UpdateDataDocsAction`` builds Data Docs there (``<home>/gx/uncommitted/data_docs/local_site/``).
Without a home (a direct ``check_contract`` call, the benchmark) an ephemeral context runs the
same suite and builds no docs. Each expectation result maps back to contract rules through the
expectation's meta.

GX is imported only here, when a batch is validated (it costs ~1.5 s to import).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd

from ml_platform.contracts.gx_suite import (
    META_KEY,
    build_suite,
    contract_digest,
    suite_columns,
    suite_name,
)
from ml_platform.contracts.model import Contract
from ml_platform.contracts.results import RuleResult, batch_rule, jsonable

RESULT_FORMAT = {"result_format": "BASIC"}  # observed values and counts, no row indices
DATASOURCE = "ml_platform"
FIXES = {
    "row_count": "check for a partial or duplicated load upstream; if the volume changed for "
    "good, adjust distribution.min_rows / max_rows",
    "null_fraction": "find why the column lost values upstream, or raise max_null_fraction",
    "category_set": "map the category upstream, or add it to the column's allowed values",
    "distance": "the column drifted from the reference profile: investigate; if it is the new "
    "normal, re-infer the contract (infer-contract) and review the reference",
}
SHIFT_FIX = (
    "investigate the shift; if it is the new normal, re-infer the bands "
    "(infer-contract) and review them"
)
log = logging.getLogger(__name__)
_lock = threading.Lock()


@dataclass(frozen=True)
class DataDocs:
    index: Path  # the site's index.html
    page: Path | None  # this validation's page


@dataclass
class DistributionCheck:
    results: list[RuleResult]
    suite: str
    data_docs: DataDocs | None = None
    expectations: int = 0


@dataclass
class _Project:
    """A GX context (file under ``<root>/gx`` or ephemeral) and the checkpoints built in it."""

    context: Any
    root: Path | None
    checkpoints: dict[str, tuple[str, Any]] = field(default_factory=dict)  # suite: (sha, cp)


@functools.cache
def _project(root: Path | None) -> _Project:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from ml_platform.contracts import gx_expectations  # noqa: F401 - registers our classes

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context: Any
    if root is None:
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    else:
        context = gx.get_context(mode="file", project_root_dir=str(root))
        if context.variables.progress_bars is None or context.config.analytics_enabled is not False:
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            context.enable_analytics(False)  # also saves great_expectations.yml
    return _Project(context, root)


@contextlib.contextmanager
def _exclusive(root: Path | None) -> Iterator[None]:
    """One validation at a time per GX project: GX's file stores and the Data Docs index are
    rewritten by each run, and runs may come from several processes (Dagster steps)."""
    with _lock:
        if root is None:
            yield
            return
        (root / "gx").mkdir(parents=True, exist_ok=True)
        with (root / "gx" / ".ml_platform.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _batch_definition(context: Any, pipeline: str) -> Any:
    try:
        source = context.data_sources.get(DATASOURCE)
    except KeyError:
        source = context.data_sources.add_pandas(DATASOURCE)
    try:
        asset = source.get_asset(pipeline)
    except LookupError:
        asset = source.add_dataframe_asset(pipeline)
    try:
        return asset.get_batch_definition("whole_batch")
    except LookupError:
        return asset.add_batch_definition_whole_dataframe("whole_batch")


def _stored_suite(context: Any, contract: Contract, persistent: bool) -> Any:
    """The suite in the store, rewritten when the contract's content changed."""
    from great_expectations.exceptions import DataContextError

    name, digest = suite_name(contract), contract_digest(contract)
    try:
        stored = context.suites.get(name)
    except DataContextError:
        stored = None
    if (
        stored is not None
        and (stored.meta or {}).get(META_KEY, {}).get("contract_sha256") == digest
    ):
        return stored
    if stored is not None and persistent:
        log.warning(
            "contract of '%s' changed without a version bump; suite %s rewritten",
            contract.pipeline,
            name,
        )
    return context.suites.add_or_update(build_suite(contract))


def _checkpoint(project: _Project, contract: Contract) -> Any:
    """The checkpoint of the contract's suite; the store is rewritten only when the contract's
    content differs from the suite's (one suite per pipeline and contract version)."""
    name, digest = suite_name(contract), contract_digest(contract)
    cached = project.checkpoints.get(name)
    if cached is not None and cached[0] == digest:
        return cached[1]
    import great_expectations as gx

    context = project.context
    suite = _stored_suite(context, contract, persistent=project.root is not None)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(
            name=suite.name, data=_batch_definition(context, contract.pipeline), suite=suite
        )
    )
    actions: list[Any] = (
        [gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")]
        if project.root is not None
        else []
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=suite.name,
            validation_definitions=[definition],
            actions=actions,
            result_format=RESULT_FORMAT,
        )
    )
    project.checkpoints[name] = (digest, checkpoint)
    return checkpoint


def _path(url: str | None) -> Path | None:
    return Path(unquote(urlparse(url).path)) if url else None


def _run(project: _Project, contract: Contract, batch: pd.DataFrame, run_id: Any) -> Any:
    """The checkpoint's run on ``batch``: GX's CheckpointResult."""
    from great_expectations.exceptions import ResourceFreshnessAggregateError

    try:
        return _checkpoint(project, contract).run(
            batch_parameters={"dataframe": batch}, run_id=run_id
        )
    except ResourceFreshnessAggregateError:
        # the stored suite was rewritten since (another contract with the same name and
        # version, or another process): store ours again and rebuild the checkpoint
        project.checkpoints.pop(suite_name(contract), None)
        return _checkpoint(project, contract).run(
            batch_parameters={"dataframe": batch}, run_id=run_id
        )


def run_suite(
    contract: Contract, frame: pd.DataFrame, root: Path | None, run_name: str
) -> tuple[Any, DataDocs | None]:
    """Run the contract's suite on ``frame`` (narrowed to the columns it reads); with a
    ``root``, also build Data Docs. Returns GX's ExpectationSuiteValidationResult."""
    from great_expectations.core.run_identifier import RunIdentifier

    # One copy of the columns the suite reads, built as one block per dtype: GX filters the
    # batch with row masks, and pandas copies a frame of one block per column (the raw read's
    # layout) twice over when it consolidates that copy.
    columns = [c for c in suite_columns(contract) if c in frame.columns]
    batch = pd.DataFrame({c: frame[c] for c in columns}, index=frame.index, columns=columns)
    with _exclusive(root):
        project = _project(root)
        run_id = RunIdentifier(run_name=run_name, run_time=pd.Timestamp.now(tz="UTC"))
        result = _run(project, contract, batch, run_id)
        ((key, validation),) = result.run_results.items()
        docs = None
        if root is not None:
            index = project.context.get_docs_sites_urls(only_if_exists=False)
            page = project.context.get_docs_sites_urls(
                resource_identifier=key, only_if_exists=False
            )
            docs = DataDocs(
                _path(index[0]["site_url"]) or root / "gx",
                _path(page[0]["site_url"]) if page else None,
            )
    return validation, docs


def check(
    contract: Contract,
    frame: pd.DataFrame,
    usable: set[str],
    root: Path | None = None,
    run_name: str = "validation",
) -> DistributionCheck:
    validation, docs = run_suite(contract, frame, root, run_name)
    results: list[RuleResult] = []
    for res in validation.results:
        meta = (res.expectation_config.meta or {}).get(META_KEY, {})
        rule, column = meta.get("rule", res.expectation_config.type), meta.get("column")
        if column is not None and column not in usable:
            continue  # missing or mistyped: the schema rules already report it
        error = _exception(res.exception_info)
        if error:
            results.append(
                batch_rule(
                    rule,
                    column,
                    False,
                    f"Great Expectations could not evaluate {res.expectation_config.type}: {error}",
                    len(frame),
                    kind="distribution",
                )
            )
            continue
        results += _results(rule, column, res, contract, len(frame))
    return DistributionCheck(results, validation.suite_name, docs, len(validation.results))


def _exception(info: Any) -> str | None:
    """GX reports an exception per expectation, or per metric id."""
    if not info:
        return None
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            return str(entry.get("exception_message"))
    return None


def _bounds(low: float | None, high: float | None) -> str:
    lo = "-inf" if low is None else f"{low:.6g}"
    hi = "inf" if high is None else f"{high:.6g}"
    return f"[{lo}, {hi}]"


def _value(value: Any) -> str:
    return "undefined (no values)" if value is None or pd.isna(value) else f"{value:.6g}"


def _outcome(
    rule: str,
    column: str | None,
    passed: bool,
    what: str,
    value: Any,
    low: Any,
    high: Any,
    n: int,
    fix: str,
    sample: list[Any] | None = None,
) -> RuleResult:
    message = f"{what} is {_value(value)}, outside the allowed {_bounds(low, high)}. Fix: {fix}"
    result = batch_rule(
        rule,
        column,
        passed,
        message,
        n,
        kind="distribution",
        sample=sample if sample is not None else [value],
    )
    return result


def _results(
    rule: str, column: str | None, res: Any, contract: Contract, n: int
) -> list[RuleResult]:
    kwargs, result, ok = res.expectation_config.kwargs, res.result or {}, bool(res.success)
    observed = result.get("observed_value")
    if rule == "row_count":
        return [
            _outcome(
                rule,
                None,
                ok,
                "the row count",
                observed,
                kwargs.get("min_value"),
                kwargs.get("max_value"),
                n,
                FIXES[rule],
            )
        ]
    if rule == "null_fraction":
        nulls, total = (
            int(result.get("unexpected_count") or 0),
            int(result.get("element_count") or 0),
        )
        out = _outcome(
            rule,
            column,
            ok,
            f"the null fraction of '{column}'",
            nulls / max(total, 1),
            0.0,
            round(1 - kwargs["mostly"], 12),
            n,
            FIXES[rule],
        )
        if not ok:
            out.failing_rows, out.failing_fraction = nulls, nulls / max(total, 1)
        return [out]
    if rule == "mean":
        return [
            _outcome(
                rule,
                column,
                ok,
                f"the mean of '{column}'",
                observed,
                kwargs.get("min_value"),
                kwargs.get("max_value"),
                n,
                SHIFT_FIX,
            )
        ]
    if rule == "quantile":
        return _quantiles(column, kwargs, result, n)
    if rule == "category_set":
        unexpected = [jsonable(v) for v in result.get("partial_unexpected_list") or []]
        count = int(result.get("unexpected_count") or 0)
        message = (
            f"{count} values of '{column}' are outside its allowed set, e.g. "
            f"{unexpected[:5]}. Fix: {FIXES[rule]}"
        )
        out = batch_rule(rule, column, ok, message, n, kind="distribution", sample=unexpected[:5])
        if not ok:
            out.failing_rows, out.failing_fraction = count, count / max(n, 1)
        return [out]
    if rule == "category_frequency":
        details = (result.get("details") or {}).get("categories", {})
        return [
            _outcome(
                rule,
                column,
                d["success"],
                f"the share of category '{cat}' in '{column}'",
                d["observed"],
                d["low"],
                d["high"],
                n,
                SHIFT_FIX,
                sample=[cat, d["observed"]],
            )
            for cat, d in details.items()
        ]
    return [
        _outcome(
            rule,
            column,
            ok,
            f"the {rule.replace('_', ' ')} of '{column}' from the reference profile",
            observed,
            0.0,
            kwargs.get("threshold"),
            n,
            FIXES["distance"],
        )
    ]


def _quantiles(column: str | None, kwargs: dict, result: dict, n: int) -> list[RuleResult]:
    ranges = kwargs["quantile_ranges"]
    observed = result.get("observed_value") or {}
    values = observed.get("values") or [None] * len(ranges["quantiles"])
    flags = (result.get("details") or {}).get("success_details") or [False] * len(values)
    out = []
    for q, (low, high), value, ok in zip(
        ranges["quantiles"], ranges["value_ranges"], values, flags, strict=True
    ):
        r = _outcome(
            "quantile",
            column,
            bool(ok),
            f"quantile q{q:g} of '{column}'",
            value,
            low,
            high,
            n,
            SHIFT_FIX,
        )
        out.append(r)
    return out
