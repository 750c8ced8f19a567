"""Shared state for one process: a bounded in-memory map with monotonic-clock expiry.

Used alone on a laptop, and by :class:`~billumy.cache.resilient.ResilientState` while Redis is
unreachable. Every method runs without awaiting anything, so on one event loop each call is
atomic with respect to the others, just as a Redis command is.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from billumy.cache.gcra import Admission, check_meter, meter


@dataclass(slots=True)
class _Meter:
    """A GCRA meter's level (requests) as of ``at`` (the state's clock)."""

    level: float
    at: float


_V = TypeVar("_V", bytes, int, deque[bytes], dict[str, float], _Meter)


@dataclass(slots=True)
class _Entry:
    value: bytes | int | deque[bytes] | dict[str, float] | _Meter
    expires_at: float | None


def _check_ttl(ttl_s: float) -> None:
    if not ttl_s > 0:
        raise ValueError("ttl_s must be > 0")


class LocalState:
    """In-process :class:`~billumy.cache.base.SharedState`, limited to ``max_keys`` keys.

    Expired keys are dropped when touched. When a new key would exceed ``max_keys``, expired
    keys at the cold end are dropped first, then the least recently used key; a long-running
    process therefore never holds more than ``max_keys`` keys, whatever callers do.

    ``clock`` (seconds, monotonic) times the rate meters of :meth:`throttle`; tests pass their
    own. Expiry always runs on :func:`time.monotonic`.
    """

    def __init__(
        self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self._max_keys = max_keys
        self._clock = clock
        # Least recently used first: makes eviction popitem(last=False), O(1).
        self._data: OrderedDict[str, _Entry] = OrderedDict()

    @property
    def backend(self) -> str:
        """Always ``"local"``."""
        return "local"

    def __len__(self) -> int:
        """Keys held, counting expired ones not yet dropped."""
        return len(self._data)

    def clear(self) -> None:
        """Forget every key."""
        self._data.clear()

    # -- internals ---------------------------------------------------------------------------

    def _entry(self, key: str) -> _Entry | None:
        """The live entry for ``key`` (marked recently used), dropping it if expired."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry

    def _typed(self, key: str, kind: type[_V]) -> _V | None:
        entry = self._entry(key)
        if entry is None:
            return None
        if not isinstance(entry.value, kind):
            # Redis answers WRONGTYPE here; the same mistake fails the same way.
            raise TypeError("key holds a value of another kind")
        return entry.value

    def _store(self, key: str, value: _Entry) -> None:
        if key not in self._data:
            self._make_room()
        self._data[key] = value
        self._data.move_to_end(key)

    def _make_room(self) -> None:
        now = time.monotonic()
        # Drop a few expired keys from the cold end so that dead keys go before live ones;
        # bounded so that one insert stays O(1).
        for _ in range(8):
            if not self._data:
                return
            oldest = next(iter(self._data.values()))
            if oldest.expires_at is None or oldest.expires_at > now:
                break
            self._data.popitem(last=False)
        while len(self._data) >= self._max_keys:
            self._data.popitem(last=False)

    # -- SharedState -------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The value, or None if missing or expired."""
        entry = self._entry(key)
        if entry is None:
            return None
        if isinstance(entry.value, int):
            return str(entry.value).encode()  # a counter reads as Redis would show it
        if not isinstance(entry.value, bytes):
            raise TypeError("key holds a value of another kind")
        return entry.value

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value``, expiring after ``ttl_s`` seconds (> 0)."""
        _check_ttl(ttl_s)
        self._store(key, _Entry(bytes(value), time.monotonic() + ttl_s))

    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        self._data.pop(key, None)

    async def incr(self, key: str, amount: int, ttl_s: float) -> int:
        """Add ``amount`` to a fixed-window counter (see the protocol) and return it."""
        _check_ttl(ttl_s)
        entry = self._entry(key)
        if entry is None:
            self._store(key, _Entry(amount, time.monotonic() + ttl_s))
            return amount
        if isinstance(entry.value, bytes):
            entry.value = int(entry.value)  # ValueError like Redis for a non-integer
        if not isinstance(entry.value, int):
            raise TypeError("key holds a value of another kind")
        entry.value += amount
        if entry.expires_at is None:
            entry.expires_at = time.monotonic() + ttl_s
        return entry.value

    async def get_int(self, key: str) -> int:
        """A counter's value; 0 if missing or expired."""
        raw = await self.get(key)
        return 0 if raw is None else int(raw)

    async def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires; None if missing or without expiry."""
        entry = self._entry(key)
        if entry is None or entry.expires_at is None:
            return None
        return max(0.0, entry.expires_at - time.monotonic())

    async def throttle(self, key: str, rate: int, period_s: float, burst: int) -> Admission:
        """Admit one request against a smooth rate; see the protocol."""
        check_meter(rate, period_s, burst)
        now = self._clock()
        state = self._typed(key, _Meter)
        level, admission = meter(
            0.0 if state is None else state.level,
            0.0 if state is None else now - state.at,
            rate=rate,
            period_s=period_s,
            burst=burst,
        )
        if admission.allowed:
            # Empty again after reset_s: the key may go then, reading as level 0.
            self._store(key, _Entry(_Meter(level, now), time.monotonic() + admission.reset_s))
        return admission

    async def acquire_slot(self, key: str, holder: str, limit: int, lease_s: float) -> bool:
        """Take one of ``limit`` slots for ``holder``; see the protocol."""
        _check_ttl(lease_s)
        now = time.monotonic()
        slots = self._typed(key, dict)
        if slots is None:
            slots = {}
        else:
            for stale in [h for h, taken in slots.items() if taken <= now - lease_s]:
                del slots[stale]
        if holder not in slots and len(slots) >= limit:
            return False
        slots[holder] = now
        # The newest slot expires last, so the whole set may go when it does.
        self._store(key, _Entry(slots, now + lease_s))
        return True

    async def release_slot(self, key: str, holder: str) -> None:
        """Free ``holder``'s slot; releasing a slot not held is not an error."""
        slots = self._typed(key, dict)
        if slots is None:
            return
        slots.pop(holder, None)
        if not slots:
            del self._data[key]

    async def push_window(self, key: str, items: list[bytes], keep: int, ttl_s: float) -> None:
        """Append ``items``, keep only the newest ``keep`` (>= 1), refresh the expiry."""
        _check_ttl(ttl_s)
        if keep < 1:
            raise ValueError("keep must be >= 1")
        window = self._typed(key, deque)
        if window is None:
            if not items:
                return  # like RPUSH of nothing: no empty list is created
            window = deque()
        window.extend(bytes(item) for item in items)
        while len(window) > keep:
            window.popleft()
        self._store(key, _Entry(window, time.monotonic() + ttl_s))

    async def read_window(self, key: str) -> list[bytes]:
        """The list, oldest first; empty if missing."""
        window = self._typed(key, deque)
        return [] if window is None else list(window)

    async def ping(self) -> bool:
        """Always True: memory is always there."""
        return True

    async def aclose(self) -> None:
        """Drop every key."""
        self.clear()
