"""The code location the Kubernetes deployment serves (deploy/helm/dagster-values.yaml runs
``dagster api grpc -f deploy/k8s/code_location.py``): the project's definitions, unchanged,
with dagster-k8s's ``k8s_job_executor`` as the default executor, so every step of a run is its
own Kubernetes Job, scheduled on whatever node has room, with its own resources.

The executor inherits image, namespace, service account and env secrets from the instance's
K8sRunLauncher (the Helm values); only what differs per step is set here. The in-process
executor of ml_platform/defs/resources.py stays the default everywhere else (dagster dev,
compose): on one host a process per step costs 11-58 s per run (docs/operations.md).
Needs deploy/requirements-k8s.txt (installed into the user-code image)."""

import dagster as dg
from dagster_k8s import k8s_job_executor
from dagster_shared.record import replace

from ml_platform.definitions import defs as project_defs

STEP_EXECUTOR = k8s_job_executor.configured(
    {
        # Steps of different runs spread over the cluster; within a run, the training chain
        # runs one step after another whatever this says.
        "max_concurrent": 4,
        "retries": {"enabled": {}},
        "step_k8s_config": {
            "container_config": {
                "resources": {
                    "requests": {"cpu": "1", "memory": "2Gi"},
                    "limits": {"memory": "8Gi"},
                }
            }
        },
    },
    name="ml_platform_k8s_job_executor",
)

defs: dg.Definitions = replace(project_defs, executor=STEP_EXECUTOR)
