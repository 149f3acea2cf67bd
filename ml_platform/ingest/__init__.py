"""Ingest: landed raw files, their snapshots and data versions, atomic writes, the demo data."""
