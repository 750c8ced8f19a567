"""Routing: a model name served by deployments (the embedded engine or upstream servers).

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
from pathlib import Path
from typing import Any, Literal

from billumy.catalog import Catalog, ModelEntry, normalize_name
from billumy.engines.base import Chunk, Embeddings, Generation, closing
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


@dataclass
class Deployment:
    """One deployment's live state: concurrency, queue, circuit, last health check."""

    config: DeploymentConfig
    upstream: Upstream | None  # None: the embedded engine
    breaker: CircuitBreaker
    model_path: Path | None = None  # embedded: the GGUF to run
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
    ) -> None:
        self.settings = settings
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
                if config.provider == "embedded":
                    target = catalog.lookup(config.upstream_model or config.model)
                    if target is None or target.base.remote:
                        raise ValueError(
                            f"deployment {config.name!r}: no local model "
                            f"{config.upstream_model or config.model!r}"
                        )
                    group.append(Deployment(config, None, breaker, model_path=target.base.path()))
                else:
                    group.append(Deployment(config, make(config), breaker))
            self.deployments[model] = group
        self._health_task: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if any(d.upstream for group in self.deployments.values() for d in group):
            self._health_task = asyncio.create_task(self._health_loop())

    async def aclose(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        for group in self.deployments.values():
            for deployment in group:
                if deployment.upstream is not None:
                    await deployment.upstream.aclose()

    def all(self) -> list[Deployment]:
        return [d for group in self.deployments.values() for d in group]

    async def check_health(self) -> None:
        """One round of health checks on every upstream deployment, concurrently."""
        await asyncio.gather(*(self._check(d) for d in self.all() if d.upstream is not None))

    async def _check(self, deployment: Deployment) -> None:
        assert deployment.upstream is not None
        try:
            await asyncio.wait_for(
                deployment.upstream.health(), timeout=deployment.config.connect_timeout + 5
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
                request = replace(generation, deadline_s=self.settings.engine_timeout)
                if target is not entry:
                    request = replace(
                        request, model_path=target.base.path(), model_name=target.name
                    )
                async with closing(self.engine.generate(request)) as chunks:
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
        async with self._attempt(deployment):
            if deployment.upstream is None:
                assert deployment.model_path is not None
                request = replace(
                    generation,
                    model_path=deployment.model_path,
                    deadline_s=deployment.config.timeout,
                )
                chunks = self.engine.generate(request)
            else:
                chunks = deployment.upstream.generate(generation, deployment.upstream_model)
            # Closed at once when the client goes: the upstream stops generating too.
            async with closing(chunks):
                async for chunk in chunks:
                    yield chunk

    @contextlib.asynccontextmanager
    async def _attempt(self, deployment: Deployment) -> AsyncIterator[None]:
        """Hold one of the deployment's slots (waiting in its queue) and feed its circuit with
        the outcome: a retryable upstream failure counts against it; a client's bad request,
        a cancellation (client gone) or a local failure does not."""
        deployment.waiting += 1
        try:
            await deployment.slots.acquire()
        finally:
            deployment.waiting -= 1
        deployment.in_flight += 1
        deployment.breaker.begin()
        try:
            yield
        except UpstreamError as exc:
            if exc.retryable:
                deployment.breaker.failure()
            else:
                deployment.breaker.success()
            raise
        except BaseException:
            deployment.breaker.probing = False
            raise
        else:
            deployment.breaker.success()
            deployment.served += 1
        finally:
            deployment.in_flight -= 1
            deployment.slots.release()

    # --- embeddings ----------------------------------------------------------------------------

    async def embed(
        self,
        entry: ModelEntry,
        inputs: list[str],
        *,
        truncate: bool,
        num_ctx: int,
        keep_alive_s: float | None,
        dimensions: int | None,
        route: Route | None = None,
    ) -> Embeddings:
        """Embeddings from the entry's deployments (retried like generation)."""
        route = route if route is not None else Route()
        assert entry.route is not None
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
                result = await self._embed_on(
                    deployment, inputs, truncate, num_ctx, keep_alive_s, dimensions, entry.name
                )
            except UpstreamError as exc:
                if not exc.retryable:
                    raise
                last = exc
                continue
            route.deployment, route.model = deployment.name, entry.route
            return result
        raise last or self._unavailable(entry.route, group)

    async def _embed_on(
        self,
        deployment: Deployment,
        inputs: list[str],
        truncate: bool,
        num_ctx: int,
        keep_alive_s: float | None,
        dimensions: int | None,
        model_name: str,
    ) -> Embeddings:
        async with self._attempt(deployment):
            if deployment.upstream is not None:
                return await deployment.upstream.embed(
                    inputs, deployment.upstream_model, truncate=truncate, dimensions=dimensions
                )
            assert deployment.model_path is not None
            return await self.engine.embed(
                model_path=deployment.model_path,
                model_name=model_name,
                inputs=inputs,
                truncate=truncate,
                num_ctx=num_ctx,
                keep_alive_s=keep_alive_s,
            )

    # --- reporting -----------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        return [{"model": d.config.model, **d.describe()} for d in self.all()]
