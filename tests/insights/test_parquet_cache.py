"""This host's cache of dataset Parquet files is bounded: past ``max_bytes`` the least recently
used files go (never the one just used, nor those used within the grace period), and a version
whose file went is fetched again from the store, byte for byte."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path

from billumy.insights.datasets import Datasets
from billumy.insights.parquet_cache import ParquetCache
from billumy.store.base import Store
from tests.store.test_contract import TENANT, with_store


def _file(directory: Path, size: int) -> tuple[Path, str]:
    """A file of ``size`` random bytes outside the cache, and their SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    content = secrets.token_bytes(size)
    path = directory / f"{secrets.token_hex(4)}.tmp"
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


def _age(path: Path, seconds_ago: float) -> None:
    when = time.time() - seconds_ago
    os.utime(path, (when, when))


def test_the_least_recently_used_files_go_past_the_bound(tmp_path: Path) -> None:
    cache = ParquetCache(tmp_path / "cache", max_bytes=2500, grace_s=0)
    # What else is in the directory (the scratch dir of uploads) is neither counted nor removed.
    (tmp_path / "cache" / ".incoming").mkdir(parents=True)
    (tmp_path / "cache" / ".incoming" / "upload.parquet").write_bytes(b"x" * 10_000)
    (tmp_path / "cache" / "notes.txt").write_bytes(b"x" * 10_000)
    incoming = tmp_path / "incoming"
    names = {}
    for label, age in (("a", 300), ("b", 200), ("c", 100)):
        source, blob = _file(incoming, 1000)
        names[label] = blob
        _age(cache.put(source, blob), age)  # used `age` seconds ago
    # The third file of 1000 bytes passed the bound: the least recently used, "a", went.
    assert sorted(p.name for p in (tmp_path / "cache").glob("*.parquet")) == sorted(
        f"{names[k]}.parquet" for k in ("b", "c")
    )
    # Use "b" now: "c" is then the least recently used, and goes at the next put, not "b".
    assert cache.hit(names["b"]) == cache.path(names["b"])
    source, names["d"] = _file(incoming, 1000)
    cache.put(source, names["d"])
    assert cache.hit(names["c"]) is None
    assert cache.hit(names["a"]) is None
    assert cache.hit(names["b"]) is not None and cache.hit(names["d"]) is not None
    assert (tmp_path / "cache" / "notes.txt").is_file()
    assert (tmp_path / "cache" / ".incoming" / "upload.parquet").is_file()


def test_the_file_just_used_and_files_in_their_grace_period_stay(tmp_path: Path) -> None:
    cache = ParquetCache(tmp_path / "cache", max_bytes=0, grace_s=3600)
    first = cache.put(*_file(tmp_path / "in", 500))
    second = cache.put(*_file(tmp_path / "in", 500))
    assert first.is_file() and second.is_file()  # both used within the hour
    _age(first, 7200)
    assert cache.evict() == [first]
    assert not first.exists()
    # Alone and past the bound, the file just put stays.
    lone = ParquetCache(tmp_path / "lone", max_bytes=0, grace_s=0)
    kept = lone.put(*_file(tmp_path / "in", 500))
    assert kept.is_file()
    assert lone.evict() == [kept]  # until something else is used


def test_datasets_keep_their_cache_bounded_and_fetch_what_went(tmp_path: Path) -> None:
    url = "sqlite+aiosqlite:///" + str(tmp_path / "store.db")
    size = 300_000  # one piece of the store's chunks, and a part of the next

    async def body(store: Store) -> None:
        datasets = Datasets(
            store,
            tmp_path / "host",
            max_tenant_bytes=10**9,
            cache_max_bytes=2 * size,
            cache_grace_s=0,
        )
        uploaded: list[tuple[str, bytes]] = []
        for n in range(3):
            source, _ = _file(datasets.scratch(), size)
            content = source.read_bytes()
            dataset, created = await datasets.add_version(
                TENANT,
                dataset_id=None,
                name=f"d{n}",
                user_id=None,
                parquet=source,
                digest=hashlib.sha256(f"table {n}".encode()).hexdigest(),
                rows=1,
                columns=[{"name": "x", "type": "BLOB"}],
            )
            assert created
            uploaded.append((dataset.id, content))
            _age(datasets.cache.path(dataset.latest.blob_sha256), 100 - n)
        cached = [p for p in datasets.cache_dir.iterdir() if p.suffix == ".parquet"]
        assert sum(p.stat().st_size for p in cached) <= 2 * size
        first_id, first_content = uploaded[0]
        first = await datasets.get(TENANT, first_id)
        assert not datasets.cache.path(first.latest.blob_sha256).exists()  # evicted
        # Asked again: fetched from the store, the same bytes; the bound still holds.
        _, path = await datasets.version(TENANT, first)
        assert path.read_bytes() == first_content
        cached = [p for p in datasets.cache_dir.iterdir() if p.suffix == ".parquet"]
        assert path in cached and len(cached) == 2
        second = await datasets.get(TENANT, uploaded[1][0])
        assert not datasets.cache.path(second.latest.blob_sha256).exists()  # now the oldest

    with_store(url, body)
