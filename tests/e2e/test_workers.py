"""``billumy serve --workers 2``: one port, two worker processes sharing limits through Redis,
metrics that add up over both, and a SIGTERM that drains both.

Which worker answered a request is read from the server's log: every access line carries the
request id we sent and the ``pid`` of the process that wrote it. A keep-alive connection stays
with the worker that accepted it, so a test opens connections until it holds one per worker.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import BIN, RedisServer, Server, free_port
from tests.procs import parent_of, process_tree

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Worker:
    """A keep-alive connection and the worker process at its other end."""

    client: httpx.Client
    pid: int


def access_pid(srv: Server, request_id: str, timeout: float = 15.0) -> int:
    """The pid of the process that logged the request with this id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in srv.log().splitlines():
            if request_id in line and line.startswith("{"):
                entry = json.loads(line)
                if entry.get("request_id") == request_id:
                    return int(entry["pid"])
        time.sleep(0.05)
    raise AssertionError(f"request {request_id} is not in the log")


def call(srv: Server, client: httpx.Client, path: str) -> tuple[httpx.Response, int]:
    """GET ``path``; the response and the pid of the worker that answered it."""
    request_id = secrets.token_hex(8)
    response = client.get(path, headers={"X-Request-ID": request_id})
    return response, access_pid(srv, request_id)


def each_worker(srv: Server, key: str | None = None, count: int = 2) -> list[Worker]:
    """One open connection to each of ``count`` distinct workers of ``srv``."""
    assert srv.proc is not None
    headers = {"Authorization": f"Bearer {key or srv.api_key}"}
    workers: dict[int, Worker] = {}
    deadline = time.monotonic() + 60
    while len(workers) < count:
        assert time.monotonic() < deadline, f"found only workers {sorted(workers)}"
        client = httpx.Client(base_url=srv.url, headers=headers, timeout=60)
        # /health needs no key and counts against no limit.
        response, pid = call(srv, client, "/health")
        assert response.status_code == 200
        if pid in workers:
            client.close()
            continue
        assert pid != srv.proc.pid and parent_of(pid) == srv.proc.pid
        workers[pid] = Worker(client, pid)
    return list(workers.values())


def scrape(srv: Server, worker: Worker) -> Samples:
    response, pid = call(srv, worker.client, "/metrics")
    assert response.status_code == 200, response.text
    assert pid == worker.pid
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two workers on a private Redis, with an upstream deployment that never answers (each
    worker's own health checks open its circuit)."""
    data_dir = tmp_path_factory.mktemp("workers")
    (data_dir / "billumy.toml").write_text(
        f"""
health_interval = 0.5
breaker_failures = 1

[[deployments]]
name = "nowhere"
model = "dead"
url = "http://127.0.0.1:{free_port()}"
connect_timeout = 1.0
"""
    )
    redis = RedisServer(data_dir / "redis").start()
    env = {"BILLUMY_WORKERS": "2", "BILLUMY_REDIS_URL": redis.url, "BILLUMY_KEY_CACHE_TTL": "0"}
    srv = Server(data_dir=data_dir, env=env).start()
    yield srv
    srv.stop()
    redis.stop()


def test_both_workers_serve_and_a_key_limit_holds_across_them(two_workers: Server) -> None:
    srv = two_workers
    limited = subprocess.run(
        [str(BIN), "keys", "create", "--name", "tight", "--rpm", "2"],
        env=srv.environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    a, b = each_worker(srv, limited)
    answers = [call(srv, w.client, "/api/tags") for w in (a, b, a, b)]
    # Two requests in all use up the key's minute, whichever worker counts them: each worker
    # keeping its own count would have let all four through.
    assert [r.status_code for r, _ in answers] == [200, 200, 429, 429]
    assert [pid for _, pid in answers] == [a.pid, b.pid, a.pid, b.pid]
    assert answers[3][0].headers["retry-after"]
    a.client.close()
    b.client.close()


def test_metrics_add_up_over_workers(two_workers: Server) -> None:
    srv = two_workers
    a, b = each_worker(srv)
    before = scrape(srv, a), scrape(srv, b)
    pids = [call(srv, w.client, "/api/version")[1] for w in (a, b, b, a, b)]
    assert sorted(pids) == sorted([a.pid, a.pid, b.pid, b.pid, b.pid])
    after = scrape(srv, a), scrape(srv, b)
    version = {"route": "/api/version", "method": "GET", "status": "200"}
    # Whichever worker answers the scrape, it counts the requests both of them served.
    for old, new in zip(before, after, strict=True):
        assert value(new, "billumy_requests_total", **version) - value(
            old, "billumy_requests_total", **version
        ) == len(pids)
        count = "billumy_request_duration_seconds_count"
        assert value(new, count, route="/api/version") - value(
            old, count, route="/api/version"
        ) == len(pids)
    # Live gauges merge the workers' own objects: each worker checks the dead deployment
    # itself, and the circuit-state gauge counts the workers in each state.
    deadline = time.monotonic() + 30
    while True:
        samples = scrape(srv, a)
        states = {
            state: value(
                samples, "billumy_upstream_circuit_state", deployment="nowhere", state=state
            )
            for state in ("closed", "half_open", "open")
        }
        assert sum(states.values()) == 2, states
        if states["open"] == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert states["open"] == 2, states
    assert value(samples, "billumy_upstream_healthy", deployment="nowhere", model="dead") == 0
    assert value(samples, "billumy_queue_depth") == 0
    a.client.close()
    b.client.close()


def mapping(root: int, fragment: str) -> list[int]:
    """The pids, among ``root`` and its descendants, of the processes that map a file whose
    path holds ``fragment`` (other tests' servers run beside this one)."""
    pids = []
    for pid in process_tree(root):
        try:
            if fragment in Path(f"/proc/{pid}/maps").read_text():
                pids.append(pid)
        except OSError:
            continue  # gone
    return pids


def test_one_engine_process_serves_every_worker(two_workers: Server) -> None:
    srv = two_workers
    assert srv.proc is not None
    a, b = each_worker(srv)
    body = {"model": "smollm2-135m", "prompt": "Oi", "stream": False,
            "options": {"num_predict": 2}}  # fmt: skip
    for worker in (a, b):
        response = worker.client.post("/api/generate", json=body)
        assert response.status_code == 200, response.text
    # The weights are mapped once, by the engine process that serve's supervisor started,
    # and neither worker loads llama.cpp at all.
    [engine] = mapping(srv.proc.pid, "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert engine not in (a.pid, b.pid) and parent_of(engine) == srv.proc.pid
    assert mapping(srv.proc.pid, "libllama") == [engine]
    ready = a.client.get("/ready").json()
    assert ready["engine"]["pid"] == engine and ready["engine"]["state"] == "running"
    a.client.close()
    b.client.close()


def test_workers_need_redis(tmp_path: Path) -> None:
    srv = Server(data_dir=tmp_path / "no-redis", env={"BILLUMY_WORKERS": "2"})
    result = subprocess.run(
        [str(BIN), "serve"], env=srv.environment(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "--workers 2 needs BILLUMY_REDIS_URL" in " ".join(result.stderr.split())


def _stream(worker: Worker, seed: int) -> tuple[httpx.Response, Iterator[str], str]:
    """A long generation streaming from ``worker``: the response, its lines, its request id."""
    request_id = secrets.token_hex(8)
    body = {
        "model": "smollm2-135m",
        "prompt": "Count from 1 to 5000, separated by commas: 1, 2, 3,",
        "options": {"num_predict": 3000, "temperature": 0, "seed": seed},
    }
    headers = {"X-Request-ID": request_id}
    request = worker.client.build_request("POST", "/api/generate", json=body, headers=headers)
    response = worker.client.send(request, stream=True)
    assert response.status_code == 200
    return response, response.iter_lines(), request_id


def test_sigterm_drains_every_worker_and_the_parent_exits_0(
    make_server: type[Server], tmp_path: Path, redis_server: RedisServer
) -> None:
    grace = 2.0
    env = {
        "BILLUMY_WORKERS": "2",
        "BILLUMY_REDIS_URL": redis_server.url,
        "BILLUMY_SHUTDOWN_GRACE": str(grace),
        "BILLUMY_NUM_THREADS": "1",  # two workers generate at once on a small machine
        "BILLUMY_NUM_PARALLEL": "2",  # ... on the one engine process they share
    }
    srv = make_server(data_dir=tmp_path / "srv", env=env).start()
    assert srv.proc is not None
    workers = each_worker(srv)
    streams = [_stream(w, seed) for seed, w in enumerate(workers, 1)]
    for _, lines, _ in streams:
        assert not json.loads(next(lines))["done"]
    [engine] = mapping(srv.proc.pid, "SmolLM2-135M-Instruct.Q4_1.gguf")
    srv.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    lasts = []
    for response, lines, _ in streams:
        rest = [json.loads(x) for x in lines if x.strip()]
        response.close()
        lasts.append((rest[-1], time.monotonic() - signalled))
    # Each stream came from the worker whose connection sent it: both workers drained.
    assert [access_pid(srv, request_id) for _, _, request_id in streams] == [w.pid for w in workers]
    code = srv.proc.wait(timeout=60)
    exited = time.monotonic() - signalled
    srv.proc = None
    # Each worker let its stream run for the grace period, then ended it in-band.
    for last, ended in lasts:
        assert "shutting down" in str(last.get("error", "")), last
        assert ended >= grace - 0.5
    assert code == 0
    # Well before uvicorn's own limit (grace + 10 s), and every worker is gone.
    assert exited < grace + 8, exited
    for w in workers:
        w.client.close()
        assert not Path(f"/proc/{w.pid}").exists()
    assert not Path(f"/proc/{engine}").exists()  # the engine process is gone too
