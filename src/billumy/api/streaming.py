"""NDJSON streaming: errors before the first chunk become HTTP errors, after it in-band lines."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import orjson
from fastapi.responses import StreamingResponse

from billumy.errors import BillumyError

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
