"""Fair use per API key: requests per minute, tokens per day, parallel requests.

Requests per minute are a smooth rate (GCRA, :mod:`billumy.cache.gcra`): a key with a limit of
N may send its burst at once (:meth:`FairUse.burst_of`), then one request every 60/N seconds,
with no window boundary to burst across. Meters and counters live in :class:`SharedState`, so
processes sharing one Redis enforce one limit. While Redis is unreachable the resilient state
meters and counts per process (limits become local); a tokens per day quota cannot be checked
honestly then, so by default it fails closed (503 for keys that have a quota) —
``quota_on_outage = "open"`` lets those keys through instead.
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
# The default burst is a tenth of a key's minute but at least this many (at most its limit):
# a client's page or batch may fan out a few requests at once without meeting a 429.
_BURST_FLOOR = 10


@dataclass(frozen=True)
class Limits:
    """A key's limits; None means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_day: int | None = None
    parallel: int | None = None


@dataclass(frozen=True)
class RateHeaders:
    """What ``X-RateLimit-*`` headers report of the per-minute rate: the limit (N per minute),
    the requests admissible now back to back, and whole seconds until the key's whole burst is
    available again (``Retry-After``, on a refusal, is the time until the next request)."""

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


def _rpm_refusal(rpm: int, retry_after_s: float, report: RateHeaders) -> RateLimitedError:
    return RateLimitedError(
        f"rate limit exceeded: {rpm} requests per minute for this key",
        retry_after=max(1, math.ceil(retry_after_s)),
        headers=report.headers(),
    )


def _day_left() -> int:
    return _DAY - int(time.time()) % _DAY


class FairUse:
    def __init__(
        self, state: SharedState, *, quota_on_outage: str = "closed", rate_burst: int = 0
    ) -> None:
        self.state = state
        self.quota_fails_closed = quota_on_outage != "open"
        # 0: a tenth of the key's minute, at least _BURST_FLOOR; else that many (both at most
        # the key's limit).
        self.rate_burst = rate_burst
        # key id -> (its per-minute limit, when its next request would be admitted, when its
        # meter would be empty; monotonic) as this process last refused it. A refusal changes no
        # meter and other processes' admissions only fill it, so until then every request of
        # the key is refused: the request edge answers those from here, without a round trip
        # to the shared state (see ``over_rpm``).
        self._refused: dict[str, tuple[int, float, float]] = {}
        # Parallel slots held by this process, per key: a lower bound of the shared count, so
        # a key holding its whole limit here is refused without a round trip (``parallel_full``).
        self._held: dict[str, int] = {}

    @property
    def degraded(self) -> bool:
        return bool(getattr(self.state, "degraded", False))

    def burst_of(self, rpm: int) -> int:
        """Requests a key with a limit of ``rpm`` per minute may send at once."""
        if self.rate_burst > 0:
            return min(rpm, self.rate_burst)
        return min(rpm, max(_BURST_FLOOR, math.ceil(rpm / 10)))

    async def admit_request(self, key_id: str, limits: Limits) -> RateHeaders | None:
        """Meter one request against the key's per-minute rate; 429 when over."""
        rpm = limits.requests_per_minute
        if rpm is None:
            return None
        try:
            seen = await self.state.throttle(f"rl:gcra:{key_id}", rpm, 60.0, self.burst_of(rpm))
        except StateUnavailableError:
            return None  # only a bare Redis state raises; the resilient one falls back
        report = RateHeaders(
            limit=rpm, remaining=seen.remaining, reset_s=max(1, math.ceil(seen.reset_s))
        )
        if not seen.allowed:
            if len(self._refused) >= 10_000:  # bounded: drop the lot rather than grow
                self._refused.clear()
            now = time.monotonic()
            self._refused[key_id] = (rpm, now + seen.retry_after_s, now + seen.reset_s)
            raise _rpm_refusal(rpm, seen.retry_after_s, report)
        self._refused.pop(key_id, None)
        return report

    def over_rpm(self, key_id: str, rpm: int | None) -> RateLimitedError | None:
        """The 429 the full path would give, when this process refused the key for its
        per-minute limit ``rpm`` (unchanged since) and the request it would admit next is
        still ahead (no round trip); else None."""
        if rpm is None:
            return None
        refused = self._refused.get(key_id)
        if refused is None:
            return None
        limit, admit_at, empty_at = refused
        now = time.monotonic()
        if limit != rpm or now >= admit_at:
            return None
        report = RateHeaders(limit=rpm, remaining=0, reset_s=max(1, math.ceil(empty_at - now)))
        return _rpm_refusal(rpm, admit_at - now, report)

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
