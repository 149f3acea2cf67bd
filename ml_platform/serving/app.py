"""The HTTP API (FastAPI): one predict and one models route per served pipeline, each with its
own request schema in the OpenAPI document, plus /healthz, /readyz and /metrics.

Endpoints are ``async def``: their work is short (one online read, one model call) and runs on
the event loop; a sync endpoint would go through the thread pool, whose queueing made p99
explode under load on this stack.
"""

from __future__ import annotations

import inspect
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from ml_platform.home import PROJECT_ROOT, PlatformHome, platform_home
from ml_platform.serving import schemas
from ml_platform.serving.errors import (
    ServingError,
    error_response,
    http_error_handler,
    serving_error_handler,
    unexpected_handler,
    validation_handler,
)
from ml_platform.serving.service import DEFAULT_REFRESH_SECONDS, SHADOW_BACKLOG, Service
from ml_platform.spec import PipelineSpec, load_all_specs

DEFS_ROOT = PROJECT_ROOT / "ml_platform" / "defs"
PIPELINES_ENV = "ML_PLATFORM_SERVE_PIPELINES"  # comma-separated; for `--workers N` processes
REFRESH_ENV = "ML_PLATFORM_SERVE_REFRESH_SECONDS"
PREDICTION_LOG_ENV = "ML_PLATFORM_SERVE_PREDICTION_LOG"  # "0": no prediction log
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.ErrorResponse, "description": text}
    for code, text in {
        400: "The body is not valid JSON.",
        404: "An entity unknown to the online store (or its features expired), and the row "
        "does not give every feature.",
        422: "A field is missing, unknown, of the wrong type, NaN or infinite; or the batch is "
        "empty or too large. Each problem names its field.",
        503: "No champion loaded yet.",
    }.items()
}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    return given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex


def _typed(handler: Callable[..., Awaitable[Response]], body: type[BaseModel]) -> Any:
    """Give ``handler(request, body)`` the pipeline's request model as its body's type (the
    models are built at run time, so they cannot be written as annotations)."""
    params = [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
        inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=body),
    ]
    handler.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return handler


def _feature_types(spec: PipelineSpec, home: PlatformHome) -> tuple[str, dict[str, str]]:
    """The entity key's and features' types, as the feature store declares them."""
    from ml_platform.features.definitions import view_def

    view = view_def(spec, home)
    return view.entity_dtype, {f.name: f.dtype for f in view.fields}


def _predict_route(app: FastAPI, service: Service, spec: PipelineSpec) -> None:
    name = spec.name
    entity_dtype, features = _feature_types(spec, service.home)
    row = schemas.row_model(name, spec.entity_key, entity_dtype, features)
    request_model = schemas.request_model(name, row)
    metrics = service.metrics

    async def predict(request: Request, body: BaseModel) -> Response:
        started = time.perf_counter()
        request_id = _request_id(request)
        version, status = "none", 200
        try:
            rows = [r.__dict__ for r in body.rows]  # type: ignore[attr-defined]
            answer = service.answer(name, rows, request_id)
            version = answer.versions
            response = _json(
                {"pipeline": name, "request_id": request_id, "predictions": answer.predictions}
            )
            if answer.after_response is not None:  # the shadow challenger, after sending
                response.background = BackgroundTask(answer.after_response)
            return response
        except ServingError as exc:
            status = exc.status
            metrics.errors.labels(name, exc.error).inc()
            raise
        except Exception:
            status = 500
            metrics.errors.labels(name, "internal").inc()
            raise
        finally:
            metrics.requests.labels(name, version, str(status)).inc()
            metrics.latency.labels(name, version).observe(time.perf_counter() - started)

    app.post(
        f"/v1/pipelines/{name}/predict",
        response_model=schemas.PredictResponse,
        responses=_ERRORS,
        summary=f"Score a batch of {name} rows with the champion (or its A/B arm)",
        tags=[name],
        operation_id=f"predict_{name}",
    )(_typed(predict, request_model))


def _models_route(app: FastAPI, service: Service, name: str) -> None:
    def served(model: Any) -> dict[str, Any] | None:
        if model is None:
            return None
        return {
            "alias": model.alias,
            "version": model.version,
            "run_id": model.run_id,
            "feature_service": model.feature_service,
            "loaded_at": model.loaded_at,
            "numpy_path": model.scorer.numpy_path,
        }

    async def models() -> Response:
        d = service.deployments[name]
        return _json(
            {
                "pipeline": name,
                "champion": served(d.champion),
                "challenger": served(d.challenger),
                "rollout": service.rollouts[name].as_dict(),
                "errors": d.errors,
            }
        )

    app.get(
        f"/v1/pipelines/{name}/models",
        response_model=schemas.ModelsResponse,
        summary=f"The {name} models being served",
        tags=[name],
        operation_id=f"models_{name}",
    )(models)


def create_app(
    specs: Sequence[PipelineSpec],
    home: PlatformHome | None = None,
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
    prediction_log: bool = True,
    shadow_backlog: int = SHADOW_BACKLOG,
) -> FastAPI:
    home = home or platform_home()
    service = Service(
        home, specs, refresh_seconds, prediction_log=prediction_log, shadow_backlog=shadow_backlog
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        from threadpoolctl import threadpool_limits

        # One native thread per worker: OpenMP's threads (HistGradientBoosting's predict)
        # fighting over a shared host's cores made a one-row predict 10-20x slower here.
        limits = threadpool_limits(1)
        await service.start()
        try:
            yield
        finally:
            await service.stop()
            limits.restore_original_limits()

    app = FastAPI(
        title="ml_platform serving",
        version="1",
        lifespan=lifespan,
        description="Predictions from each pipeline's champion, by registry alias, with "
        "features from the Feast online store; a challenger in shadow or A/B under a rollout; "
        "every scored row in the prediction log. See docs/serving.md.",
    )
    app.state.service = service
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(ServingError, serving_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_handler)
    for spec in specs:
        _predict_route(app, service, spec)
        _models_route(app, service, spec.name)

    async def unknown_pipeline(pipeline: str) -> Response:
        return error_response(
            404,
            "unknown_pipeline",
            f"pipeline '{pipeline}' is not served here",
            [("pipeline", f"one of {sorted(service.specs)}")],
        )

    # After the pipelines' own routes, so only names not served reach it.
    for path in ("/v1/pipelines/{pipeline}/predict", "/v1/pipelines/{pipeline}/models"):
        app.add_api_route(path, unknown_pipeline, methods=["GET", "POST"], include_in_schema=False)

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Every pipeline has a champion loaded and the store is open",
        responses={503: {"description": "Not ready; the body says what is missing."}},
    )
    async def readyz() -> Response:
        missing = {
            n: d.errors.get("champion", "loading")
            for n, d in service.deployments.items()
            if not d.ready
        }
        if service.loader is None:
            missing["feature_store"] = "opening"
        return _json({"ready": not missing, "waiting_for": missing}, 200 if not missing else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def served_specs(names: Sequence[str] = ()) -> list[PipelineSpec]:
    """The named pipelines' specs, in order; none named: every declared pipeline."""
    specs = load_all_specs(DEFS_ROOT)
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ValueError(f"unknown pipelines {unknown}; declared: {sorted(specs)}")
    return [specs[n] for n in names] if names else list(specs.values())


def app_from_env() -> FastAPI:
    """For uvicorn with several workers (each imports this factory): the pipelines and the
    refresh period come from the environment ``ml-platform serve`` sets."""
    names = [n for n in os.environ.get(PIPELINES_ENV, "").split(",") if n]
    refresh = float(os.environ.get(REFRESH_ENV, DEFAULT_REFRESH_SECONDS))
    log_on = os.environ.get(PREDICTION_LOG_ENV, "1") != "0"
    return create_app(served_specs(names), refresh_seconds=refresh, prediction_log=log_on)
