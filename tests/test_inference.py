"""The inference service over an in-process engine (:class:`tests.fake_engine.FakeEngine`):
what reaches the engine (options, stop, num_predict, persona defaults), the chunks it gets
back, usage counted once per generation, limits held and released however a generation ends,
and cached replays. The routes over the same service: tests/api/test_ollama.py and
tests/api/test_openai.py; with the real engine: tests/e2e/test_http_api.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from billumy.auth import Principal
from billumy.cache.limits import Limits
from billumy.engines.base import Chunk
from billumy.errors import BadRequestError, EngineUnavailableError, RateLimitedError
from billumy.inference import InferenceService
from billumy.schemas.ollama import ChatRequest, GenerateRequest, Message
from tests.fake_engine import (
    PROMPT_TOKENS,
    FakeEngine,
    clean_env,  # noqa: F401 (a fixture)
    served,
)

pytestmark = pytest.mark.usefixtures("clean_env")

CALLER = Principal(
    key_id="k1", key_name="t", tenant="default", scopes=frozenset({"inference"}), limits=Limits()
)
ONE_AT_A_TIME = Principal(
    key_id="k2",
    key_name="one",
    tenant="default",
    scopes=frozenset({"inference"}),
    limits=Limits(parallel=1),
)


async def _all(chunks: AsyncIterator[Chunk]) -> list[Chunk]:
    return [chunk async for chunk in chunks]


async def _generate(
    service: InferenceService, caller: Principal = CALLER, **request: object
) -> list[Chunk]:
    prepared = await service.prepare_generate(
        GenerateRequest.model_validate({"model": "billumy", "prompt": "hi", **request}), caller
    )
    _, chunks = await service.open(prepared, caller)
    return await _all(chunks)


def test_request_options_reach_the_engine_over_the_personas(tmp_path: Path) -> None:
    async def run() -> None:
        async with served(tmp_path) as s:
            options = {"stop": ["\n\n", "END"], "num_predict": 3, "seed": 7, "top_k": 5}
            await _generate(s.inference, prompt="Say hi", system="Be brief.", options=options)
            (call,) = s.engine.calls
            g = call.generation
            assert g.model_name == "billumy:latest" and g.mode == "generate"
            assert g.prompt == "Say hi" and g.system == "Be brief."
            assert g.messages is not None and g.messages[-1] == {
                "role": "user",
                "content": "Say hi",
            }
            assert g.sampling.stop == ["\n\n", "END"]
            assert g.num_predict == 3
            assert (g.sampling.seed, g.sampling.top_k) == (7, 5)
            # The persona's parameters where the request says nothing (billumy: 0.7, 2048).
            assert g.sampling.temperature == 0.7 and g.num_ctx == 2048

    asyncio.run(run())


def test_a_single_stop_string_and_no_num_predict(tmp_path: Path) -> None:
    async def run() -> None:
        async with served(tmp_path, max_num_predict=100) as s:
            await _generate(s.inference, options={"stop": "###", "temperature": 0})
            g = s.engine.calls[0].generation
            assert g.sampling.stop == ["###"] and g.sampling.temperature == 0
            assert g.num_predict == 100  # unset (or -1): the server's limit

    asyncio.run(run())


def test_a_persona_s_own_limits_are_brought_down_to_the_server_s(tmp_path: Path) -> None:
    """billumy carries num_predict 512 and num_ctx 2048; a server whose limits are lower
    serves it within them, where a request asking for more is a 400 (below)."""

    async def run() -> None:
        async with served(tmp_path, max_num_predict=100, max_num_ctx=1024) as s:
            await _generate(s.inference)
            g = s.engine.calls[0].generation
            assert (g.num_predict, g.num_ctx) == (100, 1024)
            with pytest.raises(BadRequestError, match="num_ctx 2048 exceeds"):
                await _generate(s.inference, options={"num_ctx": 2048})

    asyncio.run(run())


def test_limits_are_refused_before_the_engine(tmp_path: Path) -> None:
    async def run() -> None:
        async with served(tmp_path, max_num_predict=100) as s:
            with pytest.raises(BadRequestError, match="num_predict 101 exceeds"):
                await _generate(s.inference, options={"num_predict": 101})
            with pytest.raises(
                BadRequestError, match='parameter "temperature": expected a number from 0'
            ):
                await _generate(s.inference, options={"temperature": -1})
            assert s.engine.calls == []

    asyncio.run(run())


def test_the_engines_chunks_come_through_and_usage_is_recorded_once(tmp_path: Path) -> None:
    async def run() -> None:
        async with served(tmp_path) as s:
            chunks = await _generate(s.inference)
            assert [c.text for c in chunks] == [*s.engine.pieces, ""]
            assert [c.done for c in chunks] == [False] * len(s.engine.pieces) + [True]
            last = chunks[-1]
            assert (last.done_reason, last.eval_count) == ("stop", len(s.engine.pieces))
            assert s.usage.calls == [("t", "billumy:latest", PROMPT_TOKENS, 4)]
            assert s.engine.calls[0].ending == "finished"

    asyncio.run(run())


def test_num_predict_cuts_the_answer_with_done_reason_length(tmp_path: Path) -> None:
    async def run() -> None:
        async with served(tmp_path) as s:
            chunks = await _generate(s.inference, options={"num_predict": 2})
            assert "".join(c.text for c in chunks) == "Hello"
            assert chunks[-1].done_reason == "length"
            assert s.usage.calls == [("t", "billumy:latest", PROMPT_TOKENS, 2)]

    asyncio.run(run())


def test_a_chat_sends_the_personas_turns_then_the_callers(tmp_path: Path) -> None:
    async def run() -> None:
        async with served(tmp_path) as s:
            request = ChatRequest(
                model="billumy",
                messages=[
                    Message(role="user", content="Hi"),
                    Message(role="assistant", content="Hello!"),
                    Message(role="user", content="And now?"),
                ],
                options={"stop": ["User:"], "num_predict": 9},
            )
            prepared = await s.inference.prepare_chat(request, CALLER)
            _, chunks = await s.inference.open(prepared, CALLER)
            await _all(chunks)
            g = s.engine.calls[0].generation
            assert g.mode == "chat" and g.truncate
            assert g.messages is not None
            assert g.messages[-3:] == [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "And now?"},
            ]
            assert len(g.messages) == g.keep_messages + 3
            assert (g.sampling.stop, g.num_predict) == (["User:"], 9)
            assert len(s.usage.calls) == 1

    asyncio.run(run())


def test_a_consumer_that_stops_closes_the_generation_and_frees_its_slot(tmp_path: Path) -> None:
    async def run() -> None:
        async with served(tmp_path, FakeEngine(endless=True)) as s:
            prepared = await s.inference.prepare_generate(
                GenerateRequest(model="billumy", prompt="hi"), ONE_AT_A_TIME
            )
            _, chunks = await s.inference.open(prepared, ONE_AT_A_TIME)
            async for chunk in chunks:
                assert chunk.text
                break
            # Held while the generation runs: a second one of this key is refused.
            assert s.services.fair_use.parallel_full(ONE_AT_A_TIME.key_id, 1)
            await chunks.aclose()  # type: ignore[attr-defined]
            assert s.engine.calls[0].ending == "closed"
            assert not s.services.fair_use.parallel_full(ONE_AT_A_TIME.key_id, 1)
            assert s.usage.calls == []  # nothing done, nothing counted

    asyncio.run(run())


def test_a_cancelled_wait_reaches_the_engine_and_frees_the_slot(tmp_path: Path) -> None:
    """A generation still waiting for its first chunk (the model loading, the queue), whose
    task is cancelled: the engine sees the cancellation, the key's slot is free again."""

    async def run() -> None:
        gate = asyncio.Event()
        async with served(tmp_path, FakeEngine(gate=gate)) as s:
            prepared = await s.inference.prepare_generate(
                GenerateRequest(model="billumy", prompt="hi"), ONE_AT_A_TIME
            )
            _, chunks = await s.inference.open(prepared, ONE_AT_A_TIME)
            waiting = asyncio.ensure_future(anext(chunks))
            await s.engine.asked.wait()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert s.engine.calls[0].ending == "cancelled"
            assert not s.services.fair_use.parallel_full(ONE_AT_A_TIME.key_id, 1)

    asyncio.run(run())


def test_an_engine_error_before_the_first_chunk_is_raised_as_it_is(tmp_path: Path) -> None:
    async def run() -> None:
        failure = EngineUnavailableError("the model runner stopped: SIGSEGV", retry_after=3)
        async with served(tmp_path, FakeEngine(error=failure)) as s:
            with pytest.raises(EngineUnavailableError) as raised:
                await _generate(s.inference, ONE_AT_A_TIME)
            assert raised.value is failure
            assert s.engine.calls[0].ending == "failed"
            assert not s.services.fair_use.parallel_full(ONE_AT_A_TIME.key_id, 1)
            assert s.usage.calls == []

    asyncio.run(run())


def test_the_parallel_limit_holds_while_a_generation_runs(tmp_path: Path) -> None:
    async def run() -> None:
        gate = asyncio.Event()
        async with served(tmp_path, FakeEngine(gate=gate)) as s:
            first = asyncio.ensure_future(_generate(s.inference, ONE_AT_A_TIME))
            await s.engine.asked.wait()
            with pytest.raises(RateLimitedError):
                await _generate(s.inference, ONE_AT_A_TIME)
            gate.set()
            assert (await first)[-1].done
            assert len(await _generate(s.inference, ONE_AT_A_TIME)) == 5
            assert len(s.engine.calls) == 2 and len(s.usage.calls) == 2

    asyncio.run(run())


def test_a_deterministic_answer_is_replayed_from_the_cache(tmp_path: Path) -> None:
    """The second identical request (temperature 0) is a hit: the same chunks, and neither
    the engine nor the usage counts see it."""

    async def run() -> None:
        async with served(tmp_path, cache_ttl=60) as s:
            request = GenerateRequest(model="billumy", prompt="hi", options={"temperature": 0})
            answers = []
            for expected in ("miss", "hit"):
                prepared = await s.inference.prepare_generate(request, CALLER)
                status, chunks = await s.inference.open(prepared, CALLER)
                assert status == expected
                answers.append([(c.text, c.done, c.eval_count) for c in await _all(chunks)])
            assert answers[0] == answers[1]
            assert len(s.engine.calls) == 1
            assert len(s.usage.calls) == 1
            # A sampled request (no seed, temperature above 0) is never cached.
            sampled = GenerateRequest(model="billumy", prompt="hi")
            prepared = await s.inference.prepare_generate(sampled, CALLER)
            status, chunks = await s.inference.open(prepared, CALLER)
            await _all(chunks)
            assert status == "bypass" and len(s.engine.calls) == 2

    asyncio.run(run())


def test_an_empty_prompt_loads_the_model_and_keep_alive_0_unloads_it(tmp_path: Path) -> None:
    async def run() -> None:
        admin = Principal("k3", "admin", "default", frozenset({"admin"}))
        async with served(tmp_path) as s:
            prepared = await s.inference.prepare_generate(
                GenerateRequest(model="billumy", keep_alive="10m"), admin
            )
            chunk = await s.inference.load_or_unload(prepared)
            assert (chunk.done_reason, chunk.load_duration) == ("load", 1234)
            ((path, num_ctx, keep_alive, extend_only),) = s.engine.loads
            assert (num_ctx, keep_alive, extend_only) == (2048, 600.0, False)
            prepared = await s.inference.prepare_generate(
                GenerateRequest(model="billumy", keep_alive=0), admin
            )
            assert (await s.inference.load_or_unload(prepared)).done_reason == "unload"
            assert s.engine.unloads == [path]
            assert s.engine.calls == [] and s.usage.calls == []

    asyncio.run(run())
