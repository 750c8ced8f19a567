"""Response cache, fair use and Redis faults through real server processes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.e2e.server import RedisServer, Server

GREEDY = {"num_predict": 8, "temperature": 0}


def _gen(
    srv: Server,
    prompt: str,
    *,
    key: str | None = None,
    stream: bool = False,
    options: dict[str, object] | None = None,
    cache_control: str | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or srv.api_key}"}
    if cache_control:
        headers["Cache-Control"] = cache_control
    return httpx.post(
        f"{srv.url}/api/generate",
        headers=headers,
        timeout=120,
        json={
            "model": "smollm2-135m",
            "prompt": prompt,
            "stream": stream,
            "options": options if options is not None else GREEDY,
        },
    )


def test_deterministic_answers_are_cached_per_tenant(server: Server) -> None:
    prompt = f"Name a colour. {time.time_ns()}"
    first = _gen(server, prompt)
    assert first.headers["x-billumy-cache"] == "miss"
    second = _gen(server, prompt)
    assert second.headers["x-billumy-cache"] == "hit"
    assert second.json()["response"] == first.json()["response"]
    assert second.json()["eval_count"] == first.json()["eval_count"]
    # The cached answer replays as a proper NDJSON stream.
    streamed = _gen(server, prompt, stream=True)
    assert streamed.headers["x-billumy-cache"] == "hit"
    lines = [json.loads(x) for x in streamed.text.splitlines()]
    assert lines[-1]["done"] and all(not x["done"] for x in lines[:-1])
    assert "".join(x["response"] for x in lines) == first.json()["response"]
    # Cache-Control: no-cache skips the stored answer, no-store skips the cache entirely.
    assert _gen(server, prompt, cache_control="no-cache").headers["x-billumy-cache"] == "miss"
    other = f"Name an animal. {time.time_ns()}"
    assert _gen(server, other, cache_control="no-store").headers["x-billumy-cache"] == "miss"
    assert _gen(server, other).headers["x-billumy-cache"] == "miss"
    # Sampling without a seed is not cached.
    sampled = _gen(server, prompt, options={"num_predict": 4, "temperature": 0.9})
    assert sampled.headers["x-billumy-cache"] == "bypass"
    # Another tenant never sees this tenant's cache.
    other_key = server.create_key("cache-b", tenant="cache-tenant-b")
    assert _gen(server, prompt, key=other_key).headers["x-billumy-cache"] == "miss"


def test_chat_and_embed_are_cached(server: Server) -> None:
    body = {
        "model": "billumy",
        "messages": [{"role": "user", "content": f"oi {time.time_ns()}"}],
        "stream": False,
        "options": {"num_predict": 6, "seed": 11},
    }
    a = httpx.post(f"{server.url}/api/chat", headers=server.headers, json=body, timeout=60)
    b = httpx.post(f"{server.url}/api/chat", headers=server.headers, json=body, timeout=60)
    assert (a.headers["x-billumy-cache"], b.headers["x-billumy-cache"]) == ("miss", "hit")
    assert a.json()["message"] == b.json()["message"]
    emb = {"model": "billumy", "input": [f"receita {time.time_ns()}"]}
    e1 = httpx.post(f"{server.url}/api/embed", headers=server.headers, json=emb, timeout=60)
    e2 = httpx.post(f"{server.url}/api/embed", headers=server.headers, json=emb, timeout=60)
    assert (e1.headers["x-billumy-cache"], e2.headers["x-billumy-cache"]) == ("miss", "hit")
    assert e1.json()["embeddings"] == e2.json()["embeddings"]


def test_requests_per_minute(make_server: type[Server], tmp_path: Path) -> None:
    srv = make_server(
        data_dir=tmp_path / "rpm", env={"BILLUMY_DEFAULT_REQUESTS_PER_MINUTE": "4"}
    ).start()
    for i in range(4):
        r = httpx.get(f"{srv.url}/api/tags", headers=srv.headers)
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit"] == "4"
        assert r.headers["x-ratelimit-remaining"] == str(3 - i)
        assert 0 < int(r.headers["x-ratelimit-reset"]) <= 60
    r = httpx.get(f"{srv.url}/api/tags", headers=srv.headers)
    assert r.status_code == 429
    assert "requests per minute" in r.json()["error"]
    assert 0 < int(r.headers["retry-after"]) <= 60
    assert r.headers["x-ratelimit-remaining"] == "0"
    # Liveness is not limited.
    assert httpx.get(f"{srv.url}/health").status_code == 200


def test_parallel_requests_and_token_quota(make_server: type[Server], tmp_path: Path) -> None:
    srv = make_server(
        data_dir=tmp_path / "par",
        env={
            "BILLUMY_DEFAULT_PARALLEL": "1",
            "BILLUMY_DEFAULT_TOKENS_PER_DAY": "400",
        },
    ).start()
    long_body = {
        "model": "smollm2-135m",
        "prompt": "Write a long story.",
        "options": {"num_predict": 300, "temperature": 0.7},
    }
    with (
        httpx.Client(timeout=60) as c,
        c.stream("POST", f"{srv.url}/api/generate", headers=srv.headers, json=long_body) as running,
    ):
        lines = running.iter_lines()
        next(lines)  # generating now (the iterator is kept: dropping it closes the stream)
        r = _gen(srv, "hi", options={"num_predict": 2, "temperature": 0.5})
        assert r.status_code == 429 and "parallel" in r.json()["error"]
        assert r.headers["retry-after"] == "1"
    # That stream used the day's tokens (prompt + whatever was generated before closing)...
    # The server frees the key's one parallel slot once it notices the client left, within a
    # generation step (seconds on a loaded machine): a "parallel" 429 until then is waited out.
    used = 0
    deadline = time.monotonic() + 60
    for _ in range(40):
        r = _gen(
            srv,
            f"Tell me about the sea {time.time_ns()}",
            options={"num_predict": 120, "temperature": 0.5},
        )
        if r.status_code == 429 and "parallel" in r.json()["error"]:
            assert time.monotonic() < deadline, "the parallel slot was never freed"
            time.sleep(0.5)
            continue
        if r.status_code == 429:
            break
        used += r.json()["prompt_eval_count"] + r.json()["eval_count"]
    assert r.status_code == 429, "the token quota was never enforced"
    assert "tokens per day" in r.json()["error"]
    assert int(r.headers["retry-after"]) > 0


def test_two_processes_share_one_limit_and_one_cache(
    make_server: type[Server], tmp_path: Path, redis_server: RedisServer
) -> None:
    env = {"BILLUMY_REDIS_URL": redis_server.url, "BILLUMY_DEFAULT_REQUESTS_PER_MINUTE": "6"}
    a = make_server(data_dir=tmp_path / "shared", env=env).start()
    b = make_server(data_dir=tmp_path / "shared", env=env).start()  # same database, same keys
    prompt = f"Say yes. {time.time_ns()}"
    # The model is loaded first, with another key, so that the metered requests below take
    # seconds, not the model's loading time.
    warm = a.create_key("warm")
    assert _gen(a, f"Warm up. {time.time_ns()}", key=warm).status_code == 200
    # 6 a minute, all 6 at once, then one more every 10 s: unshared, each server would take 6
    # and all 8 requests would pass.
    started = time.monotonic()
    assert _gen(a, prompt).headers["x-billumy-cache"] == "miss"
    assert _gen(b, prompt).headers["x-billumy-cache"] == "hit"
    statuses = [
        httpx.get(f"{s.url}/api/tags", headers=s.headers).status_code for s in (a, b, a, b, a, b)
    ]
    # Loading the model for the first request may take over 10 s on a busy machine: a place
    # freed meanwhile is rightly given.
    refills = int((time.monotonic() - started) // 10)
    passed = statuses.count(200)
    assert statuses == [200] * passed + [429] * (6 - passed), statuses
    assert 4 <= passed <= min(6, 4 + refills), (statuses, refills)


def test_redis_outage_degrades_and_recovers(
    make_server: type[Server], tmp_path: Path, redis_server: RedisServer
) -> None:
    srv = make_server(
        data_dir=tmp_path / "fault", env={"BILLUMY_REDIS_URL": redis_server.url}
    ).start()
    ready = httpx.get(f"{srv.url}/ready").json()
    assert ready["status"] == "ready" and ready["redis"] == "ok"
    redis_server.stop()
    r = _gen(srv, "Still there?")
    assert r.status_code == 200 and r.json()["done"]
    assert httpx.get(f"{srv.url}/ready").json()["status"] == "degraded"
    redis_server.start()
    deadline = time.monotonic() + 15
    status = ""
    while time.monotonic() < deadline:
        _gen(srv, "ping")
        status = httpx.get(f"{srv.url}/ready").json()["status"]
        if status == "ready":
            break
        time.sleep(0.5)
    assert status == "ready"
    warnings = [line for line in srv.log().splitlines() if "Redis unreachable" in line]
    assert len(warnings) == 1
