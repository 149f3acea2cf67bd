"""Resources, the IO manager and the executor shared by every pipeline in this project."""

import dagster as dg

from ml_platform.components.handoff import HandoffIOManager
from ml_platform.components.mlflow_tracking import MlflowTrackingResource
from ml_platform.resources import PlatformResource

# Chosen by measurement (docs/operations.md, "Execution"): a process per step, forked from a
# server that has imported these modules once, instead of a fresh interpreter per step.
EXECUTOR = dg.multiprocess_executor.configured(
    {
        "max_concurrent": 2,
        "start_method": {
            "forkserver": {
                "preload_modules": [
                    "ml_platform.definitions",
                    "sklearn.ensemble",
                    "mlflow",
                    "pandas",
                    "duckdb",
                ]
            }
        },
    }
)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "platform": PlatformResource(home=dg.EnvVar("ML_PLATFORM_HOME")),
            "mlflow": MlflowTrackingResource(),
            "io_manager": HandoffIOManager(),
        },
        executor=EXECUTOR,
    )
