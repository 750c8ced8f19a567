"""Ollama inference routes: /api/generate, /api/chat, /api/embed, /api/embeddings."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from billumy.api.deps import (
    EmbedBody,
    EmbeddingsBody,
    InferenceDep,
    InferenceKey,
    KeyFirstRoute,
    body_of,
    inference_caller,
    lean_route,
    services_of,
)
from billumy.api.docs import MODEL_ERRORS, answers
from billumy.api.responses import JSON
from billumy.api.streaming import NDJSON, ndjson_response, prime, single, unless_disconnected
from billumy.auth import Principal
from billumy.cache.responses import CacheStatus
from billumy.engines.base import Chunk
from billumy.engines.router import Route
from billumy.inference import InferenceService, Prepared
from billumy.schemas.ollama import ChatRequest, EmbedRequest, GenerateRequest
from billumy.schemas.responses import (
    ChatResponse,
    EmbeddingsResponse,
    EmbedResponse,
    GenerateResponse,
)

router = APIRouter(prefix="/api", tags=["ollama"], route_class=KeyFirstRoute)


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


def chat_chunk(model: str, chunk: Chunk, text: str | None = None) -> dict[str, Any]:
    """A /api/chat line: a piece of the reply, or (done) the whole ``text`` with statistics."""
    out: dict[str, Any] = {
        "model": model,
        "created_at": timestamp(),
        "message": {"role": "assistant", "content": chunk.text if text is None else text},
        "done": chunk.done,
    }
    if chunk.done:
        out.update(_stats(chunk))
    return out


def _is_last(chunk: Chunk) -> bool:
    return chunk.done


async def _run(
    request: Request,
    service: InferenceService,
    caller: Principal,
    prepared: Prepared,
    empty: bool,
    stream: bool,
    render: Any,
) -> Response:
    status: CacheStatus = "bypass"

    async def start() -> tuple[Chunk, AsyncIterator[Chunk]]:
        nonlocal status
        if empty:
            return await prime(single(await service.load_or_unload(prepared)))
        status, chunks = await service.open(prepared, caller, request.headers.get("cache-control"))
        return await prime(chunks)

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
        headers = {**_cache_header(status), **prepared.headers()}
        drain = services_of(request).drain
        return ndjson_response(first, rest, render, _is_last, headers=headers, drain=drain)
    body = await unless_disconnected(request, whole())
    return JSON(body, headers={**_cache_header(status), **prepared.headers()})


def _cache_header(status: CacheStatus) -> dict[str, str]:
    return {"X-Billumy-Cache": status}


_generate_body = body_of(GenerateRequest)
_chat_body = body_of(ChatRequest)


async def generate(request: Request) -> Response:
    key = await inference_caller(request)
    body = await _generate_body(request)
    service = services_of(request).inference
    prepared = await service.prepare_generate(body, key)
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
    return await _run(request, service, key, prepared, empty, body.stream, render)


async def chat(request: Request) -> Response:
    key = await inference_caller(request)
    body = await _chat_body(request)
    return await serve_chat(request, body, services_of(request).inference, key)


async def serve_chat(
    request: Request, body: ChatRequest, service: InferenceService, key: Principal
) -> Response:
    """Answer a parsed /api/chat body (also the legacy /chats/chat/stream)."""
    prepared = await service.prepare_chat(body, key)
    model = body.model

    def render(chunk: Chunk, text: str | None = None) -> dict[str, Any]:
        return chat_chunk(model, chunk, text)

    empty = not body.messages
    return await _run(request, service, key, prepared, empty, body.stream, render)


# The hot paths, as plain routes (see LeanRoute); app.py mounts them.
routes = [
    lean_route(
        "/api/generate",
        generate,
        body=GenerateRequest,
        responses=answers(GenerateResponse, stream=NDJSON, errors=MODEL_ERRORS),
        tags=["ollama"],
    ),
    lean_route(
        "/api/chat",
        chat,
        body=ChatRequest,
        responses=answers(ChatResponse, stream=NDJSON, errors=MODEL_ERRORS),
        tags=["ollama"],
    ),
]


@router.post("/embed", responses=answers(EmbedResponse, errors=MODEL_ERRORS))
async def embed(
    request: Request, body: EmbedBody, service: InferenceDep, key: InferenceKey
) -> Response:
    route = Route()
    status, result = await service.embed(body, key, request.headers.get("cache-control"), route)
    return JSON(
        headers={**_cache_header(status), **route.headers()},
        content={
            "model": body.model,
            "embeddings": result.vectors,
            "total_duration": result.total_duration,
            "load_duration": result.load_duration,
            "prompt_eval_count": result.prompt_eval_count,
        },
    )


@router.post("/embeddings", responses=answers(EmbeddingsResponse, errors=MODEL_ERRORS))
async def embeddings(
    request: Request, body: EmbeddingsBody, service: InferenceDep, key: InferenceKey
) -> Response:
    as_embed = EmbedRequest(
        model=body.model, input=body.prompt, options=body.options, keep_alive=body.keep_alive
    )
    status, result = await service.embed(as_embed, key, request.headers.get("cache-control"))
    return JSON({"embedding": result.vectors[0]}, headers=_cache_header(status))
