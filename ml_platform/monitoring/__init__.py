"""Monitoring: drift, data quality and performance of each batch against the champion's
training reference (framework-free; the Dagster assets and ``ml-platform monitor`` call
``analyze.analyze_batch``). See docs/monitoring.md."""
