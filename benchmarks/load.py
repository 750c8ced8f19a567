"""Nothing a key sends takes the server from the others: a well-behaved tenant under attack.

Starts ``benchmarks/fast_upstream.py`` (an instant fake Ollama server) and a real ``billumy
serve`` with one deployment, "fast", in front of it, plus the embedded model. Two tenants get a
key each: W (well-behaved; the server's default limits) and A (the attacker; its own parallel
and per-minute limits, so that its abuse is bounded by its own limits).

* W alone (the baseline): W sends ``--w-requests`` streaming chats to "fast",
  ``--w-concurrency`` at a time (at most ``--w-rate`` a second): latency to the last byte (p50,
  p95) and time to first token.
* W under attack: the same W load while ``--attackers`` concurrent A clients loop over a
  mix of: normal streams (fast model, and the embedded model with a few tokens), oversized
  chats (a body over ``BILLUMY_MAX_BODY_BYTES``: must be a 4xx), slow readers (open a stream and
  never read it, holding the connection to the end of the phase), disconnects mid-stream,
  random keys (must be 401), and messages appended to stored chats (those answered 2xx are
  acknowledged and must be in the chat afterwards).

The two alternate ``--rounds`` times, so that both sample the same noisy stretches of this
shared machine. With ``--via-nginx`` every request of W and A goes through a real nginx running
the shipped ``deploy/nginx/billumy.conf`` (the production shape: its per-key, anonymous and
per-address zones refuse floods before Billumy sees them), A's connections coming from
``--attacker-address`` (127.0.0.2), W's from 127.0.0.1.

Printed: W's p95 alone and under attack and their ratio (target <= 1.5), A's outcomes by kind
and status, hangs (requests not finished within ``--deadline`` s: target 0), server errors
(5xx: target 0), acknowledged chat messages missing when the chats are read back (target 0).
With ``--strict`` the exit status is 1 when a target is missed; otherwise 0 (this machine is
shared and noisy: a ratio is a measurement, not a verdict).

Client, server and upstream share this machine's cores, so the attackers' own CPU cost is part
of what W feels; ``--attacker-pause`` spaces each attacker's requests. The attackers run in a
process of their own (as they would on machines of their own), so W's client does not share an
event loop with them: W's latency is the server's.

Run from the repository root::

    .venv/bin/python benchmarks/load.py
    .venv/bin/python benchmarks/load.py --attackers 100 --w-requests 100 --strict
    .venv/bin/python benchmarks/load.py --via-nginx --attacker-nice 19
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.proxy_overhead import Upstream  # noqa: E402
from tests.e2e.server import BIN, Server, free_port  # noqa: E402

FAST = "fast"
EMBEDDED = "smollm2-135m"
MAX_BODY = 256 * 1024
TARGET_RATIO = 1.5
KINDS = ("stream", "embedded", "oversized", "slow-reader", "disconnect", "random-key", "chat")
WEIGHTS = (30, 5, 15, 10, 15, 10, 15)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Hang(Exception):
    """A request that did not finish within the deadline."""


@dataclass
class Answer:
    status: int
    body: bytes
    ttft: float | None  # seconds from sending to the first body bytes


async def request(
    port: int,
    method: str,
    path: str,
    key: str,
    body: bytes = b"",
    *,
    deadline: float,
    stop_after: int | None = None,
    source: str | None = None,
) -> Answer:
    """One HTTP/1.1 request on a fresh connection, read to the end (or to ``stop_after`` body
    bytes, after which the connection is dropped: a disconnect mid-stream), from the local
    address ``source`` when given. Raises :class:`Hang` past ``deadline`` seconds."""
    started = time.perf_counter()

    async def run() -> Answer:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, limit=1 << 22, local_addr=(source, 0) if source else None
        )
        try:
            writer.write(
                f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Type: application/json\r\nCache-Control: no-store\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            chunks: list[bytes] = []
            ttft: float | None = None
            size = 0
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if ttft is None:
                    ttft = time.perf_counter() - started
                chunks.append(data)
                size += len(data)
                if stop_after is not None and size >= stop_after:
                    break
            raw = b"".join(chunks)
            if b"transfer-encoding: chunked" in head.lower() and stop_after is None:
                raw = _decode_chunked(raw)
            return Answer(status, raw, ttft)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    try:
        return await asyncio.wait_for(run(), deadline)
    except TimeoutError as exc:
        raise Hang(path) from exc


def _decode_chunked(raw: bytes) -> bytes:
    out, rest = [], raw
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";", 1)[0] or b"0", 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)


def _lines(answer: Answer) -> list[dict[str, object]]:
    return [orjson.loads(x) for x in answer.body.split(b"\n") if x.strip()]


def _chat_body(model: str, text: str, predict: int | None = None) -> bytes:
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "stream": True,
    }
    if predict is not None:
        body["options"] = {"num_predict": predict, "temperature": 0}
    return orjson.dumps(body)


@dataclass
class Tally:
    """What happened, by who and kind."""

    outcomes: Counter[str] = field(default_factory=Counter)  # "kind status" -> count
    hangs: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # connection errors, bad streams
    acknowledged: dict[str, list[str]] = field(default_factory=dict)  # chat id -> contents


@dataclass
class Latency:
    total: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    failed: int = 0
    windows: list[tuple[float, float]] = field(default_factory=list)  # epoch seconds

    def add(self, other: Latency) -> None:
        self.total += other.total
        self.ttft += other.ttft
        self.failed += other.failed
        self.windows += other.windows


def quantile(samples: list[float], q: float) -> float:
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def well_behaved(
    port: int,
    key: str,
    requests: int,
    concurrency: int,
    deadline: float,
    tally: Tally,
    rate: float = 0.0,
) -> Latency:
    """W's load: ``requests`` streamed chats to the fast model, ``concurrency`` at a time, and
    at most ``rate`` a second when it is above 0 (a tenant that keeps within its limits)."""
    out = Latency()
    todo = iter(range(requests))
    began = time.perf_counter()
    opened = time.time()

    async def client() -> None:
        for i in todo:
            if rate > 0:
                await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
            started = time.perf_counter()
            try:
                answer = await request(
                    port, "POST", "/api/chat", key, _chat_body(FAST, f"w {i}"), deadline=deadline
                )
            except Hang:
                tally.hangs["W stream"] += 1
                out.failed += 1
                continue
            except OSError as exc:
                tally.failures[f"W {type(exc).__name__}"] += 1
                out.failed += 1
                continue
            lines = _lines(answer) if answer.status == 200 else []
            if answer.status >= 500:
                tally.server_errors[f"W {answer.status}"] += 1
            if answer.status != 200 or not lines or lines[-1].get("done") is not True:
                tally.failures[f"W status {answer.status}"] += 1
                out.failed += 1
                continue
            out.total.append(time.perf_counter() - started)
            if answer.ttft is not None:
                out.ttft.append(answer.ttft)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    out.windows.append((opened, time.time()))
    return out


class Attack:
    """``attackers`` clients of tenant A looping over the hostile mix until :meth:`stop`."""

    def __init__(
        self, port: int, key: str, chats: list[str], args: argparse.Namespace, tally: Tally
    ) -> None:
        self.port, self.key, self.chats, self.args, self.tally = port, key, chats, args, tally
        self.stopping = asyncio.Event()
        self.held: list[asyncio.StreamWriter] = []
        self.rng = random.Random(args.seed)
        self.weights = [
            0 if k in (args.without or ()) else w for k, w in zip(KINDS, WEIGHTS, strict=True)
        ]

    async def one(self, kind: str) -> None:
        port, key, deadline = self.port, self.key, self.args.deadline
        stop_after: int | None = None
        path, body = "/api/chat", _chat_body(FAST, "a")
        if kind == "embedded":
            body = _chat_body(EMBEDDED, "Say hi", predict=4)
        elif kind == "oversized":
            body = _chat_body(FAST, "x" * (MAX_BODY + 1024))
        elif kind == "random-key":
            key = "bk_" + secrets.token_hex(16)
        elif kind == "disconnect":
            stop_after = 200
        elif kind == "chat":
            chat_id = self.rng.choice(self.chats)
            content = f"msg-{secrets.token_hex(6)}"
            path = f"/chats/{chat_id}/messages"
            body = orjson.dumps({"content": content, "stream": True})
        elif kind == "slow-reader":
            await self.slow_reader(body)
            return
        answer = await request(
            port,
            "POST",
            path,
            key,
            body,
            deadline=deadline,
            stop_after=stop_after,
            source=self.args.attacker_address,
        )
        self.tally.outcomes[f"{kind} {answer.status}"] += 1
        if answer.status >= 500:
            self.tally.server_errors[f"A {kind} {answer.status}"] += 1
        if kind == "oversized" and not 400 <= answer.status < 500:
            self.tally.failures[f"oversized answered {answer.status}"] += 1
        if kind == "random-key" and answer.status != 401:
            self.tally.failures[f"random key answered {answer.status}"] += 1
        if kind == "chat" and 200 <= answer.status < 300:
            lines = _lines(answer)
            if lines and "error" not in lines[-1]:
                self.tally.acknowledged.setdefault(chat_id, []).append(content)

    async def slow_reader(self, body: bytes) -> None:
        """Send a streamed chat and never read the answer; the socket stays open (receive
        buffer shrunk) until the phase ends."""
        _, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, limit=1024, local_addr=(self.args.attacker_address, 0)
        )
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write(
            f"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        self.held.append(writer)
        self.tally.outcomes["slow-reader opened"] += 1

    async def client(self) -> None:
        while not self.stopping.is_set():
            kind = self.rng.choices(KINDS, self.weights)[0]
            try:
                await self.one(kind)
            except Hang:
                self.tally.hangs[f"A {kind}"] += 1
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                self.tally.outcomes[f"{kind} {type(exc).__name__}"] += 1
            if self.args.attacker_pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), self.args.attacker_pause)

    async def stop(self) -> None:
        self.stopping.set()
        for writer in self.held:
            writer.close()


async def read_back(port: int, key: str, tally: Tally) -> tuple[int, int]:
    """(acknowledged messages, of them missing from their chats when read back)."""
    acknowledged = missing = 0
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
        trust_env=False,
    ) as client:
        for chat_id, contents in tally.acknowledged.items():
            answer = await client.get(f"/chats/{chat_id}")
            while answer.status_code == 429:  # A spent its minute's requests in the attack
                await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
                answer = await client.get(f"/chats/{chat_id}")
            answer.raise_for_status()
            stored = answer.json()
            have = {m.get("content") for m in stored.get("messages", [])}
            acknowledged += len(contents)
            missing += sum(1 for c in contents if c not in have)
    return acknowledged, missing


def w_load(
    args: argparse.Namespace, front: int, keys: dict[str, str], tally: Tally
) -> Coroutine[Any, Any, Latency]:
    """W's measured load, the same alone and under attack."""
    return well_behaved(
        front, keys["W"], args.w_requests, args.w_concurrency, args.deadline, tally, args.w_rate
    )


async def under_attack(
    args: argparse.Namespace, front: int, keys: dict[str, str], chats: list[str], tally: Tally
) -> Latency:
    """W's load while ``args.attackers`` clients of A attack; A's tally is added to ``tally``."""
    # The attackers run in a process of their own, as they would on machines of their own:
    # W's client measures the server, not an event loop it shares with 500 attackers.
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    receive, send = context.Pipe(duplex=False)
    attackers = context.Process(
        target=attack_process,
        args=(front, keys["A"], chats, vars(args), stop, send),
        name="load-attackers",
    )
    attackers.start()
    await asyncio.sleep(args.ramp)  # the attack is under way before W starts
    w_task = asyncio.ensure_future(w_load(args, front, keys, tally))
    started = time.monotonic()
    while not w_task.done():
        await asyncio.sleep(2)
        progress(f"  {time.monotonic() - started:.0f}s of W under attack")
        if time.monotonic() - started > args.max_seconds:
            progress("  the attack ran past --max-seconds: W's remaining requests are cut")
            w_task.cancel()
            break
    attacked = await w_task if not w_task.cancelled() else Latency()
    stop.set()
    # Attackers finish what they have in flight (each bounded by the deadline).
    loop = asyncio.get_running_loop()
    if await loop.run_in_executor(None, receive.poll, args.deadline + 30):
        theirs = receive.recv()
        for name in ("outcomes", "hangs", "server_errors", "failures"):
            getattr(tally, name).update(theirs[name])
        for chat_id, contents in theirs["acknowledged"].items():
            tally.acknowledged.setdefault(chat_id, []).extend(contents)
    else:
        tally.hangs["A's process did not report"] += 1
    await loop.run_in_executor(None, attackers.join, 10)
    if attackers.is_alive():
        attackers.kill()
    return attacked


async def run(
    args: argparse.Namespace, port: int, front: int, keys: dict[str, str]
) -> dict[str, object]:
    """Both phases. ``port`` is the server's own; ``front`` the one W and A send to (the server's,
    or Nginx's in front of it with ``--via-nginx``)."""
    tally = Tally()
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {keys['A']}"},
        timeout=60,
        trust_env=False,
    ) as client:
        chats = []
        for i in range(args.chats):
            r = await client.post("/chats", json={"user_id": f"a{i}", "model": FAST})
            r.raise_for_status()
            chats.append(r.json()["id"])
        # Warm up: the fast route and the embedded model are loaded before anything is timed.
        for model in (FAST, EMBEDDED):
            await request(
                front, "POST", "/api/chat", keys["W"], _chat_body(model, "hi", 2), deadline=120
            )

    await well_behaved(
        front, keys["W"], 2 * args.w_concurrency, args.w_concurrency, 60, Tally(), args.w_rate
    )
    # Alone and under attack alternate, ``--rounds`` times: this machine is shared and noisy,
    # and each condition then samples the same stretches of it.
    alone, attacked = Latency(), Latency()
    for round_ in range(1, args.rounds + 1):
        progress(
            f"round {round_}/{args.rounds}, W alone: {args.w_requests} streams, "
            f"{args.w_concurrency} at a time"
        )
        alone.add(await w_load(args, front, keys, tally))
        progress(f"round {round_}/{args.rounds}, W under attack by {args.attackers} clients")
        attacked.add(await under_attack(args, front, keys, chats, tally))

    health = await request(port, "GET", "/health", keys["W"], deadline=10)
    acknowledged, missing = await read_back(port, keys["A"], tally)
    return {
        "alone": alone,
        "attacked": attacked,
        "tally": tally,
        "healthy": health.status == 200,
        "acknowledged": acknowledged,
        "missing": missing,
    }


def attack_process(
    port: int,
    key: str,
    chats: list[str],
    options: dict[str, Any],
    stop: Any,
    report_to: Any,
) -> None:
    """The attackers' process: ``options["attackers"]`` clients of tenant A until ``stop`` is
    set, then their tally sent to ``report_to``."""
    args = argparse.Namespace(**options)
    if args.attacker_nice:
        os.nice(args.attacker_nice)
    tally = Tally()

    async def attack() -> None:
        attack = Attack(port, key, chats, args, tally)
        clients = [asyncio.ensure_future(attack.client()) for _ in range(args.attackers)]
        started = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.1)
            if time.monotonic() - started >= 2:
                started = time.monotonic()
                progress(
                    f"  attackers: outcomes {sum(tally.outcomes.values())}, "
                    f"hangs {sum(tally.hangs.values())}, 5xx {sum(tally.server_errors.values())}"
                )
        await attack.stop()
        _, pending = await asyncio.wait(clients, timeout=args.deadline + 5)
        for task in pending:
            task.cancel()
            tally.hangs["A still running at the end"] += 1

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(attack())
    report_to.send(
        {
            "outcomes": dict(tally.outcomes),
            "hangs": dict(tally.hangs),
            "server_errors": dict(tally.server_errors),
            "failures": dict(tally.failures),
            "acknowledged": tally.acknowledged,
        }
    )


@contextlib.contextmanager
def nginx_in_front(tmp: Path, server_port: int, workers: str = "auto") -> Iterator[int]:
    """The shipped nginx config in front of the server (as tests/nginx_kit.py runs it), its TLS
    server listening in plain HTTP, with connections enough for the attack and ``workers``
    worker processes (``auto``: one a core, as the Compose file's nginx image runs it); yields
    its port."""
    from tests import nginx_kit

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("--via-nginx: nginx is not installed (apt-get install -y nginx)")
    prefix = tmp / "nginx"
    prefix.mkdir()
    http_port, port = free_port(), free_port()
    nginx_kit.nginx_prefix(prefix, server_port, http_port, port)
    # nginx's workers run as an unprivileged user when it starts as root: they must reach the
    # temporary paths where a large request body is buffered.
    for path in (tmp, prefix):
        path.chmod(0o755)
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / kind).mkdir(mode=0o777, exist_ok=True)
        (prefix / kind).chmod(0o777)
    conf = prefix / "billumy.conf"
    conf.write_text(
        conf.read_text().replace(f"listen 127.0.0.1:{port} ssl;", f"listen 127.0.0.1:{port};")
    )
    main_conf = prefix / "nginx.conf"
    main_conf.write_text(
        main_conf.read_text()
        .replace(
            "    access_log off;",
            # W's requests only (A's address is another): nginx's own time and the upstream's.
            "    map $remote_addr $w_request { 127.0.0.1 1; default 0; }\n"
            "    log_format timing '$msec $status $request_time $upstream_response_time';\n"
            f"    access_log {prefix}/access.log timing buffer=256k flush=1s if=$w_request;",
        )
        .replace(
            "events { worker_connections 64; }",
            f"worker_processes {workers};\nworker_rlimit_nofile 65536;\n"
            "events { worker_connections 16384; }",
        )
    )
    proc = subprocess.Popen(
        nginx_kit.nginx_args(nginx, prefix), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (prefix / "error.log").read_text()
                    raise SystemExit("nginx did not start:\n" + log) from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        # What nginx itself logged above a warning (its refusals are warnings: expected).
        problems = Counter(
            line.split("] ", 1)[1].split(", client:", 1)[0][:160]
            for line in (prefix / "error.log").read_text(errors="replace").splitlines()
            if any(f"[{level}]" in line for level in ("error", "crit", "alert", "emerg"))
        )
        for text, count in problems.most_common(5):
            progress(f"  nginx logged {count}x: {text}")


def nginx_times(log: Path) -> list[tuple[float, float, float]]:
    """W's requests as nginx logged them: (when it ended, epoch s; nginx's whole time, s; of it
    the upstream's, s: from connecting to Billumy to its last byte)."""
    out = []
    for line in log.read_text().splitlines():
        fields = line.split()
        with contextlib.suppress(ValueError, IndexError):
            out.append((float(fields[0]), float(fields[2]), float(fields[3].split(",")[-1])))
    return out


def edge_split(
    times: list[tuple[float, float, float]], windows: list[tuple[float, float]]
) -> tuple[list[float], list[float]]:
    """(nginx's whole time, the upstream's) of W's requests that ended within ``windows``."""
    inside = [t for t in times if any(a <= t[0] <= b for a, b in windows)]
    return [t[1] for t in inside], [t[2] for t in inside]


def billumy_toml(upstream_url: str) -> str:
    return f"""default_requests_per_minute = 0
cache_ttl = 0

[[deployments]]
name = "fast"
model = "{FAST}"
provider = "ollama"
url = "{upstream_url}"
upstream_model = "{FAST}"
max_concurrency = 256
max_queue = 1024
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--attackers", type=int, default=500, help="concurrent A clients (default 500)")
    add("--w-requests", type=int, default=300, help="W's streams per phase (default 300)")
    add("--w-concurrency", type=int, default=8, help="W's streams at once (default 8)")
    add("--a-parallel", type=int, default=8, help="A's key: requests at once (default 8)")
    add("--a-rpm", type=int, default=1200, help="A's key: requests per minute (default 1200)")
    add("--chats", type=int, default=20, help="stored chats A appends to (default 20)")
    add(
        "--attacker-pause",
        type=float,
        default=0.2,
        help="seconds each attacker waits between its requests (default 0.2; 0: none)",
    )
    add(
        "--attacker-nice",
        type=int,
        default=0,
        help=(
            "niceness of the attackers' process (default 0: they compete for this machine's "
            "cores like the server; 19: as if they ran elsewhere, the server's own cost of "
            "refusing them still counted)"
        ),
    )
    add(
        "--via-nginx",
        action="store_true",
        help=(
            "send W's and A's requests through a real nginx running the shipped "
            "deploy/nginx/billumy.conf (its TLS server on plain HTTP: a load generator's TLS "
            "handshakes on the same cores would measure openssl), as in production"
        ),
    )
    add(
        "--nginx-workers",
        default="auto",
        help=(
            "nginx worker_processes with --via-nginx (default auto: one a core, as the nginx "
            "image of deploy/compose.yaml runs it)"
        ),
    )
    add(
        "--engine-nice",
        type=int,
        default=None,
        help="BILLUMY_ENGINE_NICE for the server (default: the server's own default)",
    )
    add(
        "--server-env",
        action="append",
        metavar="NAME=VALUE",
        help="a BILLUMY_* setting for the server (repeat it for several)",
    )
    add(
        "--w-rate",
        type=float,
        default=None,
        help=(
            "W's requests per second at most (default: none direct; 50 with --via-nginx, "
            "within the edge's 100 a second per key)"
        ),
    )
    add(
        "--attacker-address",
        default="127.0.0.2",
        help="local address A's connections come from (default 127.0.0.2; W's is 127.0.0.1)",
    )
    add(
        "--rounds",
        type=int,
        default=2,
        help="times W alone and W under attack alternate (default 2)",
    )
    add(
        "--without",
        action="append",
        choices=KINDS,
        help="leave this kind out of A's mix (repeat it for several)",
    )
    add("--ramp", type=float, default=3.0, help="seconds of attack before W starts (default 3)")
    add(
        "--deadline",
        type=float,
        default=30.0,
        help="seconds after which an unfinished request counts as hung (default 30)",
    )
    add(
        "--max-seconds",
        type=float,
        default=90.0,
        help="most seconds an attack runs before W's rest is cut (default 90)",
    )
    add(
        "--workers",
        type=int,
        default=1,
        help="billumy serve worker processes (default 1; more share limits through --redis-url)",
    )
    add(
        "--redis-url",
        default="redis://127.0.0.1:6379/0",
        help="Redis for the limits when --workers is above 1 (default redis://127.0.0.1:6379/0)",
    )
    add("--chunks", type=int, default=32, help="pieces per fast-upstream answer (default 32)")
    add("--seed", type=int, default=1, help="seed of the attackers' mix (default 1)")
    add("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.w_rate is None:
        args.w_rate = 50.0 if args.via_nginx else 0.0
    for name in (
        "rounds",
        "attackers",
        "w_requests",
        "w_concurrency",
        "chats",
        "chunks",
        "workers",
    ):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def report(args: argparse.Namespace, result: dict[str, object]) -> bool:
    alone, attacked = result["alone"], result["attacked"]
    tally = result["tally"]
    assert isinstance(alone, Latency) and isinstance(attacked, Latency)
    assert isinstance(tally, Tally)
    ms = 1000.0
    ratio = quantile(attacked.total, 0.95) / quantile(alone.total, 0.95)
    print(
        f"\n{args.attackers} attackers (tenant A: parallel {args.a_parallel}, rpm {args.a_rpm}, "
        f"pause {args.attacker_pause}s) against W's {args.w_requests} streams, "
        f"{args.w_concurrency} at a time"
        + (f", at most {args.w_rate:g}/s" if args.w_rate else "")
        + f"; {args.workers} server worker(s)"
        + (
            f"; through nginx (deploy/nginx/billumy.conf, {args.nginx_workers} workers)"
            if args.via_nginx
            else ""
        )
    )
    header = (
        f"{'W':<14} {'p50 ms':>8} {'p95 ms':>8} {'ttft p50':>9} {'ttft p95':>9} "
        f"{'ok':>5} {'failed':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, lat in (("alone", alone), ("under attack", attacked)):
        print(
            f"{name:<14} {ms * quantile(lat.total, 0.5):>8.1f} "
            f"{ms * quantile(lat.total, 0.95):>8.1f} "
            f"{ms * quantile(lat.ttft, 0.5):>9.1f} {ms * quantile(lat.ttft, 0.95):>9.1f} "
            f"{len(lat.total):>5} {lat.failed:>6}"
        )
    edge = result.get("edge")
    if isinstance(edge, list) and edge:
        print("\nW as nginx timed it (whole: from reading the request to the last byte sent;")
        print("billumy: from connecting upstream to Billumy's last byte), ms")
        print(f"{'W':<14} {'whole p50':>10} {'whole p95':>10} {'billumy p50':>12} {'p95':>8}")
        for name, lat in (("alone", alone), ("under attack", attacked)):
            whole, upstream = edge_split(edge, lat.windows)
            print(
                f"{name:<14} {ms * quantile(whole, 0.5):>10.1f} {ms * quantile(whole, 0.95):>10.1f}"
                f" {ms * quantile(upstream, 0.5):>12.1f} {ms * quantile(upstream, 0.95):>8.1f}"
            )
    print("\nA's outcomes (kind status: count)")
    for outcome, count in sorted(tally.outcomes.items()):
        print(f"  {outcome:<32} {count:>6}")
    hangs, errors = sum(tally.hangs.values()), sum(tally.server_errors.values())
    checks = [
        (
            f"W p95 under attack / alone: {ratio:.2f} (target <= {TARGET_RATIO})",
            ratio <= TARGET_RATIO,
        ),
        (f"hangs: {hangs} {dict(tally.hangs)} (target 0)", hangs == 0),
        (f"server errors (5xx): {errors} {dict(tally.server_errors)} (target 0)", errors == 0),
        (
            f"acknowledged chat messages missing: {result['missing']} of "
            f"{result['acknowledged']} (target 0)",
            result["missing"] == 0,
        ),
        (
            f"W failed requests: {alone.failed + attacked.failed} (target 0)",
            alone.failed + attacked.failed == 0,
        ),
        (f"server healthy afterwards: {result['healthy']}", bool(result["healthy"])),
    ]
    print()
    for text, ok in checks:
        print(f"{text}: {'ok' if ok else 'MISSED'}")
    if tally.failures:
        print("other problems:", dict(tally.failures.most_common(8)))
    return all(ok for _, ok in checks)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="billumy-load-") as tmp:
        data_dir = Path(tmp) / "billumy"
        data_dir.mkdir()
        upstream = Upstream(args.chunks, Path(tmp) / "upstream.log")
        (data_dir / "billumy.toml").write_text(billumy_toml(upstream.url))
        env = {"BILLUMY_MAX_BODY_BYTES": str(MAX_BODY), "BILLUMY_LOG_LEVEL": "warning"}
        if args.engine_nice is not None:
            env["BILLUMY_ENGINE_NICE"] = str(args.engine_nice)
        for setting in args.server_env or ():
            name, _, value = setting.partition("=")
            env[name] = value
        if args.workers > 1:
            env |= {"BILLUMY_WORKERS": str(args.workers), "BILLUMY_REDIS_URL": args.redis_url}
        server = Server(data_dir=data_dir, env=env)
        try:
            progress(f"starting the fast upstream ({args.chunks} pieces per answer)")
            upstream.start()
            progress("starting billumy serve")
            server.start()
            keys = {
                "W": server.create_key("w", tenant="w"),
                "A": server.create_key("a", tenant="a"),
            }
            subprocess.run(
                [
                    str(BIN),
                    "keys",
                    "limits",
                    "a",
                    "--parallel",
                    str(args.a_parallel),
                    "--rpm",
                    str(args.a_rpm),
                ],
                env=server.environment(),
                check=True,
                capture_output=True,
                timeout=60,
            )
            with contextlib.ExitStack() as stack:
                front = server.port
                if args.via_nginx:
                    progress("starting nginx with deploy/nginx/billumy.conf in front")
                    front = stack.enter_context(
                        nginx_in_front(Path(tmp), server.port, args.nginx_workers)
                    )
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    result = runner.run(run(args, server.port, front, keys))
            if args.via_nginx:
                result["edge"] = nginx_times(Path(tmp) / "nginx" / "access.log")
        finally:
            server.stop()
            upstream.stop()
    met = report(args, result)
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    raise SystemExit(main())
