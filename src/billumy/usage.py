"""Usage per key, day and model, written to the store in batches.

One upsert per request costs more than proxying the request itself, so requests add to
in-memory counters and a background task writes them every ``interval_s`` seconds (and at
shutdown). A failed write keeps the counters for the next round, logging a warning; usage is
never a reason to fail a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date

from billumy.auth import Principal
from billumy.store.base import UsageStore, today

log = logging.getLogger(__name__)


class RequestTokens:
    """The tokens of the request being served ([prompt, completion]), for its access-log line:
    the access log opens a fresh count for each request (:meth:`counting`); tasks started
    while serving it share it. One per app, so two apps in one process never mix counts."""

    def __init__(self) -> None:
        self._current: ContextVar[list[int] | None] = ContextVar("request_tokens", default=None)

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[int]]:
        """A fresh count, current until the block ends; read it after the request."""
        tokens = [0, 0]
        token = self._current.set(tokens)
        try:
            yield tokens
        finally:
            self._current.reset(token)

    def note(self, prompt: int, completion: int) -> None:
        """Add to the current request's token counts (nothing outside a request)."""
        tokens = self._current.get()
        if tokens is not None:
            tokens[0] += prompt
            tokens[1] += completion


@dataclass
class _Counts:
    key_name: str
    requests: int = 0
    prompt: int = 0
    completion: int = 0

    def add(self, requests: int, prompt: int, completion: int) -> None:
        self.requests += requests
        self.prompt += prompt
        self.completion += completion


class UsageBuffer:
    def __init__(self, store: UsageStore, *, interval_s: float = 1.0) -> None:
        self.store = store
        self.interval_s = interval_s
        self._pending: dict[tuple[str, date, str], _Counts] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def record(self, caller: Principal, model: str, prompt: int, completion: int) -> None:
        """Count one request (never fails, never waits for the store)."""
        key = (caller.key_id, today(), model)
        counts = self._pending.get(key)
        if counts is None:
            counts = self._pending[key] = _Counts(caller.key_name)
        counts.add(1, max(prompt, 0), max(completion, 0))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()

    async def flush(self) -> None:
        """Write every pending counter; those that fail stay pending for the next round."""
        async with self._lock:
            pending, self._pending = self._pending, {}
            for (key_id, day, model), counts in pending.items():
                try:
                    await self.store.record_usage(
                        key_id,
                        model,
                        counts.prompt,
                        counts.completion,
                        day=day,
                        requests=counts.requests,
                    )
                except Exception:
                    log.warning(
                        "could not record usage; will retry",
                        extra={"key_name": counts.key_name, "model": model},
                        exc_info=True,
                    )
                    again = self._pending.setdefault((key_id, day, model), _Counts(counts.key_name))
                    again.add(counts.requests, counts.prompt, counts.completion)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
