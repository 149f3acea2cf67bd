"""Test helpers shared across the suite: the demo spec at test size, and materialization of a
pipeline's graph on real local backends in a temporary home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from ml_platform.home import PROJECT_ROOT, PlatformHome
from ml_platform.ingest.datagen import GeneratorConfig
from ml_platform.spec import PipelineSpec, load_spec_file

DEMO_SPEC = PROJECT_ROOT / "ml_platform" / "defs" / "pipelines" / "loan_default" / "defs.yaml"
SMALL = GeneratorConfig(events=6_000, days=40, seed=11)
# A code location with the demo at test size (ml_platform_tests/cli/small_defs.py).
SMALL_DEFS = "ml_platform_tests.cli.small_defs:defs"


def ml_platform(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The installed command in a fresh process, on the test's home (its environment)."""
    cli = str(Path(sys.executable).parent / "ml-platform")
    return subprocess.run(
        [cli, *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def small_spec(n_trials: int = 2, dbt: bool = False, **updates: object) -> PipelineSpec:
    """The demo spec with a tiny search budget, for fast end-to-end runs. Without ``dbt`` the
    features come from the spec's declared SQL instead of the dbt model (the same table:
    features/test_dbt_features.py), so a test needs no dbt build."""
    spec = load_spec_file(DEMO_SPEC)
    model = spec.model.model_copy(
        update={"n_trials": n_trials, "params": {"max_iter": 30, "early_stopping": False}}
    )
    features = spec.features if dbt else spec.features.model_copy(update={"dbt_model": None})
    return spec.model_copy(update={"model": model, "features": features, **updates})


def resources(home: PlatformHome) -> dict[str, object]:
    """The project's resources on ``home``."""
    from ml_platform.components.handoff import HandoffIOManager
    from ml_platform.components.mlflow_tracking import MlflowTrackingResource
    from ml_platform.resources import PlatformResource

    out: dict[str, object] = {
        "platform": PlatformResource(home=str(home.root)),
        "mlflow": MlflowTrackingResource(),
        "io_manager": HandoffIOManager(),
    }
    return out


def materialize(
    spec: PipelineSpec,
    home: PlatformHome,
    instance: dg.DagsterInstance | None = None,
    selection: str | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize a pipeline's graph in this process on real local backends in ``home``."""
    from ml_platform.components.assets import pipeline_assets

    assets = [
        a
        for a in pipeline_assets(spec)
        if isinstance(a, dg.AssetsDefinition) and a.is_materializable
    ]
    extra: dict[str, object] = {}
    if spec.features.dbt_model:  # the dbt feature model is upstream of the pipeline's features
        from ml_platform.defs.dbt.assets import dbt_defs, dbt_feature_models

        assets.append(dbt_feature_models)
        extra = dict(dbt_defs().resources or {})
    instance = instance or dg.DagsterInstance.ephemeral()
    return dg.materialize(
        assets,
        instance=instance,
        resources={**resources(home), **extra},
        raise_on_error=False,
        selection=selection,
    )
