"""Store protocols. Adapters: :mod:`billumy.store.sql` (SQLite, PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass
class ApiKeyRecord:
    """An API key as stored: never the key itself, only its SHA-256 hash and a display prefix."""

    id: str
    name: str
    prefix: str
    key_hash: str
    tenant: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass
class ModelRecord:
    """A model created through the API (a persona over a base model)."""

    name: str
    definition: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    modified_at: datetime | None = None


class KeyStore(Protocol):
    async def add_key(self, record: ApiKeyRecord) -> None: ...
    async def key_by_hash(self, key_hash: str) -> ApiKeyRecord | None: ...
    async def list_keys(self) -> list[ApiKeyRecord]: ...
    async def revoke_key(self, id_or_name: str) -> ApiKeyRecord | None: ...
    async def count_active_keys(self) -> int: ...
    async def touch_key(self, key_id: str, when: datetime) -> None: ...


class ModelStore(Protocol):
    async def list_models(self) -> list[ModelRecord]: ...
    async def get_model(self, name: str) -> ModelRecord | None: ...
    async def put_model(self, record: ModelRecord) -> None: ...
    async def delete_model(self, name: str) -> bool: ...


class Store(KeyStore, ModelStore, Protocol):
    """Everything Billumy persists."""

    async def ainit(self) -> None: ...
    async def aclose(self) -> None: ...
    async def ping(self) -> bool: ...
