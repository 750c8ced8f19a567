"""This host's Parquet files of datasets, named by the SHA-256 of their bytes, bounded in size.

The files are a cache of what the store holds (see :mod:`billumy.insights.datasets`): any of
them may go at any time, and costs only a fetch. A file's modification time is the time it was
last used (its bytes never change once in place), so eviction is least-recently-used across
every process on the data dir. Files used within ``grace_s`` are kept even past the bound: a
request (of this process or another worker) may have been handed the path and not opened it
yet. A file already open is safe anyway: removing it unlinks the name, not the data.

Every method blocks on the filesystem; callers run them in a worker thread.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# A safe bound for a laptop's data dir: twenty of the largest uploads (50 MB by default).
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
DEFAULT_GRACE_S = 60.0
_SUFFIX = ".parquet"


@dataclass(frozen=True)
class _Entry:
    path: Path
    size: int
    used: float


class ParquetCache:
    """Files ``<sha256>.parquet`` in ``directory``, at most ``max_bytes`` of them in all
    (beside those used within ``grace_s`` seconds)."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        grace_s: float = DEFAULT_GRACE_S,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.grace_s = grace_s

    def path(self, blob_sha256: str) -> Path:
        return self.directory / f"{blob_sha256}{_SUFFIX}"

    def hit(self, blob_sha256: str) -> Path | None:
        """The cached file, marked as just used; None when this host lacks it."""
        path = self.path(blob_sha256)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def put(self, source: Path, blob_sha256: str) -> Path:
        """Move ``source`` (a file on the same filesystem) into the cache as ``blob_sha256``,
        then evict the least recently used files past the bound (never this one)."""
        path = self.path(blob_sha256)
        self.directory.mkdir(parents=True, exist_ok=True)
        os.replace(source, path)
        os.utime(path)
        self.evict(keep=path)
        return path

    def evict(self, *, keep: Path | None = None) -> list[Path]:
        """Remove the least recently used files until the cache fits ``max_bytes``; the files
        removed. ``keep`` and files used within ``grace_s`` stay."""
        entries = self._entries()
        total = sum(e.size for e in entries)
        if total <= self.max_bytes:
            return []
        now = time.time()
        removed = []
        for entry in sorted(entries, key=lambda e: e.used):
            if total <= self.max_bytes:
                break
            if entry.path == keep or now - entry.used < self.grace_s:
                continue
            entry.path.unlink(missing_ok=True)  # another process may have removed it first
            total -= entry.size
            removed.append(entry.path)
        if removed:
            log.info(
                "dataset cache: evicted %d file(s), %d bytes kept (bound %d)",
                len(removed),
                total,
                self.max_bytes,
            )
        return removed

    def _entries(self) -> list[_Entry]:
        entries = []
        try:
            scan = os.scandir(self.directory)
        except FileNotFoundError:
            return []
        with scan:
            for item in scan:
                if not item.name.endswith(_SUFFIX):
                    continue
                try:
                    if not item.is_file(follow_symlinks=False):
                        continue
                    stat = item.stat(follow_symlinks=False)
                except FileNotFoundError:  # evicted by another process meanwhile
                    continue
                entries.append(_Entry(Path(item.path), stat.st_size, stat.st_mtime))
        return entries
