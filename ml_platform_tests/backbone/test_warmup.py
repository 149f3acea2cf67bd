"""The warm-up beside the dbt subprocess: it does its work, never fails a step, and is over
when the step ends."""

from __future__ import annotations

import sys
import threading
import time

from ml_platform.pipeline import sidecar
from ml_platform.pipeline.warmup import Warmup


def test_warmup_imports_and_calls_on_another_thread_and_joins() -> None:
    seen: list[str] = []

    def open_store() -> None:
        time.sleep(0.2)  # still busy when the block ends: the exit waits for it
        seen.append(threading.current_thread().name)

    with Warmup(open_store, modules=("ml_platform.core.plots",), sidecar_modules=()) as warmup:
        pass
    assert seen == ["warmup"]
    assert "ml_platform.core.plots" in sys.modules
    assert warmup.failed == []
    assert "warmed 1 modules and 1 stores" in warmup.summary()


def test_a_failed_warmup_is_reported_not_raised() -> None:
    def unreachable() -> None:
        raise ConnectionError("tracking store down")

    with Warmup(unreachable, modules=("ml_platform_no_such_module",),
                sidecar_modules=()) as warmup:
        pass
    assert len(warmup.failed) == 2
    summary = warmup.summary()
    assert "ml_platform_no_such_module: ModuleNotFoundError" in summary
    assert "unreachable: ConnectionError: tracking store down" in summary


def test_sidecar_modules_are_warmed_in_the_sidecar_when_one_runs() -> None:
    with sidecar.running() as side, Warmup(modules=(), sidecar_modules=("colorsys",)) as warmup:
        pass
    assert warmup.in_sidecar and warmup.modules == ()
    assert "1 more modules in the sidecar" in warmup.summary()
    assert not side.alive  # closed with the block, after the queued import ran
    # no sidecar: they are warmed here
    with Warmup(modules=(), sidecar_modules=("colorsys",)) as warmup:
        pass
    assert not warmup.in_sidecar and warmup.modules == ("colorsys",)
