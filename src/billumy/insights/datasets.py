"""Datasets and insight records of a tenant, in the store; their data cached per host.

A dataset is a name and a list of versions; each version is the data as Parquet plus its
schema and content hash. Uploading data whose hash equals the latest version's returns that
version; changed data becomes the next version. All of it lives in the store
(:class:`billumy.store.base.DatasetStore`), so every host on one database agrees; this host
keeps the Parquet files it has used under ``<data dir>/cache/datasets``, named by the SHA-256
of their bytes (checked when fetched), which makes them safe to share between tenants and
never stale. The files are a cache, never the truth: deleting them costs only a fetch, and the
least recently used go once they pass a size bound (:mod:`billumy.insights.parquet_cache`).

Insight records (what was asked, the facts, the insights) are stored whole beside them.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from billumy.errors import BadRequestError, NotFoundError
from billumy.insights.parquet_cache import DEFAULT_GRACE_S, DEFAULT_MAX_BYTES, ParquetCache
from billumy.store.base import (
    DATA_CHUNK_BYTES,
    DatasetRecord,
    DatasetStore,
    InsightBrief,
    NewDatasetVersion,
)

_ID = re.compile(r"^(ds|in)_[a-f0-9]{16}$")
_SHA256 = re.compile(r"^[a-f0-9]{64}$")


def _now() -> str:
    return _iso(datetime.now(UTC))


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def check_id(value: str, prefix: str) -> str:
    if not _ID.match(value) or not value.startswith(prefix + "_"):
        raise NotFoundError(f"{'dataset' if prefix == 'ds' else 'insight'} '{value}' not found")
    return value


@dataclass
class Version:
    version: int
    hash: str
    rows: int
    columns: list[dict[str, str]]  # [{"name", "type"}]
    bytes: int
    created_at: str = field(default_factory=_now)
    # The SHA-256 of the Parquet bytes: the name of the cached file. Not shown by the API.
    blob_sha256: str = field(default="", repr=False)
    # A snapshot's source, table, filter and columns (never a URL); None for an upload.
    origin: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        shown = {
            "version": self.version,
            "hash": self.hash,
            "rows": self.rows,
            "columns": self.columns,
            "bytes": self.bytes,
            "created_at": self.created_at,
        }
        if self.origin is not None:
            shown["origin"] = self.origin
        return shown


@dataclass
class Dataset:
    id: str
    name: str
    user_id: str | None
    created_at: str
    versions: list[Version]

    @property
    def latest(self) -> Version:
        return self.versions[-1]

    @classmethod
    def of(cls, record: DatasetRecord) -> Dataset:
        return cls(
            id=record.id,
            name=record.name,
            user_id=record.user_id,
            created_at=_iso(record.created_at),
            versions=[
                Version(
                    version=v.version,
                    hash=v.hash,
                    rows=v.rows,
                    columns=v.columns,
                    bytes=v.bytes,
                    created_at=_iso(v.created_at),
                    blob_sha256=v.blob_sha256,
                    origin=v.origin,
                )
                for v in record.versions
            ],
        )

    def as_dict(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "id": self.id,
            "name": self.name,
            "user_id": self.user_id,
            "created_at": self.created_at,
            "version": latest.version,
            "hash": latest.hash,
            "rows": latest.rows,
            "columns": latest.columns,
            "versions": [v.as_dict() for v in self.versions],
        }


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(DATA_CHUNK_BYTES):
            digest.update(piece)
    return digest.hexdigest()


async def read_pieces(path: Path) -> AsyncIterator[bytes]:
    """The file in pieces of DATA_CHUNK_BYTES, each read off the event loop."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while piece := await asyncio.to_thread(handle.read, DATA_CHUNK_BYTES):
            yield piece
    finally:
        await asyncio.to_thread(handle.close)


class Datasets:
    """The datasets and insight records of every tenant: the store, plus this host's cache."""

    def __init__(
        self,
        store: DatasetStore,
        root: Path,
        *,
        max_tenant_bytes: int,
        cache_max_bytes: int = DEFAULT_MAX_BYTES,
        cache_grace_s: float = DEFAULT_GRACE_S,
    ) -> None:
        self.store = store
        self.root = root
        self.max_tenant_bytes = max_tenant_bytes
        self.cache = ParquetCache(self.cache_dir, max_bytes=cache_max_bytes, grace_s=cache_grace_s)

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache" / "datasets"

    def scratch(self) -> Path:
        """A directory for uploads being prepared (same filesystem as the cache)."""
        path = self.cache_dir / ".incoming"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # --- datasets ------------------------------------------------------------------------------

    async def newest(self, tenant: str, *, limit: int = 50) -> list[Dataset]:
        """The tenant's datasets, newest first, at most ``limit``."""
        records = await self.store.list_datasets(tenant, limit=limit)
        return [Dataset.of(record) for record in records if record.versions]

    async def get(self, tenant: str, dataset_id: str) -> Dataset:
        check_id(dataset_id, "ds")
        found = await self.store.get_dataset(tenant, dataset_id)
        if found is None or not found.versions:
            raise NotFoundError(f"dataset '{dataset_id}' not found")
        return Dataset.of(found)

    async def version(
        self, tenant: str, dataset: Dataset, number: int | None = None
    ) -> tuple[Version, Path]:
        """A version of ``dataset`` (the latest by default) and its Parquet file in this
        host's cache, fetched from the store when the cache lacks it."""
        number = number if number is not None else dataset.latest.version
        chosen = next((v for v in dataset.versions if v.version == number), None)
        if chosen is None:
            raise NotFoundError(f"dataset '{dataset.id}' has no version {number}")
        path = await self._cached(tenant, dataset.id, chosen)
        return chosen, path

    async def _cached(self, tenant: str, dataset_id: str, version: Version) -> Path:
        if not _SHA256.match(version.blob_sha256):
            raise NotFoundError(f"dataset '{dataset_id}' has no data for version {version}")
        cached = await asyncio.to_thread(self.cache.hit, version.blob_sha256)
        if cached is not None:
            return cached
        tmp = self.scratch() / f"{version.blob_sha256}.{secrets.token_hex(4)}.tmp"
        digest = hashlib.sha256()
        size = 0
        handle = await asyncio.to_thread(tmp.open, "wb")
        try:
            async for piece in self.store.dataset_data(tenant, dataset_id, version.version):
                digest.update(piece)
                size += len(piece)
                await asyncio.to_thread(handle.write, piece)
            await asyncio.to_thread(handle.close)
            if size != version.bytes or digest.hexdigest() != version.blob_sha256:
                # Deleted (or replaced) while it was read: as good as missing.
                raise NotFoundError(f"dataset '{dataset_id}' not found")
            path = await asyncio.to_thread(self.cache.put, tmp, version.blob_sha256)
        finally:
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
        return path

    async def add_version(
        self,
        tenant: str,
        *,
        dataset_id: str | None,
        name: str | None,
        user_id: str | None,
        parquet: Path,
        digest: str,
        rows: int,
        columns: list[dict[str, str]],
        origin: dict[str, Any] | None = None,
    ) -> tuple[Dataset, bool]:
        """Store ``parquet`` as a new dataset, or as the next version of ``dataset_id`` unless
        its content equals the latest version. True when stored. The file is moved into this
        host's cache (or removed). ``origin``: where a snapshot's rows came from."""
        create = dataset_id is None
        if dataset_id is None:
            dataset_id = new_id("ds")
        else:
            check_id(dataset_id, "ds")
        size, blob = await asyncio.to_thread(lambda: (parquet.stat().st_size, file_sha256(parquet)))
        new = NewDatasetVersion(
            hash=digest,
            rows=rows,
            columns=columns,
            size=size,
            blob_sha256=blob,
            data=read_pieces(parquet),
            origin=origin,
        )
        stored = await self.store.add_dataset_version(
            tenant,
            dataset_id=dataset_id,
            name=name,
            user_id=user_id,
            new=new,
            create=create,
            max_tenant_bytes=self.max_tenant_bytes,
        )
        if stored is None:
            raise NotFoundError(f"dataset '{dataset_id}' not found")
        record, created = stored
        if created:  # this host has the file already: keep it as the cache's copy
            await asyncio.to_thread(self.cache.put, parquet, blob)
        return Dataset.of(record), created

    async def delete(self, tenant: str, dataset_id: str) -> None:
        check_id(dataset_id, "ds")
        if not await self.store.delete_dataset(tenant, dataset_id):
            raise NotFoundError(f"dataset '{dataset_id}' not found")

    # --- insight records -----------------------------------------------------------------------

    async def save_insight(self, tenant: str, record: dict[str, Any]) -> None:
        await self.store.put_insight(tenant, record)

    async def insight(self, tenant: str, insight_id: str) -> dict[str, Any]:
        check_id(insight_id, "in")
        found = await self.store.get_insight(tenant, insight_id)
        if found is None:
            raise NotFoundError(f"insight '{insight_id}' not found")
        return found

    async def insights(
        self, tenant: str, *, user_id: str | None = None, limit: int = 50
    ) -> list[InsightBrief]:
        """The newest ``limit`` records of a tenant (or of one of its users)."""
        if user_id is not None and any(ord(c) < 32 or ord(c) == 127 for c in user_id):
            # No user id holds one, and PostgreSQL refuses a NUL in a query (a 500).
            raise BadRequestError("user_id must not hold control characters")
        return await self.store.list_insights(tenant, user_id=user_id, limit=limit)

    async def earlier(
        self, tenant: str, *, dataset_id: str, question: str | None, before_version: int
    ) -> dict[str, Any] | None:
        """The record of the same question on the latest earlier version of the dataset."""
        return await self.store.earlier_insight(
            tenant, dataset_id=dataset_id, question=question, before_version=before_version
        )


def parse_format(filename: str | None, content_type: str | None, declared: str | None) -> str:
    """csv, json or parquet, from the declared format, the file name or the content type."""
    for value in (declared, Path(filename or "").suffix.lstrip("."), content_type):
        if not value:
            continue
        value = value.lower()
        for fmt in ("csv", "json", "parquet"):
            if fmt in value or (fmt == "json" and "ndjson" in value):
                return fmt
    raise BadRequestError("cannot tell the data format: name the file .csv, .json or .parquet")
