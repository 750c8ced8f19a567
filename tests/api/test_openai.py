"""/v1/chat/completions in-process (httpx's ASGITransport on the app ``create_app`` builds),
over the real inference service and router with an in-process engine
(:class:`tests.fake_engine.FakeEngine`) in place of llama.cpp: OpenAI's answer and its SSE
chunks, stop and max_tokens through to the engine, usage once per request, engine errors as
OpenAI's error object with the request id, and a client's hang-up reaching the engine. The
official client over a real server and the real model: tests/e2e/test_openai_client.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from billumy.errors import EngineError, EngineUnavailableError
from tests.fake_engine import (
    PROMPT_TOKENS,
    FakeEngine,
    clean_env,  # noqa: F401 (a fixture)
    served,
)

pytestmark = pytest.mark.usefixtures("clean_env")

REQUEST_ID = "req-fake-1"
PATH = "/v1/chat/completions"
CHAT: dict[str, Any] = {"model": "billumy", "messages": [{"role": "user", "content": "hi"}]}


def _events(text: str) -> list[str]:
    lines = [x for x in text.splitlines() if x.strip()]
    assert all(x.startswith("data: ") for x in lines), lines
    return [x.removeprefix("data: ") for x in lines]


def test_a_whole_completion_with_its_usage(tmp_path: Path) -> None:
    async def run() -> None:
        async with served(tmp_path) as s, s.client() as client:
            r = await client.post(PATH, json=CHAT)
            assert r.status_code == 200
            assert r.headers["x-request-id"] == REQUEST_ID
            out = r.json()
            assert out["object"] == "chat.completion" and out["model"] == "billumy"
            assert out["id"].startswith("chatcmpl-")
            (choice,) = out["choices"]
            assert choice["message"] == {
                "role": "assistant",
                "content": "Hello, world",
                "refusal": None,
            }
            assert choice["finish_reason"] == "stop"
            assert out["usage"] == {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": 4,
                "total_tokens": PROMPT_TOKENS + 4,
            }
            assert s.usage.calls == [("t", "billumy:latest", PROMPT_TOKENS, 4)]
            g = s.engine.calls[0].generation
            assert g.mode == "chat" and not g.stream

    asyncio.run(run())


@pytest.mark.parametrize(
    ("options", "stop", "num_predict"),
    [
        ({"stop": "END", "max_tokens": 2}, ["END"], 2),
        ({"stop": ["a", "b"], "max_completion_tokens": 3, "max_tokens": 9}, ["a", "b"], 3),
    ],
    ids=["max_tokens", "max_completion_tokens"],
)
def test_stop_and_the_token_limit_reach_the_engine(
    tmp_path: Path, options: dict[str, Any], stop: list[str], num_predict: int
) -> None:
    async def run() -> None:
        async with served(tmp_path) as s, s.client() as client:
            r = await client.post(PATH, json={**CHAT, "temperature": 0.3, "seed": 5, **options})
            g = s.engine.calls[0].generation
            assert (g.sampling.stop, g.num_predict) == (stop, num_predict)
            assert (g.sampling.temperature, g.sampling.seed) == (0.3, 5)
            out = r.json()
            assert out["choices"][0]["finish_reason"] == "length"
            assert out["usage"]["completion_tokens"] == num_predict

    asyncio.run(run())


def test_a_stream_of_deltas_then_usage_then_done(tmp_path: Path) -> None:
    async def run() -> None:
        body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
        async with served(tmp_path) as s, s.client() as client:
            r = await client.post(PATH, json=body)
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = _events(r.text)
            assert events[-1] == "[DONE]"
            chunks = [json.loads(e) for e in events[:-1]]
            assert {c["id"] for c in chunks} == {chunks[0]["id"]}
            deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
            assert deltas[0] == {"role": "assistant", "content": "Hel"}
            assert [d.get("content") for d in deltas[1:-1]] == ["lo", ", ", "world"]
            assert deltas[-1] == {}  # the last chunk: no text, its finish_reason
            assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * 4 + ["stop"]
            assert all(c["usage"] is None for c in chunks[:-1])
            assert chunks[-1]["choices"] == []
            assert chunks[-1]["usage"]["total_tokens"] == PROMPT_TOKENS + 4
            assert s.usage.calls == [("t", "billumy:latest", PROMPT_TOKENS, 4)]
            assert s.engine.calls[0].generation.stream

    asyncio.run(run())


def test_a_stream_without_usage_asked_has_no_usage_event(tmp_path: Path) -> None:
    async def run() -> None:
        async with served(tmp_path) as s, s.client() as client:
            r = await client.post(PATH, json={**CHAT, "stream": True})
            events = _events(r.text)
            assert events[-1] == "[DONE]" and len(events) == 6
            assert all("usage" not in json.loads(e) for e in events[:-1])
            assert len(s.usage.calls) == 1  # counted all the same

    asyncio.run(run())


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_an_engine_failure_before_the_first_chunk_is_openais_error(
    tmp_path: Path, stream: bool
) -> None:
    async def run() -> None:
        engine = FakeEngine(error=EngineError("llama_decode returned -3"))
        async with served(tmp_path, engine) as s, s.client() as client:
            r = await client.post(PATH, json={**CHAT, "stream": stream})
            assert r.status_code == 500
            assert r.headers["x-request-id"] == REQUEST_ID
            assert r.json() == {
                "error": {
                    "message": f"llama_decode returned -3 (request id {REQUEST_ID})",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }

    asyncio.run(run())


def test_a_stopped_engine_is_a_503_with_retry_after(tmp_path: Path) -> None:
    async def run() -> None:
        failure = EngineUnavailableError("the model runner stopped: SIGSEGV", retry_after=2)
        async with served(tmp_path, FakeEngine(error=failure)) as s, s.client() as client:
            r = await client.post(PATH, json=CHAT)
            assert r.status_code == 503 and r.headers["retry-after"] == "2"
            assert r.json()["error"]["message"] == failure.message

    asyncio.run(run())


def test_a_fault_mid_stream_is_the_last_event_with_the_request_id(tmp_path: Path) -> None:
    async def run() -> None:
        engine = FakeEngine(error=RuntimeError("secret internals"), error_after=1)
        async with served(tmp_path, engine) as s, s.client() as client:
            r = await client.post(PATH, json={**CHAT, "stream": True})
            assert r.status_code == 200
            events = _events(r.text)
            assert "[DONE]" not in events and len(events) == 2
            assert json.loads(events[0])["choices"][0]["delta"]["content"] == "Hel"
            assert json.loads(events[1]) == {
                "error": {
                    "message": f"internal server error (request id {REQUEST_ID})",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                    "request_id": REQUEST_ID,
                }
            }
            assert "secret" not in r.text
            assert s.usage.calls == []

    asyncio.run(run())


@pytest.mark.parametrize(("stream", "after"), [(True, 1), (False, 0)], ids=["stream", "whole"])
def test_a_client_that_hangs_up_stops_the_engine(tmp_path: Path, stream: bool, after: int) -> None:
    """Gone mid-stream (after the first event), or while a whole answer is generated: the
    engine's generation ends there and the key's one slot is free again."""

    async def run() -> None:
        async with served(tmp_path, FakeEngine(endless=True), parallel=1) as s:
            await s.hang_up(PATH, {**CHAT, "stream": stream}, after=after)
            assert s.engine.calls[0].ending in ("closed", "cancelled")
            assert s.usage.calls == []
            s.engine.endless = False
            async with s.client() as client:
                r = await client.post(PATH, json=CHAT)
                assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 4

    asyncio.run(run())
