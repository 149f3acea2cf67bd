"""MLflow tracking and registry access: retries, experiments with a home-local artifact root,
model logging with explicit requirements (skips slow environment inference)."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

from mlflow.tracking import MlflowClient

T = TypeVar("T")
MODEL_REQUIREMENTS = ("scikit-learn", "numpy", "pandas", "scipy", "skops")


class TrackingUnavailable(RuntimeError):
    """The tracking store could not be reached; training refuses to run untracked."""


def with_retries(fn: Callable[[], T], what: str, attempts: int = 4, base_delay: float = 0.5
                 ) -> T:
    """Call ``fn`` with exponential backoff; raise TrackingUnavailable naming ``what``."""
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:  # the MLflow client raises many types for an unreachable store
            last = exc
            if attempt < attempts - 1:
                time.sleep(base_delay * 2**attempt)
    raise TrackingUnavailable(
        f"MLflow tracking store unreachable while trying to {what} after {attempts} attempts: "
        f"{type(last).__name__}: {last}") from last


def pip_requirements() -> list[str]:
    return [f"{name}=={version(name)}" for name in MODEL_REQUIREMENTS]


@contextmanager
def user_tracking_uri_kept() -> Iterator[None]:
    """Put back, on exit, the ``MLFLOW_TRACKING_URI`` the user had on entry.

    ``mlflow.set_tracking_uri`` also writes that variable (for subprocesses), and the platform
    reads it as the user's override of the home's store. Without this, the next run in the same
    process, on another home, would track into this run's store."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # None unsets the variable and MLflow's default


class Tracking:
    """A tracking URI plus where new experiments put their artifacts."""

    def __init__(self, tracking_uri: str, artifact_root: Path | None = None,
                 attempts: int = 4) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.attempts = attempts
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def call(self, fn: Callable[[], T], what: str) -> T:
        return with_retries(fn, what, attempts=self.attempts)

    def experiment_id(self, name: str) -> str:
        def get_or_create() -> str:
            exp = self.client.get_experiment_by_name(name)
            if exp is not None:
                return exp.experiment_id
            location = (self.artifact_root / name).as_uri() if self.artifact_root else None
            return self.client.create_experiment(name, artifact_location=location)

        return self.call(get_or_create, f"open experiment '{name}'")

    def probe(self) -> None:
        """Fail fast, before anything is trained or written, if the store is unreachable."""
        self.call(lambda: self.client.search_experiments(max_results=1),
                  f"reach the tracking store at {self.tracking_uri}")

    @contextmanager
    def run(self, experiment_id: str, run_name: str, tags: dict[str, str]) -> Iterator[str]:
        """Start an MLflow run, make it the active run, end it FINISHED or FAILED."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        active = self.call(lambda: mlflow.start_run(experiment_id=experiment_id,
                                                    run_name=run_name, tags=tags),
                           f"start a run in experiment {experiment_id}")
        with active:
            yield active.info.run_id

    def log_child_run(self, experiment_id: str, parent_run_id: str, run_name: str,
                      params: dict[str, Any], metrics: dict[str, float],
                      tags: dict[str, str], steps: dict[int, float] | None = None,
                      step_metric: str = "intermediate", status: str = "FINISHED") -> str:
        """A nested run in three calls (create, one batch, terminate): trials are many and
        the tracking overhead must stay a small share of training time."""
        from mlflow.entities import Metric, Param

        # Each call retried on its own: retrying creation after a later failure would
        # duplicate the trial's run.
        run = self.call(lambda: self.client.create_run(experiment_id, run_name=run_name, tags={
            **tags, "mlflow.parentRunId": parent_run_id}), f"create nested run '{run_name}'")
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        batch += [Metric(step_metric, float(v), now, s) for s, v in (steps or {}).items()]
        self.call(lambda: self.client.log_batch(
            run_id, metrics=batch, params=[Param(k, str(v)) for k, v in params.items()]),
            f"log nested run '{run_name}'")
        self.call(lambda: self.client.set_terminated(run_id, status=status),
                  f"end nested run '{run_name}'")
        return run_id

    def run_url(self, experiment_id: str, run_id: str, ui: str = "http://127.0.0.1:5000") -> str:
        return f"{ui}/#/experiments/{experiment_id}/runs/{run_id}"

    def version_by_alias(self, model: str, alias: str) -> Any | None:
        from mlflow.exceptions import MlflowException

        def get() -> Any | None:
            try:
                return self.client.get_model_version_by_alias(model, alias)
            except MlflowException as exc:
                if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc):
                    return None
                raise

        return self.call(get, f"read alias '{alias}' of '{model}'")


class BackgroundWriter:
    """Tracking calls run in order on one writer thread, so the training thread does not wait
    for the store (a nested run per trial is three writes). ``close()`` waits until every call
    is done and raises TrackingUnavailable for the first one that failed; nothing submitted is
    dropped. Use it as a context manager around the work that submits."""

    def __init__(self, name: str = "tracking-writer") -> None:
        self._calls: queue.Queue[Callable[[], object] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            if self._error is None:  # after a failure the rest would fail the same way
                try:
                    call()
                except BaseException as exc:  # noqa: BLE001 - re-raised by close()
                    self._error = exc

    def submit(self, call: Callable[[], object]) -> None:
        if self._error is not None:
            self.close()  # raises: stop training as soon as tracking is known to be down
        self._calls.put(call)

    def close(self) -> None:
        if self._thread.is_alive():
            self._calls.put(None)
            self._thread.join()
        if self._error is not None:
            if isinstance(self._error, TrackingUnavailable):
                raise self._error
            raise TrackingUnavailable(f"a tracking call failed: {type(self._error).__name__}: "
                                      f"{self._error}") from self._error

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
            return
        # the work already failed: drain the queue, but let the work's own error propagate
        with contextlib.suppress(TrackingUnavailable):
            self.close()
