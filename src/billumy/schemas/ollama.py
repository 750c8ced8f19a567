"""Request bodies of the Ollama API (docs/api.md in ollama/ollama). Unknown fields are ignored."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

KeepAlive = str | float | int | None
Format = str | dict[str, Any] | None


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _ModelRequest(_Request):
    model: str = ""
    name: str | None = Field(default=None, description="Older clients send name instead of model.")

    @model_validator(mode="after")
    def _name_alias(self) -> _ModelRequest:
        if not self.model and self.name:
            self.model = self.name
        return self


class GenerateRequest(_ModelRequest):
    prompt: str | None = None
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    stream: bool = True
    raw: bool = False
    format: Format = None
    images: list[str] | None = None
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None
    think: bool | str | None = None


class ToolCallFunction(_Request):
    name: str = ""
    arguments: dict[str, Any] | str | None = None


class ToolCall(_Request):
    function: ToolCallFunction


class Message(_Request):
    role: str
    content: str | None = ""
    images: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None
    thinking: str | None = None


class ChatRequest(_ModelRequest):
    messages: list[Message] | None = None
    tools: list[dict[str, Any]] | None = None
    stream: bool = True
    format: Format = None
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None
    think: bool | str | None = None


class EmbedRequest(_ModelRequest):
    input: str | list[str] = ""
    truncate: bool = True
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None
    dimensions: int | None = Field(default=None, ge=1, le=65536)


class EmbeddingsRequest(_ModelRequest):
    prompt: str = ""
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None


class ShowRequest(_ModelRequest):
    verbose: bool = False


class DeleteRequest(_ModelRequest):
    # Billumy's: a global admin deletes the shared model of this name (else the tenant's own).
    shared: bool = False


class CopyRequest(_Request):
    source: str
    destination: str
    # Billumy's: a global admin publishes the copy to every tenant (else it is the tenant's).
    shared: bool = False


class CreateRequest(_ModelRequest):
    modelfile: str | None = None
    from_: str | None = Field(default=None, alias="from")
    system: str | None = None
    template: str | None = None
    parameters: dict[str, Any] | None = None
    messages: list[Message] | None = None
    license: str | list[str] | None = None
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    quantize: str | None = None
    stream: bool = True
    # Billumy's: a global admin publishes the model to every tenant (else it is the tenant's).
    shared: bool = False
