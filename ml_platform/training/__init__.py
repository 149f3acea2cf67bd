"""Training: the time split, tuning, fitting and tracking of a candidate model (no Dagster)."""
