"""Resources, the IO manager and the executor shared by every pipeline in this project."""

import dagster as dg

from ml_platform.components.handoff import HandoffIOManager
from ml_platform.components.mlflow_tracking import MlflowTrackingResource
from ml_platform.resources import PlatformResource

# Chosen by measurement (docs/benchmarks/bench_executor.md; docs/operations.md, "Execution"):
# the next-day training run at 300k events took 177 s in-process, 201 s with a spawned process
# per step and 278 s with processes forked from a preloaded forkserver (medians of 3), because
# launching step processes cost 11-58 s per run against 0.1-0.4 s in-process. A run is one
# process (the run worker, or `ml-platform run`); its steps run one after another in it.
# `.configured` fixes the config: Dagster ignores `execution:` run config for it, so switching
# executors is an edit here (e.g. EXECUTOR = FORKSERVER_EXECUTOR), not a Launchpad setting.
EXECUTOR = dg.in_process_executor.configured({"retries": {"enabled": {}}})

# The measured alternative, a process per step forked from a server that has imported these
# modules once. Not the project's executor; the concurrent-runs test runs a job with it.
FORKSERVER_EXECUTOR = dg.multiprocess_executor.configured(
    {
        "max_concurrent": 2,
        "retries": {"enabled": {}},
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
