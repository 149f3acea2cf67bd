"""A second Python process beside in-process runs, for steps whose libraries are slow to import.

``ml-platform run`` executes the whole job in one process. Its first seconds go to importing
Dagster, MLflow and dagster-dbt on one core while the other core idles; then the validation
step imports pandera and Great Expectations and builds a GX context, and the feature registry
imports Feast (together about 8 s, all GIL-bound, so no thread in the run's process can hide
them). The sidecar is a plain Python child process started with the run: it imports those
libraries on the other core while the run's process starts Dagster, and those steps hand it their
framework-free work (functions of ``ml_platform.pipeline`` and ``ml_platform.featurestore``
that read and write files under the platform home).

The sidecar outlives the run: a later run in the same process (the benchmark, a notebook)
finds it warm. It ends with this process, or as soon as this process's end closes its input.

``call(fn, *args)`` runs ``fn`` in the sidecar when one is running and alive, otherwise here: the
result is the same either way. Under ``dagster dev`` there is no sidecar; each step has a
process of its own there anyway. An exception in the sidecar is raised here with its type and
the sidecar's traceback as a note. If the sidecar dies, the call runs here instead.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import pickle
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
_active: Sidecar | None = None


class SidecarDied(RuntimeError):
    """The sidecar process ended before it answered."""


def warm(modules: Sequence[str], calls: Sequence[str | Callable[[], object]] = ()) -> list[str]:
    """Import ``modules`` and run ``calls`` (functions, or ``"module:function"`` names, which
    can travel to the sidecar), in order; the failures, described. A failure is only
    reported: the step that needs the module or the call meets the error itself."""
    failed = []
    for item in [*modules, *calls]:
        name = item if isinstance(item, str) else getattr(item, "__qualname__", repr(item))
        try:
            if callable(item):
                item()
            else:
                module, _, function = item.partition(":")
                imported = importlib.import_module(module)
                if function:
                    getattr(imported, function)()
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
            log.debug("warm-up of %s failed", name, exc_info=True)
    return failed


class Sidecar:
    """The child process and the calls in flight, answered in the order they were sent."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ml_platform.pipeline.sidecar"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._lock = threading.Lock()  # the queue of calls in flight
        self._send = threading.Lock()  # one request written at a time, in queue order
        self._pending: deque[Future[Any]] = deque()
        self._alive = True
        self._reader = threading.Thread(target=self._read, name="sidecar-replies", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self._alive

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        # The import path and directory travel with each call: the function's module may live
        # on a path this process added after the sidecar started (a user's feature function).
        request = pickle.dumps((list(sys.path), os.getcwd(), pickle.dumps((fn, args))))
        with self._send:
            with self._lock:
                if not self._alive:
                    raise SidecarDied("the sidecar is not running")
                self._pending.append(future)
            try:
                self._process.stdin.write(request)  # type: ignore[union-attr]
                self._process.stdin.flush()  # type: ignore[union-attr]
            except OSError as exc:
                with self._lock:
                    if future in self._pending:
                        self._pending.remove(future)
                raise SidecarDied(f"the sidecar is not running: {exc}") from exc
        return future

    def _read(self) -> None:
        replies = self._process.stdout
        while True:
            try:
                ok, value = pickle.load(replies)  # type: ignore[arg-type]
            except Exception:  # the end, or a reply this process cannot load: stop using it
                break
            with self._lock:
                future = self._pending.popleft()
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        with self._lock:
            self._alive = False
            pending, self._pending = list(self._pending), deque()
        if self._process.poll() is None:
            self._process.kill()
        code = self._process.wait()
        for future in pending:
            future.set_exception(SidecarDied(f"the sidecar exited with code {code}"))

    def close(self, timeout: float = 30.0) -> None:
        """Let the calls in flight finish, then end the process."""
        with suppress(OSError):
            self._process.stdin.close()  # type: ignore[union-attr]
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join()


def ensure(modules: Sequence[str] = (), calls: Sequence[str] = ()) -> Sidecar:
    """This process's sidecar, started if none is alive, with ``modules`` and ``calls`` (see
    ``warm``) queued at once. It serves every later run in this process (warm from the first
    one) and ends when this process does."""
    global _active
    sidecar = active()
    if sidecar is None:
        sidecar = _active = Sidecar()
        atexit.register(sidecar.close)
    sidecar.submit(warm, tuple(modules), tuple(calls))
    return sidecar


@contextmanager
def running(modules: Sequence[str] = (), calls: Sequence[str] = ()) -> Iterator[Sidecar]:
    """A sidecar of its own for the block, closed when the block ends."""
    global _active
    sidecar = Sidecar()
    sidecar.submit(warm, tuple(modules), tuple(calls))
    previous, _active = _active, sidecar
    try:
        yield sidecar
    finally:
        _active = previous
        sidecar.close()


def active() -> Sidecar | None:
    """The running sidecar, if it is alive."""
    return _active if _active is not None and _active.alive else None


def prewarm(modules: Sequence[str]) -> bool:
    """Queue imports in the sidecar (not waited for); False if there is no sidecar."""
    sidecar = active()
    if sidecar is None:
        return False
    try:
        sidecar.submit(warm, tuple(modules))
    except SidecarDied:
        return False
    return True


def call(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the sidecar if one is running, else in this process."""
    sidecar = active()
    if sidecar is not None:
        try:
            return sidecar.submit(fn, *args).result()
        except SidecarDied as exc:
            log.warning("sidecar unavailable (%s); running %s here", exc, fn.__qualname__)
    return fn(*args)


def _serve() -> None:
    """The child: answer pickled ``(fn, args)`` requests from stdin until it closes."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever the work prints goes to stderr, never into the replies
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    while True:
        try:
            path, cwd, call = pickle.load(requests)
        except EOFError:
            return
        sys.path[:] = path
        if os.getcwd() != cwd:
            os.chdir(cwd)
        try:
            fn, args = pickle.loads(call)
            reply = pickle.dumps((True, fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            exc.add_note(f"raised in the sidecar process:\n{traceback.format_exc()}")
            try:
                reply = pickle.dumps((False, exc))
            except Exception:
                reply = pickle.dumps((False, RuntimeError(
                    f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")))
        replies.write(reply)
        replies.flush()


if __name__ == "__main__":
    _serve()
