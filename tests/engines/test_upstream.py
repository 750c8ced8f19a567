"""Upstream engines against a real HTTP server that speaks Ollama and OpenAI, and misbehaves.

The fake server picks its behaviour from the upstream model name in the body (``err400``,
``garbage``, ``slow``, ``drop``...) or, for GET routes, from a prefix in the deployment's URL
(``http://host:port/err500``). It records every request, so tests can assert what Billumy sent.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest
import uvicorn
from aiohttp.client_reqrep import ConnectionKey, RequestInfo
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from yarl import URL

from billumy.engines.base import Chunk, Embedding, Generation, Sampling
from billumy.engines.ollama import OllamaUpstream
from billumy.engines.openai import OpenAIUpstream, SseParser
from billumy.engines.router import make_upstream
from billumy.engines.upstream import ErrorMapper, Upstream
from billumy.errors import (
    BadRequestError,
    BillumyError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from billumy.settings import DeploymentConfig
from tests.nginx_kit import self_signed
from tests.sockets import SocketServer

pytestmark = pytest.mark.anyio

KEY = "sk-upstream-secret-4242"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- the fake upstream --------------------------------------------------------------------------


@dataclass
class Recorder:
    requests: list[dict[str, Any]] = field(default_factory=list)
    trapped: list[str] = field(default_factory=list)
    aborted: threading.Event = field(default_factory=threading.Event)
    completed: threading.Event = field(default_factory=threading.Event)

    def last(self) -> dict[str, Any]:
        return self.requests[-1]


def ndjson(*items: dict[str, Any]) -> list[bytes]:
    return [orjson.dumps(item) + b"\n" for item in items]


def sse(*items: dict[str, Any] | str) -> list[bytes]:
    return [
        b"data: " + (item.encode() if isinstance(item, str) else orjson.dumps(item)) + b"\n\n"
        for item in items
    ]


STATS = {
    "total_duration": 900,
    "load_duration": 100,
    "prompt_eval_count": 7,
    "prompt_eval_duration": 300,
    "eval_count": 3,
    "eval_duration": 500,
}


def ollama_lines(chat: bool) -> list[bytes]:
    if chat:
        return [
            # One line split across two writes, and a blank line: both must parse.
            b'{"message":{"role":"assistant","con',
            b'tent":"Hel"},"done":false}\n\n',
            *ndjson(
                {"message": {"role": "assistant", "content": ""}, "done": False},
                {"message": {"role": "assistant", "content": "lo"}, "done": False},
                {
                    "message": {"role": "assistant", "content": "!"},
                    "done": True,
                    "done_reason": "length",
                    **STATS,
                },
            ),
        ]
    return ndjson(
        {"response": "Hi", "done": False},
        {"response": " there", "done": False},
        {"response": "", "done": True, "done_reason": "weird", "context": [1, 2, 3], **STATS},
    )


def openai_lines(completions: bool, behaviour: str) -> list[bytes]:
    def choice(text: str, finish: str | None = None) -> dict[str, Any]:
        if completions:
            return {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}
        return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}

    usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}
    head = [b": keep-alive comment\n\n", b"event: message\nid: 1\n"]
    head += sse({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    body = sse(choice("Hel"), choice("lo", "length"), usage)
    if behaviour == "nodone":
        return [*head, *sse(choice("Hel"))]
    if behaviour == "finish-no-done":
        return [*head, *body]
    lines = [*head, *body, *sse("[DONE]")]
    if behaviour == "crlf":
        lines = [line.replace(b"\n", b"\r\n") for line in lines]
    return lines


def make_app(rec: Recorder, trap_port: Callable[[], int]) -> Starlette:
    async def stream(chunks: list[bytes], gap: float = 0.0) -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk
            await anyio.sleep(gap)

    async def endless(ollama: bool) -> AsyncIterator[bytes]:
        line = ndjson({"message": {"content": "x"}, "done": False})[0]
        if not ollama:
            line = sse({"choices": [{"index": 0, "delta": {"content": "x"}}]})[0]
        try:
            for _ in range(200):
                yield line
                await anyio.sleep(0.02)
            rec.completed.set()
        finally:
            if not rec.completed.is_set():
                rec.aborted.set()

    async def dropping(first: bytes) -> AsyncIterator[bytes]:
        yield first
        await anyio.sleep(0.05)
        raise RuntimeError("the upstream crashed mid-stream")

    async def wait_unless_gone(request: Request, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            while (await request.receive())["type"] != "http.disconnect":
                pass

    def error(code: int, ollama: bool) -> Response:
        port = request_port[0]
        text = f"bad option 'x' at http://127.0.0.1:{port}/api with key {KEY}: " + "y" * 1000
        body: Any = {"error": text} if ollama else {"error": {"message": text, "type": "x"}}
        headers = {"Retry-After": "7"}
        return Response(orjson.dumps(body), code, headers, media_type="application/json")

    request_port = [0]

    async def misbehave(request: Request, how: str, path: str, ollama: bool) -> Response | None:
        media = "application/x-ndjson" if ollama else "text/event-stream"
        first = ndjson({"message": {"content": "a"}, "response": "a", "done": False})[0]
        if not ollama:
            first = sse({"choices": [{"index": 0, "delta": {"content": "a"}}]})[0]
        if how.startswith("err"):
            return error(int(how[3:]), ollama)
        if how == "garbage":
            return Response(b"not json\n", media_type=media)
        if how == "shape":
            return Response(b"[1, 2, 3]\n", media_type="application/json")
        if how == "slow":
            await wait_unless_gone(request, 2.0)
            return Response(b"{}", media_type="application/json")
        if how == "slowstream":
            return StreamingResponse(stream([first, first], gap=1.5), media_type=media)
        if how == "deadline":
            return StreamingResponse(stream([first] * 30, gap=0.1), media_type=media)
        if how == "drop":
            return StreamingResponse(dropping(first), media_type=media)
        if how == "nodone" and ollama:
            return StreamingResponse(stream([first, first]), media_type=media)
        if how == "inband":
            bad = ndjson({"error": f"runner crashed at 127.0.0.1:{request_port[0]}"})[0]
            if not ollama:
                bad = sse({"error": {"message": "runner crashed", "code": 500}})[0]
            return StreamingResponse(stream([first, bad]), media_type=media)
        if how == "cancel":
            return StreamingResponse(endless(ollama), media_type=media)
        if how in ("burst", "paced"):
            # The whole answer in one write, or each line after a pause.
            lines = ollama_lines(chat=path == "/api/chat") if ollama else openai_lines(False, "")
            if how == "burst":
                return Response(b"".join(lines), media_type=media)
            return StreamingResponse(stream(lines, gap=0.05), media_type=media)
        if how == "redirect":
            location = f"http://127.0.0.1:{trap_port()}{path}"
            return Response(status_code=302, headers={"Location": location})
        return None

    async def handle(request: Request) -> Response:
        request_port[0] = request.url.port or 0
        segments = request.url.path.strip("/").split("/")
        variant = segments.pop(0) if segments and segments[0] not in ("api", "v1") else ""
        path = "/" + "/".join(segments)
        raw = await request.body()
        body = orjson.loads(raw) if raw else {}
        rec.requests.append({"path": path, "headers": dict(request.headers), "body": body})
        ollama = path.startswith("/api/")
        how = variant or str(body.get("model", ""))
        special = await misbehave(request, how, path, ollama)
        if special is not None:
            return special
        return answer(path, body, how)

    def answer(path: str, body: dict[str, Any], how: str) -> Response:
        if path in ("/api/chat", "/api/generate"):
            lines = ollama_lines(chat=path == "/api/chat")
            return StreamingResponse(stream(lines), media_type="application/x-ndjson")
        if path in ("/v1/chat/completions", "/v1/completions"):
            lines = openai_lines(path == "/v1/completions", how)
            return StreamingResponse(stream(lines), media_type="text/event-stream")
        if path == "/api/embed":
            vectors = [[float(i), 0.5] for i, _ in enumerate(body["input"])]
            reply: Any = {"embeddings": vectors, **STATS, "prompt_eval_count": 4}
        elif path == "/v1/embeddings":
            items = [
                {"object": "embedding", "index": i, "embedding": [float(i), 0.25]}
                for i, _ in enumerate(body["input"])
            ]
            reply = {"data": items[::-1], "usage": {"prompt_tokens": 6, "total_tokens": 6}}
        elif path == "/api/version":
            reply = {"version": "0.12.0"}
        elif path == "/api/ps":
            reply = {"models": [{"name": "qwen3:8b", "size": 1}]}
        elif path == "/v1/models":
            reply = {"object": "list", "data": [{"id": "qwen3-8b", "object": "model"}]}
        else:
            return Response(b'{"error": "not found"}', 404, media_type="application/json")
        return Response(orjson.dumps(reply), media_type="application/json")

    methods = ["GET", "POST"]
    return Starlette(routes=[Route("/{path:path}", handle, methods=methods)])


def make_trap(rec: Recorder) -> Starlette:
    async def trap(request: Request) -> Response:
        rec.trapped.append(request.url.path)
        return Response(b'{"version": "trap"}', media_type="application/json")

    return Starlette(routes=[Route("/{path:path}", trap, methods=["GET", "POST"])])


@dataclass
class FakeServer:
    port: int
    trap_port: int
    rec: Recorder

    def url(self, provider: str, variant: str = "") -> str:
        base = f"http://127.0.0.1:{self.port}"
        base += f"/{variant}" if variant else ""
        return base + ("/v1" if provider == "openai" else "")


def serve(app: Starlette, **tls: Any) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        **tls,
        log_level="critical",
        lifespan="off",
        loop="asyncio",
        http="h11",
        ws="none",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the fake upstream did not start"
        time.sleep(0.01)
    return server, thread, sock.getsockname()[1]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    rec = Recorder()
    trap, trap_thread, trap_port = serve(make_trap(rec))
    main, main_thread, port = serve(make_app(rec, lambda: trap_port))
    yield FakeServer(port=port, trap_port=trap_port, rec=rec)
    for server, thread in ((main, main_thread), (trap, trap_thread)):
        server.should_exit = True
        thread.join(5)


@pytest.fixture
def srv(fake: FakeServer) -> FakeServer:
    fake.rec.requests.clear()
    fake.rec.trapped.clear()
    fake.rec.aborted.clear()
    fake.rec.completed.clear()
    return fake


# --- helpers ------------------------------------------------------------------------------------


def config(srv: FakeServer, provider: str = "ollama", variant: str = "", **kw: Any) -> Any:
    values: dict[str, Any] = {
        "name": "gpu-a",
        "model": "m",
        "provider": provider,
        "url": srv.url(provider, variant),
        "api_key": SecretStr(KEY),
        "connect_timeout": 1.0,
        "first_token_timeout": 1.0,
        "timeout": 5.0,
    }
    return DeploymentConfig(**(values | kw))


@asynccontextmanager
async def upstream(
    srv: FakeServer, provider: str = "ollama", variant: str = "", **kw: Any
) -> AsyncIterator[Upstream]:
    up = make_upstream(config(srv, provider, variant, **kw))
    try:
        yield up
    finally:
        await up.aclose()


def generation(**kw: Any) -> Generation:
    values: dict[str, Any] = {"model_path": "/nonexistent", "model_name": "m"}
    return Generation(**(values | kw))


def embedding(inputs: list[str], **kw: Any) -> Embedding:
    return Embedding(model_path=Path("/nonexistent"), model_name="m", inputs=inputs, **kw)


async def collect(up: Upstream, request: Generation, model: str) -> list[Chunk]:
    return [chunk async for chunk in up.generate(request, model)]


def assert_safe(exc: BaseException, srv: FakeServer) -> None:
    text = str(exc)
    assert "deployment 'gpu-a'" in text
    for secret in (KEY, "127.0.0.1", str(srv.port), str(srv.trap_port), "http"):
        assert secret not in text, text


# --- Ollama -------------------------------------------------------------------------------------


async def test_ollama_chat_streams_chunks_with_final_stats(srv: FakeServer) -> None:
    request = generation(
        messages=[{"role": "user", "content": "hi"}],
        system="Be brief.",
        sampling=Sampling(temperature=0.2, seed=7, stop=["\n\n"]),
        num_ctx=4096,
        num_predict=64,
        format="json",
        keep_alive_s=300.0,
    )
    async with upstream(srv) as up:
        chunks = await collect(up, request, "qwen3:8b")
    assert [c.text for c in chunks] == ["Hel", "lo", "!"]
    final = chunks[-1]
    assert final.done and final.done_reason == "length" and final.context is None
    assert (final.total_duration, final.load_duration, final.eval_count) == (900, 100, 3)
    assert (final.prompt_eval_count, final.prompt_eval_duration, final.eval_duration) == (
        7,
        300,
        500,
    )
    sent = srv.rec.last()
    assert sent["path"] == "/api/chat"
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"
    body = sent["body"]
    assert body["model"] == "qwen3:8b" and body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert body["format"] == "json" and body["keep_alive"] == 300.0
    options = body["options"]
    assert options["num_ctx"] == 4096 and options["num_predict"] == 64
    assert options["temperature"] == 0.2 and options["seed"] == 7 and options["stop"] == ["\n\n"]
    assert options["top_k"] == 40 and options["mirostat_eta"] == 0.1


async def test_ollama_generate_streams_with_context(srv: FakeServer) -> None:
    request = generation(
        mode="generate", prompt="[INST] hi", raw=True, context=[9, 9], format=SCHEMA
    )
    async with upstream(srv) as up:
        chunks = await collect(up, request, "qwen3:8b")
    assert [c.text for c in chunks] == ["Hi", " there", ""]
    final = chunks[-1]
    assert final.done and final.done_reason == "stop" and final.context == [1, 2, 3]
    sent = srv.rec.last()
    assert sent["path"] == "/api/generate"
    body = sent["body"]
    assert body["prompt"] == "[INST] hi" and body["raw"] is True and body["context"] == [9, 9]
    assert body["format"] == SCHEMA
    for absent in ("system", "template", "keep_alive", "messages"):
        assert absent not in body
    assert "seed" not in body["options"] and "stop" not in body["options"]


async def test_ollama_embed(srv: FakeServer) -> None:
    async with upstream(srv) as up:
        result = await up.embed(embedding(["a", "b"], truncate=False, dimensions=2), "nomic")
    assert result.vectors == [[0.0, 0.5], [1.0, 0.5]]
    assert (result.prompt_eval_count, result.total_duration, result.load_duration) == (4, 900, 100)
    assert srv.rec.last()["body"] == {
        "model": "nomic",
        "input": ["a", "b"],
        "truncate": False,
        "dimensions": 2,
    }


async def test_ollama_health_and_models(srv: FakeServer) -> None:
    async with upstream(srv) as up:
        await up.health()
        assert await up.models() == [{"name": "qwen3:8b", "size": 1}]
    assert [r["path"] for r in srv.rec.requests] == ["/api/version", "/api/ps"]


# --- OpenAI -------------------------------------------------------------------------------------


async def test_openai_chat_parses_sse_with_usage(srv: FakeServer) -> None:
    request = generation(
        messages=[{"role": "user", "content": "hi"}],
        system="Be brief.",
        sampling=Sampling(temperature=0.3, top_p=0.8, seed=1, stop=["END"]),
        num_predict=32,
        format="json",
    )
    async with upstream(srv, "openai") as up:
        chunks = await collect(up, request, "qwen3-8b")
    assert [c.text for c in chunks] == ["Hel", "lo", ""]
    final = chunks[-1]
    assert final.done and final.done_reason == "length"
    assert (final.prompt_eval_count, final.eval_count, final.load_duration) == (5, 2, 0)
    assert final.total_duration >= final.prompt_eval_duration > 0
    assert final.total_duration == final.prompt_eval_duration + final.eval_duration
    sent = srv.rec.last()
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"
    body = sent["body"]
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["response_format"] == {"type": "json_object"}
    assert body["stream_options"] == {"include_usage": True}
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (32, 0.3, 0.8)
    assert (body["seed"], body["stop"]) == (1, ["END"])
    for nonstandard in ("top_k", "min_p", "repeat_penalty", "options", "keep_alive"):
        assert nonstandard not in body


async def test_openai_raw_generate_uses_completions_and_json_schema(srv: FakeServer) -> None:
    request = generation(mode="generate", prompt="Once", raw=True, format=SCHEMA)
    async with upstream(srv, "openai") as up:
        chunks = await collect(up, request, "qwen3-8b")
    assert "".join(c.text for c in chunks) == "Hello" and chunks[-1].done
    sent = srv.rec.last()
    assert sent["path"] == "/v1/completions" and sent["body"]["prompt"] == "Once"
    assert sent["body"]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA},
    }


async def test_openai_generate_without_raw_uses_chat(srv: FakeServer) -> None:
    request = generation(mode="generate", prompt="hello", system="sys")
    async with upstream(srv, "openai") as up:
        await collect(up, request, "qwen3-8b")
    sent = srv.rec.last()
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hello"},
    ]
    assert "seed" not in sent["body"] and "response_format" not in sent["body"]


@pytest.mark.parametrize("model", ["crlf", "finish-no-done"])
async def test_openai_stream_variants(srv: FakeServer, model: str) -> None:
    async with upstream(srv, "openai") as up:
        chunks = await collect(up, generation(prompt="x"), model)
    assert "".join(c.text for c in chunks) == "Hello"
    assert chunks[-1].done and chunks[-1].eval_count == 2


async def test_openai_embed_orders_by_index(srv: FakeServer) -> None:
    async with upstream(srv, "openai") as up:
        result = await up.embed(embedding(["a", "b", "c"], truncate=True, dimensions=None), "bge")
    assert result.vectors == [[0.0, 0.25], [1.0, 0.25], [2.0, 0.25]]
    assert result.prompt_eval_count == 6 and result.load_duration == 0
    assert srv.rec.last()["path"] == "/v1/embeddings"
    assert srv.rec.last()["body"] == {
        "model": "bge",
        "input": ["a", "b", "c"],
        "encoding_format": "float",
    }


async def test_openai_health_and_models(srv: FakeServer) -> None:
    async with upstream(srv, "openai") as up:
        await up.health()
        assert await up.models() == [{"id": "qwen3-8b", "object": "model"}]
    assert [r["path"] for r in srv.rec.requests] == ["/v1/models", "/v1/models"]


# --- failures -----------------------------------------------------------------------------------

PROVIDERS = ["ollama", "openai"]

STATUS_CASES = [
    ("err400", BadRequestError, "rejected the request: bad option 'x' at ***"),
    ("err422", BadRequestError, "rejected the request: bad option"),
    ("err401", UpstreamError, "rejected Billumy's credentials"),
    ("err403", UpstreamError, "rejected Billumy's credentials"),
    ("err404", UpstreamError, "does not serve model 'err404'"),
    ("err408", UpstreamError, "failed with status 408"),
    ("err429", UpstreamUnavailableError, "failed with status 429"),
    ("err500", UpstreamError, "failed with status 500"),
    ("err503", UpstreamUnavailableError, "failed with status 503"),
    ("garbage", UpstreamError, "sent an invalid response"),
    ("redirect", UpstreamError, "sent an invalid response"),
    ("drop", UpstreamError, "closed the stream before the answer was complete"),
    ("inband", UpstreamError, "failed: runner crashed"),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("model", "kind", "message"), STATUS_CASES)
async def test_generate_failures_are_mapped(
    srv: FakeServer, provider: str, model: str, kind: type[BillumyError], message: str
) -> None:
    async with upstream(srv, provider) as up:
        with pytest.raises(kind) as caught:
            await collect(up, generation(prompt="hi"), model)
    assert type(caught.value) is kind
    assert message in str(caught.value)
    assert_safe(caught.value, srv)
    assert srv.rec.trapped == []  # a redirect is never followed
    if kind is BadRequestError:
        assert caught.value.status_code == 400
        assert len(str(caught.value).split(": ", 1)[1]) <= 300
    elif isinstance(caught.value, UpstreamError):
        assert caught.value.retryable
    if model == "err429":
        assert caught.value.headers["Retry-After"] == "7"


async def test_ollama_stream_without_done_is_incomplete(srv: FakeServer) -> None:
    async with upstream(srv) as up:
        with pytest.raises(UpstreamError, match="closed the stream before the answer"):
            await collect(up, generation(prompt="hi"), "nodone")


async def test_openai_stream_without_done_or_finish_is_incomplete(srv: FakeServer) -> None:
    async with upstream(srv, "openai") as up:
        with pytest.raises(UpstreamError, match="closed the stream before the answer"):
            await collect(up, generation(prompt="hi"), "nodone")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_first_token_timeout(srv: FakeServer, provider: str) -> None:
    async with upstream(srv, provider, first_token_timeout=0.3) as up:
        start = time.monotonic()
        with pytest.raises(UpstreamTimeoutError, match=r"did not answer within 0\.3 s") as caught:
            await collect(up, generation(prompt="hi"), "slow")
    assert time.monotonic() - start < 1.5
    assert caught.value.status_code == 504 and caught.value.retryable
    assert_safe(caught.value, srv)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_gap_between_chunks_is_bounded(srv: FakeServer, provider: str) -> None:
    got: list[str] = []
    async with upstream(srv, provider, first_token_timeout=0.3) as up:
        with pytest.raises(UpstreamTimeoutError, match=r"within 0\.3 s"):
            async for chunk in up.generate(generation(prompt="hi"), "slowstream"):
                got.append(chunk.text)
    assert got == ["a"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_whole_request_deadline(srv: FakeServer, provider: str) -> None:
    got: list[str] = []
    async with upstream(srv, provider, timeout=0.5, first_token_timeout=1.0) as up:
        start = time.monotonic()
        with pytest.raises(UpstreamTimeoutError, match=r"did not answer within 0\.5 s"):
            async for chunk in up.generate(generation(prompt="hi"), "deadline"):
                got.append(chunk.text)
    assert 0.4 < time.monotonic() - start < 1.5
    assert 2 <= len(got) < 30


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_unreachable(srv: FakeServer, provider: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    cfg = config(srv, provider).model_copy(update={"url": f"http://127.0.0.1:{closed_port}"})
    up = make_upstream(cfg)
    try:
        with pytest.raises(UpstreamUnavailableError) as caught:
            await collect(up, generation(prompt="hi"), "m")
        assert str(caught.value) == "deployment 'gpu-a' is unreachable"
        assert caught.value.status_code == 503 and caught.value.retryable
        with pytest.raises(UpstreamUnavailableError):
            await up.health()
    finally:
        await up.aclose()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("variant", "kind", "message"),
    [
        ("err500", UpstreamError, "failed with status 500"),
        ("err401", UpstreamError, "rejected Billumy's credentials"),
        ("err404", UpstreamError, "failed with status 404"),
        ("garbage", UpstreamError, "sent an invalid response"),
        ("shape", UpstreamError, "sent an invalid response"),
        ("redirect", UpstreamError, "sent an invalid response"),
    ],
)
async def test_health_and_models_failures(
    srv: FakeServer, provider: str, variant: str, kind: type[BillumyError], message: str
) -> None:
    async with upstream(srv, provider, variant) as up:
        for call in (up.health, up.models):
            with pytest.raises(kind, match=message) as caught:
                await call()
            assert_safe(caught.value, srv)
    assert srv.rec.trapped == []


async def test_health_uses_a_short_timeout(srv: FakeServer) -> None:
    async with upstream(srv, "ollama", "slow", connect_timeout=0.2) as up:
        start = time.monotonic()
        with pytest.raises(UpstreamTimeoutError, match=r"within 0\.2 s"):
            await up.health()
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("err400", "rejected the request"),
        ("err404", "does not serve model 'err404'"),
        ("garbage", "sent an invalid response"),
        ("shape", "sent an invalid response"),
    ],
)
async def test_embed_failures(srv: FakeServer, provider: str, model: str, message: str) -> None:
    async with upstream(srv, provider) as up:
        with pytest.raises(BillumyError, match=message) as caught:
            await up.embed(embedding(["a"], truncate=False, dimensions=None), model)
    assert_safe(caught.value, srv)


# --- cancellation, credentials, construction ----------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_closing_early_closes_the_upstream_request(srv: FakeServer, provider: str) -> None:
    async with upstream(srv, provider) as up:
        stream = up.generate(generation(prompt="hi"), "cancel")
        first = await anext(stream)
        assert first.text == "x"
        await stream.aclose()  # type: ignore[attr-defined]
        await anyio.to_thread.run_sync(srv.rec.aborted.wait, 3.0)
    assert srv.rec.aborted.is_set() and not srv.rec.completed.is_set()


async def test_no_key_sends_no_authorization(srv: FakeServer) -> None:
    async with upstream(srv, api_key=None) as up:
        await up.health()
    assert "authorization" not in srv.rec.last()["headers"]


async def test_make_upstream_picks_the_provider(srv: FakeServer) -> None:
    async with upstream(srv, "ollama") as up:
        assert isinstance(up, OllamaUpstream) and up.provider == "ollama" and up.name == "gpu-a"
    async with upstream(srv, "openai") as up:
        assert isinstance(up, OpenAIUpstream) and up.provider == "openai"
    with pytest.raises(ValueError, match="not an upstream"):
        make_upstream(DeploymentConfig(name="local", model="m", provider="embedded"))


async def test_transport_errors_never_show_the_clients_text(srv: FakeServer) -> None:
    """aiohttp's exception texts hold the host and the URL: they are mapped, never shown."""
    mapper = ErrorMapper(config(srv, connect_timeout=2.5))
    url = URL(f"http://127.0.0.1:{srv.port}/api/chat")
    key = ConnectionKey("127.0.0.1", srv.port, False, True, None, None, None, None)
    info = RequestInfo(url, "POST", CIMultiDictProxy(CIMultiDict()), url)
    cases: list[tuple[Exception, type[UpstreamError], str, bool]] = [
        (aiohttp.ConnectionTimeoutError(str(url)), UpstreamTimeoutError, "within 2.5 s", True),
        (aiohttp.SocketTimeoutError(str(url)), UpstreamTimeoutError, "within 1 s", True),
        (TimeoutError(), UpstreamTimeoutError, "did not answer within 1 s", True),
        (
            aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused")),
            UpstreamUnavailableError,
            "is unreachable",
            True,
        ),
        (aiohttp.ServerDisconnectedError(str(url)), UpstreamError, "closed the stream", True),
        (aiohttp.ClientPayloadError(str(url)), UpstreamError, "closed the stream", True),
        (aiohttp.ClientOSError(104, f"reset by {url}"), UpstreamError, "closed the stream", True),
        (
            aiohttp.ServerDisconnectedError(str(url)),
            UpstreamError,
            "closed the connection before answering",
            False,
        ),
        (
            aiohttp.ClientResponseError(info, (), status=400, message=f"bad status at {url}"),
            UpstreamError,
            "sent an invalid response",
            True,
        ),
        (aiohttp.InvalidURL(str(url)), UpstreamError, "sent an invalid response", True),
    ]
    for exc, kind, message, streaming in cases:
        mapped = mapper.transport(exc, streaming=streaming, connect_s=2.5, read_s=1.0)
        assert type(mapped) is kind and message in str(mapped), (exc, mapped)
        assert_safe(mapped, srv)


# --- what is in hand --------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_chunks_that_came_together_say_so(srv: FakeServer, provider: str) -> None:
    """Chunk.more: set when the next chunk arrived in the same read (so writers may write
    them together), never when the next one is still to come."""
    async with upstream(srv, provider) as up:
        burst = await collect(up, generation(messages=[{"role": "user", "content": "hi"}]), "burst")
        paced = await collect(up, generation(messages=[{"role": "user", "content": "hi"}]), "paced")
    expected = "Hello!" if provider == "ollama" else "Hello"
    assert "".join(c.text for c in burst) == "".join(c.text for c in paced) == expected
    assert burst[-1].done and paced[-1].done
    assert len(burst) >= 3
    assert all(c.more for c in burst[:-1]) and not burst[-1].more
    assert not any(c.more for c in paced)


# --- connections the upstream dropped -----------------------------------------------------------


class DroppingServer(SocketServer):
    """An HTTP server on raw sockets that answers the first request on each connection, keeps
    the connection alive, and closes it without a word when a second request comes on it: what
    a request meets when it reuses a pooled connection the upstream's idle timeout has closed.
    ``always``: it closes every connection unanswered."""

    BODY = orjson.dumps({"embeddings": [[1.0, 0.0]], "prompt_eval_count": 2})

    def __init__(self, always: bool = False) -> None:
        self.always = always
        self.requests = 0
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        for answered in range(2):
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(65536)
                if not data:
                    return
                head += data
            self.requests += 1
            if answered or self.always:
                return  # closed unanswered
            lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            size = next(
                (
                    int(line.split(b":")[1])
                    for line in lines
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            body = head.split(b"\r\n\r\n", 1)[1]
            while len(body) < size:
                body += conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(self.BODY)}\r\n\r\n".encode()
                + self.BODY
            )


async def test_a_dropped_pooled_connection_is_retried_once_on_a_new_one() -> None:
    server = DroppingServer()
    cfg = DeploymentConfig(name="gpu-a", model="m", url=f"http://127.0.0.1:{server.port}")
    up = make_upstream(cfg)
    try:
        for _ in range(3):
            result = await up.embed(embedding(["a"], truncate=False, dimensions=None), "m")
            assert result.vectors == [[1.0, 0.0]] and result.prompt_eval_count == 2
    finally:
        await up.aclose()
        server.close()
    # Each later request met the dropped connection first, then went out on a new one.
    assert server.connections == 3 and server.requests == 5


async def test_an_upstream_that_always_drops_fails_after_one_retry() -> None:
    server = DroppingServer(always=True)
    cfg = DeploymentConfig(name="gpu-a", model="m", url=f"http://127.0.0.1:{server.port}")
    up = make_upstream(cfg)
    try:
        with pytest.raises(UpstreamError, match="closed the connection before answering") as caught:
            await up.embed(embedding(["a"], truncate=False, dimensions=None), "m")
    finally:
        await up.aclose()
        server.close()
    assert caught.value.retryable and str(server.port) not in str(caught.value)
    assert server.connections == 2 and server.requests == 2


# --- https upstreams ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Any]]:
    """The fake upstream over https, with a certificate of its own CA (made here)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for the https upstream")
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    self_signed(cert, key, "IP:127.0.0.1")
    rec = Recorder()
    server, thread, port = serve(
        make_app(rec, lambda: 0), ssl_certfile=str(cert), ssl_keyfile=str(key)
    )
    yield port, cert
    server.should_exit = True
    thread.join(5)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_https_upstream_with_its_own_ca(tls_upstream: tuple[int, Any], provider: str) -> None:
    port, cert = tls_upstream
    url = f"https://127.0.0.1:{port}" + ("/v1" if provider == "openai" else "")
    cfg = DeploymentConfig(name="gpu-a", model="m", provider=provider, url=url, ca_file=cert)
    up = make_upstream(cfg)
    try:
        await up.health()
        chunks = await collect(up, generation(prompt="hi"), "m")
    finally:
        await up.aclose()
    assert chunks[-1].done and "".join(c.text for c in chunks)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_https_upstream_with_an_untrusted_certificate(
    tls_upstream: tuple[int, Any], provider: str
) -> None:
    port, _ = tls_upstream
    url = f"https://127.0.0.1:{port}" + ("/v1" if provider == "openai" else "")
    up = make_upstream(DeploymentConfig(name="gpu-a", model="m", provider=provider, url=url))
    try:
        with pytest.raises(UpstreamError, match="failed TLS verification") as caught:
            await collect(up, generation(prompt="hi"), "m")
    finally:
        await up.aclose()
    assert caught.value.retryable
    assert str(port) not in str(caught.value) and "127.0.0.1" not in str(caught.value)


def test_ca_file_must_be_a_readable_pem_of_cas(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("hello")
    for path in (bad, tmp_path / "missing.pem"):
        with pytest.raises(ValueError, match="is not a readable PEM file of CAs"):
            DeploymentConfig(name="a", model="m", url="https://h", ca_file=path)


def test_sse_parser_reads_events_as_bytes() -> None:
    parser = SseParser()
    lines = [
        b": a comment",
        b"event: message",
        b"id: 7",
        b'data: {"a":',
        b"data:1}",
        b"",
        b"data",
        b"",
        b"",
        b"data: [DONE]",
    ]
    events = [e for e in (parser.feed(line) for line in lines) if e is not None]
    assert events == [b'{"a":\n1}', b""]
    assert parser.end() == b"[DONE]" and parser.end() is None
