"""Streamed bodies: pieces in hand are written together, the last one ends the response, and a
client that hangs up stops the body at the next piece. ASGI ``send``/``receive`` are recorded
in-process here; the end-to-end behaviour is in tests/e2e/test_http_api.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from billumy.api.streaming import ChunkStream, Last, _body
from billumy.drain import Drain
from billumy.engines.base import Chunk
from billumy.errors import UpstreamError

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def render(chunk: Chunk) -> dict[str, Any]:
    return {"t": chunk.text, "done": chunk.done}


async def chunks(*items: Chunk, fail: bool = False) -> AsyncIterator[Chunk]:
    for item in items:
        yield item
    if fail:
        raise UpstreamError("deployment 'x' closed the stream before the answer was complete")


def lines(piece: bytes) -> list[str]:
    """The text (or error) of each NDJSON line of a piece."""
    out = []
    for raw in piece.splitlines():
        item = orjson.loads(raw)
        out.append(item["t"] if "t" in item else item["error"])
    return out


async def pieces(first: Chunk, rest: AsyncIterator[Chunk]) -> list[bytes]:
    return [p async for p in _body(first, rest, render, lambda c: c.done, Drain())]


async def test_chunks_in_hand_are_written_together_and_the_last_ends_it() -> None:
    got = await pieces(
        Chunk(text="a", more=True),
        chunks(
            Chunk(text="b"),
            Chunk(text="c", more=True),
            Chunk(text="d", more=True),
            Chunk(text="", done=True),
        ),
    )
    assert [lines(p) for p in got] == [["a", "b"], ["c", "d", ""]]
    assert [type(p) for p in got] == [bytes, Last]


async def test_a_chunk_with_nothing_behind_it_goes_out_alone() -> None:
    got = await pieces(Chunk(text="a"), chunks(Chunk(text="b"), Chunk(done=True)))
    assert [lines(p) for p in got] == [["a"], ["b"], [""]]
    assert type(got[-1]) is Last


async def test_an_error_after_held_chunks_goes_out_with_them() -> None:
    got = await pieces(Chunk(text="a"), chunks(Chunk(text="b", more=True), fail=True))
    assert [lines(p) for p in got] == [
        ["a"],
        ["b", "deployment 'x' closed the stream before the answer was complete"],
    ]
    assert type(got[-1]) is Last


class Client:
    """An ASGI server's side of one response: what was sent, and whether the client left."""

    def __init__(self, gone: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        if gone:
            self.gone.set()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


class Body:
    def __init__(self, *items: bytes, pause: float = 0.0) -> None:
        self.items = items
        self.pause = pause
        self.cleaned = False
        self.yielded = 0

    async def __call__(self) -> AsyncIterator[bytes]:
        try:
            for item in self.items:
                self.yielded += 1
                yield item
                await asyncio.sleep(self.pause)
            await asyncio.sleep(0.01)  # clean-up after the last piece (an upstream closing)
        finally:
            self.cleaned = True


async def test_a_last_piece_ends_the_response_in_one_write() -> None:
    client, body = Client(), Body(b"x", Last(b"y"))
    response = ChunkStream(body(), "application/x-ndjson", {"X-Test": "1"})
    await response({"type": "http"}, client.receive, client.send)
    start, *rest = client.sent
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert (b"x-test", b"1") in start["headers"]
    assert [(m["body"], m["more_body"]) for m in rest] == [(b"x", True), (b"y", False)]
    assert body.cleaned  # the body still ran its clean-up after the last piece


async def test_without_a_last_piece_the_response_ends_after_the_body() -> None:
    client = Client()
    await ChunkStream(Body(b"x", b"y")(), "text/event-stream")({}, client.receive, client.send)
    assert [(m["body"], m["more_body"]) for m in client.sent[1:]] == [
        (b"x", True),
        (b"y", True),
        (b"", False),
    ]


async def test_a_client_that_leaves_stops_the_body_at_the_next_piece() -> None:
    client, body = Client(), Body(*[b"x"] * 50, pause=0.01)
    response = ChunkStream(body(), "application/x-ndjson")
    task = asyncio.create_task(response({}, client.receive, client.send))
    await asyncio.sleep(0.05)
    client.gone.set()
    await asyncio.wait_for(task, 1)
    assert body.cleaned and body.yielded < 20
    assert not any(m.get("more_body") is False for m in client.sent)


async def test_with_cancel_on_disconnect_a_client_that_leaves_stops_a_waiting_body() -> None:
    """An insight may come long after the last event: the wait itself ends on a disconnect."""
    waiting = asyncio.Event()
    cleaned: list[bool] = []

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"first\n"
            waiting.set()
            await asyncio.Event().wait()  # a piece that never comes
            yield b"never\n"
        finally:
            cleaned.append(True)

    client = Client()
    response = ChunkStream(body(), "application/x-ndjson", cancel_on_disconnect=True)
    task = asyncio.create_task(response({}, client.receive, client.send))
    await waiting.wait()
    client.gone.set()
    await asyncio.wait_for(task, 5)
    assert cleaned == [True]
    assert [m.get("body") for m in client.sent[1:]] == [b"first\n"]


async def test_with_cancel_on_disconnect_a_body_that_ends_ends_the_response() -> None:
    client, body = Client(), Body(b"x", Last(b"y"))
    response = ChunkStream(body(), "application/x-ndjson", cancel_on_disconnect=True)
    await asyncio.wait_for(response({}, client.receive, client.send), 5)
    assert [(m["body"], m["more_body"]) for m in client.sent[1:]] == [(b"x", True), (b"y", False)]
    assert body.cleaned
