"""Resources shared by every pipeline in this project."""

import dagster as dg

from ml_platform.components.mlflow_tracking import MlflowTrackingResource
from ml_platform.resources import PlatformResource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"platform": PlatformResource(),
                                     "mlflow": MlflowTrackingResource()})
