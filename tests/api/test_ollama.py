"""/api/generate and /api/chat in-process (httpx's ASGITransport on the app ``create_app``
builds), over the real inference service and router with an in-process engine
(:class:`tests.fake_engine.FakeEngine`) in place of llama.cpp: the NDJSON lines and the whole
answers, options through to the engine, usage once per request, engine errors as a status or
the stream's last line with the request id, and a client's hang-up reaching the engine. The
same routes over a real server and the real model: tests/e2e/test_http_api.py."""

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
STATS = (
    "done_reason",
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def test_generate_streams_one_line_per_piece_then_the_statistics(tmp_path: Path) -> None:
    async def run() -> None:
        async with served(tmp_path) as s, s.client() as client:
            r = await client.post("/api/generate", json={"model": "billumy", "prompt": "hi"})
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("application/x-ndjson")
            assert r.headers["x-request-id"] == REQUEST_ID
            assert r.headers["x-billumy-deployment"] == "embedded"
            lines = _lines(r.text)
            assert [x["response"] for x in lines] == [*s.engine.pieces, ""]
            assert [x["done"] for x in lines] == [False] * 4 + [True]
            assert all(x["model"] == "billumy" for x in lines)
            last = lines[-1]
            assert {k: last[k] for k in ("done_reason", "prompt_eval_count", "eval_count")} == {
                "done_reason": "stop",
                "prompt_eval_count": PROMPT_TOKENS,
                "eval_count": 4,
            }
            assert set(STATS) <= set(last) and last["context"] == [1, 2, 3]
            assert not any(k in x for x in lines[:-1] for k in STATS)
            assert s.usage.calls == [("t", "billumy:latest", PROMPT_TOKENS, 4)]

    asyncio.run(run())


def test_generate_whole_passes_stop_and_num_predict(tmp_path: Path) -> None:
    async def run() -> None:
        body = {
            "model": "billumy",
            "prompt": "Count:",
            "stream": False,
            "options": {"stop": ["\n", "5"], "num_predict": 3, "temperature": 0.1},
        }
        async with served(tmp_path) as s, s.client() as client:
            r = await client.post("/api/generate", json=body)
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("application/json")
            out = r.json()
            assert out["response"] == "Hello, " and out["done"] is True
            assert (out["done_reason"], out["eval_count"]) == ("length", 3)
            g = s.engine.calls[0].generation
            assert (g.sampling.stop, g.num_predict, g.sampling.temperature) == (["\n", "5"], 3, 0.1)
            assert g.prompt == "Count:" and not g.stream
            assert s.usage.calls == [("t", "billumy:latest", PROMPT_TOKENS, 3)]

    asyncio.run(run())


def test_chat_streams_the_reply_and_counts_usage_once(tmp_path: Path) -> None:
    async def run() -> None:
        body = {
            "model": "billumy",
            "messages": [{"role": "user", "content": "hi"}],
            "options": {"stop": ["User:"]},
        }
        async with served(tmp_path) as s, s.client() as client:
            r = await client.post("/api/chat", json=body)
            lines = _lines(r.text)
            assert [x["message"] for x in lines[:-1]] == [
                {"role": "assistant", "content": piece} for piece in s.engine.pieces
            ]
            assert lines[-1]["done"] and lines[-1]["message"]["content"] == ""
            assert lines[-1]["eval_count"] == 4
            g = s.engine.calls[0].generation
            assert g.mode == "chat" and g.sampling.stop == ["User:"]
            assert g.messages is not None and g.messages[-1] == {"role": "user", "content": "hi"}
            assert len(s.usage.calls) == 1

    asyncio.run(run())


def test_chat_whole_is_one_message(tmp_path: Path) -> None:
    async def run() -> None:
        body = {"model": "billumy", "messages": [{"role": "user", "content": "hi"}]}
        async with served(tmp_path) as s, s.client() as client:
            r = await client.post("/api/chat", json={**body, "stream": False})
            out = r.json()
            assert out["message"] == {"role": "assistant", "content": "Hello, world"}
            assert out["done"] and out["done_reason"] == "stop" and "context" not in out
            assert s.usage.calls == [("t", "billumy:latest", PROMPT_TOKENS, 4)]

    asyncio.run(run())


def test_an_empty_prompt_loads_the_model(tmp_path: Path) -> None:
    async def run() -> None:
        async with served(tmp_path) as s, s.client() as client:
            r = await client.post("/api/generate", json={"model": "billumy"})
            (line,) = _lines(r.text)
            assert line["done"] and line["done_reason"] == "load" and line["response"] == ""
            assert len(s.engine.loads) == 1 and s.engine.calls == []
            assert s.usage.calls == []

    asyncio.run(run())


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
def test_an_engine_failure_before_the_first_chunk_is_a_500_with_the_request_id(
    tmp_path: Path, path: str
) -> None:
    async def run() -> None:
        failure = EngineError("llama_decode returned -3")
        body = {"model": "billumy", "prompt": "hi", "messages": [{"role": "user", "content": "x"}]}
        async with served(tmp_path, FakeEngine(error=failure)) as s, s.client() as client:
            r = await client.post(path, json=body)
            assert r.status_code == 500
            assert r.json() == {"error": f"llama_decode returned -3 (request id {REQUEST_ID})"}
            assert r.headers["x-request-id"] == REQUEST_ID
            assert s.usage.calls == []

    asyncio.run(run())


def test_a_fault_of_ours_before_the_first_chunk_names_only_the_request_id(
    tmp_path: Path,
) -> None:
    async def run() -> None:
        engine = FakeEngine(error=RuntimeError("secret internals"))
        async with served(tmp_path, engine) as s, s.client() as client:
            r = await client.post("/api/generate", json={"model": "billumy", "prompt": "hi"})
            assert r.status_code == 500
            assert r.json() == {"error": f"internal server error (request id {REQUEST_ID})"}
            assert r.headers["x-request-id"] == REQUEST_ID

    asyncio.run(run())


def test_a_stopped_engine_is_a_503_with_retry_after(tmp_path: Path) -> None:
    async def run() -> None:
        failure = EngineUnavailableError("the model runner stopped: SIGSEGV", retry_after=4)
        async with served(tmp_path, FakeEngine(error=failure)) as s, s.client() as client:
            r = await client.post("/api/generate", json={"model": "billumy", "prompt": "hi"})
            assert r.status_code == 503
            assert r.json() == {"error": "the model runner stopped: SIGSEGV"}
            assert r.headers["retry-after"] == "4"

    asyncio.run(run())


def test_a_failure_mid_stream_ends_it_with_one_error_line(tmp_path: Path) -> None:
    async def run() -> None:
        failure = EngineUnavailableError("the model runner stopped: SIGKILL")
        engine = FakeEngine(error=failure, error_after=2)
        async with served(tmp_path, engine, parallel=1) as s, s.client() as client:
            r = await client.post("/api/generate", json={"model": "billumy", "prompt": "hi"})
            assert r.status_code == 200
            lines = _lines(r.text)
            assert [x.get("response") for x in lines[:-1]] == ["Hel", "lo"]
            assert lines[-1] == {"error": failure.message, "request_id": REQUEST_ID}
            assert s.engine.calls[0].ending == "failed"
            assert s.usage.calls == []
            # The key's one slot is free again.
            s.engine.error = None
            r = await client.post("/api/generate", json={"model": "billumy", "prompt": "hi"})
            assert r.status_code == 200 and _lines(r.text)[-1]["done"]

    asyncio.run(run())


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_a_client_that_hangs_up_while_waiting_cancels_the_generation(
    tmp_path: Path, stream: bool
) -> None:
    """Gone before the first chunk (the model loading, the queue): the engine's generation
    is cancelled and the key's slot freed; the route answers 499 to no one."""

    async def run() -> None:
        engine = FakeEngine(gate=asyncio.Event())
        body = {"model": "billumy", "prompt": "hi", "stream": stream}
        async with served(tmp_path, engine, parallel=1) as s:
            gone = await s.hang_up("/api/generate", body, after=0)
            assert gone.status == 499
            assert s.engine.calls[0].ending == "cancelled"
            assert not s.services.fair_use.parallel_full(s.key_id, 1)
            assert s.usage.calls == []

    asyncio.run(run())


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
def test_a_client_that_hangs_up_mid_stream_stops_the_engine(tmp_path: Path, path: str) -> None:
    async def run() -> None:
        body = {"model": "billumy", "prompt": "hi", "messages": [{"role": "user", "content": "x"}]}
        async with served(tmp_path, FakeEngine(endless=True), parallel=1) as s:
            gone = await s.hang_up(path, body, after=1)
            assert gone.status == 200 and json.loads(gone.pieces[0])["done"] is False
            assert s.engine.calls[0].ending == "closed"
            assert s.usage.calls == []
            async with s.client() as client:  # the key's one slot is free again
                s.engine.endless = False
                r = await client.post(path, json=body)
                assert r.status_code == 200 and _lines(r.text)[-1]["done"]

    asyncio.run(run())
