"""Contract tests for the stores, run against every adapter: SQLite, PostgreSQL and MongoDB.

PostgreSQL runs at 127.0.0.1:5432 with trust auth (see DESIGN.md). Each PostgreSQL test gets a
freshly created database that is dropped afterwards. When the server is unreachable the
PostgreSQL cases skip, except under CI (``CI`` set), where they fail.

MongoDB cases run when ``BILLUMY_TEST_MONGO_URL`` names a server; each test gets a freshly
named database that is dropped afterwards.

The tests at the end (FTS index consistency) are about the SQL adapter only; the SQL schema's
revisions and upgrades are tested in tests/store/test_schema.py.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from bson.errors import InvalidDocument
from pymongo import AsyncMongoClient
from sqlalchemy import text
from sqlalchemy.exc import StatementError

from billumy.auth import hash_key
from billumy.errors import BadRequestError
from billumy.store import open_store, sql_chats
from billumy.store.base import (
    SHARED,
    ApiKeyRecord,
    Chat,
    ChatPage,
    ModelRecord,
    NewMessage,
    Store,
    UsageRecord,
)
from billumy.store.mongo import MongoStore, database_name
from billumy.store.sql import SQLStore

T = TypeVar("T")

PG_HOST = "127.0.0.1:5432"
PG_USERS = ("postgres", "root")
MONGO_ENV = "BILLUMY_TEST_MONGO_URL"


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


def _pg_database(user: str) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped (with its connections) at the end."""
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


def _mongo_database() -> Iterator[str]:
    """A fresh, uniquely named database on the MongoDB server of BILLUMY_TEST_MONGO_URL."""
    base = os.environ.get(MONGO_ENV)
    if not base:
        pytest.skip(f"MongoDB tests need {MONGO_ENV} (no MongoDB server on this machine)")
    name = f"billumy_test_{secrets.token_hex(6)}"
    parts = urlsplit(base)
    query = parts.query
    # Credentials are checked against the URL's database unless authSource says otherwise.
    if "@" in parts.netloc and "authsource=" not in query.lower():
        source = parts.path.strip("/") or "admin"
        query = f"{query}&authSource={source}" if query else f"authSource={source}"
    url = urlunsplit(parts._replace(path="/" + name, query=query))

    async def drop() -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(base)
        try:
            await client.drop_database(name)
        finally:
            await client.close()

    try:
        yield url
    finally:
        asyncio.run(drop())


@pytest.fixture(params=["sqlite", "postgresql", "mongodb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite+aiosqlite:///" + str(tmp_path / "store.db")
    elif request.param == "postgresql":
        yield from _pg_database(request.getfixturevalue("pg_user"))
    else:
        yield from _mongo_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite+aiosqlite:///" + str(tmp_path / "store.db")
    else:
        yield from _pg_database(request.getfixturevalue("pg_user"))


def with_stores(url: str, count: int, body: Callable[..., Awaitable[T]]) -> T:
    """Run ``body(*stores)`` with ``count`` ready stores on one database (as if in separate
    processes), in one event loop, then close them."""

    async def main() -> T:
        stores = [open_store(url) for _ in range(count)]
        try:
            for store in stores:
                await store.ainit()
            return await body(*stores)
        finally:
            for store in stores:
                await store.aclose()

    return asyncio.run(main())


def with_store(url: str, body: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``body`` with a ready store in one event loop, then close the store."""
    return with_stores(url, 1, body)


BASE_TIME = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
TENANT, OTHER_TENANT = "acme", "globex"


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


def new_chat(
    chat_id: str,
    *,
    tenant: str = TENANT,
    user_id: str = "ana",
    at: float = 0,
    title: str | None = None,
    tags: Sequence[str] = (),
    archived: bool = False,
    metadata: dict[str, Any] | None = None,
) -> Chat:
    when = BASE_TIME + timedelta(seconds=at)
    return Chat(
        id=chat_id,
        tenant=tenant,
        user_id=user_id,
        model="smollm2-135m:latest",
        created_at=when,
        updated_at=when,
        title=title,
        tags=list(tags),
        metadata=metadata or {},
        archived=archived,
    )


def user(content: str) -> NewMessage:
    return NewMessage(role="user", content=content)


def answer(content: str, **stats: int) -> NewMessage:
    return NewMessage(
        role="assistant",
        content=content,
        model="smollm2-135m:latest",
        done_reason="stop",
        stats=stats,
    )


# keys and models


def test_ping_and_ainit_is_idempotent(store_url: str) -> None:
    assert with_store(store_url, lambda store: store.ping()) is True
    # A second start on the same database must not fail on existing tables.
    assert with_store(store_url, lambda store: store.ping()) is True

    async def closed(store: Store) -> bool:
        await store.aclose()
        return await store.ping()

    assert with_store(store_url, closed) is False


def test_add_list_and_lookup_keys(store_url: str) -> None:
    records = [key_record("b", n=2), key_record("a", n=0, tenant="acme"), key_record("c", n=1)]

    async def body(store: Store) -> None:
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
        # Many at once (the authenticator's batched lookups): the stored ones, by hash.
        asked = [records[0].key_hash, hash_key("bk_unknown"), records[2].key_hash]
        assert await store.keys_by_hashes(asked) == {
            records[0].key_hash: records[0],
            records[2].key_hash: records[2],
        }
        assert await store.keys_by_hashes([hash_key("bk_unknown")]) == {}

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

    async def body(store: Store) -> None:
        await store.add_key(original)
        with pytest.raises(BadRequestError, match="already registered"):
            await store.add_key(clash)
        assert await store.list_keys() == [original]
        assert await store.key_by_hash(original.key_hash) == original

    with_store(store_url, body)


def test_rekey_gives_a_key_a_new_secret(store_url: str) -> None:
    one, other = key_record("one", n=0), key_record("other", n=1)

    async def body(store: Store) -> None:
        for record in (one, other):
            await store.add_key(record)
        await store.set_key_limits(one.id, parallel=3)
        new_hash = hash_key("bk_rotated-secret-0123456789")
        rotated = await store.rekey_key(one.id, key_hash=new_hash, prefix="bk_rotat")
        assert rotated is not None
        assert (rotated.id, rotated.key_hash, rotated.prefix) == (one.id, new_hash, "bk_rotat")
        assert (rotated.name, rotated.parallel, rotated.scopes) == ("one", 3, one.scopes)
        assert await store.key_by_hash(one.key_hash) is None
        assert await store.key_by_hash(new_hash) == rotated
        # Another key's hash is refused; an unknown or revoked key is not rekeyed.
        with pytest.raises(BadRequestError):
            await store.rekey_key(one.id, key_hash=other.key_hash, prefix="bk_other")
        assert await store.rekey_key("0" * 16, key_hash=hash_key("x" * 20), prefix="x") is None
        await store.revoke_key(one.id)
        assert await store.rekey_key(one.id, key_hash=hash_key("y" * 20), prefix="y") is None
        assert (await store.key_by_hash(new_hash) or rotated).active is False

    with_store(store_url, body)


def test_an_id_wins_over_another_keys_name(store_url: str) -> None:
    target, impostor = key_record("target", n=0), key_record("x", n=1)

    async def body(store: Store) -> None:
        await store.add_key(target)
        impostor.name = target.id  # a name anyone may choose
        await store.add_key(impostor)
        limited = await store.set_key_limits(target.id, requests_per_minute=5)
        assert limited is not None and limited.id == target.id
        revoked = await store.revoke_key(target.id)
        assert revoked is not None and revoked.id == target.id
        assert (await store.key_by_hash(impostor.key_hash) or target).active

    with_store(store_url, body)


def test_revoke_by_id_and_by_name(store_url: str) -> None:
    by_id, by_name, kept = key_record("one", n=0), key_record("two", n=1), key_record("three", n=2)

    async def body(store: Store) -> None:
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

    async def body(store: Store) -> None:
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

    async def body(store: Store) -> None:
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


def test_key_limits_round_trip(store_url: str) -> None:
    own = replace(key_record("own"), requests_per_minute=5, tokens_per_day=0, parallel=2)
    plain = key_record("plain", n=1)

    async def body(store: Store) -> None:
        await store.add_key(own)
        await store.add_key(plain)
        assert await store.list_keys() == [own, plain]
        assert await store.key_by_hash(own.key_hash) == own
        stored = await store.key_by_hash(plain.key_hash)
        assert stored is not None
        assert (stored.requests_per_minute, stored.tokens_per_day, stored.parallel) == (
            None,
            None,
            None,
        )

    with_store(store_url, body)


def _limits(record: ApiKeyRecord | None) -> tuple[int | None, int | None, int | None]:
    assert record is not None
    return record.requests_per_minute, record.tokens_per_day, record.parallel


def test_set_and_reset_key_limits(store_url: str) -> None:
    record, other = key_record("limited"), key_record("other", n=1)

    async def body(store: Store) -> None:
        await store.add_key(record)
        await store.add_key(other)
        # One limit at a time; the others are left alone.
        assert _limits(await store.set_key_limits(record.id, requests_per_minute=5)) == (
            5,
            None,
            None,
        )
        assert _limits(await store.set_key_limits("limited", tokens_per_day=1000)) == (
            5,
            1000,
            None,
        )
        assert _limits(await store.set_key_limits(record.id, parallel=0)) == (5, 1000, 0)
        # What the authenticator reads sees the change at once.
        assert _limits(await store.key_by_hash(record.key_hash)) == (5, 1000, 0)
        # None puts one back to the default; no change at all just returns the key.
        assert _limits(await store.set_key_limits(record.id, tokens_per_day=None)) == (5, None, 0)
        unchanged = await store.set_key_limits("limited")
        assert unchanged is not None
        assert unchanged.name == "limited"
        assert _limits(unchanged) == (5, None, 0)
        assert _limits(
            await store.set_key_limits(
                record.id, requests_per_minute=None, tokens_per_day=None, parallel=None
            )
        ) == (None, None, None)
        # Nothing else moved: the other key, and the limited key's other fields.
        assert await store.key_by_hash(other.key_hash) == other
        assert await store.key_by_hash(record.key_hash) == record
        # A revoked key keeps its limits and can still have them changed.
        await store.revoke_key(record.id)
        revoked = await store.set_key_limits(record.id, parallel=3)
        assert revoked is not None
        assert not revoked.active
        assert _limits(revoked) == (None, None, 3)

    with_store(store_url, body)


def test_set_key_limits_errors(store_url: str) -> None:
    first, second = key_record("twin", n=0), key_record("twin", n=1)

    async def body(store: Store) -> None:
        await store.add_key(first)
        await store.add_key(second)
        assert await store.set_key_limits("nobody", requests_per_minute=1) is None
        with pytest.raises(BadRequestError, match="several keys are named 'twin'"):
            await store.set_key_limits("twin", requests_per_minute=1)
        with pytest.raises(BadRequestError, match="requests_per_minute must be"):
            await store.set_key_limits(first.id, requests_per_minute=-1)
        with pytest.raises(BadRequestError, match="parallel must be"):
            await store.set_key_limits(first.id, requests_per_minute=4, parallel=-2)
        # Nothing changed on any of these.
        assert await store.list_keys() == [first, second]
        assert _limits(await store.set_key_limits(second.id, requests_per_minute=1)) == (
            1,
            None,
            None,
        )

    with_store(store_url, body)


# usage

DAY = date(2026, 3, 4)


def test_record_usage_accumulates(store_url: str) -> None:
    async def body(store: Store) -> None:
        assert await store.usage() == []
        await store.record_usage("k1", "billumy:latest", 10, 5, day=DAY)
        await store.record_usage("k1", "billumy:latest", 7, 0, day=DAY)
        await store.record_usage("k1", "gemma3-270m:latest", 3, 4, day=DAY)
        await store.record_usage("k2", "billumy:latest", 1, 1, day=DAY, requests=3)
        await store.record_usage("k1", "billumy:latest", 2, 2, day=DAY + timedelta(days=1))
        assert await store.usage() == [
            UsageRecord("k1", DAY, "billumy:latest", 2, 17, 5),
            UsageRecord("k1", DAY, "gemma3-270m:latest", 1, 3, 4),
            UsageRecord("k2", DAY, "billumy:latest", 3, 1, 1),  # a batch of three
            UsageRecord("k1", DAY + timedelta(days=1), "billumy:latest", 1, 2, 2),
        ]
        # Without a day, today in UTC.
        await store.record_usage("k3", "billumy:latest", 6, 9)
        [today] = await store.usage(key_id="k3")
        assert today == UsageRecord("k3", datetime.now(UTC).date(), "billumy:latest", 1, 6, 9)
        assert today.total_tokens == 15
        with pytest.raises(BadRequestError, match="negative"):
            await store.record_usage("k3", "billumy:latest", -1, 0)
        assert await store.usage(key_id="k3") == [today]

    with_store(store_url, body)
    # Persisted: a new store on the same database sees the same rows.
    assert len(with_store(store_url, lambda store: store.usage())) == 5


def test_usage_filters(store_url: str) -> None:
    async def body(store: Store) -> None:
        for offset in range(3):
            for key in ("b", "a"):
                await store.record_usage(key, "m", offset, 1, day=DAY + timedelta(days=offset))
        rows = await store.usage()
        # Ordered by day, then key, then model.
        assert [(r.day - DAY).days for r in rows] == [0, 0, 1, 1, 2, 2]
        assert [r.key_id for r in rows] == ["a", "b"] * 3
        assert [r.prompt_tokens for r in await store.usage(key_id="a")] == [0, 1, 2]
        since = await store.usage(since=DAY + timedelta(days=1))
        assert [(r.key_id, r.prompt_tokens) for r in since] == [
            ("a", 1),
            ("b", 1),
            ("a", 2),
            ("b", 2),
        ]
        both = await store.usage(key_id="b", since=DAY + timedelta(days=2))
        assert both == [UsageRecord("b", DAY + timedelta(days=2), "m", 1, 2, 1)]
        assert await store.usage(key_id="nobody") == []
        assert await store.usage(since=DAY + timedelta(days=3)) == []

    with_store(store_url, body)


def test_concurrent_record_usage_loses_no_update(store_url: str) -> None:
    # 50 requests of one key finish at once, half through each of two stores (two processes),
    # all on the same (key, day, model) row, which none of them has created yet.
    async def body(first: Store, second: Store) -> None:
        await asyncio.gather(
            *(
                (first, second)[n % 2].record_usage("busy", "billumy:latest", n, 2 * n, day=DAY)
                for n in range(50)
            )
        )
        total = sum(range(50))
        assert await second.usage() == [
            UsageRecord("busy", DAY, "billumy:latest", 50, total, 2 * total)
        ]

    with_stores(store_url, 2, body)


@pytest.fixture
def mongo_url() -> Iterator[str]:
    yield from _mongo_database()


def test_mongo_models_stored_before_owners_get_one(mongo_url: str) -> None:
    """Model documents of the previous release (``_id`` = name, the owner, if any, inside
    the definition) get ``owner`` and ``name`` fields at start-up: shared when they had none."""
    at = "2026-01-02T03:04:05.000000Z"

    async def body() -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
        try:
            await client[database_name(mongo_url)]["models"].insert_many(
                [
                    {"_id": "old:latest", "definition": {"base": "x"}, "created_at": at},
                    {"_id": "bot:latest", "definition": {"base": "x", "owner": "acme"}},
                ]
            )
        finally:
            await client.close()
        store = MongoStore(mongo_url)
        await store.ainit()
        try:
            await store.ainit()  # idempotent
            assert [(m.owner, m.name, m.definition) for m in await store.list_models()] == [
                (SHARED, "old:latest", {"base": "x"}),
                ("acme", "bot:latest", {"base": "x"}),
            ]
            # The (owner, name) key: another tenant's bot is another model; one owner's twice
            # is one model, replaced.
            await store.put_model(ModelRecord(owner="globex", name="bot:latest"))
            await store.put_model(ModelRecord(owner="acme", name="bot:latest", definition={}))
            acme = await store.get_model("acme", "bot:latest")
            assert acme is not None and acme.definition == {}
            assert len(await store.list_models()) == 3
            assert await store.delete_model("acme", "bot:latest") is True
            assert await store.get_model("globex", "bot:latest") is not None
        finally:
            await store.aclose()

    asyncio.run(body())


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

    async def body(store: Store) -> None:
        assert await store.list_models() == []
        assert await store.get_model(SHARED, "analyst:latest") is None
        await store.put_model(ModelRecord(name="zeta:latest", definition={"base": "x"}))
        await store.put_model(ModelRecord(name="analyst:latest", definition=definition))
        got = await store.get_model(SHARED, "analyst:latest")
        assert got is not None
        assert got.owner == SHARED
        assert got.definition == definition
        assert got.created_at is not None
        assert got.created_at.tzinfo is not None
        assert got.modified_at is not None
        assert [m.name for m in await store.list_models()] == ["analyst:latest", "zeta:latest"]

        # put replaces the definition of an existing name.
        await store.put_model(
            ModelRecord(name="analyst:latest", definition={**definition, "system": "new"})
        )
        replaced = await store.get_model(SHARED, "analyst:latest")
        assert replaced is not None
        assert replaced.definition["system"] == "new"
        assert len(await store.list_models()) == 2

        # Each owner has its own names: a tenant's analyst is another model than the shared.
        for owner in ("acme", "globex"):
            own = {**definition, "system": owner}
            await store.put_model(ModelRecord(owner=owner, name="analyst:latest", definition=own))
        acme = await store.get_model("acme", "analyst:latest")
        assert acme is not None and acme.owner == "acme" and acme.definition["system"] == "acme"
        shared = await store.get_model(SHARED, "analyst:latest")
        assert shared is not None and shared.definition["system"] == "new"
        assert await store.get_model("initech", "analyst:latest") is None
        assert [(m.owner, m.name) for m in await store.list_models()] == [
            (SHARED, "analyst:latest"),
            (SHARED, "zeta:latest"),
            ("acme", "analyst:latest"),
            ("globex", "analyst:latest"),
        ]
        assert await store.delete_model("acme", "analyst:latest") is True
        assert await store.delete_model("acme", "analyst:latest") is False
        assert await store.get_model("globex", "analyst:latest") is not None
        assert await store.delete_model("globex", "analyst:latest") is True

        assert await store.delete_model("acme", "zeta:latest") is False
        assert await store.delete_model(SHARED, "zeta:latest") is True
        assert await store.delete_model(SHARED, "zeta:latest") is False
        assert await store.get_model(SHARED, "zeta:latest") is None

    with_store(store_url, body)
    remaining = with_store(store_url, lambda store: store.list_models())
    assert [(m.owner, m.name) for m in remaining] == [(SHARED, "analyst:latest")]
    assert remaining[0].definition["parameters"] == definition["parameters"]


# chats


def test_create_and_get_chat_with_messages(store_url: str) -> None:
    # Any offset goes in; the same instant comes out, aware.
    brasilia = timezone(timedelta(hours=-3))
    chat = new_chat("c-1", title="Vendas", tags=["finance", "q1"], metadata={"source": {"a": 1}})
    chat.created_at = chat.updated_at = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=brasilia)
    first = [user("Quanto vendemos?"), answer("Muito.", eval_count=3, total_duration=12_345)]

    async def body(store: Store) -> None:
        created = await store.create_chat(chat, first)
        assert created.message_count == 2
        assert created.messages is not None
        assert [(m.seq, m.role, m.content) for m in created.messages] == [
            (1, "user", "Quanto vendemos?"),
            (2, "assistant", "Muito."),
        ]
        assert created.messages[1].stats == {"eval_count": 3, "total_duration": 12_345}
        assert created.messages[1].done_reason == "stop"
        assert created.messages[1].model == "smollm2-135m:latest"
        assert len({m.id for m in created.messages}) == 2

        got = await store.get_chat(TENANT, "c-1")
        assert got == created
        assert got.created_at == chat.created_at
        assert got.created_at.tzinfo is not None
        assert got.updated_at.tzinfo is not None
        assert got.messages is not None
        assert all(m.created_at.tzinfo is not None for m in got.messages)
        assert (got.title, got.tags, got.metadata) == ("Vendas", ["finance", "q1"], chat.metadata)

        bare = await store.get_chat(TENANT, "c-1", with_messages=False)
        assert bare is not None
        assert bare.messages is None
        assert bare.message_count == 2

        assert await store.get_chat(OTHER_TENANT, "c-1") is None
        assert await store.get_chat(OTHER_TENANT, "c-1", with_messages=False) is None
        assert await store.get_chat(TENANT, "nope") is None

        # A chat without messages, and an id already taken (in any tenant).
        empty = await store.create_chat(new_chat("c-2", at=5))
        assert (empty.messages, empty.message_count) == ([], 0)
        again = await store.get_chat(TENANT, "c-2")
        assert again is not None
        assert again.messages == []
        with pytest.raises(BadRequestError, match="already exists"):
            await store.create_chat(new_chat("c-1", tenant=OTHER_TENANT), [user("hijack")])
        still = await store.get_chat(TENANT, "c-1")
        assert still == created

    with_store(store_url, body)


def test_list_pages_through_chats_newest_first(store_url: str) -> None:
    # 250 chats, three per second (ties broken by id), for two users; plus another tenant's.
    ids = [f"chat-{n:03d}" for n in range(250)]

    async def body(store: Store) -> None:
        for n, chat_id in enumerate(ids):
            await store.create_chat(new_chat(chat_id, at=n // 3, user_id=("ana", "bob")[n % 2]))
            if n % 50 == 0:
                await store.create_chat(new_chat(f"x-{n}", tenant=OTHER_TENANT, at=n // 3))
        expected = sorted(ids, key=lambda chat_id: (int(chat_id[5:]) // 3, chat_id), reverse=True)

        seen: list[str] = []
        page = await store.list_chats(TENANT, limit=40)
        while page:
            assert len(page) <= 40
            assert all(chat.messages is None for chat in page)
            seen += [chat.id for chat in page]
            last = page[-1]
            page = await store.list_chats(
                TENANT, limit=40, after=ChatPage(created_at=last.created_at, id=last.id)
            )
        assert seen == expected  # newest first, no duplicates, no gaps

        assert [c.id for c in await store.list_chats(TENANT, limit=3)] == expected[:3]
        assert len(await store.list_chats(TENANT)) == 50  # the default limit
        bob = await store.list_chats(TENANT, user_id="bob", limit=1000)
        assert [c.id for c in bob] == [i for i in expected if int(i[5:]) % 2]
        others = await store.list_chats(OTHER_TENANT, limit=1000)
        assert [c.id for c in others] == [f"x-{n}" for n in (200, 150, 100, 50, 0)]
        assert await store.list_chats("nobody") == []

    with_store(store_url, body)


async def _seed_for_filters(store: Store) -> None:
    await store.create_chat(
        new_chat("report", at=1, title="Relatório trimestral", tags=["finance", "q1"]),
        [user("Quais foram as vendas de março?"), answer("As vendas cresceram 12% em março.")],
    )
    await store.create_chat(
        new_chat("plan", at=2, user_id="bob", title="Marketing plan", tags=["mkt"], archived=True),
        [user("Draft the CAMPAIGN budget, please"), answer("Budget: 10k for social ads.")],
    )
    await store.create_chat(new_chat("chatter", at=3), [user("unrelated chatter")])
    # Another tenant's chat matches every filter below: it must never show up.
    await store.create_chat(
        new_chat("intruder", tenant=OTHER_TENANT, at=4, title="Relatório trimestral"),
        [user("vendas de março campaign budget")],
    )


def test_list_filters_by_user_tag_and_archived(store_url: str) -> None:
    async def ids(store: Store, **filters: Any) -> list[str]:
        return [chat.id for chat in await store.list_chats(TENANT, **filters)]

    async def body(store: Store) -> None:
        await _seed_for_filters(store)
        assert await ids(store) == ["chatter", "plan", "report"]
        assert await ids(store, user_id="ana") == ["chatter", "report"]
        assert await ids(store, user_id="carol") == []
        assert await ids(store, tag="finance") == ["report"]
        assert await ids(store, tag="q1") == ["report"]
        assert await ids(store, tag="fin") == []  # a whole tag, not a substring
        assert await ids(store, archived=True) == ["plan"]
        assert await ids(store, archived=False) == ["chatter", "report"]
        assert await ids(store, user_id="ana", tag="finance", archived=False) == ["report"]
        assert await ids(store, user_id="bob", tag="finance") == []

    with_store(store_url, body)


async def _check_search(store: Store) -> None:
    """Search over _seed_for_filters' chats (the same answers whatever path a store takes)."""

    async def ids(store: Store, q: str, **filters: Any) -> list[str]:
        return [chat.id for chat in await store.list_chats(TENANT, q=q, **filters)]

    await _seed_for_filters(store)
    # Titles, with accents, any case, any word order.
    assert await ids(store, "relatório") == ["report"]
    assert await ids(store, "Relatório") == ["report"]
    assert await ids(store, "RELATÓRIO") == ["report"]
    assert await ids(store, "trimestral relatório") == ["report"]
    assert await ids(store, "marketing") == ["plan"]
    # Message text: every word must be in the same message (AND).
    assert await ids(store, "vendas") == ["report"]
    assert await ids(store, "MARÇO vendas") == ["report"]
    assert await ids(store, "campaign budget") == ["plan"]
    assert await ids(store, "budget social") == ["plan"]
    assert await ids(store, "vendas budget") == []  # one word in each of two chats
    assert await ids(store, "vendas inexistente") == []
    assert await ids(store, "chatter") == ["chatter"]
    # Words spread over the title and a message do not make a match.
    assert await ids(store, "marketing budget") == []
    # Combined with the other filters.
    assert await ids(store, "vendas", user_id="ana", tag="finance") == ["report"]
    assert await ids(store, "vendas", archived=True) == []
    assert await ids(store, "budget", archived=True) == ["plan"]
    # Quotes and operators are text; no words at all means no text filter.
    assert await ids(store, '"vendas"') == ["report"]
    assert await ids(store, "vendas*") == ["report"]
    for q in ("", "   ", "?!", '"', "*", "-", "(", '" * -'):
        assert await ids(store, q) == ["chatter", "plan", "report"], q
    for q in (
        '"vendas',
        "vendas OR marketing",
        "NEAR(vendas março)",
        "NEAR(",
        "-vendas",
        "vendas AND NOT budget",
        "title:relatório",
        "^vendas",
        "{title}: vendas",
        "vendas\x00março",
        "'; DROP TABLE chats; --",
        "a\\b",
    ):
        result = await ids(store, q)  # whatever it finds, it must not raise
        assert set(result) <= {"chatter", "plan", "report"}, q


def test_list_search_in_titles_and_messages(store_url: str) -> None:
    with_store(store_url, _check_search)


def test_update_chat(store_url: str) -> None:
    async def body(store: Store) -> None:
        created = await store.create_chat(
            new_chat("c", title="Old title", tags=["a"], metadata={"k": 1}), [user("hello")]
        )
        changes: list[dict[str, Any]] = [
            {"title": "Análise de churn"},
            {"tags": ["b", "c"]},
            {"metadata": {"source": "crm", "rows": [1, 2]}},
            {"archived": True},
            {"model": "gemma3-270m:latest"},
            {"title": None, "archived": False},
        ]
        previous = created.updated_at
        for change in changes:
            updated = await store.update_chat(TENANT, "c", change)
            assert updated is not None
            for key, value in change.items():
                assert getattr(updated, key) == value
            assert updated.updated_at > previous
            assert updated.updated_at.tzinfo is not None
            assert updated.created_at == created.created_at
            assert updated.message_count == 1
            assert updated == await store.get_chat(TENANT, "c", with_messages=False)
            previous = updated.updated_at
        final = await store.get_chat(TENANT, "c")
        assert final is not None
        assert (final.title, final.tags, final.archived) == (None, ["b", "c"], False)
        assert final.metadata == {"source": "crm", "rows": [1, 2]}
        assert final.model == "gemma3-270m:latest"
        assert final.messages is not None
        assert [m.content for m in final.messages] == ["hello"]

        # The search index follows the title.
        await store.update_chat(TENANT, "c", {"title": "Previsão de receita"})
        assert [c.id for c in await store.list_chats(TENANT, q="previsão")] == ["c"]
        assert await store.list_chats(TENANT, q="churn") == []
        assert await store.list_chats(TENANT, tag="b") != []

        with pytest.raises(BadRequestError, match="id"):
            await store.update_chat(TENANT, "c", {"title": "x", "id": "stolen"})
        with pytest.raises(BadRequestError, match="tenant"):
            await store.update_chat(TENANT, "c", {"tenant": OTHER_TENANT})
        unchanged = await store.get_chat(TENANT, "c")
        assert unchanged is not None
        assert unchanged.title == "Previsão de receita"

        assert await store.update_chat(OTHER_TENANT, "c", {"title": "mine"}) is None
        assert await store.update_chat(TENANT, "missing", {"title": "x"}) is None
        after = await store.get_chat(TENANT, "c", with_messages=False)
        assert after is not None
        assert after.title == "Previsão de receita"

    with_store(store_url, body)


def test_delete_chat_deletes_its_messages(store_url: str) -> None:
    async def body(store: Store) -> None:
        await store.create_chat(new_chat("gone", title="Doomed"), [user("ephemeral words")])
        await store.create_chat(new_chat("kept", at=1), [user("durable words")])

        assert await store.delete_chat(OTHER_TENANT, "gone") is False
        assert await store.get_chat(TENANT, "gone") is not None

        assert await store.delete_chat(TENANT, "gone") is True
        assert await store.get_chat(TENANT, "gone") is None
        assert await store.delete_chat(TENANT, "gone") is False
        assert [c.id for c in await store.list_chats(TENANT)] == ["kept"]
        assert await store.list_chats(TENANT, q="ephemeral") == []
        assert await store.list_chats(TENANT, q="doomed") == []
        assert await store.append_messages(TENANT, "gone", [user("late")]) is None

        # The id is free again, and no old message comes back with it.
        reborn = await store.create_chat(new_chat("gone", at=2))
        assert reborn.messages == []
        again = await store.get_chat(TENANT, "gone")
        assert again is not None
        assert (again.messages, again.message_count) == ([], 0)
        kept = await store.get_chat(TENANT, "kept")
        assert kept is not None
        assert kept.messages is not None
        assert [m.content for m in kept.messages] == ["durable words"]

    with_store(store_url, body)


def test_append_messages(store_url: str) -> None:
    async def body(store: Store) -> None:
        created = await store.create_chat(new_chat("c"), [user("one"), answer("two")])
        appended = await store.append_messages(
            TENANT, "c", [user("three"), answer("four", eval_count=7), user("five")]
        )
        assert appended is not None
        assert [(m.seq, m.content) for m in appended] == [(3, "three"), (4, "four"), (5, "five")]
        assert appended[1].stats == {"eval_count": 7}
        assert all(m.chat_id == "c" for m in appended)

        chat = await store.get_chat(TENANT, "c")
        assert chat is not None
        assert chat.message_count == 5
        assert chat.updated_at > created.updated_at
        assert chat.messages is not None
        assert [m.seq for m in chat.messages] == [1, 2, 3, 4, 5]
        assert chat.messages[2:] == appended
        assert [c.id for c in await store.list_chats(TENANT, q="four")] == ["c"]

        assert await store.append_messages(TENANT, "c", []) == []
        assert await store.append_messages(TENANT, "missing", [user("x")]) is None
        assert await store.append_messages(TENANT, "missing", []) is None
        assert await store.append_messages(OTHER_TENANT, "c", [user("x")]) is None
        unchanged = await store.get_chat(TENANT, "c")
        assert unchanged is not None
        assert unchanged.message_count == 5
        assert unchanged.messages is not None
        assert len(unchanged.messages) == 5

    with_store(store_url, body)


def _assert_gap_free(messages: Sequence[Any], count: int) -> None:
    assert [m.seq for m in messages] == list(range(1, count + 1))


def test_concurrent_appends_from_one_store(store_url: str) -> None:
    async def body(store: Store) -> None:
        await store.create_chat(new_chat("busy"))
        results = await asyncio.gather(
            *(store.append_messages(TENANT, "busy", [user(f"m{n}")]) for n in range(50))
        )
        seqs = sorted(r[0].seq for r in results if r is not None)
        assert seqs == list(range(1, 51))
        chat = await store.get_chat(TENANT, "busy")
        assert chat is not None
        assert chat.messages is not None
        assert chat.message_count == 50
        _assert_gap_free(chat.messages, 50)
        assert sorted(m.content for m in chat.messages) == sorted(f"m{n}" for n in range(50))

    with_store(store_url, body)


def test_concurrent_appends_from_two_stores(store_url: str) -> None:
    # Two store instances on one database stand for two processes. Each append is a pair that
    # must stay adjacent: no other append may slip in between.
    async def body(first: Store, second: Store) -> None:
        await first.create_chat(new_chat("busy"), [user("opening")])
        appends = [
            (first, second)[n % 2].append_messages(TENANT, "busy", [user(f"q{n}"), answer(f"a{n}")])
            for n in range(50)
        ]
        results = await asyncio.gather(*appends)
        chat = await second.get_chat(TENANT, "busy")
        assert chat is not None
        assert chat.messages is not None
        assert chat.message_count == 101
        _assert_gap_free(chat.messages, 101)
        by_content = {m.content: m.seq for m in chat.messages}
        for n, result in enumerate(results):
            assert result is not None
            assert [m.content for m in result] == [f"q{n}", f"a{n}"]
            assert by_content[f"a{n}"] == by_content[f"q{n}"] + 1 == result[1].seq

    with_stores(store_url, 2, body)


def test_failed_append_changes_nothing(store_url: str) -> None:
    unstorable = NewMessage(role="assistant", content="half", stats={"bad": object()})  # type: ignore[dict-item]

    async def body(store: Store) -> None:
        await store.create_chat(new_chat("c"), [user("one"), answer("two")])
        with pytest.raises((TypeError, ValueError, StatementError, InvalidDocument)):
            await store.append_messages(TENANT, "c", [user("three"), unstorable])
        chat = await store.get_chat(TENANT, "c")
        assert chat is not None
        assert chat.message_count == 2
        assert chat.messages is not None
        assert [m.content for m in chat.messages] == ["one", "two"]
        assert await store.list_chats(TENANT, q="three") == []
        # The seqs the failed append reserved were given back.
        appended = await store.append_messages(TENANT, "c", [user("three")])
        assert appended is not None
        assert [m.seq for m in appended] == [3]

    with_store(store_url, body)


def test_summary(store_url: str) -> None:
    async def body(store: Store) -> None:
        await store.create_chat(new_chat("c"), [user("one"), answer("two"), user("three")])
        fresh = await store.get_chat(TENANT, "c", with_messages=False)
        assert fresh is not None and (fresh.summary, fresh.summary_upto) == (None, 0)
        assert await store.set_summary(TENANT, "c", "first two turns", 2) is True
        chat = await store.get_chat(TENANT, "c")
        assert chat is not None and (chat.summary, chat.summary_upto) == ("first two turns", 2)
        # Never back to a summary covering less, nor past the last message.
        assert await store.set_summary(TENANT, "c", "older", 1) is False
        assert await store.set_summary(TENANT, "c", "too far", 9) is False
        assert await store.set_summary(OTHER_TENANT, "c", "theirs", 3) is False
        assert await store.set_summary(TENANT, "missing", "x", 1) is False
        listed = await store.list_chats(TENANT)
        assert (listed[0].summary, listed[0].summary_upto) == ("first two turns", 2)
        # New messages wipe it: it described another conversation.
        await store.replace_messages(TENANT, "c", [user("new")])
        chat = await store.get_chat(TENANT, "c")
        assert chat is not None and (chat.summary, chat.summary_upto) == (None, 0)

    with_store(store_url, body)


def test_replace_messages(store_url: str) -> None:
    async def body(store: Store) -> None:
        created = await store.create_chat(
            new_chat("c"), [user("old one"), answer("old two"), user("old three")]
        )
        replaced = await store.replace_messages(
            TENANT, "c", [user("summary of before"), answer("fresh", eval_count=2)]
        )
        assert replaced is not None
        assert [(m.seq, m.content) for m in replaced] == [(1, "summary of before"), (2, "fresh")]
        chat = await store.get_chat(TENANT, "c")
        assert chat is not None
        assert chat.message_count == 2
        assert chat.messages == replaced
        assert chat.model == created.model  # unchanged unless given
        assert chat.updated_at > created.updated_at
        assert [c.id for c in await store.list_chats(TENANT, q="fresh")] == ["c"]
        assert await store.list_chats(TENANT, q="old") == []

        again = await store.replace_messages(
            TENANT, "c", [user("only")], model="gemma3-270m:latest"
        )
        assert again is not None
        assert [m.seq for m in again] == [1]
        chat = await store.get_chat(TENANT, "c")
        assert chat is not None
        assert chat.model == "gemma3-270m:latest"
        appended = await store.append_messages(TENANT, "c", [answer("next")])
        assert appended is not None
        assert appended[0].seq == 2

        assert await store.replace_messages(TENANT, "c", []) == []
        emptied = await store.get_chat(TENANT, "c")
        assert emptied is not None
        assert (emptied.messages, emptied.message_count) == ([], 0)

        assert await store.replace_messages(OTHER_TENANT, "c", [user("mine")]) is None
        assert await store.replace_messages(TENANT, "missing", [user("x")]) is None
        untouched = await store.get_chat(TENANT, "c")
        assert untouched is not None
        assert untouched.messages == []

    with_store(store_url, body)


# SQL adapter: the search index (the schema's own tests: test_schema.py)


def with_sql_stores(url: str, count: int, body: Callable[..., Awaitable[T]]) -> T:
    """Like with_stores, for SQLStore instances that ``body`` starts itself."""

    async def main() -> T:
        stores = [SQLStore(url) for _ in range(count)]
        try:
            return await body(*stores)
        finally:
            for store in stores:
                await store.aclose()

    return asyncio.run(main())


def test_search_with_many_hits(sql_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Past SEARCH_HITS hits the list walks the newest-first index instead: same answers.
    monkeypatch.setattr(sql_chats, "SEARCH_HITS", 0)
    with_store(sql_url, _check_search)


def test_search_hits_count_titles_and_messages(
    sql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "a" matches in its title and two messages: three hits for one chat, past the limit of
    # two, so "b" must still be found (not taken for all the hits there are).
    monkeypatch.setattr(sql_chats, "SEARCH_HITS", 2)

    async def body(store: Store) -> None:
        await store.create_chat(new_chat("a", title="alpha"), [user("alpha 1"), user("alpha 2")])
        await store.create_chat(new_chat("b", at=1), [user("alpha 3")])
        await store.create_chat(new_chat("c", at=2), [user("beta")])
        assert [c.id for c in await store.list_chats(TENANT, q="alpha")] == ["b", "a"]
        assert [c.id for c in await store.list_chats(TENANT, q="beta")] == ["c"]

    with_store(sql_url, body)


def test_sqlite_search_index_stays_consistent(tmp_path: Path) -> None:
    # FTS5's integrity check with rank=1 also compares the index with the content tables.
    async def body(store: SQLStore) -> None:
        await store.ainit()
        await store.create_chat(new_chat("a", title="Primeiro"), [user("alpha"), answer("beta")])
        await store.create_chat(new_chat("b"), [user("gamma")])
        await store.update_chat(TENANT, "a", {"title": "Segundo"})
        await store.update_chat(TENANT, "b", {"title": "Terceiro"})
        await store.update_chat(TENANT, "b", {"title": None})
        await store.append_messages(TENANT, "a", [user("delta")])
        await store.replace_messages(TENANT, "a", [user("epsilon")])
        await store.create_chat(new_chat("c", title="Quarto"), [user("zeta")])
        await store.delete_chat(TENANT, "c")
        async with store.writer.begin() as conn:
            for check in (
                "INSERT INTO chats_fts (chats_fts, rank) VALUES ('integrity-check', 1)",
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
            ):
                await conn.execute(text(check))
            hits = await conn.execute(
                text("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'zeta OR alpha'")
            )
            assert hits.scalar_one() == 0
        assert [c.id for c in await store.list_chats(TENANT, q="segundo epsilon")] == []
        assert [c.id for c in await store.list_chats(TENANT, q="epsilon")] == ["a"]

    with_sql_stores("sqlite+aiosqlite:///" + str(tmp_path / "fts.db"), 1, body)
