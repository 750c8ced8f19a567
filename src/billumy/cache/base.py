"""The shared-state protocol.

The response cache (:mod:`billumy.cache.responses`) and fair-use limits
(:mod:`billumy.cache.limits`) are built on it once. Implementations: :mod:`billumy.cache.local`
(one process), :mod:`billumy.cache.redis` (every process sharing one Redis) and
:mod:`billumy.cache.resilient` (Redis, falling back to local while Redis is unreachable).

Keys are plain strings; callers namespace them (``cache:``, ``rl:``, ``win:``). Every method
is atomic with respect to other callers of the same backend.
"""

from __future__ import annotations

from typing import Protocol

from billumy.cache.gcra import Admission


class StateUnavailableError(Exception):
    """The backend cannot be reached (Redis down); callers decide to fall back or fail."""


class SharedState(Protocol):
    @property
    def backend(self) -> str:
        """``"redis"`` or ``"local"`` (for a resilient state: the one in use right now)."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The value, or None if missing or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value``, expiring after ``ttl_s`` seconds (> 0)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, amount: int, ttl_s: float) -> int:
        """Add ``amount`` to an integer counter and return the new value. A counter that does
        not exist starts at 0 and expires ``ttl_s`` seconds after that first increment (later
        increments do not extend it): a fixed window."""
        ...

    async def get_int(self, key: str) -> int:
        """A counter's value; 0 if missing or expired."""
        ...

    async def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires; None if missing or without expiry."""
        ...

    async def throttle(self, key: str, rate: int, period_s: float, burst: int) -> Admission:
        """Admit one request against a smooth rate of ``rate`` per ``period_s`` seconds with
        ``burst`` at once (GCRA, see :mod:`billumy.cache.gcra`); a refusal changes nothing."""
        ...

    async def acquire_slot(self, key: str, holder: str, limit: int, lease_s: float) -> bool:
        """Take one of ``limit`` slots for ``holder`` (a unique request id). Slots older than
        ``lease_s`` seconds count as abandoned (a process died) and are freed first. False when
        all slots are taken. Taking a slot ``holder`` already holds renews it and succeeds."""
        ...

    async def release_slot(self, key: str, holder: str) -> None: ...

    async def push_window(self, key: str, items: list[bytes], keep: int, ttl_s: float) -> None:
        """Append ``items`` to a list, keep only the newest ``keep``, refresh its expiry."""
        ...

    async def read_window(self, key: str) -> list[bytes]:
        """The list, oldest first; empty if missing."""
        ...

    async def ping(self) -> bool:
        """True when the backend answers."""
        ...

    async def aclose(self) -> None: ...
