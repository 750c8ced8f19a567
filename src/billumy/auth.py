"""API keys: generation, hashing at rest, constant-time verification, scopes, tenants and the
fair-use limits each key gets (its own where set, the server's defaults otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from billumy.cache.base import SharedState, StateUnavailableError
from billumy.cache.limits import Limits
from billumy.errors import (
    BadRequestError,
    ForbiddenError,
    StoreUnavailableError,
    UnauthorizedError,
)
from billumy.store.base import ApiKeyRecord, KeyStore, check_limit

log = logging.getLogger(__name__)

KEY_PREFIX = "bk_"
SCOPES = frozenset({"inference", "admin", "metrics"})
_TOUCH_EVERY_S = 60.0
_MAX_UNKNOWN = 10_000
_BATCH = 256  # most digests in one store lookup


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, name, tenant and scopes (never the key itself)."""

    key_id: str
    key_name: str
    tenant: str
    scopes: frozenset[str]
    limits: Limits = field(default_factory=Limits)

    def require(self, scope: str) -> None:
        """Raise 403 unless this key carries ``scope`` (``admin`` implies every scope)."""
        if scope not in self.scopes and "admin" not in self.scopes:
            raise ForbiddenError(f"this key lacks the {scope!r} scope")


def _retrieved(future: asyncio.Future[ApiKeyRecord | None]) -> None:
    if not future.cancelled():
        future.exception()


def hash_key(key: str) -> str:
    """SHA-256 of the key. Keys are 256-bit random, so a fast hash is enough at rest."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def validate_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        raise BadRequestError(
            f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(sorted(SCOPES))}"
        )
    if not scopes:
        raise BadRequestError("a key needs at least one scope")
    return sorted(set(scopes))


def key_limits(record: ApiKeyRecord, defaults: Limits) -> Limits:
    """The limits a key works under: its own where set (0: unlimited), else the default."""

    def pick(own: int | None, default: int | None) -> int | None:
        return default if own is None else (own or None)

    return Limits(
        requests_per_minute=pick(record.requests_per_minute, defaults.requests_per_minute),
        tokens_per_day=pick(record.tokens_per_day, defaults.tokens_per_day),
        parallel=pick(record.parallel, defaults.parallel),
    )


async def create_key(
    store: KeyStore,
    *,
    name: str,
    scopes: list[str],
    tenant: str = "default",
    key: str | None = None,
    requests_per_minute: int | None = None,
    tokens_per_day: int | None = None,
    parallel: int | None = None,
) -> tuple[str, ApiKeyRecord]:
    """Create and store a key; returns the plaintext key (shown once) and its record.

    Limits left None follow the server's defaults; 0 makes that one unlimited for this key.
    """
    if not name.strip():
        raise BadRequestError("a key needs a name")
    if not tenant.strip():
        # An empty owner marks shared models (store.base.SHARED): no tenant has that id.
        raise BadRequestError("a key needs a tenant")
    for label, text in (("name", name), ("tenant", tenant)):
        # The columns' size; control characters (NUL above all) no database takes alike.
        if len(text) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise BadRequestError(f"a key's {label} is at most 200 characters, none a control one")
    key = key or new_key()
    if len(key) < 16:
        raise BadRequestError("an API key must be at least 16 characters long")
    record = ApiKeyRecord(
        id=secrets.token_hex(8),
        name=name.strip(),
        prefix=key[:8],
        key_hash=hash_key(key),
        tenant=tenant,
        scopes=validate_scopes(scopes),
        created_at=datetime.now(UTC),
        requests_per_minute=check_limit("requests_per_minute", requests_per_minute),
        tokens_per_day=check_limit("tokens_per_day", tokens_per_day),
        parallel=check_limit("parallel", parallel),
    )
    await store.add_key(record)
    return key, record


async def ensure_key(store: KeyStore, key: str, *, name: str = "admin") -> ApiKeyRecord:
    """Install ``key`` as an admin key unless it is already stored (``BILLUMY_API_KEY``)."""
    existing = await store.key_by_hash(hash_key(key))
    if existing is not None:
        return existing
    _, record = await create_key(store, name=name, scopes=["admin", "inference"], key=key)
    return record


class UnknownKeys:
    """Digests of keys the store does not hold, remembered for ``ttl_s`` seconds, so that a
    wrong key sent again costs a hash and a lookup here, not a store query.

    In-process, at most ``max_local`` digests (the least recently seen go first, so a flood of
    random keys cannot grow it); with ``shared`` on Redis also there, under ``namespace`` (one
    per key store), so every process behind the same Redis learns it once. While Redis is
    down, only the in-process map is used: the shared state's local fallback holds the limits
    of real keys, and random keys must not crowd them out.
    """

    def __init__(
        self,
        ttl_s: float,
        *,
        shared: SharedState | None = None,
        namespace: str = "",
        max_local: int = _MAX_UNKNOWN,
    ) -> None:
        self.ttl_s = ttl_s
        self._shared = shared
        self._prefix = f"authneg:{namespace}:"
        self._max_local = max_local
        self._local: OrderedDict[str, float] = OrderedDict()

    def _redis(self) -> SharedState | None:
        shared = self._shared
        return shared if shared is not None and shared.backend == "redis" else None

    async def contains(self, digest: str) -> bool:
        if self.ttl_s <= 0:
            return False
        now = time.monotonic()
        expires = self._local.get(digest)
        if expires is not None:
            if expires > now:
                self._local.move_to_end(digest)
                return True
            del self._local[digest]
        shared = self._redis()
        if shared is None:
            return False
        try:
            hit = await shared.get(self._prefix + digest) is not None
        except StateUnavailableError:
            return False
        if hit:
            self._remember_here(digest, now)
        return hit

    def known_here(self, digest: str) -> bool:
        """Whether this process remembers ``digest`` as unknown (no Redis round trip): the
        request edge's check (:mod:`billumy.edge`); a miss here falls to :meth:`contains`."""
        expires = self._local.get(digest)
        return expires is not None and expires > time.monotonic()

    async def add(self, digest: str) -> None:
        if self.ttl_s <= 0:
            return
        self._remember_here(digest, time.monotonic())
        shared = self._redis()
        if shared is not None:
            with contextlib.suppress(StateUnavailableError):
                await shared.set(self._prefix + digest, b"1", self.ttl_s)

    async def discard(self, digest: str) -> None:
        self._local.pop(digest, None)
        shared = self._redis()
        if shared is not None:
            with contextlib.suppress(StateUnavailableError):
                await shared.delete(self._prefix + digest)

    def _remember_here(self, digest: str, now: float) -> None:
        self._local[digest] = now + self.ttl_s
        self._local.move_to_end(digest)
        while len(self._local) > self._max_local:
            self._local.popitem(last=False)


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal` or raises 401.

    A key found in the store is remembered for ``cache_ttl`` seconds (0: read the store on
    every request), so a revocation or a change of limits applies within that time, in every
    process. A key the store does not hold is remembered as unknown in ``unknown`` (see
    :class:`UnknownKeys`), so a wrong key costs one hash and a lookup there until it expires.
    ``on_lookup`` is told of each store lookup (True: found), for the metrics.
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        default_limits: Limits | None = None,
        cache_ttl: float = 0.0,
        unknown: UnknownKeys | None = None,
        on_lookup: Callable[[bool], None] | None = None,
    ) -> None:
        self._store = store
        self._limits = default_limits or Limits()
        self._cache_ttl = cache_ttl
        self._known: dict[str, tuple[float, ApiKeyRecord]] = {}
        self._touched: dict[str, float] = {}
        self.unknown = unknown or UnknownKeys(0.0)
        self._on_lookup = on_lookup
        # Store lookups go out one query at a time: the digests asked for while one is under
        # way wait for the next, which looks all of them up at once (at most _BATCH). A flood of
        # random keys then costs the store a query per round trip, not one per key; a lone
        # lookup goes out at once.
        self._waiting: dict[str, asyncio.Future[ApiKeyRecord | None]] = {}
        self._looking: asyncio.Task[None] | None = None

    def cached(self, digest: str) -> ApiKeyRecord | None:
        """The record of a key verified within ``cache_ttl`` (no store or Redis round trip),
        else None: the request edge's view of a key (:mod:`billumy.edge`)."""
        known = self._known.get(digest)
        if known is not None and known[0] > time.monotonic():
            return known[1]
        return None

    async def forget(self, digest: str) -> None:
        """Drop what this process remembers of the key with this digest, known or unknown: a
        key just revoked, rotated away or changed is read from the store on its next use here
        (other processes read it within ``cache_ttl``), and a key just made is not refused
        as unknown."""
        self._known.pop(digest, None)
        await self.unknown.discard(digest)

    def limits_of(self, record: ApiKeyRecord) -> Limits:
        """The limits ``record``'s key works under (its own, else the server's defaults)."""
        return key_limits(record, self._limits)

    async def _record(self, digest: str) -> ApiKeyRecord | None:
        now = time.monotonic()
        known = self._known.get(digest)
        if known is not None and known[0] > now:
            return known[1]
        if await self.unknown.contains(digest):
            return None
        record = await self._lookup(digest)
        if self._on_lookup is not None:
            self._on_lookup(record is not None)
        if record is None:
            await self.unknown.add(digest)
        elif self._cache_ttl > 0:
            if len(self._known) >= 10_000:  # bounded: drop the lot rather than grow
                self._known.clear()
            self._known[digest] = (now + self._cache_ttl, record)
        return record

    async def _lookup(self, digest: str) -> ApiKeyRecord | None:
        future = self._waiting.get(digest)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            # Read by someone, or the loop would warn of an exception nobody retrieved.
            future.add_done_callback(_retrieved)
            self._waiting[digest] = future
            if self._looking is None:
                self._looking = asyncio.create_task(self._look_up_waiting())
        # Shielded: a caller that goes away leaves the others' answer alone.
        return await asyncio.shield(future)

    async def _look_up_waiting(self) -> None:
        try:
            while self._waiting:
                batch = dict(itertools.islice(self._waiting.items(), _BATCH))
                for digest in batch:
                    del self._waiting[digest]
                try:
                    if len(batch) == 1:
                        (digest,) = batch
                        found = {}
                        record = await self._store.key_by_hash(digest)
                        if record is not None:
                            found[digest] = record
                    else:
                        found = await self._store.keys_by_hashes(list(batch))
                except Exception as exc:  # each waiting caller gets it (a 503, say)
                    for future in batch.values():
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:
                    for future in batch.values():
                        future.cancel()
                    raise
                for digest, future in batch.items():
                    if not future.done():
                        future.set_result(found.get(digest))
        finally:
            self._looking = None
            for future in self._waiting.values():  # only when cancelled (shutting down)
                future.cancel()
            self._waiting.clear()

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise UnauthorizedError("missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise UnauthorizedError("malformed Authorization header: expected 'Bearer <key>'")
        digest = hash_key(token)
        record = await self._record(digest)
        # The lookup is by hash; compare again in constant time so no branch depends on the key.
        if record is None or not secrets.compare_digest(record.key_hash, digest):
            raise UnauthorizedError("invalid API key")
        if not record.active:
            raise UnauthorizedError("this API key has been revoked")
        await self._touch(record.id)
        return Principal(
            key_id=record.id,
            key_name=record.name,
            tenant=record.tenant,
            scopes=frozenset(record.scopes),
            limits=key_limits(record, self._limits),
        )

    async def _touch(self, key_id: str) -> None:
        # Record last use at most once a minute per key: a write per request is wasted I/O.
        now = time.monotonic()
        if now - self._touched.get(key_id, -_TOUCH_EVERY_S) >= _TOUCH_EVERY_S:
            self._touched[key_id] = now
            try:
                await self._store.touch_key(key_id, datetime.now(UTC))
            except StoreUnavailableError:
                # Bookkeeping: a database outage must not refuse a request that needs none
                # (the key came from the cache). Tried again after the next minute.
                log.warning("could not record the key's last use: the database is unavailable")
