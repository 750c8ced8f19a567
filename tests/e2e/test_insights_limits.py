"""The cap on insights requests doing DuckDB work at once (``insights_max_concurrent``),
against a real server.

An analysis is held in flight deterministically: its question is one the rules cannot read,
so the plan is asked of the insights model, here a deployment whose server accepts the
connection and never answers. While the silent server holds that connection, the analysis
holds its slot; the test waits for the connection to arrive rather than for time to pass."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server
from tests.e2e.test_routing import Listener

ROWS = [{"region": r, "revenue": 100.0 + i} for i, r in enumerate(["Norte", "Sul", "Leste"] * 4)]
# No column, measure, period or ranking in it: only the model could make a plan of it.
UNREADABLE = "hmm, what about it?"


@pytest.fixture
def capped(make_server: type[Server], tmp_path: Path) -> Iterator[tuple[Server, Listener]]:
    silent = Listener()
    srv = make_server(data_dir=tmp_path / "srv", env={"BILLUMY_INSIGHTS_MAX_CONCURRENT": "1"})
    srv.data_dir.mkdir(parents=True)
    (srv.data_dir / "billumy.toml").write_text(
        f"""default_requests_per_minute = 0
cache_ttl = 0
route_retries = 0

[[deployments]]
name = "silent"
model = "silent"
url = "http://127.0.0.1:{silent.port}"
first_token_timeout = 30.0
timeout = 30.0
"""
    )
    srv.start()
    yield srv, silent
    silent.close()


def _body(question: str, model: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"data": ROWS, "question": question, "narrative": False}
    if model is not None:
        body["model"] = model
    return body


def _wait_for(condition: object, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _open_request(srv: Server, body: dict[str, object]) -> socket.socket:
    """Send a POST /api/insights on a raw socket and leave its answer unread."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    sock.sendall(
        b"POST /api/insights HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {srv.api_key}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return sock


def _insight(srv: Server, body: dict[str, object]) -> httpx.Response:
    return httpx.post(srv.url + "/api/insights", json=body, headers=srv.headers, timeout=60)


def test_excess_insights_get_503_and_slots_are_freed(capped: tuple[Server, Listener]) -> None:
    srv, silent = capped
    # 1. An analysis that holds the one slot while it waits on the silent model for a plan.
    before = silent.connections  # the router's own probes of the deployment count too
    holder = _open_request(srv, _body(UNREADABLE, "silent"))
    _wait_for(lambda: silent.connections > before, "the plan request upstream")
    # The holder has the slot once a small analysis is refused (one sent before the holder
    # took it is answered, and the next one tried).
    _wait_for(
        lambda: _insight(srv, _body("total revenue")).status_code == 503,
        "the holder to take the slot",
    )

    # 2. Meanwhile any other analysis is refused at once, naming the limit, streamed or not.
    refused = _insight(srv, _body("total revenue by region"))
    assert refused.status_code == 503, refused.text
    assert "insights_max_concurrent" in refused.json()["error"]
    assert int(refused.headers["retry-after"]) >= 1
    streamed = _insight(srv, {**_body("total revenue"), "stream": True})
    assert streamed.status_code == 503 and "insights_max_concurrent" in streamed.json()["error"]
    # Requests that do no DuckDB work are not held back by it.
    listed = httpx.get(srv.url + "/api/insights", headers=srv.headers, timeout=60)
    assert listed.status_code == 200, listed.text

    # 3. The holder's client goes away: the slot is freed with it.
    holder.close()

    def answered() -> bool:
        r = _insight(srv, _body("total revenue by region"))
        assert r.status_code in (200, 503), r.text
        return r.status_code == 200

    _wait_for(answered, "the slot of a request whose client went away")

    # 4. A request that fails (unknown column) frees its slot too: the next ones are answered.
    bad = _insight(srv, {**_body("total revenue"), "columns": ["nope"]})
    assert 400 <= bad.status_code < 500, bad.text
    for _ in range(3):
        ok = _insight(srv, _body("total revenue by region"))
        assert ok.status_code == 200, ok.text
