"""Contract tests for the SQL store (keys and models), run against SQLite and PostgreSQL.

PostgreSQL runs at 127.0.0.1:5432 with trust auth (see DESIGN.md). Each PostgreSQL test gets a
freshly created database that is dropped afterwards. When the server is unreachable the
PostgreSQL cases skip, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest

from billumy.auth import hash_key
from billumy.errors import BadRequestError
from billumy.store.base import ApiKeyRecord, ModelRecord
from billumy.store.sql import SQLStore

T = TypeVar("T")

PG_HOST = "127.0.0.1:5432"
PG_USERS = ("postgres", "root")


async def _pg_admin() -> tuple[asyncpg.Connection, str]:
    """A connection to the ``test`` database, as the first user that trust auth lets in."""
    errors = []
    for user in PG_USERS:
        try:
            conn = await asyncpg.connect(f"postgresql://{user}@{PG_HOST}/test", timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            errors.append(f"{user}: {exc!r}")
            continue
        return conn, user
    raise ConnectionError("; ".join(errors))


@pytest.fixture(scope="session")
def pg_user() -> str:
    async def probe() -> str:
        conn, user = await _pg_admin()
        await conn.close()
        return user

    try:
        return asyncio.run(probe())
    except ConnectionError as exc:
        reason = f"PostgreSQL at {PG_HOST} (database 'test') is unreachable: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite+aiosqlite:///" + str(tmp_path / "store.db")
        return
    user = request.getfixturevalue("pg_user")
    name = f"billumy_test_{secrets.token_hex(6)}"

    async def admin(sql: str) -> None:
        conn, _ = await _pg_admin()
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://{user}@{PG_HOST}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def with_store(url: str, body: Callable[[SQLStore], Awaitable[T]]) -> T:
    """Run ``body`` with a ready store in one event loop, then close the store."""

    async def main() -> T:
        store = SQLStore(url)
        await store.ainit()
        try:
            return await body(store)
        finally:
            await store.aclose()

    return asyncio.run(main())


BASE_TIME = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def key_record(name: str, *, n: int = 0, tenant: str = "default") -> ApiKeyRecord:
    key = f"bk_{name}-{n}-{secrets.token_hex(8)}"
    return ApiKeyRecord(
        id=secrets.token_hex(8),
        name=name,
        prefix=key[:8],
        key_hash=hash_key(key),
        tenant=tenant,
        scopes=["admin", "inference"] if n % 2 else ["inference"],
        created_at=BASE_TIME + timedelta(seconds=n),
    )


def test_ping_and_ainit_is_idempotent(store_url: str) -> None:
    assert with_store(store_url, lambda store: store.ping()) is True
    # A second start on the same database must not fail on existing tables.
    assert with_store(store_url, lambda store: store.ping()) is True

    async def closed(store: SQLStore) -> bool:
        await store.aclose()
        return await store.ping()

    assert with_store(store_url, closed) is False


def test_add_list_and_lookup_keys(store_url: str) -> None:
    records = [key_record("b", n=2), key_record("a", n=0, tenant="acme"), key_record("c", n=1)]

    async def body(store: SQLStore) -> None:
        assert await store.list_keys() == []
        assert await store.count_active_keys() == 0
        for record in records:
            await store.add_key(record)
        listed = await store.list_keys()
        # Ordered by creation time, and every field round-trips (datetimes stay UTC-aware).
        assert listed == sorted(records, key=lambda r: r.created_at)
        assert all(r.created_at.tzinfo is not None for r in listed)
        found = await store.key_by_hash(records[1].key_hash)
        assert found == records[1]
        assert found is not None
        assert found.tenant == "acme"
        assert await store.key_by_hash(hash_key("bk_unknown")) is None
        assert await store.count_active_keys() == 3

    with_store(store_url, body)
    # Persisted: a new store on the same database sees the same keys.
    assert len(with_store(store_url, lambda store: store.list_keys())) == 3


def test_duplicate_key_hash_is_rejected(store_url: str) -> None:
    original = key_record("first")
    clash = ApiKeyRecord(
        id=secrets.token_hex(8),
        name="second",
        prefix=original.prefix,
        key_hash=original.key_hash,
        tenant="other",
        scopes=["admin"],
        created_at=BASE_TIME,
    )

    async def body(store: SQLStore) -> None:
        await store.add_key(original)
        with pytest.raises(BadRequestError, match="already registered"):
            await store.add_key(clash)
        assert await store.list_keys() == [original]
        assert await store.key_by_hash(original.key_hash) == original

    with_store(store_url, body)


def test_revoke_by_id_and_by_name(store_url: str) -> None:
    by_id, by_name, kept = key_record("one", n=0), key_record("two", n=1), key_record("three", n=2)

    async def body(store: SQLStore) -> None:
        for record in (by_id, by_name, kept):
            await store.add_key(record)

        revoked = await store.revoke_key(by_id.id)
        assert revoked is not None
        assert revoked.id == by_id.id
        assert revoked.revoked_at is not None
        assert revoked.revoked_at.tzinfo is not None
        assert not revoked.active
        assert await store.count_active_keys() == 2

        revoked_by_name = await store.revoke_key("two")
        assert revoked_by_name is not None
        assert revoked_by_name.id == by_name.id
        assert await store.count_active_keys() == 1

        # Revoking again keeps the first revocation time.
        again = await store.revoke_key(by_id.id)
        assert again is not None
        assert again.revoked_at == revoked.revoked_at

        assert await store.revoke_key("nobody") is None
        still = await store.key_by_hash(kept.key_hash)
        assert still is not None
        assert still.active
        stored = await store.key_by_hash(by_id.key_hash)
        assert stored is not None
        assert not stored.active

    with_store(store_url, body)


def test_revoke_by_ambiguous_name_is_an_error(store_url: str) -> None:
    first, second = key_record("deploy", n=0), key_record("deploy", n=1)

    async def body(store: SQLStore) -> None:
        await store.add_key(first)
        await store.add_key(second)
        with pytest.raises(BadRequestError, match="several keys are named 'deploy'"):
            await store.revoke_key("deploy")
        # Nothing was revoked; the id still disambiguates.
        assert await store.count_active_keys() == 2
        revoked = await store.revoke_key(second.id)
        assert revoked is not None
        assert revoked.id == second.id
        assert await store.count_active_keys() == 1

    with_store(store_url, body)


def test_touch_key(store_url: str) -> None:
    record, other = key_record("used"), key_record("unused", n=1)
    when = datetime(2026, 5, 6, 7, 8, 9, 654321, tzinfo=UTC)

    async def body(store: SQLStore) -> None:
        await store.add_key(record)
        await store.add_key(other)
        await store.touch_key(record.id, when)
        touched = await store.key_by_hash(record.key_hash)
        assert touched is not None
        assert touched.last_used_at == when
        untouched = await store.key_by_hash(other.key_hash)
        assert untouched is not None
        assert untouched.last_used_at is None
        await store.touch_key("no-such-id", when)  # a no-op, not an error

    with_store(store_url, body)


def test_models_put_get_list_delete(store_url: str) -> None:
    definition = {
        "from": "billumy",
        "base": "smollm2-135m:latest",
        "system": "Você é Billumy, um assistente de análise de dados.",
        "template": None,
        "parameters": {"temperature": 0.7, "num_ctx": 1024, "stop": ["<|im_end|>"]},
        "messages": [{"role": "user", "content": "olá"}],
        "license": None,
    }

    async def body(store: SQLStore) -> None:
        assert await store.list_models() == []
        assert await store.get_model("analyst:latest") is None
        await store.put_model(ModelRecord(name="zeta:latest", definition={"base": "x"}))
        await store.put_model(ModelRecord(name="analyst:latest", definition=definition))
        got = await store.get_model("analyst:latest")
        assert got is not None
        assert got.definition == definition
        assert got.created_at is not None
        assert got.created_at.tzinfo is not None
        assert got.modified_at is not None
        assert [m.name for m in await store.list_models()] == ["analyst:latest", "zeta:latest"]

        # put replaces the definition of an existing name.
        await store.put_model(
            ModelRecord(name="analyst:latest", definition={**definition, "system": "new"})
        )
        replaced = await store.get_model("analyst:latest")
        assert replaced is not None
        assert replaced.definition["system"] == "new"
        assert len(await store.list_models()) == 2

        assert await store.delete_model("zeta:latest") is True
        assert await store.delete_model("zeta:latest") is False
        assert await store.get_model("zeta:latest") is None

    with_store(store_url, body)
    remaining = with_store(store_url, lambda store: store.list_models())
    assert [m.name for m in remaining] == ["analyst:latest"]
    assert remaining[0].definition["parameters"] == definition["parameters"]
