"""Framework-free model-side code: no Dagster imports here."""
