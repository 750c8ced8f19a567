"""The DatasetStore half of the MongoDB store: datasets, their data in GridFS, insight records.

Collections: ``datasets`` (``_id`` = dataset id, its versions as an array, each naming its
GridFS file), the GridFS bucket ``dataset_data`` (the Parquet files, in chunks of
:data:`~billumy.store.base.DATA_CHUNK_BYTES`), ``dataset_storage`` (``_id`` = tenant, the bytes
its datasets hold) and ``insights`` (``_id`` = record id; the record itself as JSON text, since
its keys are column names, which may hold ``.`` or start with ``$``).

No transactions are needed, so a standalone server gives the same guarantees:

* the quota: the tenant's bytes grow by a conditional ``$inc`` (``bytes <= max - size``) before
  the data is written, and shrink again if the version is not kept;
* versions: a version is added by a compare-and-set on the number of versions, so of two
  concurrent uploads one wins and the other retries on top of it (or finds the same content
  and stores nothing).

A crash between writing a file and adding its version leaves an unreferenced GridFS file and
its bytes counted; ``billumy`` never reads such a file.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from bson import ObjectId
from gridfs.asynchronous.grid_file import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from billumy.errors import BadRequestError
from billumy.store.base import (
    DATA_CHUNK_BYTES,
    DatasetRecord,
    DatasetVersion,
    InsightBrief,
    NewDatasetVersion,
    insight_fields,
    iso,
    quota_exceeded,
)
from billumy.store.mongo_chats import NEWEST_FIRST, Doc, _ts

BUCKET = "dataset_data"


async def create_dataset_indexes(db: AsyncDatabase[Doc]) -> None:
    await db["datasets"].create_indexes([IndexModel("tenant", name="tenant")])
    await db["insights"].create_indexes(
        [
            IndexModel([("tenant", ASCENDING), *NEWEST_FIRST], name="tenant"),
            IndexModel([("tenant", ASCENDING), ("user_id", ASCENDING), *NEWEST_FIRST], name="user"),
            IndexModel(
                [("tenant", ASCENDING), ("dataset_id", ASCENDING), ("dataset_version", DESCENDING)],
                name="dataset",
            ),
        ]
    )


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _dataset(doc: Doc) -> DatasetRecord:
    return DatasetRecord(
        id=doc["_id"],
        tenant=doc["tenant"],
        name=doc["name"],
        user_id=doc.get("user_id"),
        created_at=_time(doc["created_at"]),
        versions=[
            DatasetVersion(
                version=v["version"],
                hash=v["hash"],
                rows=v["rows"],
                columns=v["columns"],
                bytes=v["bytes"],
                blob_sha256=v["blob_sha256"],
                created_at=_time(v["created_at"]),
                origin=v.get("origin"),
            )
            for v in doc["versions"]
        ],
    )


class MongoDatasetStore:
    """DatasetStore on PyMongo's asyncio client; :class:`billumy.store.mongo.MongoStore` uses
    it (``db`` is the store's database)."""

    @property
    def db(self) -> AsyncDatabase[Doc]:
        raise NotImplementedError

    @property
    def _datasets(self) -> AsyncCollection[Doc]:
        return self.db["datasets"]

    @property
    def _storage(self) -> AsyncCollection[Doc]:
        return self.db["dataset_storage"]

    @property
    def _insights(self) -> AsyncCollection[Doc]:
        return self.db["insights"]

    def _bucket(self) -> AsyncGridFSBucket:
        return AsyncGridFSBucket(self.db, BUCKET, chunk_size_bytes=DATA_CHUNK_BYTES)

    async def _reserve(self, tenant: str, size: int, limit: int) -> None:
        await self._storage.update_one({"_id": tenant}, {"$setOnInsert": {"bytes": 0}}, upsert=True)
        taken = await self._storage.update_one(
            {"_id": tenant, "bytes": {"$lte": limit - size}}, {"$inc": {"bytes": size}}
        )
        if taken.modified_count == 0:
            raise quota_exceeded(limit)

    async def _release(self, tenant: str, size: int) -> None:
        await self._storage.update_one({"_id": tenant}, {"$inc": {"bytes": -size}})

    async def _upload(self, tenant: str, dataset_id: str, new: NewDatasetVersion) -> Any:
        """Write the data to GridFS (checked against its size and SHA-256); the file's id."""
        file_id = ObjectId()
        stream = self._bucket().open_upload_stream_with_id(
            file_id, dataset_id, metadata={"tenant": tenant, "dataset_id": dataset_id}
        )
        digest = hashlib.sha256()
        size = 0
        try:
            async for piece in new.data:
                digest.update(piece)
                size += len(piece)
                await stream.write(piece)
            if size != new.size or digest.hexdigest() != new.blob_sha256:
                raise BadRequestError("the dataset's data changed while it was being stored")
        except BaseException:
            await stream.abort()
            raise
        await stream.close()
        return file_id

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
        found = await self._datasets.find_one({"_id": dataset_id, "tenant": tenant})
        if found is None and not create:
            return None
        if found is not None and found["versions"][-1]["hash"] == new.hash:
            return _dataset(found), False
        await self._reserve(tenant, new.size, max_tenant_bytes)
        try:
            file_id = await self._upload(tenant, dataset_id, new)
        except BaseException:
            await self._release(tenant, new.size)
            raise
        now = _ts(datetime.now(UTC))
        while True:
            count = 0 if found is None else len(found["versions"])
            version = {
                "version": 1 if found is None else found["versions"][-1]["version"] + 1,
                "hash": new.hash,
                "rows": new.rows,
                "columns": new.columns,
                "bytes": new.size,
                "blob_sha256": new.blob_sha256,
                "created_at": _ts(new.created_at) if new.created_at else now,
                "file_id": file_id,
            }
            if new.origin:
                version["origin"] = new.origin
            if found is None:
                doc: Doc = {
                    "_id": dataset_id,
                    "tenant": tenant,
                    "name": name or dataset_id,
                    "user_id": user_id,
                    "created_at": _ts(created_at) if created_at else now,
                    "versions": [version],
                }
                try:
                    await self._datasets.insert_one(doc)
                except DuplicateKeyError:
                    pass  # made meanwhile (by another process): add on top of it
                else:
                    return _dataset(doc), True
            else:
                changes: Doc = {"$push": {"versions": version}}
                if name:
                    changes["$set"] = {"name": name}
                added = await self._datasets.update_one(
                    {"_id": dataset_id, "tenant": tenant, "versions": {"$size": count}}, changes
                )
                if added.modified_count:
                    stored = await self._datasets.find_one({"_id": dataset_id})
                    if stored is not None:
                        return _dataset(stored), True
            found = await self._datasets.find_one({"_id": dataset_id, "tenant": tenant})
            if found is None or found["versions"][-1]["hash"] == new.hash:
                # Deleted, or the same content stored meanwhile: keep nothing of ours.
                await self._bucket().delete(file_id)
                await self._release(tenant, new.size)
                return None if found is None else (_dataset(found), False)

    async def get_dataset(self, tenant: str, dataset_id: str) -> DatasetRecord | None:
        doc = await self._datasets.find_one({"_id": dataset_id, "tenant": tenant})
        return None if doc is None else _dataset(doc)

    async def list_datasets(self, tenant: str, *, limit: int = 50) -> list[DatasetRecord]:
        order = [("created_at", DESCENDING), ("_id", DESCENDING)]
        docs = await self._datasets.find({"tenant": tenant}).sort(order).to_list(limit)
        return [_dataset(doc) for doc in docs]

    async def dataset_data(
        self, tenant: str, dataset_id: str, version: int
    ) -> AsyncIterator[bytes]:
        doc = await self._datasets.find_one({"_id": dataset_id, "tenant": tenant})
        chosen = next((v for v in (doc or {}).get("versions", []) if v["version"] == version), None)
        if chosen is None:
            return
        try:
            stream = await self._bucket().open_download_stream(chosen["file_id"])
        except NoFile:
            return
        try:
            while piece := await stream.readchunk():
                yield piece
        finally:
            await stream.close()

    async def delete_dataset(self, tenant: str, dataset_id: str) -> bool:
        doc = await self._datasets.find_one_and_delete({"_id": dataset_id, "tenant": tenant})
        if doc is None:
            return False
        for version in doc["versions"]:
            with contextlib.suppress(NoFile):
                await self._bucket().delete(version["file_id"])
        await self._release(tenant, sum(v["bytes"] for v in doc["versions"]))
        return True

    async def dataset_bytes(self, tenant: str) -> int:
        doc = await self._storage.find_one({"_id": tenant})
        return 0 if doc is None else int(doc["bytes"])

    # insight records

    async def put_insight(self, tenant: str, record: Mapping[str, Any]) -> bool:
        fields = insight_fields(tenant, record)
        doc = {"_id": fields.pop("id"), **fields, "created_at": _ts(fields["created_at"])}
        try:
            await self._insights.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def get_insight(self, tenant: str, insight_id: str) -> dict[str, Any] | None:
        doc = await self._insights.find_one({"_id": insight_id, "tenant": tenant}, {"record": 1})
        return None if doc is None else dict(orjson.loads(doc["record"]))

    async def list_insights(
        self,
        tenant: str,
        *,
        user_id: str | None = None,
        dataset_id: str | None = None,
        limit: int = 50,
    ) -> list[InsightBrief]:
        query: Doc = {"tenant": tenant}
        if user_id is not None:
            query["user_id"] = user_id
        if dataset_id is not None:
            query["dataset_id"] = dataset_id
        cursor = self._insights.find(query, {"record": 0}).sort(NEWEST_FIRST).limit(limit)
        return [
            InsightBrief(
                id=doc["_id"],
                created_at=iso(_time(doc["created_at"])),
                user_id=doc.get("user_id"),
                question=doc.get("question"),
                dataset=orjson.loads(doc["dataset"]),
                summary=doc.get("summary"),
                language=doc.get("language"),
            )
            for doc in await cursor.to_list()
        ]

    async def earlier_insight(
        self, tenant: str, *, dataset_id: str, question: str | None, before_version: int
    ) -> dict[str, Any] | None:
        query = {
            "tenant": tenant,
            "dataset_id": dataset_id,
            "dataset_version": {"$lt": before_version},
            "question": question,
        }
        order = [("dataset_version", DESCENDING), *NEWEST_FIRST]
        docs = await self._insights.find(query, {"record": 1}).sort(order).limit(1).to_list()
        return dict(orjson.loads(docs[0]["record"])) if docs else None
