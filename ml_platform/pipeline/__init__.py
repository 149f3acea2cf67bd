"""The stages of a declared pipeline as plain functions (no Dagster): the assets call these."""
