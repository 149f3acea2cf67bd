"""Entry point for `dagster dev` / `dg`: every definition under ml_platform/defs/.

Built at import, once per process: the multiprocess executor's forkserver preloads this module,
so every step process it forks starts with the definitions already loaded (about 1.5 s and the
imports of the whole stack saved per step; docs/operations.md)."""

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
