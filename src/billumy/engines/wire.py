"""The engine process's wire format: length-prefixed JSON frames over a local socket.

A frame is a 4-byte big-endian length and that many bytes of JSON (orjson). Requests carry an
``id`` chosen by the client; everything the engine sends about a request carries the same id:

    client -> engine   {"id": 7, "op": "generate", "args": {...}}    ops: generate, embed, load,
                       {"id": 7, "op": "cancel"}                     unload, count_tokens
    engine -> client   {"id": 7, "chunk": {...}}                     a piece of a generation
                       {"id": 7, "result": ...}                      the answer of any other op
                       {"id": 7, "error": {"type": ..., "message": ..., "retry_after": ...}}
                       {"hello": {"pid": ..., "version": ...}}       once, on connect
                       {"status": {"queue_depth": ..., "loaded": [...]}}   when it changes

Only the fields of a :class:`Chunk` that differ from their defaults are sent, so a token is a
frame of a few dozen bytes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from billumy import errors
from billumy.engines.base import Chunk, Generation, LoadedModel, Sampling

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024  # a generation request with a long history fits; garbage does not

_CHUNK_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Chunk)}

# Errors that cross the boundary keep their type (and so their HTTP status).
_ERRORS: dict[str, type[errors.BillumyError]] = {
    cls.__name__: cls
    for cls in (
        errors.BadRequestError,
        errors.NotFoundError,
        errors.PayloadTooLargeError,
        errors.OverloadedError,
        errors.EngineError,
        errors.GenerationTimeoutError,
    )
}


class FrameError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def encode(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message)
    return HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None at a clean end of stream."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameError("the stream ended inside a frame header") from exc
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise FrameError(f"frame of {size} bytes is over the limit")
    try:
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise FrameError("the stream ended inside a frame") from exc
    message = orjson.loads(body)
    if not isinstance(message, dict):
        raise FrameError("a frame must hold a JSON object")
    return message


def chunk_to_wire(chunk: Chunk) -> dict[str, Any]:
    return {
        name: value
        for name, value in dataclasses.asdict(chunk).items()
        if value != _CHUNK_DEFAULTS[name] and name != "more"
    }


def chunk_from_wire(data: dict[str, Any]) -> Chunk:
    return Chunk(**data)


def generation_to_wire(request: Generation) -> dict[str, Any]:
    data = dataclasses.asdict(request)
    data["model_path"] = str(request.model_path)
    return data


def generation_from_wire(data: dict[str, Any]) -> Generation:
    data = dict(data)
    data["model_path"] = Path(data["model_path"])
    data["sampling"] = Sampling(**data.get("sampling", {}))
    return Generation(**data)


def loaded_to_wire(model: LoadedModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "model_path": str(model.model_path),
        "size": model.size,
        "expires_at": model.expires_at.isoformat(),
        "context_length": model.context_length,
    }


def loaded_from_wire(data: dict[str, Any]) -> LoadedModel:
    return LoadedModel(
        name=data["name"],
        model_path=Path(data["model_path"]),
        size=int(data["size"]),
        expires_at=datetime.fromisoformat(data["expires_at"]),
        context_length=int(data["context_length"]),
    )


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """The error as a frame: its nearest class that crosses the boundary (a subclass of
    BadRequestError, such as a template error, travels as a BadRequestError)."""
    if isinstance(exc, errors.BillumyError):
        kind = next(
            c.__name__
            for c in type(exc).__mro__
            if c.__name__ in _ERRORS or c is errors.BillumyError
        )
        retry = exc.headers.get("Retry-After")
        return {
            "type": kind if kind in _ERRORS else "EngineError",
            "message": exc.message,
            "retry_after": int(retry) if retry else None,
        }
    return {"type": "EngineError", "message": f"the model runner failed: {exc}"}


def error_from_wire(data: dict[str, Any]) -> errors.BillumyError:
    cls = _ERRORS.get(str(data.get("type")), errors.EngineError)
    message = str(data.get("message", "the model runner failed"))
    if cls is errors.OverloadedError:
        return errors.OverloadedError(message, retry_after=int(data.get("retry_after") or 1))
    return cls(message)
