"""Shared fixtures: every test gets its own platform home; nothing touches the developer's."""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg
import pytest

from ml_platform.core.datagen import GeneratorConfig, land
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


def small_spec(n_trials: int = 2, **updates: object) -> PipelineSpec:
    """The demo spec with a tiny search budget, for fast end-to-end runs."""
    spec = load_spec_file(DEMO_SPEC)
    model = spec.model.model_copy(update={"n_trials": n_trials,
                                          "params": {"max_iter": 30, "early_stopping": False}})
    return spec.model_copy(update={"model": model, **updates})


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

    instance = instance or dg.DagsterInstance.ephemeral()
    return dg.materialize(pipeline_assets(spec), instance=instance,
                          resources={"platform": PlatformResource(home=str(home.root)),
                                     "mlflow": MlflowTrackingResource()},
                          raise_on_error=False, selection=selection)
