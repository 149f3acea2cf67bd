"""Raw and validated data assets: the data gate.

The validated asset checks each batch against the pipeline's data contract and reports two
blocking asset checks: schema rules (pandera) and distribution rules (Great Expectations). A
failing batch records both check results, then fails the step, so nothing downstream runs and
the last good validated batch stays in place.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from ml_platform.contracts import RuleResult
from ml_platform.pipeline import raw, sidecar, validate
from ml_platform.resources import PlatformResource
from ml_platform.spec import PipelineSpec

CHECKS = {"schema": ("schema_rules_hold", "Columns, types, nulls, ranges, categories, keys, "
                     "timestamps and label of every row follow the contract (pandera)."),
          "distribution": ("distributions_within_bounds", "Row count, null fractions, means, "
                           "quantiles, category frequencies and distance from the reference "
                           "profile are within the contract's bounds (Great Expectations).")}


def _check_result(kind: str, outcome: validate.ValidationOutcome) -> dg.AssetCheckResult:
    name = CHECKS[kind][0]
    rules = outcome.of_kind(kind)
    failed = [r for r in rules if not r.passed and r.policy == "fail"]
    quarantined = [r for r in rules if not r.passed and r.policy == "quarantine"]
    message = "; ".join(f"{r.label}: {r.message}" for r in failed) or (
        f"all {len(rules)} {kind} rules hold")
    metadata: dict[str, Any] = {
        "message": message, "rules": len(rules), "failed_rules": len(failed),
        "failures": dg.MetadataValue.json([_compact(r) for r in failed]),
        "quarantined_rules": dg.MetadataValue.json([_compact(r) for r in quarantined]),
        "rows_in": outcome.rows_in, "rows_quarantined": outcome.rows_quarantined}
    if outcome.report_path is not None:
        metadata["report"] = dg.MetadataValue.path(str(outcome.report_path))
    return dg.AssetCheckResult(check_name=name, passed=not failed,
                               severity=dg.AssetCheckSeverity.ERROR,
                               description=message[:1000], metadata=metadata)


def _compact(rule: RuleResult) -> dict[str, Any]:
    d = rule.to_dict()
    return {k: d[k] for k in ("rule", "column", "failing_rows", "failing_fraction", "sample",
                              "message")}


def data_assets(spec: PipelineSpec, key: dict[str, dg.AssetKey], common: dict[str, Any]
                ) -> list[dg.AssetsDefinition]:
    n = spec.name
    check_specs = [dg.AssetCheckSpec(name, asset=key["validated"], blocking=True,
                                     description=description)
                   for name, description in CHECKS.values()]

    @dg.asset(key=key["raw"], kinds={spec.source.file_format}, **common)
    def raw_asset(platform: PlatformResource) -> dg.Output[dict]:
        """Landed source files matched by the spec's source path, snapshotted by content hash."""
        snap = raw.snapshot(spec, platform.platform_home())
        return dg.Output(snap.to_dict(), data_version=dg.DataVersion(snap.data_version),
                         metadata={"files": len(snap.files), "bytes": snap.bytes,
                                   "data_version": snap.data_version,
                                   "latest_file": Path(snap.files[-1]).name})

    @dg.asset(key=key["validated"], ins={"snap": dg.AssetIn(key["raw"])},
              kinds={"pandas", "pandera", "great_expectations"}, check_specs=check_specs,
              **common)
    def validated_asset(platform: PlatformResource, snap: dict) -> Iterator[Any]:
        """The raw batch after the data contract: published only if every blocking rule holds
        (rows broken by quarantine-policy rules go to the quarantine table), so a bad batch
        never replaces the last good one."""
        outcome = sidecar.call(validate.validate_snapshot, spec, platform.platform_home(),
                               raw.RawSnapshot(**snap))
        for kind in CHECKS:
            yield _check_result(kind, outcome)
        if not outcome.passed:
            raise dg.Failure(description=f"data contract failed for '{n}': {outcome.summary()}",
                             metadata={"failures": dg.MetadataValue.json(
                                 [_compact(r) for r in outcome.failures]),
                                 "report": dg.MetadataValue.path(str(outcome.report_path))})
        metadata: dict[str, Any] = {
            "rows_in": outcome.rows_in, "rows_valid": outcome.rows_valid,
            "rows_quarantined": outcome.rows_quarantined, "data_version": outcome.data_version,
            "report": dg.MetadataValue.path(str(outcome.report_path))}
        if outcome.quarantine_path is not None:
            metadata["quarantine_table"] = dg.MetadataValue.path(str(outcome.quarantine_path))
        yield dg.Output({"path": str(outcome.validated_path), "rows": outcome.rows_valid},
                        data_version=dg.DataVersion(outcome.data_version), metadata=metadata)

    return [raw_asset, validated_asset]
