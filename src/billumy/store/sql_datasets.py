"""The DatasetStore half of the SQL store: datasets, their versions and data, insight records.

A version's data is its Parquet file, in rows of ``dataset_chunks`` of at most
:data:`~billumy.store.base.DATA_CHUNK_BYTES` each (SQLite blobs, PostgreSQL ``bytea``): an
upload is written piece by piece as it is read from the local file, and read back the same
way, so a large dataset never sits whole in memory.

Every write runs in one transaction that first locks the tenant's row of
``dataset_storage`` (its bytes of data, the count its quota is checked against): a row lock
on PostgreSQL, the database write lock that the writer engine takes at ``BEGIN IMMEDIATE`` on
SQLite. So concurrent uploads and deletes of one tenant, from any process, serialise there:
the quota holds, and "same content as the latest version" is decided on what is committed.

Insight records are kept whole as JSON text (their key order as written), beside the columns
that the newest-first listing and the lookup of an earlier record by question need.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from billumy.errors import BadRequestError
from billumy.store.base import (
    DatasetRecord,
    DatasetVersion,
    InsightBrief,
    NewDatasetVersion,
    insight_fields,
    iso,
    quota_exceeded,
)
from billumy.store.sql_chats import _aware, _utc

dataset_metadata = MetaData()
_big = BigInteger().with_variant(Integer(), "sqlite")
_timestamp = DateTime(timezone=True)

datasets = Table(
    "datasets",
    dataset_metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("user_id", Text),
    Column("created_at", _timestamp, nullable=False),
    Index("datasets_tenant", "tenant"),
)

dataset_versions = Table(
    "dataset_versions",
    dataset_metadata,
    Column(
        "dataset_id",
        String(40),
        ForeignKey("datasets.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("version", Integer, primary_key=True),
    Column("hash", String(64), nullable=False),
    Column("rows", _big, nullable=False),
    Column("columns", Text, nullable=False),  # JSON: [{"name", "type"}]
    Column("bytes", _big, nullable=False),
    Column("blob_sha256", String(64), nullable=False),
    Column("created_at", _timestamp, nullable=False),
    Column("origin", Text),  # JSON: {"source", "table", "filter", ...} of a snapshot
)

dataset_chunks = Table(
    "dataset_chunks",
    dataset_metadata,
    Column("dataset_id", String(40), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
    ForeignKeyConstraint(
        ["dataset_id", "version"],
        ["dataset_versions.dataset_id", "dataset_versions.version"],
        ondelete="CASCADE",
    ),
)

# The bytes of data each tenant's datasets hold; its row is the tenant's write lock.
dataset_storage = Table(
    "dataset_storage",
    dataset_metadata,
    Column("tenant", Text, primary_key=True),
    Column("bytes", _big, nullable=False, server_default="0"),
)

insights = Table(
    "insights",
    dataset_metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("user_id", Text),
    Column("dataset_id", String(40)),
    Column("dataset_version", Integer),
    Column("question", Text),
    Column("summary", Text),
    Column("language", Text),
    Column("dataset", Text, nullable=False),  # JSON: {"id", "version", "hash"} or {"hash"}
    Column("created_at", _timestamp, nullable=False),
    Column("record", Text, nullable=False),  # the whole record, JSON
)
# Newest first, per tenant and per user (list_insights); by dataset (earlier_insight).
Index(
    "insights_tenant_created", insights.c.tenant, insights.c.created_at.desc(), insights.c.id.desc()
)
Index(
    "insights_tenant_user_created",
    insights.c.tenant,
    insights.c.user_id,
    insights.c.created_at.desc(),
    insights.c.id.desc(),
)
Index(
    "insights_tenant_dataset",
    insights.c.tenant,
    insights.c.dataset_id,
    insights.c.dataset_version,
)


def _version(row: Any) -> DatasetVersion:
    return DatasetVersion(
        version=row.version,
        hash=row.hash,
        rows=row.rows,
        columns=orjson.loads(row.columns),
        bytes=row.bytes,
        blob_sha256=row.blob_sha256,
        created_at=_aware(row.created_at) or datetime.now(UTC),
        origin=orjson.loads(row.origin) if row.origin else None,
    )


async def _dataset(conn: AsyncConnection, tenant: str, dataset_id: str) -> DatasetRecord | None:
    d = datasets.c
    row = (
        await conn.execute(select(datasets).where(d.id == dataset_id, d.tenant == tenant))
    ).first()
    if row is None:
        return None
    v = dataset_versions.c
    rows = (
        await conn.execute(
            select(dataset_versions).where(v.dataset_id == dataset_id).order_by(v.version)
        )
    ).all()
    return DatasetRecord(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        user_id=row.user_id,
        created_at=_aware(row.created_at) or datetime.now(UTC),
        versions=[_version(r) for r in rows],
    )


async def _lock_tenant(conn: AsyncConnection, tenant: str) -> int:
    """Lock the tenant's storage row (made if missing) for the transaction; its bytes."""
    row = {"tenant": tenant, "bytes": 0}
    if conn.dialect.name == "postgresql":
        await conn.execute(postgresql.insert(dataset_storage).values(row).on_conflict_do_nothing())
    else:
        await conn.execute(sqlite.insert(dataset_storage).values(row).on_conflict_do_nothing())
    query = select(dataset_storage.c.bytes).where(dataset_storage.c.tenant == tenant)
    return int((await conn.execute(query.with_for_update())).scalar_one())


class SQLDatasetStore:
    """DatasetStore on SQLAlchemy's async engine; :class:`billumy.store.sql.SQLStore` uses it.
    ``engine`` and ``writer`` are the SQLStore's (see :class:`SQLChatStore`)."""

    @property
    def engine(self) -> AsyncEngine:
        raise NotImplementedError

    @property
    def writer(self) -> AsyncEngine:
        raise NotImplementedError

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
        now = datetime.now(UTC)
        async with self.writer.begin() as conn:
            used = await _lock_tenant(conn, tenant)
            found = await _dataset(conn, tenant, dataset_id)
            if found is None and not create:
                return None
            if found is not None and found.versions and found.versions[-1].hash == new.hash:
                return found, False
            if used + new.size > max_tenant_bytes:
                raise quota_exceeded(max_tenant_bytes)
            if found is None:
                try:
                    await conn.execute(
                        insert(datasets).values(
                            id=dataset_id,
                            tenant=tenant,
                            name=name or dataset_id,
                            user_id=user_id,
                            created_at=_utc(created_at or now),
                        )
                    )
                except IntegrityError:  # an id of another tenant
                    raise BadRequestError(f"dataset id '{dataset_id}' is taken") from None
                number = 1
            else:
                number = found.versions[-1].version + 1 if found.versions else 1
                if name:
                    await conn.execute(
                        update(datasets).where(datasets.c.id == dataset_id).values(name=name)
                    )
            await conn.execute(
                insert(dataset_versions).values(
                    dataset_id=dataset_id,
                    version=number,
                    hash=new.hash,
                    rows=new.rows,
                    columns=orjson.dumps(new.columns).decode(),
                    bytes=new.size,
                    blob_sha256=new.blob_sha256,
                    created_at=_utc(new.created_at or now),
                    origin=orjson.dumps(new.origin).decode() if new.origin else None,
                )
            )
            await _write_chunks(conn, dataset_id, number, new)
            await conn.execute(
                update(dataset_storage)
                .where(dataset_storage.c.tenant == tenant)
                .values(bytes=dataset_storage.c.bytes + new.size)
            )
            stored = await _dataset(conn, tenant, dataset_id)
        assert stored is not None
        return stored, True

    async def get_dataset(self, tenant: str, dataset_id: str) -> DatasetRecord | None:
        async with self.engine.connect() as conn:
            return await _dataset(conn, tenant, dataset_id)

    async def list_datasets(self, tenant: str, *, limit: int = 50) -> list[DatasetRecord]:
        d, v = datasets.c, dataset_versions.c
        query = (
            select(datasets)
            .where(d.tenant == tenant)
            .order_by(d.created_at.desc(), d.id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            ids = [row.id for row in rows]
            versions: dict[str, list[DatasetVersion]] = {i: [] for i in ids}
            if ids:
                found = await conn.execute(
                    select(dataset_versions)
                    .where(v.dataset_id.in_(ids))
                    .order_by(v.dataset_id, v.version)
                )
                for version in found.all():
                    versions[version.dataset_id].append(_version(version))
        return [
            DatasetRecord(
                id=row.id,
                tenant=row.tenant,
                name=row.name,
                user_id=row.user_id,
                created_at=_aware(row.created_at) or datetime.now(UTC),
                versions=versions[row.id],
            )
            for row in rows
        ]

    async def dataset_data(
        self, tenant: str, dataset_id: str, version: int
    ) -> AsyncIterator[bytes]:
        d, c = datasets.c, dataset_chunks.c
        owned = select(d.id).where(d.id == dataset_id, d.tenant == tenant)
        seq = 0
        while True:  # one piece per query: never the whole file in memory
            query = select(c.data).where(
                c.dataset_id.in_(owned), c.version == version, c.seq == seq
            )
            async with self.engine.connect() as conn:
                piece = (await conn.execute(query)).scalar_one_or_none()
            if piece is None:
                return
            yield bytes(piece)
            seq += 1

    async def delete_dataset(self, tenant: str, dataset_id: str) -> bool:
        d, v = datasets.c, dataset_versions.c
        async with self.writer.begin() as conn:
            await _lock_tenant(conn, tenant)
            owned = select(d.id).where(d.id == dataset_id, d.tenant == tenant)
            if (await conn.execute(owned)).first() is None:
                return False
            freed = (
                await conn.execute(
                    select(func.coalesce(func.sum(v.bytes), 0)).where(v.dataset_id == dataset_id)
                )
            ).scalar_one()
            # Chunks and versions go by the foreign keys' cascade.
            await conn.execute(delete(datasets).where(d.id == dataset_id))
            await conn.execute(
                update(dataset_storage)
                .where(dataset_storage.c.tenant == tenant)
                .values(bytes=dataset_storage.c.bytes - int(freed))
            )
        return True

    async def dataset_bytes(self, tenant: str) -> int:
        query = select(dataset_storage.c.bytes).where(dataset_storage.c.tenant == tenant)
        async with self.engine.connect() as conn:
            found = (await conn.execute(query)).scalar_one_or_none()
        return int(found or 0)

    # insight records

    async def put_insight(self, tenant: str, record: Mapping[str, Any]) -> bool:
        fields = insight_fields(tenant, record)
        values = {**fields, "created_at": _utc(fields["created_at"])}
        async with self.writer.begin() as conn:
            if conn.dialect.name == "postgresql":
                statement: Any = postgresql.insert(insights).on_conflict_do_nothing()
            else:
                statement = sqlite.insert(insights).on_conflict_do_nothing()
            result = await conn.execute(statement.values(values))
        return bool(result.rowcount)

    async def get_insight(self, tenant: str, insight_id: str) -> dict[str, Any] | None:
        i = insights.c
        query = select(i.record).where(i.id == insight_id, i.tenant == tenant)
        async with self.engine.connect() as conn:
            found = (await conn.execute(query)).scalar_one_or_none()
        return None if found is None else dict(orjson.loads(found))

    async def list_insights(
        self,
        tenant: str,
        *,
        user_id: str | None = None,
        dataset_id: str | None = None,
        limit: int = 50,
    ) -> list[InsightBrief]:
        i = insights.c
        query = (
            select(i.id, i.created_at, i.user_id, i.question, i.dataset, i.summary, i.language)
            .where(i.tenant == tenant)
            .order_by(i.created_at.desc(), i.id.desc())
            .limit(limit)
        )
        if user_id is not None:
            query = query.where(i.user_id == user_id)
        if dataset_id is not None:
            query = query.where(i.dataset_id == dataset_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            InsightBrief(
                id=row.id,
                created_at=iso(_aware(row.created_at) or datetime.now(UTC)),
                user_id=row.user_id,
                question=row.question,
                dataset=orjson.loads(row.dataset),
                summary=row.summary,
                language=row.language,
            )
            for row in rows
        ]

    async def earlier_insight(
        self, tenant: str, *, dataset_id: str, question: str | None, before_version: int
    ) -> dict[str, Any] | None:
        i = insights.c
        asked = i.question.is_(None) if question is None else i.question == question
        query = (
            select(i.record)
            .where(
                i.tenant == tenant,
                i.dataset_id == dataset_id,
                i.dataset_version < before_version,
                asked,
            )
            .order_by(i.dataset_version.desc(), i.created_at.desc(), i.id.desc())
            .limit(1)
        )
        async with self.engine.connect() as conn:
            found = (await conn.execute(query)).scalar_one_or_none()
        return None if found is None else dict(orjson.loads(found))


async def _write_chunks(
    conn: AsyncConnection, dataset_id: str, version: int, new: NewDatasetVersion
) -> None:
    """Insert the pieces of ``new.data`` as they come, checking its size and SHA-256."""
    digest = hashlib.sha256()
    size = seq = 0
    async for piece in new.data:
        if not piece:
            continue
        digest.update(piece)
        size += len(piece)
        await conn.execute(
            insert(dataset_chunks).values(
                dataset_id=dataset_id, version=version, seq=seq, data=piece
            )
        )
        seq += 1
    if size != new.size or digest.hexdigest() != new.blob_sha256:
        # The file changed under us: roll back rather than store what was not described.
        raise BadRequestError("the dataset's data changed while it was being stored")
