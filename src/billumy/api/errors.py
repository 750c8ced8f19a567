"""The one place where exceptions become error responses: Ollama's ``{"error": "..."}``, or
OpenAI's ``{"error": {"message", "type", "param", "code"}}`` under ``/v1``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from billumy.api.deps import validation_message
from billumy.api.responses import JSON
from billumy.errors import BillumyError
from billumy.metrics import Metrics

log = logging.getLogger(__name__)

_OPENAI_TYPES = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", None),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def openai_error(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error object for a status and message."""
    kind, code = _OPENAI_TYPES.get(status, ("server_error", None))
    if status == 404 and "model" in message:
        code = "model_not_found"
    return {"message": message, "type": kind, "param": None, "code": code}


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, *, path: str = ""
) -> JSON:
    body: Any = {"error": openai_error(status, message) if path.startswith("/v1/") else message}
    return JSON(body, status_code=status, headers=headers)


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id") or "unknown")


def install(app: FastAPI, *, metrics: Metrics | None = None) -> None:
    @app.exception_handler(BillumyError)
    async def _billumy(request: Request, exc: BillumyError) -> JSON:
        if exc.status_code == 429 and metrics is not None:
            route = request.scope.get("route")
            metrics.rate_limited.labels(getattr(route, "path", "unmatched")).inc()
        message = exc.message
        if exc.status_code >= 500:
            log.error("request failed: %s", exc.message)
        if exc.status_code == 500:
            # A failure of ours: the request id finds its traceback in the logs.
            message = f"{message or 'internal server error'} (request id {_request_id(request)})"
        return error_response(exc.status_code, message, exc.headers, path=request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSON:
        return error_response(400, validation_message(exc), path=request.url.path)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSON:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = "not found"
        elif exc.status_code == 405:
            message = "method not allowed"
        headers = dict(exc.headers or {})
        return error_response(exc.status_code, message, headers, path=request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSON:
        request_id = _request_id(request)
        log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
        message = f"internal server error (request id {request_id})"
        # This handler answers from outside every middleware (Starlette's server-error layer),
        # so the access log's X-Request-ID is added here.
        headers = {"X-Request-ID": request_id}
        return error_response(500, message, headers, path=request.url.path)
