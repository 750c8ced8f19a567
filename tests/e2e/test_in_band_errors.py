"""Errors inside an already started stream carry the request id of the response's
X-Request-ID header: NDJSON ``{"error": ..., "request_id": ...}`` lines on /api/generate and
/api/chat, and the OpenAI error object (with ``request_id``) in SSE on /v1/chat/completions.

The upstream is a raw socket that starts a valid stream, sends one piece and hangs up, so
the failure comes after the headers have gone out, through a real ``billumy serve``."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.server import Server
from tests.sockets import SocketServer

HEALTHY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20\r\n"
    b'Connection: close\r\n\r\n{"version": "0.0.0"}'
)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class HalfStream(SocketServer):
    """Answers health checks (any GET) as healthy; every POST gets the headers of a stream,
    one piece of content, and then the connection closes with the stream unfinished."""

    def handle(self, conn: socket.socket) -> None:
        head = conn.recv(65536)
        if head.startswith(b"GET "):
            conn.sendall(HEALTHY)
            return
        if b"/v1/chat/completions" in head.split(b"\r\n", 1)[0]:
            media = b"text/event-stream"
            event = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": "half"},
                        "finish_reason": None,
                    }
                ],
            }
            piece = b"data: " + json.dumps(event).encode() + b"\n\n"
        else:
            media = b"application/x-ndjson"
            line = {
                "model": "m",
                "created_at": "2024-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": "half"},
                "response": "half",
                "done": False,
            }
            piece = json.dumps(line).encode() + b"\n"
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: " + media + b"\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + _chunk(piece)
        )
        # Returning closes the socket: the chunked body never ends.


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    upstream = HalfStream()
    root = tmp_path_factory.mktemp("in-band")
    srv = Server(data_dir=root / "gateway")
    srv.data_dir.mkdir(parents=True)
    (srv.data_dir / "billumy.toml").write_text(
        f"""default_requests_per_minute = 0
cache_ttl = 0
# Every request here fails mid-stream: the circuit must not open and turn them into 503s.
breaker_failures = 1000
route_retries = 0

[[deployments]]
name = "half"
model = "half"
provider = "ollama"
url = "http://127.0.0.1:{upstream.port}"

[[deployments]]
name = "half-v1"
model = "half-v1"
provider = "openai"
url = "http://127.0.0.1:{upstream.port}/v1"
"""
    )
    srv.start()
    yield srv
    srv.stop()
    upstream.close()


def _lines(response: httpx.Response) -> list[dict[str, object]]:
    return [json.loads(x) for x in response.iter_lines() if x.strip()]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/generate", {"model": "half", "prompt": "hi"}),
        ("/api/chat", {"model": "half", "messages": [{"role": "user", "content": "hi"}]}),
    ],
)
@pytest.mark.parametrize("given", ["rid-from-the-client-42", None])
def test_ndjson_error_line_carries_the_request_id(
    gateway: Server, path: str, body: dict[str, object], given: str | None
) -> None:
    headers = dict(gateway.headers)
    if given is not None:
        headers["X-Request-ID"] = given
    with httpx.stream(
        "POST", gateway.url + path, json=body, headers=headers, timeout=30
    ) as response:
        assert response.status_code == 200
        rid = response.headers["x-request-id"]
        lines = _lines(response)
    if given is not None:
        assert rid == given
    assert len(rid) >= 8
    assert lines[0].get("done") is False and "error" not in lines[0]
    last = lines[-1]
    assert isinstance(last.get("error"), str) and last["error"], last
    assert last["request_id"] == rid, (last, rid)
    assert all("error" not in x for x in lines[:-1])


def test_sse_error_event_carries_the_request_id(gateway: Server) -> None:
    body = {"model": "half-v1", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream(
        "POST", gateway.url + "/v1/chat/completions", json=body, headers=gateway.headers, timeout=30
    ) as response:
        assert response.status_code == 200
        rid = response.headers["x-request-id"]
        events = [x[5:].strip() for x in response.iter_lines() if x.startswith("data:")]
    assert events and events[-1] != "[DONE]", events
    first = json.loads(events[0])
    assert first["choices"][0]["delta"]["content"] == "half"
    error = json.loads(events[-1])["error"]
    assert error["message"] and error["type"], error
    assert error["request_id"] == rid, (error, rid)
