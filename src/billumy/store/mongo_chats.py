"""The ChatStore half of the MongoDB store: chats, their messages and text search.

:class:`billumy.store.mongo.MongoStore` builds on :class:`MongoChatStore` (the connection, keys,
models and usage live there, the indexes too). Chats are in ``chats`` (``_id`` = chat id),
messages in ``messages`` (one document per message, ``(chat_id, seq)`` unique, with the chat's
tenant copied in for search). Timestamps are stored as fixed-width UTC ISO-8601 strings
(``2026-01-02T03:04:05.123456Z``): BSON dates keep only milliseconds and the contract hands
datetimes back exactly; the fixed width keeps string order equal to time order, which the
newest-first keyset pagination relies on.
"""

from __future__ import annotations

import logging
import re
import secrets
import unicodedata
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReadPreference, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from billumy.errors import BadRequestError
from billumy.store.base import (
    CHAT_FIELDS,
    ApiKeyRecord,
    Chat,
    ChatMessage,
    ChatPage,
    ModelRecord,
    NewMessage,
)

log = logging.getLogger(__name__)

Doc = dict[str, Any]
T = TypeVar("T")
R = TypeVar("R", ApiKeyRecord, ModelRecord, Chat, ChatMessage)
Session = AsyncClientSession | None

NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]
# No stemming and no stop words: Portuguese and English text are matched word for word. The
# override names a field we never write, so no document can switch a text index's language.
TEXT_OPTIONS: Doc = {"default_language": "none", "language_override": "_text_language"}
_WORD = re.compile(r"\w+")
_TIMES = frozenset({"created_at", "updated_at", "modified_at", "last_used_at", "revoked_at"})
NOT_STORED = frozenset({"messages"})  # a chat's messages live in their own collection


def text_search(q: str | None) -> str | None:
    """The ``$text`` search string that needs every word of ``q``, or None when it has none.

    Bare words in ``$search`` are OR-ed; quoted phrases must all match, so each word is quoted.
    Words are runs of ``\\w``, so no quote, backslash or ``-`` (negation) reaches the server.
    """
    if not q:
        return None
    words: dict[str, str] = {}
    for word in _WORD.findall(unicodedata.normalize("NFC", q)):
        words.setdefault(word.lower(), word)
    return " ".join(f'"{word}"' for word in words.values()) or None


def keyset_filter(after: ChatPage) -> Doc:
    """Chats strictly older than ``after`` in (created_at desc, id desc) order."""
    when = _ts(after.created_at)
    return {"$or": [{"created_at": {"$lt": when}}, {"created_at": when, "_id": {"$lt": after.id}}]}


def _ts(value: datetime) -> str:
    # Naive datetimes are taken as UTC, as everything we write is.
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _to_doc(
    record: ApiKeyRecord | ModelRecord | Chat | ChatMessage,
    *,
    key: str = "id",
    skip: frozenset[str] = frozenset(),
) -> Doc:
    """A record (dataclass) as a document: its ``key`` field is ``_id``, datetimes are strings."""
    doc: Doc = {}
    for f in fields(record):
        if f.name not in skip:
            value = getattr(record, f.name)
            doc["_id" if f.name == key else f.name] = (
                _ts(value) if isinstance(value, datetime) else value
            )
    return doc


def _from_doc(cls: type[R], doc: Doc, *, key: str = "id") -> R:
    """The record for a document written by ``_to_doc``; fields it lacks keep their default."""
    values: Doc = {}
    for f in fields(cls):
        name = "_id" if f.name == key else f.name
        if name in doc:
            value = doc[name]
            values[f.name] = datetime.fromisoformat(value) if f.name in _TIMES and value else value
    return cls(**values)


def _new_messages(
    chat_id: str, first_seq: int, messages: Sequence[NewMessage], now: datetime
) -> list[ChatMessage]:
    return [
        ChatMessage(
            id=secrets.token_hex(12),
            chat_id=chat_id,
            seq=first_seq + i,
            created_at=now,
            **asdict(m),
        )
        for i, m in enumerate(messages)
    ]


class MongoChatStore:
    """Keys, created models and chats in MongoDB.

    On a replica set or behind mongos, every multi-document write (and a chat read with its
    messages) runs in one transaction: the ChatStore contract holds in full. A standalone
    server has no transactions, so there:

    * appends stay ordered and gap-free under concurrency (each reserves its seqs with one
      atomic ``$inc`` on the chat, then inserts them), but a reader may briefly see a later
      append's messages before an earlier one's, or a chat's new ``message_count`` before
      its messages;
    * a failed write is undone by hand: an append deletes what it inserted and returns its
      seqs unless a later append already took seqs after them (that leaves a gap, logged);
      a replace puts the old messages back; a create deletes the chat;
    * a replace is not isolated from readers or from concurrent appends to the same chat;
    * a crash of this process mid-write can leave a partial write behind.
    """

    database: str
    _client: AsyncMongoClient[Doc] | None = None
    _transactions = False

    @property
    def db(self) -> AsyncDatabase[Doc]:
        if self._client is None:
            raise RuntimeError("MongoStore.ainit() was not awaited")
        return self._client[self.database]

    @property
    def _chats(self) -> AsyncCollection[Doc]:
        return self.db["chats"]

    @property
    def _messages(self) -> AsyncCollection[Doc]:
        return self.db["messages"]

    async def _atomically(self, work: Callable[[Session], Awaitable[T]]) -> T:
        """Run ``work`` in a transaction where the server has them (retried on transient
        errors such as write conflicts), else directly with no session."""
        if not self._transactions:
            return await work(None)
        async with self.db.client.start_session() as session:
            # Transactions must read from the primary, whatever the URL's read preference.
            return await session.with_transaction(work, read_preference=ReadPreference.PRIMARY)

    # chats
    async def create_chat(self, chat: Chat, messages: Sequence[NewMessage] = ()) -> Chat:
        """Store a new chat and its first messages atomically (see the class docstring for a
        standalone server); BadRequestError if the id is taken."""
        records = _new_messages(chat.id, 1, messages, datetime.now(UTC))
        doc = _to_doc(replace(chat, message_count=len(records)), skip=NOT_STORED)

        async def work(session: Session) -> None:
            try:
                await self._chats.insert_one(doc, session=session)
            except DuplicateKeyError:
                raise BadRequestError(f"chat {chat.id!r} already exists") from None
            undo = partial(self._delete_chat, None, chat.tenant, chat.id)
            await self._insert_messages(chat.tenant, records, session, undo)

        await self._atomically(work)
        return replace(chat, messages=records, message_count=len(records))

    async def get_chat(
        self, tenant: str, chat_id: str, *, with_messages: bool = True
    ) -> Chat | None:
        """The chat, with its messages ordered by seq when asked; None if missing."""
        if not with_messages:
            doc = await self._chats.find_one({"_id": chat_id, "tenant": tenant})
            return None if doc is None else _from_doc(Chat, doc)
        # In a transaction the chat and its messages come from one snapshot.
        return await self._atomically(lambda session: self._read_chat(session, tenant, chat_id))

    async def _read_chat(self, session: Session, tenant: str, chat_id: str) -> Chat | None:
        doc = await self._chats.find_one({"_id": chat_id, "tenant": tenant}, session=session)
        if doc is None:
            return None
        cursor = self._messages.find({"chat_id": chat_id}, session=session).sort("seq", ASCENDING)
        messages = [_from_doc(ChatMessage, m) for m in await cursor.to_list()]
        return replace(_from_doc(Chat, doc), messages=messages)

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
        """Newest first by (created_at, id), without messages; ``q`` needs all its words in
        the title or in one message (case- and diacritic-insensitive)."""
        if limit <= 0:  # Mongo reads limit(0) as "no limit"
            return []
        query: Doc = {"tenant": tenant}
        if user_id is not None:
            query["user_id"] = user_id
        if tag is not None:
            query["tags"] = tag
        if archived is not None:
            query["archived"] = archived
        search = text_search(q)
        if search is not None:
            query["_id"] = {"$in": await self._search(tenant, search, dict(query))}
        if after is not None:
            query.update(keyset_filter(after))
        cursor = self._chats.find(query).sort(NEWEST_FIRST).limit(limit)
        return [_from_doc(Chat, doc) for doc in await cursor.to_list()]

    async def _search(self, tenant: str, search: str, chat_filter: Doc) -> list[str]:
        """Ids of the chats whose title, or one of whose messages, matches ``search``."""
        # A query holds one $text, on one collection: titles and messages are two queries.
        titles = self._chats.find({**chat_filter, "$text": {"$search": search}}, {"_id": 1})
        ids = {doc["_id"] for doc in await titles.to_list()}
        pipeline: list[Doc] = [
            {"$match": {"tenant": tenant, "$text": {"$search": search}}},
            {"$group": {"_id": "$chat_id"}},
        ]
        hits = await (await self._messages.aggregate(pipeline)).to_list()
        ids.update(doc["_id"] for doc in hits)
        return sorted(ids)

    async def update_chat(
        self, tenant: str, chat_id: str, changes: Mapping[str, Any]
    ) -> Chat | None:
        """Apply ``changes`` (keys from CHAT_FIELDS, else BadRequestError) and bump
        updated_at; the updated chat, or None if missing."""
        unknown = sorted(set(changes) - CHAT_FIELDS)
        if unknown:
            raise BadRequestError(f"unknown chat fields: {', '.join(unknown)}")
        updates: Doc = {**changes, "updated_at": _ts(datetime.now(UTC))}
        doc = await self._chats.find_one_and_update(
            {"_id": chat_id, "tenant": tenant},
            {"$set": updates},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _from_doc(Chat, doc)

    async def delete_chat(self, tenant: str, chat_id: str) -> bool:
        """Delete the chat and its messages; False if missing."""
        return await self._atomically(lambda session: self._delete_chat(session, tenant, chat_id))

    async def _delete_chat(self, session: Session, tenant: str, chat_id: str) -> bool:
        # The chat goes first: without a transaction, a failure in between leaves only
        # messages that nothing reaches, never a chat whose messages are gone.
        deleted = await self._chats.delete_one({"_id": chat_id, "tenant": tenant}, session=session)
        if deleted.deleted_count == 0:
            return False
        await self._messages.delete_many({"chat_id": chat_id}, session=session)
        return True

    async def append_messages(
        self, tenant: str, chat_id: str, messages: Sequence[NewMessage]
    ) -> list[ChatMessage] | None:
        """Append after every message already there, in order, all or none (see the class
        docstring for a standalone server); None if the chat is missing."""
        if not messages:
            found = await self._chats.find_one({"_id": chat_id, "tenant": tenant}, {"_id": 1})
            return None if found is None else []
        return await self._atomically(
            lambda session: self._append(session, tenant, chat_id, messages)
        )

    async def _append(
        self, session: Session, tenant: str, chat_id: str, messages: Sequence[NewMessage]
    ) -> list[ChatMessage] | None:
        now = datetime.now(UTC)
        # One atomic $inc reserves seqs last-n+1..last: concurrent appends never share a seq.
        chat = await self._chats.find_one_and_update(
            {"_id": chat_id, "tenant": tenant},
            {"$inc": {"message_count": len(messages)}, "$set": {"updated_at": _ts(now)}},
            {"message_count": 1},
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if chat is None:
            return None
        records = _new_messages(chat_id, chat["message_count"] - len(messages) + 1, messages, now)
        await self._insert_messages(tenant, records, session, partial(self._undo_append, records))
        return records

    async def _undo_append(self, records: list[ChatMessage]) -> None:
        first, last, chat_id = records[0].seq, records[-1].seq, records[0].chat_id
        await self._messages.delete_many({"_id": {"$in": [m.id for m in records]}})
        # The seqs go back only while no later append holds seqs after them.
        given_back = await self._chats.update_one(
            {"_id": chat_id, "message_count": last}, {"$inc": {"message_count": -len(records)}}
        )
        if given_back.matched_count == 0:
            log.warning("a failed append left seqs %d-%d of chat %s empty", first, last, chat_id)

    async def replace_messages(
        self, tenant: str, chat_id: str, messages: Sequence[NewMessage], *, model: str | None = None
    ) -> list[ChatMessage] | None:
        """Replace all messages (and the model, if given) atomically (see the class docstring
        for a standalone server); None if the chat is missing."""
        return await self._atomically(
            lambda session: self._replace(session, tenant, chat_id, messages, model)
        )

    async def _replace(
        self,
        session: Session,
        tenant: str,
        chat_id: str,
        messages: Sequence[NewMessage],
        model: str | None,
    ) -> list[ChatMessage] | None:
        now = datetime.now(UTC)
        # New messages: the old summary describes another conversation.
        changes: Doc = {
            "message_count": len(messages),
            "updated_at": _ts(now),
            "summary": None,
            "summary_upto": 0,
        }
        if model is not None:
            changes["model"] = model
        before = await self._chats.find_one_and_update(
            {"_id": chat_id, "tenant": tenant},
            {"$set": changes},
            {"message_count": 1, "model": 1},
            return_document=ReturnDocument.BEFORE,
            session=session,
        )
        if before is None:
            return None
        records = _new_messages(chat_id, 1, messages, now)
        old: list[Doc] = []
        if session is None:  # no transaction: keep the old messages to put back on failure
            old = await self._messages.find({"chat_id": chat_id}).to_list()
        await self._messages.delete_many({"chat_id": chat_id}, session=session)
        undo = partial(self._undo_replace, records, old, before)
        await self._insert_messages(tenant, records, session, undo)
        return records

    async def set_summary(self, tenant: str, chat_id: str, summary: str, upto: int) -> bool:
        """Store the running summary; never one that covers less than the stored one."""
        result = await self._chats.update_one(
            {
                "_id": chat_id,
                "tenant": tenant,
                "message_count": {"$gte": upto},
                # Chats made before summaries existed have no summary_upto field.
                "$or": [{"summary_upto": {"$lt": upto}}, {"summary_upto": {"$exists": False}}],
            },
            {"$set": {"summary": summary, "summary_upto": upto}},
        )
        return result.modified_count > 0

    async def _undo_replace(self, records: list[ChatMessage], old: list[Doc], before: Doc) -> None:
        restored = {"message_count": before["message_count"], "model": before["model"]}
        await self._chats.update_one({"_id": before["_id"]}, {"$set": restored})
        await self._messages.delete_many({"_id": {"$in": [m.id for m in records]}})
        if old:  # unordered: put back every message that can be
            await self._messages.insert_many(old, ordered=False)

    async def _insert_messages(
        self,
        tenant: str,
        records: list[ChatMessage],
        session: Session,
        undo: Callable[[], Awaitable[object]],
    ) -> None:
        """Insert the messages. In a transaction a failure aborts it; without one, ``undo``
        runs first (best effort: its own failure is logged, the original error propagates)."""
        if not records:  # insert_many refuses an empty list
            return
        try:
            docs = [{**_to_doc(m), "tenant": tenant} for m in records]
            await self._messages.insert_many(docs, session=session)
        except BaseException:
            if session is None:
                try:
                    await undo()
                except Exception:
                    log.exception("could not undo a failed write to chat %s", records[0].chat_id)
            raise
