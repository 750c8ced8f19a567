"""Response bodies, for the OpenAPI document only: the routes build their answers as dicts
(cheaper on the hot paths), and these models say what those dicts hold, so that clients can be
generated from the document and the schema fuzzer can check every answer against it.

Only what every answer of the kind carries is required; other fields (and any the routes add
later) are allowed, so a model here never needs to change for an additive change of the API.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class Error(BaseModel):
    """Every error outside ``/v1``: Ollama's shape."""

    error: str = Field(description="What went wrong; a 500 ends with its request id.")


class OpenAIErrorObject(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    """Every error under ``/v1``: OpenAI's shape."""

    error: OpenAIErrorObject


# --- Ollama -----------------------------------------------------------------------------------


class _Stats(_Out):
    done_reason: str | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None


class GenerateResponse(_Stats):
    """The whole answer, or (streamed) one NDJSON line of it."""

    model: str
    created_at: str
    response: str
    done: bool
    context: list[int] | None = None


class AssistantMessage(_Out):
    role: str
    content: str


class ChatResponse(_Stats):
    """The whole reply, or (streamed) one NDJSON line of it."""

    model: str
    created_at: str
    message: AssistantMessage
    done: bool


class ChatReplyResponse(ChatResponse):
    """A reply in a stored chat: its last line also names the chat."""

    chat_id: str | None = None


class EmbedResponse(_Out):
    model: str
    embeddings: list[list[float]]
    total_duration: int
    load_duration: int
    prompt_eval_count: int


class EmbeddingsResponse(_Out):
    embedding: list[float]


class ModelDetails(_Out):
    parent_model: str
    format: str
    family: str
    families: list[str]
    parameter_size: str
    quantization_level: str


class ModelSummary(_Out):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails


class TagsResponse(_Out):
    models: list[ModelSummary]


class ShowResponse(_Out):
    modelfile: str
    parameters: str
    template: str
    system: str
    license: str
    details: ModelDetails
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str


class RunningModel(ModelSummary):
    expires_at: str
    size_vram: int
    context_length: int | None = None


class PsResponse(_Out):
    models: list[RunningModel]
    runner: dict[str, Any] = Field(description="The embedded engine process: state, pid, restarts.")


class VersionResponse(_Out):
    version: str


class StatusResponse(_Out):
    """``/api/create``'s answer, or (streamed) one NDJSON line of its progress."""

    status: str


# --- OpenAI -----------------------------------------------------------------------------------


class Usage(_Out):
    prompt_tokens: int
    completion_tokens: int | None = None
    total_tokens: int


class Completion(_Out):
    """The whole completion; streamed, each SSE ``data:`` event has this shape."""

    id: str
    object: str
    created: int
    model: str
    choices: list[dict[str, Any]]
    usage: Usage | None = None


class ChatCompletion(Completion):
    """The whole completion; streamed, each SSE ``data:`` event is a ``chat.completion.chunk``
    of the same shape with ``delta`` for ``message``, and the stream ends with ``[DONE]``."""


class Embedding(_Out):
    object: str
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of little-endian f32.")


class EmbeddingList(_Out):
    object: str
    data: list[Embedding]
    model: str
    usage: Usage


class OpenAIModel(_Out):
    id: str
    object: str
    created: int
    owned_by: str


class OpenAIModelList(_Out):
    object: str
    data: list[OpenAIModel]


# --- chats ------------------------------------------------------------------------------------


class StoredMessage(_Out):
    id: str
    seq: int
    role: str
    content: str
    created_at: str
    incomplete: bool


class ChatOut(_Out):
    id: str
    user_id: str
    title: str | None
    model: str
    tags: list[str]
    metadata: dict[str, Any]
    archived: bool
    message_count: int
    created_at: str
    updated_at: str
    messages: list[StoredMessage] | None = None


class ChatPage(_Out):
    chats: list[ChatOut]
    next_cursor: str | None


class ChatTitle(_Out):
    id: str
    title: str | None


class ChatContext(_Out):
    messages: list[dict[str, Any]]
    summary: str | None
    first_seq: int | None
    tokens: int
    budget: int


# --- insights and datasets --------------------------------------------------------------------


class InsightResult(_Out):
    """The insight record (``stream: false``); streamed, NDJSON events each with a ``type``
    (``facts``, ``answer``, ``narrative``, ``insights``; ``error`` after the start)."""

    id: str | None = None


class InsightHistory(_Out):
    insights: list[dict[str, Any]]


class SourceList(_Out):
    """``GET /api/sources``: each source's name, kind, availability and tables with their
    columns (name, type, masked; a declared join's columns also say which table.column they
    are read from, ``from``); never its URL."""

    sources: list[dict[str, Any]]


class DatasetOut(_Out):
    id: str
    name: str | None
    user_id: str | None
    version: int
    hash: str
    rows: int
    columns: list[Any]
    versions: list[dict[str, Any]]


class DatasetCreated(DatasetOut):
    new_version: bool
    origin: dict[str, Any] | None = Field(
        default=None,
        description="A snapshot's source, table, filter, columns and masked columns.",
    )
    masked: list[str] | None = Field(
        default=None, description="A snapshot's masked columns: never copied."
    )


class DatasetForm(BaseModel):
    """``POST /datasets`` as multipart: the file and the fields that go with it."""

    file: bytes = Field(json_schema_extra={"format": "binary"})
    name: str | None = None
    user_id: str | None = None
    dataset_id: str | None = None
    format: str | None = Field(default=None, description="csv, json or parquet; else guessed.")


# --- system -----------------------------------------------------------------------------------


class Health(_Out):
    status: str


class Whoami(_Out):
    """The calling key as ``GET /whoami`` shows it: never its secret."""

    id: str
    name: str
    tenant: str
    scopes: list[str] = Field(description="inference, metrics, admin (admin implies the others).")
    global_admin: bool = Field(
        description="An admin key of the global admin tenant: it manages every tenant."
    )


class Readiness(_Out):
    status: str
    store: str
    redis: str
    models_loaded: list[str]
    queue_depth: int
    engine: dict[str, Any]
    upstreams: dict[str, str]
    models_without_deployment: list[str]
