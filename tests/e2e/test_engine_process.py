"""The engine process: llama.cpp runs in a supervised child, so a native crash costs only the
requests in flight on it, never the server.

Each test kills the real engine process of a real ``billumy serve`` (SIGKILL, as the kernel's
OOM killer does, and SIGSEGV, as a fault in llama.cpp does) while real requests run on it.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import Server

# Greedy counting: long, deterministic, and never stopped early by an end-of-text token.
COUNTING = {
    "model": "smollm2-135m",
    "prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,",
    "raw": True,
    "options": {"num_predict": 2000, "temperature": 0},
}
SHORT = {"num_predict": 4, "temperature": 0}
LONG_STORY = "Write a very long story about a store, at least 2000 words."


@pytest.fixture(scope="module")
def crashy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose engine process the tests kill; its own, so no other test sees it."""
    # Its runner is killed more often than the default 5 times a minute that mark it failed.
    env = {"BILLUMY_ENGINE_MAX_CRASHES": "100"}
    srv = Server(data_dir=tmp_path_factory.mktemp("crashy"), env=env).start()
    yield srv
    srv.stop()


def client(srv: Server) -> httpx.Client:
    # no-store: every answer comes from the engine, never from the response cache.
    headers = {**srv.headers, "Cache-Control": "no-store"}
    return httpx.Client(base_url=srv.url, headers=headers, timeout=120)


def runner(srv: Server) -> dict[str, Any]:
    body = httpx.get(srv.url + "/ready", timeout=10).json()
    engine: dict[str, Any] = body["engine"]
    return engine


def running_pid(srv: Server, other_than: int | None = None, timeout: float = 60) -> int:
    """The engine process's pid once it runs (and is not ``other_than``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        engine = runner(srv)
        if engine["state"] == "running" and engine["pid"] not in (None, other_than):
            return int(engine["pid"])
        time.sleep(0.05)
    raise AssertionError(f"the engine process did not start: {runner(srv)}")


def warm(srv: Server) -> int:
    """Load the model (so a kill lands during generation, not loading); the engine's pid."""
    with client(srv) as c:
        r = c.post("/api/generate", json={**COUNTING, "stream": False, "options": SHORT})
        assert r.status_code == 200, r.text
    return running_pid(srv)


def kill(pid: int, sig: signal.Signals) -> None:
    import os

    os.kill(pid, sig)


def answers_after_restart(srv: Server, crashed: int) -> float:
    """A request right after the crash succeeds; how long it took (the restart included)."""
    started = time.monotonic()
    with client(srv) as c:
        r = c.post("/api/generate", json={**COUNTING, "stream": False, "options": SHORT})
    took = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert r.json()["response"]
    assert running_pid(srv) != crashed
    return took


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_a_crash_mid_stream_ends_the_stream_in_band_and_the_next_request_succeeds(
    crashy: Server, sig: signal.Signals
) -> None:
    pid = warm(crashy)
    restarts = runner(crashy)["restarts"]
    with client(crashy) as c, c.stream("POST", "/api/generate", json=COUNTING) as r:
        assert r.status_code == 200
        request_id = r.headers["x-request-id"]
        lines = r.iter_lines()
        first = json.loads(next(lines))
        assert not first["done"] and first["response"]
        kill(pid, sig)
        rest = [json.loads(line) for line in lines if line.strip()]
    assert rest, "the stream ended without a last line"
    assert rest[-1] == {
        "error": f"the model runner stopped: {sig.name}; restarting",
        "request_id": request_id,
    }
    assert all("error" not in part for part in rest[:-1])
    answers_after_restart(crashy, pid)
    engine = runner(crashy)
    assert engine["restarts"] == restarts + 1
    assert engine["last_exit"] == sig.name
    # The server process is the same one, and its log names the signal.
    assert crashy.proc is not None and crashy.proc.poll() is None
    stopped = [
        json.loads(line)
        for line in crashy.log().splitlines()
        if line.startswith("{") and "the model runner stopped" in line
    ]
    assert any(e.get("signal") == sig.name and e.get("runner_pid") == pid for e in stopped)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_a_crash_before_the_first_byte_is_a_503_with_retry_after(
    crashy: Server, sig: signal.Signals
) -> None:
    pid = warm(crashy)
    result: dict[str, httpx.Response] = {}

    def ask() -> None:
        with client(crashy) as c:
            result["r"] = c.post("/api/generate", json={**COUNTING, "stream": False})

    asking = threading.Thread(target=ask)
    asking.start()
    time.sleep(1.0)  # the answer is 2,000 tokens: it is being generated now
    assert asking.is_alive()
    kill(pid, sig)
    asking.join(60)
    r = result["r"]
    assert r.status_code == 503
    assert r.headers["retry-after"]
    assert r.json() == {"error": f"the model runner stopped: {sig.name}; restarting"}
    answers_after_restart(crashy, pid)


def test_openai_streams_end_with_the_openai_error_shape(crashy: Server) -> None:
    pid = warm(crashy)
    body = {
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "Count from 1 to 1000: 1, 2, 3,"}],
        "max_tokens": 2000,
        "temperature": 0,
        "stream": True,
    }
    events = []
    with client(crashy) as c, c.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            events.append(line.removeprefix("data: "))
            if len(events) == 2:
                kill(pid, signal.SIGKILL)
    errors = [json.loads(e)["error"] for e in events if e != "[DONE]" and "error" in e]
    assert errors and "the model runner stopped: SIGKILL" in errors[-1]["message"]
    answers_after_restart(crashy, pid)


def test_a_chat_message_acknowledged_before_the_crash_is_kept(crashy: Server) -> None:
    pid = warm(crashy)
    with client(crashy) as c:
        chat = c.post("/chats", json={"user_id": "u-crash", "model": "smollm2-135m"}).json()
        cid = chat["id"]
        first = c.post(
            f"/chats/{cid}/messages",
            json={"content": "Olá! Quais métricas de vendas devo acompanhar?", "stream": False,
                  "options": SHORT},
        )  # fmt: skip
        assert first.status_code == 200, first.text
        # A reply of hundreds of tokens, so the kill lands while it is generated (after the
        # first turn, "Conte de 1 até 1000" drew a 5-token reply that could end before it).
        body = {"content": LONG_STORY, "options": COUNTING["options"]}
        with c.stream("POST", f"/chats/{cid}/messages", json=body) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            assert not json.loads(next(lines))["done"]
            kill(pid, signal.SIGKILL)
            rest = [json.loads(line) for line in lines if line.strip()]
        assert "the model runner stopped: SIGKILL" in rest[-1].get("error", ""), rest
        stored = c.get(f"/chats/{cid}").json()["messages"]
    contents = [m["content"] for m in stored]
    assert "Olá! Quais métricas de vendas devo acompanhar?" in contents
    assert LONG_STORY in contents
    answers_after_restart(crashy, pid)


def test_metrics_count_restarts(crashy: Server) -> None:
    with client(crashy) as c:
        text = c.get("/metrics").text
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["billumy_engine_restarts_total"] == runner(crashy)["restarts"] >= 1
    assert samples["billumy_engine_up"] == 1


def test_a_runner_that_keeps_crashing_is_marked_failed(
    make_server: type[Server], tmp_path: Path
) -> None:
    srv = make_server(data_dir=tmp_path / "loop").start()
    pid = warm(srv)
    for _ in range(5):
        kill(pid, signal.SIGSEGV)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            engine = runner(srv)
            if engine["state"] == "failed" or (
                engine["state"] == "running" and engine["pid"] not in (None, pid)
            ):
                break
            time.sleep(0.05)
        if engine["state"] == "failed":
            break
        pid = int(engine["pid"])
    assert engine["state"] == "failed", engine
    assert "stopped 5 times" in engine["message"] and "SIGSEGV" in engine["message"]
    ready = httpx.get(srv.url + "/ready", timeout=10).json()
    assert ready["status"] == "degraded"
    with client(srv) as c:
        r = c.post("/api/generate", json={**COUNTING, "stream": False, "options": SHORT})
        assert r.status_code == 503
        assert "the model runner failed" in r.json()["error"]
        # Everything that needs no model still works.
        assert c.get("/api/tags").status_code == 200
        assert c.post("/chats", json={"user_id": "u"}).status_code == 201


def test_the_api_process_never_loads_llama_cpp(crashy: Server) -> None:
    assert crashy.proc is not None
    warm(crashy)
    maps = Path(f"/proc/{crashy.proc.pid}/maps").read_text()
    assert "libllama" not in maps and "libggml" not in maps and ".gguf" not in maps
