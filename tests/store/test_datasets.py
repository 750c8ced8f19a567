"""Contract tests of the DatasetStore half of every store adapter: SQLite, PostgreSQL, MongoDB.

Datasets with their versions and chunked data, the tenants' storage quota under concurrent
writers, and insight records listed newest first. The fixtures (a fresh database per test)
are those of tests/store/test_contract.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from billumy.errors import BadRequestError, PayloadTooLargeError
from billumy.store.base import DATA_CHUNK_BYTES, NewDatasetVersion, Store
from tests.store.test_contract import (
    BASE_TIME,
    OTHER_TENANT,
    TENANT,
    pg_user,  # noqa: F401 (the fixture store_url asks for)
    store_url,  # noqa: F401 (a fixture)
    with_store,
    with_stores,
)

BIG = 10**12


async def pieces(data: bytes, size: int = DATA_CHUNK_BYTES) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def version_of(data: bytes, content: str = "h1", **extra: Any) -> NewDatasetVersion:
    return NewDatasetVersion(
        hash=hashlib.sha256(content.encode()).hexdigest(),
        rows=3,
        columns=[{"name": "loja", "type": "VARCHAR"}, {"name": "vendas", "type": "BIGINT"}],
        size=len(data),
        blob_sha256=hashlib.sha256(data).hexdigest(),
        data=pieces(data),
        **extra,
    )


async def read_all(store: Store, tenant: str, dataset_id: str, version: int) -> bytes:
    return b"".join([p async for p in store.dataset_data(tenant, dataset_id, version)])


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def test_versions_and_their_data_round_trip(store_url: str) -> None:  # noqa: F811
    first = secrets.token_bytes(DATA_CHUNK_BYTES * 2 + 12345)  # three pieces
    second = secrets.token_bytes(1000)
    did = new_id("ds")

    async def body(store: Store) -> None:
        made = await store.add_dataset_version(
            TENANT,
            dataset_id=did,
            name="vendas.csv",
            user_id="ana",
            new=version_of(first, "a"),
            create=True,
            max_tenant_bytes=BIG,
            created_at=BASE_TIME,
        )
        assert made is not None
        dataset, created = made
        assert created
        assert (dataset.id, dataset.tenant, dataset.name, dataset.user_id) == (
            did,
            TENANT,
            "vendas.csv",
            "ana",
        )
        assert dataset.created_at == BASE_TIME
        assert [(v.version, v.bytes) for v in dataset.versions] == [(1, len(first))]
        assert dataset.versions[0].columns[1] == {"name": "vendas", "type": "BIGINT"}
        assert await read_all(store, TENANT, did, 1) == first
        # The same content again: nothing stored, the dataset as it is.
        same = await store.add_dataset_version(
            TENANT,
            dataset_id=did,
            name=None,
            user_id=None,
            new=version_of(b"other bytes, same table", "a"),
            create=False,
            max_tenant_bytes=BIG,
        )
        assert same == (dataset, False)
        # Changed content: version 2, renamed.
        grown = await store.add_dataset_version(
            TENANT,
            dataset_id=did,
            name="v2.csv",
            user_id=None,
            new=version_of(second, "b"),
            create=False,
            max_tenant_bytes=BIG,
        )
        assert grown is not None
        assert grown[1] is True
        assert grown[0].name == "v2.csv"
        assert [v.version for v in grown[0].versions] == [1, 2]
        assert await store.get_dataset(TENANT, did) == grown[0]
        assert await read_all(store, TENANT, did, 2) == second
        assert await read_all(store, TENANT, did, 1) == first
        assert await store.dataset_bytes(TENANT) == len(first) + len(second)
        # Another tenant sees nothing of it, and can neither extend nor delete it.
        assert await store.get_dataset(OTHER_TENANT, did) is None
        assert await read_all(store, OTHER_TENANT, did, 1) == b""
        assert await store.delete_dataset(OTHER_TENANT, did) is False
        missing = await store.add_dataset_version(
            OTHER_TENANT,
            dataset_id=did,
            name=None,
            user_id=None,
            new=version_of(b"x", "c"),
            create=False,
            max_tenant_bytes=BIG,
        )
        assert missing is None
        # Deleting frees the storage, and the data goes with it.
        assert await store.delete_dataset(TENANT, did) is True
        assert await store.get_dataset(TENANT, did) is None
        assert await read_all(store, TENANT, did, 1) == b""
        assert await store.dataset_bytes(TENANT) == 0
        assert await store.delete_dataset(TENANT, did) is False

    with_store(store_url, body)


def test_a_version_keeps_where_it_came_from(store_url: str) -> None:  # noqa: F811
    """A snapshot's version records its source, table and filter; an upload's records none."""
    did = new_id("ds")
    origin = {
        "source": "shop",
        "table": "public.vendas_pedido",
        "filter": [{"column": "criado_em", "op": "between", "value": ["2024-03-01", "2024-03-31"]}],
        "columns": ["id", "valor"],
        "masked": ["cliente_email"],
    }

    async def body(store: Store) -> None:
        for content, kept in (("a", origin), ("b", None)):
            made = await store.add_dataset_version(
                TENANT,
                dataset_id=did,
                name=None,
                user_id=None,
                new=version_of(b"rows " + content.encode(), content, origin=kept),
                create=True,
                max_tenant_bytes=BIG,
            )
            assert made is not None and made[1]
        found = await store.get_dataset(TENANT, did)
        assert found is not None
        assert [v.origin for v in found.versions] == [origin, None]
        listed = await store.list_datasets(TENANT)
        assert [v.origin for v in listed[0].versions] == [origin, None]

    with_store(store_url, body)


def test_data_that_is_not_what_was_described_is_not_stored(store_url: str) -> None:  # noqa: F811
    did = new_id("ds")

    async def body(store: Store) -> None:
        lying = version_of(b"abc")
        lying.size = 4
        with pytest.raises(BadRequestError):
            await store.add_dataset_version(
                TENANT,
                dataset_id=did,
                name=None,
                user_id=None,
                new=lying,
                create=True,
                max_tenant_bytes=BIG,
            )
        assert await store.get_dataset(TENANT, did) is None
        assert await store.dataset_bytes(TENANT) == 0

    with_store(store_url, body)


def test_the_quota_holds_under_concurrent_uploads(store_url: str) -> None:  # noqa: F811
    size = 300_000
    # Room for three of the eight uploads, made at once through two stores (two "hosts").

    async def body(one: Store, two: Store) -> None:
        async def upload(store: Store, n: int) -> bool:
            try:
                made = await store.add_dataset_version(
                    TENANT,
                    dataset_id=new_id("ds"),
                    name=None,
                    user_id=None,
                    new=version_of(secrets.token_bytes(size), f"c{n}"),
                    create=True,
                    max_tenant_bytes=3 * size + 10,
                )
            except PayloadTooLargeError:
                return False
            assert made is not None
            return made[1]

        results = await asyncio.gather(*(upload((one, two)[n % 2], n) for n in range(8)))
        assert sorted(results) == [False] * 5 + [True] * 3
        assert await one.dataset_bytes(TENANT) == 3 * size
        # Other tenants have their own quota.
        assert await upload_for(two, OTHER_TENANT, size)

    async def upload_for(store: Store, tenant: str, size: int) -> bool:
        made = await store.add_dataset_version(
            tenant,
            dataset_id=new_id("ds"),
            name=None,
            user_id=None,
            new=version_of(secrets.token_bytes(size)),
            create=True,
            max_tenant_bytes=size,
        )
        return made is not None and made[1]

    with_stores(store_url, 2, body)


def test_concurrent_same_content_makes_one_version(store_url: str) -> None:  # noqa: F811
    did = new_id("ds")
    data = secrets.token_bytes(5000)

    async def body(one: Store, two: Store) -> None:
        await one.add_dataset_version(
            TENANT,
            dataset_id=did,
            name=None,
            user_id=None,
            new=version_of(b"first", "v1"),
            create=True,
            max_tenant_bytes=BIG,
        )

        async def again(store: Store) -> bool:
            made = await store.add_dataset_version(
                TENANT,
                dataset_id=did,
                name=None,
                user_id=None,
                new=version_of(data, "v2"),
                create=False,
                max_tenant_bytes=BIG,
            )
            assert made is not None
            return made[1]

        assert sorted(await asyncio.gather(*(again(s) for s in (one, two, one, two)))) == [
            False,
            False,
            False,
            True,
        ]
        found = await two.get_dataset(TENANT, did)
        assert found is not None
        assert [v.version for v in found.versions] == [1, 2]

    with_stores(store_url, 2, body)


def record(n: int, *, user: str = "ana", dataset: dict[str, Any] | None = None) -> dict[str, Any]:
    when = (BASE_TIME + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
    return {
        "id": new_id("in"),
        "created_at": when,
        "user_id": user,
        "question": f"question {n % 2}",
        "language": "pt",
        "dataset": dataset or {"hash": "h"},
        "summary": f"summary {n}",
        # Key order and odd names survive (column names become keys of values).
        "facts": [{"id": "f1", "values": {"z.b": 1, "$a": 2, "a": None}}],
    }


def test_insight_records_newest_first(store_url: str) -> None:  # noqa: F811
    records = [record(n, user="ana" if n % 3 else "bia") for n in range(12)]

    async def body(store: Store) -> None:
        for r in reversed(records):
            assert await store.put_insight(TENANT, r) is True
        assert await store.put_insight(TENANT, records[0]) is False  # stored once
        got = await store.get_insight(TENANT, records[5]["id"])
        assert got == records[5]
        assert got is not None
        assert list(got) == list(records[5])
        assert list(got["facts"][0]["values"]) == ["z.b", "$a", "a"]
        assert await store.get_insight(OTHER_TENANT, records[5]["id"]) is None
        newest = await store.list_insights(TENANT, limit=4)
        assert [b.id for b in newest] == [r["id"] for r in records[::-1][:4]]
        assert newest[0].as_dict() == {
            k: records[-1][k]
            for k in ("id", "created_at", "user_id", "question", "dataset", "summary", "language")
        }
        bia = await store.list_insights(TENANT, user_id="bia", limit=50)
        assert [b.id for b in bia] == [r["id"] for r in records[::-1] if r["user_id"] == "bia"]
        assert await store.list_insights(OTHER_TENANT) == []

    with_store(store_url, body)


def test_the_earlier_record_of_a_question(store_url: str) -> None:  # noqa: F811
    def on(version: int, n: int, question: str | None) -> dict[str, Any]:
        made = record(n, dataset={"id": "ds_0123456789abcdef", "version": version, "hash": "h"})
        made["question"] = question
        return made

    v1_old, v1_new, v2, v3 = on(1, 0, "q"), on(1, 1, "q"), on(2, 2, "q"), on(3, 3, "q")
    none_asked = on(1, 4, None)

    async def body(store: Store) -> None:
        for r in (v1_old, v1_new, v2, v3, none_asked, on(1, 5, "other")):
            await store.put_insight(TENANT, r)

        async def earlier(question: str | None, before: int, tenant: str = TENANT) -> Any:
            found = await store.earlier_insight(
                tenant, dataset_id="ds_0123456789abcdef", question=question, before_version=before
            )
            return None if found is None else found["id"]

        assert await earlier("q", 3) == v2["id"]
        assert await earlier("q", 2) == v1_new["id"]
        assert await earlier("q", 1) is None
        assert await earlier(None, 2) == none_asked["id"]
        assert await earlier("q", 3, OTHER_TENANT) is None

    with_store(store_url, body)


def test_a_tenants_datasets_listed_newest_first(store_url: str) -> None:  # noqa: F811
    ids = [new_id("ds") for _ in range(3)]

    async def body(store: Store) -> None:
        assert await store.list_datasets(TENANT) == []
        for n, did in enumerate(ids):
            tenant = OTHER_TENANT if n == 1 else TENANT
            await store.add_dataset_version(
                tenant,
                dataset_id=did,
                name=f"set{n}.csv",
                user_id=None,
                new=version_of(b"data %d" % n, f"c{n}"),
                create=True,
                max_tenant_bytes=BIG,
                created_at=BASE_TIME + timedelta(minutes=n),
            )
        await store.add_dataset_version(
            TENANT,
            dataset_id=ids[0],
            name=None,
            user_id=None,
            new=version_of(b"data again", "c9"),
            create=False,
            max_tenant_bytes=BIG,
        )
        listed = await store.list_datasets(TENANT)
        assert [d.id for d in listed] == [ids[2], ids[0]]
        assert [v.version for v in listed[1].versions] == [1, 2]
        assert listed[1] == await store.get_dataset(TENANT, ids[0])
        assert [d.id for d in await store.list_datasets(TENANT, limit=1)] == [ids[2]]
        assert [d.id for d in await store.list_datasets(OTHER_TENANT)] == [ids[1]]

    with_store(store_url, body)
