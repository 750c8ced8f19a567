"""Shared state that survives a Redis outage by falling back to in-process state.

While Redis answers, every call goes to it. The first call that finds it unreachable is redone
on a :class:`~billumy.cache.local.LocalState` and from then on the local state serves every
call (``degraded`` is True, ``backend`` is ``"local"``): limits become per process and the
response cache stops being shared, but no request fails because Redis did. A background task
pings Redis every ``retry_s`` seconds; when it answers, calls go back to Redis.

What the local state learned during the outage is not copied to Redis (counters, rate meters,
windows and cached responses written while degraded are per-process and short-lived by
design), and it is cleared on recovery so that a later outage does not start from stale data.
A slot taken on Redis before the outage and released during it stays taken until its lease
runs out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from billumy.cache.base import SharedState, StateUnavailableError
from billumy.cache.gcra import Admission
from billumy.cache.local import LocalState

_T = TypeVar("_T")

logger = logging.getLogger(__name__)


class ResilientState:
    """:class:`~billumy.cache.base.SharedState` on ``primary`` (Redis), falling back to
    ``fallback`` (a new :class:`LocalState` by default) while ``primary`` is unreachable."""

    def __init__(
        self,
        primary: SharedState,
        fallback: LocalState | None = None,
        *,
        retry_s: float = 2.0,
    ) -> None:
        if not retry_s > 0:
            raise ValueError("retry_s must be > 0")
        self._primary = primary
        self._fallback = fallback if fallback is not None else LocalState()
        self._retry_s = retry_s
        self._degraded = False
        self._probe: asyncio.Task[None] | None = None

    @property
    def backend(self) -> str:
        """The backend serving calls right now: ``primary``'s, or ``"local"`` when degraded."""
        return self._fallback.backend if self._degraded else self._primary.backend

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and the in-process state serves calls."""
        return self._degraded

    def _degrade(self) -> None:
        # Many calls in flight can fail together; only the first one switches and logs.
        if self._degraded:
            return
        self._degraded = True
        logger.warning("Redis unreachable; using in-process state (no shared cache, local limits)")
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(
                self._wait_for_primary(), name="billumy-redis-probe"
            )

    async def _wait_for_primary(self) -> None:
        """Ping the primary every ``retry_s`` seconds until it answers, then switch back."""
        while True:
            await asyncio.sleep(self._retry_s)
            try:
                if await self._primary.ping():
                    break
            except StateUnavailableError:
                continue
        self._fallback.clear()
        self._degraded = False
        logger.info("Redis reachable again")

    async def _call(self, op: Callable[[SharedState], Awaitable[_T]]) -> _T:
        if not self._degraded:
            try:
                return await op(self._primary)
            except StateUnavailableError:
                self._degrade()
        return await op(self._fallback)

    async def get(self, key: str) -> bytes | None:
        """The value, or None if missing or expired."""
        return await self._call(lambda s: s.get(key))

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value``, expiring after ``ttl_s`` seconds (> 0)."""
        await self._call(lambda s: s.set(key, value, ttl_s))

    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        await self._call(lambda s: s.delete(key))

    async def incr(self, key: str, amount: int, ttl_s: float) -> int:
        """Add ``amount`` to a fixed-window counter (see the protocol) and return it."""
        return await self._call(lambda s: s.incr(key, amount, ttl_s))

    async def get_int(self, key: str) -> int:
        """A counter's value; 0 if missing or expired."""
        return await self._call(lambda s: s.get_int(key))

    async def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires; None if missing or without expiry."""
        return await self._call(lambda s: s.ttl(key))

    async def throttle(self, key: str, rate: int, period_s: float, burst: int) -> Admission:
        """Admit one request against a smooth rate; see the protocol."""
        return await self._call(lambda s: s.throttle(key, rate, period_s, burst))

    async def acquire_slot(self, key: str, holder: str, limit: int, lease_s: float) -> bool:
        """Take one of ``limit`` slots for ``holder``; see the protocol."""
        return await self._call(lambda s: s.acquire_slot(key, holder, limit, lease_s))

    async def release_slot(self, key: str, holder: str) -> None:
        """Free ``holder``'s slot; releasing a slot not held is not an error."""
        await self._call(lambda s: s.release_slot(key, holder))

    async def push_window(self, key: str, items: list[bytes], keep: int, ttl_s: float) -> None:
        """Append ``items``, keep only the newest ``keep``, refresh the expiry."""
        await self._call(lambda s: s.push_window(key, items, keep, ttl_s))

    async def read_window(self, key: str) -> list[bytes]:
        """The list, oldest first; empty if missing."""
        return await self._call(lambda s: s.read_window(key))

    async def ping(self) -> bool:
        """True when the backend in use answers; a silent Redis switches to local first."""
        if not self._degraded:
            if await self._primary.ping():
                return True
            self._degrade()
        return await self._fallback.ping()

    async def aclose(self) -> None:
        """Stop the background probe, then close both states."""
        if self._probe is not None:
            self._probe.cancel()
            # wait(), unlike awaiting the task, neither raises its CancelledError nor swallows
            # a cancellation of aclose itself.
            await asyncio.wait({self._probe})
            self._probe = None
        try:
            await self._primary.aclose()
        finally:
            await self._fallback.aclose()
