"""The official ``openai`` client against Billumy's /v1 API, with real inference."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest

from tests.e2e.server import Server


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=server.api_key, max_retries=0)


def test_chat_completion(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="billumy",
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": [{"type": "text", "text": "Olá! Tudo bem?"}]},
        ],
        max_tokens=12,
        temperature=0,
    )
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None and 0 < r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_completion_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="billumy",
        messages=[{"role": "user", "content": "Count to five."}],
        max_completion_tokens=10,
        temperature=0.5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


SCHEMA = {
    "type": "object",
    "properties": {
        "region": {"type": "string", "maxLength": 20},
        "growth_percent": {"type": "number"},
    },
    "required": ["region", "growth_percent"],
    "additionalProperties": False,
}


def test_json_schema_and_json_object(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="billumy",
        messages=[{"role": "user", "content": "Which region grew most? Answer as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "growth", "schema": SCHEMA, "strict": True},
        },
        max_tokens=60,
        temperature=0,
    )
    jsonschema.validate(json.loads(r.choices[0].message.content or ""), SCHEMA)
    r = client.chat.completions.create(
        model="billumy",
        messages=[{"role": "user", "content": "Two colours as JSON."}],
        response_format={"type": "json_object"},
        max_tokens=300,
        temperature=0,
    )
    content = r.choices[0].message.content or ""
    # A 135M model may ramble until max_tokens (which build of llama.cpp decides): then the
    # JSON ends unfinished, with finish_reason "length", as in OpenAI's API.
    if r.choices[0].finish_reason == "stop":
        json.loads(content)
    else:
        assert r.choices[0].finish_reason == "length"
        assert r.usage is not None and r.usage.completion_tokens == 300
        assert content.lstrip().startswith("{")


def test_completions(client: openai.OpenAI) -> None:
    r = client.completions.create(
        model="smollm2-135m", prompt="The capital of France is", max_tokens=6, temperature=0
    )
    assert r.object == "text_completion" and r.choices[0].text
    assert r.usage is not None and r.usage.completion_tokens <= 6
    parts = list(
        client.completions.create(
            model="smollm2-135m", prompt="1, 2, 3,", max_tokens=6, temperature=0, stream=True
        )
    )
    assert "".join(p.choices[0].text for p in parts if p.choices)
    assert parts[-1].choices[0].finish_reason in ("stop", "length")


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(
        model="billumy", input=["receita", "despesa"], encoding_format="float"
    )
    assert [d.index for d in floats.data] == [0, 1]
    assert len(floats.data[0].embedding) == 576
    assert math.isclose(math.fsum(x * x for x in floats.data[0].embedding), 1.0, rel_tol=1e-3)
    # The client asks for base64 by default and decodes it itself.
    decoded = client.embeddings.create(model="billumy", input="receita")
    assert decoded.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-5)
    assert floats.usage.prompt_tokens > 0


def test_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert {"billumy", "smollm2-135m", "gemma3-270m"} <= set(ids)
    assert client.models.retrieve("billumy").id == "billumy"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_errors_in_openai_shape(server: Server, client: openai.OpenAI) -> None:
    anonymous = openai.OpenAI(
        base_url=server.url + "/v1", api_key="bk_wrong-key-000000", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as auth:
        anonymous.models.list()
    assert auth.value.status_code == 401 and "invalid API key" in auth.value.message
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_found"
    for bad in (
        {"n": 2},
        {"logprobs": True},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        {"temperature": 5},
    ):
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(
                model="billumy",
                messages=[{"role": "user", "content": "x"}],
                **bad,  # type: ignore[arg-type]
            )
        assert err.value.status_code == 400 and err.value.type == "invalid_request_error"
    raw = httpx.post(
        server.url + "/v1/chat/completions", headers=server.headers, content=b"{broken"
    )
    assert raw.status_code == 400
    assert raw.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(server.url + "/v1/nothing", headers=server.headers).json()["error"]["message"]


def test_rate_limit_is_a_rate_limit_error(make_server: type[Server], tmp_path: Path) -> None:
    srv = make_server(
        data_dir=tmp_path / "oa", env={"BILLUMY_DEFAULT_REQUESTS_PER_MINUTE": "1"}
    ).start()
    c = openai.OpenAI(base_url=srv.url + "/v1", api_key=srv.api_key, max_retries=0)
    c.models.list()
    with pytest.raises(openai.RateLimitError) as err:
        c.models.list()
    assert err.value.response.headers["retry-after"]
