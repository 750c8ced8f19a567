"""Bodies of the chats API (and of the original service's routes, kept for compatibility)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from billumy.schemas.ollama import ChatRequest, Format, KeepAlive


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatMessageIn(_Body):
    role: str
    content: str = ""


class CreateChat(_Body):
    user_id: str = Field(min_length=1, max_length=200)
    title: str | None = Field(default=None, max_length=300)
    model: str = "billumy"
    messages: list[ChatMessageIn] = Field(default_factory=list, max_length=1000)
    tags: list[str] = Field(default_factory=list, max_length=50)
    metadata: dict[str, Any] = Field(default_factory=dict)


class UpdateChat(_Body):
    title: str | None = Field(default=None, max_length=300)
    tags: list[str] | None = Field(default=None, max_length=50)
    metadata: dict[str, Any] | None = None
    archived: bool | None = None


class PostMessage(_Body):
    content: str
    stream: bool = True
    options: dict[str, Any] | None = None
    format: Format = None
    keep_alive: KeepAlive = None


class TitleBody(BaseModel):
    """``PATCH /chats/{id}/title``: a title to set, or nothing to have one generated."""

    model_config = ConfigDict(extra="ignore")
    title: str | None = Field(default=None, max_length=300)


class LegacyUpdateData(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessageIn] = Field(default_factory=list, max_length=1000)
    stream: bool | None = None


class LegacyUpdate(BaseModel):
    """``PUT /chats/{id}/update`` as the original service took it: ``{"data": {...}}``."""

    model_config = ConfigDict(extra="ignore")
    data: LegacyUpdateData


__all__ = ["ChatRequest", "CreateChat", "LegacyUpdate", "PostMessage", "TitleBody", "UpdateChat"]
