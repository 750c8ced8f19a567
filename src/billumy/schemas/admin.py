"""Bodies of the admin API (``/admin/...``): what it takes, and (for the OpenAPI document) what
it answers. Unknown request fields are refused, so a misspelt limit is not silently ignored."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The SQL columns' sizes (INTEGER, BIGINT): larger numbers are refused, not overflowed.
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class KeyLimits(_Strict):
    """A key's own limits. Absent: unchanged (on create: the server default); ``null``: back
    to the server default; ``0``: unlimited."""

    requests_per_minute: int | None = Field(default=None, ge=0, le=_INT32, strict=True)
    tokens_per_day: int | None = Field(default=None, ge=0, le=_INT64, strict=True)
    parallel: int | None = Field(default=None, ge=0, le=_INT32, strict=True)


class KeyCreate(KeyLimits):
    name: str = Field(min_length=1, max_length=200, description="A name to recognise it by.")
    scopes: list[str] = Field(
        default_factory=lambda: ["inference"],
        max_length=8,
        description="inference, admin, metrics (default: inference).",
    )
    tenant: str | None = Field(
        default=None,
        max_length=200,
        description="The key's tenant: the admin's own by default; another only for a global "
        "admin.",
    )


class KeyOut(_Out):
    """A key as the admin API shows it: never its secret, only a display prefix."""

    id: str
    name: str
    prefix: str
    tenant: str
    scopes: list[str]
    created_at: str
    last_used_at: str | None
    revoked_at: str | None
    active: bool
    requests_per_minute: int | None
    tokens_per_day: int | None
    parallel: int | None


class KeyCreated(KeyOut):
    """The key and its secret: the only answer that ever holds it (create and rotate)."""

    key: str = Field(description="The secret, shown only in this answer: keep it now.")


class KeyList(_Out):
    keys: list[KeyOut]


class UsageRow(_Out):
    day: str
    key_id: str
    key_name: str | None
    tenant: str | None
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class UsageReport(_Out):
    """Usage per key, model and UTC day, oldest first, with the totals."""

    usage: list[UsageRow]
    totals: dict[str, int]


class PersonaOut(_Out):
    name: str
    base: str
    parent: str | None
    owner: str | None = Field(description="The tenant that owns it; null: shared.")
    system: str | None


class PersonaList(_Out):
    personas: list[PersonaOut]


class DatasetList(_Out):
    datasets: list[dict[str, Any]]
