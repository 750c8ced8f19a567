"""Ollama inference routes: /api/generate, /api/chat, /api/embed, /api/embeddings."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from billumy.api.deps import (
    ChatBody,
    EmbedBody,
    EmbeddingsBody,
    GenerateBody,
    InferenceDep,
    InferenceKey,
)
from billumy.api.responses import JSON
from billumy.api.streaming import ndjson_response, prime, single, unless_disconnected
from billumy.engines.base import Chunk
from billumy.inference import Prepared
from billumy.schemas.ollama import EmbedRequest

router = APIRouter(prefix="/api", tags=["ollama"])


@lru_cache(maxsize=2)
def _second(whole: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))


def timestamp() -> str:
    """RFC 3339 UTC with microseconds, as Ollama writes created_at; cheap once per chunk."""
    now = time.time()
    whole = int(now)
    return f"{_second(whole)}.{int((now - whole) * 1_000_000):06d}Z"


def _stats(chunk: Chunk) -> dict[str, Any]:
    return {
        "done_reason": chunk.done_reason,
        "total_duration": chunk.total_duration,
        "load_duration": chunk.load_duration,
        "prompt_eval_count": chunk.prompt_eval_count,
        "prompt_eval_duration": chunk.prompt_eval_duration,
        "eval_count": chunk.eval_count,
        "eval_duration": chunk.eval_duration,
    }


def _is_last(chunk: Chunk) -> bool:
    return chunk.done


async def _run(
    request: Request,
    service: InferenceDep,
    prepared: Prepared,
    empty: bool,
    stream: bool,
    render: Any,
) -> Response:
    async def start() -> tuple[Chunk, AsyncIterator[Chunk]]:
        if empty:
            return await prime(single(await service.load_or_unload(prepared)))
        return await prime(service.stream(prepared))

    async def whole() -> dict[str, Any]:
        first, rest = await start()
        text = [first.text]
        last = first
        if not first.done:
            async for chunk in rest:
                text.append(chunk.text)
                last = chunk
        return dict(render(last, "".join(text)))

    # Waiting in the queue, or generating a whole answer, ends if the client goes away.
    if stream:
        first, rest = await unless_disconnected(request, start())
        return ndjson_response(first, rest, render, _is_last)
    return JSON(await unless_disconnected(request, whole()))


@router.post("/generate")
async def generate(
    request: Request, body: GenerateBody, service: InferenceDep, _: InferenceKey
) -> Response:
    prepared = await service.prepare_generate(body)
    model = body.model

    def render(chunk: Chunk, text: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": model,
            "created_at": timestamp(),
            "response": chunk.text if text is None else text,
            "done": chunk.done,
        }
        if chunk.done:
            out.update(_stats(chunk))
            if chunk.context is not None:
                out["context"] = chunk.context
        return out

    empty = not body.prompt and not body.raw
    return await _run(request, service, prepared, empty, body.stream, render)


@router.post("/chat")
async def chat(
    request: Request, body: ChatBody, service: InferenceDep, _: InferenceKey
) -> Response:
    prepared = await service.prepare_chat(body)
    model = body.model

    def render(chunk: Chunk, text: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": model,
            "created_at": timestamp(),
            "message": {"role": "assistant", "content": chunk.text if text is None else text},
            "done": chunk.done,
        }
        if chunk.done:
            out.update(_stats(chunk))
        return out

    empty = not body.messages
    return await _run(request, service, prepared, empty, body.stream, render)


@router.post("/embed")
async def embed(body: EmbedBody, service: InferenceDep, _: InferenceKey) -> Response:
    _entry, result = await service.embed(body)
    return JSON(
        {
            "model": body.model,
            "embeddings": result.vectors,
            "total_duration": result.total_duration,
            "load_duration": result.load_duration,
            "prompt_eval_count": result.prompt_eval_count,
        }
    )


@router.post("/embeddings")
async def embeddings(body: EmbeddingsBody, service: InferenceDep, _: InferenceKey) -> Response:
    request = EmbedRequest(
        model=body.model, input=body.prompt, options=body.options, keep_alive=body.keep_alive
    )
    _entry, result = await service.embed(request)
    return JSON({"embedding": result.vectors[0]})
