"""The upgrade path from datasets and insight records kept as files to the store.

Releases before the store held them kept, under the data dir,
``datasets/<tenant digest>/<dataset id>/meta.json`` with ``v<n>.parquet`` per version, and
``insights/<tenant digest>/<insight id>.json``, where the tenant digest is the first 24 hex
digits of the SHA-256 of the tenant's name. :func:`import_files` copies them into the store at
start-up: once (a marker file under the data dir names the database it went to, written when
nothing was left out) and idempotently (what the store has already is skipped, so a start cut
short, or several workers starting at once, import each thing once). The files are left where
they are.

A digest is matched to its tenant through the key store: every tenant that ever had a key
(keys are revoked, never deleted), and ``default``. A directory no tenant matches is logged
and left out, and tried again at the next start.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from billumy.insights.datasets import _ID, file_sha256, read_pieces
from billumy.store.base import NewDatasetVersion, Store, parse_time

log = logging.getLogger(__name__)

MARKER = "store-import.json"
# An import never refuses data that the earlier release had already accepted.
_NO_QUOTA = 2**62


@dataclass
class Imported:
    """What one import added to the store (what it already held is not counted)."""

    datasets: int = 0
    versions: int = 0
    insights: int = 0
    skipped: int = 0  # directories or files it could not place or read


def tenant_digest(tenant: str) -> str:
    """The directory name that the file layout gave a tenant."""
    return hashlib.sha256(tenant.encode()).hexdigest()[:24]


def _database_key(database_url: str) -> str:
    return hashlib.sha256(database_url.encode()).hexdigest()[:16]


def _done(root: Path, key: str) -> bool:
    try:
        return bool(orjson.loads((root / MARKER).read_bytes()).get("database") == key)
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return False


def _mark(root: Path, key: str, imported: Imported) -> None:
    marker = {"database": key, "at": datetime.now(UTC).isoformat(), **imported.__dict__}
    tmp = root / f".{MARKER}.{secrets.token_hex(4)}.tmp"
    tmp.write_bytes(orjson.dumps(marker))
    os.replace(tmp, root / MARKER)


def _tenant_dirs(base: Path) -> list[Path]:
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and len(p.name) == 24)


async def import_files(store: Store, root: Path, *, database_url: str) -> Imported | None:
    """Copy the file-based datasets and insight records under ``root`` into ``store``; None
    when there are none, or when they were imported into this database already."""
    key = _database_key(database_url)
    datasets_dirs = await asyncio.to_thread(_tenant_dirs, root / "datasets")
    insights_dirs = await asyncio.to_thread(_tenant_dirs, root / "insights")
    if not datasets_dirs and not insights_dirs:
        return None
    if await asyncio.to_thread(_done, root, key):
        return None
    tenants = {tenant_digest(t): t for t in {k.tenant for k in await store.list_keys()}}
    tenants.setdefault(tenant_digest("default"), "default")
    imported = Imported()
    for directory in datasets_dirs:
        tenant = tenants.get(directory.name)
        if tenant is None:
            log.warning("import: no tenant has the datasets in %s; left out", directory)
            imported.skipped += 1
            continue
        for dataset_dir in await asyncio.to_thread(_listing, directory, "ds_*"):
            if _ID.match(dataset_dir.name) and dataset_dir.name.startswith("ds_"):
                await _import_dataset(store, tenant, dataset_dir, imported)
    for directory in insights_dirs:
        tenant = tenants.get(directory.name)
        if tenant is None:
            log.warning("import: no tenant has the insight records in %s; left out", directory)
            imported.skipped += 1
            continue
        for path in await asyncio.to_thread(_listing, directory, "in_*.json"):
            await _import_insight(store, tenant, path, imported)
    if not imported.skipped:
        # Left-out files are tried again at the next start (a key of their tenant may exist).
        await asyncio.to_thread(_mark, root, key, imported)
    log.info(
        "import: %d datasets (%d versions) and %d insight records from %s are in the store "
        "now; %d left out",
        imported.datasets,
        imported.versions,
        imported.insights,
        root,
        imported.skipped,
    )
    return imported


def _listing(directory: Path, pattern: str) -> list[Path]:
    return sorted(directory.glob(pattern))


def _read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


async def _import_dataset(store: Store, tenant: str, directory: Path, imported: Imported) -> None:
    try:
        meta = await asyncio.to_thread(_read_json, directory / "meta.json")
        versions = sorted(meta["versions"], key=lambda v: int(v["version"]))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        log.warning("import: cannot read the dataset in %s (%s); left out", directory, exc)
        imported.skipped += 1
        return
    existing = await store.get_dataset(tenant, meta.get("id", directory.name))
    have = {v.version for v in existing.versions} if existing is not None else set()
    made = existing is not None
    for version in versions:
        number = int(version["version"])
        if number in have:
            continue
        path = directory / f"v{number}.parquet"
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
            blob = await asyncio.to_thread(file_sha256, path)
        except OSError as exc:
            log.warning("import: %s is unreadable (%s); its later versions left out", path, exc)
            imported.skipped += 1
            return
        stored = await store.add_dataset_version(
            tenant,
            dataset_id=directory.name,
            name=meta.get("name"),
            user_id=meta.get("user_id"),
            new=NewDatasetVersion(
                hash=version["hash"],
                rows=int(version["rows"]),
                columns=list(version["columns"]),
                size=size,
                blob_sha256=blob,
                data=read_pieces(path),
                created_at=parse_time(version.get("created_at")),
            ),
            create=True,
            max_tenant_bytes=_NO_QUOTA,
            created_at=parse_time(meta.get("created_at")),
        )
        if stored is not None and stored[1]:
            imported.versions += 1
            if not made:
                imported.datasets += 1
                made = True


async def _import_insight(store: Store, tenant: str, path: Path, imported: Imported) -> None:
    try:
        record = await asyncio.to_thread(_read_json, path)
    except (OSError, orjson.JSONDecodeError) as exc:
        log.warning("import: cannot read the insight record %s (%s); left out", path, exc)
        imported.skipped += 1
        return
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        log.warning("import: %s is not an insight record; left out", path)
        imported.skipped += 1
        return
    if await store.put_insight(tenant, record):
        imported.insights += 1
