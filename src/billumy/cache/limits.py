"""Fair use per API key: requests per minute, tokens per day, parallel requests.

Counters live in :class:`SharedState`, so processes sharing one Redis enforce one limit. While
Redis is unreachable the resilient state counts per process (limits become local); a tokens
per day quota cannot be checked honestly then, so by default it fails closed (503 for keys
that have a quota) — ``quota_on_outage = "open"`` lets those keys through instead.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import time
from dataclasses import dataclass

from billumy.cache.base import SharedState, StateUnavailableError
from billumy.errors import OverloadedError, RateLimitedError

_DAY = 86_400
_LEASE_S = 15 * 60.0  # a parallel slot held longer than this is from a dead process


@dataclass(frozen=True)
class Limits:
    """A key's limits; None means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_day: int | None = None
    parallel: int | None = None


@dataclass(frozen=True)
class RateHeaders:
    """What ``X-RateLimit-*`` headers report: the per-minute request window."""

    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }


def parallel_refusal(parallel: int) -> RateLimitedError:
    """The 429 of a key at its parallel limit."""
    return RateLimitedError(
        f"too many parallel requests: {parallel} at once for this key "
        "(its parallel limit); retry when one of them ends",
        retry_after=1,
    )


def _day_left() -> int:
    return _DAY - int(time.time()) % _DAY


class FairUse:
    def __init__(self, state: SharedState, *, quota_on_outage: str = "closed") -> None:
        self.state = state
        self.quota_fails_closed = quota_on_outage != "open"
        # key id -> (minute window, its count when this process last refused the key in it).
        # A window's count only grows, so while the key's limit stays under that count every
        # later request in the same window is refused too: the request edge answers those from
        # here, without a round trip to the shared state (see ``over_rpm``).
        self._spent: dict[str, tuple[int, int]] = {}
        # Parallel slots held by this process, per key: a lower bound of the shared count, so
        # a key holding its whole limit here is refused without a round trip (``parallel_full``).
        self._held: dict[str, int] = {}

    @property
    def degraded(self) -> bool:
        return bool(getattr(self.state, "degraded", False))

    async def admit_request(self, key_id: str, limits: Limits) -> RateHeaders | None:
        """Count one request against the per-minute window; 429 when over."""
        rpm = limits.requests_per_minute
        if rpm is None:
            return None
        now = time.time()
        # Windows are whole clock minutes, so when this one ends needs no second round trip.
        name = f"rl:rpm:{key_id}:{int(now // 60)}"
        try:
            used = await self.state.incr(name, 1, 60.0)
        except StateUnavailableError:
            return None  # only a bare Redis state raises; the resilient one falls back
        reset_s = max(1, math.ceil(60 - now % 60))
        report = RateHeaders(limit=rpm, remaining=max(0, rpm - used), reset_s=reset_s)
        if used > rpm:
            if len(self._spent) >= 10_000:  # bounded: drop the lot rather than grow
                self._spent.clear()
            self._spent[key_id] = (int(now // 60), used)
            raise RateLimitedError(
                f"rate limit exceeded: {rpm} requests per minute for this key",
                retry_after=reset_s,
                headers=report.headers(),
            )
        return report

    def over_rpm(self, key_id: str, rpm: int | None) -> int | None:
        """Seconds until the window ends when this process already knows the key is over its
        per-minute limit ``rpm`` in the current window (no round trip); else None."""
        if rpm is None:
            return None
        spent = self._spent.get(key_id)
        if spent is None:
            return None
        now = time.time()
        window, used = spent
        if window != int(now // 60) or used <= rpm:
            return None
        return max(1, math.ceil(60 - now % 60))

    async def check_quota(self, key_id: str, limits: Limits) -> None:
        """429 when today's tokens are used up (UTC days)."""
        quota = limits.tokens_per_day
        if quota is None:
            return
        if self.degraded and self.quota_fails_closed:
            raise OverloadedError(
                "token quota cannot be checked right now (shared state unavailable)", retry_after=5
            )
        used = await self.state.get_int(self._tokens_key(key_id))
        if used >= quota:
            raise RateLimitedError(
                f"token quota exceeded: {quota} tokens per day for this key",
                retry_after=_day_left(),
            )

    async def acquire(self, key_id: str, limits: Limits) -> str | None:
        """A parallel-request slot (its holder id), or 429 when all are taken."""
        if limits.parallel is None:
            return None
        holder = secrets.token_hex(8)
        if not await self.state.acquire_slot(f"rl:par:{key_id}", holder, limits.parallel, _LEASE_S):
            raise parallel_refusal(limits.parallel)
        self._held[key_id] = self._held.get(key_id, 0) + 1
        return holder

    def parallel_full(self, key_id: str, parallel: int | None) -> bool:
        """Whether this process alone holds ``parallel`` (the key's limit) slots of the key."""
        return parallel is not None and self._held.get(key_id, 0) >= parallel

    async def release(self, key_id: str, holder: str | None) -> None:
        if holder is not None:
            held = self._held.get(key_id, 0) - 1
            if held > 0:
                self._held[key_id] = held
            else:
                self._held.pop(key_id, None)
            # If the state is unreachable, the lease expires by itself.
            with contextlib.suppress(StateUnavailableError):
                await self.state.release_slot(f"rl:par:{key_id}", holder)

    async def spend(self, key_id: str, tokens: int) -> None:
        """Count tokens against today's quota."""
        if tokens > 0:
            with contextlib.suppress(StateUnavailableError):
                await self.state.incr(self._tokens_key(key_id), tokens, _DAY + 3600)

    @staticmethod
    def _tokens_key(key_id: str) -> str:
        return f"rl:tok:{key_id}:{int(time.time() // _DAY)}"
