"""Routing: a model name served by deployments (the embedded engine or upstream servers).

Every deployment is a :class:`~billumy.engines.base.Backend`; so is the embedded engine for the
catalog's models without deployments. Nothing here asks which kind answers.

For each request the router picks the deployment with the fewest outstanding requests per
unit of weight among those whose circuit is closed, holds one of its concurrency slots (or
waits in its bounded queue) and streams its chunks. A failure before the first chunk is
retried on another deployment of the same model, then on the configured fallback models; once
a chunk has gone out, a failure ends the stream in-band. Health checks run in the background
and open or half-open the circuits; a circuit opened by failures lets one probe through after
its cooldown. Upstream addresses come only from configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from billumy.catalog import Catalog, ModelEntry, normalize_name
from billumy.engines.base import Backend, Chunk, Embedding, Embeddings, Generation, closing
from billumy.engines.embedded import EmbeddedBackend
from billumy.engines.ollama import OllamaUpstream
from billumy.engines.openai import OpenAIUpstream
from billumy.engines.remote import EngineClient
from billumy.engines.upstream import Upstream
from billumy.errors import (
    BillumyError,
    UpstreamError,
    UpstreamUnavailableError,
)
from billumy.settings import DeploymentConfig, Settings

log = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]
OutcomeKind = Literal["completed", "failed", "cancelled"]
EMBEDDED = "embedded"


@dataclass
class CircuitBreaker:
    """Closed: traffic flows. ``failures`` consecutive failures open it; after ``cooldown_s``
    (or a passing health check) it is half-open and lets one probe through, whose success
    closes it again and whose failure opens it for another cooldown."""

    failures: int
    cooldown_s: float
    state: BreakerState = "closed"
    consecutive: int = 0
    opened_at: float = 0.0
    probing: bool = False
    clock: Callable[[], float] = time.monotonic

    def allows(self) -> bool:
        if self.state == "open" and self.clock() - self.opened_at >= self.cooldown_s:
            self.state = "half_open"
        if self.state == "half_open":
            return not self.probing
        return self.state == "closed"

    def begin(self) -> None:
        if self.state == "half_open":
            self.probing = True

    def success(self) -> None:
        if self.state != "closed":
            log.info("circuit closed")
        self.state, self.consecutive, self.probing = "closed", 0, False

    def failure(self) -> None:
        self.consecutive += 1
        self.probing = False
        if self.state == "half_open" or self.consecutive >= self.failures:
            self.trip()

    def trip(self) -> None:
        self.state, self.opened_at, self.probing = "open", self.clock(), False

    def healthy(self) -> None:
        """A passing health check: an open circuit may be probed now."""
        if self.state == "open":
            self.state = "half_open"

    def retry_after(self) -> int:
        if self.state != "open":
            return 1
        return max(1, int(self.cooldown_s - (self.clock() - self.opened_at)) + 1)


class Outcome:
    """How one attempt on a backend ended, recorded once, as soon as it is known: completed at
    the last chunk (not when the consumer later closes the stream), failed at the error that
    ended it, cancelled when the consumer went before the end."""

    def __init__(self, record: Callable[[OutcomeKind, BaseException | None], None]) -> None:
        self._record = record
        self.kind: OutcomeKind | None = None

    def completed(self) -> None:
        self._set("completed", None)

    def ended(self, exc: BaseException) -> None:
        """The attempt stopped with ``exc``: the consumer gone (GeneratorExit, cancellation)
        or a failure."""
        if isinstance(exc, GeneratorExit | asyncio.CancelledError):
            self._set("cancelled", exc)
        else:
            self._set("failed", exc)

    def _set(self, kind: OutcomeKind, exc: BaseException | None) -> None:
        if self.kind is None:
            self.kind = kind
            self._record(kind, exc)


@dataclass
class Deployment:
    """One deployment's live state: concurrency, queue, circuit, last health check."""

    config: DeploymentConfig
    backend: Backend
    breaker: CircuitBreaker
    in_flight: int = 0
    waiting: int = 0
    served: int = 0
    healthy: bool | None = None  # None: not checked yet
    slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.config.max_concurrency)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def provider(self) -> str:
        return self.config.provider

    @property
    def upstream_model(self) -> str:
        return self.config.upstream_model or self.config.model

    def load(self) -> float:
        return (self.in_flight + self.waiting) / self.config.weight

    def has_room(self) -> bool:
        return self.in_flight + self.waiting < self.config.max_concurrency + self.config.max_queue

    def describe(self) -> dict[str, Any]:
        return {
            "deployment": self.name,
            "provider": self.provider,
            "upstream_model": self.upstream_model,
            "state": self.breaker.state,
            "healthy": self.healthy,
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "served": self.served,
        }


@dataclass
class Route:
    """Where a request went: filled in as the router decides (for headers and logs)."""

    deployment: str | None = None
    model: str | None = None  # the model that answered (differs from the request on fallback)
    tried: list[str] = field(default_factory=list)

    def headers(self) -> dict[str, str]:
        return {} if self.deployment is None else {"X-Billumy-Deployment": self.deployment}


def make_upstream(config: DeploymentConfig) -> Upstream:
    """The upstream engine for a deployment's provider."""
    if config.provider == "ollama":
        return OllamaUpstream(config)
    if config.provider == "openai":
        return OpenAIUpstream(config)
    raise ValueError(f"deployment {config.name!r}: provider {config.provider} is not an upstream")


class Router:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        engine: EngineClient,
        *,
        make: Callable[[DeploymentConfig], Upstream] = make_upstream,
        on_outcome: Callable[[str, OutcomeKind], None] | None = None,
    ) -> None:
        self.settings = settings
        # Told every attempt's outcome with its deployment's name (the metrics' counter).
        self.on_outcome = on_outcome
        self.catalog = catalog
        self.engine = engine
        self.fallbacks = {
            normalize_name(name): [normalize_name(m) for m in models]
            for name, models in settings.fallbacks.items()
        }
        self.deployments: dict[str, list[Deployment]] = {}
        for model, configs in catalog.routes.items():
            group = []
            for config in configs:
                breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown)
                backend = self._embedded(config) if config.provider == EMBEDDED else make(config)
                group.append(Deployment(config, backend, breaker))
            self.deployments[model] = group
        # The catalog's models without deployments: each request's own model.
        self.local = EmbeddedBackend(engine, name=EMBEDDED, deadline_s=settings.engine_timeout)
        self._health_task: asyncio.Task[None] | None = None

    def _embedded(self, config: DeploymentConfig) -> EmbeddedBackend:
        """An embedded deployment's backend: its local model, its timeout."""
        name = config.upstream_model or config.model
        target = self.catalog.lookup(name)
        if target is None or target.base.remote:
            raise ValueError(f"deployment {config.name!r}: no local model {name!r}")
        return EmbeddedBackend(
            self.engine, name=config.name, model_path=target.base.path(), deadline_s=config.timeout
        )

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self.all():
            self._health_task = asyncio.create_task(self._health_loop())

    async def aclose(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        for deployment in self.all():
            await deployment.backend.aclose()

    def all(self) -> list[Deployment]:
        return [d for group in self.deployments.values() for d in group]

    async def check_health(self) -> None:
        """One round of health checks on every deployment, concurrently."""
        await asyncio.gather(*(self._check(d) for d in self.all()))

    async def _check(self, deployment: Deployment) -> None:
        try:
            await asyncio.wait_for(
                deployment.backend.health(), timeout=deployment.config.connect_timeout + 5
            )
        except (BillumyError, TimeoutError) as exc:
            if deployment.healthy is not False:
                message = exc.message if isinstance(exc, BillumyError) else "health check timed out"
                log.warning(
                    "deployment unhealthy",
                    extra={"deployment": deployment.name, "reason": message},
                )
            deployment.healthy = False
            if deployment.breaker.state != "open":
                deployment.breaker.trip()
            return
        if deployment.healthy is False:
            log.info("deployment healthy again", extra={"deployment": deployment.name})
        deployment.healthy = True
        deployment.breaker.healthy()

    async def _health_loop(self) -> None:
        while True:
            try:
                await self.check_health()
            except Exception:
                log.exception("health checks failed")
            await asyncio.sleep(self.settings.health_interval)

    # --- choosing ------------------------------------------------------------------------------

    def _pick(self, group: list[Deployment], tried: set[str]) -> Deployment | None:
        candidates = [
            d for d in group if d.name not in tried and d.has_room() and d.breaker.allows()
        ]
        if not candidates:
            return None
        best = min(d.load() for d in candidates)
        ties = [d for d in candidates if d.load() == best]
        if len(ties) == 1:
            return ties[0]
        return random.choices(ties, weights=[d.config.weight for d in ties])[0]  # noqa: S311

    def _unavailable(self, model: str, group: list[Deployment]) -> UpstreamUnavailableError:
        if all(not d.has_room() for d in group if d.breaker.allows()) and any(
            d.breaker.allows() for d in group
        ):
            return UpstreamUnavailableError(f"every deployment of model '{model}' is busy")
        retry = min((d.breaker.retry_after() for d in group), default=1)
        return UpstreamUnavailableError(
            f"no deployment of model '{model}' is available", retry_after=retry
        )

    # --- generation ----------------------------------------------------------------------------

    async def generate(
        self, entry: ModelEntry, generation: Generation, route: Route | None = None
    ) -> AsyncIterator[Chunk]:
        """The chunks of ``generation`` for ``entry``, from the first deployment (or fallback
        model) that answers; failures before the first chunk move on to the next."""
        route = route if route is not None else Route()
        last: BillumyError | None = None
        for target in await self._targets(entry):
            if target.route is None:
                # No deployments configured: the embedded engine serves it directly.
                route.deployment, route.model = EMBEDDED, target.name
                request = generation
                if target is not entry:
                    request = replace(
                        request, model_path=target.base.path(), model_name=target.name
                    )
                async with (
                    self._direct() as outcome,
                    closing(self._chunks(self.local, request, outcome)) as chunks,
                ):
                    async for chunk in chunks:
                        yield chunk
                return
            group = self.deployments[target.route]
            tried: set[str] = set()
            for _ in range(1 + self.settings.route_retries):
                deployment = self._pick(group, tried)
                if deployment is None:
                    last = last or self._unavailable(target.name, group)
                    break
                tried.add(deployment.name)
                route.tried.append(deployment.name)
                started = False
                try:
                    # Closed at once if our consumer stops (not when garbage-collected).
                    async with closing(self._on(deployment, generation)) as chunks:
                        async for chunk in chunks:
                            if not started:
                                started = True
                                route.deployment, route.model = deployment.name, target.name
                            yield chunk
                    return
                except UpstreamError as exc:
                    if started or not exc.retryable:
                        raise
                    last = exc
                    log.warning(
                        "deployment failed before answering; trying another",
                        extra={"deployment": deployment.name, "reason": exc.message},
                    )
        raise last or UpstreamUnavailableError(f"no deployment of model '{entry.name}'")

    async def _targets(self, entry: ModelEntry) -> list[ModelEntry]:
        """The entry, then the fallback models configured for its name or its route."""
        names = self.fallbacks.get(entry.name) or self.fallbacks.get(entry.route or "") or []
        targets = [entry]
        for name in names:
            target = await self.catalog.get(name, tenant=None)  # configured fallbacks
            if all(t.name != target.name for t in targets):
                targets.append(target)
        return targets

    async def _on(self, deployment: Deployment, generation: Generation) -> AsyncIterator[Chunk]:
        """One attempt on one deployment (see :meth:`_attempt`)."""
        async with (
            self._attempt(deployment) as outcome,
            closing(self._chunks(deployment.backend, generation, outcome)) as chunks,
        ):
            async for chunk in chunks:
                yield chunk

    @staticmethod
    async def _chunks(
        backend: Backend, generation: Generation, outcome: Outcome
    ) -> AsyncIterator[Chunk]:
        """``backend``'s chunks; the outcome is complete at the last one."""
        # Closed at once when the client goes: the backend stops generating too.
        async with closing(backend.generate(generation)) as chunks:
            async for chunk in chunks:
                if chunk.done:
                    # Known now: the consumer may close the stream after this chunk rather
                    # than ask for its end.
                    outcome.completed()
                yield chunk

    @contextlib.asynccontextmanager
    async def _attempt(self, deployment: Deployment) -> AsyncIterator[Outcome]:
        """Hold one of the deployment's slots (waiting in its queue) for one attempt, whose
        :class:`Outcome` is recorded once (see :meth:`_settle`); an attempt that ends without
        saying completes when its block does."""
        deployment.waiting += 1
        try:
            await deployment.slots.acquire()
        finally:
            deployment.waiting -= 1
        deployment.in_flight += 1
        deployment.breaker.begin()
        try:
            async with self._outcome(lambda kind, exc: self._settle(deployment, kind, exc)) as o:
                yield o
        finally:
            deployment.in_flight -= 1
            deployment.slots.release()

    def _direct(self) -> contextlib.AbstractAsyncContextManager[Outcome]:
        """An attempt on the embedded engine without a deployment: no slots (the engine
        queues), no circuit; its outcome is counted."""
        return self._outcome(lambda kind, _: self._told(EMBEDDED, kind))

    @staticmethod
    @contextlib.asynccontextmanager
    async def _outcome(
        record: Callable[[OutcomeKind, BaseException | None], None],
    ) -> AsyncIterator[Outcome]:
        """An :class:`Outcome` for the block: an exception ends it, and a block that ends
        without saying completes it."""
        outcome = Outcome(record)
        try:
            yield outcome
        except BaseException as exc:
            outcome.ended(exc)
            raise
        outcome.completed()

    def _settle(self, deployment: Deployment, kind: OutcomeKind, exc: BaseException | None) -> None:
        """Feed the deployment's circuit and counters with an attempt's outcome: a retryable
        upstream failure counts against it; a client's bad request, a cancellation (client
        gone) or a local failure does not."""
        breaker = deployment.breaker
        if kind == "completed":
            breaker.success()
            deployment.served += 1
        elif isinstance(exc, UpstreamError):
            if exc.retryable:
                breaker.failure()
            else:
                breaker.success()
        else:
            breaker.probing = False
        self._told(deployment.name, kind)

    def _told(self, deployment: str, kind: OutcomeKind) -> None:
        if self.on_outcome is not None:
            self.on_outcome(deployment, kind)

    # --- embeddings ----------------------------------------------------------------------------

    async def embed(
        self, entry: ModelEntry, request: Embedding, route: Route | None = None
    ) -> Embeddings:
        """Embeddings from the entry's deployments (retried like generation), or from the
        embedded engine when it has none."""
        route = route if route is not None else Route()
        if entry.route is None:
            route.deployment, route.model = EMBEDDED, entry.name
            async with self._direct():
                return await self.local.embed(request)
        group = self.deployments[entry.route]
        tried: set[str] = set()
        last: BillumyError | None = None
        for _ in range(1 + self.settings.route_retries):
            deployment = self._pick(group, tried)
            if deployment is None:
                break
            tried.add(deployment.name)
            route.tried.append(deployment.name)
            try:
                async with self._attempt(deployment):
                    result = await deployment.backend.embed(request)
            except UpstreamError as exc:
                if not exc.retryable:
                    raise
                last = exc
                continue
            route.deployment, route.model = deployment.name, entry.route
            return result
        raise last or self._unavailable(entry.route, group)

    # --- loading -------------------------------------------------------------------------------

    def _backends(self, entry: ModelEntry) -> list[Backend]:
        if entry.route is None:
            return [self.local]
        return [d.backend for d in self.deployments[entry.route]]

    async def load(self, entry: ModelEntry, generation: Generation) -> int:
        """Make the entry's model ready on each of its backends (an empty prompt in Ollama);
        the longest load time (ns). Upstreams load their models as they need them."""
        loads = await asyncio.gather(*(b.load(generation) for b in self._backends(entry)))
        return max(loads, default=0)

    async def unload(self, entry: ModelEntry, generation: Generation) -> None:
        """Unload the entry's model from each of its backends that loads models here."""
        await asyncio.gather(*(b.unload(generation) for b in self._backends(entry)))

    # --- reporting -----------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        return [{"model": d.config.model, **d.describe()} for d in self.all()]
