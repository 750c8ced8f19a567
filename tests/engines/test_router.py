"""Unit tests of the router's decisions (with in-process fake upstreams), the circuit breaker
and the maestro tiers. The end-to-end proof with real servers is in tests/e2e/test_routing.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from billumy.cache.limits import FairUse
from billumy.cache.local import LocalState
from billumy.cache.responses import ResponseCache
from billumy.catalog import Catalog
from billumy.engines.base import Chunk, Embedding, Embeddings, Generation
from billumy.engines.maestro import Maestro, parse_classification, rule_tier
from billumy.engines.remote import EngineClient
from billumy.engines.router import CircuitBreaker, OutcomeKind, Route, Router
from billumy.engines.upstream import Upstream
from billumy.errors import BadRequestError, UpstreamError, UpstreamUnavailableError
from billumy.inference import InferenceService
from billumy.settings import DeploymentConfig, Settings, TierConfig
from billumy.store import open_store


class FakeUpstream:
    """Answers two chunks; ``fail`` makes it fail before (or after) its first chunk."""

    remote = True

    def __init__(self, config: DeploymentConfig) -> None:
        self.name = config.name
        self.provider = config.provider
        self.fail: str | None = None  # "before" | "after" | "bad"
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def generate(
        self, request: Generation, upstream_model: str | None = None
    ) -> AsyncIterator[Chunk]:
        self.calls += 1
        if self.fail == "before":
            raise UpstreamUnavailableError(f"deployment '{self.name}' is unreachable")
        if self.fail == "bad":
            raise BadRequestError(f"deployment '{self.name}' rejected the request")
        yield Chunk(text=self.name)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail == "after":
            raise UpstreamError(f"deployment '{self.name}' closed the stream")
        yield Chunk(done=True, done_reason="stop", eval_count=1)

    async def embed(self, request: Embedding, upstream_model: str | None = None) -> Embeddings:
        return Embeddings([[1.0] for _ in request.inputs], len(request.inputs), 1, 0)

    async def load(self, request: Generation) -> int:
        return 0

    async def unload(self, request: Generation) -> None:
        return None

    async def health(self) -> None:
        if self.fail == "before":
            raise UpstreamUnavailableError(f"deployment '{self.name}' is unreachable")

    async def models(self) -> list[dict[str, Any]]:
        return []

    async def aclose(self) -> None:
        return None


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    deployments = [
        {
            "name": "a",
            "model": "m",
            "url": "http://a.invalid",
            "max_concurrency": 1,
            "max_queue": 0,
        },
        {
            "name": "b",
            "model": "m",
            "url": "http://b.invalid",
            "max_concurrency": 1,
            "max_queue": 0,
        },
    ]
    return Settings(data_dir=tmp_path, deployments=deployments, route_retries=2, **extra)


async def _router(
    settings: Settings, told: list[tuple[str, OutcomeKind]] | None = None
) -> tuple[Router, dict[str, FakeUpstream]]:
    store = open_store(settings.resolved_database_url)
    await store.ainit()
    catalog = Catalog(settings, store)
    made: dict[str, FakeUpstream] = {}

    def make(config: DeploymentConfig) -> Upstream:
        made[config.name] = FakeUpstream(config)
        return made[config.name]

    def on_outcome(deployment: str, kind: OutcomeKind) -> None:
        if told is not None:
            told.append((deployment, kind))

    router = Router(settings, catalog, cast(EngineClient, None), make=make, on_outcome=on_outcome)
    await store.aclose()
    return router, made


def _generation() -> Generation:
    return Generation(model_path=Path("unused"), model_name="m:latest", prompt="hi")


async def _answer(router: Router, route: Route | None = None) -> list[Chunk]:
    entry = await router.catalog.get("m", tenant=None)
    return [c async for c in router.generate(entry, _generation(), route)]


def test_least_outstanding_and_retry_before_the_first_byte(tmp_path: Path) -> None:
    async def scenario() -> None:
        router, fakes = await _router(_settings(tmp_path))
        # A request held open on one deployment sends the next one to the other.
        fakes["a"].gate = asyncio.Event()
        fakes["b"].gate = asyncio.Event()
        entry = await router.catalog.get("m", tenant=None)
        first_route = Route()
        held = router.generate(entry, _generation(), first_route)
        assert (await anext(held)).text in {"a", "b"}
        busy = first_route.deployment
        assert busy is not None
        other = "b" if busy == "a" else "a"
        fakes[other].gate = None
        route = Route()
        assert next(c.text for c in await _answer(router, route)) == other
        # Both at their concurrency limit with no queue: 503 busy.
        fakes[other].gate = asyncio.Event()
        second = router.generate(entry, _generation(), Route())
        await anext(second)
        with pytest.raises(UpstreamUnavailableError, match="busy"):
            await _answer(router)
        fakes["a"].gate.set()
        fakes["b"].gate.set()
        assert [c async for c in held][-1].done
        assert [c async for c in second][-1].done
        # A deployment failing before its first chunk: the other one answers.
        fakes["a"].gate = fakes["b"].gate = None
        fakes["a"].fail = "before"
        for _ in range(3):
            route = Route()
            chunks = await _answer(router, route)
            assert chunks[0].text == "b" and route.deployment == "b"
        await router.aclose()

    asyncio.run(scenario())


def test_failures_after_the_first_chunk_and_client_errors_are_not_retried(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        router, fakes = await _router(_settings(tmp_path, breaker_failures=5))
        fakes["a"].fail = fakes["b"].fail = "after"
        with pytest.raises(UpstreamError, match="closed the stream"):
            await _answer(router)
        assert fakes["a"].calls + fakes["b"].calls == 1
        fakes["a"].fail = fakes["b"].fail = "bad"
        with pytest.raises(BadRequestError):
            await _answer(router)
        assert fakes["a"].calls + fakes["b"].calls == 2
        states = {d.breaker.state for d in router.all()}
        assert states == {"closed"}
        await router.aclose()

    asyncio.run(scenario())


async def _until_done(stream: AsyncIterator[Chunk]) -> Chunk:
    """Read ``stream`` up to its last chunk and no further, as the API does."""
    while not (chunk := await anext(stream)).done:
        pass
    return chunk


def test_outcomes_are_recorded_once_when_known(tmp_path: Path) -> None:
    async def scenario() -> None:
        told: list[tuple[str, OutcomeKind]] = []
        router, fakes = await _router(_settings(tmp_path), told)
        entry = await router.catalog.get("m", tenant=None)
        # A consumer that stops at the last chunk and then closes the stream: completed, at
        # the last chunk, once; the slot is given back when the stream closes.
        route = Route()
        stream = router.generate(entry, _generation(), route)
        await _until_done(stream)
        assert route.deployment is not None
        deployment = next(d for d in router.all() if d.name == route.deployment)
        assert told == [(deployment.name, "completed")] and deployment.served == 1
        await stream.aclose()  # type: ignore[attr-defined]
        assert told == [(deployment.name, "completed")] and deployment.served == 1
        assert deployment.in_flight == 0
        # A consumer that goes after the first chunk: cancelled, not served.
        for fake in fakes.values():
            fake.gate = asyncio.Event()
        told.clear()
        route = Route()
        stream = router.generate(entry, _generation(), route)
        await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]
        assert told == [(route.deployment, "cancelled")]
        # A failure after the first chunk: failed, against the circuit.
        for fake in fakes.values():
            fake.gate, fake.fail = None, "after"
        told.clear()
        route = Route()
        with pytest.raises(UpstreamError):
            await _answer(router, route)
        assert told == [(route.deployment, "failed")]
        failing = next(d for d in router.all() if d.name == route.deployment)
        assert failing.breaker.consecutive == 1
        # Embeddings: one outcome per attempt, a retried failure included.
        fakes["a"].fail = fakes["b"].fail = None
        told.clear()
        embedded = await router.embed(entry, Embedding(Path("unused"), "m", ["x"]))
        assert embedded.vectors == [[1.0]] and [kind for _, kind in told] == ["completed"]
        assert sum(d.served for d in router.all()) == 2
        await router.aclose()

    asyncio.run(scenario())


def test_a_half_open_circuits_streamed_probe_closes_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        router, _ = await _router(_settings(tmp_path))
        entry = await router.catalog.get("m", tenant=None)
        now = [0.0]
        for deployment in router.all():
            deployment.breaker.clock = lambda: now[0]
            deployment.breaker.trip()
        now[0] = 60.0  # past the cooldown: the next request is a probe
        route = Route()
        stream = router.generate(entry, _generation(), route)
        await _until_done(stream)
        await stream.aclose()  # type: ignore[attr-defined]
        states = {d.name: d.breaker.state for d in router.all()}
        assert route.deployment is not None and states[route.deployment] == "closed"
        probed = next(d for d in router.all() if d.name == route.deployment)
        assert not probed.breaker.probing and probed.served == 1
        await router.aclose()

    asyncio.run(scenario())


def test_health_checks_open_and_half_open_circuits(tmp_path: Path) -> None:
    async def scenario() -> None:
        router, fakes = await _router(_settings(tmp_path, breaker_cooldown=60))
        fakes["a"].fail = "before"
        await router.check_health()
        a = next(d for d in router.all() if d.name == "a")
        assert a.breaker.state == "open" and a.healthy is False
        for _ in range(4):
            route = Route()
            await _answer(router, route)
            assert route.tried == ["b"]  # an open circuit gets no traffic
        fakes["a"].fail = None
        await router.check_health()
        assert a.breaker.state == "half_open" and a.healthy is True
        # Only one probe at a time through a half-open circuit; its success closes it.
        fakes["b"].fail = "before"
        route = Route()
        await _answer(router, route)
        assert route.deployment == "a" and a.breaker.state == "closed"
        await router.aclose()

    asyncio.run(scenario())


def test_circuit_breaker_states() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=2, cooldown_s=10, clock=lambda: now[0])
    assert breaker.allows()
    breaker.failure()
    assert breaker.allows()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allows()
    assert breaker.retry_after() == 11
    now[0] = 10.0
    assert breaker.allows() and breaker.state == "half_open"
    breaker.begin()
    assert not breaker.allows()  # one probe at a time
    breaker.failure()
    assert breaker.state == "open" and not breaker.allows()
    breaker.healthy()
    assert breaker.allows()
    breaker.begin()
    breaker.success()
    assert breaker.state == "closed" and breaker.allows()


@pytest.mark.parametrize(
    ("question", "tier"),
    [
        ("Oi, tudo bem?", "simple"),
        ("hello", "simple"),
        ("Obrigado!", "simple"),
        ("What is a good name for a bakery in Recife?", "medium"),
        ("Qual é a capital do Brasil e quantos habitantes tem?", "medium"),
        ("Analise as vendas por região e compare com o trimestre anterior", "deep"),
        ("Why did churn grow last month? Explain the trend", "deep"),
        ("Por que o faturamento caiu em março em relação a fevereiro nas lojas do sul?", "deep"),
    ],
)
def test_rule_tiers(question: str, tier: str) -> None:
    assert rule_tier(question) == tier


def test_parse_classification() -> None:
    assert parse_classification('{"tier": "deep", "confidence": 0.9}') == ("deep", 0.9)
    assert parse_classification('{"tier": "deep", "confidence": 7}') == ("deep", 1.0)
    assert parse_classification('{"tier": "huge", "confidence": 0.9}') is None
    assert parse_classification('{"tier": "deep"}') is None
    assert parse_classification("not json") is None
    assert parse_classification("[1]") is None


def test_maestro_caches_the_classifier_and_falls_back_to_rules() -> None:
    async def scenario() -> None:
        answers = {"fast": '{"tier": "deep", "confidence": 0.95}'}
        calls: list[str] = []

        async def classify(model: str, question: str) -> str:
            calls.append(question)
            if question == "slow":
                await asyncio.sleep(1)
            if question == "broken":
                raise UpstreamError("deployment 'x' failed")
            if question == "unsure":
                return '{"tier": "deep", "confidence": 0.2}'
            return answers["fast"]

        tiers = {"auto": TierConfig(simple="s", medium="m", deep="d", classifier_timeout=0.1)}
        state = LocalState()
        maestro = Maestro(tiers, classify, state)
        first = await maestro.choose("auto:latest", "hello")
        assert (first.tier, first.model, first.source) == ("deep", "d", "classifier")
        again = await maestro.choose("auto:latest", "hello")
        assert again.source == "cache" and calls == ["hello"]
        for question in ("slow", "broken", "unsure"):
            decision = await maestro.choose("auto:latest", question)
            assert decision.source == "rules" and decision.tier == "simple"
        rules_only = Maestro(
            {"auto": TierConfig(simple="s", medium="m", deep="d", classifier=None)},
            classify,
            state,
        )
        assert (await rules_only.choose("auto:latest", "hello")).source == "rules"
        await state.aclose()

    asyncio.run(scenario())


def test_inference_knows_which_models_are_served_upstream(tmp_path: Path) -> None:
    # The insights narrative is on by default for upstream models only (insights_narrative).
    async def scenario() -> None:
        embedded = {"name": "local", "model": "local", "provider": "embedded",
                    "upstream_model": "smollm2-135m"}  # fmt: skip
        settings = _settings(tmp_path)
        settings = Settings(
            data_dir=tmp_path, deployments=[*settings.deployments, DeploymentConfig(**embedded)]
        )
        router, _ = await _router(settings)
        inference = InferenceService(
            settings=settings,
            catalog=router.catalog,
            engine=cast(EngineClient, None),
            router=router,
            cache=cast(ResponseCache, None),
            fair_use=cast(FairUse, None),
        )
        assert await inference.upstream("m", tenant=None)
        assert not await inference.upstream("local", tenant=None)
        assert not await inference.upstream("billumy", tenant=None)
        await router.aclose()

    asyncio.run(scenario())
