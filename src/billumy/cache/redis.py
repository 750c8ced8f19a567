"""Shared state for every process that shares one Redis (``redis.asyncio``).

Failures to reach Redis surface as :class:`~billumy.cache.base.StateUnavailableError` within
a second or two (short connect and read timeouts), carrying neither the URL nor its password,
so that :class:`~billumy.cache.resilient.ResilientState` can fall back quickly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from billumy.cache.base import StateUnavailableError
from billumy.cache.gcra import THROTTLE_LUA, Admission, check_meter

# A second: on two cores loaded by a test suite, 50 calls at once on a cold pool took past half
# a second (CI, twice: the limits fell to the local fallback and 10 slots of 5 were taken).
_TIMEOUT_S = 1.0
_POOL_SIZE = 64
# Waiting for a free pooled connection is queueing under load, not an outage.
_POOL_WAIT_S = 5.0

# Slots are a sorted set of holder -> time taken (ms). The clock is the server's TIME, not the
# caller's: processes on different hosts may disagree about the time, Redis is one clock.
# Redis >= 5 replicates scripts by effects, which TIME needs before writes; on older servers
# redis.replicate_commands() switches that on (it is a no-op on Redis 7).
_ACQUIRE_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - lease)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
-- The newest slot expires last, so the whole set may go when it does.
redis.call('PEXPIRE', KEYS[1], lease)
return 1
"""


def _ms(seconds: float, what: str = "ttl_s") -> int:
    if not seconds > 0:
        raise ValueError(f"{what} must be > 0")
    return max(1, round(seconds * 1000))


def _bytes(value: bytes | str) -> bytes:
    # decode_responses is off, so replies are bytes; the stubs also allow str.
    return value if isinstance(value, bytes) else value.encode()


@contextmanager
def _unavailable() -> Iterator[None]:
    """Turn Redis errors into ours, without the original text (it may name the host)."""
    try:
        yield
    except ResponseError as exc:
        text = str(exc)
        # A caller's mistake, not an outage: falling back to local state would hide it.
        if text.startswith("WRONGTYPE"):
            raise TypeError("key holds a value of another kind") from None
        if "not an integer" in text:
            raise ValueError("value is not an integer") from None
        code = text.split(maxsplit=1)[0] if text else "error"  # OOM, READONLY, LOADING...
        raise StateUnavailableError(f"Redis refused the command ({code})") from None
    except (RedisError, OSError) as exc:
        raise StateUnavailableError(f"Redis is unreachable ({type(exc).__name__})") from None


class RedisState:
    """:class:`~billumy.cache.base.SharedState` on Redis; every key gets ``prefix``.

    The rate meters of :meth:`throttle` run on the Redis server's clock, one for every host;
    tests may pass ``clock`` (seconds) to run them on theirs instead.
    """

    def __init__(
        self, url: str, *, prefix: str = "billumy:", clock: Callable[[], float] | None = None
    ) -> None:
        try:
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=_POOL_SIZE,
                timeout=_POOL_WAIT_S,
                socket_connect_timeout=_TIMEOUT_S,
                socket_timeout=_TIMEOUT_S,
                # One immediate retry on a broken connection (Redis restarted); none on a
                # timeout, which would double the wait and could apply a command twice.
                retry=Retry(NoBackoff(), 1, (RedisConnectionError,)),
            )
        except ValueError:
            raise ValueError("invalid Redis URL") from None  # the URL may hold a password
        self._client: Redis = Redis.from_pool(pool)
        self._prefix = prefix
        self._acquire = self._client.register_script(_ACQUIRE_LUA)
        self._throttle = self._client.register_script(THROTTLE_LUA)
        self._clock = clock

    @property
    def backend(self) -> str:
        """Always ``"redis"``."""
        return "redis"

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> bytes | None:
        """The value, or None if missing or expired."""
        with _unavailable():
            value = await self._client.get(self._key(key))
        return None if value is None else _bytes(value)

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value``, expiring after ``ttl_s`` seconds (> 0)."""
        ttl_ms = _ms(ttl_s)
        with _unavailable():
            await self._client.set(self._key(key), value, px=ttl_ms)

    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        with _unavailable():
            await self._client.delete(self._key(key))

    async def incr(self, key: str, amount: int, ttl_s: float) -> int:
        """Add ``amount`` to a fixed-window counter (see the protocol) and return it."""
        ttl_ms = _ms(ttl_s)
        name = self._key(key)
        with _unavailable():
            async with self._client.pipeline(transaction=True) as pipe:
                # NX: only the increment that creates the counter starts its window.
                pipe.incrby(name, amount)
                pipe.pexpire(name, ttl_ms, nx=True)
                replies: list[Any] = await pipe.execute()
        return int(replies[0])

    async def get_int(self, key: str) -> int:
        """A counter's value; 0 if missing or expired."""
        raw = await self.get(key)
        if raw is None:
            return 0
        try:
            return int(raw)
        except ValueError:
            raise ValueError("value is not an integer") from None

    async def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires; None if missing or without expiry."""
        with _unavailable():
            left_ms = int(await self._client.pttl(self._key(key)))
        return None if left_ms < 0 else left_ms / 1000  # -2 missing, -1 no expiry

    async def throttle(self, key: str, rate: int, period_s: float, burst: int) -> Admission:
        """Admit one request against a smooth rate; see the protocol. One script (EVALSHA),
        so concurrent callers on any host are metered one after the other."""
        check_meter(rate, period_s, burst)
        args: list[int | float] = [rate, period_s * 1e6, burst]
        if self._clock is not None:
            args.append(round(self._clock() * 1e6))
        with _unavailable():
            reply: list[Any] = await self._throttle(keys=[self._key(key)], args=args)
        allowed, remaining, retry_us, reset_us = (int(v) for v in reply)
        return Admission(allowed == 1, remaining, retry_us / 1e6, reset_us / 1e6)

    async def acquire_slot(self, key: str, holder: str, limit: int, lease_s: float) -> bool:
        """Take one of ``limit`` slots for ``holder``; see the protocol."""
        lease_ms = _ms(lease_s, "lease_s")
        with _unavailable():
            taken = await self._acquire(keys=[self._key(key)], args=[holder, limit, lease_ms])
        return int(taken) == 1

    async def release_slot(self, key: str, holder: str) -> None:
        """Free ``holder``'s slot; releasing a slot not held is not an error."""
        with _unavailable():
            await self._client.zrem(self._key(key), holder)

    async def push_window(self, key: str, items: list[bytes], keep: int, ttl_s: float) -> None:
        """Append ``items``, keep only the newest ``keep`` (>= 1), refresh the expiry."""
        ttl_ms = _ms(ttl_s)
        if keep < 1:
            raise ValueError("keep must be >= 1")  # LTRIM -0 -1 would keep everything
        name = self._key(key)
        with _unavailable():
            async with self._client.pipeline(transaction=True) as pipe:
                if items:
                    pipe.rpush(name, *items)
                pipe.ltrim(name, -keep, -1)
                pipe.pexpire(name, ttl_ms)
                await pipe.execute()

    async def read_window(self, key: str) -> list[bytes]:
        """The list, oldest first; empty if missing."""
        with _unavailable():
            items = await self._client.lrange(self._key(key), 0, -1)
        return [_bytes(item) for item in items]

    async def ping(self) -> bool:
        """True when Redis answers; False (never an exception) when it does not."""
        try:
            with _unavailable():
                return bool(await self._client.ping())
        except StateUnavailableError:
            return False

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._client.aclose()
