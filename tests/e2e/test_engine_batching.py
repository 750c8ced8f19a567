"""Continuous batching behind a real ``billumy serve``: its metrics follow the batch.

One server with ``BILLUMY_ENGINE_BATCHING`` on and four sequences per model runs real requests
on SmolLM2; the tests read ``/metrics`` (running sequences, decode steps, the tokens and
sequences in them, the queue depth) and compare them with what the answers said.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import Server


def counting(start: int, num_predict: int) -> dict[str, Any]:
    """Greedy counting from ``start``: long, and never ended early by an end-of-text token."""
    numbers = ", ".join(str(n) for n in range(start, start + 12))
    return {
        "model": "smollm2-135m",
        "prompt": numbers + ",",
        "raw": True,
        "options": {"num_predict": num_predict, "temperature": 0, "num_ctx": 2048},
    }


@pytest.fixture(scope="module")
def batched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"BILLUMY_ENGINE_BATCHING": "true", "BILLUMY_NUM_PARALLEL": "4"}
    srv = Server(data_dir=tmp_path_factory.mktemp("batched"), env=env).start()
    yield srv
    srv.stop()


def client(srv: Server) -> httpx.Client:
    # no-store: every answer comes from the engine, never from the response cache.
    headers = {**srv.headers, "Cache-Control": "no-store"}
    return httpx.Client(base_url=srv.url, headers=headers, timeout=120)


def samples(srv: Server) -> dict[str, float]:
    with client(srv) as c:
        r = c.get("/metrics")
    assert r.status_code == 200, r.text
    return {s.name: s.value for f in text_string_to_metric_families(r.text) for s in f.samples}


def wait_for(srv: Server, ready: Any, what: str, timeout: float = 60) -> dict[str, float]:
    """The metrics once ``ready(metrics)`` holds (the engine reports within half a second)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = samples(srv)
        if ready(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: the metrics never showed it: {seen}")
        time.sleep(0.05)


def test_batch_metrics_count_what_the_answers_evaluated(batched: Server) -> None:
    with client(batched) as c:  # loaded, so that the counters below are these requests'
        r = c.post("/api/generate", json={**counting(1, 2), "stream": False})
        assert r.status_code == 200, r.text
    before = wait_for(batched, lambda m: m["billumy_engine_running_sequences"] == 0, "idle")
    answers: list[dict[str, Any]] = []

    def ask(start: int) -> None:
        with client(batched) as c:
            r = c.post("/api/generate", json={**counting(start, 24), "stream": False})
            assert r.status_code == 200, r.text
            answers.append(r.json())

    threads = [threading.Thread(target=ask, args=(start,)) for start in (100, 200, 300, 400)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 4 and all(a["eval_count"] == 24 for a in answers)
    # Each sequence decoded its evaluated prompt tokens and every token it sampled but the last.
    decoded = sum(a["prompt_eval_count"] + a["eval_count"] - 1 for a in answers)
    after = wait_for(
        batched,
        lambda m: (
            m["billumy_engine_batch_tokens_total"]
            >= before["billumy_engine_batch_tokens_total"] + decoded
        ),
        "the four answers' tokens",
    )

    def delta(name: str) -> float:
        return after[name] - before[name]

    assert delta("billumy_engine_batch_tokens_total") == decoded
    steps = delta("billumy_engine_batch_steps_total")
    sequences = delta("billumy_engine_batch_sequences_total")
    # Four requests at once share steps: more than one sequence per step on average, and at
    # least 24 steps (each sequence generates one token per step).
    assert 24 <= steps < decoded
    assert steps < sequences <= 4 * steps
    assert after["billumy_engine_running_sequences"] == 0
    assert after["billumy_queue_depth"] == 0


def test_running_sequences_and_queue_depth_follow_streams_and_clients_that_leave(
    batched: Server,
) -> None:
    with ExitStack() as stack:
        streams = []
        for start in (500, 600, 700, 800):
            c = stack.enter_context(client(batched))
            r = stack.enter_context(c.stream("POST", "/api/generate", json=counting(start, 1500)))
            assert r.status_code == 200
            lines = r.iter_lines()
            assert not json.loads(next(lines))["done"]
            streams.append((r, lines))
        wait_for(batched, lambda m: m["billumy_engine_running_sequences"] == 4, "four running")
        # A fifth waits for a sequence: the queue.
        fifth: dict[str, Any] = {}

        def ask() -> None:
            with client(batched) as c:
                r = c.post("/api/generate", json={**counting(900, 4), "stream": False})
                fifth["status"] = r.status_code
                fifth["body"] = r.json()

        waiting = threading.Thread(target=ask)
        waiting.start()
        wait_for(batched, lambda m: m["billumy_queue_depth"] == 1, "one waiting")
        # One client goes away: its sequence leaves, and the fifth takes it.
        streams[0][0].close()
        waiting.join(120)
        assert fifth["status"] == 200 and fifth["body"]["eval_count"] == 4
        wait_for(
            batched,
            lambda m: m["billumy_queue_depth"] == 0 and m["billumy_engine_running_sequences"] == 3,
            "three running, none waiting",
        )
        for r, _ in streams[1:]:
            r.close()
    wait_for(batched, lambda m: m["billumy_engine_running_sequences"] == 0, "none running")
