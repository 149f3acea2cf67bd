"""Every error the API returns: a status, a short kind, a sentence, and per field the problem.
Validation errors become 422 (400 for a body that is not JSON) naming each field as
``rows[3].amount``; nothing a caller sends should reach a 500."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ServingError(Exception):
    def __init__(
        self, status: int, error: str, detail: str, problems: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail
        self.problems = list(problems)


def error_response(
    status: int, error: str, detail: str, problems: Sequence[tuple[str, str]] = ()
) -> Response:
    body = {
        "error": error,
        "detail": detail,
        "problems": [{"field": f, "problem": p} for f, p in problems],
    }
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def field_name(loc: Sequence[Any]) -> str:
    """("body", "rows", 3, "amount") -> "rows[3].amount"; the body itself is "body"."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
    "finite_number": "must be a finite number (NaN and infinity are not accepted)",
}


def problem_text(err: dict[str, Any]) -> str:
    text = _MESSAGES.get(err.get("type", ""), str(err.get("msg", "invalid value")))
    if err.get("type") in ("too_short", "too_long") and err.get("loc", ())[-1:] == ("rows",):
        ctx = err.get("ctx", {})
        bound = ctx.get("min_length") if err["type"] == "too_short" else ctx.get("max_length")
        text = (
            f"{err['msg']} ({'at least' if err['type'] == 'too_short' else 'at most'} {bound} rows)"
        )
    return text


def _count(request: Request, kind: str, status: int) -> None:
    """Requests rejected before reaching an endpoint still count as requests (no model
    version) and as errors of their pipeline."""
    service = getattr(request.app.state, "service", None)
    parts = request.url.path.split("/")
    if service is not None and len(parts) > 3 and parts[3] in service.specs:
        service.metrics.requests.labels(parts[3], "none", str(status)).inc()
        service.metrics.errors.labels(parts[3], kind).inc()


async def validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        _count(request, "invalid_request", 400)
        msg = next(str(e.get("ctx", {}).get("error", e.get("msg"))) for e in errors)
        return error_response(
            400, "invalid_json", f"the body is not valid JSON: {msg}", [("body", msg)]
        )
    _count(request, "invalid_request", 422)
    problems = [(field_name(e.get("loc", ())), problem_text(e)) for e in errors[:50]]
    summary = "; ".join(f"{f}: {p}" for f, p in problems[:3])
    return error_response(422, "invalid_request", f"invalid request: {summary}", problems)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (a body that is not UTF-8 JSON, 404, 405) in the same shape."""
    assert isinstance(exc, StarletteHTTPException)
    detail = str(exc.detail)
    if exc.status_code == 400:
        _count(request, "invalid_request", 400)
        return error_response(
            400, "invalid_json", f"the body is not valid JSON: {detail}", [("body", detail)]
        )
    return error_response(exc.status_code, "http_error", detail)


async def serving_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServingError)
    return error_response(exc.status, exc.error, exc.detail, exc.problems)


async def unexpected_handler(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error serving %s", request.url.path)
    return error_response(500, "internal", f"internal error: {type(exc).__name__}")
