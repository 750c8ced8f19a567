"""The request edge (``billumy.edge``): refusals answered from the headers and this process's
memory, with the same status, body and headers as the full path; and a body over the size
limit answered with a readable 413, not a connection reset, for a client still writing it.

End to end on a real ``billumy serve`` with real clients (httpx, curl, raw sockets), plus fast
in-process tests of the pieces.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from billumy.auth import Authenticator, hash_key
from billumy.cache.limits import FairUse, Limits
from billumy.cache.local import LocalState
from billumy.edge import has_body, linger
from billumy.errors import RateLimitedError, StoreUnavailableError, UnauthorizedError
from billumy.store.base import ApiKeyRecord
from tests.e2e.server import BIN, Server

LIMIT = 64 * 1024
BIG = json.dumps({"model": "smollm2-135m", "prompt": "x" * (600 * 1024)}).encode()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        data_dir=tmp_path_factory.mktemp("edge"), env={"BILLUMY_MAX_BODY_BYTES": str(LIMIT)}
    ).start()
    yield server
    server.stop()


def _edge_refusals(srv: Server) -> dict[str, float]:
    text = httpx.get(srv.url + "/metrics", headers=srv.headers, timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "billumy_requests_total" and sample.labels["route"] == "edge":
                out[sample.labels["status"]] = sample.value
    return out


# --- 413 that the client reads ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/generate", "/v1/chat/completions", "/chats"])
def test_httpx_sending_a_body_over_the_limit_reads_the_413(srv: Server, path: str) -> None:
    # The answer must come whole before the close. (Before the lingering close, clients got
    # a reset in benchmarks/load.py under load; quiet, on loopback, this passed even then.)
    for _ in range(3):
        # As benchmarks/load.py's clients do: the server closes after the answer.
        close = {**srv.headers, "Connection": "close"}
        r = httpx.post(srv.url + path, headers=close, content=BIG, timeout=30)
        assert r.status_code == 413, r.text
        assert r.headers["connection"] == "close"
        error = r.json()["error"]
        message = error["message"] if path.startswith("/v1/") else error
        assert "too large" in message and str(LIMIT) in message


def test_httpx_streaming_a_chunked_body_over_the_limit_reads_the_413(srv: Server) -> None:
    def pieces() -> Iterator[bytes]:
        for i in range(0, len(BIG), 16 * 1024):
            yield BIG[i : i + 16 * 1024]

    r = httpx.post(srv.url + "/api/generate", headers=srv.headers, content=pieces(), timeout=30)
    assert r.status_code == 413 and "too large" in r.json()["error"]


@pytest.mark.parametrize("size", [600 * 1024, 3 * 1024 * 1024], ids=["600KB", "3MB-expect"])
def test_curl_sending_a_body_over_the_limit_reads_the_413(
    srv: Server, tmp_path: Path, size: int
) -> None:
    # Over 1 MiB curl sends "Expect: 100-continue" and waits: the 413 comes without the body.
    body = tmp_path / "big.json"
    body.write_bytes(json.dumps({"model": "smollm2-135m", "prompt": "x" * size}).encode())
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "30",
            "-o",
            str(tmp_path / "answer"),
            "-w",
            "%{http_code}",
            "-H",
            f"Authorization: Bearer {srv.api_key}",
            "-H",
            "Connection: close",
            "--data-binary",
            f"@{body}",
            srv.url + "/api/chat",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr  # 56 would be "Connection reset by peer"
    assert out.stdout == "413"
    assert "too large" in json.loads((tmp_path / "answer").read_bytes())["error"]


@pytest.mark.parametrize("path", ["/api/chat", "/chats", "/v1/embeddings"])
def test_a_refusal_from_the_headers_is_read_by_a_client_still_sending(
    srv: Server, path: str
) -> None:
    # A fresh wrong key each time: the full path's 401 (not the edge's), before the body.
    for _ in range(3):
        wrong = {"Authorization": f"Bearer bk_fresh-{secrets.token_hex(12)}"}
        r = httpx.post(srv.url + path, headers=wrong, content=BIG, timeout=30)
        assert r.status_code == 401, r.text


def test_after_a_413_the_server_serves_on(srv: Server) -> None:
    for _ in range(5):
        httpx.post(srv.url + "/api/generate", headers=srv.headers, content=BIG, timeout=30)
    r = httpx.get(srv.url + "/api/tags", headers=srv.headers, timeout=10)
    assert r.status_code == 200


# --- refusals at the edge -----------------------------------------------------------------------


def test_an_unknown_key_sent_again_is_refused_at_the_edge(srv: Server) -> None:
    wrong = {"Authorization": "Bearer bk_edge-wrong-key-0123456789abcdef"}
    before = _edge_refusals(srv).get("401", 0.0)
    first = httpx.post(srv.url + "/api/chat", headers=wrong, json={"model": "x"}, timeout=10)
    assert first.status_code == 401 and first.json() == {"error": "invalid API key"}
    # Remembered as unknown: the next ones are the edge's, with the same answer.
    for path in ("/api/chat", "/v1/chat/completions"):
        r = httpx.post(
            srv.url + path,
            headers={**wrong, "X-Request-ID": "edge-test-1"},
            json={"model": "x"},
            timeout=10,
        )
        assert r.status_code == 401
        assert r.headers["x-request-id"] == "edge-test-1"
        if path.startswith("/v1/"):
            assert r.json()["error"]["type"] == "authentication_error"
            assert r.json()["error"]["message"] == "invalid API key"
        else:
            assert r.json() == {"error": "invalid API key"}
    assert _edge_refusals(srv).get("401", 0.0) == before + 2
    # The routes without a key do not look at it.
    assert httpx.get(srv.url + "/health", headers=wrong).status_code == 200


def test_a_missing_key_is_refused_at_the_edge_with_the_same_answer(srv: Server) -> None:
    before = _edge_refusals(srv).get("401", 0.0)
    r = httpx.post(srv.url + "/api/chat", json={"model": "x"}, timeout=10)
    assert r.status_code == 401
    assert r.json() == {"error": "missing API key: send 'Authorization: Bearer <key>'"}
    assert r.headers["x-request-id"]
    assert _edge_refusals(srv).get("401", 0.0) == before + 1


def test_a_key_over_its_minute_is_refused_at_the_edge_like_the_full_path(srv: Server) -> None:
    out = subprocess.run(
        [str(BIN), "keys", "create", "--name", "edge-rpm", "--scope", "inference", "--rpm", "3"],
        env=srv.environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    key = {"Authorization": f"Bearer {out.stdout.strip()}"}
    before = _edge_refusals(srv).get("429", 0.0)
    answers = [httpx.get(srv.url + "/api/tags", headers=key, timeout=10) for _ in range(6)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429, 429]
    full, edge = answers[3], answers[5]  # the first refusal takes the full path
    refusal = {"error": "rate limit exceeded: 3 requests per minute for this key"}
    assert full.json() == edge.json() == refusal
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining"):
        assert full.headers[name] == edge.headers[name]
    # 3 a minute: the next request is at most 20 s away, all three back within 60 s.
    assert 1 <= int(edge.headers["retry-after"]) <= 20
    assert int(edge.headers["retry-after"]) <= int(edge.headers["x-ratelimit-reset"]) <= 60
    assert _edge_refusals(srv).get("429", 0.0) == before + 2
    # With a body on the wire the refusal closes the connection after reading it: no reset.
    r = httpx.post(srv.url + "/api/chat", headers=key, content=BIG[:200_000], timeout=10)
    assert r.status_code == 429 and r.headers["connection"] == "close"


def test_the_edge_answers_before_a_large_body_arrives(srv: Server) -> None:
    # Declared 40 MB, 1 KB sent: the 401 comes at once (the key first, the body never read).
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 40000000\r\n\r\n" + b"x" * 1024
        )
        sock.settimeout(10)
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 401"), head
        assert time.monotonic() - started < 2


# --- the pieces, in process ------------------------------------------------------------------


def test_has_body_reads_length_chunking_and_expect() -> None:
    assert has_body([(b"content-length", b"0")]) == (False, False)
    assert has_body([(b"content-length", b"12")]) == (True, False)
    assert has_body([(b"transfer-encoding", b"chunked")]) == (True, False)
    assert has_body([(b"content-length", b"9"), (b"expect", b"100-Continue")]) == (True, True)
    assert has_body([]) == (False, False)


def test_linger_stops_at_the_end_the_budget_or_the_time() -> None:
    async def run(messages: list[dict[str, object]], budget: int, seconds: float) -> int:
        taken = 0

        async def receive() -> dict[str, object]:
            nonlocal taken
            if taken == len(messages):
                await asyncio.sleep(3600)
            taken += 1
            return messages[taken - 1]

        await linger(receive, budget, seconds)  # type: ignore[arg-type]
        return taken

    piece = {"type": "http.request", "body": b"x" * 100, "more_body": True}
    last = {"type": "http.request", "body": b"x", "more_body": False}
    assert asyncio.run(run([piece, piece, last, piece], 10_000, 5)) == 3  # the end
    assert asyncio.run(run([piece] * 10, 250, 5)) == 3  # over the budget
    started = time.monotonic()
    assert asyncio.run(run([piece], 10_000, 0.2)) == 1  # then nothing more: the time
    assert time.monotonic() - started < 2
    assert asyncio.run(run([{"type": "http.disconnect"}, piece], 10_000, 5)) == 1


class _BatchingStore:
    """A key store that counts its queries and holds each one for a moment (a real round
    trip), so that lookups asked for meanwhile queue up."""

    def __init__(self, records: dict[str, ApiKeyRecord], fail: bool = False) -> None:
        self.records = records
        self.queries: list[int] = []
        self.fail = fail

    async def key_by_hash(self, digest: str) -> ApiKeyRecord | None:
        return (await self.keys_by_hashes([digest])).get(digest)

    async def keys_by_hashes(self, digests: list[str]) -> dict[str, ApiKeyRecord]:
        self.queries.append(len(digests))
        await asyncio.sleep(0.05)
        if self.fail:
            raise StoreUnavailableError("the database is unavailable")
        return {d: self.records[d] for d in digests if d in self.records}

    async def touch_key(self, key_id: str, when: object) -> None:
        return None


def _record(key: str) -> ApiKeyRecord:
    return ApiKeyRecord(
        id="k1",
        name="good",
        prefix=key[:8],
        key_hash=hash_key(key),
        tenant="t",
        scopes=["inference"],
        created_at=datetime.now(UTC),
    )


def test_a_flood_of_unknown_keys_costs_the_store_one_query_per_round_trip() -> None:
    good = "bk_good-key-0123456789abcdef"

    async def main() -> None:
        store = _BatchingStore({hash_key(good): _record(good)})
        auth = Authenticator(store)  # type: ignore[arg-type]

        async def one(key: str) -> str:
            try:
                return (await auth.authenticate(f"Bearer {key}")).key_name
            except UnauthorizedError as exc:
                return exc.message

        keys = [f"bk_random-{i:020d}" for i in range(200)]
        keys.insert(100, good)
        # The first lookup goes out alone; its caller gives up while it is under way.
        quitter = asyncio.ensure_future(one("bk_quitter-00000000000000"))
        await asyncio.sleep(0.01)
        answers = asyncio.gather(*(one(k) for k in keys))
        await asyncio.sleep(0.01)
        quitter.cancel()
        results = await answers
        assert results[100] == "good"
        assert results.count("invalid API key") == 200
        # Everything asked for meanwhile went out in one query behind it.
        assert store.queries == [1, 201]
        assert auth._waiting == {} and auth._looking is None

    asyncio.run(main())


def test_a_store_outage_reaches_every_caller_of_the_batch() -> None:
    async def main() -> None:
        store = _BatchingStore({}, fail=True)
        auth = Authenticator(store)  # type: ignore[arg-type]
        outcomes = await asyncio.gather(
            *(auth.authenticate(f"Bearer bk_random-{i:020d}") for i in range(20)),
            return_exceptions=True,
        )
        assert all(isinstance(o, StoreUnavailableError) for o in outcomes), outcomes
        assert store.queries == [20]

    asyncio.run(main())


def test_parallel_full_counts_the_slots_this_process_holds() -> None:
    async def main() -> None:
        fair_use = FairUse(LocalState())
        limits = Limits(parallel=2)
        assert not fair_use.parallel_full("k", 2)
        one = await fair_use.acquire("k", limits)
        two = await fair_use.acquire("k", limits)
        assert fair_use.parallel_full("k", 2) and not fair_use.parallel_full("other", 2)
        assert not fair_use.parallel_full("k", 3) and not fair_use.parallel_full("k", None)
        with pytest.raises(RateLimitedError, match="2 at once"):
            await fair_use.acquire("k", limits)
        await fair_use.release("k", one)
        assert not fair_use.parallel_full("k", 2)
        await fair_use.release("k", two)
        await fair_use.release("k", None)  # no limit, no slot: nothing to count
        assert fair_use._held == {}

    asyncio.run(main())


def test_over_rpm_holds_until_the_next_admission_while_the_limit_is_unchanged() -> None:
    async def main() -> None:
        fair_use = FairUse(LocalState())
        limits = Limits(requests_per_minute=2)
        await fair_use.admit_request("k", limits)
        await fair_use.admit_request("k", limits)
        assert fair_use.over_rpm("k", 2) is None  # not refused yet
        with pytest.raises(RateLimitedError) as info:
            await fair_use.admit_request("k", limits)
        refusal = fair_use.over_rpm("k", 2)
        assert refusal is not None and refusal.message == info.value.message
        assert 1 <= int(refusal.headers["Retry-After"]) <= 30  # one request every 30 s
        assert refusal.headers["X-RateLimit-Remaining"] == "0"
        assert fair_use.over_rpm("k", 3) is None  # another limit: the full path decides
        assert fair_use.over_rpm("k", None) is None and fair_use.over_rpm("other", 2) is None

    asyncio.run(main())
