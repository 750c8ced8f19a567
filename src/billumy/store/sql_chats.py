"""The ChatStore half of the SQL store: chats, their messages and full-text search.

The tables are defined here; the schema is made from them by Alembic (:mod:`billumy.store.schema`),
which adds what the metadata cannot express: the full-text indexes (SQLite FTS5 tables and
their triggers, PostgreSQL tsvector columns and GIN indexes). Every statement on chats
filters by tenant; statements on messages either join chats on the tenant or run in the same
transaction right after a tenant-filtered write to the chat row; search subqueries only name
candidate chat ids for a query that filters by tenant.

Appends are ordered and atomic across processes: the first statement of the transaction is
``UPDATE chats SET message_count = message_count + n ... RETURNING message_count``, which
takes the chat's row lock (PostgreSQL) or runs under the database write lock that the writer
engine takes at ``BEGIN IMMEDIATE`` (SQLite), so concurrent appenders serialise on it and
each inserts the seqs it reserved. ``UNIQUE (chat_id, seq)`` backs that up.

Search (``q``): the words of ``q`` are the whitespace-separated chunks holding a letter or a
digit; a chat matches when its title, or any one of its messages, contains all of them (words
spread over the title and several messages do not make a match). Case is ignored, accents
are not. SQLite quotes each word as an FTS5 phrase (so ``"`` ``*`` ``OR`` ``NEAR(`` ``-``
are plain text, and ``e-mail`` matches the adjacent tokens ``e`` ``mail``); PostgreSQL runs
``plainto_tsquery('simple', q)``.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Select,
    Table,
    Text,
    TextClause,
    UniqueConstraint,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    select,
    text,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from billumy.errors import BadRequestError
from billumy.store.base import CHAT_FIELDS, Chat, ChatMessage, ChatPage, NewMessage

chat_metadata = MetaData()
_json = JSON().with_variant(JSONB(), "postgresql")
_tags = JSON().with_variant(ARRAY(Text()), "postgresql")
_timestamp = DateTime(timezone=True)

# The search columns (PostgreSQL) are left out on purpose: `select(chats)` never fetches them.
# Server defaults are those the schema has always had; every insert here gives all values.
chats = Table(
    "chats",
    chat_metadata,
    Column("id", Text, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("title", Text),
    Column("model", Text, nullable=False),
    # Default '[]' (SQLite) or '{}' (PostgreSQL): set per dialect in the baseline revision.
    Column("tags", _tags, nullable=False),
    Column("metadata", _json, nullable=False, server_default="{}"),
    Column("archived", Boolean, nullable=False, server_default=false()),
    Column("message_count", Integer, nullable=False, server_default="0"),
    Column("created_at", _timestamp, nullable=False),
    Column("updated_at", _timestamp, nullable=False),
    Column("summary", Text),
    Column("summary_upto", Integer, nullable=False, server_default="0"),
)
# Newest first, per user and per tenant: the listing's order (see list_chats).
Index(
    "chats_tenant_user_created",
    chats.c.tenant,
    chats.c.user_id,
    chats.c.created_at.desc(),
    chats.c.id.desc(),
)
Index("chats_tenant_created", chats.c.tenant, chats.c.created_at.desc(), chats.c.id.desc())

chat_messages = Table(
    "messages",
    chat_metadata,
    Column("id", Text, primary_key=True),
    Column("chat_id", Text, ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("role", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("model", Text),
    Column("incomplete", Boolean, nullable=False, server_default=false()),
    Column("done_reason", Text),
    Column("stats", _json, nullable=False, server_default="{}"),
    Column("created_at", _timestamp, nullable=False),
    UniqueConstraint("chat_id", "seq"),
)

# Search, in two steps: see SQLChatStore._search. UNION ALL so that LIMIT stops early.
SEARCH_HITS = 1000
_SEARCH_HITS = {
    "postgresql": """
        SELECT id FROM chats
        WHERE tenant = :tenant AND title_search @@ plainto_tsquery('simple', :q)
        UNION ALL
        SELECT m.chat_id FROM messages AS m JOIN chats AS c ON c.id = m.chat_id
        WHERE c.tenant = :tenant AND m.search @@ plainto_tsquery('simple', :q)
        LIMIT :limit""",
    "sqlite": """
        SELECT c.id FROM chats_fts JOIN chats AS c ON c.rowid = chats_fts.rowid
        WHERE chats_fts MATCH :q AND c.tenant = :tenant
        UNION ALL
        SELECT m.chat_id FROM messages_fts
        JOIN messages AS m ON m.rowid = messages_fts.rowid JOIN chats AS c ON c.id = m.chat_id
        WHERE messages_fts MATCH :q AND c.tenant = :tenant
        LIMIT :limit""",
}
_SEARCH_WALK = {
    "postgresql": """(chats.title_search @@ plainto_tsquery('simple', :q)
        OR chats.id IN (SELECT chat_id FROM messages
                        WHERE search @@ plainto_tsquery('simple', :q)))""",
    # The unary + keeps SQLite from reading chats through these lists (their ids are
    # collected once) instead of walking the newest-first index.
    "sqlite": """(+chats.rowid IN (SELECT rowid FROM chats_fts WHERE chats_fts MATCH :q)
        OR +chats.id IN (SELECT m.chat_id FROM messages_fts
                         JOIN messages AS m ON m.rowid = messages_fts.rowid
                         WHERE messages_fts MATCH :q))""",
}

# Letters and digits of any script; FTS5's unicode61 tokenizer splits on everything else.
_WORD_CHAR = re.compile(r"[^\W_]")


def _aware(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes; everything we write is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _utc(value: datetime) -> datetime:
    # SQLite stores the wall-clock digits without the offset, so convert before writing.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def search_words(q: str | None) -> list[str]:
    """The words of a search: whitespace-separated chunks with at least a letter or digit."""
    if not q:
        return []
    return [w for w in q.replace("\x00", " ").split() if _WORD_CHAR.search(w)]


def fts5_query(words: Sequence[str]) -> str:
    """An FTS5 MATCH expression requiring every word, each quoted as a phrase."""
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def _chat(row: Mapping[Any, Any]) -> Chat:
    return Chat(
        id=row["id"],
        tenant=row["tenant"],
        user_id=row["user_id"],
        model=row["model"],
        created_at=_aware(row["created_at"]) or datetime.now(UTC),
        updated_at=_aware(row["updated_at"]) or datetime.now(UTC),
        title=row["title"],
        tags=list(row["tags"]),
        metadata=dict(row["metadata"]),
        archived=bool(row["archived"]),
        message_count=row["message_count"],
        summary=row["summary"],
        summary_upto=row["summary_upto"],
    )


def _message(row: Mapping[Any, Any], prefix: str = "") -> ChatMessage:
    return ChatMessage(
        id=row[prefix + "id"],
        chat_id=row[prefix + "chat_id"],
        seq=row[prefix + "seq"],
        role=row[prefix + "role"],
        content=row[prefix + "content"],
        created_at=_aware(row[prefix + "created_at"]) or datetime.now(UTC),
        model=row[prefix + "model"],
        incomplete=bool(row[prefix + "incomplete"]),
        done_reason=row[prefix + "done_reason"],
        stats=dict(row[prefix + "stats"]),
    )


def _new_rows(
    chat_id: str, first_seq: int, new: Sequence[NewMessage], now: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "id": secrets.token_hex(12),
            "chat_id": chat_id,
            "seq": seq,
            "role": m.role,
            "content": m.content,
            "model": m.model,
            "incomplete": m.incomplete,
            "done_reason": m.done_reason,
            "stats": m.stats,
            "created_at": now,
        }
        for seq, m in enumerate(new, first_seq)
    ]


def _chat_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validated column values for update_chat."""
    unknown = sorted(set(changes) - CHAT_FIELDS)
    if unknown:
        raise BadRequestError(
            f"unknown chat field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(CHAT_FIELDS))}"
        )
    values: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "title" and not (value is None or isinstance(value, str)):
            raise BadRequestError("title must be a string or null")
        if key == "model" and not isinstance(value, str):
            raise BadRequestError("model must be a string")
        if key == "archived" and not isinstance(value, bool):
            raise BadRequestError("archived must be a boolean")
        if key == "tags":
            if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
                raise BadRequestError("tags must be a list of strings")
            value = list(value)
        if key == "metadata":
            if not isinstance(value, Mapping):
                raise BadRequestError("metadata must be an object")
            value = dict(value)
        values[key] = value
    return values


class SQLChatStore:
    """ChatStore on SQLAlchemy's async engine; :class:`billumy.store.sql.SQLStore` uses it.

    ``engine`` serves reads; ``writer`` (the same pool) begins SQLite transactions with
    ``BEGIN IMMEDIATE`` so that a write transaction never has to upgrade a read lock. On
    SQLite, reads run in autocommit mode: each statement is its own snapshot.
    """

    _engine: AsyncEngine | None = None
    _writer: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("SQLStore.ainit() was not awaited")
        return self._engine

    @property
    def writer(self) -> AsyncEngine:
        if self._writer is None:
            raise RuntimeError("SQLStore.ainit() was not awaited")
        return self._writer

    async def create_chat(self, chat: Chat, messages: Sequence[NewMessage] = ()) -> Chat:
        now = datetime.now(UTC)
        created_at, updated_at = _utc(chat.created_at), _utc(chat.updated_at)
        rows = _new_rows(chat.id, 1, messages, now)
        values = {
            "id": chat.id,
            "tenant": chat.tenant,
            "user_id": chat.user_id,
            "title": chat.title,
            "model": chat.model,
            "tags": list(chat.tags),
            "metadata": dict(chat.metadata),
            "archived": chat.archived,
            "message_count": len(rows),
            "created_at": created_at,
            "updated_at": updated_at,
            "summary": None,
            "summary_upto": 0,
        }
        try:
            async with self.writer.begin() as conn:
                await conn.execute(insert(chats).values(values))
                if rows:
                    await conn.execute(insert(chat_messages), rows)
        except IntegrityError:
            raise BadRequestError(f"a chat with id {chat.id!r} already exists") from None
        return dataclasses.replace(
            chat,
            created_at=created_at,
            updated_at=updated_at,
            tags=list(chat.tags),
            metadata=dict(chat.metadata),
            message_count=len(rows),
            messages=[_message(row) for row in rows],
        )

    async def get_chat(
        self, tenant: str, chat_id: str, *, with_messages: bool = True
    ) -> Chat | None:
        where = (chats.c.id == chat_id, chats.c.tenant == tenant)
        async with self.engine.connect() as conn:
            if not with_messages:
                row = (await conn.execute(select(chats).where(*where))).first()
                return _chat(row._mapping) if row is not None else None
            # One statement, so the chat and its messages come from one snapshot.
            query = (
                select(chats, *(c.label("m_" + c.name) for c in chat_messages.c))
                .select_from(chats.outerjoin(chat_messages, chat_messages.c.chat_id == chats.c.id))
                .where(*where)
                .order_by(chat_messages.c.seq)
            )
            rows = [row._mapping for row in await conn.execute(query)]
        if not rows:
            return None
        chat = _chat(rows[0])
        chat.messages = [_message(row, "m_") for row in rows if row["m_id"] is not None]
        return chat

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
        if limit < 1:
            return []
        query = select(chats).where(chats.c.tenant == tenant)
        if user_id is not None:
            query = query.where(chats.c.user_id == user_id)
        if archived is not None:
            query = query.where(chats.c.archived == archived)
        if tag is not None:
            query = query.where(self._has_tag(tag))
        if after is not None:
            query = _older_than(query, after)
        query = query.order_by(chats.c.created_at.desc(), chats.c.id.desc()).limit(limit)
        async with self.engine.connect() as conn:
            if words := search_words(q):
                matching = await self._search(conn, tenant, words, q or "")
                if matching is None:
                    return []
                query = query.where(matching)
            return [_chat(row._mapping) for row in await conn.execute(query)]

    def _has_tag(self, tag: str) -> ColumnElement[bool]:
        if self.engine.dialect.name == "postgresql":
            # text[] @> ARRAY[tag]: served by the GIN index on tags.
            return type_coerce(chats.c.tags, ARRAY(Text())).contains([tag])
        each = func.json_each(chats.c.tags).table_valued("value")
        return exists().where(each.c.value == tag)

    async def _search(
        self, conn: AsyncConnection, tenant: str, words: list[str], q: str
    ) -> ColumnElement[bool] | TextClause | None:
        """The list's condition for a search; None when no chat of the tenant matches.

        First the full-text indexes give up to SEARCH_HITS + 1 hits: matching titles and
        messages of the tenant's chats. When that is all of them, the list reads those chats
        by id. Otherwise matches are common, and walking the newest-first index while
        testing each chat finds a page sooner than reading every match and sorting them.
        """
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            # These scans take a millisecond; starting parallel workers takes several.
            await conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        search = q.replace("\x00", " ") if dialect == "postgresql" else fts5_query(words)
        hits = await conn.execute(
            text(_SEARCH_HITS[dialect]),
            {"tenant": tenant, "q": search, "limit": SEARCH_HITS + 1},
        )
        rows = hits.scalars().all()  # a chat comes once per matching title or message
        if not rows:
            return None
        if len(rows) <= SEARCH_HITS:
            return chats.c.id.in_(sorted(set(rows)))
        return text(_SEARCH_WALK[dialect]).bindparams(q=search)

    async def update_chat(
        self, tenant: str, chat_id: str, changes: Mapping[str, Any]
    ) -> Chat | None:
        values = _chat_changes(changes)
        values["updated_at"] = datetime.now(UTC)
        async with self.writer.begin() as conn:
            row = (
                await conn.execute(
                    update(chats)
                    .where(chats.c.id == chat_id, chats.c.tenant == tenant)
                    .values(values)
                    .returning(*chats.c)
                )
            ).first()
        return _chat(row._mapping) if row is not None else None

    async def delete_chat(self, tenant: str, chat_id: str) -> bool:
        async with self.writer.begin() as conn:
            result = await conn.execute(
                delete(chats).where(chats.c.id == chat_id, chats.c.tenant == tenant)
            )
        return bool(result.rowcount)

    async def append_messages(
        self, tenant: str, chat_id: str, messages: Sequence[NewMessage]
    ) -> list[ChatMessage] | None:
        if not messages:
            chat = await self.get_chat(tenant, chat_id, with_messages=False)
            return None if chat is None else []
        now = datetime.now(UTC)
        n = len(messages)
        async with self.writer.begin() as conn:
            # First statement: takes the lock that orders concurrent appenders (see above).
            count = (
                await conn.execute(
                    update(chats)
                    .where(chats.c.id == chat_id, chats.c.tenant == tenant)
                    .values(message_count=chats.c.message_count + n, updated_at=now)
                    .returning(chats.c.message_count)
                )
            ).scalar_one_or_none()
            if count is None:
                return None
            rows = _new_rows(chat_id, count - n + 1, messages, now)
            await conn.execute(insert(chat_messages), rows)
        return [_message(row) for row in rows]

    async def replace_messages(
        self, tenant: str, chat_id: str, messages: Sequence[NewMessage], *, model: str | None = None
    ) -> list[ChatMessage] | None:
        now = datetime.now(UTC)
        # New messages: the old summary describes another conversation.
        values: dict[str, Any] = {
            "message_count": len(messages),
            "updated_at": now,
            "summary": None,
            "summary_upto": 0,
        }
        if model is not None:
            values["model"] = model
        async with self.writer.begin() as conn:
            found = (
                await conn.execute(
                    update(chats)
                    .where(chats.c.id == chat_id, chats.c.tenant == tenant)
                    .values(values)
                    .returning(chats.c.id)
                )
            ).first()
            if found is None:
                return None
            # The tenant-filtered UPDATE above holds the chat's lock: these are its messages.
            await conn.execute(delete(chat_messages).where(chat_messages.c.chat_id == chat_id))
            rows = _new_rows(chat_id, 1, messages, now)
            if rows:
                await conn.execute(insert(chat_messages), rows)
        return [_message(row) for row in rows]

    async def set_summary(self, tenant: str, chat_id: str, summary: str, upto: int) -> bool:
        async with self.writer.begin() as conn:
            result = await conn.execute(
                update(chats)
                .where(
                    chats.c.id == chat_id,
                    chats.c.tenant == tenant,
                    # Never replace a summary with one that covers less.
                    chats.c.summary_upto < upto,
                    chats.c.message_count >= upto,
                )
                .values(summary=summary, summary_upto=upto)
            )
        return bool(result.rowcount)


def _older_than(query: Select[Any], after: ChatPage) -> Select[Any]:
    """Keyset pagination: strictly older than ``after`` in (created_at, id) order."""
    created_at = bindparam("after_created_at", _utc(after.created_at), type_=_timestamp)
    chat_id = bindparam("after_id", after.id, type_=Text())
    return query.where(
        tuple_(chats.c.created_at, chats.c.id) < tuple_(created_at, chat_id),
    )
