"""The OpenAI API subset: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models.

Requests are translated into the Ollama request models and served by the same inference
service (personas, limits, cache); answers are shaped as OpenAI's, streamed as SSE.
"""

from __future__ import annotations

import base64
import secrets
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from billumy.api.deps import (
    CatalogDep,
    InferenceDep,
    InferenceKey,
    KeyFirstRoute,
    body_of,
    inference_caller,
    lean_route,
    services_of,
)
from billumy.api.docs import MODEL_ERRORS, SSE, answers
from billumy.api.responses import JSON
from billumy.api.streaming import (
    ChunkStream,
    prime,
    sse_response,
    unless_disconnected,
)
from billumy.auth import Principal
from billumy.engines.base import Chunk
from billumy.engines.router import Route
from billumy.errors import BadRequestError
from billumy.inference import InferenceService, Prepared
from billumy.schemas.ollama import ChatRequest, EmbedRequest, GenerateRequest, Message
from billumy.schemas.openai import (
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    EmbeddingRequest,
    ResponseFormat,
)
from billumy.schemas.responses import (
    ChatCompletion,
    Completion,
    EmbeddingList,
    OpenAIModel,
    OpenAIModelList,
)

router = APIRouter(prefix="/v1", tags=["openai"], route_class=KeyFirstRoute)

_chat_body = body_of(ChatCompletionRequest)
_completion_body = body_of(CompletionRequest)
EmbeddingBody = Annotated[EmbeddingRequest, Depends(body_of(EmbeddingRequest))]


def _options(
    body: ChatCompletionRequest | CompletionRequest, max_tokens: int | None
) -> dict[str, Any]:
    if body.n != 1:
        raise BadRequestError("n must be 1: Billumy returns one choice per request")
    if body.logprobs:
        raise BadRequestError("logprobs are not supported")
    options: dict[str, Any] = {
        "temperature": body.temperature,
        "top_p": body.top_p,
        "num_predict": max_tokens,
        "seed": body.seed,
        "presence_penalty": body.presence_penalty,
        "frequency_penalty": body.frequency_penalty,
        "stop": [body.stop] if isinstance(body.stop, str) else body.stop,
    }
    return {k: v for k, v in options.items() if v is not None}


def _format(response_format: ResponseFormat | None) -> str | dict[str, Any] | None:
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return "json"
    if response_format.json_schema is None or not response_format.json_schema.schema_:
        raise BadRequestError("response_format json_schema needs json_schema.schema")
    return response_format.json_schema.schema_


def _text(message: ChatMessage) -> str:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    parts = []
    for part in message.content:
        if part.type != "text":
            raise BadRequestError(f"content of type {part.type!r} is not supported (text only)")
        parts.append(part.text or "")
    return "".join(parts)


def _finish(chunk: Chunk) -> str:
    return "length" if chunk.done_reason == "length" else "stop"


def _usage(chunk: Chunk) -> dict[str, int]:
    return {
        "prompt_tokens": chunk.prompt_tokens,  # the whole prompt, reused or evaluated
        "completion_tokens": chunk.eval_count,
        "total_tokens": chunk.prompt_tokens + chunk.eval_count,
    }


async def _start(
    request: Request, service: InferenceService, prepared: Prepared, caller: Principal
) -> tuple[str, Chunk, AsyncIterator[Chunk]]:
    async def start() -> tuple[str, Chunk, AsyncIterator[Chunk]]:
        status, chunks = await service.open(prepared, caller, request.headers.get("cache-control"))
        first, rest = await prime(chunks)
        return status, first, rest

    return await unless_disconnected(request, start())


async def _collect(first: Chunk, rest: AsyncIterator[Chunk]) -> tuple[str, Chunk]:
    parts, last = [first.text], first
    if not first.done:
        async for chunk in rest:
            parts.append(chunk.text)
            last = chunk
    return "".join(parts), last


def _stream(
    request: Request,
    first: Chunk,
    rest: AsyncIterator[Chunk],
    event: Callable[[Chunk, bool], dict[str, Any]],
    usage_event: Callable[[Chunk], dict[str, Any]] | None,
    headers: dict[str, str],
) -> ChunkStream:
    def render(chunk: Chunk, is_first: bool) -> list[dict[str, Any]]:
        events = [event(chunk, is_first)]
        if chunk.done and usage_event is not None:
            events.append(usage_event(chunk))
        return events

    drain = services_of(request).drain
    return sse_response(first, rest, render, lambda chunk: chunk.done, headers, drain=drain)


async def chat_completions(request: Request) -> Response:
    key = await inference_caller(request)
    body = await _chat_body(request)
    service = services_of(request).inference
    max_tokens = (
        body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    )
    chat = ChatRequest(
        model=body.model,
        messages=[Message(role=m.role, content=_text(m)) for m in body.messages],
        tools=body.tools,
        options=_options(body, max_tokens),
        format=_format(body.response_format),
        stream=body.stream,
    )
    if not chat.messages:
        raise BadRequestError("messages must not be empty")
    prepared = await service.prepare_chat(chat, key)
    status, first, rest = await _start(request, service, prepared, key)
    ident, created = "chatcmpl-" + secrets.token_hex(12), int(time.time())
    headers = {"X-Billumy-Cache": status, **prepared.headers()}
    fingerprint = prepared.entry.digest[:12]  # a hash of the whole definition: once

    def base(choices: list[dict[str, Any]], kind: str) -> dict[str, Any]:
        return {
            "id": ident,
            "object": kind,
            "created": created,
            "model": body.model,
            "system_fingerprint": fingerprint,
            "choices": choices,
        }

    if not body.stream:
        text, last = await unless_disconnected(request, _collect(first, rest))
        message = {"role": "assistant", "content": text, "refusal": None}
        out = base(
            [{"index": 0, "message": message, "finish_reason": _finish(last), "logprobs": None}],
            "chat.completion",
        )
        out["usage"] = _usage(last)
        return JSON(out, headers=headers)

    def event(chunk: Chunk, is_first: bool) -> dict[str, Any]:
        delta: dict[str, Any] = {"content": chunk.text} if chunk.text or is_first else {}
        if is_first:
            delta["role"] = "assistant"
        choice = {
            "index": 0,
            "delta": delta,
            "logprobs": None,
            "finish_reason": _finish(chunk) if chunk.done else None,
        }
        out = base([choice], "chat.completion.chunk")
        if include_usage:
            out["usage"] = None
        return out

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def usage_event(chunk: Chunk) -> dict[str, Any]:
        return {**base([], "chat.completion.chunk"), "usage": _usage(chunk)}

    return _stream(request, first, rest, event, usage_event if include_usage else None, headers)


async def completions(request: Request) -> Response:
    key = await inference_caller(request)
    body = await _completion_body(request)
    service = services_of(request).inference
    if body.suffix:
        raise BadRequestError("suffix is not supported")
    if body.echo:
        raise BadRequestError("echo is not supported")
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise BadRequestError("prompt must be one string")
    generate = GenerateRequest(
        model=body.model,
        prompt=prompts[0],
        raw=True,
        options=_options(body, body.max_tokens),
        stream=body.stream,
    )
    if not generate.prompt:
        raise BadRequestError("prompt must not be empty")
    prepared = await service.prepare_generate(generate, key)
    status, first, rest = await _start(request, service, prepared, key)
    ident, created = "cmpl-" + secrets.token_hex(12), int(time.time())
    headers = {"X-Billumy-Cache": status, **prepared.headers()}

    def base(choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": ident,
            "object": "text_completion",
            "created": created,
            "model": body.model,
            "choices": choices,
        }

    if not body.stream:
        text, last = await unless_disconnected(request, _collect(first, rest))
        out = base([{"index": 0, "text": text, "finish_reason": _finish(last), "logprobs": None}])
        out["usage"] = _usage(last)
        return JSON(out, headers=headers)

    def event(chunk: Chunk, _is_first: bool) -> dict[str, Any]:
        return base(
            [
                {
                    "index": 0,
                    "text": chunk.text,
                    "logprobs": None,
                    "finish_reason": _finish(chunk) if chunk.done else None,
                }
            ]
        )

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def usage_event(chunk: Chunk) -> dict[str, Any]:
        return {**base([]), "usage": _usage(chunk)}

    return _stream(request, first, rest, event, usage_event if include_usage else None, headers)


# The hot paths, as plain routes (see LeanRoute); app.py mounts them.
routes = [
    lean_route(
        "/v1/chat/completions",
        chat_completions,
        body=ChatCompletionRequest,
        responses=answers(ChatCompletion, stream=SSE, errors=MODEL_ERRORS),
        tags=["openai"],
    ),
    lean_route(
        "/v1/completions",
        completions,
        body=CompletionRequest,
        responses=answers(Completion, stream=SSE, errors=MODEL_ERRORS),
        tags=["openai"],
    ),
]


@router.post("/embeddings", responses=answers(EmbeddingList, errors=MODEL_ERRORS))
async def embeddings(
    request: Request, body: EmbeddingBody, service: InferenceDep, key: InferenceKey
) -> Response:
    inputs = [body.input] if isinstance(body.input, str) else body.input
    if not inputs or not all(isinstance(x, str) for x in inputs):
        raise BadRequestError(
            "input must be a string or a list of strings (token arrays are not supported)"
        )
    embed = EmbedRequest(
        model=body.model, input=[str(x) for x in inputs], dimensions=body.dimensions
    )
    route = Route()
    status, result = await service.embed(embed, key, request.headers.get("cache-control"), route)

    def encode(vector: list[float]) -> list[float] | str:
        if body.encoding_format == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        return vector

    data = [
        {"object": "embedding", "index": i, "embedding": encode(v)}
        for i, v in enumerate(result.vectors)
    ]
    usage = {"prompt_tokens": result.prompt_eval_count, "total_tokens": result.prompt_eval_count}
    return JSON(
        {"object": "list", "data": data, "model": body.model, "usage": usage},
        headers={"X-Billumy-Cache": status, **route.headers()},
    )


def _model(name: str, created: int) -> dict[str, Any]:
    return {
        "id": name.removesuffix(":latest"),
        "object": "model",
        "created": created,
        "owned_by": "billumy",
    }


@router.get("/models", responses=answers(OpenAIModelList))
async def models(catalog: CatalogDep, key: InferenceKey) -> Response:
    entries = await catalog.list(tenant=key.tenant)
    return JSON(
        {
            "object": "list",
            "data": [_model(e.name, int(e.modified_at.timestamp())) for e in entries],
        }
    )


@router.get("/models/{name:path}", responses=answers(OpenAIModel, errors=(404,)))
async def model(name: str, catalog: CatalogDep, key: InferenceKey) -> Response:
    entry = await catalog.get(name, tenant=key.tenant)
    return JSON(_model(entry.name, int(entry.modified_at.timestamp())))
