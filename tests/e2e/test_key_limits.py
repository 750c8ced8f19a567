"""Limits per API key and usage per key, day and model, through real server processes and the
real ``billumy keys`` commands on the server's database."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
from datetime import date
from pathlib import Path

import httpx
import pytest

from billumy.auth import Principal
from billumy.errors import BillumyError
from billumy.store.base import UsageRecord
from billumy.usage import UsageBuffer
from tests.e2e.access_log import access_entry
from tests.e2e.server import BIN, Server

Counts = tuple[int, int, int]


def keys(srv: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """``billumy keys ...`` with the server's environment, output neither coloured nor cut."""
    env = {**srv.environment(), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [str(BIN), "keys", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def create_key(srv: Server, name: str, *limits: str) -> str:
    """A new inference key with these limit options (e.g. ``--rpm 2``)."""
    result = keys(srv, "create", "--name", name, *limits)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def tags(srv: Server, key: str) -> httpx.Response:
    return httpx.get(f"{srv.url}/api/tags", headers={"Authorization": f"Bearer {key}"})


def generate(
    srv: Server, key: str, prompt: str, *, stream: bool = False, request_id: str | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    return httpx.post(
        f"{srv.url}/api/generate",
        headers=headers,
        timeout=120,
        json={
            "model": "smollm2-135m",
            "prompt": prompt,
            "stream": stream,
            "options": {"num_predict": 4, "temperature": 0},
        },
    )


@pytest.fixture
def srv(make_server: type[Server], tmp_path: Path) -> Server:
    """A server with the default limits (600 requests per minute, 32 parallel, no quota),
    reading keys on every request so that limit changes apply to the very next one."""
    return make_server(data_dir=tmp_path / "limits", env={"BILLUMY_KEY_CACHE_TTL": "0"}).start()


def test_requests_per_minute_per_key_and_changes_apply_at_once(srv: Server) -> None:
    assert srv.api_key is not None
    tight = create_key(srv, "tight", "--rpm", "2")
    first, second, third = (tags(srv, tight) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert first.headers["x-ratelimit-limit"] == "2"
    assert "2 requests per minute" in third.json()["error"]
    # The admin key follows the server default and is not held back by the other key.
    for _ in range(5):
        admin = tags(srv, srv.api_key)
        assert admin.status_code == 200
        assert admin.headers["x-ratelimit-limit"] == "600"

    # Raised to 5: the two requests the key made (not the refused one) count against its new
    # burst of 5, so three more go through at once.
    changed = keys(srv, "limits", "tight", "--rpm", "5")
    assert changed.returncode == 0, changed.stderr
    assert "requests/minute 5" in changed.stdout
    assert "tokens/day default (unlimited)" in changed.stdout
    assert "parallel default (32)" in changed.stdout
    statuses = [tags(srv, tight) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert statuses[0].headers["x-ratelimit-limit"] == "5"

    # 0: unlimited for this key (no rate headers either); --reset: the default again.
    assert keys(srv, "limits", "tight", "--rpm", "0").returncode == 0
    unlimited = [tags(srv, tight) for _ in range(4)]
    assert {r.status_code for r in unlimited} == {200}
    assert "x-ratelimit-limit" not in unlimited[0].headers
    reset = keys(srv, "limits", "tight", "--reset")
    assert reset.returncode == 0, reset.stderr
    assert "requests/minute default (600)" in reset.stdout
    assert tags(srv, tight).headers["x-ratelimit-limit"] == "600"

    listed = keys(srv, "list")
    assert listed.returncode == 0, listed.stderr
    assert "default" in listed.stdout


def test_the_burst_then_one_request_every_60_over_n_seconds(
    make_server: type[Server], tmp_path: Path
) -> None:
    srv = make_server(
        data_dir=tmp_path / "pace",
        env={"BILLUMY_RATE_BURST": "3", "BILLUMY_DEFAULT_REQUESTS_PER_MINUTE": "6"},
    ).start()
    assert srv.api_key is not None
    key = srv.api_key
    first = [tags(srv, key) for _ in range(3)]  # 6 a minute: one every 10 s, after 3 at once
    assert [r.status_code for r in first] == [200, 200, 200]
    assert [r.headers["x-ratelimit-remaining"] for r in first] == ["2", "1", "0"]
    assert [r.headers["x-ratelimit-reset"] for r in first] == ["10", "20", "30"]
    refused = tags(srv, key)
    assert refused.status_code == 429
    assert "6 requests per minute" in refused.json()["error"]
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= 10
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert wait <= int(refused.headers["x-ratelimit-reset"]) <= 30
    # Retry-After is when the next one passes, and it takes the one place that freed.
    time.sleep(wait)
    assert [r.status_code for r in (tags(srv, key), tags(srv, key))] == [200, 429]


def test_tokens_per_day_per_key(srv: Server) -> None:
    tiny = create_key(srv, "tiny", "--tokens-per-day", "1")
    first = generate(srv, tiny, f"Say hi. {time.time_ns()}")
    assert first.status_code == 200, first.text
    assert first.json()["prompt_eval_count"] + first.json()["eval_count"] > 1
    refused = generate(srv, tiny, f"Say hi again. {time.time_ns()}")
    assert refused.status_code == 429
    assert "1 tokens per day" in refused.json()["error"]
    assert int(refused.headers["retry-after"]) > 0
    # Only that key: the admin key has no quota.
    assert srv.api_key is not None
    assert generate(srv, srv.api_key, f"Say hi. {time.time_ns()}").status_code == 200


def _usage_rows(srv: Server, *args: str) -> dict[tuple[str, str], Counts]:
    """``keys usage`` as {(key, model): (requests, prompt, completion)}, plus the total row
    under ("total", "")."""
    result = keys(srv, "usage", *args)
    assert result.returncode == 0, result.stderr
    rows: dict[tuple[str, str], Counts] = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 6 and cells[3].replace(",", "").isdigit():
            day, key, model, *counts = cells
            requests, prompt, completion = (int(c.replace(",", "")) for c in counts)
            rows[(key, model) if day != "total" else ("total", "")] = (requests, prompt, completion)
    return rows


def test_usage_is_recorded_per_key_and_model(srv: Server) -> None:
    reporter = create_key(srv, "reporter")
    headers = {"Authorization": f"Bearer {reporter}"}
    expected = {"smollm2-135m:latest": [0, 0, 0], "billumy:latest": [0, 0, 0]}

    fruit = f"Name a fruit. {time.time_ns()}"
    whole = generate(srv, reporter, fruit, request_id="usage-whole")
    assert whole.status_code == 200, whole.text
    river = f"Name a river. {time.time_ns()}"
    streamed = generate(srv, reporter, river, stream=True, request_id="usage-streamed")
    assert streamed.status_code == 200, streamed.text
    for request_id, answer in (
        ("usage-whole", whole.json()),
        ("usage-streamed", json.loads(streamed.text.splitlines()[-1])),
    ):
        # Usage counts the whole prompt (the access log's prompt_tokens); prompt_eval_count
        # the tokens evaluated, fewer when the batched engine reused a prefix it held.
        prompt_tokens = access_entry(srv, request_id)["prompt_tokens"]
        assert prompt_tokens >= answer["prompt_eval_count"] > 0
        expected["smollm2-135m:latest"][0] += 1
        expected["smollm2-135m:latest"][1] += prompt_tokens
        expected["smollm2-135m:latest"][2] += answer["eval_count"]
    # A replay from the cache ran no model, so it costs nothing.
    assert generate(srv, reporter, fruit).headers["x-billumy-cache"] == "hit"
    embedded = httpx.post(
        f"{srv.url}/api/embed",
        headers=headers,
        timeout=120,
        json={"model": "billumy", "input": ["receita de maio", f"custo {time.time_ns()}"]},
    )
    assert embedded.status_code == 200, embedded.text
    expected["billumy:latest"] = [1, embedded.json()["prompt_eval_count"], 0]
    # Another key's use is its own.
    assert srv.api_key is not None
    assert generate(srv, srv.api_key, f"Name a bird. {time.time_ns()}").status_code == 200

    want = {("reporter", model): (c[0], c[1], c[2]) for model, c in expected.items()}
    totals = [sum(c[i] for c in expected.values()) for i in range(3)]
    want[("total", "")] = (totals[0], totals[1], totals[2])
    deadline = time.monotonic() + 10
    while True:  # a stream's usage is stored just after its last line is sent
        rows = _usage_rows(srv, "--key", "reporter")
        if rows == want or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert rows == want
    everyone = _usage_rows(srv)
    assert everyone[("reporter", "billumy:latest")] == want[("reporter", "billumy:latest")]
    assert ("admin", "smollm2-135m:latest") in everyone
    assert everyone[("total", "")][0] == want[("total", "")][0] + 1

    unknown = keys(srv, "usage", "--key", "nobody")
    assert unknown.returncode == 1
    assert "no key with id or name 'nobody'" in unknown.stderr


def test_usage_recorder_never_fails_a_request(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenStore:
        async def record_usage(
            self,
            key_id: str,
            model: str,
            prompt_tokens: int,
            completion_tokens: int,
            *,
            day: date | None = None,
            requests: int = 1,
        ) -> None:
            raise BillumyError("database is gone")

        async def usage(
            self, *, key_id: str | None = None, since: date | None = None
        ) -> list[UsageRecord]:
            return []

    caller = Principal(key_id="k1", key_name="reporter", tenant="t", scopes=frozenset())
    buffer = UsageBuffer(BrokenStore())

    async def scenario() -> None:
        await buffer.record(caller, "billumy:latest", 3, 4)
        await buffer.record(caller, "billumy:latest", 1, 1)
        await buffer.flush()

    with caplog.at_level(logging.WARNING, logger="billumy.usage"):
        asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert "could not record usage" in warning.getMessage()
    assert warning.__dict__["key_name"] == "reporter"
    # Kept for the next round, added up: nothing is lost while the store is away.
    [pending] = buffer._pending.values()
    assert (pending.requests, pending.prompt, pending.completion) == (2, 4, 5)
