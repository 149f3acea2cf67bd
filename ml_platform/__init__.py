"""ml_platform: declared tabular ML pipelines as Dagster asset graphs."""

__version__ = "0.1.0"
