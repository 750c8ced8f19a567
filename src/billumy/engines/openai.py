"""An upstream that speaks the OpenAI API: vLLM, llama-server, another Billumy's ``/v1``.

OpenAI streams Server-Sent Events: ``data: {...}`` events with text deltas, a ``finish_reason``,
usage in a last event with no choices (``stream_options.include_usage``), then
``data: [DONE]``. The server reports no durations, so the final :class:`Chunk`'s timings are
measured here: prompt evaluation is the wait for the first token, evaluation the rest.

Only standard parameters are sent: OpenAI itself rejects the extensions other servers accept
(``top_k``, ``min_p``, ``repeat_penalty``...). Raw generations use ``/completions``; the rest
use ``/chat/completions``, where the server applies the model's own chat template.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from billumy.engines.base import Chunk, DoneReason, Embedding, Embeddings, Generation
from billumy.engines.upstream import (
    ErrorMapper,
    HttpUpstream,
    chat_messages,
    count,
)


def response_format(fmt: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """Ollama's ``format`` as OpenAI's ``response_format``."""
    if fmt is None:
        return None
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt}}
    return {"type": "json_object"}


def payload(request: Generation, upstream_model: str, *, completions: bool) -> dict[str, Any]:
    """The body of ``POST /completions`` (raw prompts) or ``POST /chat/completions``."""
    sampling = request.sampling
    body: dict[str, Any] = {"model": upstream_model}
    if completions:
        body["prompt"] = request.prompt
    else:
        body["messages"] = chat_messages(request)
    body |= {
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "presence_penalty": sampling.presence_penalty,
        "frequency_penalty": sampling.frequency_penalty,
    }
    if request.num_predict > 0:
        body["max_tokens"] = request.num_predict
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    fmt = response_format(request.format)
    if fmt is not None:
        body["response_format"] = fmt
    return body


class SseParser:
    """Server-Sent Events, line by line (bytes, as received): the data of each complete event;
    other fields and comments are ignored. Lines are never decoded: the data goes to the JSON
    parser as it came."""

    def __init__(self) -> None:
        self._data: list[bytes] = []

    def feed(self, line: bytes) -> bytes | None:
        """The event's data when ``line`` (blank) ends one, else None."""
        if not line:
            return self.end()
        if line.startswith(b"data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(b" ") else value)
        elif line == b"data":  # a field without a colon has an empty value
            self._data.append(b"")
        return None  # a comment (":...") or another field

    def end(self) -> bytes | None:
        """The data of the event in progress, if any (at a blank line or the end of stream)."""
        if not self._data:
            return None
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        self._data.clear()
        return data


class StreamState:
    """What the events of one completion said so far."""

    def __init__(self, errors: ErrorMapper, *, completions: bool) -> None:
        self.errors = errors
        self.completions = completions
        self.events = 0
        self.done = False  # [DONE] seen
        self.finish_reason: str | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def event(self, data: bytes | None) -> str:
        """Take one event's data (None: no event yet); the text it adds."""
        if data is None:
            return ""
        self.events += 1
        if data.strip() == b"[DONE]":
            self.done = True
            return ""
        return self.answer(self.errors.parse_json(data))

    def answer(self, body: Any) -> str:
        """Take one parsed event (or a whole non-streamed answer); the text it adds."""
        if not isinstance(body, dict):
            raise self.errors.invalid()
        if "error" in body:
            raise self.errors.in_band(body["error"])
        usage = body.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = count(usage.get("prompt_tokens"))
            self.completion_tokens = count(usage.get("completion_tokens"))
        choices = body.get("choices") or []
        if not isinstance(choices, list):
            raise self.errors.invalid()
        return "".join(self._choice(c) for c in choices)

    def _choice(self, choice: Any) -> str:
        if not isinstance(choice, dict):
            raise self.errors.invalid()
        if choice.get("index", 0) != 0:  # n > 1 is never asked for
            return ""
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            self.finish_reason = reason
        if self.completions:
            text = choice.get("text")
        else:
            # A streamed event carries a delta; a whole answer carries the message.
            delta = choice.get("delta") or choice.get("message") or {}
            if not isinstance(delta, dict):
                raise self.errors.invalid()
            text = delta.get("content")
        if text is None:
            return ""
        if not isinstance(text, str):
            raise self.errors.invalid()
        return text

    @property
    def complete(self) -> bool:
        return self.done or self.finish_reason is not None

    @property
    def reason(self) -> DoneReason:
        return "length" if self.finish_reason == "length" else "stop"


class OpenAIUpstream(HttpUpstream):
    """Streams from ``/chat/completions`` or ``/completions``; embeds through ``/embeddings``."""

    provider = "openai"

    async def generate(
        self, request: Generation, upstream_model: str | None = None
    ) -> AsyncIterator[Chunk]:
        upstream_model = upstream_model or self.model
        completions = request.mode == "generate" and request.raw
        path = "/completions" if completions else "/chat/completions"
        body = payload(request, upstream_model, completions=completions)
        state = StreamState(self.errors, completions=completions)
        events = SseParser()
        start = time.perf_counter_ns()
        first: int | None = None
        if not request.stream:
            # The client wants the whole answer: so do we, in one JSON body.
            body["stream"] = False
            body.pop("stream_options", None)
            answer = await self.request_json(
                "POST", path, body, upstream_model=upstream_model, whole=True
            )
            text = state.answer(answer)
            if state.finish_reason is None:
                raise self.errors.invalid()
            end = time.perf_counter_ns()
            yield Chunk(
                text=text,
                done=True,
                done_reason=state.reason,
                prompt_eval_count=state.prompt_tokens,
                eval_count=state.completion_tokens,
                total_duration=end - start,
                eval_duration=end - start,
            )
            return
        async with self.open("POST", path, body, upstream_model=upstream_model) as lines:
            async for line in lines:
                # Every line already received is parsed before any text goes out, so that
                # each chunk can tell whether the next one is in hand (``Chunk.more``).
                texts = []
                for each in (line, *lines.ready()):
                    text = state.event(events.feed(each))
                    if text:
                        texts.append(text)
                    if state.done:
                        break
                if texts:
                    first = first if first is not None else time.perf_counter_ns()
                for i, text in enumerate(texts):
                    yield Chunk(text=text, more=i + 1 < len(texts) or state.done)
                if state.done:
                    break
            tail = "" if state.done else state.event(events.end())
        if tail:
            first = first if first is not None else time.perf_counter_ns()
            yield Chunk(text=tail)
        if not state.complete:
            # Not one event: whatever came was not an event stream at all.
            raise self.errors.closed() if state.events else self.errors.invalid()
        end = time.perf_counter_ns()
        first = first if first is not None else end
        yield Chunk(
            done=True,
            done_reason=state.reason,
            prompt_eval_count=state.prompt_tokens,
            eval_count=state.completion_tokens,
            total_duration=end - start,
            load_duration=0,
            prompt_eval_duration=first - start,
            eval_duration=end - first,
        )

    async def embed(self, request: Embedding, upstream_model: str | None = None) -> Embeddings:
        upstream_model = upstream_model or self.model
        inputs, dimensions = request.inputs, request.dimensions
        # OpenAI has no ``truncate``: servers truncate or reject over-long inputs themselves.
        body: dict[str, Any] = {
            "model": upstream_model,
            "input": inputs,
            "encoding_format": "float",
        }
        if dimensions is not None:
            body["dimensions"] = dimensions
        start = time.perf_counter_ns()
        answer = await self.request_json("POST", "/embeddings", body, upstream_model=upstream_model)
        if not isinstance(answer, dict):
            raise self.errors.invalid()
        items = self.object_list(answer.get("data"))
        try:
            items = sorted(items, key=lambda item: int(item.get("index", 0)))
        except (TypeError, ValueError):
            raise self.errors.invalid() from None
        if [item.get("index", i) for i, item in enumerate(items)] != list(range(len(items))):
            raise self.errors.invalid()
        vectors = self.vectors([item.get("embedding") for item in items], len(inputs))
        usage = answer.get("usage")
        return Embeddings(
            vectors=vectors,
            prompt_eval_count=count(usage.get("prompt_tokens")) if isinstance(usage, dict) else 0,
            total_duration=time.perf_counter_ns() - start,
            load_duration=0,
        )

    async def health(self) -> None:
        await self.json_object("/models", short=True)

    async def models(self) -> list[dict[str, Any]]:
        body = await self.json_object("/models", short=True)
        return self.object_list(body.get("data"))
