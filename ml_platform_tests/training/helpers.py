"""Training test helpers."""

from __future__ import annotations

from ml_platform.spec import PipelineSpec
from ml_platform_tests.helpers import small_spec


def training_spec(n_trials: int = 2, seed: int = 42, max_iter: int = 10) -> PipelineSpec:
    """The demo spec without windowed aggregates (their columns come from the feature stage)."""
    spec = small_spec(n_trials=n_trials, seed=seed)
    model = spec.model.model_copy(
        update={"params": {"max_iter": max_iter, "early_stopping": False}}
    )
    return spec.model_copy(
        update={"features": spec.features.model_copy(update={"aggregates": []}), "model": model}
    )
