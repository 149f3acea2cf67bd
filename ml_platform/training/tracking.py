"""MLflow tracking and registry access through one explicit ``MlflowClient``.

Nothing here reads or writes MLflow's fluent global state (``mlflow.set_tracking_uri``, the
active run): two stores can be used side by side in one process, and a run never leaks its URI
into the next. Calls are retried with exponential backoff only when the error is transient (the
store is unreachable, busy or overloaded); any other error is raised at once, as itself.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

from mlflow.entities import RunInfo
from mlflow.tracking import MlflowClient

T = TypeVar("T")
MODEL_REQUIREMENTS = ("scikit-learn", "numpy", "pandas", "scipy", "skops")
log = logging.getLogger(__name__)


class TrackingUnavailable(RuntimeError):
    """The tracking store stayed unreachable through every retry; training refuses to run
    untracked."""


# An HTTP store answered with a status worth retrying (MLflow's own HTTP retries, which cover
# 408/429/5xx, ran out; or MLFLOW_HTTP_REQUEST_MAX_RETRIES is 0).
_HTTP_TRANSIENT = re.compile(
    r"too many (?:408|429|5\d\d) error responses|"
    r"error code (?:408|429|5\d\d) != 200"
)
# A database store's driver errors that go away by themselves. MLflow labels every SQLAlchemy
# OperationalError TEMPORARILY_UNAVAILABLE, deterministic ones ("no such table", "unable to
# open database file") included, so the message decides.
_DB_TRANSIENT = (
    "database is locked",
    "database table is locked",
    "could not connect",
    "connection refused",
    "connection reset",
    "server closed the connection",
    "terminating connection",
    "connection timed out",
    "timeout expired",
    "too many connections",
    "the database system is starting up",
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes: MLflow wraps transport errors (``raise MlflowException(...)``
    inside ``except``, so the original is the context)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the call can help: connection refused or reset, timeouts, HTTP 408,
    429 and 5xx, a locked SQLite file, a database that refuses connections. Everything else
    (a missing run, an invalid parameter, a permission error, a bug) is deterministic."""
    import requests
    import sqlalchemy.exc
    from mlflow.exceptions import RestException

    for err in _chain(exc):
        if isinstance(
            err,
            ConnectionError
            | TimeoutError
            | requests.ConnectionError
            | requests.Timeout
            | requests.exceptions.RetryError,
        ):
            return True
        if isinstance(err, RestException):
            status = err.get_http_status_code()
            if status >= 500 or status in (408, 429):
                return True
        if isinstance(err, sqlalchemy.exc.DBAPIError | sqlite3.OperationalError):
            message = str(err).lower()
            if any(marker in message for marker in _DB_TRANSIENT):
                return True
        if _HTTP_TRANSIENT.search(str(err)):
            return True
    return False


def with_retries(
    fn: Callable[[], T],
    what: str,
    attempts: int = 4,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
) -> T:
    """Call ``fn``; retry transient errors with exponential backoff. A deterministic error is
    raised at once, unchanged (with a note naming ``what``); a transient one that outlasts
    ``attempts`` becomes TrackingUnavailable, which names ``what`` and the last error."""
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                exc.add_note(f"(tracking call: {what}; not retried: not a transient error)")
                raise
            last = exc
            if attempt < attempts:
                delay = min(base_delay * 2 ** (attempt - 1), max_delay)
                log.warning(
                    "transient tracking error while trying to %s (attempt %d of %d), "
                    "retrying in %.1f s: %s",
                    what,
                    attempt,
                    attempts,
                    delay,
                    f"{exc}"[:300],
                )
                time.sleep(delay)
    raise TrackingUnavailable(
        f"MLflow tracking store unreachable while trying to {what} after {attempts} attempts: "
        f"{type(last).__name__}: {last}"
    ) from last


def pip_requirements() -> list[str]:
    return [f"{name}=={version(name)}" for name in MODEL_REQUIREMENTS]


class Tracking:
    """One tracking/registry URI, its client, and where new experiments put their artifacts."""

    def __init__(
        self,
        tracking_uri: str,
        artifact_root: Path | None = None,
        attempts: int = 4,
        base_delay: float = 0.5,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.attempts = attempts
        self.base_delay = base_delay
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def call(self, fn: Callable[[], T], what: str) -> T:
        return with_retries(fn, what, attempts=self.attempts, base_delay=self.base_delay)

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
        self.call(
            lambda: self.client.search_experiments(max_results=1),
            f"reach the tracking store at {self.tracking_uri}",
        )

    @contextmanager
    def run(self, experiment_id: str, run_name: str, tags: dict[str, str]) -> Iterator[RunInfo]:
        """Create a run, yield its info (``run_id``, ``experiment_id``), end it FINISHED, or
        FAILED (KILLED on interrupt) when the body raises. Nothing is made "active": every
        call names the run."""
        info = self.call(
            lambda: self.client.create_run(experiment_id, run_name=run_name, tags=tags).info,
            f"create the run '{run_name}'",
        )
        run_id = info.run_id
        try:
            yield info
        except BaseException as exc:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            with contextlib.suppress(Exception):  # the body's error is the one to report
                self.end_run(run_id, status)
            raise
        self.end_run(run_id, "FINISHED")

    def end_run(self, run_id: str, status: str) -> None:
        self.call(
            lambda: self.client.set_terminated(run_id, status=status),
            f"end run {run_id} as {status}",
        )

    def log_batch(
        self,
        run_id: str,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        model_id: str | None = None,
        what: str = "log to the run",
    ) -> None:
        """Params, metrics (step 0, optionally linked to a logged model) and tags in one
        call; MlflowClient splits it into the store's batch limits."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        self.call(
            lambda: self.client.log_batch(
                run_id,
                metrics=[
                    Metric(k, float(v), now, 0, model_id=model_id)
                    for k, v in (metrics or {}).items()
                ],
                params=[Param(k, str(v)) for k, v in (params or {}).items()],
                tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
            ),
            f"{what} {run_id}",
        )

    def log_child_run(
        self,
        experiment_id: str,
        parent_run_id: str,
        run_name: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        tags: dict[str, str],
        steps: dict[int, float] | None = None,
        step_metric: str = "intermediate",
        status: str = "FINISHED",
    ) -> str:
        """A nested run in three calls (create, one batch, terminate): trials are many and
        the tracking overhead must stay a small share of training time."""
        from mlflow.entities import Metric, Param

        # Each call retried on its own: retrying creation after a later failure would
        # duplicate the trial's run.
        run = self.call(
            lambda: self.client.create_run(
                experiment_id, run_name=run_name, tags={**tags, "mlflow.parentRunId": parent_run_id}
            ),
            f"create nested run '{run_name}'",
        )
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        batch += [Metric(step_metric, float(v), now, s) for s, v in (steps or {}).items()]
        self.call(
            lambda: self.client.log_batch(
                run_id, metrics=batch, params=[Param(k, str(v)) for k, v in params.items()]
            ),
            f"log nested run '{run_name}'",
        )
        self.call(
            lambda: self.client.set_terminated(run_id, status=status),
            f"end nested run '{run_name}'",
        )
        return run_id

    def log_sklearn_model(
        self,
        experiment_id: str,
        run_id: str,
        model: Any,
        params: dict[str, str],
        name: str = "model",
        **save_kwargs: Any,
    ) -> str:
        """Log ``model`` as an MLflow 3 logged model of run ``run_id``; returns its
        ``models:/<model_id>`` URI.

        ``mlflow.sklearn.log_model`` resolves the store from the global tracking URI and the
        active run, so this does its steps with our client instead: create the logged model,
        link it to the run as an output, ``mlflow.sklearn.save_model`` (signature, example,
        requirements in ``save_kwargs``), upload, and mark it READY (FAILED if a step fails).
        """
        import mlflow.sklearn
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus
        from mlflow.models import Model

        logged = self.call(
            lambda: self.client.create_logged_model(
                experiment_id, name=name, source_run_id=run_id, params=params
            ),
            f"create the logged model of run {run_id}",
        )
        model_id = logged.model_id
        try:
            self.call(
                lambda: self.client.log_outputs(run_id, [LoggedModelOutput(model_id, 0)]),
                f"link model {model_id} to run {run_id}",
            )
            with tempfile.TemporaryDirectory(prefix="model-") as tmp:
                path = Path(tmp) / name
                mlflow.sklearn.save_model(
                    model,
                    str(path),
                    mlflow_model=Model(
                        artifact_path=logged.artifact_location,
                        run_id=run_id,
                        model_id=model_id,
                        model_uuid=model_id,
                    ),
                    **save_kwargs,
                )
                self.call(
                    lambda: self.client.log_model_artifacts(model_id, str(path)),
                    f"upload model {model_id}",
                )
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.finalize_logged_model(model_id, LoggedModelStatus.FAILED)
            raise
        self.call(
            lambda: self.client.finalize_logged_model(model_id, LoggedModelStatus.READY),
            f"finalize model {model_id}",
        )
        return f"models:/{model_id}"

    def artifact_location(self, model_uri: str) -> str:
        """Where the model at ``model_uri`` is stored, with ``models:/`` URIs (a logged model
        id, ``<name>/<version>``, ``<name>@<alias>``) resolved by this client. MLflow's own
        resolution of ``models:/`` (its ModelsArtifactRepository) asks the global registry
        URI whatever ``download_artifacts`` is told, so it is not used for them."""
        location = model_uri
        for _ in range(3):  # a registered version's source may itself be models:/<model_id>
            if not location.startswith("models:/"):
                return location
            ref = location.removeprefix("models:/").rstrip("/")
            if "/" not in ref and "@" not in ref:
                location = self.call(
                    partial(self._artifact_location, ref), f"locate logged model {ref}"
                )
                continue
            if "@" in ref:
                name, alias = ref.split("@", 1)
                version = self.call(
                    partial(self._version_by_alias, name, alias), f"resolve {location}"
                )
            else:
                name, version = ref.split("/", 1)
            location = self.call(
                partial(self.client.get_model_version_download_uri, name, version),
                f"locate {location}",
            )
        raise ValueError(f"'{model_uri}' does not resolve to a storage location")

    def _artifact_location(self, model_id: str) -> str:
        return str(self.client.get_logged_model(model_id).artifact_location)

    def _version_by_alias(self, name: str, alias: str) -> str:
        return str(self.client.get_model_version_by_alias(name, alias).version)

    def local_model_dir(self, model_uri: str, dst: Path | None = None) -> str:
        """A local directory holding the model at ``model_uri`` (``models:/...``, ``runs:/...``
        or a path), resolved against this store, not the process's global one. A model in a
        local artifact store is used where it is, not copied."""
        import mlflow.artifacts

        location = self.artifact_location(model_uri)
        return self.call(
            lambda: mlflow.artifacts.download_artifacts(
                artifact_uri=location,
                dst_path=None if dst is None else str(dst),
                tracking_uri=self.tracking_uri,
                registry_uri=self.tracking_uri,
            ),
            f"download model {model_uri}",
        )

    def load_sklearn_model(self, model_uri: str) -> Any:
        import mlflow.sklearn

        return mlflow.sklearn.load_model(self.local_model_dir(model_uri))

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
    is done and raises the first call's error as it was (TrackingUnavailable when retries ran
    out, the real error otherwise); nothing submitted is dropped. Use it as a context manager
    around the work that submits."""

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
            self.close()  # raises: stop training as soon as tracking is known to fail
        self._calls.put(call)

    def close(self) -> None:
        if self._thread.is_alive():
            self._calls.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
            return
        # the work already failed: drain the queue, but let the work's own error propagate
        with contextlib.suppress(Exception):
            self.close()
