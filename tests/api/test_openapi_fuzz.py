"""Schema fuzzing of the served OpenAPI document, and the document's completeness.

schemathesis reads ``/openapi.json`` from a real ``billumy serve`` (the embedded model in its
engine process) with an admin key, and sends every operation generated requests, with a
fixed seed (derandomized) and a bounded number of examples each. Every answer must be no
server error, have a documented status and content type, and match its documented schema.

Generation requests name the real models (``smollm2-135m`` and the ``billumy`` persona) half
of the time (the other half keep the fuzzer's names, which must be 404s) and ask for at most
2 tokens, so the whole run stays within a few minutes on two cores.

Nothing is excluded: the destructive operations are safe on this private server. ``DELETE
/api/delete`` and ``DELETE /datasets/{id}`` get the fuzzer's names (404s: the real names are
put only into generation bodies), and an unload (``keep_alive: 0`` with an empty prompt) only
costs the next request a load of under a second.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.server import Server

MODELS = ("smollm2-135m", "billumy")
# Operations whose body names a model that generates (or embeds) text.
GENERATION = {
    "/api/generate",
    "/api/chat",
    "/api/embed",
    "/api/embeddings",
    "/chats/chat/stream",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/api/show",
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # No per-minute window: hundreds of requests in a minute are the point here.
    env = {"BILLUMY_DEFAULT_REQUESTS_PER_MINUTE": "0", "BILLUMY_CACHE_TTL": "0"}
    srv = Server(data_dir=tmp_path_factory.mktemp("fuzz"), env=env).start()
    yield srv
    srv.stop()


CHATS = {"/api/chat", "/chats/chat/stream", "/v1/chat/completions"}
ROLES = ("system", "user", "assistant")


def _served(body: dict[str, Any], path: str, rng: random.Random) -> None:
    """Keep what the fuzzer made of ``body``, less what would make a request of a real model a
    400 however it was sent: roles and content parts it does not know, tools, images,
    thinking, seeds out of range. (Without this, a chat of the fuzzer's never passes every
    check at once, and the success path of /v1/chat/completions went untested.)"""
    for name in ("tools", "tool_choice", "think", "images", "suffix", "template", "context"):
        body.pop(name, None)
    body.pop("stop", None)
    if not path.startswith("/v1/") and path != "/api/show":
        body["options"] = {}  # sampling options out of their ranges are 400s
    seed = body.get("seed")
    if not isinstance(seed, int) or not 0 <= seed < 2**32:
        body.pop("seed", None)
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        body["response_format"] = {"type": "json_object"}
    if isinstance(body.get("format"), dict) or body.get("format") not in (None, "json"):
        body.pop("format", None)
    if path in CHATS:
        messages = body.get("messages")
        kept = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
        body["messages"] = [
            {
                "role": m["role"] if m.get("role") in ROLES else rng.choice(ROLES),
                "content": m["content"] if isinstance(m.get("content"), str) else "Hello",
            }
            for m in kept[:4]
        ] or [{"role": "user", "content": "Hello"}]
    elif path in ("/api/generate", "/api/embeddings"):
        body["prompt"] = str(body.get("prompt") or "Hello")
    elif path in ("/api/embed", "/v1/embeddings"):
        given = body.get("input")
        texts = [t for t in given if isinstance(t, str) and t] if isinstance(given, list) else []
        body["input"] = given if isinstance(given, str) and given else texts[:4] or "Hello"
        body.pop("dimensions", None)


def _small(body: dict[str, Any], path: str, rng: random.Random) -> dict[str, Any]:
    """A real model name half of the time (half of those also made servable, see
    :func:`_served`), and at most 2 generated tokens always."""
    if rng.random() < 0.5:
        body["model"] = rng.choice(MODELS)
        if rng.random() < 0.5:
            _served(body, path, rng)
        if path.startswith("/v1/") and "embeddings" not in path:
            # What Billumy refuses (several choices, logprobs, echo, suffix) would make
            # every real-model request a 400.
            body["n"] = 1
            for refused in ("logprobs", "echo", "suffix"):
                body.pop(refused, None)
            if path == "/v1/completions":
                body["prompt"] = str(body.get("prompt") or "Hello")
    if path.startswith("/v1/"):
        body["max_tokens"] = rng.choice([0, 1, 2])
        body.pop("max_completion_tokens", None)
    elif path != "/api/show":
        options = body.get("options")
        options = dict(options) if isinstance(options, dict) else {}
        options["num_predict"] = rng.choice([0, 1, 2])
        body["options"] = options
    return body


@pytest.fixture
def api(fuzzed: Server) -> Any:
    schema = schemathesis.openapi.from_url(
        fuzzed.url + "/openapi.json", headers=fuzzed.headers, timeout=30
    )
    rng = random.Random(15)  # the number: fixed, as the fuzzer's own seed

    @schema.hook  # type: ignore[untyped-decorator]
    def map_body(context: Any, body: Any) -> Any:
        path = context.operation.path
        if path in GENERATION and isinstance(body, dict):
            return _small(body, path, rng)
        return body

    return schema


FUZZING = settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is reported
    suppress_health_check=list(HealthCheck),
)


def test_every_operation_answers_as_documented(api: Any, fuzzed: Server) -> None:
    """Each operation in its own Hypothesis run, so one failure does not hide the others."""
    failures: dict[str, str] = {}
    seen: dict[str, Counter[int]] = {}
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 40, [op.label for op in operations]
    for operation in operations:

        @FUZZING
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            response = case.call_and_validate(headers=fuzzed.headers, checks=CHECKS, timeout=120)
            seen.setdefault(case.operation.label, Counter())[response.status_code] += 1

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:
            failures[operation.label] = str(exc)[:3000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    print("statuses per operation:", {k: dict(v) for k, v in sorted(seen.items())})
    # Every operation was sent requests, and generation with the real models answered.
    assert set(seen) == {op.label for op in operations}
    for path in sorted(GENERATION):
        label = f"POST {path}"
        assert seen[label][200] > 0, (label, seen[label])


def test_the_document_needs_a_key(fuzzed: Server) -> None:
    assert httpx.get(fuzzed.url + "/openapi.json", timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer bk_wrong-key-000000000000000000"}
    assert httpx.get(fuzzed.url + "/openapi.json", headers=wrong, timeout=10).status_code == 401
    inference = fuzzed.create_key("fuzz-reader")
    r = httpx.get(
        fuzzed.url + "/openapi.json", headers={"Authorization": f"Bearer {inference}"}, timeout=10
    )
    assert r.status_code == 200 and r.json()["openapi"] == "3.1.0"
    # /docs is the console's own reference page (FastAPI's, which loads Swagger UI from a
    # CDN, stays off); the document it reads needs a key too (tests/e2e/test_console.py).
    docs = httpx.get(fuzzed.url + "/docs", timeout=10)
    assert docs.status_code == 200 and "https://" not in docs.text
    assert "default-src 'self'" in docs.headers["content-security-policy"]
    assert httpx.get(fuzzed.url + "/docs/openapi.json", timeout=10).status_code == 401
