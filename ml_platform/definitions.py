"""Entry point for `dagster dev` / `dg`: every definition under ml_platform/defs/.

Built at import, once per process: the code server, each run worker (which executes the whole
run in-process, ml_platform/defs/resources.py) and `ml-platform run` load it once."""

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
