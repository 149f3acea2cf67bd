"""The service state: one :class:`Deployment` per pipeline, re-resolved in the background, the
rollout each pipeline is under, and the request path (features in the request or from the
online store, then the numpy scorer; the challenger in shadow or A/B; the prediction log).

Nothing here blocks the event loop for long: model loads, the Feast store's opening and the
rollout store's reads run in worker threads; a request does one batched online read (~0.3 ms
here) and one model call per arm; the shadow challenger scores after the response is sent;
logged rows go to a buffer that a thread writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ml_platform.home import PlatformHome
from ml_platform.serving.errors import ServingError
from ml_platform.serving.features import open_store
from ml_platform.serving.metrics import Metrics
from ml_platform.serving.models import (
    CHALLENGER,
    CHAMPION,
    Deployment,
    ModelLoader,
    ServedModel,
    refreshed,
)
from ml_platform.serving.prediction_log import PredictionLog
from ml_platform.serving.rollout import Rollout, RolloutStore, serves_challenger
from ml_platform.serving.rollout_state import RolloutState, rollout_state
from ml_platform.spec import PipelineSpec

log = logging.getLogger(__name__)
DEFAULT_REFRESH_SECONDS = 10.0
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SHADOW_BACKLOG = 256  # requests waiting for the shadow challenger before it skips some
SHADOW_STOP_SECONDS = 10.0  # at shutdown, how long queued shadow work may take


def _alert(
    home: PlatformHome, pipeline: str, title: str, details: dict[str, Any], severity: str
) -> None:
    """Serving's alerts (a model that fails to load; a rollout that cannot run)."""
    from ml_platform.alerting import Alert, Notifier

    Notifier.from_env(home.alerts_log).notify(
        Alert(
            kind="model_load_failed",
            pipeline=pipeline,
            title=title,
            details=details,
            severity=severity,  # type: ignore[arg-type]
        )
    )


@dataclass(frozen=True)
class Scored:
    """One arm's scores of some rows of a batch."""

    model: ServedModel
    positions: list[int]  # the rows' indices in the request
    scores: list[float]
    vectors: list[list[Any]]  # each row's model input, in the model's column order
    seconds: float
    # Multiclass: each row's predicted class (the most probable) and every class's probability.
    labels: list[int] | None = None
    probabilities: list[dict[str, float]] | None = None

    def label(self, k: int, threshold: float, classifier: bool) -> int | None:
        """Row ``k``'s label: the predicted class (multiclass), score >= threshold (binary)."""
        if self.labels is not None:
            return self.labels[k]
        return int(self.scores[k] >= threshold) if classifier else None


def multiclass_scores(
    model: ServedModel, vectors: list[list[Any]]
) -> tuple[list[float], list[int], list[dict[str, float]]]:
    """The probability of each row's most probable class (ties: the first in the model's class
    order, as ``predict`` picks), that class, and every class's probability keyed by the class
    value as text (JSON object keys are text)."""
    import numpy as np

    proba = model.scorer.probabilities(vectors)
    classes = [int(c) for c in model.scorer.classes]  # validated integer classes
    best = np.argmax(proba, axis=1)
    names = [str(c) for c in classes]
    return (
        proba[np.arange(len(best)), best].tolist(),
        [classes[j] for j in best],
        [dict(zip(names, row, strict=True)) for row in proba.tolist()],
    )


@dataclass(frozen=True)
class Answer:
    """What the endpoint returns, and the shadow work to run after the response."""

    predictions: list[dict[str, Any]]
    versions: str  # the serving version(s), for the request metrics
    after_response: Callable[[], Awaitable[None]] | None = None


class Service:
    def __init__(
        self,
        home: PlatformHome,
        specs: Sequence[PipelineSpec],
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        prediction_log: bool = True,
        log_flush_seconds: float = 1.0,
        shadow_backlog: int = SHADOW_BACKLOG,
    ) -> None:
        self.home = home
        self.specs = {s.name: s for s in specs}
        self.refresh_seconds = refresh_seconds
        self.metrics = Metrics()
        self.deployments = {name: Deployment(name) for name in self.specs}
        self.rollouts = {name: RolloutState() for name in self.specs}
        self.stores = {name: RolloutStore(home, name) for name in self.specs}
        self.log_predictions = prediction_log
        self.log_flush_seconds = log_flush_seconds
        self.logs: dict[str, PredictionLog] = {}
        self.store: Any | None = None
        self.loader: ModelLoader | None = None
        self._task: asyncio.Task[None] | None = None
        self._shadow_warned: set[tuple[str, str]] = set()
        # The shadow challenger scores in a daemon thread of its own, so a slow or hanging
        # challenger never holds the event loop (nor the process's exit); at most
        # `shadow_backlog` requests wait for it, more are skipped and counted.
        self._shadow_queue: queue.Queue[Callable[[], None] | None] = queue.Queue(shadow_backlog)
        self._shadow_thread = threading.Thread(
            target=self._shadow_worker, name="shadow-challenger", daemon=True
        )
        for name in self.specs:
            self.metrics.rollout.labels(name, "off").set(1.0)

    @property
    def ready(self) -> bool:
        return self.loader is not None and all(d.ready for d in self.deployments.values())

    def _notify(self, pipeline: str, alias: str, kept: str | None, error: str) -> None:
        """A model that fails to load (an alias moved and serving did not follow)."""
        self.metrics.model_loads.labels(pipeline, alias, "failed").inc()
        kept_text = f"still serving version {kept}" if kept else "nothing to serve"
        _alert(
            self.home,
            pipeline,
            f"serving could not load {pipeline}@{alias}; {kept_text}",
            {"alias": alias, "serving_version": kept, "error": error},
            "error",
        )

    def _rollout_changed(self, name: str, before: RolloutState, after: RolloutState) -> None:
        for mode in ("off", "shadow", "ab"):
            self.metrics.rollout.labels(name, mode).set(1.0 if after.mode == mode else 0.0)
        if after.problem is not None and after.problem != before.problem:
            log.error("serving %s: rollout not running: %s", name, after.problem)
            rollout = after.rollout
            assert rollout is not None
            _alert(
                self.home,
                name,
                f"{name}: {rollout.mode} rollout {rollout.id} cannot run; serving the champion",
                {"rollout_id": rollout.id, "problem": after.problem},
                "error",
            )
        elif after.mode != before.mode:
            log.info("serving %s: rollout mode now %s", name, after.mode)

    async def refresh(self) -> None:
        """Re-resolve every alias and re-read every rollout; each pipeline's deployment and
        rollout state are swapped in one assignment each."""
        if self.loader is None:
            self.store = await asyncio.to_thread(open_store, self.home)
            self.loader = ModelLoader(self.home, self.store)
        for name, spec in self.specs.items():
            before = self.deployments[name]
            after = await asyncio.to_thread(refreshed, self.loader, spec, before, self._notify)
            for alias in (CHAMPION, CHALLENGER):
                old, new = getattr(before, alias), getattr(after, alias)
                if new is not None and new is not old:
                    self.metrics.model_loads.labels(name, alias, "ok").inc()
            self.deployments[name] = after  # the swap: requests started before keep `before`
            try:
                recorded = await asyncio.to_thread(self.stores[name].current)
            except Exception:  # an unreadable store: keep the last known state
                log.exception("serving %s: could not read the rollout store", name)
                continue
            state = rollout_state(recorded, after)
            previous = self.rollouts[name]
            if state != previous:
                self.rollouts[name] = state
                self._rollout_changed(name, previous, state)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except Exception:  # the loop must outlive any one failure
                log.exception("serving: alias refresh failed")

    async def start(self) -> None:
        self._shadow_thread.start()
        if self.log_predictions:
            for name in self.specs:
                self.logs[name] = PredictionLog(
                    self.home,
                    name,
                    flush_seconds=self.log_flush_seconds,
                    on_drop=self._log_dropped(name),
                )
        try:
            await self.refresh()
        except Exception:  # not ready yet; /readyz says so and the loop retries
            log.exception("serving: first model load failed")
        self._task = asyncio.create_task(self._loop())

    def _log_dropped(self, name: str) -> Callable[[str, int], None]:
        def count(reason: str, rows: int) -> None:
            self.metrics.log_dropped.labels(name, reason).inc(rows)

        return count

    def _shadow_worker(self) -> None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # OpenMP's limit is per thread: one here too, as on the loop
        while (work := self._shadow_queue.get()) is not None:
            work()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._shadow_thread.is_alive():  # finish the queued shadow work, within reason
            with contextlib.suppress(queue.Full):  # a hanging challenger: leave it behind
                await asyncio.to_thread(self._shadow_queue.put, None, True, SHADOW_STOP_SECONDS)
            await asyncio.to_thread(self._shadow_thread.join, SHADOW_STOP_SECONDS)
        for prediction_log in self.logs.values():
            await asyncio.to_thread(prediction_log.close)

    # -- the request path ------------------------------------------------------------------

    def champion(self, pipeline: str) -> ServedModel:
        model = self.deployments[pipeline].champion
        if model is None:
            raise ServingError(
                503, "not_ready", f"pipeline '{pipeline}' has no champion loaded yet"
            )
        return model

    def vectors(
        self,
        spec: PipelineSpec,
        model: ServedModel,
        rows: Sequence[dict[str, Any]],
        positions: Sequence[int] | None = None,
    ) -> list[list[Any]]:
        """Each row's model input in the model's column order: request values first, the rest
        from the online store (one read for the batch). Unknown or expired entities: 404.
        ``positions``: the rows' indices in the request (for the messages), default 0..n-1."""
        at = list(positions) if positions is not None else list(range(len(rows)))
        columns, key = model.columns, spec.entity_key
        outside = [
            (
                f"rows[{at[i]}].{key}",
                f"{key} {r[key]} is outside int64: unknown to the online store",
            )
            for i, r in enumerate(rows)
            if isinstance(r[key], int) and not INT64_MIN <= r[key] <= INT64_MAX
        ]
        if outside:
            raise ServingError(404, "unknown_entity", "entity keys outside int64", outside[:50])
        lookup = [i for i, r in enumerate(rows) if any(r.get(c) is None for c in columns)]
        stored: dict[int, dict[str, Any]] = {}
        if lookup:
            if model.online is None:
                missing = [c for c in columns if rows[lookup[0]].get(c) is None]
                raise ServingError(
                    422,
                    "missing_features",
                    f"model version {model.version} has no feature service: every feature "
                    "must be in the request",
                    [(f"rows[{at[lookup[0]]}].{c}", "required field is missing") for c in missing],
                )
            found = model.online.read([rows[i][key] for i in lookup])
            problems = []
            for i, entity in zip(lookup, found, strict=True):
                if entity.values is None:
                    problems.append(
                        (
                            f"rows[{at[i]}].{key}",
                            f"{key} {rows[i][key]!r} is unknown to the online store",
                        )
                    )
                elif entity.expired:
                    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entity.event_time))
                    problems.append(
                        (
                            f"rows[{at[i]}].{key}",
                            f"online features of {key} {rows[i][key]!r} are from "
                            f"{stamp}, older than the ttl {spec.features.ttl}",
                        )
                    )
                else:
                    stored[i] = entity.values
            if problems:
                raise ServingError(
                    404,
                    "unknown_entity",
                    f"{len(problems)} of {len(rows)} rows have no fresh online features and do "
                    "not give every feature in the request",
                    problems[:50],
                )
        out = []
        for i, r in enumerate(rows):
            base = stored.get(i, {})
            out.append([v if (v := r.get(c)) is not None else base.get(c) for c in columns])
        return out

    def _score(
        self,
        spec: PipelineSpec,
        model: ServedModel,
        rows: Sequence[dict[str, Any]],
        positions: list[int],
        vectors: list[list[Any]] | None = None,
    ) -> Scored:
        started = time.perf_counter()
        if vectors is None:
            vectors = self.vectors(spec, model, rows, positions)
        if spec.is_multiclass:
            scores, labels, probabilities = multiclass_scores(model, vectors)
            seconds = time.perf_counter() - started
            return Scored(model, positions, scores, vectors, seconds, labels, probabilities)
        scores = model.scorer.score(vectors).tolist()
        return Scored(model, positions, scores, vectors, time.perf_counter() - started)

    def predict(
        self, model: ServedModel, rows: Sequence[dict[str, Any]], request_id: str
    ) -> list[dict[str, Any]]:
        """Scores of a validated batch by ``model`` alone (no rollout, nothing logged)."""
        spec = self.specs[model.pipeline]
        scored = self._score(spec, model, rows, list(range(len(rows))))
        return self._predictions(spec, rows, [scored], request_id, [CHAMPION] * len(rows))

    def _predictions(
        self,
        spec: PipelineSpec,
        rows: Sequence[dict[str, Any]],
        parts: Sequence[Scored],
        request_id: str,
        arms: Sequence[str],
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{} for _ in rows]
        classifier, key, threshold = spec.is_classification, spec.entity_key, spec.serving.threshold
        for part in parts:
            for k, (i, s) in enumerate(zip(part.positions, part.scores, strict=True)):
                out[i] = {
                    "row": i,
                    "entity": rows[i][key],
                    "score": s,
                    "label": part.label(k, threshold, classifier),
                    "model_version": part.model.version,
                    "arm": arms[i],
                    "request_id": request_id,
                }
                if part.probabilities is not None:
                    out[i]["probabilities"] = part.probabilities[k]
            self.metrics.rows.labels(spec.name, part.model.version, arms[part.positions[0]]).inc(
                len(part.positions)
            )
            self.metrics.scoring.labels(
                spec.name, part.model.version, arms[part.positions[0]]
            ).observe(part.seconds)
        return out

    def _log(
        self,
        spec: PipelineSpec,
        rows: Sequence[dict[str, Any]],
        part: Scored,
        request_id: str,
        arm: str,
        mode: str,
        served: bool,
    ) -> None:
        prediction_log = self.logs.get(spec.name)
        if prediction_log is None:
            return
        classifier, key, threshold = spec.is_classification, spec.entity_key, spec.serving.threshold
        columns = part.model.columns
        ms = part.seconds * 1000.0
        prediction_log.append(
            [
                {
                    "request_id": request_id,
                    "row": i,
                    "entity": rows[i][key],
                    "model_version": part.model.version,
                    "arm": arm,
                    "mode": mode,
                    "served": served,
                    "score": s,
                    "label": part.label(k, threshold, classifier),
                    "latency_ms": ms,
                    "features": dict(zip(columns, vector, strict=True)),
                }
                for k, (i, s, vector) in enumerate(
                    zip(part.positions, part.scores, part.vectors, strict=True)
                )
            ]
        )

    def _challenger_failed(self, name: str, model: ServedModel, mode: str, exc: Exception) -> None:
        kind = exc.error if isinstance(exc, ServingError) else type(exc).__name__
        self.metrics.challenger_errors.labels(name, model.version, mode, kind).inc()
        if (name, model.version) not in self._shadow_warned:  # once per version, not per request
            self._shadow_warned.add((name, model.version))
            log.warning(
                "serving %s: challenger version %s failed in %s (%s): %s; the champion answers",
                name,
                model.version,
                mode,
                kind,
                exc,
            )

    def answer(self, pipeline: str, rows: Sequence[dict[str, Any]], request_id: str) -> Answer:
        """The response rows for a validated batch under the pipeline's rollout, with the
        deployment and rollout state taken once when the request starts."""
        deployment, state = self.deployments[pipeline], self.rollouts[pipeline]
        champion = deployment.champion
        if champion is None:
            raise ServingError(
                503, "not_ready", f"pipeline '{pipeline}' has no champion loaded yet"
            )
        spec, mode, challenger = self.specs[pipeline], state.mode, deployment.challenger
        everyone = list(range(len(rows)))
        if mode == "ab" and challenger is not None and state.rollout is not None:
            return self._ab(spec, champion, challenger, state.rollout, rows, request_id)
        scored = self._score(spec, champion, rows, everyone)
        arms = [CHAMPION] * len(rows)
        predictions = self._predictions(spec, rows, [scored], request_id, arms)
        self._log(spec, rows, scored, request_id, CHAMPION, mode, True)
        after = None
        if mode == "shadow" and challenger is not None:
            after = self._shadow(spec, challenger, rows, request_id, scored)
        return Answer(predictions, champion.version, after)

    def _shadow(
        self,
        spec: PipelineSpec,
        challenger: ServedModel,
        rows: Sequence[dict[str, Any]],
        request_id: str,
        champion: Scored,
    ) -> Callable[[], Awaitable[None]]:
        same_inputs = (
            challenger.feature_service == champion.model.feature_service
            and challenger.columns == champion.model.columns
        )

        def score() -> None:
            """In the shadow thread: the challenger scores the same rows (the champion's
            features when it reads the same feature service); any failure is counted."""
            try:
                vectors = champion.vectors if same_inputs else None
                scored = self._score(spec, challenger, rows, champion.positions, vectors)
                self._log(spec, rows, scored, request_id, CHALLENGER, "shadow", False)
                self.metrics.rows.labels(spec.name, challenger.version, CHALLENGER).inc(len(rows))
                self.metrics.scoring.labels(spec.name, challenger.version, CHALLENGER).observe(
                    scored.seconds
                )
            except Exception as exc:
                self._challenger_failed(spec.name, challenger, "shadow", exc)

        async def hand_over() -> None:
            """After the response: queue the work for the shadow thread, or skip it (counted)
            when the thread is that far behind (a slow or hanging challenger)."""
            try:
                self._shadow_queue.put_nowait(score)
            except queue.Full:
                self.metrics.challenger_errors.labels(
                    spec.name, challenger.version, "shadow", "backlog_full"
                ).inc()

        return hand_over

    def _ab(
        self,
        spec: PipelineSpec,
        champion: ServedModel,
        challenger: ServedModel,
        rollout: Rollout,
        rows: Sequence[dict[str, Any]],
        request_id: str,
    ) -> Answer:
        """A sticky split by entity: each row is served by its entity's arm. A challenger
        that fails leaves its rows to the champion (counted)."""
        key, share = spec.entity_key, rollout.traffic_share
        to_challenger = [
            i for i, r in enumerate(rows) if serves_challenger(spec.name, rollout.id, r[key], share)
        ]
        chosen = set(to_challenger)
        to_champion = [i for i in range(len(rows)) if i not in chosen]
        parts: list[Scored] = []
        arms = [CHAMPION] * len(rows)
        if to_challenger:
            try:
                subset = [rows[i] for i in to_challenger]
                parts.append(self._score(spec, challenger, subset, to_challenger))
                for i in to_challenger:
                    arms[i] = CHALLENGER
            except Exception as exc:
                self._challenger_failed(spec.name, challenger, "ab", exc)
                to_champion = list(range(len(rows)))
        if to_champion:
            subset = [rows[i] for i in to_champion]
            parts.insert(0, self._score(spec, champion, subset, to_champion))
        predictions = self._predictions(spec, rows, parts, request_id, arms)
        for part in parts:
            arm = arms[part.positions[0]]
            self._log(spec, rows, part, request_id, arm, "ab", True)
        versions = ",".join(sorted({p.model.version for p in parts}, key=str))
        return Answer(predictions, versions)
