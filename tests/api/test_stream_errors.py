"""A failure in the middle of a stream, in-process (httpx's ASGITransport on the app that
``create_app`` builds): every route ends it with its protocol's one in-band error, carrying
the request id of the X-Request-ID header, and a failure of ours is logged under that id.

NDJSON (``/api/chat``, ``/api/insights``): a last ``{"error": ..., "request_id": ...}`` line.
SSE (``/v1/chat/completions``): a last ``data:`` event with OpenAI's error object and the
``request_id``, and no ``[DONE]``. The engine behind the inference routes is a fake that
yields one chunk and then fails; the insights service is the real one on inline data, and
the model it asks for a narrative after the facts and the answer fails the same way. The
same errors through a real server and a real upstream: tests/e2e/test_in_band_errors.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from billumy.app import create_app
from billumy.auth import Authenticator, Principal, create_key
from billumy.cache.limits import FairUse
from billumy.cache.local import LocalState
from billumy.catalog import ModelEntry, base_models
from billumy.drain import Drain
from billumy.engines.base import Chunk, Generation
from billumy.errors import ShuttingDownError, UpstreamError
from billumy.inference import InferenceService, Prepared
from billumy.insights.datasets import Datasets
from billumy.insights.service import InsightService
from billumy.metrics import Metrics
from billumy.schemas.ollama import ChatRequest
from billumy.services import Services
from billumy.settings import Settings
from billumy.store import open_store

REQUEST_ID = "req-stream-7"


class FailingModel:
    """The part of the inference service the routes use, over an engine that writes one
    piece and then fails: with ``error`` (a Billumy error), else with a fault of ours."""

    def __init__(self, entry: ModelEntry, error: Exception | None) -> None:
        self.entry = entry
        self.error = error

    async def prepare_chat(self, req: ChatRequest, caller: Principal) -> Prepared:
        return Prepared(
            entry=self.entry,
            generation=Generation(prompt="hi", model_path=Path("m.gguf"), model_name="m"),
        )

    async def open(
        self, prepared: Prepared, caller: Principal, cache_control: str | None = None
    ) -> tuple[str, AsyncIterator[Chunk]]:
        async def chunks() -> AsyncIterator[Chunk]:
            yield Chunk(text="half")
            if self.error is not None:
                raise self.error
            yield Chunk(text=" more")
            yield Chunk(text="", done=True)

        return "bypass", chunks()

    async def resolve(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error or AssertionError("no model in these tests")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("BILLUMY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BILLUMY_CONFIG", str(tmp_path / "absent.toml"))


def serve(
    tmp_path: Path,
    error: Exception | None,
    method: str,
    path: str,
    body: dict[str, Any],
    drain: Drain | None = None,
) -> tuple[httpx.Response, list[str]]:
    """The response to one streamed request (its body read whole), and the lines of it."""
    settings = Settings(data_dir=tmp_path / "data")

    async def run() -> httpx.Response:
        store = open_store(f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}")
        await store.ainit()
        try:
            key, _ = await create_key(store, name="t", scopes=["inference"])
            app = create_app(settings)
            entry = ModelEntry(
                name="m:latest", base=base_models(settings.data_dir)["smollm2-135m:latest"]
            )
            model = FailingModel(entry, error)
            install(app, settings, store, model, drain)
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {key}", "X-Request-ID": REQUEST_ID}
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, path, json=body, headers=headers)
        finally:
            await store.aclose()

    response = asyncio.run(run())
    return response, [x for x in response.text.splitlines() if x.strip()]


class Unused:
    """A service the routes under test must not touch."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        raise AssertionError(f"the route used services.{self.name}.{attr}")


def install(
    app: FastAPI, settings: Settings, store: Any, model: FailingModel, drain: Drain | None = None
) -> None:
    """The app's services: real keys and limits, the failing model, the real insights
    service over it; what these routes never use raises if they do."""
    inference = cast(InferenceService, model)
    unused = {
        name: Unused(name)
        for name in ("store", "catalog", "engine", "router", "shared_state", "conversations")
    }
    app.state.services = Services(
        settings=settings,
        auth=Authenticator(store),
        fair_use=FairUse(LocalState()),
        inference=inference,
        # Inline data never reaches the datasets' store.
        insights=InsightService(
            settings=settings, inference=inference, datasets=cast(Datasets, Unused("datasets"))
        ),
        metrics=Metrics(),
        drain=drain or Drain(),
        **cast(dict[str, Any], unused),
    )


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.ERROR, logger="billumy.api.streaming"):
        yield caplog


def failure_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return any(
        r.message == "stream failed"
        and getattr(r, "request_id", None) == REQUEST_ID
        and r.exc_info is not None
        for r in caplog.records
    )


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
ROWS = [
    {"region": r, "month": m, "sales": s}
    for r, m, s in [
        ("North", "2024-01", 10),
        ("South", "2024-01", 30),
        ("North", "2024-02", 12),
        ("South", "2024-02", 45),
        ("North", "2024-03", 9),
        ("South", "2024-03", 50),
    ]
]
INSIGHT = {"data": ROWS, "stream": True, "narrative": True}


@pytest.mark.parametrize(
    ("path", "body"), [("/api/chat", CHAT), ("/api/insights", INSIGHT)], ids=["chat", "insights"]
)
def test_ndjson_stream_ends_with_the_error_line(
    tmp_path: Path, logged: pytest.LogCaptureFixture, path: str, body: dict[str, Any]
) -> None:
    response, lines = serve(tmp_path, RuntimeError("boom"), "POST", path, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["x-request-id"] == REQUEST_ID
    events = [json.loads(x) for x in lines]
    assert len(events) >= 2, events
    assert all("error" not in e for e in events[:-1]), events
    assert events[-1] == {
        "error": f"internal server error (request id {REQUEST_ID})",
        "request_id": REQUEST_ID,
    }
    assert failure_logged(logged)
    assert "boom" not in response.text  # the client learns the id, not our internals


def test_ndjson_stream_tells_a_billumy_error_as_it_is(
    tmp_path: Path, logged: pytest.LogCaptureFixture
) -> None:
    failure = UpstreamError("deployment 'gpu-a' closed the stream early")
    response, lines = serve(tmp_path, failure, "POST", "/api/insights", INSIGHT)
    assert response.status_code == 200
    events = [json.loads(x) for x in lines]
    assert events[0]["type"] == "facts"
    assert events[-1] == {"error": failure.message, "request_id": REQUEST_ID}
    assert not failure_logged(logged)


def test_sse_stream_ends_with_the_error_event(
    tmp_path: Path, logged: pytest.LogCaptureFixture
) -> None:
    response, lines = serve(tmp_path, RuntimeError("boom"), "POST", "/v1/chat/completions", CHAT)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert all(x.startswith("data: ") for x in lines), lines
    events = [x.removeprefix("data: ") for x in lines]
    assert "[DONE]" not in events
    first = json.loads(events[0])
    assert first["choices"][0]["delta"] == {"content": "half", "role": "assistant"}
    assert json.loads(events[-1]) == {
        "error": {
            "message": f"internal server error (request id {REQUEST_ID})",
            "type": "server_error",
            "param": None,
            "code": None,
            "request_id": REQUEST_ID,
        }
    }
    assert len(events) == 2
    assert failure_logged(logged)


def test_sse_stream_tells_a_billumy_error_with_its_type(tmp_path: Path) -> None:
    failure = UpstreamError("deployment 'gpu-a' closed the stream early")
    _, lines = serve(tmp_path, failure, "POST", "/v1/chat/completions", CHAT)
    error = json.loads(lines[-1].removeprefix("data: "))["error"]
    assert error["message"] == failure.message
    assert error["type"] == "server_error" and error["request_id"] == REQUEST_ID


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
def test_the_apps_own_drain_ends_its_streams(tmp_path: Path, path: str) -> None:
    """The drain is one of the app's services (create_app takes the server's), not the
    process's: a stream of an app whose drain has run out ends at its next chunk, in band."""
    drain = Drain()
    drain.begin(0.0)
    response, lines = serve(tmp_path, None, "POST", path, CHAT, drain=drain)
    last = json.loads(lines[-1].removeprefix("data: "))
    message = last["error"] if path == "/api/chat" else last["error"]["message"]
    assert message == ShuttingDownError().message
    assert "more" not in response.text
    response, lines = serve(tmp_path, None, "POST", path, CHAT)  # another app: unaffected
    assert "more" in response.text and "error" not in response.text
