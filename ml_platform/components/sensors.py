"""Sensors that close the loop: new landed data triggers a training run."""


from typing import Any

import dagster as dg

from ml_platform.home import platform_home
from ml_platform.pipeline.raw import RawDataError, snapshot
from ml_platform.spec import PipelineSpec


def new_data_sensor(spec: PipelineSpec, job: Any
                    ) -> dg.SensorDefinition:
    @dg.sensor(name=f"{spec.name}_new_data_sensor", job=job, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description=f"Runs '{spec.name}' when its landed files change.")
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        try:
            snap = snapshot(spec, platform_home())
        except RawDataError as exc:
            return dg.SkipReason(str(exc))
        if snap.data_version == context.cursor:
            return dg.SkipReason(f"no new data (version {snap.data_version})")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=snap.data_version,
                                        tags={"trigger": "new_data",
                                              "data_version": snap.data_version})],
            cursor=snap.data_version)

    return _sensor
