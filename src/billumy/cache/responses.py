"""Exact-match response cache over :class:`SharedState`.

Keys hash everything that decides the answer: tenant (a cache never crosses tenants), model
name and digest (persona included), the prompt or messages, every option and the format.
Only deterministic requests are cached by default: temperature 0, or a fixed seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson

from billumy.cache.base import SharedState, StateUnavailableError
from billumy.engines.base import Chunk, Generation, closing

log = logging.getLogger(__name__)

CacheStatus = Literal["hit", "miss", "bypass"]


@dataclasses.dataclass(frozen=True)
class CachePolicy:
    """What a request allows: read a stored answer, store this one."""

    read: bool
    write: bool

    @classmethod
    def from_header(cls, cache_control: str | None) -> CachePolicy:
        directives = {d.strip().lower() for d in (cache_control or "").split(",")}
        if "no-store" in directives:
            return cls(read=False, write=False)
        if "no-cache" in directives:
            return cls(read=False, write=True)
        return cls(read=True, write=True)


def deterministic(generation: Generation) -> bool:
    s = generation.sampling
    return s.temperature == 0 or (s.seed is not None and s.seed >= 0)


def cache_key(kind: str, tenant: str, digest: str, payload: dict[str, Any]) -> str:
    blob = orjson.dumps(
        {"kind": kind, "tenant": tenant, "digest": digest, "payload": payload},
        option=orjson.OPT_SORT_KEYS,
    )
    return f"cache:{kind}:{hashlib.sha256(blob).hexdigest()}"


def generation_key(tenant: str, digest: str, generation: Generation) -> str:
    fields = dataclasses.asdict(generation)
    # Where the weights live, how long they stay loaded and whether the answer is streamed do
    # not change the answer; the grammar is made from the format, which is in the key.
    for name in ("model_path", "keep_alive_s", "keep_alive_extends", "stream", "grammar"):
        fields.pop(name)
    return cache_key("generate", tenant, digest, fields)


class ResponseCache:
    """Stores whole generations (text pieces + final statistics) and replays them."""

    def __init__(self, state: SharedState, *, ttl_s: float, enabled: bool = True) -> None:
        self.state = state
        self.ttl_s = ttl_s
        self.enabled = enabled and ttl_s > 0

    async def get(self, key: str) -> Any | None:
        try:
            raw = await self.state.get(key)
        except StateUnavailableError:
            return None
        return orjson.loads(raw) if raw is not None else None

    async def put(self, key: str, value: Any) -> None:
        try:
            await self.state.set(key, orjson.dumps(value), self.ttl_s)
        except StateUnavailableError:
            log.debug("response cache unavailable; not stored")

    async def stream(
        self, key: str | None, policy: CachePolicy, produce: AsyncIterator[Chunk]
    ) -> tuple[CacheStatus, AsyncIterator[Chunk]]:
        """A cached replay (hit), or ``produce`` recorded into the cache as it goes (miss)."""
        if key is None or not self.enabled:
            return "bypass", produce
        if policy.read:
            stored = await self.get(key)
            if stored is not None:
                await produce.aclose()  # type: ignore[attr-defined]
                return "hit", _replay(stored)
        if not policy.write:
            return "miss", produce
        return "miss", self._record(key, produce)

    async def _record(self, key: str, produce: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        pieces: list[str] = []
        # Closed with this generator, not later by the collector: the generation behind it
        # stops and releases the key's parallel slot as soon as the client is gone.
        async with closing(produce) as chunks:
            async for chunk in chunks:
                if chunk.done:
                    final = dataclasses.asdict(chunk)
                    await self.put(key, {"pieces": pieces, "final": final})
                else:
                    pieces.append(chunk.text)
                yield chunk


async def _replay(stored: dict[str, Any]) -> AsyncIterator[Chunk]:
    for piece in stored["pieces"]:
        yield Chunk(text=piece, more=True)  # the whole answer is in hand
    final = Chunk(**{**stored["final"], "more": False})
    # Nothing was loaded or evaluated for this answer.
    final.load_duration = 0
    yield final
