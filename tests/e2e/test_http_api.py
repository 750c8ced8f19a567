"""The HTTP surface as curl and plain HTTP clients see it: the README example, JSON formats,
disconnects, the queue, and every documented bad input."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import httpx
import jsonschema
import pytest

from tests.e2e.access_log import access_entry
from tests.e2e.server import Server

FAST = {"num_predict": 12, "temperature": 0, "seed": 7}
# A grammar that allows no end of text before 1,000 array items (thousands of tokens), so a test
# that needs a generation still running seconds later does not depend on when the model would
# choose to stop (an essay prompt sometimes ended within a second, and a test failed on CI).
LONG_OUTPUT = {"type": "array", "items": {"type": "integer"}, "minItems": 1000}


def test_readme_curl_example(server: Server) -> None:
    """The original system's README example, byte for byte but for host, port and token."""
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-X",
            "POST",
            f"http://localhost:{server.port}/api/generate",
            "-H",
            f"Authorization: Bearer {server.api_key}",
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"model": "billumy", "prompt": "Olá, me chamo Anderson, eu que te criei", '
            '"stream": false, "options": {"num_predict": 24}}',
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    body = json.loads(out.stdout)
    assert body["done"] is True and body["model"] == "billumy"
    assert body["response"].strip()
    assert body["eval_count"] > 0


def test_readme_curl_exactly_as_written_ends_within_the_persona_s_cap(server: Server) -> None:
    """The original example sets no num_predict; the 135M persona at temperature 0.7 may
    never write an end token, so the persona caps its replies (512 tokens) rather than let a
    greeting fill the whole context."""
    body = {
        "model": "billumy",
        "prompt": "Olá, me chamo Anderson, eu que te criei",
        "stream": False,
    }
    got = httpx.post(f"{server.url}/api/generate", json=body, headers=server.headers, timeout=120)
    assert got.status_code == 200, got.text
    answer = got.json()
    assert answer["done"] is True and answer["response"].strip()
    assert 0 < answer["eval_count"] <= 512
    assert answer["done_reason"] in ("stop", "length")


def test_curl_without_content_type_and_streaming_default(server: Server) -> None:
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-i",
            f"http://127.0.0.1:{server.port}/api/generate",
            "-H",
            f"Authorization: Bearer {server.api_key}",
            "-d",
            '{"model": "billumy", "prompt": "Oi", "options": {"num_predict": 6}}',
        ],
        capture_output=True,
        check=True,
        timeout=120,
        text=True,
    )
    head, _, body = out.stdout.replace("\r\n", "\n").partition("\n\n")
    assert "application/x-ndjson" in head.lower()
    assert "x-request-id" in head.lower()
    lines = [json.loads(line) for line in body.strip().splitlines()]
    assert lines[-1]["done"] is True and all(not c["done"] for c in lines[:-1])


SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 20},
        "population": {"type": "integer", "minimum": 0},
        "capital": {"type": "boolean"},
    },
    "required": ["city", "population", "capital"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("route", ["generate", "chat"])
def test_json_schema_format_produces_valid_json(server: Server, route: str) -> None:
    prompt = "Describe the city of Recife as JSON."
    body: dict[str, object] = {
        "model": "billumy",
        "format": SCHEMA,
        "stream": False,
        "options": {"temperature": 0.8, "seed": 3, "num_predict": 80},
    }
    if route == "generate":
        body["prompt"] = prompt
    else:
        body["messages"] = [{"role": "user", "content": prompt}]
    r = httpx.post(f"{server.url}/api/{route}", headers=server.headers, json=body, timeout=120)
    assert r.status_code == 200, r.text
    data = r.json()
    text = data["response"] if route == "generate" else data["message"]["content"]
    jsonschema.validate(json.loads(text), SCHEMA)


def test_json_format_parses(server: Server) -> None:
    r = httpx.post(
        f"{server.url}/api/generate",
        headers=server.headers,
        json={
            "model": "billumy",
            # A short object: 27 tokens, fresh or after a reused prefix. ("List two colours"
            # took 33 tokens on one path and ran past 200 on another, and a reply cut by
            # num_predict is no JSON, in Ollama too.)
            "prompt": "Give one colour as a JSON object.",
            "format": "json",
            "stream": False,
            "options": {"temperature": 0, "num_predict": 120},
        },
        timeout=120,
    )
    assert r.status_code == 200
    assert r.json()["done_reason"] == "stop"
    assert isinstance(json.loads(r.json()["response"]), dict | list)


def _stopped_early(server: Server, seen: int, timeout: float = 10.0) -> list[int]:
    """eval_count of each 'generation stopped early' log line after the first ``seen``."""
    deadline = time.monotonic() + timeout
    counts: list[int] = []
    while time.monotonic() < deadline:
        counts = [
            int(json.loads(line)["eval_count"])
            for line in server.log().splitlines()
            if line.startswith("{") and '"generation stopped early"' in line
        ]
        if len(counts) > seen:
            return counts[seen:]
        time.sleep(0.1)
    return []


def test_client_disconnect_stops_streaming_generation(server: Server) -> None:
    seen = len(_stopped_early(server, 0, timeout=0))
    body = {
        "model": "smollm2-135m",
        "prompt": "Write a very long essay about the sea.",
        "format": LONG_OUTPUT,
        "options": {"num_predict": 2000, "temperature": 0.7},
    }
    received = 0
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST", f"{server.url}/api/generate", headers=server.headers, json=body
        ) as response,
    ):
        for line in response.iter_lines():
            if line:
                received += 1
            if received >= 5:
                break
    stopped = _stopped_early(server, seen)
    assert stopped, "generation did not stop after the client went away"
    assert stopped[0] < 40
    # The slot is free again: a new request is served at once.
    r = httpx.post(
        f"{server.url}/api/generate",
        headers=server.headers,
        timeout=30,
        json={
            "model": "smollm2-135m",
            "prompt": "hi",
            "stream": False,
            "options": {"num_predict": 3},
        },
    )
    assert r.status_code == 200


def test_client_disconnect_stops_non_streaming_generation(server: Server) -> None:
    seen = len(_stopped_early(server, 0, timeout=0))
    body = {
        "model": "smollm2-135m",
        "prompt": "Write a very long essay about the mountains.",
        "format": LONG_OUTPUT,
        "stream": False,
        "options": {"num_predict": 3000, "temperature": 0.7},
    }
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/api/generate", headers=server.headers, json=body, timeout=1.5)
    stopped = _stopped_early(server, seen)
    assert stopped, "generation went on after the client went away"
    assert stopped[0] < 1000


def test_queue_full_answers_503_with_retry_after(make_server: type[Server], tmp_path) -> None:  # type: ignore[no-untyped-def]
    # One generation at a time (the default is four batched), one waiting, the next refused.
    env = {"BILLUMY_MAX_QUEUE": "1", "BILLUMY_NUM_PARALLEL": "1"}
    srv = make_server(data_dir=tmp_path / "q", env=env).start()
    long_body = {
        "model": "smollm2-135m",
        "prompt": "Write a long story.",
        "format": LONG_OUTPUT,
        "options": {"num_predict": 1500, "temperature": 0.7},
    }
    results: dict[str, int] = {}

    def queued() -> None:
        r = httpx.post(
            f"{srv.url}/api/generate",
            headers=srv.headers,
            timeout=120,
            json={
                "model": "smollm2-135m",
                "prompt": "hi",
                "stream": False,
                "options": {"num_predict": 3},
            },
        )
        results["queued"] = r.status_code

    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST", f"{srv.url}/api/generate", headers=srv.headers, json=long_body
        ) as running,
    ):
        lines = running.iter_lines()
        next(lines)  # generating now, holding the only slot
        waiter = threading.Thread(target=queued)
        waiter.start()
        time.sleep(1.0)  # let it take the one queue place
        r = httpx.post(
            f"{srv.url}/api/generate",
            headers=srv.headers,
            timeout=30,
            json={"model": "smollm2-135m", "prompt": "hi", "stream": False},
        )
        assert r.status_code == 503
        assert "error" in r.json() and "queue" in r.json()["error"]
        assert int(r.headers["retry-after"]) >= 1
    waiter.join(timeout=60)
    assert results["queued"] == 200


def _post(server: Server, path: str, body: object, **kw: object) -> httpx.Response:
    content = body if isinstance(body, bytes | str) else json.dumps(body)
    return httpx.post(server.url + path, headers=server.headers, content=content, timeout=60, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/api/generate", b"{not json", 400, "invalid JSON"),
        ("/api/generate", b"", 400, "missing request body"),
        ("/api/generate", b"[1, 2]", 400, "JSON object"),
        ("/api/generate", {"prompt": "hi"}, 400, "model is required"),
        ("/api/generate", {"model": "nope", "prompt": "hi"}, 404, "not found"),
        ("/api/generate", {"model": "bad name!", "prompt": "hi"}, 400, "invalid model name"),
        ("/api/generate", {"model": "billumy", "prompt": "hi", "suffix": "x"}, 400, "insert"),
        ("/api/generate", {"model": "billumy", "prompt": "hi", "images": ["aGk="]}, 400, "images"),
        (
            "/api/generate",
            {"model": "billumy", "prompt": "hi", "options": {"num_ctx": "big"}},
            400,
            "num_ctx",
        ),
        (
            "/api/generate",
            {"model": "billumy", "prompt": "hi", "options": {"num_ctx": 10**6}},
            400,
            "limit",
        ),
        (
            "/api/generate",
            {"model": "billumy", "prompt": "hi", "options": {"num_predict": 10**6}},
            400,
            "limit",
        ),
        (
            "/api/generate",
            {"model": "billumy", "prompt": "hi", "options": {"temperature": -1}},
            400,
            "temperature",
        ),
        ("/api/generate", {"model": "billumy", "prompt": "hi", "format": "xml"}, 400, "format"),
        (
            "/api/generate",
            {"model": "billumy", "prompt": "hi", "keep_alive": "soon"},
            400,
            "duration",
        ),
        (
            "/api/generate",
            {"model": "billumy", "prompt": "hi", "template": "{{ .Nope"},
            400,
            "template",
        ),
        ("/api/generate", {"model": "billumy", "prompt": "hi", "context": ["a"]}, 400, "context"),
        (
            "/api/generate",
            {"model": "billumy", "prompt": "x " * 3000, "options": {"num_ctx": 512}},
            400,
            "context length",
        ),
        (
            "/api/chat",
            {"model": "billumy", "messages": [{"role": "wizard", "content": "hi"}]},
            400,
            "role",
        ),
        ("/api/chat", {"model": "billumy", "messages": [{"content": "hi"}]}, 400, "role"),
        (
            "/api/chat",
            {
                "model": "billumy",
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function"}],
            },
            400,
            "tools",
        ),
        (
            "/api/chat",
            {
                "model": "billumy",
                "messages": [{"role": "user", "content": "hi", "images": ["aGk="]}],
            },
            400,
            "images",
        ),
        ("/api/embed", {"model": "billumy", "input": []}, 400, "input"),
        (
            "/api/embed",
            {
                "model": "billumy",
                "input": "x " * 3000,
                "truncate": False,
                "options": {"num_ctx": 256},
            },
            400,
            "context length",
        ),
        ("/api/show", {"model": "nope"}, 404, "not found"),
        (
            "/api/create",
            {"model": "x1", "modelfile": "FROM billumy\nADAPTER ./lora.bin"},
            400,
            "ADAPTER",
        ),
        (
            "/api/create",
            {"model": "x1", "modelfile": "FROM billumy\nPARAMETER num_ctx many"},
            400,
            "num_ctx",
        ),
        (
            "/api/create",
            {"model": "x1", "from": "billumy", "files": {"a.gguf": "sha256:00"}},
            400,
            "files",
        ),
        ("/api/create", {"model": "bad name", "from": "billumy"}, 400, "invalid model name"),
        ("/api/copy", {"source": "nope", "destination": "x2"}, 404, "not found"),
        ("/api/pull", {"model": "llama3"}, 400, "disabled"),
        ("/api/push", {"model": "billumy"}, 400, "not supported"),
    ],
)
def test_bad_input_gets_a_clear_error(
    server: Server, path: str, body: object, status: int, fragment: str
) -> None:
    r = _post(server, path, body)
    assert r.status_code == status, r.text
    assert fragment.lower() in r.json()["error"].lower()


def test_delete_unknown_model_is_404(server: Server) -> None:
    r = httpx.request(
        "DELETE",
        server.url + "/api/delete",
        headers=server.headers,
        json={"model": "never-created"},
    )
    assert r.status_code == 404 and "not found" in r.json()["error"]
    # A configured model is no created one: nothing to delete.
    r = httpx.request(
        "DELETE", server.url + "/api/delete", headers=server.headers, json={"model": "billumy"}
    )
    assert r.status_code == 400 and "configuration" in r.json()["error"]


def test_unknown_route_and_method_are_json_errors(server: Server) -> None:
    r = httpx.get(server.url + "/api/nothing-here", headers=server.headers)
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.get(server.url + "/api/generate", headers=server.headers)
    assert r.status_code == 405 and "error" in r.json()


def test_body_over_the_limit_is_413(make_server: type[Server], tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(data_dir=tmp_path / "b", env={"BILLUMY_MAX_BODY_BYTES": "2048"}).start()
    big = json.dumps({"model": "billumy", "prompt": "x" * 5000})
    r = httpx.post(srv.url + "/api/generate", headers=srv.headers, content=big)
    assert r.status_code == 413 and "too large" in r.json()["error"]

    def chunks():  # type: ignore[no-untyped-def]
        yield big[:1000].encode()
        yield big[1000:].encode()

    r = httpx.post(srv.url + "/api/generate", headers=srv.headers, content=chunks())
    assert r.status_code == 413 and "too large" in r.json()["error"]


def test_liveness_routes_need_no_key(server: Server) -> None:
    assert httpx.get(server.url + "/").status_code == 200
    assert httpx.head(server.url + "/").status_code == 200
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    assert httpx.get(server.url + "/api/version").status_code == 401
    v = httpx.get(server.url + "/api/version", headers=server.headers).json()
    assert v["version"]


def test_malformed_authorization_headers(server: Server) -> None:
    for header in ("Basic abc", "Bearer", "bk_only-the-key", "Token bk_abc"):
        r = httpx.get(server.url + "/api/tags", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert "error" in r.json()


def test_error_after_stream_started_is_in_band(server: Server) -> None:
    """A stream that ends in an error still ends with a parseable final line."""
    r = httpx.post(
        server.url + "/api/generate",
        headers=server.headers,
        timeout=60,
        json={"model": "billumy", "prompt": "hi", "options": {"num_predict": 4}},
    )
    lines = [json.loads(x) for x in r.text.strip().splitlines()]
    assert lines[-1]["done"] is True


def test_access_log_line_has_route_tokens_and_key_name(server: Server) -> None:
    """One JSON line per request: route template, status, duration, tokens in and out and the
    key's name, for answers whole and streamed, and never the key itself."""
    whole = httpx.post(
        f"{server.url}/api/generate",
        headers={**server.headers, "X-Request-ID": "tokens-whole-1"},
        json={"model": "billumy", "prompt": "Diga oi", "stream": False, "options": FAST},
        timeout=120,
    )
    assert whole.status_code == 200 and whole.headers["x-request-id"] == "tokens-whole-1"
    with httpx.stream(
        "POST",
        f"{server.url}/api/chat",
        headers={**server.headers, "X-Request-ID": "tokens-stream-1"},
        json={
            "model": "billumy",
            "messages": [{"role": "user", "content": "Diga oi"}],
            "options": {**FAST, "seed": 8},
        },
        timeout=120,
    ) as streamed:
        last = [json.loads(line) for line in streamed.iter_lines() if line][-1]
    for request_id, body, route in (
        ("tokens-whole-1", whole.json(), "/api/generate"),
        ("tokens-stream-1", last, "/api/chat"),
    ):
        entry = access_entry(server, request_id)
        assert entry["route"] == route and entry["method"] == "POST"
        assert entry["status"] == 200 and entry["duration_ms"] > 0
        # The log counts the whole prompt; prompt_eval_count the tokens evaluated, fewer when
        # the batched engine reused a prefix it held (as llama-server's cache_prompt does).
        assert entry["prompt_tokens"] >= body["prompt_eval_count"] > 0
        assert entry["completion_tokens"] == body["eval_count"] > 0
        assert entry["key_name"] and server.api_key not in json.dumps(entry)
    assert (
        access_entry(server, "tokens-whole-1")["key_name"]
        == access_entry(server, "tokens-stream-1")["key_name"]
    )
