"""SQL store on SQLAlchemy's async engine: SQLite (default, WAL) and PostgreSQL (asyncpg).

Keys (with their limits), models and usage live here (their tables in
:mod:`billumy.store.sql_tables`); chats and messages in :mod:`billumy.store.sql_chats`; datasets
and insight records in :mod:`billumy.store.sql_datasets`. The schema is made from these tables
by Alembic, at start-up (:mod:`billumy.store.schema`).

SQLite transactions are begun here rather than by the sqlite3 module (which begins one before
the first INSERT/UPDATE/DELETE, after any SELECT): writes go through ``SQLStore.writer`` and
start with ``BEGIN IMMEDIATE``, so a writer takes the database lock up-front and waits on
``busy_timeout`` instead of failing when it would have to upgrade a read lock. Reads through
``SQLStore.engine`` run in autocommit mode: each statement sees one snapshot, which is all
that any read here needs (a read that must see several statements from one snapshot has to
go through the writer), and it saves a BEGIN and a ROLLBACK per read (about 20% of reads/s).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Insert,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, ExceptionContext, Row, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from billumy.errors import BadRequestError, StoreUnavailableError
from billumy.store import schema
from billumy.store.base import (
    UNSET,
    ApiKeyRecord,
    LimitChange,
    ModelRecord,
    UsageRecord,
    check_usage,
    limit_changes,
    today,
)
from billumy.store.sql_chats import SQLChatStore, _aware
from billumy.store.sql_datasets import SQLDatasetStore
from billumy.store.sql_tables import api_keys, key_usage, models

# Execution option of the writer engine; the SQLite "begin" hook turns it into BEGIN IMMEDIATE.
_WRITE = "billumy_write"


def _add_usage(dialect: str, row: dict[str, Any]) -> Insert:
    """INSERT the row, or add its counters to the row already there for its key, day, model.

    One statement: the row lock (PostgreSQL) or the write lock (SQLite) makes the
    read-add-write atomic, so concurrent requests of any process never lose an update.
    """
    keys = [key_usage.c.key_id, key_usage.c.day, key_usage.c.model]
    counters = ("requests", "prompt_tokens", "completion_tokens")
    if dialect == "postgresql":
        pg = postgresql.insert(key_usage).values(row)
        return pg.on_conflict_do_update(
            index_elements=keys, set_={c: key_usage.c[c] + pg.excluded[c] for c in counters}
        )
    lite = sqlite.insert(key_usage).values(row)
    return lite.on_conflict_do_update(
        index_elements=keys, set_={c: key_usage.c[c] + lite.excluded[c] for c in counters}
    )


def _enable_wal(cursor: Any, attempts: int = 60) -> None:
    """WAL is a property of the file: once one connection has set it, it holds for all. The
    switch needs the file to itself, and SQLite answers "database is locked" at once, without
    the busy timeout, while other processes open the same fresh file: several processes
    starting together on a new database retry briefly instead of failing."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # the driver's OperationalError, through the adapter
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


def _sqlite_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Transactions are ours (see the module docstring), not the sqlite3 module's.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_WRITE, False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _unavailable_on_outage(engine: AsyncEngine) -> None:
    """A database that cannot be reached (restarting, stopped, connection cut) fails the
    request with :class:`StoreUnavailableError` (503, retry) instead of the driver's error
    (a 500). Two hooks, as SQLAlchemy reports the two cases apart: a lost connection goes
    through ``handle_error`` (which still invalidates the pool's stale connections), a
    refused new one only through the connect call itself."""
    sync = engine.sync_engine

    @event.listens_for(sync, "do_connect")
    def _connect(dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            raise StoreUnavailableError() from exc

    @event.listens_for(sync, "handle_error")
    def _lost(context: ExceptionContext) -> None:
        # Not when the pool's pre-ping finds a stale connection: the pool then reconnects.
        if context.is_disconnect and not context.is_pre_ping:
            raise StoreUnavailableError() from context.original_exception


def open_engine(url: str) -> AsyncEngine:
    """The engine of a ``sqlite+aiosqlite://`` or ``postgresql+asyncpg://`` URL (reads: see the
    module docstring); :func:`writer_of` gives its writer."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = _sqlite_engine(url)
    elif parsed.get_backend_name() == "postgresql":
        engine = create_async_engine(url, pool_pre_ping=True)
    else:
        raise BadRequestError(f"unsupported database URL scheme: {parsed.drivername}")
    _unavailable_on_outage(engine)
    return engine


def writer_of(engine: AsyncEngine) -> AsyncEngine:
    """The engine's writer: on SQLite its transactions start with BEGIN IMMEDIATE."""
    return engine.execution_options(**{_WRITE: True})


def _key_from_row(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        key_hash=row.key_hash,
        tenant=row.tenant,
        scopes=json.loads(row.scopes),
        created_at=_aware(row.created_at) or datetime.now(UTC),
        last_used_at=_aware(row.last_used_at),
        revoked_at=_aware(row.revoked_at),
        requests_per_minute=row.requests_per_minute,
        tokens_per_day=row.tokens_per_day,
        parallel=row.parallel,
    )


async def _one_key(conn: AsyncConnection, id_or_name: str) -> Row[Any] | None:
    """The key with this id, else the one with this name; None if none, BadRequestError if
    several have the name. An id wins over a name: ids are unique, names are anyone's."""
    match = or_(api_keys.c.id == id_or_name, api_keys.c.name == id_or_name)
    rows = (await conn.execute(select(api_keys).where(match).limit(3))).all()
    by_id = [row for row in rows if row.id == id_or_name]
    if by_id:
        return by_id[0]
    if len(rows) > 1:
        raise BadRequestError(f"several keys are named {id_or_name!r}; use the id")
    return rows[0] if rows else None


class SQLStore(SQLChatStore, SQLDatasetStore):
    """Everything Billumy persists, in a SQL database (the Store protocol)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def ainit(self) -> None:
        """Connect and bring the schema to the newest revision (idempotent, safe with several
        processes starting at once; see :mod:`billumy.store.schema`)."""
        await self.aclose()  # a second ainit() starts afresh rather than leak the first pool
        self._engine = open_engine(self.url)
        self._writer = writer_of(self._engine)
        try:
            await schema.upgrade(self._writer)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = self._writer = None

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    # keys
    async def add_key(self, record: ApiKeyRecord) -> None:
        try:
            await self._insert_key(record)
        except IntegrityError:
            raise BadRequestError("this API key is already registered") from None

    async def _insert_key(self, record: ApiKeyRecord) -> None:
        async with self.writer.begin() as conn:
            await conn.execute(
                insert(api_keys).values(
                    id=record.id,
                    name=record.name,
                    prefix=record.prefix,
                    key_hash=record.key_hash,
                    tenant=record.tenant,
                    scopes=json.dumps(record.scopes),
                    created_at=record.created_at,
                    last_used_at=record.last_used_at,
                    revoked_at=record.revoked_at,
                    requests_per_minute=record.requests_per_minute,
                    tokens_per_day=record.tokens_per_day,
                    parallel=record.parallel,
                )
            )

    async def key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash))
            ).first()
        return _key_from_row(row) if row is not None else None

    async def keys_by_hashes(self, key_hashes: list[str]) -> dict[str, ApiKeyRecord]:
        """The stored keys among ``key_hashes``, by hash (one query for all of them)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(select(api_keys).where(api_keys.c.key_hash.in_(key_hashes)))
            ).all()
        return {record.key_hash: record for record in map(_key_from_row, rows)}

    async def list_keys(self) -> list[ApiKeyRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(api_keys).order_by(api_keys.c.created_at))).all()
        return [_key_from_row(row) for row in rows]

    async def revoke_key(self, id_or_name: str) -> ApiKeyRecord | None:
        now = datetime.now(UTC)
        async with self.writer.begin() as conn:
            found = await _one_key(conn, id_or_name)
            if found is None:
                return None
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == found.id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == found.id))).one()
        return _key_from_row(row)

    async def rekey_key(self, key_id: str, *, key_hash: str, prefix: str) -> ApiKeyRecord | None:
        c = api_keys.c
        try:
            async with self.writer.begin() as conn:
                done = await conn.execute(
                    update(api_keys)
                    .where(c.id == key_id, c.revoked_at.is_(None))
                    .values(key_hash=key_hash, prefix=prefix)
                )
                if done.rowcount == 0:
                    return None
                row = (await conn.execute(select(api_keys).where(c.id == key_id))).one()
        except IntegrityError:
            raise BadRequestError("this API key is already registered") from None
        return _key_from_row(row)

    async def set_key_limits(
        self,
        id_or_name: str,
        *,
        requests_per_minute: LimitChange = UNSET,
        tokens_per_day: LimitChange = UNSET,
        parallel: LimitChange = UNSET,
    ) -> ApiKeyRecord | None:
        changes = limit_changes(
            requests_per_minute=requests_per_minute,
            tokens_per_day=tokens_per_day,
            parallel=parallel,
        )
        async with self.writer.begin() as conn:
            found = await _one_key(conn, id_or_name)
            if found is None or not changes:
                return None if found is None else _key_from_row(found)
            await conn.execute(update(api_keys).where(api_keys.c.id == found.id).values(changes))
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == found.id))).one()
        return _key_from_row(row)

    async def count_active_keys(self) -> int:
        async with self.engine.connect() as conn:
            query = (
                select(func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))
            )
            return int((await conn.execute(query)).scalar_one())

    async def touch_key(self, key_id: str, when: datetime) -> None:
        async with self.writer.begin() as conn:
            await conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=when)
            )

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
        check_usage(prompt_tokens, completion_tokens)
        row = {
            "key_id": key_id,
            "day": day or today(),
            "model": model,
            "requests": requests,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        }
        async with self.writer.begin() as conn:
            await conn.execute(_add_usage(conn.dialect.name, row))

    async def usage(
        self, *, key_id: str | None = None, since: date | None = None
    ) -> list[UsageRecord]:
        u = key_usage.c
        query = select(key_usage).order_by(u.day, u.key_id, u.model)
        if key_id is not None:
            query = query.where(u.key_id == key_id)
        if since is not None:
            query = query.where(u.day >= since)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            UsageRecord(
                key_id=row.key_id,
                day=row.day,
                model=row.model,
                requests=row.requests,
                prompt_tokens=row.prompt_tokens,
                completion_tokens=row.completion_tokens,
            )
            for row in rows
        ]

    # models
    async def list_models(self) -> list[ModelRecord]:
        async with self.engine.connect() as conn:
            query = select(models).order_by(models.c.owner, models.c.name)
            rows = (await conn.execute(query)).all()
        return [self._model(row) for row in rows]

    async def get_model(self, owner: str, name: str) -> ModelRecord | None:
        query = select(models).where(models.c.owner == owner, models.c.name == name)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return self._model(row) if row is not None else None

    async def put_model(self, record: ModelRecord) -> None:
        now = datetime.now(UTC)
        mine = (models.c.owner == record.owner, models.c.name == record.name)
        async with self.writer.begin() as conn:
            await conn.execute(delete(models).where(*mine))
            await conn.execute(
                insert(models).values(
                    owner=record.owner,
                    name=record.name,
                    definition=record.definition,
                    created_at=record.created_at or now,
                    modified_at=now,
                )
            )

    async def delete_model(self, owner: str, name: str) -> bool:
        query = delete(models).where(models.c.owner == owner, models.c.name == name)
        async with self.writer.begin() as conn:
            result = await conn.execute(query)
        return bool(result.rowcount)

    @staticmethod
    def _model(row: Any) -> ModelRecord:
        return ModelRecord(
            owner=row.owner,
            name=row.name,
            definition=dict(row.definition),
            created_at=_aware(row.created_at),
            modified_at=_aware(row.modified_at),
        )
