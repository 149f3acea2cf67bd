"""The run's sidecar process: calls run there when it is up and here when it is not, with the
same results and the same errors."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from ml_platform.pipeline import sidecar


def test_calls_run_in_the_sidecar_and_inline_without_one() -> None:
    assert sidecar.call(os.getpid) == os.getpid()
    with sidecar.running(modules=("json",), calls=("os:getpid",)) as side:
        assert sidecar.active() is side
        child = sidecar.call(os.getpid)
        assert child != os.getpid()
        assert sidecar.call(os.getpid) == child  # one process for the whole block
        assert sidecar.call(divmod, 17, 5) == (3, 2)
    assert sidecar.active() is None
    assert not side.alive


def test_an_error_in_the_sidecar_is_raised_here_with_its_type_and_traceback() -> None:
    with sidecar.running(), pytest.raises(ValueError, match="invalid literal") as info:
        sidecar.call(int, "not a number")
    assert any("raised in the sidecar process" in note for note in info.value.__notes__)


def test_failed_warm_ups_are_reported_not_raised() -> None:
    failed = sidecar.warm(("json", "ml_platform_no_such_module"), ("os:no_such_function",))
    assert len(failed) == 2
    assert failed[0].startswith("ml_platform_no_such_module: ModuleNotFoundError")
    assert failed[1].startswith("os:no_such_function: AttributeError")


def test_a_function_on_a_path_added_after_the_start_is_found(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    (tmp_path / "user_side_module.py").write_text("import os\n\ndef where():\n"
                                                  "    return os.getpid(), os.getcwd()\n")
    with sidecar.running():
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.chdir(tmp_path)
        import user_side_module

        pid, cwd = sidecar.call(user_side_module.where)
    assert pid != os.getpid()
    assert Path(cwd) == tmp_path
    sys.modules.pop("user_side_module", None)


def test_a_dead_sidecar_falls_back_to_this_process() -> None:
    with sidecar.running() as side:
        sidecar.call(os.getpid)
        side._process.kill()
        side._reader.join(10)
        assert not side.alive
        assert sidecar.active() is None
        assert sidecar.call(os.getpid) == os.getpid()
        with pytest.raises(sidecar.SidecarDied):
            side.submit(os.getpid)


def test_a_call_in_flight_when_the_sidecar_dies_fails_with_sidecar_died() -> None:
    with sidecar.running() as side:
        assert side.submit(os.getpid).result(30) != os.getpid()
        pending = side.submit(time.sleep, 30)
        side._process.kill()
        with pytest.raises(sidecar.SidecarDied, match="exited with code"):
            pending.result(10)


class _LoadsOnlyInTheSidecar(Exception):
    """An error whose reply this process cannot load (its reconstruction fails here)."""

    def __reduce__(self) -> tuple:
        return (_refuse, ())


def _refuse() -> None:
    raise TypeError("cannot be rebuilt here")


def _raise_unloadable() -> None:
    raise _LoadsOnlyInTheSidecar()


def test_a_reply_that_cannot_be_loaded_ends_the_sidecar_and_the_call_runs_here() -> None:
    with sidecar.running() as side:
        future = side.submit(_raise_unloadable)
        with pytest.raises(sidecar.SidecarDied):
            future.result(30)
        assert not side.alive
        assert sidecar.call(os.getpid) == os.getpid()
