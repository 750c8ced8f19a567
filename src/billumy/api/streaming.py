"""NDJSON streaming: errors before the first chunk become HTTP errors, after it in-band lines."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.responses import StreamingResponse

from billumy.errors import BillumyError, ClientClosedError, ShuttingDownError

log = logging.getLogger(__name__)
T = TypeVar("T")

NDJSON = "application/x-ndjson"


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


class Drain:
    """Graceful shutdown: set when the server is told to stop (SIGTERM). Running streams may
    go on for the grace period; after it, each ends at its next chunk with an in-band error
    line (and the reply so far is stored as incomplete), so nobody waits on a dying process."""

    def __init__(self) -> None:
        self.deadline: float | None = None

    def begin(self, grace_s: float) -> None:
        if self.deadline is None:
            self.deadline = time.monotonic() + grace_s

    def check(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise ShuttingDownError


DRAIN = Drain()


def line(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload) + b"\n"


async def _body(
    first: T,
    rest: AsyncIterator[T],
    render: Callable[[T], dict[str, Any]],
    is_last: Callable[[T], bool],
) -> AsyncIterator[bytes]:
    try:
        yield line(render(first))
        if not is_last(first):
            async for chunk in rest:
                DRAIN.check()
                yield line(render(chunk))
    except BillumyError as exc:
        yield line({"error": exc.message})
    except Exception:
        log.exception("stream failed")
        yield line({"error": "internal server error"})
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()


def ndjson_response(
    first: T,
    rest: AsyncIterator[T],
    render: Callable[[T], dict[str, Any]],
    is_last: Callable[[T], bool],
    headers: dict[str, str] | None = None,
) -> StreamingResponse:
    return StreamingResponse(
        _body(first, rest, render, is_last), media_type=NDJSON, headers=headers
    )


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
