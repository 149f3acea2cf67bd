"""Raw and validated data assets: the data gate."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from ml_platform.pipeline import raw, validate
from ml_platform.resources import PlatformResource
from ml_platform.spec import PipelineSpec


def data_assets(spec: PipelineSpec, key: dict[str, dg.AssetKey], common: dict[str, Any]
               ) -> list[dg.AssetsDefinition]:
    n = spec.name
    contract_check = dg.AssetCheckSpec("contract_holds", asset=key["validated"], blocking=True,
                                       description="Every rule of the data contract holds.")

    @dg.asset(key=key["raw"], kinds={spec.source.file_format}, **common)
    def raw_asset(platform: PlatformResource) -> dg.Output[dict]:
        """Landed source files matched by the spec's source path, snapshotted by content hash."""
        snap = raw.snapshot(spec, platform.platform_home())
        return dg.Output(snap.to_dict(), data_version=dg.DataVersion(snap.data_version),
                         metadata={"files": len(snap.files), "bytes": snap.bytes,
                                   "data_version": snap.data_version,
                                   "latest_file": Path(snap.files[-1]).name})

    @dg.asset(key=key["validated"], ins={"snap": dg.AssetIn(key["raw"])}, kinds={"pandas"},
              check_specs=[contract_check], **common)
    def validated_asset(context: dg.AssetExecutionContext, platform: PlatformResource,
                        snap: dict) -> Iterator[Any]:
        """The raw batch after the data contract: published only if every blocking rule holds,
        so a bad batch never replaces the last good one."""
        frame = raw.read(spec, raw.RawSnapshot(**snap))
        outcome = validate.validate_batch(spec, platform.platform_home(), frame)
        failures = {f"{r.rule}[{r.column}]": r.message for r in outcome.failures}
        yield dg.AssetCheckResult(
            check_name="contract_holds", passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rules": len(outcome.rules), "failed_rules": len(failures),
                      "failures": dg.MetadataValue.json(
                          [r.to_dict() for r in outcome.failures]),
                      "rows_in": outcome.rows_in})
        if not outcome.passed:
            raise dg.Failure(description=f"data contract failed for '{n}': {outcome.summary()}",
                             metadata={"failures": dg.MetadataValue.json(failures)})
        yield dg.Output({"path": str(outcome.validated_path), "rows": outcome.rows_valid},
                        data_version=dg.DataVersion(outcome.data_version),
                        metadata={"rows_in": outcome.rows_in, "rows_valid": outcome.rows_valid,
                                  "rows_quarantined": outcome.rows_quarantined,
                                  "data_version": outcome.data_version})

    return [raw_asset, validated_asset]
