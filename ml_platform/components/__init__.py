"""Custom Dagster Components of ml_platform."""

from ml_platform.components.ml_pipeline import MLPipelineComponent

__all__ = ["MLPipelineComponent"]
