"""billumy.auth against the real SQL store on a temporary SQLite file."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from billumy.auth import (
    Authenticator,
    Principal,
    create_key,
    ensure_key,
    hash_key,
    key_limits,
    validate_scopes,
)
from billumy.cache.limits import Limits
from billumy.errors import BadRequestError, ForbiddenError, UnauthorizedError
from billumy.store.base import ApiKeyRecord
from billumy.store.sql import SQLStore

T = TypeVar("T")


def with_store(db: Path, body: Callable[[SQLStore], Awaitable[T]]) -> T:
    """Run ``body`` with a ready store in one event loop, then close the store."""

    async def main() -> T:
        store = SQLStore("sqlite+aiosqlite:///" + str(db))
        await store.ainit()
        try:
            return await body(store)
        finally:
            await store.aclose()

    return asyncio.run(main())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "auth.db"


def test_create_key_stores_only_the_hash(db: Path) -> None:
    async def body(store: SQLStore) -> tuple[str, str]:
        key, record = await create_key(
            store, name="  reporting ", scopes=["inference"], tenant="acme"
        )
        stored = await store.key_by_hash(hash_key(key))
        assert stored is not None
        assert stored.id == record.id
        assert stored.name == "reporting"
        assert stored.tenant == "acme"
        assert stored.scopes == ["inference"]
        assert stored.prefix == key[:8]
        assert stored.active
        return key, record.key_hash

    key, key_hash = with_store(db, body)
    assert key.startswith("bk_")
    assert len(key) >= 40
    assert key_hash == hashlib.sha256(key.encode()).hexdigest()
    # Everything SQLite wrote (the database and any WAL/SHM file left behind).
    written = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert key_hash.encode() in written
    assert key.encode() not in written
    assert key[8:].encode() not in written


def test_keys_are_unique(db: Path) -> None:
    async def body(store: SQLStore) -> set[str]:
        return {(await create_key(store, name=f"k{i}", scopes=["inference"]))[0] for i in range(5)}

    assert len(with_store(db, body)) == 5


def test_create_key_rejects_bad_input_and_stores_nothing(db: Path) -> None:
    async def body(store: SQLStore) -> None:
        with pytest.raises(BadRequestError, match="name"):
            await create_key(store, name="   ", scopes=["inference"])
        with pytest.raises(BadRequestError, match="unknown scope"):
            await create_key(store, name="x", scopes=["inference", "root"])
        with pytest.raises(BadRequestError, match="at least one scope"):
            await create_key(store, name="x", scopes=[])
        with pytest.raises(BadRequestError, match="16 characters"):
            await create_key(store, name="x", scopes=["inference"], key="short")
        # An empty owner marks shared models: no key may belong to that "tenant".
        with pytest.raises(BadRequestError, match="tenant"):
            await create_key(store, name="x", scopes=["admin"], tenant=" ")
        assert await store.list_keys() == []

    with_store(db, body)


def test_authenticate_accepts_bearer_key_and_records_use(db: Path) -> None:
    async def body(store: SQLStore) -> None:
        key, record = await create_key(store, name="ci", scopes=["inference"], tenant="acme")
        auth = Authenticator(store)
        principal = await auth.authenticate(f"Bearer {key}")
        assert principal == Principal(
            key_id=record.id, key_name="ci", tenant="acme", scopes=frozenset({"inference"})
        )
        # The scheme is case-insensitive and surrounding spaces are tolerated.
        assert (await auth.authenticate(f"bearer  {key} ")).key_id == record.id
        stored = await store.key_by_hash(record.key_hash)
        assert stored is not None
        assert stored.last_used_at is not None

    with_store(db, body)


def test_known_keys_are_remembered_for_the_cache_ttl(db: Path) -> None:
    async def body(store: SQLStore) -> None:
        key, record = await create_key(store, name="cached", scopes=["inference"])
        auth = Authenticator(store, cache_ttl=0.3)
        assert (await auth.authenticate(f"Bearer {key}")).key_id == record.id
        await store.revoke_key(record.id)
        # Within the TTL the remembered record answers; after it, the revocation applies.
        assert (await auth.authenticate(f"Bearer {key}")).key_id == record.id
        await asyncio.sleep(0.35)
        with pytest.raises(UnauthorizedError, match="revoked"):
            await auth.authenticate(f"Bearer {key}")
        # Without a TTL every request reads the store.
        key2, record2 = await create_key(store, name="uncached", scopes=["inference"])
        fresh = Authenticator(store)
        assert (await fresh.authenticate(f"Bearer {key2}")).key_id == record2.id
        await store.revoke_key(record2.id)
        with pytest.raises(UnauthorizedError, match="revoked"):
            await fresh.authenticate(f"Bearer {key2}")

    with_store(db, body)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing API key"),
        ("", "missing API key"),
        ("Bearer", "malformed"),
        ("Bearer    ", "malformed"),
        ("Basic dXNlcjpwYXNz", "malformed"),
        ("Token {key}", "malformed"),
        ("{key}", "malformed"),
        ("Bearer bk_not-the-right-key-at-all-0000000000", "invalid API key"),
        ("Bearer {key}x", "invalid API key"),
    ],
)
def test_authenticate_rejects(db: Path, header: str | None, message: str) -> None:
    async def body(store: SQLStore) -> None:
        key, _ = await create_key(store, name="ci", scopes=["admin"])
        with pytest.raises(UnauthorizedError, match=message) as excinfo:
            await Authenticator(store).authenticate(
                header.format(key=key) if header is not None else None
            )
        assert excinfo.value.status_code == 401
        assert key not in str(excinfo.value)

    with_store(db, body)


def test_revoked_key_is_rejected(db: Path) -> None:
    async def body(store: SQLStore) -> None:
        key, record = await create_key(store, name="old", scopes=["inference"])
        auth = Authenticator(store)
        await auth.authenticate(f"Bearer {key}")
        assert await store.revoke_key(record.id) is not None
        with pytest.raises(UnauthorizedError, match="revoked"):
            await auth.authenticate(f"Bearer {key}")

    with_store(db, body)


def test_principal_require() -> None:
    reader = Principal(key_id="1", key_name="r", tenant="t", scopes=frozenset({"inference"}))
    reader.require("inference")
    with pytest.raises(ForbiddenError, match="admin") as excinfo:
        reader.require("admin")
    assert excinfo.value.status_code == 403

    admin = Principal(key_id="2", key_name="a", tenant="t", scopes=frozenset({"admin"}))
    admin.require("admin")
    admin.require("inference")

    nobody = Principal(key_id="3", key_name="n", tenant="t", scopes=frozenset())
    with pytest.raises(ForbiddenError):
        nobody.require("inference")


def test_ensure_key_is_idempotent(db: Path) -> None:
    key = "bk_configured-admin-key-0123456789"

    async def body(store: SQLStore) -> None:
        first = await ensure_key(store, key)
        second = await ensure_key(store, key)
        assert first.id == second.id
        assert first.scopes == ["admin", "inference"]
        assert first.name == "admin"
        assert await store.count_active_keys() == 1
        principal = await Authenticator(store).authenticate(f"Bearer {key}")
        principal.require("admin")

    with_store(db, body)
    # A second process start (a new store on the same file) installs nothing new.
    assert with_store(db, lambda store: store.count_active_keys()) == 1
    assert with_store(db, lambda store: ensure_key(store, key)).name == "admin"
    assert len(with_store(db, lambda store: store.list_keys())) == 1


def test_validate_scopes() -> None:
    assert validate_scopes(["inference"]) == ["inference"]
    assert validate_scopes(["inference", "admin", "inference"]) == ["admin", "inference"]
    with pytest.raises(BadRequestError, match="unknown scope\\(s\\): read, write"):
        validate_scopes(["write", "inference", "read"])
    with pytest.raises(BadRequestError):
        validate_scopes(["Admin"])
    with pytest.raises(BadRequestError):
        validate_scopes([])


DEFAULTS = Limits(requests_per_minute=600, tokens_per_day=None, parallel=32)


@pytest.mark.parametrize(
    ("own", "expected"),
    [
        ((None, None, None), DEFAULTS),  # every limit follows the default
        ((5, 1000, 2), Limits(5, 1000, 2)),  # the key's own, tighter or looser
        ((5000, None, None), Limits(5000, None, 32)),
        ((0, 0, 0), Limits(None, None, None)),  # 0: unlimited, whatever the default
        ((None, 0, 0), Limits(600, None, None)),
    ],
)
def test_key_limits(own: tuple[int | None, int | None, int | None], expected: Limits) -> None:
    record = ApiKeyRecord(
        id="1",
        name="k",
        prefix="bk_",
        key_hash="h",
        tenant="t",
        scopes=["inference"],
        created_at=datetime.now(UTC),
        requests_per_minute=own[0],
        tokens_per_day=own[1],
        parallel=own[2],
    )
    assert key_limits(record, DEFAULTS) == expected
    # With no defaults (every one unlimited), only the key's own positive limits remain.
    assert key_limits(record, Limits()) == Limits(*(value or None for value in own))


def test_create_key_with_limits(db: Path) -> None:
    async def body(store: SQLStore) -> None:
        _, record = await create_key(
            store, name="tight", scopes=["inference"], requests_per_minute=2, parallel=0
        )
        stored = await store.key_by_hash(record.key_hash)
        assert stored is not None
        assert (stored.requests_per_minute, stored.tokens_per_day, stored.parallel) == (2, None, 0)
        with pytest.raises(BadRequestError, match="tokens_per_day must be"):
            await create_key(store, name="bad", scopes=["inference"], tokens_per_day=-5)
        assert [k.name for k in await store.list_keys()] == ["tight"]

    with_store(db, body)


def test_principal_gets_the_key_limits_read_on_every_request(db: Path) -> None:
    async def body(store: SQLStore) -> None:
        key, record = await create_key(store, name="ci", scopes=["inference"])
        admin_key, _ = await create_key(store, name="admin", scopes=["admin"], tokens_per_day=0)
        auth = Authenticator(store, default_limits=DEFAULTS)

        async def limits(k: str = key) -> Limits:
            return (await auth.authenticate(f"Bearer {k}")).limits

        assert await limits() == DEFAULTS
        # A change in the store applies to the very next request, with no restart.
        await store.set_key_limits(record.id, requests_per_minute=2, tokens_per_day=100)
        assert await limits() == Limits(2, 100, 32)
        await store.set_key_limits("ci", requests_per_minute=0, parallel=0)
        assert await limits() == Limits(None, 100, None)
        await store.set_key_limits("ci", requests_per_minute=None, tokens_per_day=None)
        assert await limits() == Limits(600, None, None)
        await store.set_key_limits("ci", parallel=None)
        assert await limits() == DEFAULTS
        # Another key's limits are its own.
        assert await limits(admin_key) == DEFAULTS

    with_store(db, body)
