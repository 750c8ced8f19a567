"""The one place where exceptions become responses: a fault of ours is a 500 whose message
carries the request id under which its traceback was logged, never an empty message."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from billumy.api import errors
from billumy.app import AccessLog
from billumy.errors import BadRequestError, EngineError


def app() -> FastAPI:
    application = FastAPI()
    errors.install(application)

    @application.get("/boom")
    async def boom() -> None:
        raise ZeroDivisionError

    @application.get("/engine")
    async def engine() -> None:
        raise EngineError("")

    @application.get("/v1/boom")
    async def openai_boom() -> None:
        raise KeyError("x")

    @application.get("/bad")
    async def bad() -> None:
        raise BadRequestError("input 1 is empty: there is nothing to embed")

    application.add_middleware(AccessLog)
    return application


def get(path: str) -> httpx.Response:
    async def run() -> httpx.Response:
        # The 500 handler answers, then the exception goes on up (Starlette's
        # ServerErrorMiddleware re-raises it for the server to log): the transport keeps the
        # response rather than raising.
        transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers={"X-Request-ID": "req-42"})

    return asyncio.run(run())


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.ERROR, logger="billumy.api.errors"):
        yield caplog


def test_an_unexpected_error_is_a_500_with_the_request_id_and_a_logged_traceback(
    logged: pytest.LogCaptureFixture,
) -> None:
    r = get("/boom")
    assert r.status_code == 500
    assert r.json() == {"error": "internal server error (request id req-42)"}
    assert r.headers["x-request-id"] == "req-42"
    record = next(rec for rec in logged.records if rec.getMessage() == "unhandled error")
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    assert getattr(record, "request_id", None) == "req-42"


def test_an_engine_error_without_a_message_still_says_something() -> None:
    r = get("/engine")
    assert r.status_code == 500
    assert r.json() == {"error": "internal server error (request id req-42)"}


def test_openai_routes_get_the_request_id_in_their_error_object() -> None:
    r = get("/v1/boom")
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["message"] == "internal server error (request id req-42)"
    assert error["type"] == "server_error"


def test_bad_input_stays_a_400_without_a_request_id() -> None:
    r = get("/bad")
    assert r.status_code == 400
    assert r.json() == {"error": "input 1 is empty: there is nothing to embed"}
