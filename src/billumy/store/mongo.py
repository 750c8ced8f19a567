"""MongoDB store on PyMongo's native asyncio client (``AsyncMongoClient``).

Keys, models and usage live here; chats and messages in :mod:`billumy.store.mongo_chats`;
datasets (their data in GridFS) and insight records in :mod:`billumy.store.mongo_datasets`.
Collections: ``api_keys`` (``_id`` = key id), ``models`` (``(owner, name)`` unique: a tenant id
or ``''`` for a shared model, see :func:`_own_models`) and ``usage`` (one
document per key, UTC day and model, ``(key_id, day, model)`` unique, the day an ISO date
string ``YYYY-MM-DD``). Timestamps are fixed-width UTC ISO-8601 strings (see mongo_chats).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pymongo import ASCENDING, TEXT, AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from billumy.errors import BadRequestError
from billumy.store.base import (
    SHARED,
    UNSET,
    ApiKeyRecord,
    LimitChange,
    ModelRecord,
    UsageRecord,
    check_usage,
    limit_changes,
    today,
)
from billumy.store.mongo_chats import (
    NEWEST_FIRST,
    TEXT_OPTIONS,
    Doc,
    MongoChatStore,
    _from_doc,
    _to_doc,
    _ts,
)
from billumy.store.mongo_datasets import MongoDatasetStore, create_dataset_indexes

DEFAULT_DATABASE = "billumy"


def database_name(url: str) -> str:
    """The database named in a MongoDB URL's path, or ``billumy`` when it names none."""
    return unquote(urlsplit(url).path.lstrip("/")) or DEFAULT_DATABASE


def client_options(url: str) -> Doc:
    """Client keyword arguments; keywords beat URL options in PyMongo, so only set defaults."""
    given = {key.lower() for key, _ in parse_qsl(urlsplit(url).query)}
    # Fail within seconds when the server is down, unless the URL asks for another timeout.
    return {} if "serverselectiontimeoutms" in given else {"serverSelectionTimeoutMS": 5000}


def supports_transactions(hello: Mapping[str, Any]) -> bool:
    """Whether a ``hello`` reply comes from a replica set member or a mongos with sessions:
    the deployments that run multi-document transactions (a standalone server never does)."""
    clustered = "setName" in hello or hello.get("msg") == "isdbgrid"
    return clustered and hello.get("logicalSessionTimeoutMinutes") is not None


async def _own_models(models: AsyncCollection[Doc]) -> None:
    """Give every model document an owner, before the ``(owner, name)`` index is made.

    Documents written before models had owners have their name as ``_id`` and their owner (if
    any) inside the definition: they get ``name`` and ``owner`` fields ('' when none: shared,
    as they were). Their ``_id`` stays; newer documents get PyMongo's. Idempotent.
    """
    await models.update_many(
        {"owner": {"$exists": False}},
        [
            {
                "$set": {
                    "name": {"$ifNull": ["$name", "$_id"]},
                    "owner": {"$ifNull": ["$definition.owner", SHARED]},
                }
            },
            {"$unset": "definition.owner"},
        ],
    )


async def _create_indexes(db: AsyncDatabase[Doc]) -> None:
    await create_dataset_indexes(db)
    # Same names and specs every start, so re-creating them is a no-op.
    await _own_models(db["models"])
    await db["models"].create_indexes(
        [IndexModel([("owner", ASCENDING), ("name", ASCENDING)], name="owner_name", unique=True)]
    )
    await db["api_keys"].create_indexes(
        [IndexModel("key_hash", name="key_hash", unique=True), IndexModel("name", name="name")]
    )
    await db["usage"].create_indexes(
        [
            IndexModel(
                [("key_id", ASCENDING), ("day", ASCENDING), ("model", ASCENDING)],
                name="key_day_model",
                unique=True,
            ),
            IndexModel([("day", ASCENDING)], name="day"),
        ]
    )
    await db["chats"].create_indexes(
        [
            IndexModel([("tenant", ASCENDING), ("user_id", ASCENDING), *NEWEST_FIRST], name="user"),
            IndexModel([("tenant", ASCENDING), *NEWEST_FIRST], name="tenant"),
            IndexModel([("tenant", ASCENDING), ("tags", ASCENDING)], name="tags"),
            # Prefixed by tenant: every search names one, and scans only that tenant's entries.
            IndexModel([("tenant", ASCENDING), ("title", TEXT)], name="title_text", **TEXT_OPTIONS),
        ]
    )
    await db["messages"].create_indexes(
        [
            IndexModel([("chat_id", ASCENDING), ("seq", ASCENDING)], name="seq", unique=True),
            IndexModel(
                [("tenant", ASCENDING), ("content", TEXT)], name="content_text", **TEXT_OPTIONS
            ),
        ]
    )


class MongoStore(MongoChatStore, MongoDatasetStore):
    """Keys, created models, usage and chats in MongoDB (see :class:`MongoChatStore` for
    what holds on a standalone server, which has no transactions)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.database = database_name(url)
        self._client: AsyncMongoClient[Doc] | None = None
        self._transactions = False

    @property
    def _keys(self) -> AsyncCollection[Doc]:
        return self.db["api_keys"]

    @property
    def _models(self) -> AsyncCollection[Doc]:
        return self.db["models"]

    @property
    def _usage(self) -> AsyncCollection[Doc]:
        return self.db["usage"]

    async def ainit(self) -> None:
        """Connect, learn whether the server runs transactions, and create missing indexes
        (idempotent). Connection errors propagate as PyMongo raises them."""
        # tz_aware: we store no BSON dates, but any that turn up come back timezone-aware.
        client: AsyncMongoClient[Doc] = AsyncMongoClient(
            self.url, tz_aware=True, **client_options(self.url)
        )
        try:
            hello = await client.admin.command("hello")
            await _create_indexes(client[self.database])
        except BaseException:
            await client.close()
            raise
        self._transactions = supports_transactions(hello)
        self._client = client

    async def aclose(self) -> None:
        """Close the client; ``ping`` answers False afterwards."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def ping(self) -> bool:
        """Whether the server answers; False (never an exception) when it does not."""
        if self._client is None:
            return False
        try:
            await self._client.admin.command("ping")
        except Exception:
            return False
        return True

    # keys
    async def add_key(self, record: ApiKeyRecord) -> None:
        """Store a key; BadRequestError if its hash (or id) is already stored."""
        try:
            await self._keys.insert_one(_to_doc(record))
        except DuplicateKeyError:
            raise BadRequestError("this API key is already registered") from None

    async def key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        doc = await self._keys.find_one({"key_hash": key_hash})
        return None if doc is None else _from_doc(ApiKeyRecord, doc)

    async def keys_by_hashes(self, key_hashes: list[str]) -> dict[str, ApiKeyRecord]:
        """The stored keys among ``key_hashes``, by hash (one query for all of them)."""
        docs = await self._keys.find({"key_hash": {"$in": key_hashes}}).to_list()
        return {r.key_hash: r for r in (_from_doc(ApiKeyRecord, doc) for doc in docs)}

    async def list_keys(self) -> list[ApiKeyRecord]:
        cursor = self._keys.find().sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        return [_from_doc(ApiKeyRecord, doc) for doc in await cursor.to_list()]

    async def _key_id(self, id_or_name: str) -> str | None:
        """The id of the key with this id, else of the one with this name; None if none,
        BadRequestError if several have the name (an id wins: ids are unique)."""
        if await self._keys.find_one({"_id": id_or_name}, {"_id": 1}) is not None:
            return id_or_name
        found = await self._keys.find({"name": id_or_name}, {"_id": 1}).to_list(2)
        if len(found) > 1:
            raise BadRequestError(f"several keys are named {id_or_name!r}; use the id")
        return str(found[0]["_id"]) if found else None

    async def revoke_key(self, id_or_name: str) -> ApiKeyRecord | None:
        """Revoke the key with this id or name (keeping an earlier revocation time); None if
        none matches, BadRequestError if several do."""
        key_id = await self._key_id(id_or_name)
        if key_id is None:
            return None
        now = _ts(datetime.now(UTC))
        await self._keys.update_one(
            {"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": now}}
        )
        doc = await self._keys.find_one({"_id": key_id})
        return None if doc is None else _from_doc(ApiKeyRecord, doc)

    async def rekey_key(self, key_id: str, *, key_hash: str, prefix: str) -> ApiKeyRecord | None:
        try:
            doc = await self._keys.find_one_and_update(
                {"_id": key_id, "revoked_at": None},
                {"$set": {"key_hash": key_hash, "prefix": prefix}},
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            raise BadRequestError("this API key is already registered") from None
        return None if doc is None else _from_doc(ApiKeyRecord, doc)

    async def set_key_limits(
        self,
        id_or_name: str,
        *,
        requests_per_minute: LimitChange = UNSET,
        tokens_per_day: LimitChange = UNSET,
        parallel: LimitChange = UNSET,
    ) -> ApiKeyRecord | None:
        """Change the limits given (None: default, 0: unlimited) of the key with this id or
        name; None if none matches, BadRequestError if several do."""
        changes = limit_changes(
            requests_per_minute=requests_per_minute,
            tokens_per_day=tokens_per_day,
            parallel=parallel,
        )
        key_id = await self._key_id(id_or_name)
        if key_id is None:
            return None
        if changes:
            doc = await self._keys.find_one_and_update(
                {"_id": key_id}, {"$set": changes}, return_document=ReturnDocument.AFTER
            )
        else:
            doc = await self._keys.find_one({"_id": key_id})
        return None if doc is None else _from_doc(ApiKeyRecord, doc)

    async def count_active_keys(self) -> int:
        return await self._keys.count_documents({"revoked_at": None})

    async def touch_key(self, key_id: str, when: datetime) -> None:
        await self._keys.update_one({"_id": key_id}, {"$set": {"last_used_at": _ts(when)}})

    # usage
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
        """Add one request and its tokens to the (key, day, model) document: one atomic
        upsert with ``$inc``."""
        check_usage(prompt_tokens, completion_tokens)
        match = {"key_id": key_id, "day": (day or today()).isoformat(), "model": model}
        inc = {
            "requests": requests,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        }
        try:
            await self._usage.update_one(match, {"$inc": inc}, upsert=True)
        except DuplicateKeyError:
            # Two upserts raced to create the document and this one lost (servers before 4.2
            # do not retry that themselves): the document exists now, so $inc it.
            await self._usage.update_one(match, {"$inc": inc}, upsert=True)

    async def usage(
        self, *, key_id: str | None = None, since: date | None = None
    ) -> list[UsageRecord]:
        """Usage documents of one key (or all) from ``since`` on, by day, key id and model."""
        query: Doc = {}
        if key_id is not None:
            query["key_id"] = key_id
        if since is not None:
            query["day"] = {"$gte": since.isoformat()}  # ISO dates sort as strings
        order = [("day", ASCENDING), ("key_id", ASCENDING), ("model", ASCENDING)]
        docs = await self._usage.find(query).sort(order).to_list()
        return [
            UsageRecord(
                key_id=doc["key_id"],
                day=date.fromisoformat(doc["day"]),
                model=doc["model"],
                requests=doc.get("requests", 0),
                prompt_tokens=doc.get("prompt_tokens", 0),
                completion_tokens=doc.get("completion_tokens", 0),
            )
            for doc in docs
        ]

    # models
    async def list_models(self) -> list[ModelRecord]:
        docs = await self._models.find().sort([("owner", ASCENDING), ("name", ASCENDING)]).to_list()
        return [_from_doc(ModelRecord, doc) for doc in docs]

    async def get_model(self, owner: str, name: str) -> ModelRecord | None:
        doc = await self._models.find_one({"owner": owner, "name": name})
        return None if doc is None else _from_doc(ModelRecord, doc)

    async def put_model(self, record: ModelRecord) -> None:
        """Create or replace the model of this owner and name."""
        now = datetime.now(UTC)
        stored = replace(record, created_at=record.created_at or now, modified_at=now)
        doc = _to_doc(stored)  # no ``id`` field: the document keeps (or gets) its own _id
        await self._models.replace_one(
            {"owner": record.owner, "name": record.name}, doc, upsert=True
        )

    async def delete_model(self, owner: str, name: str) -> bool:
        result = await self._models.delete_one({"owner": owner, "name": name})
        return result.deleted_count == 1
