"""Shared fixtures: every test gets its own platform home; nothing touches the developer's."""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg
import pytest

from ml_platform.ingest.datagen import GeneratorConfig, land
from ml_platform.home import PROJECT_ROOT, PlatformHome
from ml_platform.spec import PipelineSpec, load_spec_file

DEMO_SPEC = PROJECT_ROOT / "ml_platform" / "defs" / "pipelines" / "loan_default" / "defs.yaml"
SMALL = GeneratorConfig(events=6_000, days=40, seed=11)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PlatformHome:
    root = tmp_path / "home"
    monkeypatch.setenv("ML_PLATFORM_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    monkeypatch.setenv("FEAST_USAGE", "False")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    warnings.simplefilter("ignore")
    return PlatformHome(root).ensure()


def small_spec(n_trials: int = 2, dbt: bool = False, **updates: object) -> PipelineSpec:
    """The demo spec with a tiny search budget, for fast end-to-end runs. Without ``dbt`` the
    features come from the spec's declared SQL instead of the dbt model (the same table:
    features/test_dbt_features.py), so a test needs no dbt build."""
    spec = load_spec_file(DEMO_SPEC)
    model = spec.model.model_copy(update={"n_trials": n_trials,
                                          "params": {"max_iter": 30, "early_stopping": False}})
    features = spec.features if dbt else spec.features.model_copy(update={"dbt_model": None})
    return spec.model_copy(update={"model": model, "features": features, **updates})


@pytest.fixture
def demo_spec() -> PipelineSpec:
    return small_spec()


@pytest.fixture
def landed(home: PlatformHome) -> list[Path]:
    return land(SMALL, home.landing / "loan_default")


def materialize(spec: PipelineSpec, home: PlatformHome, instance: dg.DagsterInstance | None = None,
                selection: str | None = None) -> dg.ExecuteInProcessResult:
    """Materialize a pipeline's graph on real local backends in ``home``."""
    from ml_platform.components.assets import pipeline_assets
    from ml_platform.components.mlflow_tracking import MlflowTrackingResource
    from ml_platform.resources import PlatformResource

    assets = pipeline_assets(spec)
    if spec.features.dbt_model:  # the dbt feature model is upstream of the pipeline's features
        from ml_platform.defs.dbt.assets import dbt_feature_models

        assets.append(dbt_feature_models)
    instance = instance or dg.DagsterInstance.ephemeral()
    return dg.materialize(assets, instance=instance,
                          resources={"platform": PlatformResource(home=str(home.root)),
                                     "mlflow": MlflowTrackingResource()},
                          raise_on_error=False, selection=selection)
