"""``create_app(settings)`` builds everything; nothing happens at import time."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from billumy import __version__
from billumy.api import admin, chats, errors, insights, models, ollama, openai, system
from billumy.api.console import console_routes
from billumy.api.deps import LeanRoute, key_scopes
from billumy.auth import Authenticator, UnknownKeys
from billumy.cache.base import SharedState
from billumy.cache.limits import FairUse
from billumy.cache.local import LocalState
from billumy.cache.redis import RedisState
from billumy.cache.resilient import ResilientState
from billumy.cache.responses import ResponseCache
from billumy.catalog import Catalog, ModelEntry
from billumy.context import ContextControl
from billumy.conversations import ConversationService
from billumy.drain import Drain
from billumy.durations import parse_duration
from billumy.edge import Edge, has_body, linger
from billumy.engines.maestro import Maestro
from billumy.engines.remote import EngineClient
from billumy.engines.router import Router
from billumy.engines.supervisor import EngineOptions, EngineSupervisor
from billumy.errors import PayloadTooLargeError
from billumy.inference import InferenceService
from billumy.insights import sandbox
from billumy.insights.datasets import Datasets
from billumy.insights.importer import import_files
from billumy.insights.service import InsightService
from billumy.logs import REQUEST_ID
from billumy.metrics import Metrics
from billumy.services import Services
from billumy.settings import Settings
from billumy.store import open_store
from billumy.usage import RequestTokens, UsageBuffer

access_log = logging.getLogger("billumy.access")
log = logging.getLogger(__name__)


_DATA_PATHS = ("/datasets", "/api/insights")


class BodyLimit:
    """Rejects request bodies over ``limit`` bytes with 413, declared or streamed.

    The 413 comes when the route first reads the body, never before: routes check the key
    from the headers first, so a caller without one learns nothing but 401. The 413 says
    ``Connection: close``. Any 4xx answered before the body was all read (this 413, a 401 or
    429 from the headers) goes out whole, and then the rest of the body is read and dropped
    (at most ``max(limit, 1 MiB)`` more bytes, for at most a few seconds; see
    :func:`billumy.edge.linger`), so that a client still writing it reads the answer instead
    of a connection reset."""

    def __init__(self, app: ASGIApp, limit: int, data_limit: int | None = None) -> None:
        self.app = app
        self.limit = limit
        # Data uploads (datasets, inline insight data) may be larger than model requests.
        self.data_limit = max(limit, data_limit or 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.data_limit if path.startswith(_DATA_PATHS) else self.limit
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
                break
        too_large = declared is not None and declared.isdigit() and int(declared) > limit
        seen = 0
        refused = False
        ended = False

        async def limited() -> Message:
            nonlocal seen, refused, ended
            if too_large:
                refused = True
                raise PayloadTooLargeError(
                    f"request body too large (limit {limit} bytes)",
                    headers={"Connection": "close"},
                )
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                ended = not message.get("more_body", False)
                if seen > limit:
                    refused = True
                    raise PayloadTooLargeError(
                        f"request body too large (limit {limit} bytes)",
                        headers={"Connection": "close"},
                    )
            return message

        follows, expect = has_body(scope["headers"])

        async def lingering(message: Message) -> None:
            if (
                follows
                and not ended
                and message["type"] == "http.response.body"
                and not message.get("more_body", False)
                and (refused or 400 <= status < 500)
            ):
                # Answered before the body was all read (a 413, or a 401 or 429 from the
                # headers): the answer first, whole; then the body's rest, dropped; the close.
                await send({**message, "more_body": True})
                if not expect or seen:
                    await linger(receive, max(limit, 1 << 20))
                await send({"type": "http.response.body", "body": b""})
                return
            await send(message)

        status = 0

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await lingering(message)

        await self.app(scope, limited, watched)


class AccessLog:
    """One structured line per request: a request id (taken from X-Request-ID or made), the
    client, method, path and route template, status, duration, tokens in and out and the
    key's name (never the key); and the request's count and duration in the metrics."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics | None = None, tokens: RequestTokens | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.tokens = tokens or RequestTokens()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = (
            incoming
            if 0 < len(incoming) <= 128 and incoming.isprintable()
            else secrets.token_hex(8)
        )
        scope.setdefault("state", {})["request_id"] = request_id
        identified = REQUEST_ID.set(request_id)
        status = 500
        with self.tokens.counting() as tokens:
            started = time.perf_counter()

            async def send_wrapper(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers = message.setdefault("headers", [])
                    headers.append((b"x-request-id", request_id.encode()))
                    present = {name.lower() for name, _ in headers}
                    for name, value in scope["state"].get("rate_headers", {}).items():
                        if name.lower().encode() not in present:
                            headers.append((name.lower().encode(), value.encode()))
                await send(message)

            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                elapsed = time.perf_counter() - started
                REQUEST_ID.reset(identified)
                route = getattr(scope.get("route"), "path", "unmatched")
                if self.metrics is not None:
                    self.metrics.requests.labels(route, scope["method"], str(status)).inc()
                    self.metrics.latency.labels(route).observe(elapsed)
                principal = scope.get("state", {}).get("principal")
                # The forwarded address when a trusted proxy sent the request (see create_app).
                client = scope.get("client")
                access_log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "client": client[0] if client else None,
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "prompt_tokens": tokens[0],
                        "completion_tokens": tokens[1],
                        "key_name": getattr(principal, "key_name", None),
                    },
                )


def key_patterns(routes: list[BaseRoute]) -> tuple[list[re.Pattern[str]], list[re.Pattern[str]]]:
    """The path patterns of the ``routes`` that check a key (lean inference routes, and
    FastAPI routes whose dependencies ask for one), and of those that do not."""
    keyed: list[re.Pattern[str]] = []
    public: list[re.Pattern[str]] = []
    for route in routes:
        if isinstance(route, LeanRoute):
            keyed.append(route.path_regex)
        elif isinstance(route, APIRoute):
            needs = key_scopes(route.dependant) is not None
            (keyed if needs else public).append(route.path_regex)
    return keyed, public


def shared_state(settings: Settings) -> SharedState:
    """Redis (falling back to in-process state while it is down) or in-process state."""
    if settings.redis_url is None:
        return LocalState()
    redis = RedisState(settings.redis_url.get_secret_value())
    return ResilientState(redis, LocalState())


def engine_options(settings: Settings) -> EngineOptions:
    """How the engine process runs, from the settings."""
    keep_alive = parse_duration(settings.keep_alive)
    return EngineOptions(
        threads=settings.threads,
        num_parallel=settings.num_parallel,
        batching=settings.engine_batching,
        max_queue=settings.max_queue,
        keep_alive_s=300.0 if keep_alive is None else keep_alive,
        log_level=settings.log_level,
        max_crashes=settings.engine_max_crashes,
        nice=settings.engine_nice,
    )


def create_app(settings: Settings, *, drain: Drain | None = None) -> FastAPI:
    """Build the ASGI app. Engines, store and catalog are created in the lifespan, which puts
    them at ``app.state.services`` (:class:`~billumy.services.Services`). ``drain`` is the
    server's (see ``billumy.server``); by default the app has its own."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(settings.resolved_database_url)
        await store.ainit()
        catalog = Catalog(settings, store)
        await catalog.aload()
        state = shared_state(settings)
        cache = ResponseCache(state, ttl_s=settings.cache_ttl)
        fair_use = FairUse(
            state, quota_on_outage=settings.quota_on_outage, rate_burst=settings.rate_burst
        )
        # llama.cpp runs in the engine process, never here: this worker's own supervised one,
        # or the one that ``serve --workers N`` started for all of its workers.
        supervisor: EngineSupervisor | None = None
        socket_path = settings.engine_socket
        if socket_path is None:
            supervisor = EngineSupervisor(engine_options(settings))
            supervisor.start()
            socket_path = supervisor.socket_path
        engine = EngineClient(socket_path)
        usage = UsageBuffer(store)
        usage.start()
        router = Router(
            settings,
            catalog,
            engine,
            on_outcome=lambda deployment, kind: metrics.outcomes.labels(deployment, kind).inc(),
        )
        router.start()
        auth = Authenticator(
            store,
            default_limits=settings.default_limits(),
            cache_ttl=settings.key_cache_ttl,
            # Shared through Redis by every process on the same key store.
            unknown=UnknownKeys(
                settings.key_negative_cache_ttl,
                shared=state,
                namespace=hashlib.sha256(settings.resolved_database_url.encode()).hexdigest()[:16],
            ),
            on_lookup=lambda found: metrics.key_lookups.labels(
                "found" if found else "unknown"
            ).inc(),
        )
        inference = InferenceService(
            settings=settings,
            catalog=catalog,
            engine=engine,
            router=router,
            cache=cache,
            fair_use=fair_use,
            usage=usage.record,
            metrics=metrics,
            tokens=tokens,
        )
        if settings.tiers:
            inference.maestro = Maestro(settings.tiers, inference.classify, state)

        def live() -> dict[str, Any]:
            return {
                "queue_depth": engine.queue_depth,
                "engine": engine.runner(),
                "engine_stats": engine.stats(),
                "deployments": router.status(),
                "tiers": inference.maestro.decisions if inference.maestro else {},
            }

        metrics.watch(live)

        async def count_tokens(entry: ModelEntry, texts: list[str]) -> list[int]:
            return await engine.count_tokens(entry.base.path(), texts)

        # Datasets and insight records that an earlier release kept as files: once.
        await import_files(store, settings.data_dir, database_url=settings.resolved_database_url)
        insights_service = InsightService(
            settings=settings,
            inference=inference,
            datasets=Datasets(
                store,
                settings.data_dir,
                max_tenant_bytes=settings.max_dataset_storage_bytes,
                cache_max_bytes=settings.dataset_cache_max_bytes,
            ),
        )
        # DuckDB spill left by a worker killed mid-query (its process is gone).
        if insights_service.limits.temp_directory is not None:
            await asyncio.to_thread(sandbox.sweep, insights_service.limits.temp_directory)
        conversations = ConversationService(
            store=store,
            inference=inference,
            context=ContextControl(store=store, state=state, count_tokens=count_tokens),
            max_message_chars=settings.max_message_chars,
        )
        app.state.services = Services(
            settings=settings,
            store=store,
            catalog=catalog,
            engine=engine,
            router=router,
            auth=auth,
            shared_state=state,
            fair_use=fair_use,
            inference=inference,
            insights=insights_service,
            conversations=conversations,
            metrics=metrics,
            drain=streams,
        )
        try:
            yield
        finally:
            await metrics.aclose()
            await asyncio.to_thread(insights_service.sources.close)
            await conversations.aclose()
            await router.aclose()
            await engine.aclose()
            if supervisor is not None:
                await asyncio.to_thread(supervisor.stop)
            await usage.aclose()
            await store.aclose()
            await state.aclose()

    metrics = Metrics()
    tokens = RequestTokens()
    streams = drain or Drain()
    app = FastAPI(
        title="Billumy",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    errors.install(app, metrics=metrics)
    routers = (
        system.router,
        ollama.router,
        models.router,
        chats.router,
        openai.router,
        admin.router,
    )
    for included in (*routers, insights.router):
        app.include_router(included)
    # The web console and the API reference: static pages, their data from the API above.
    app.router.routes.extend(console_routes(settings))
    # The hot paths first: the router tries routes in order.
    app.router.routes[:0] = [*ollama.routes, *openai.routes]
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        data_limit=settings.max_dataset_bytes + 64 * 1024,  # room for multipart framing
    )
    app.add_middleware(AccessLog, metrics=metrics, tokens=tokens)
    # Refusals that need neither routing nor the body, outside the access log (billumy.edge).
    keyed, public = key_patterns(
        [
            *ollama.routes,
            *openai.routes,
            *(route for r in (*routers, insights.router) for route in r.routes),
        ]
    )
    # The routes that take a parallel slot: the lean generation routes and a chat's messages.
    slotted = [r.path_regex for r in (*ollama.routes, *openai.routes)] + [
        r.path_regex
        for r in chats.router.routes
        if isinstance(r, APIRoute) and r.path.endswith("/messages") and "POST" in (r.methods or ())
    ]
    app.add_middleware(
        Edge,
        services=lambda: getattr(app.state, "services", None),
        metrics=metrics,
        keyed=keyed,
        public=public,
        slotted=slotted,
    )
    if settings.trusted_proxies:
        # Outermost, so everything inside (the access log too) sees the forwarded client and
        # scheme; they are taken only from a peer in trusted_proxies, otherwise left alone.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app
