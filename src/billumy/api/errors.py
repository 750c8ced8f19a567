"""The one place where exceptions become ``{"error": "..."}`` responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from billumy.api.deps import validation_message
from billumy.api.responses import JSON
from billumy.errors import BillumyError

log = logging.getLogger(__name__)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSON:
    return JSON({"error": message}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(BillumyError)
    async def _billumy(_: Request, exc: BillumyError) -> JSON:
        if exc.status_code >= 500:
            log.error("request failed: %s", exc.message)
        return error_response(exc.status_code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSON:
        return error_response(400, validation_message(exc))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSON:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = "not found"
        elif exc.status_code == 405:
            message = "method not allowed"
        return error_response(exc.status_code, message, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSON:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal server error")
