"""Store protocols and records.

Adapters: :mod:`billumy.store.sql` (SQLite by default, PostgreSQL) and
:mod:`billumy.store.mongo` (MongoDB). One contract test suite (tests/store/test_contract.py) runs
against every adapter (tests/store/test_datasets.py for datasets and insight records). Every
chat and dataset method takes the tenant: a chat of another tenant behaves exactly like a
missing one.

Keys carry their own limits (None: the server default, 0: unlimited); usage is counted per
key, UTC day and model.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final, Literal, Protocol

import orjson

from billumy.errors import BadRequestError, PayloadTooLargeError


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
    # Fair-use limits of this key: None uses the server default, 0 means unlimited.
    requests_per_minute: int | None = None
    tokens_per_day: int | None = None
    parallel: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


KEY_LIMITS: Final = ("requests_per_minute", "tokens_per_day", "parallel")


class Unset(enum.Enum):
    """The type of :data:`UNSET`: "leave this field as it is" (None already means default)."""

    UNSET = "UNSET"


UNSET: Final = Unset.UNSET
LimitChange = int | None | Literal[Unset.UNSET]


def check_limit(name: str, value: int | None) -> int | None:
    """``value`` if it is a valid key limit (None or a whole number >= 0), else BadRequestError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise BadRequestError(f"{name} must be a whole number >= 0 (0: unlimited), not {value!r}")
    return value


def limit_changes(
    *, requests_per_minute: LimitChange, tokens_per_day: LimitChange, parallel: LimitChange
) -> dict[str, int | None]:
    """The key fields to change (UNSET ones left out), each checked with :func:`check_limit`."""
    given: dict[str, LimitChange] = {
        "requests_per_minute": requests_per_minute,
        "tokens_per_day": tokens_per_day,
        "parallel": parallel,
    }
    return {name: check_limit(name, value) for name, value in given.items() if value is not UNSET}


@dataclass
class UsageRecord:
    """What one key used of one model on one UTC day."""

    key_id: str
    day: date
    model: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# The owner of a shared model (published by a global admin for every tenant): no tenant has
# an empty id, and an empty string, unlike NULL, is a primary-key value in every store.
SHARED = ""


@dataclass
class ModelRecord:
    """A model created through the API (a persona over a base model), keyed by its owner (a
    tenant id, or ``SHARED``) and its name: each tenant has its own namespace of names."""

    name: str
    definition: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    modified_at: datetime | None = None
    owner: str = SHARED


class KeyStore(Protocol):
    async def add_key(self, record: ApiKeyRecord) -> None: ...
    async def key_by_hash(self, key_hash: str) -> ApiKeyRecord | None: ...
    async def keys_by_hashes(self, key_hashes: list[str]) -> dict[str, ApiKeyRecord]: ...
    async def list_keys(self) -> list[ApiKeyRecord]: ...
    async def revoke_key(self, id_or_name: str) -> ApiKeyRecord | None:
        """Revoke the key with this id (an id wins over another key's equal name) or name,
        keeping an earlier revocation time; None if none matches, BadRequestError if several
        keys have that name."""
        ...

    async def rekey_key(self, key_id: str, *, key_hash: str, prefix: str) -> ApiKeyRecord | None:
        """Give the active key with this id a new secret (its hash and display prefix): the
        old secret stops matching at once, the id, limits and usage stay. None if no active
        key has this id; BadRequestError if the hash is another key's."""
        ...

    async def count_active_keys(self) -> int: ...
    async def touch_key(self, key_id: str, when: datetime) -> None: ...

    async def set_key_limits(
        self,
        id_or_name: str,
        *,
        requests_per_minute: LimitChange = UNSET,
        tokens_per_day: LimitChange = UNSET,
        parallel: LimitChange = UNSET,
    ) -> ApiKeyRecord | None:
        """Change the limits given (None: back to the server default, 0: unlimited; UNSET:
        unchanged) of the key with this id or name, revoked or not. Returns the updated key;
        None if no key matches; BadRequestError if several do or a limit is negative."""
        ...


class UsageStore(Protocol):
    async def record_usage(
        self,
        key_id: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        day: date | None = None,
        requests: int = 1,
    ) -> None:
        """Add ``requests`` requests (one by default) and their tokens to the key's row for
        ``day`` (today, UTC, by default) and ``model``, creating it if needed: one atomic
        upsert, so concurrent calls from any number of processes lose no update."""
        ...

    async def usage(
        self, *, key_id: str | None = None, since: date | None = None
    ) -> list[UsageRecord]:
        """Usage rows of one key (or all), from ``since`` on (or all), ordered by day, key id
        and model."""
        ...


class ModelStore(Protocol):
    async def list_models(self) -> list[ModelRecord]:
        """Every stored model, of every owner, ordered by owner and name."""
        ...

    async def get_model(self, owner: str, name: str) -> ModelRecord | None:
        """The model ``owner`` (a tenant id, or ``SHARED``) has named ``name``, or None."""
        ...

    async def put_model(self, record: ModelRecord) -> None:
        """Create or replace the model of ``record.owner`` named ``record.name``."""
        ...

    async def delete_model(self, owner: str, name: str) -> bool:
        """Delete the model ``owner`` has named ``name``; False when there was none."""
        ...


CHAT_FIELDS = frozenset({"title", "tags", "metadata", "archived", "model"})


@dataclass
class NewMessage:
    """A message to append; the store assigns ``id``, ``seq`` and ``created_at``."""

    role: str
    content: str
    model: str | None = None
    incomplete: bool = False
    done_reason: str | None = None
    # Token counts and timings (ns), as in Ollama's final chunk: prompt_eval_count,
    # eval_count, total_duration, load_duration, prompt_eval_duration, eval_duration.
    stats: dict[str, int] = field(default_factory=dict)


@dataclass
class ChatMessage:
    """A stored message. ``seq`` is its 1-based position in the chat, gap-free."""

    id: str
    chat_id: str
    seq: int
    role: str
    content: str
    created_at: datetime
    model: str | None = None
    incomplete: bool = False
    done_reason: str | None = None
    stats: dict[str, int] = field(default_factory=dict)


@dataclass
class Chat:
    """A conversation of one user of one tenant."""

    id: str
    tenant: str
    user_id: str
    model: str
    created_at: datetime
    updated_at: datetime
    title: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    archived: bool = False
    message_count: int = 0
    # The model's running summary of every non-system message up to seq summary_upto.
    summary: str | None = None
    summary_upto: int = 0
    # Filled by get_chat(with_messages=True), ordered by seq; None when not loaded.
    messages: list[ChatMessage] | None = None


@dataclass(frozen=True)
class ChatPage:
    """Where a page of the newest-first list starts: strictly older than this chat."""

    created_at: datetime
    id: str


class ChatStore(Protocol):
    async def create_chat(self, chat: Chat, messages: Sequence[NewMessage] = ()) -> Chat:
        """Store a new chat (its id, tenant, timestamps set by the caller) and its first
        messages, atomically. Returns the chat with ``messages`` and ``message_count``."""
        ...

    async def get_chat(
        self, tenant: str, chat_id: str, *, with_messages: bool = True
    ) -> Chat | None: ...

    async def list_chats(
        self,
        tenant: str,
        *,
        user_id: str | None = None,
        q: str | None = None,
        tag: str | None = None,
        archived: bool | None = None,
        limit: int = 50,
        after: ChatPage | None = None,
    ) -> list[Chat]:
        """Newest first by (created_at, id), without messages. ``q``: full-text search over
        titles and message text (all words must match, case-insensitive); ``tag``: chats
        carrying that tag; ``archived``: filter on the flag (None: both)."""
        ...

    async def update_chat(
        self, tenant: str, chat_id: str, changes: Mapping[str, Any]
    ) -> Chat | None:
        """Apply ``changes`` (keys from CHAT_FIELDS) and bump updated_at; None if missing."""
        ...

    async def delete_chat(self, tenant: str, chat_id: str) -> bool:
        """Delete the chat and its messages; False if missing."""
        ...

    async def append_messages(
        self, tenant: str, chat_id: str, messages: Sequence[NewMessage]
    ) -> list[ChatMessage] | None:
        """Append atomically (all or none), in order, after every message already there,
        even with concurrent appends from other processes; None if the chat is missing."""
        ...

    async def set_summary(self, tenant: str, chat_id: str, summary: str, upto: int) -> bool:
        """Store the running summary of messages up to seq ``upto``; False (nothing changed)
        if the chat is missing or already has a summary reaching as far."""
        ...

    async def replace_messages(
        self, tenant: str, chat_id: str, messages: Sequence[NewMessage], *, model: str | None = None
    ) -> list[ChatMessage] | None:
        """Replace all messages atomically (and the model, if given), dropping the summary;
        None if missing."""
        ...


# Datasets are stored as Parquet in pieces of this size (SQL rows, GridFS chunks).
DATA_CHUNK_BYTES: Final = 1024 * 1024


@dataclass
class DatasetVersion:
    """One version of a dataset: its data (Parquet, ``bytes`` long, whose SHA-256 is
    ``blob_sha256``), the content hash of its table (``hash``), its rows and columns."""

    version: int
    hash: str
    rows: int
    columns: list[dict[str, str]]  # [{"name", "type"}]
    bytes: int
    blob_sha256: str
    created_at: datetime
    # Where the data came from when it is no upload: a snapshot's source, table and filter.
    origin: dict[str, Any] | None = None


@dataclass
class DatasetRecord:
    """A dataset of one tenant, with its versions oldest first."""

    id: str
    tenant: str
    name: str
    user_id: str | None
    created_at: datetime
    versions: list[DatasetVersion] = field(default_factory=list)


@dataclass
class NewDatasetVersion:
    """What :meth:`DatasetStore.add_dataset_version` stores: ``data`` yields the Parquet file
    in pieces (``size`` bytes in all, SHA-256 ``blob_sha256``)."""

    hash: str
    rows: int
    columns: list[dict[str, str]]
    size: int
    blob_sha256: str
    data: AsyncIterable[bytes]
    # When it was made (now, unless imported from an earlier release's files).
    created_at: datetime | None = None
    origin: dict[str, Any] | None = None  # see DatasetVersion.origin


@dataclass
class InsightBrief:
    """What the newest-first listing of insight records shows of each."""

    id: str
    created_at: str
    user_id: str | None
    question: str | None
    dataset: dict[str, Any]
    summary: str | None
    language: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "user_id": self.user_id,
            "question": self.question,
            "dataset": self.dataset,
            "summary": self.summary,
            "language": self.language,
        }


def iso(value: datetime) -> str:
    """The ISO-8601 text of a UTC time, ``Z``-suffixed, as the API has always written it."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: Any) -> datetime:
    """A record's ``created_at`` text as an aware time (now, if it has none that parses)."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def insight_fields(tenant: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The columns (or document fields) an insight record is stored with, whatever the backend:
    what the listing and filters read, beside the whole record as JSON text. ``created_at`` is
    an aware time; each backend converts it (and the id's key) to its own form."""
    source = record.get("dataset") or {}
    version = source.get("version")
    return {
        "id": record["id"],
        "tenant": tenant,
        "user_id": record.get("user_id"),
        "dataset_id": source.get("id"),
        "dataset_version": version if isinstance(version, int) else None,
        "question": record.get("question"),
        "summary": record.get("summary"),
        "language": record.get("language"),
        "dataset": orjson.dumps(source).decode(),
        "created_at": parse_time(record.get("created_at")),
        "record": orjson.dumps(record).decode(),
    }


def quota_exceeded(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"this tenant's datasets would exceed {limit} bytes; delete some first"
    )


class DatasetStore(Protocol):
    """Datasets, their versions and data, and insight records, per tenant. A dataset or
    record of another tenant behaves exactly like a missing one."""

    async def add_dataset_version(
        self,
        tenant: str,
        *,
        dataset_id: str,
        name: str | None,
        user_id: str | None,
        new: NewDatasetVersion,
        create: bool,
        max_tenant_bytes: int,
        created_at: datetime | None = None,
    ) -> tuple[DatasetRecord, bool] | None:
        """Store ``new`` as the next version of ``dataset_id`` (made first, at ``created_at``
        or now, named ``name`` or its id, when ``create`` and missing), unless its ``hash``
        equals the latest version's: then the dataset as it is and False, nothing stored.
        Atomic: the data, the version and the tenant's storage count are stored together or
        not at all; concurrent calls of any process serialise per tenant, and
        PayloadTooLargeError is raised (nothing stored) when the tenant's datasets would pass
        ``max_tenant_bytes``. None when ``dataset_id`` is missing and not ``create``."""
        ...

    async def get_dataset(self, tenant: str, dataset_id: str) -> DatasetRecord | None: ...

    def dataset_data(self, tenant: str, dataset_id: str, version: int) -> AsyncIterator[bytes]:
        """The Parquet data of a version, piece by piece (nothing if it is missing)."""
        ...

    async def delete_dataset(self, tenant: str, dataset_id: str) -> bool:
        """Delete the dataset, its versions and data (freeing the tenant's storage); False if
        missing. Insight records made from it stay."""
        ...

    async def list_datasets(self, tenant: str, *, limit: int = 50) -> list[DatasetRecord]:
        """The tenant's datasets with their versions, newest first (by ``created_at``, then
        id), at most ``limit``."""
        ...

    async def dataset_bytes(self, tenant: str) -> int:
        """The bytes of data the tenant's datasets hold, as counted against its quota."""
        ...

    async def put_insight(self, tenant: str, record: Mapping[str, Any]) -> bool:
        """Store an insight record (``id``, ``created_at``, ``user_id``, ``question``,
        ``dataset``, ``summary``, ``language`` and whatever else it holds); False (nothing
        changed) when a record with its id exists already."""
        ...

    async def get_insight(self, tenant: str, insight_id: str) -> dict[str, Any] | None: ...

    async def list_insights(
        self,
        tenant: str,
        *,
        user_id: str | None = None,
        dataset_id: str | None = None,
        limit: int = 50,
    ) -> list[InsightBrief]:
        """Newest first (by ``created_at``, then id), at most ``limit``."""
        ...

    async def earlier_insight(
        self, tenant: str, *, dataset_id: str, question: str | None, before_version: int
    ) -> dict[str, Any] | None:
        """The record of the same question on the latest version of ``dataset_id`` older
        than ``before_version`` (the newest such record); None if there is none."""
        ...


def check_usage(prompt_tokens: int, completion_tokens: int) -> None:
    """BadRequestError unless both token counts are >= 0."""
    if prompt_tokens < 0 or completion_tokens < 0:
        raise BadRequestError("token counts cannot be negative")


def today() -> date:
    """Today's date in UTC: usage and token quotas count UTC days."""
    return datetime.now(UTC).date()


class Store(KeyStore, ModelStore, UsageStore, ChatStore, DatasetStore, Protocol):
    """Everything Billumy persists."""

    async def ainit(self) -> None: ...
    async def aclose(self) -> None: ...
    async def ping(self) -> bool: ...
