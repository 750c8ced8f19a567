"""A real Billumy behind the shipped Nginx config (deploy/nginx/billumy.conf): TLS verified
against the test's certificate, streaming without buffering, the request id, and the client
address nginx forwards (and only that one) in Billumy's access log."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import ollama
import pytest

from tests.e2e.access_log import access_entry
from tests.e2e.server import Server, free_port
from tests.nginx_kit import find_nginx, nginx_prefix, serve_nginx

SPOOFED = "198.51.100.66"


@dataclass
class Edge:
    server: Server
    url: str  # https://127.0.0.1:PORT, nginx's TLS server
    ca: Path  # the self-signed certificate nginx serves

    def tls(self) -> ssl.SSLContext:
        """Verifies nginx's certificate (and the host name 127.0.0.1) like any client would."""
        return ssl.create_default_context(cafile=str(self.ca))


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    nginx = find_nginx()  # skips, saying why, before anything starts
    server = Server(
        data_dir=tmp_path_factory.mktemp("billumy"),
        env={"BILLUMY_TRUSTED_PROXIES": "127.0.0.1"},  # nginx connects from 127.0.0.1
    ).start()
    try:
        prefix = tmp_path_factory.mktemp("nginx")
        http_port, https_port = free_port(), free_port()
        nginx_prefix(prefix, server.port, http_port, https_port)
        with serve_nginx(nginx, prefix, https_port):
            yield Edge(server, f"https://127.0.0.1:{https_port}", prefix / "fullchain.pem")
    finally:
        server.stop()
    # Neither the key, nor the prompts, nor the address a client made up reached the log.
    log = server.log()
    assert server.api_key and server.api_key not in log
    assert "Anderson" not in log and "dragon" not in log
    assert SPOOFED not in log


def test_ollama_client_streams_a_chat_through_nginx(edge: Edge) -> None:
    responses: list[httpx.Response] = []
    client = ollama.Client(
        host=edge.url,
        # A client that claims to be someone else: nginx must not pass that on.
        headers={**edge.server.headers, "X-Forwarded-For": SPOOFED},
        verify=edge.tls(),
        event_hooks={"response": [responses.append]},
    )
    started = time.monotonic()
    arrivals: list[float] = []
    parts = []
    for part in client.chat(
        model="billumy",
        messages=[{"role": "user", "content": "Write a long story about a dragon and a king."}],
        options={"num_predict": 32, "temperature": 0, "seed": 7},
        stream=True,
    ):
        arrivals.append(time.monotonic() - started)
        parts.append(part)

    final = parts[-1]
    assert final.done is True and all(not p.done for p in parts[:-1])
    assert final.done_reason == "length" and final.eval_count == 32
    text = "".join(p.message.content or "" for p in parts)
    assert text.strip()
    # Streamed, not buffered: many chunks, and the first reached the client while the model was
    # still generating; a buffering proxy would deliver them all together at the end. The
    # server's own eval_duration says how long generating took; at least half of it lies
    # between the first chunk's arrival and the final one's.
    assert len(parts) >= 16, len(parts)
    eval_s = (final.eval_duration or 0) / 1e9
    assert eval_s > 0
    assert arrivals[-1] - arrivals[0] >= 0.5 * eval_s, (arrivals[0], arrivals[-1], eval_s)

    # The request id nginx made comes back, and is the one Billumy logged.
    assert len(responses) == 1 and responses[0].status_code == 200
    request_id = responses[0].headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id
    assert responses[0].headers["x-accel-buffering"] == "no"
    entry = access_entry(edge.server, request_id)
    assert entry["path"] == "/api/chat" and entry["status"] == 200
    # The address nginx saw (this test's 127.0.0.1), not the one the client claimed.
    assert entry["client"] == "127.0.0.1"


def test_readme_generate_through_nginx(edge: Edge) -> None:
    """The original README's curl call, over TLS through nginx, with a client-chosen id."""
    out = subprocess.run(
        [
            "curl",
            "-s",
            "--cacert",
            str(edge.ca),
            "-X",
            "POST",
            f"{edge.url}/api/generate",
            "-H",
            f"Authorization: Bearer {edge.server.api_key}",
            "-H",
            "Content-Type: application/json",
            "-H",
            "X-Request-ID: readme-through-nginx",
            "-H",
            f"X-Forwarded-For: {SPOOFED}",
            "-d",
            '{"model": "billumy", "prompt": "Olá, me chamo Anderson, eu que te criei", '
            '"stream": false, "options": {"num_predict": 8}}',
            "-w",
            "\n%{http_code}",
        ],
        capture_output=True,
        check=True,
        timeout=120,
        text=True,
    )
    body, _, status = out.stdout.rpartition("\n")
    assert status == "200", out.stdout
    answer = json.loads(body)
    assert answer["done"] is True and answer["model"] == "billumy"
    assert answer["response"].strip() and 0 < answer["eval_count"] <= 8
    entry = access_entry(edge.server, "readme-through-nginx")
    assert entry["path"] == "/api/generate" and entry["status"] == 200
    assert entry["client"] == "127.0.0.1"
