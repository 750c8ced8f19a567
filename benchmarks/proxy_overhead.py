"""What Billumy adds when it proxies to an upstream model server.

Starts ``benchmarks/fast_upstream.py`` (an instant fake Ollama/OpenAI server that streams a
fixed answer of ``--chunks`` pieces) and a real ``billumy serve`` with one deployment, "fast",
in front of it (no response cache, no rate limit, no per-key parallel limit). The same
requests then go to the upstream directly and through Billumy, in one run:

* sequential: one kept-alive connection per target, ``--requests`` requests each, direct and
  proxied alternating in blocks of ``--block`` so that drifting background load cancels out;
* concurrent: ``--concurrency`` clients (one kept-alive connection each) sending
  ``--concurrent-requests`` requests per target, in the order direct, proxied, proxied,
  direct (half the requests each time);

each both non-streaming and streaming. Reported: latency (p50, p99) direct and through
Billumy and their difference ("added"); for streams, time to first token (TTFT: from sending
the request to receiving the first line with content); requests per second; and requests per
CPU-second of the server processes (read from /proc: Linux only). The latter is "requests per
second per core": what one fully busy core of Billumy proxies, against what one core of the
upstream serves directly. CPU time is also shown per request for every process (Billumy,
the upstream, this client), and the upstream counts the connections Billumy opened to it
(distinct client ports), which shows whether Billumy keeps its upstream connections alive.

Every answer is checked: a streamed one must carry exactly the expected pieces, in order,
then one final line (Ollama: ``done`` true; OpenAI: ``finish_reason`` "stop" and
``data: [DONE]``), and nothing after it. A failed request or an answer with a missing, extra
or altered piece counts as lost. The benchmark exits 1 if anything was lost, else 0 (slow
figures alone do not fail it). Targets: added p50 under 1 ms and added p99 under 5 ms
sequentially; no loss.

The client is a minimal HTTP/1.1 client on asyncio streams (uvloop), so that the measuring
side costs little CPU; it costs the same for both targets.

Run from the repository root::

    .venv/bin/python benchmarks/proxy_overhead.py
    .venv/bin/python benchmarks/proxy_overhead.py --api openai --requests 500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from benchmarks.fast_upstream import pieces  # noqa: E402
from tests.e2e.server import Server, free_port  # noqa: E402

MODEL = "fast"
TARGET_P50_MS = 1.0
TARGET_P99_MS = 5.0
MODES = ("non-stream", "stream")
TARGETS = ("direct", "billumy")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process, all threads (Linux /proc); 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- a minimal HTTP/1.1 client ---------------------------------------------------------------


# Local ports of this client's connections, so that the upstream's count of the ports it was
# reached from can tell Billumy's connections from the direct ones.
OWN_PORTS: set[int] = set()


class HTTPFailure(Exception):
    pass


@dataclass
class Reply:
    status: int
    body: bytes
    lines: list[tuple[float, bytes]]  # streamed answers: (arrival time, line), blank lines out


class Connection:
    """One kept-alive HTTP/1.1 connection; reconnects when the server closes it.

    A server may close a connection that sat idle (uvicorn after 5 s) just as a request goes
    out on it. When a reused connection fails before a single byte of the answer came back,
    the request is sent once more on a new connection and counted in ``stale_retries``; any
    other failure is the caller's.
    """

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.head = (
            f"Host: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n{extra}"
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reused = False  # an answer already came back on this socket
        self.answered = False  # the current answer's first bytes came back
        self.stale_retries = 0

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1", self.port, limit=1 << 20
            )
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                OWN_PORTS.add(sock.getsockname()[1])
        return self.reader, self.writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
        self.reused = False

    async def post(self, path: str, body: bytes, stream: bool) -> Reply:
        """POST ``body``; a streamed answer is split into lines, each with its arrival time."""
        while True:
            stale = self.reused
            self.answered = False
            try:
                reply = await self._post(path, body, stream)
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
            ) as e:
                self.close()
                if stale and not self.answered:
                    self.stale_retries += 1
                    continue
                raise HTTPFailure(f"{type(e).__name__}: {e}") from e
            except BaseException:
                self.close()
                raise
            if self.writer is not None:
                self.reused = True
            return reply

    async def _post(self, path: str, body: bytes, stream: bool) -> Reply:
        reader, writer = await self._open()
        writer.write(
            b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s"
            % (path.encode(), self.head, len(body), body)
        )
        head = await reader.readuntil(b"\r\n\r\n")
        self.answered = True
        status_line, _, rest = head.partition(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length: int | None = None
        chunked = close = False
        for header in rest.split(b"\r\n"):
            name, _, value = header.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        lines: list[tuple[float, bytes]] = []
        if chunked:
            parts: list[bytes] = []
            pending = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")  # no trailers expected
                    break
                data = (await reader.readexactly(size + 2))[:-2]
                parts.append(data)
                if stream:
                    now = time.perf_counter()
                    pending += data
                    *complete, pending = pending.split(b"\n")
                    lines.extend((now, x) for x in complete if x.strip())
            payload = b"".join(parts)
            if stream and pending.strip():
                lines.append((time.perf_counter(), pending))
        else:
            payload = await reader.readexactly(length or 0) if length else b""
            if stream:
                now = time.perf_counter()
                lines = [(now, x) for x in payload.split(b"\n") if x.strip()]
        if close:
            self.close()
        return Reply(status, payload, lines)


# --- wire formats ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Wire:
    """A request in one API and how to check its answers."""

    path: ClassVar[str]
    expected: tuple[str, ...]

    def body(self, stream: bool) -> bytes:
        raise NotImplementedError

    def check_whole(self, body: bytes) -> str | None:
        """A problem with a non-streamed answer, or None."""
        raise NotImplementedError

    def check_stream(self, lines: list[tuple[float, bytes]]) -> tuple[str | None, float | None]:
        """A problem with a streamed answer (or None), and when its first content arrived."""
        raise NotImplementedError

    def _pieces(self, found: list[str], final: bool, after: int) -> str | None:
        if found != list(self.expected):
            missing = len(self.expected) - len(found)
            if found == list(self.expected[: len(found)]):
                return f"{missing} piece(s) missing"
            return f"pieces differ: got {len(found)}, expected {len(self.expected)}"
        if not final:
            return "no final line"
        if after:
            return f"{after} line(s) after the final one"
        return None


@dataclass(frozen=True)
class OllamaChat(Wire):
    path: ClassVar[str] = "/api/chat"

    def body(self, stream: bool) -> bytes:
        return orjson.dumps(
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "hi"}],
                "stream": stream,
                "options": {"temperature": 0},
            }
        )

    def check_whole(self, body: bytes) -> str | None:
        answer = orjson.loads(body)
        if answer.get("done") is not True:
            return "answer not done"
        text = answer.get("message", {}).get("content")
        return None if text == "".join(self.expected) else f"wrong text {str(text)[:40]!r}"

    def check_stream(self, lines: list[tuple[float, bytes]]) -> tuple[str | None, float | None]:
        found: list[str] = []
        first: float | None = None
        final = False
        after = 0
        for at, raw in lines:
            if final:
                after += 1
                continue
            message = orjson.loads(raw)
            if "error" in message:
                return f"error line: {message['error']}", first
            text = (message.get("message") or {}).get("content") or ""
            if text:
                found.append(text)
                if first is None:
                    first = at
            if message.get("done") is True:
                final = True
                if message.get("done_reason") != "stop":
                    return f"done_reason {message.get('done_reason')!r}", first
        return self._pieces(found, final, after), first


@dataclass(frozen=True)
class OpenAIChat(Wire):
    path: ClassVar[str] = "/v1/chat/completions"

    def body(self, stream: bool) -> bytes:
        body: dict[str, Any] = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
            "temperature": 0,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        return orjson.dumps(body)

    def check_whole(self, body: bytes) -> str | None:
        answer = orjson.loads(body)
        choice = (answer.get("choices") or [{}])[0]
        text = (choice.get("message") or {}).get("content")
        if text != "".join(self.expected):
            return f"wrong text {str(text)[:40]!r}"
        return None if choice.get("finish_reason") == "stop" else "finish_reason not stop"

    def check_stream(self, lines: list[tuple[float, bytes]]) -> tuple[str | None, float | None]:
        found: list[str] = []
        first: float | None = None
        stopped = final = False
        after = 0
        for at, raw in lines:
            if final:
                after += 1
                continue
            if not raw.startswith(b"data:"):
                continue  # comments, event names
            data = raw[5:].strip()
            if data == b"[DONE]":
                final = True
                continue
            message = orjson.loads(data)
            if "error" in message:
                return f"error event: {message['error']}", first
            for choice in message.get("choices") or []:
                text = (choice.get("delta") or {}).get("content") or ""
                if text:
                    found.append(text)
                    if first is None:
                        first = at
                if choice.get("finish_reason") == "stop":
                    stopped = True
        if final and not stopped:
            return "no finish_reason stop", first
        return self._pieces(found, final, after), first


# --- measurement -----------------------------------------------------------------------------


@dataclass
class Samples:
    """The answers of one target in one phase and mode."""

    total: list[float] = field(default_factory=list)  # seconds, answers that checked out
    ttft: list[float] = field(default_factory=list)  # streamed answers only
    requests: int = 0
    lost: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0  # measured batches only
    cpu_s: dict[str, float] = field(default_factory=dict)  # per process, measured batches only
    upstream_connections: int | None = None  # billumy only: connections it opened upstream
    stale_retries: int = 0  # requests sent again because a kept-alive connection was closed

    def cpu_us(self, process: str) -> float:
        """CPU microseconds per request of ``process`` while this target was measured."""
        return 1e6 * self.cpu_s.get(process, 0.0) / self.requests if self.requests else math.nan


Phase = dict[str, Samples]  # one phase (sequential or concurrent) and mode, by target name


@dataclass
class Target:
    name: str
    port: int
    headers: dict[str, str]


@contextlib.contextmanager
def metered(pids: dict[str, int], into: Samples) -> Iterator[None]:
    """Add the wall time and the CPU time of each process (and this one) spent inside."""
    before = {name: process_cpu_s(pid) for name, pid in pids.items()}
    client = time.process_time()
    started = time.perf_counter()
    yield
    into.wall_s += time.perf_counter() - started
    for name, pid in pids.items():
        into.cpu_s[name] = into.cpu_s.get(name, 0.0) + process_cpu_s(pid) - before[name]
    into.cpu_s["client"] = into.cpu_s.get("client", 0.0) + time.process_time() - client


class UpstreamStats:
    """The fast upstream's count of the client ports its generations came from."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def reset(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, trust_env=False) as client:
            (await client.post("/_stats/reset")).raise_for_status()

    async def foreign_connections(self) -> int:
        """Connections since the reset that did not come from this client: Billumy's."""
        async with httpx.AsyncClient(base_url=self.url, trust_env=False) as client:
            response = await client.get("/_stats")
            response.raise_for_status()
        return len(set(response.json()["client_ports"]) - OWN_PORTS)


async def one(conn: Connection, wire: Wire, stream: bool, body: bytes, into: Samples) -> None:
    into.requests += 1
    retries = conn.stale_retries
    started = time.perf_counter()
    try:
        reply = await conn.post(wire.path, body, stream)
    except HTTPFailure as e:
        into.lost += 1
        into.problems[f"request failed: {e}"[:100]] += 1
        return
    finally:
        into.stale_retries += conn.stale_retries - retries
    ended = time.perf_counter()
    if reply.status != 200:
        into.lost += 1
        into.problems[f"HTTP {reply.status}: {reply.body[:80]!r}"] += 1
        return
    try:
        if stream:
            problem, first = wire.check_stream(reply.lines)
        else:
            problem, first = wire.check_whole(reply.body), None
    except (orjson.JSONDecodeError, AttributeError, TypeError, IndexError) as e:
        problem, first = f"unreadable answer: {type(e).__name__}", None
    if problem is not None:
        into.lost += 1
        into.problems[problem[:120]] += 1
        return
    into.total.append(ended - started)
    if first is not None:
        into.ttft.append(first - started)


@dataclass
class Bench:
    wire: Wire
    targets: list[Target]
    pids: dict[str, int]
    stats: UpstreamStats

    async def sequential(self, stream: bool, requests: int, block: int, warmup: int) -> Phase:
        """``requests`` per target, one connection each, alternating in blocks of ``block``."""
        body = self.wire.body(stream)
        conns = {t.name: Connection(t.port, t.headers) for t in self.targets}
        scratch = Samples()
        for t in self.targets:
            for _ in range(warmup):
                await one(conns[t.name], self.wire, stream, body, scratch)
        warn(scratch, "warm-up")
        out = {t.name: Samples() for t in self.targets}
        await self.stats.reset()
        done = turn = 0
        while done < requests:
            n = min(block, requests - done)
            for t in self.targets if turn % 2 == 0 else self.targets[::-1]:
                with metered(self.pids, out[t.name]):
                    for _ in range(n):
                        await one(conns[t.name], self.wire, stream, body, out[t.name])
            done += n
            turn += 1
        out["billumy"].upstream_connections = await self.stats.foreign_connections()
        for conn in conns.values():
            conn.close()
        return out

    async def concurrent(self, stream: bool, requests: int, concurrency: int) -> Phase:
        """``requests`` per target from ``concurrency`` clients, in the order direct,
        billumy, billumy, direct (half the requests each time)."""
        body = self.wire.body(stream)
        pools = {
            t.name: [Connection(t.port, t.headers) for _ in range(concurrency)]
            for t in self.targets
        }

        async def batch(t: Target, n: int, into: Samples) -> None:
            left = n

            async def client(conn: Connection) -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    await one(conn, self.wire, stream, body, into)

            await asyncio.gather(*(client(conn) for conn in pools[t.name]))

        scratch = Samples()
        for t in self.targets:  # opens every connection, warms the servers at this load
            await batch(t, 4 * concurrency, scratch)
        warn(scratch, "concurrent warm-up")
        out = {t.name: Samples() for t in self.targets}
        await self.stats.reset()
        halves = [requests // 2, requests - requests // 2]
        for i, t in enumerate([*self.targets, *self.targets[::-1]]):
            with metered(self.pids, out[t.name]):
                await batch(t, halves[i // len(self.targets)], out[t.name])
        out["billumy"].upstream_connections = await self.stats.foreign_connections()
        for pool in pools.values():
            for conn in pool:
                conn.close()
        return out

    async def probe(self) -> None:
        """Exit with a message unless every target answers both modes as expected."""
        for t in self.targets:
            conn = Connection(t.port, t.headers)
            try:
                for stream in (False, True):
                    s = Samples()
                    await one(conn, self.wire, stream, self.wire.body(stream), s)
                    if s.lost:
                        mode = "stream" if stream else "non-stream"
                        raise SystemExit(
                            f"{t.name} does not answer as expected ({mode}): "
                            f"{next(iter(s.problems))}"
                        )
            finally:
                conn.close()


def warn(scratch: Samples, what: str) -> None:
    if scratch.lost:
        progress(f"{what}: {scratch.lost} of {scratch.requests} failed: {dict(scratch.problems)}")


# --- reporting -------------------------------------------------------------------------------


def quantile_ms(samples: list[float], q: float) -> float:
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def added_ms(phase: Phase, q: float, ttft: bool = False) -> float:
    """Through Billumy minus direct, at quantile ``q``."""
    if ttft:
        return quantile_ms(phase["billumy"].ttft, q) - quantile_ms(phase["direct"].ttft, q)
    return quantile_ms(phase["billumy"].total, q) - quantile_ms(phase["direct"].total, q)


def verdict(value: float, target: float) -> str:
    return "ok" if value < target else "ABOVE TARGET"


def _ttft(s: Samples, stream: bool, fmt: str = ">9.3f") -> str:
    if not stream:
        return f"{'':>9} {'':>9}"
    return f"{quantile_ms(s.ttft, 0.5):{fmt}} {quantile_ms(s.ttft, 0.99):{fmt}}"


def _conns(s: Samples) -> str:
    return "" if s.upstream_connections is None else str(s.upstream_connections)


def report_sequential(results: dict[str, Phase], requests: int, block: int) -> None:
    print(
        f"\nsequential: one kept-alive connection per target, {requests} requests per target "
        f"and mode,\ndirect and billumy alternating in blocks of {block}; times in ms, CPU in "
        "microseconds per request"
    )
    header = (
        f"{'mode':<10} {'target':<7} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} "
        f"{'ttft p50':>9} {'ttft p99':>9} {'cpu billumy':>11} {'upstream':>8} "
        f"{'up conns':>8} {'ok':>6} {'lost':>4}"
    )
    print(header)
    print("-" * len(header))
    for mode, phase in results.items():
        stream = mode == "stream"
        for name in TARGETS:
            s = phase[name]
            print(
                f"{mode:<10} {name:<7} {quantile_ms(s.total, 0.5):>7.3f} "
                f"{quantile_ms(s.total, 0.9):>7.3f} {quantile_ms(s.total, 0.99):>7.3f} "
                f"{1000 * max(s.total, default=math.nan):>7.3f} {_ttft(s, stream)} "
                f"{s.cpu_us('billumy'):>11.0f} {s.cpu_us('upstream'):>8.0f} "
                f"{_conns(s):>8} {len(s.total):>6} {s.lost:>4}"
            )
        ttft = (
            f"{added_ms(phase, 0.5, True):>9.3f} {added_ms(phase, 0.99, True):>9.3f}"
            if stream
            else f"{'':>9} {'':>9}"
        )
        print(
            f"{mode:<10} {'added':<7} {added_ms(phase, 0.5):>7.3f} {added_ms(phase, 0.9):>7.3f} "
            f"{added_ms(phase, 0.99):>7.3f} {'':>7} {ttft}"
        )


def report_concurrent(results: dict[str, Phase], concurrency: int) -> None:
    print(
        f"\nconcurrent: {concurrency} clients, one kept-alive connection each; order direct, "
        "billumy, billumy, direct;\ntimes in ms, CPU in microseconds per request"
    )
    header = (
        f"{'mode':<10} {'target':<7} {'req/s':>7} {'p50':>7} {'p99':>7} "
        f"{'ttft p50':>9} {'ttft p99':>9} {'cpu billumy':>11} {'upstream':>8} {'client':>6} "
        f"{'up conns':>8} {'ok':>6} {'lost':>4}"
    )
    print(header)
    print("-" * len(header))
    for mode, phase in results.items():
        for name in TARGETS:
            s = phase[name]
            rps = s.requests / s.wall_s if s.wall_s else math.nan
            print(
                f"{mode:<10} {name:<7} {rps:>7.0f} {quantile_ms(s.total, 0.5):>7.2f} "
                f"{quantile_ms(s.total, 0.99):>7.2f} {_ttft(s, mode == 'stream', '>9.2f')} "
                f"{s.cpu_us('billumy'):>11.0f} {s.cpu_us('upstream'):>8.0f} "
                f"{s.cpu_us('client'):>6.0f} {_conns(s):>8} {len(s.total):>6} {s.lost:>4}"
            )
    print(
        "\nrequests per second per core = requests / CPU seconds of the serving process: "
        "Billumy's\nprocess for requests through it, the upstream's for direct requests. It is "
        "the rate one fully\nbusy core would sustain, however many cores the machine has and "
        "whatever else runs on them."
    )
    header = (
        f"{'mode':<10} {'through billumy':>15} {'direct':>9} {'billumy/direct':>14} "
        f"{'billumy+upstream us per proxied request':>40}"
    )
    print(header)
    print("-" * len(header))
    for mode, phase in results.items():
        b, d = phase["billumy"], phase["direct"]
        through = 1e6 / b.cpu_us("billumy")
        direct = 1e6 / d.cpu_us("upstream")
        both = b.cpu_us("billumy") + b.cpu_us("upstream")
        print(
            f"{mode:<10} {through:>15,.0f} {direct:>9,.0f} {through / direct:>14.2f} {both:>40,.0f}"
        )


def report_verdicts(seq: dict[str, Phase], conc: dict[str, Phase]) -> int:
    """The target lines; the number of lost requests."""
    print()
    for mode, phase in seq.items():
        p50, p99 = added_ms(phase, 0.5), added_ms(phase, 0.99)
        print(
            f"sequential {mode}: added p50 {p50:.2f} ms (target < {TARGET_P50_MS:g} ms): "
            f"{verdict(p50, TARGET_P50_MS)}"
        )
        print(
            f"sequential {mode}: added p99 {p99:.2f} ms (target < {TARGET_P99_MS:g} ms): "
            f"{verdict(p99, TARGET_P99_MS)}"
        )
    if "stream" in seq:
        p50, p99 = added_ms(seq["stream"], 0.5, True), added_ms(seq["stream"], 0.99, True)
        print(f"sequential stream: added ttft p50 {p50:.2f} ms, p99 {p99:.2f} ms (no target)")
    for phase_name, results in (("sequential", seq), ("concurrent", conc)):
        for mode, phase in results.items():
            b = phase["billumy"]
            if b.upstream_connections is None:
                continue
            reuse = b.requests / b.upstream_connections if b.upstream_connections else math.inf
            print(
                f"{phase_name} {mode}: billumy opened {b.upstream_connections} connections to "
                f"the upstream for {b.requests} requests ({reuse:.1f} requests per connection)"
            )
    streamed = [
        phase[name]
        for r in (seq, conc)
        for m, phase in r.items()
        if m == "stream"
        for name in TARGETS
    ]
    every = [phase[name] for r in (seq, conc) for phase in r.values() for name in TARGETS]
    lost = sum(s.lost for s in every)
    print(
        f"lost: {sum(s.lost for s in streamed)} of {sum(s.requests for s in streamed)} streamed "
        f"answers, {lost} of {sum(s.requests for s in every)} requests in all (target 0): "
        f"{'ok' if lost == 0 else 'LOSS'}"
    )
    seen: Counter[str] = Counter()
    for phase_name, results in (("sequential", seq), ("concurrent", conc)):
        for mode, phase in results.items():
            for name, s in phase.items():
                for problem, count in s.problems.items():
                    seen[f"{phase_name} {mode} {name}: {problem}"] += count
                if s.stale_retries:
                    seen[
                        f"{phase_name} {mode} {name}: sent again on a new connection after the "
                        "server closed an idle one (not lost)"
                    ] += s.stale_retries
    for problem, count in seen.most_common(10):
        print(f"  {count} x {problem}")
    return lost


# --- servers ---------------------------------------------------------------------------------


def billumy_toml(upstream_url: str, provider: str) -> str:
    return f"""default_requests_per_minute = 0
default_parallel = 0
cache_ttl = 0

[[deployments]]
name = "fast"
model = "{MODEL}"
provider = "{provider}"
url = "{upstream_url}"
upstream_model = "{MODEL}"
max_concurrency = 256
max_queue = 1024
"""


class Upstream:
    def __init__(self, chunks: int, log: Path) -> None:
        self.port = free_port()
        self.chunks = chunks
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Upstream:
        env = {**os.environ, "FAST_UPSTREAM_CHUNKS": str(self.chunks)}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "fast_upstream.py"), "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fast upstream exited early:\n{self.log.read_text()}")
            try:
                answer = httpx.get(self.url + "/api/version", timeout=1, trust_env=False)
                if answer.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("fast upstream did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def log_problems(log: str) -> Counter[str]:
    """Warnings and errors in Billumy's JSON log, by message."""
    found: Counter[str] = Counter()
    for raw in log.splitlines():
        try:
            entry = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("warning", "error", "critical"):
            found[f"{entry.get('level')}: {entry.get('msg')}"[:120]] += 1
    return found


# --- driver ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--api",
        choices=("ollama", "openai"),
        default="ollama",
        help="ollama: POST /api/chat to a provider-ollama deployment (default); openai: POST "
        "/v1/chat/completions to a provider-openai deployment",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=2000,
        help="sequential requests per target and mode (default 2000)",
    )
    parser.add_argument(
        "--block",
        type=int,
        default=50,
        help="sequential requests in a row to one target before switching (default 50)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="concurrent clients (default 64)"
    )
    parser.add_argument(
        "--concurrent-requests",
        type=int,
        default=4000,
        help="requests per target and mode under concurrency (default 4000; 0 skips it)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=200,
        help="unmeasured sequential requests per target and mode first (default 200)",
    )
    parser.add_argument(
        "--chunks",
        type=int,
        default=16,
        help="pieces in every answer (FAST_UPSTREAM_CHUNKS; default 16)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        help="Billumy's log level (default info, as deployed: one access line per request)",
    )
    args = parser.parse_args(argv)
    for name in ("requests", "block", "concurrency", "chunks"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("concurrent_requests", "warmup"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be at least 0")
    return args


async def measure(
    args: argparse.Namespace, bench: Bench
) -> tuple[dict[str, Phase], dict[str, Phase]]:
    await bench.probe()
    seq: dict[str, Phase] = {}
    conc: dict[str, Phase] = {}
    for mode in MODES:
        progress(f"sequential {mode}: {args.requests} requests per target")
        seq[mode] = await bench.sequential(mode == "stream", args.requests, args.block, args.warmup)
    if args.concurrent_requests:
        for mode in MODES:
            progress(
                f"concurrent {mode}: {args.concurrent_requests} requests per target, "
                f"{args.concurrency} clients"
            )
            conc[mode] = await bench.concurrent(
                mode == "stream", args.concurrent_requests, args.concurrency
            )
    return seq, conc


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    expected = tuple(pieces(args.chunks))
    wire: Wire = OllamaChat(expected) if args.api == "ollama" else OpenAIChat(expected)
    with tempfile.TemporaryDirectory(prefix="billumy-bench-") as tmp:
        data_dir = Path(tmp) / "billumy"
        data_dir.mkdir()
        upstream = Upstream(args.chunks, Path(tmp) / "upstream.log")
        url = upstream.url if args.api == "ollama" else upstream.url + "/v1"
        (data_dir / "billumy.toml").write_text(billumy_toml(url, args.api))
        server = Server(data_dir=data_dir, env={"BILLUMY_LOG_LEVEL": args.log_level})
        try:
            progress(f"starting the fast upstream ({args.chunks} pieces per answer)")
            upstream.start()
            progress("starting billumy serve")
            server.start()
            assert server.proc is not None and upstream.proc is not None
            bench = Bench(
                wire=wire,
                targets=[
                    Target("direct", upstream.port, {}),
                    Target("billumy", server.port, {**server.headers, "Cache-Control": "no-store"}),
                ],
                pids={"billumy": server.proc.pid, "upstream": upstream.proc.pid},
                stats=UpstreamStats(upstream.url),
            )
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                seq, conc = runner.run(measure(args, bench))
            logged = log_problems(server.log())
        finally:
            server.stop()
            upstream.stop()

    print(
        f"\napi {args.api}: POST {wire.path}, {args.chunks} pieces per answer from a fast "
        f"upstream that answers at once;\n{os.cpu_count()} CPU cores shared by this client, "
        "Billumy and the upstream"
    )
    report_sequential(seq, args.requests, args.block)
    if conc:
        report_concurrent(conc, args.concurrency)
    lost = report_verdicts(seq, conc)
    if logged:
        print(f"billumy logged {sum(logged.values())} warning/error line(s):")
        for message, count in logged.most_common(5):
            print(f"  {count} x {message}")
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
