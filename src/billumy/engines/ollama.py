"""An upstream that speaks the Ollama API: an Ollama server or another Billumy.

Ollama streams NDJSON: one JSON object per line, text in ``response`` (``/api/generate``) or
``message.content`` (``/api/chat``), and a last line with ``done: true`` and the statistics,
which map one to one onto :class:`Chunk`. Requests from ``/api/generate`` go to
``/api/generate`` so that ``raw``, ``template`` and ``context`` keep their meaning; everything
else goes to ``/api/chat``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from billumy.engines.base import Chunk, Embedding, Embeddings, Generation
from billumy.engines.upstream import (
    HttpUpstream,
    chat_messages,
    count,
    done_reason,
    token_list,
)


def options(request: Generation) -> dict[str, Any]:
    """Ollama's ``options``: the context and prediction lengths and every sampling field."""
    sampling = dataclasses.asdict(request.sampling)
    if sampling.get("seed") is None:
        sampling.pop("seed", None)
    if not sampling.get("stop"):
        sampling.pop("stop", None)
    return {"num_ctx": request.num_ctx, "num_predict": request.num_predict, **sampling}


def generate_payload(request: Generation, upstream_model: str) -> dict[str, Any]:
    """The body of ``POST /api/generate``."""
    payload: dict[str, Any] = {"model": upstream_model, "prompt": request.prompt}
    if request.system is not None:
        payload["system"] = request.system
    if request.template is not None:
        payload["template"] = request.template
    payload["raw"] = request.raw
    if request.context:
        payload["context"] = list(request.context)
    return _common(payload, request)


def chat_payload(request: Generation, upstream_model: str) -> dict[str, Any]:
    """The body of ``POST /api/chat``."""
    return _common({"model": upstream_model, "messages": chat_messages(request)}, request)


def _common(payload: dict[str, Any], request: Generation) -> dict[str, Any]:
    if request.format is not None:
        payload["format"] = request.format
    payload["options"] = options(request)
    # A client that wants the whole answer gets it in one JSON object from the upstream too:
    # one body to parse instead of a line per token.
    payload["stream"] = request.stream
    if request.keep_alive_s is not None:
        payload["keep_alive"] = request.keep_alive_s
    return payload


class OllamaUpstream(HttpUpstream):
    """Streams from ``/api/chat`` or ``/api/generate``; embeds through ``/api/embed``."""

    provider = "ollama"

    async def generate(
        self, request: Generation, upstream_model: str | None = None
    ) -> AsyncIterator[Chunk]:
        upstream_model = upstream_model or self.model
        chat = request.mode != "generate"
        if chat:
            path, payload = "/api/chat", chat_payload(request, upstream_model)
        else:
            path, payload = "/api/generate", generate_payload(request, upstream_model)
        final: Chunk | None = None
        whole = not request.stream
        opened = self.open("POST", path, payload, upstream_model=upstream_model, whole=whole)
        async with opened as lines:
            async for line in lines:
                # Every line already received is parsed before any goes out, so that each
                # chunk can tell whether the next one is in hand (``Chunk.more``).
                batch = [self._chunk(line, chat=chat)]
                batch += [self._chunk(more, chat=chat) for more in lines.ready()]
                chunks = [chunk for chunk in batch if chunk is not None]
                for i, chunk in enumerate(chunks):
                    if chunk.done:
                        final = chunk
                        break
                    chunk.more = i + 1 < len(chunks)
                    yield chunk
                if final is not None:
                    break
        # The response is closed before the last chunk goes out: a consumer that stops at
        # ``done`` without closing this generator holds no connection.
        if final is None:
            raise self.errors.closed()
        yield final

    def _chunk(self, line: bytes, *, chat: bool) -> Chunk | None:
        """The chunk of one NDJSON line; None for blank lines and empty deltas."""
        if not line.strip():
            return None
        data = self.errors.parse_json(line)
        if not isinstance(data, dict):
            raise self.errors.invalid()
        if "error" in data:
            raise self.errors.in_band(data["error"])
        text = self._text(data, chat=chat)
        if data.get("done") is not True:
            return Chunk(text=text) if text else None
        return Chunk(
            text=text,
            done=True,
            done_reason=done_reason(data.get("done_reason")),
            context=token_list(data.get("context")),
            total_duration=count(data.get("total_duration")),
            load_duration=count(data.get("load_duration")),
            prompt_eval_count=count(data.get("prompt_eval_count")),
            prompt_eval_duration=count(data.get("prompt_eval_duration")),
            eval_count=count(data.get("eval_count")),
            eval_duration=count(data.get("eval_duration")),
        )

    def _text(self, data: dict[str, Any], *, chat: bool) -> str:
        if chat:
            message = data.get("message")
            if message is None:
                return ""
            if not isinstance(message, dict):
                raise self.errors.invalid()
            text = message.get("content")
        else:
            text = data.get("response")
        if text is None:
            return ""
        if not isinstance(text, str):
            raise self.errors.invalid()
        return text

    async def embed(self, request: Embedding, upstream_model: str | None = None) -> Embeddings:
        upstream_model = upstream_model or self.model
        inputs = request.inputs
        payload: dict[str, Any] = {
            "model": upstream_model,
            "input": inputs,
            "truncate": request.truncate,
        }
        if request.dimensions is not None:
            payload["dimensions"] = request.dimensions
        body = await self.request_json("POST", "/api/embed", payload, upstream_model=upstream_model)
        if not isinstance(body, dict):
            raise self.errors.invalid()
        return Embeddings(
            vectors=self.vectors(body.get("embeddings"), len(inputs)),
            prompt_eval_count=count(body.get("prompt_eval_count")),
            total_duration=count(body.get("total_duration")),
            load_duration=count(body.get("load_duration")),
        )

    async def health(self) -> None:
        await self.json_object("/api/version", short=True)

    async def models(self) -> list[dict[str, Any]]:
        body = await self.json_object("/api/ps", short=True)
        return self.object_list(body.get("models"))
