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


def _small(body: dict[str, Any], path: str, rng: random.Random) -> dict[str, Any]:
    """A real model name half of the time, and at most 2 generated tokens always."""
    if rng.random() < 0.5:
        body["model"] = rng.choice(MODELS)
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
    for label in ("POST /api/generate", "POST /api/chat", "POST /v1/completions"):
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
    assert httpx.get(fuzzed.url + "/docs", headers=fuzzed.headers, timeout=10).status_code == 404
