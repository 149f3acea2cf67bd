"""Ingest wiring: the landed files (an observable source) and the validated batch (the data
gate, with pandera and Great Expectations results as blocking asset checks)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from ml_platform.components.common import Stage
from ml_platform.contracts import RuleResult, validate
from ml_platform.ingest import raw
from ml_platform.resources import PlatformResource

CHECKS = {
    "schema": (
        "schema_rules_hold",
        "Columns, types, nulls, ranges, categories, keys, "
        "timestamps and label of every row follow the contract (pandera).",
    ),
    "distribution": (
        "distributions_within_bounds",
        "Row count, null fractions, means, "
        "quantiles, category frequencies and distance from the reference "
        "profile are within the contract's bounds (Great Expectations).",
    ),
}


def _compact(rule: RuleResult) -> dict[str, Any]:
    d = rule.to_dict()
    return {
        k: d[k] for k in ("rule", "column", "failing_rows", "failing_fraction", "sample", "message")
    }


def _check_result(kind: str, outcome: validate.ValidationOutcome) -> dg.AssetCheckResult:
    rules = outcome.of_kind(kind)
    failed = [r for r in rules if not r.passed and r.policy == "fail"]
    quarantined = [r for r in rules if not r.passed and r.policy == "quarantine"]
    message = "; ".join(f"{r.label}: {r.message}" for r in failed) or (
        f"all {len(rules)} {kind} rules hold"
    )
    metadata: dict[str, Any] = {
        "message": message,
        "rules": len(rules),
        "failed_rules": len(failed),
        "failures": dg.MetadataValue.json([_compact(r) for r in failed]),
        "quarantined_rules": dg.MetadataValue.json([_compact(r) for r in quarantined]),
        "rows_in": outcome.rows_in,
        "rows_quarantined": outcome.rows_quarantined,
    }
    if outcome.report_path is not None:
        metadata["report"] = dg.MetadataValue.path(str(outcome.report_path))
    if kind == "distribution":
        metadata.update(_data_docs(outcome))
    return dg.AssetCheckResult(
        check_name=CHECKS[kind][0],
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=message[:1000],
        metadata=metadata,
    )


def _data_docs(outcome: validate.ValidationOutcome) -> dict[str, Any]:
    """Links to Great Expectations' Data Docs under the home: the site and this validation."""
    docs = outcome.data_docs
    if docs is None:
        return {}
    links: dict[str, Any] = {"data_docs": dg.MetadataValue.path(str(docs.index))}
    if docs.page is not None:
        links["data_docs_validation"] = dg.MetadataValue.url(docs.page.as_uri())
    return links


def ingest_assets(stage: Stage) -> list[Any]:
    spec, key = stage.spec, stage.key
    check_specs = [
        dg.AssetCheckSpec(name, asset=key["validated"], blocking=True, description=description)
        for name, description in CHECKS.values()
    ]

    landed = dg.AssetSpec(
        key["raw"],
        group_name=spec.name,
        owners=stage.owners,
        tags=stage.tags,
        kinds={spec.source.file_format},
        description=(
            "Landed source files matched by the spec's source path. Observed by names, sizes "
            "and modification times; the content is hashed once, by validation."
        ),
    )

    @dg.multi_observable_source_asset(specs=[landed], name=f"{spec.name}_raw")
    def raw_files(platform: PlatformResource) -> Iterator[dg.ObserveResult]:
        version, files, size = raw.listing_version(spec, platform.platform_home())
        yield dg.ObserveResult(
            asset_key=key["raw"],
            data_version=dg.DataVersion(version),
            metadata={"files": files, "bytes": size},
        )

    @dg.asset(
        deps=[key["raw"]],
        kinds={"pandas", "pandera", "great_expectations"},
        check_specs=check_specs,
        **stage.common("validated"),
    )
    def validated(platform: PlatformResource) -> Iterator[Any]:
        """The landed files after the data contract, written once under their content hash:
        published only if every blocking rule holds (rows broken by quarantine-policy rules go
        to the quarantine table), so a bad batch never replaces the last good one."""
        home = platform.platform_home()
        snap = raw.snapshot(spec, home)
        outcome = validate.validate_snapshot(spec, home, snap)
        for kind in CHECKS:
            yield _check_result(kind, outcome)
        if not outcome.passed:
            raise dg.Failure(
                description=f"data contract failed for '{spec.name}': {outcome.summary()}",
                metadata={
                    "failures": dg.MetadataValue.json([_compact(r) for r in outcome.failures]),
                    "report": dg.MetadataValue.path(str(outcome.report_path)),
                    **_data_docs(outcome),
                },
                allow_retries=False,
            )
        metadata: dict[str, Any] = {
            "rows_in": outcome.rows_in,
            "rows_valid": outcome.rows_valid,
            "rows_quarantined": outcome.rows_quarantined,
            "data_version": outcome.data_version,
            "raw_data_version": snap.data_version,
            "files": len(snap.files),
            "latest_file": Path(snap.files[-1]).name,
            "path": dg.MetadataValue.path(str(outcome.validated_path)),
            "report": dg.MetadataValue.path(str(outcome.report_path)),
            **_data_docs(outcome),
        }
        if outcome.quarantine_path is not None:
            metadata["quarantine_table"] = dg.MetadataValue.path(str(outcome.quarantine_path))
        yield dg.Output(
            {
                "path": str(outcome.validated_path),
                "rows": outcome.rows_valid,
                "data_version": outcome.data_version,
            },
            data_version=dg.DataVersion(str(outcome.data_version)),
            metadata=metadata,
        )

    return [raw_files, validated]
