"""Evaluation: holdout metrics, baselines, the champion re-scored, gates, infra checks, model
cards (no Dagster)."""
