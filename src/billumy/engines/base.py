"""The engine interfaces: every engine yields the same :class:`Chunk` objects.

:class:`Backend` is what the router and the inference service talk to, whoever answers: the
embedded engine (:class:`~billumy.engines.embedded.EmbeddedBackend`) or an upstream server
(:class:`~billumy.engines.ollama.OllamaUpstream`,
:class:`~billumy.engines.openai.OpenAIUpstream`). :class:`Engine` is the engine process's own
interface (llama.cpp behind :class:`~billumy.engines.remote.EngineClient`), which the embedded
backend wraps.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

DoneReason = Literal["stop", "length", "load", "unload"]


@dataclass
class Sampling:
    """Sampling options, already validated and merged (persona defaults < request)."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.1
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


@dataclass
class Generation:
    """One generation: a model, a prompt (text or tokens) and how to sample."""

    model_path: Path
    model_name: str
    prompt: str = ""
    messages: list[dict[str, Any]] | None = None
    template: str | None = None  # Go template (persona/request); None: the model's own
    system: str | None = None
    raw: bool = False
    context: list[int] = field(default_factory=list)
    num_ctx: int = 2048
    num_predict: int = 128
    sampling: Sampling = field(default_factory=Sampling)
    format: str | dict[str, Any] | None = None  # "json" or a JSON schema
    grammar: str | None = None  # the GBNF made from ``format`` (embedded engine), if checked
    keep_alive_s: float | None = None  # None: the engine default; <0 forever
    # True (unless the caller is an admin): its keep_alive may lengthen the time the model
    # stays loaded, never shorten it (an admin's pin holds whatever other keys send).
    keep_alive_extends: bool = True
    truncate: bool = False  # drop the oldest turns when the messages do not fit num_ctx
    keep_messages: int = 0  # leading messages (persona few-shots) that are never dropped
    # Seconds the embedded engine may spend on it from when it gets it, waiting for a slot
    # included (504 beyond); None: no deadline.
    deadline_s: float | None = None
    mode: Literal["generate", "chat"] = "chat"  # which API the request came through
    stream: bool = True  # False: the client wants the whole answer (upstreams need not stream)


@dataclass
class Chunk:
    """A piece of a generation. The last one has ``done`` and the statistics (ns)."""

    text: str = ""
    done: bool = False
    done_reason: DoneReason | None = None
    context: list[int] | None = None
    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0  # prompt tokens evaluated (the rest of the prompt was reused)
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    prompt_cached: int = 0  # prompt tokens whose KV was reused from an earlier generation
    # A hint for writers: the next chunk is already in hand (it came in the same read from an
    # upstream, or from the cache), so this one may be written out together with it.
    more: bool = False

    @property
    def prompt_tokens(self) -> int:
        """The whole prompt, evaluated or reused: what usage and quotas count."""
        return self.prompt_eval_count + self.prompt_cached


@dataclass
class Embeddings:
    vectors: list[list[float]]
    prompt_eval_count: int
    total_duration: int
    load_duration: int


@dataclass
class Embedding:
    """One embedding request: a model, the texts and how to fit them."""

    model_path: Path
    model_name: str
    inputs: list[str]
    truncate: bool = True
    num_ctx: int = 2048
    keep_alive_s: float | None = None
    dimensions: int | None = None  # upstreams that can shorten vectors are asked to


@dataclass
class LoadedModel:
    name: str
    model_path: Path
    size: int
    expires_at: datetime
    context_length: int


class Engine(Protocol):
    def generate(self, request: Generation) -> AsyncIterator[Chunk]: ...

    async def embed(
        self,
        *,
        model_path: Path,
        model_name: str,
        inputs: list[str],
        truncate: bool,
        num_ctx: int,
        keep_alive_s: float | None,
    ) -> Embeddings: ...

    async def load(
        self,
        model_path: Path,
        model_name: str,
        num_ctx: int,
        keep_alive_s: float | None,
        *,
        extend_only: bool = True,
    ) -> int: ...

    async def unload(self, model_path: Path) -> None: ...

    def loaded(self) -> list[LoadedModel]: ...

    async def aclose(self) -> None: ...


class Backend(Protocol):
    """One deployment's answerer. It knows which model it runs (an upstream's model name, an
    embedded deployment's GGUF), so a request names the catalog's model only; failures are
    :class:`~billumy.errors.BillumyError` subclasses, retryable ones being
    :class:`~billumy.errors.UpstreamError` with ``retryable`` set."""

    name: str
    # Answered by another server over HTTP: shown as always loaded in /api/ps, never loaded
    # or unloaded here. Display and policy only (the insights narrative); calls never branch.
    remote: bool

    def generate(self, request: Generation) -> AsyncIterator[Chunk]:
        """The chunks of ``request``, the last one ``done``; closing the iterator stops it."""
        ...

    async def embed(self, request: Embedding) -> Embeddings: ...

    async def load(self, request: Generation) -> int:
        """Make the model ready for ``request``'s context and keep_alive; the load time (ns)."""
        ...

    async def unload(self, request: Generation) -> None: ...

    async def health(self) -> None:
        """Return when the backend can answer; raise a BillumyError otherwise."""

    async def aclose(self) -> None: ...


@contextlib.asynccontextmanager
async def closing(chunks: AsyncIterator[Chunk]) -> AsyncIterator[AsyncIterator[Chunk]]:
    """Close a chunk generator as soon as its consumer stops (not when it is collected): the
    generation behind it stops at once, and no finalizer has to run on the event loop."""
    try:
        yield chunks
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
