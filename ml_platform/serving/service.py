"""The service state: one :class:`Deployment` per pipeline, re-resolved in the background, and
the request path (features in the request or from the online store, then the numpy scorer).

Nothing here blocks the event loop for long: model loads and the Feast store's opening run in
worker threads; a request does one batched online read (~0.3 ms here) and one model call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from ml_platform.home import PlatformHome
from ml_platform.serving.errors import ServingError
from ml_platform.serving.features import open_store
from ml_platform.serving.metrics import Metrics
from ml_platform.serving.models import CHAMPION, Deployment, ModelLoader, ServedModel, refreshed
from ml_platform.serving.schemas import THRESHOLD
from ml_platform.spec import PipelineSpec

log = logging.getLogger(__name__)
DEFAULT_REFRESH_SECONDS = 10.0
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _alert(home: PlatformHome, pipeline: str, alias: str, kept: str | None, error: str) -> None:
    """A model that fails to load (an alias moved and serving did not follow)."""
    from ml_platform.alerting import Alert, Notifier

    kept_text = f"still serving version {kept}" if kept else "nothing to serve"
    Notifier.from_env(home.alerts_log).notify(
        Alert(
            kind="model_load_failed",
            pipeline=pipeline,
            title=f"serving could not load {pipeline}@{alias}; {kept_text}",
            details={"alias": alias, "serving_version": kept, "error": error},
            severity="error",
        )
    )


class Service:
    def __init__(
        self,
        home: PlatformHome,
        specs: Sequence[PipelineSpec],
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
    ) -> None:
        self.home = home
        self.specs = {s.name: s for s in specs}
        self.refresh_seconds = refresh_seconds
        self.metrics = Metrics()
        self.deployments = {name: Deployment(name) for name in self.specs}
        self.store: Any | None = None
        self.loader: ModelLoader | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.loader is not None and all(d.ready for d in self.deployments.values())

    def _notify(self, pipeline: str, alias: str, kept: str | None, error: str) -> None:
        self.metrics.model_loads.labels(pipeline, alias, "failed").inc()
        _alert(self.home, pipeline, alias, kept, error)

    async def refresh(self) -> None:
        """Re-resolve every alias; each pipeline's deployment is swapped in one assignment."""
        if self.loader is None:
            self.store = await asyncio.to_thread(open_store, self.home)
            self.loader = ModelLoader(self.home, self.store)
        for name, spec in self.specs.items():
            before = self.deployments[name]
            after = await asyncio.to_thread(refreshed, self.loader, spec, before, self._notify)
            for alias in ("champion", "challenger"):
                old, new = getattr(before, alias), getattr(after, alias)
                if new is not None and new is not old:
                    self.metrics.model_loads.labels(name, alias, "ok").inc()
            self.deployments[name] = after  # the swap: requests started before keep `before`

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except Exception:  # the loop must outlive any one failure
                log.exception("serving: alias refresh failed")

    async def start(self) -> None:
        try:
            await self.refresh()
        except Exception:  # not ready yet; /readyz says so and the loop retries
            log.exception("serving: first model load failed")
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- the request path ------------------------------------------------------------------

    def champion(self, pipeline: str) -> ServedModel:
        model = self.deployments[pipeline].champion
        if model is None:
            raise ServingError(
                503, "not_ready", f"pipeline '{pipeline}' has no champion loaded yet"
            )
        return model

    def vectors(
        self, spec: PipelineSpec, model: ServedModel, rows: Sequence[dict[str, Any]]
    ) -> list[list[Any]]:
        """Each row's model input in the model's column order: request values first, the rest
        from the online store (one read for the batch). Unknown or expired entities: 404."""
        columns, key = model.columns, spec.entity_key
        outside = [
            (f"rows[{i}].{key}", f"{key} {r[key]} is outside int64: unknown to the online store")
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
                    [(f"rows[{lookup[0]}].{c}", "required field is missing") for c in missing],
                )
            found = model.online.read([rows[i][key] for i in lookup])
            problems = []
            for i, entity in zip(lookup, found, strict=True):
                if entity.values is None:
                    problems.append(
                        (
                            f"rows[{i}].{key}",
                            f"{key} {rows[i][key]!r} is unknown to the online store",
                        )
                    )
                elif entity.expired:
                    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entity.event_time))
                    problems.append(
                        (
                            f"rows[{i}].{key}",
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

    def predict(
        self, model: ServedModel, rows: Sequence[dict[str, Any]], request_id: str
    ) -> list[dict[str, Any]]:
        """Scores of a validated batch by ``model`` (the snapshot taken when the request
        started: one version for the whole batch), one prediction per row."""
        pipeline = model.pipeline
        spec = self.specs[pipeline]
        scores = model.scorer.score(self.vectors(spec, model, rows))
        # A challenger would score here (shadow / A/B): a later rollout slice.
        classifier, key, arm = spec.is_classification, spec.entity_key, CHAMPION
        predictions = [
            {
                "row": i,
                "entity": r[key],
                "score": s,
                "label": int(s >= THRESHOLD) if classifier else None,
                "model_version": model.version,
                "arm": arm,
                "request_id": request_id,
            }
            for i, (r, s) in enumerate(zip(rows, scores.tolist(), strict=True))
        ]
        self.metrics.rows.labels(pipeline, model.version, arm).inc(len(rows))
        return predictions
