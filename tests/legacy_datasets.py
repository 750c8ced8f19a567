"""FROZEN: the file-based dataset and insight store of the release before datasets moved into
the store, kept verbatim (once src/billumy/insights/datasets.py, less its parse_format) so that
tests/insights/test_importer.py can make the data dir that release wrote and check that this one
imports it. Never edit; nothing in the package imports it.

Datasets and insight records in the data dir, per tenant.

A dataset is a name and a list of versions; each version is the data as Parquet plus its
schema and content hash. Uploading data whose hash equals the latest version's returns that
version; changed data becomes the next version. Writes are atomic (temporary file, then
rename) and serialised per dataset with a file lock, so several processes on one machine can
share the data dir.

Insight records (what was asked, the facts, the insights) are JSON documents next to them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from billumy.errors import NotFoundError, PayloadTooLargeError

_ID = re.compile(r"^(ds|in)_[a-f0-9]{16}$")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


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
            "versions": [asdict(v) for v in self.versions],
        }


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class DatasetStore:
    def __init__(self, root: Path, *, max_tenant_bytes: int) -> None:
        self.root = root
        self.max_tenant_bytes = max_tenant_bytes

    def _tenant_dir(self, tenant: str, kind: str) -> Path:
        digest = hashlib.sha256(tenant.encode()).hexdigest()[:24]
        path = self.root / kind / digest
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def _locked(self, directory: Path) -> Iterator[None]:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- datasets ------------------------------------------------------------------------------

    def _read(self, directory: Path) -> Dataset:
        try:
            raw = orjson.loads((directory / "meta.json").read_bytes())
        except FileNotFoundError:
            raise NotFoundError(f"dataset '{directory.name}' not found") from None
        versions = [Version(**v) for v in raw.pop("versions")]
        return Dataset(**raw, versions=versions)

    def get(self, tenant: str, dataset_id: str) -> Dataset:
        check_id(dataset_id, "ds")
        return self._read(self._tenant_dir(tenant, "datasets") / dataset_id)

    def version(
        self, tenant: str, dataset: Dataset, number: int | None = None
    ) -> tuple[Version, Path]:
        """A version of ``dataset`` (the latest by default) and its Parquet file."""
        number = number if number is not None else dataset.latest.version
        chosen = next((v for v in dataset.versions if v.version == number), None)
        if chosen is None:
            raise NotFoundError(f"dataset '{dataset.id}' has no version {number}")
        return chosen, self._tenant_dir(tenant, "datasets") / dataset.id / f"v{number}.parquet"

    def tenant_bytes(self, tenant: str) -> int:
        base = self._tenant_dir(tenant, "datasets")
        return sum(p.stat().st_size for p in base.glob("*/v*.parquet"))

    def add_version(
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
    ) -> tuple[Dataset, bool]:
        """Store ``parquet`` (moved in) as a new dataset, or as the next version of
        ``dataset_id`` unless its content equals the latest version. True when stored."""
        size = parquet.stat().st_size
        if self.tenant_bytes(tenant) + size > self.max_tenant_bytes:
            raise PayloadTooLargeError(
                f"this tenant's datasets would exceed {self.max_tenant_bytes} bytes; "
                "delete some first"
            )
        base = self._tenant_dir(tenant, "datasets")
        if dataset_id is None:
            dataset_id = new_id("ds")
            dataset = Dataset(
                id=dataset_id,
                name=name or dataset_id,
                user_id=user_id,
                created_at=_now(),
                versions=[],
            )
        else:
            check_id(dataset_id, "ds")
            dataset = self._read(base / dataset_id)
        directory = base / dataset_id
        with self._locked(directory):
            if dataset.versions:
                dataset = self._read(directory)  # another process may have added one
                if dataset.latest.hash == digest:
                    parquet.unlink(missing_ok=True)
                    return dataset, False
            number = dataset.versions[-1].version + 1 if dataset.versions else 1
            shutil.move(str(parquet), directory / f"v{number}.parquet")
            dataset.versions.append(
                Version(version=number, hash=digest, rows=rows, columns=columns, bytes=size)
            )
            if name:
                dataset.name = name
            meta = asdict(dataset)
            _write_atomic(directory / "meta.json", orjson.dumps(meta))
        return dataset, True

    def delete(self, tenant: str, dataset_id: str) -> None:
        check_id(dataset_id, "ds")
        directory = self._tenant_dir(tenant, "datasets") / dataset_id
        if not (directory / "meta.json").exists():
            raise NotFoundError(f"dataset '{dataset_id}' not found")
        shutil.rmtree(directory)

    def scratch(self) -> Path:
        """A directory for uploads being prepared (same filesystem as the datasets)."""
        path = self.root / "datasets" / ".incoming"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # --- insight records -----------------------------------------------------------------------

    def save_insight(self, tenant: str, record: dict[str, Any]) -> None:
        path = self._tenant_dir(tenant, "insights") / f"{record['id']}.json"
        _write_atomic(path, orjson.dumps(record))

    def insight(self, tenant: str, insight_id: str) -> dict[str, Any]:
        check_id(insight_id, "in")
        path = self._tenant_dir(tenant, "insights") / f"{insight_id}.json"
        try:
            record: dict[str, Any] = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise NotFoundError(f"insight '{insight_id}' not found") from None
        return record

    def insights(
        self, tenant: str, *, user_id: str | None = None, dataset_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Records of a tenant (of one user or dataset), newest first."""
        records = []
        for path in self._tenant_dir(tenant, "insights").glob("in_*.json"):
            try:
                record = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue
            if user_id is not None and record.get("user_id") != user_id:
                continue
            if dataset_id is not None and (record.get("dataset") or {}).get("id") != dataset_id:
                continue
            records.append(record)
        records.sort(key=lambda r: str(r.get("created_at", "")), reverse=True)
        return records
