"""An in-process engine for the fast tests, and the app served over it.

:class:`FakeEngine` has the engine interface of :class:`billumy.engines.remote.EngineClient`
(what the inference service and the router call in place of the engine process that runs
llama.cpp): it answers a generation with scripted pieces, cut at ``num_predict`` as llama.cpp
would, and records every generation it was asked for and how each one ended. Everything
above it is the real code: :func:`served` builds the app with ``create_app`` and puts the real
inference service, router, catalog, keys (SQLite) and limits in it. The end-to-end tests
(``tests/e2e``) remain the proof with the real engine.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import httpx
import orjson
import pytest
from fastapi import FastAPI

from billumy.app import create_app
from billumy.auth import Authenticator, Principal, create_key
from billumy.cache.limits import FairUse
from billumy.cache.local import LocalState
from billumy.cache.responses import ResponseCache
from billumy.catalog import Catalog
from billumy.conversations import ConversationService
from billumy.drain import Drain
from billumy.engines.base import Chunk, Embeddings, Generation, LoadedModel
from billumy.engines.remote import EngineClient
from billumy.engines.router import Router
from billumy.inference import InferenceService
from billumy.insights.service import InsightService
from billumy.metrics import Metrics
from billumy.services import Services
from billumy.settings import Settings
from billumy.store import open_store
from billumy.store.base import Store

Ending = Literal["finished", "failed", "closed", "cancelled"]
PROMPT_TOKENS = 7
LOAD_NS = 1234


@dataclass
class Call:
    """One generation the engine was asked for, and how it ended."""

    generation: Generation
    pieces: int = 0  # the text pieces it yielded
    ending: Ending | None = None  # None: still running


@dataclass
class FakeEngine:
    """Answers every generation with ``pieces`` (at most ``num_predict`` of them, then
    ``done_reason`` "length"), the last chunk with ``PROMPT_TOKENS`` prompt tokens and one
    completion token per piece. ``error`` is raised after ``error_after`` pieces (0: before the
    first chunk); ``gate``, when set, is awaited before the first chunk (a model loading, a
    queue); ``endless`` yields pieces until the consumer stops, past ``num_predict``."""

    pieces: list[str] = field(default_factory=lambda: ["Hel", "lo", ", ", "world"])
    error: Exception | None = None
    error_after: int = 0
    gate: asyncio.Event | None = None
    endless: bool = False
    calls: list[Call] = field(default_factory=list)
    loads: list[tuple[Path, int, float | None, bool]] = field(default_factory=list)
    unloads: list[Path] = field(default_factory=list)
    embeds: list[list[str]] = field(default_factory=list)
    queue_depth: int = 0
    asked: asyncio.Event = field(default_factory=asyncio.Event)  # set at the first generation

    async def generate(self, request: Generation) -> AsyncIterator[Chunk]:
        call = Call(request)
        self.calls.append(call)
        self.asked.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            async for chunk in self._chunks(request, call):
                yield chunk
        except GeneratorExit:
            call.ending = "closed"  # the consumer stopped: the engine process would cancel
            raise
        except asyncio.CancelledError:
            call.ending = "cancelled"
            raise
        except Exception:
            call.ending = "failed"
            raise
        call.ending = "finished"

    async def _chunks(self, request: Generation, call: Call) -> AsyncIterator[Chunk]:
        index = 0
        while self.endless or index < len(self.pieces):
            if self.error is not None and index == self.error_after:
                raise self.error
            if index == request.num_predict and not self.endless:
                yield self._last(call, "length")
                return
            piece = self.pieces[index % len(self.pieces)]
            index += 1
            call.pieces = index
            yield Chunk(text=piece)
            await asyncio.sleep(0)  # a token's worth of waiting: the consumer runs between
        if self.error is not None and index == self.error_after:
            raise self.error
        yield self._last(call, "stop")

    @staticmethod
    def _last(call: Call, reason: Literal["stop", "length"]) -> Chunk:
        return Chunk(
            done=True,
            done_reason=reason,
            context=[1, 2, 3] if call.generation.mode == "generate" else None,
            total_duration=5_000_000,
            load_duration=1_000,
            prompt_eval_count=PROMPT_TOKENS,
            prompt_eval_duration=1_000_000,
            eval_count=call.pieces,
            eval_duration=4_000_000,
        )

    async def embed(
        self,
        *,
        model_path: Path,
        model_name: str,
        inputs: list[str],
        truncate: bool,
        num_ctx: int,
        keep_alive_s: float | None,
    ) -> Embeddings:
        self.embeds.append(inputs)
        return Embeddings([[3.0, 4.0] for _ in inputs], len(inputs), 10, 0)

    async def load(
        self,
        model_path: Path,
        model_name: str,
        num_ctx: int,
        keep_alive_s: float | None,
        *,
        extend_only: bool = True,
    ) -> int:
        self.loads.append((model_path, num_ctx, keep_alive_s, extend_only))
        return LOAD_NS

    async def unload(self, model_path: Path) -> None:
        self.unloads.append(model_path)

    def loaded(self) -> list[LoadedModel]:
        return [
            LoadedModel(c.generation.model_name, c.generation.model_path, 1, datetime.now(UTC), 1)
            for c in self.calls[-1:]
        ]

    async def count_tokens(self, model_path: Path, texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def runner(self) -> dict[str, Any]:
        return {}

    async def aclose(self) -> None:
        return None


@dataclass
class Usage:
    """The usage recorder the inference service calls once per generation it served."""

    calls: list[tuple[str, str, int, int]] = field(default_factory=list)

    async def record(self, caller: Principal, model: str, prompt: int, completion: int) -> None:
        self.calls.append((caller.key_name, model, prompt, completion))


class Unused:
    """A service the routes under test must not touch."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        raise AssertionError(f"the route used services.{self.name}.{attr}")


@dataclass
class HungUp:
    """What a client that hung up was sent before (and after) it went."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    pieces: list[bytes] = field(default_factory=list)


@dataclass
class Served:
    """The app over a :class:`FakeEngine`, and what a test looks at."""

    app: FastAPI
    services: Services
    engine: FakeEngine
    usage: Usage
    key: str  # a key with the inference scope (key name "t")
    key_id: str
    store: Store

    @property
    def inference(self) -> InferenceService:
        return self.services.inference

    def client(self, request_id: str = "req-fake-1") -> httpx.AsyncClient:
        """An httpx client on the app in-process (the whole answer read before it returns);
        a failure of ours is answered as the server answers it, not raised."""
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        headers = {"Authorization": f"Bearer {self.key}", "X-Request-ID": request_id}
        return httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers)

    async def hang_up(self, path: str, body: dict[str, Any], *, after: int) -> HungUp:
        """POST ``body`` to ``path`` on the app, as a client that hangs up once ``after``
        pieces of the answer's body have come (0: as soon as the request is sent).

        httpx's ASGITransport reads the whole answer before it returns, so this drives the
        ASGI app itself: ``receive`` gives the body, then ``http.disconnect`` when the client
        has gone (what a server tells the app when the connection closes)."""
        payload = orjson.dumps(body)
        gone = asyncio.Event()
        if after == 0:
            gone.set()
        sent = HungUp()
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": payload, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                sent.status = message["status"]
                sent.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            elif message["type"] == "http.response.body" and message.get("body"):
                sent.pieces.append(message["body"])
                if len(sent.pieces) >= after:
                    gone.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"test"),
                (b"authorization", f"Bearer {self.key}".encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"x-request-id", b"req-gone"),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("test", 80),
        }
        # A guard, not a measure: a generation that never learns of the hang-up hangs here.
        await asyncio.wait_for(self.app(scope, receive, send), timeout=30)
        return sent


@asynccontextmanager
async def served(
    tmp_path: Path,
    engine: FakeEngine | None = None,
    *,
    parallel: int | None = None,
    **settings: Any,
) -> AsyncIterator[Served]:
    """The app that ``create_app`` builds, its services installed as its lifespan would, with
    ``engine`` (a new :class:`FakeEngine` by default) in place of the engine process; one
    inference key (``parallel``: its parallel-request limit). ``settings`` override the
    defaults (the response cache is off unless ``cache_ttl`` says otherwise)."""
    config = Settings(data_dir=tmp_path / "data", **{"cache_ttl": 0, **settings})
    store = open_store(config.resolved_database_url)
    await store.ainit()
    try:
        key, record = await create_key(store, name="t", scopes=["inference"], parallel=parallel)
        catalog = Catalog(config, store)
        await catalog.aload()
        engine = engine if engine is not None else FakeEngine()
        client = cast(EngineClient, engine)
        state = LocalState()
        fair_use = FairUse(state)
        router = Router(config, catalog, client)
        usage = Usage()
        metrics = Metrics()
        inference = InferenceService(
            settings=config,
            catalog=catalog,
            engine=client,
            router=router,
            cache=ResponseCache(state, ttl_s=config.cache_ttl),
            fair_use=fair_use,
            usage=usage.record,
            metrics=metrics,
        )
        app = create_app(config)
        services = Services(
            settings=config,
            store=store,
            catalog=catalog,
            engine=client,
            router=router,
            auth=Authenticator(store, default_limits=config.default_limits()),
            shared_state=state,
            fair_use=fair_use,
            inference=inference,
            insights=cast(InsightService, Unused("insights")),
            conversations=cast(ConversationService, Unused("conversations")),
            metrics=metrics,
            drain=Drain(),
        )
        app.state.services = services
        try:
            yield Served(app, services, engine, usage, key, record.id, store)
        finally:
            await router.aclose()
    finally:
        await store.aclose()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Settings from the defaults only: no BILLUMY_* variable, no config file."""
    for name in list(os.environ):
        if name.startswith("BILLUMY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BILLUMY_CONFIG", str(tmp_path / "absent.toml"))
    yield
