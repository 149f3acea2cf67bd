"""Sensors that close the loop: new landed data triggers a training run."""

from typing import Any

import dagster as dg

from ml_platform.components.common import Stage
from ml_platform.home import platform_home
from ml_platform.ingest.raw import RawDataError, listing_version


def new_data_sensor(stage: Stage, job: Any) -> dg.SensorDefinition:
    spec = stage.spec

    @dg.sensor(
        name=f"{spec.name}_new_data_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"Observes the landed files of '{spec.name}' (names, sizes, "
        f"modification times) and runs its training job when they change.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        try:
            version, files, size = listing_version(spec, platform_home())
        except RawDataError as exc:
            return dg.SkipReason(str(exc))
        if version == context.cursor:
            return dg.SkipReason(f"no new data (version {version})")
        observation = dg.AssetObservation(
            asset_key=stage.key["raw"],
            metadata={"files": files, "bytes": size},
            tags={"dagster/data_version": version},
        )
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=version, tags={"trigger": "new_data", "landed_version": version}
                )
            ],
            asset_events=[observation],
            cursor=version,
        )

    return _sensor
