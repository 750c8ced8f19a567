"""The stream writers: NDJSON (Ollama routes) and SSE (OpenAI routes).

Errors before the first chunk become HTTP errors (the route awaits it, see :func:`prime`);
after it, a stream ends with one in-band error in its protocol's one shape:
NDJSON ``{"error": "...", "request_id": "..."}`` (:func:`in_band_error`), SSE
``data: {"error": {OpenAI's error object, "request_id": "..."}}`` (:func:`sse_error`). A
failure of ours is logged with the request id, and the client is told that id."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from billumy.api.errors import openai_error
from billumy.drain import Drain
from billumy.errors import BillumyError, ClientClosedError
from billumy.logs import REQUEST_ID

log = logging.getLogger(__name__)
T = TypeVar("T")

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
SSE_DONE = b"data: [DONE]\n\n"


async def prime(chunks: AsyncIterator[T]) -> tuple[T, AsyncIterator[T]]:
    """Wait for the first chunk so that queueing, loading and bad input fail with a status."""
    iterator = aiter(chunks)
    try:
        first = await anext(iterator)
    except BaseException:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    return first, iterator


def line(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload) + b"\n"


def request_id() -> str:
    """The id of the request being served, as its X-Request-ID header says."""
    return REQUEST_ID.get() or "unknown"


def in_band_error(message: str) -> dict[str, Any]:
    """The last line of a stream that failed after its headers went out: ``{"error": ...}``
    as before the first byte, plus the ``request_id`` of the response's X-Request-ID header."""
    return {"error": message, "request_id": request_id()}


def sse_event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def sse_error(status: int, message: str) -> dict[str, Any]:
    """The last event of an SSE stream that failed after its headers went out: OpenAI's error
    object, plus the ``request_id`` of the response's X-Request-ID header."""
    return {"error": {**openai_error(status, message), "request_id": request_id()}}


def failure_message() -> str:
    """What a client is told about a failure of ours: the request id finds its traceback."""
    return f"internal server error (request id {request_id()})"


def _failure(exc: Exception) -> tuple[int, str]:
    """The status and message of a stream's failure; called in its ``except`` block, so that
    a failure of ours is logged with its traceback and the request id."""
    if isinstance(exc, BillumyError):
        return exc.status_code, exc.message
    log.exception("stream failed", extra={"request_id": request_id()})
    return 500, failure_message()


class Last(bytes):
    """The last piece of a streamed body: written together with the end of the response
    (one write instead of two). The body may still run its clean-up after it."""


async def _body(
    first: T,
    rest: AsyncIterator[T],
    render: Callable[[T], dict[str, Any]],
    is_last: Callable[[T], bool],
    drain: Drain,
) -> AsyncIterator[bytes]:
    """The lines of ``first`` and ``rest``. A chunk whose successor is already in hand
    (``Chunk.more``) is held and written with it: one write instead of several, and no
    later than the last of them would have gone anyway."""
    pending: list[bytes] = []
    try:
        pending.append(line(render(first)))
        if is_last(first):
            yield Last(pending.pop())
            return
        if not getattr(first, "more", False):
            yield pending.pop()
        async for chunk in rest:
            drain.check()
            pending.append(line(render(chunk)))
            if is_last(chunk):
                yield Last(b"".join(pending))
                pending.clear()
            elif not getattr(chunk, "more", False):
                yield b"".join(pending)
                pending.clear()
    except Exception as exc:
        _, message = _failure(exc)
        pending.append(line(in_band_error(message)))
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
    if pending:
        yield Last(b"".join(pending))


async def _sse_body(
    first: T,
    rest: AsyncIterator[T],
    render: Callable[[T, bool], list[dict[str, Any]]],
    is_last: Callable[[T], bool],
    drain: Drain,
) -> AsyncIterator[bytes]:
    """The events of ``first`` and ``rest`` (``render(chunk, is_first)``), then ``[DONE]``.
    Chunks in hand are written together as in :func:`_body`; the stream is closed before the
    last piece is written, and a stream that ends before its last chunk is a failure."""
    pending: list[bytes] = []
    try:
        chunk, is_first = first, True
        while True:
            pending.extend(sse_event(event) for event in render(chunk, is_first))
            is_first = False
            if is_last(chunk):
                break
            if not getattr(chunk, "more", False):
                yield b"".join(pending)
                pending.clear()
            chunk = await anext(rest)
            drain.check()
        pending.append(SSE_DONE)
    except Exception as exc:
        pending.append(sse_event(sse_error(*_failure(exc))))
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
    if pending:
        yield Last(b"".join(pending))


class ChunkStream(Response):
    """A streamed answer: each piece of ``body`` is written as it comes; a :class:`Last`
    piece ends the response at once.

    Starlette's StreamingResponse runs the body and a disconnect listener in an anyio task
    group per response, which costs more than proxying the answer itself. Here a plain task
    waits for the client to hang up and the writer checks it between pieces: the body (and
    the generation behind it) is closed at the next piece after a disconnect. Waits before
    the first piece are covered by :func:`unless_disconnected`, and waits between pieces are
    bounded by the engines' own step timeouts.

    With ``cancel_on_disconnect`` the writer runs in a task of its own that is cancelled as
    soon as the client hangs up, for bodies whose pieces may be long apart (an insight is
    written once the model has finished it); the task costs too much for the token streams.
    """

    def __init__(
        self,
        body: AsyncIterator[bytes],
        media_type: str,
        headers: dict[str, str] | None = None,
        *,
        cancel_on_disconnect: bool = False,
    ) -> None:
        self.body_iterator = body
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.cancel_on_disconnect = cancel_on_disconnect
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.ensure_future(watch())  # done: the client has gone
        body = self.body_iterator
        try:
            if not self.cancel_on_disconnect:
                await self._write(send, watcher)
                return
            writer = asyncio.ensure_future(self._write(send, watcher))
            try:
                await asyncio.wait({writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not writer.done():
                    writer.cancel()
                    await asyncio.wait({writer})
            if not writer.cancelled():
                writer.result()
        finally:
            watcher.cancel()
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _write(self, send: Send, watcher: asyncio.Future[None]) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        ended = False
        async for data in self.body_iterator:
            if watcher.done():
                return
            if ended:
                continue  # after the last piece: the body is only cleaning up
            ended = isinstance(data, Last)
            await send({"type": "http.response.body", "body": data, "more_body": not ended})
        if not ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def ndjson_response(
    first: T,
    rest: AsyncIterator[T],
    render: Callable[[T], dict[str, Any]],
    is_last: Callable[[T], bool],
    headers: dict[str, str] | None = None,
    *,
    drain: Drain,
    cancel_on_disconnect: bool = False,
) -> ChunkStream:
    """The NDJSON answer of a stream whose first chunk is in hand: one line per chunk,
    ``render(chunk)``; a failure after the first is a last ``{"error", "request_id"}`` line."""
    body = _body(first, rest, render, is_last, drain)
    return ChunkStream(body, NDJSON, headers, cancel_on_disconnect=cancel_on_disconnect)


def sse_response(
    first: T,
    rest: AsyncIterator[T],
    render: Callable[[T, bool], list[dict[str, Any]]],
    is_last: Callable[[T], bool],
    headers: dict[str, str] | None = None,
    *,
    drain: Drain,
) -> ChunkStream:
    """The SSE answer of a stream whose first chunk is in hand: the events of each chunk,
    ``render(chunk, is_first)``, then ``data: [DONE]``; a failure after the first chunk is a
    last event with OpenAI's error object and the ``request_id``."""
    return ChunkStream(_sse_body(first, rest, render, is_last, drain), SSE, headers)


async def single(chunk: T) -> AsyncIterator[T]:
    yield chunk


async def unless_disconnected(request: Request, work: Awaitable[T], poll_s: float = 0.25) -> T:
    """Await ``work``, cancelling it (and the generation behind it) if the client hangs up."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll_s)
            if done:
                return task.result()
            if await request.is_disconnected():
                raise ClientClosedError("client closed the connection")
    finally:
        if not task.done():
            task.cancel()
            # Let the cancellation run the generation's clean-up before we return.
            await asyncio.wait({task})
