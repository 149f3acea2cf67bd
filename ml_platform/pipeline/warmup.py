"""Warm the run's process while a subprocess does a step's work.

The dbt step waits several seconds for its `dbt build` subprocess, which keeps one core busy;
the run's own process sits idle on the other. The later steps' fixed costs fit in that gap:
importing skops (which lists every scikit-learn estimator), GitPython and matplotlib, and
opening the MLflow tracking store (which creates its tables on a new home). ``Warmup`` pays
them on a thread started beside the subprocess and joined before the step ends, so no step
ever races it. Feast, for the feature registry, is warmed in the run's sidecar when there is
one (where the registry is applied), else on the same thread. It changes no result: a failure
here is only logged, and the step that needs the module or the store meets the error itself,
with its own message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ml_platform.pipeline import sidecar

# What the steps after dbt import that the definitions do not: model logging and the infra
# check (skops), the run context (GitPython), the search plots (matplotlib), and the feature
# registry's Feast and the ibis backend its apply uses. The registry's apply runs in the run's
# sidecar when there is one (``ml_platform.pipeline.sidecar``), so those two are warmed there.
MODULES = ("skops.io", "git", "ml_platform.core.plots")
SIDECAR_MODULES = ("ml_platform.featurestore.feast_objects", "ibis")


class Warmup:
    """``with Warmup(tracking.probe): ...`` imports ``MODULES`` and runs the given calls on a
    thread while the block runs, and waits for the thread when the block ends."""

    def __init__(self, *calls: Callable[[], object], modules: tuple[str, ...] = MODULES,
                 sidecar_modules: tuple[str, ...] = SIDECAR_MODULES) -> None:
        self.calls, self.modules, self.sidecar_modules = calls, modules, sidecar_modules
        self.in_sidecar = False
        self.seconds = 0.0
        self.failed: list[str] = []
        self._thread = threading.Thread(target=self._work, name="warmup", daemon=True)

    def _work(self) -> None:
        started = time.perf_counter()
        self.failed = sidecar.warm(self.modules, self.calls)
        self.seconds = time.perf_counter() - started

    def __enter__(self) -> Warmup:
        self.in_sidecar = sidecar.prewarm(self.sidecar_modules)
        if not self.in_sidecar:
            self.modules = (*self.modules, *self.sidecar_modules)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join()

    def summary(self) -> str:
        failed = f"; not warmed: {'; '.join(self.failed)}" if self.failed else ""
        queued = (f"; {len(self.sidecar_modules)} more modules in the sidecar"
                  if self.in_sidecar else "")
        return (f"warmed {len(self.modules)} modules and {len(self.calls)} stores in "
                f"{self.seconds:.1f} s beside the subprocess{queued}{failed}")
