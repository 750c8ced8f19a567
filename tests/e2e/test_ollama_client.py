"""The official ``ollama`` client against a real Billumy process with real llama.cpp inference."""

from __future__ import annotations

import math

import ollama
import pytest

from tests.e2e.server import Server

FAST = {"num_predict": 12, "temperature": 0, "seed": 7}


@pytest.fixture
def client(server: Server) -> ollama.Client:
    return ollama.Client(host=server.url, headers=server.headers)


def test_generate_non_streaming_reports_ollama_statistics(client: ollama.Client) -> None:
    r = client.generate(model="billumy", prompt="Say hello.", options=FAST)
    assert r.done is True
    assert r.done_reason in ("stop", "length")
    assert r.response.strip()
    assert r.model == "billumy"
    assert r.eval_count and 0 < r.eval_count <= 13
    # The prompt holds the persona's system prompt; with batching, an earlier request's KV of
    # it is reused and prompt_eval_count counts the tokens evaluated (as Ollama does).
    assert r.context and len(r.context) - r.eval_count > 10
    assert r.prompt_eval_count and 0 < r.prompt_eval_count <= len(r.context)
    for name in ("total_duration", "prompt_eval_duration", "eval_duration"):
        assert getattr(r, name) > 0, name
    assert r.total_duration >= r.eval_duration


def test_generate_streams_chunks_then_a_final_one(client: ollama.Client) -> None:
    chunks = list(
        client.generate(model="billumy", prompt="Count to five.", options=FAST, stream=True)
    )
    assert len(chunks) >= 3
    assert all(not c.done for c in chunks[:-1])
    final = chunks[-1]
    assert final.done and final.eval_count and final.context
    assert "".join(c.response for c in chunks).strip()


def test_generate_context_continues_a_conversation(client: ollama.Client) -> None:
    first = client.generate(model="smollm2-135m", prompt="My name is Anderson.", options=FAST)
    second = client.generate(
        model="smollm2-135m", prompt="What is my name?", context=first.context, options=FAST
    )
    # Its prompt is the first exchange's tokens and then its own (with batching, the engine
    # reuses their KV and prompt_eval_count counts only its own tokens: it evaluated those).
    assert second.context[: len(first.context)] == first.context
    assert len(second.context) - second.eval_count > len(first.context)
    assert 0 < second.prompt_eval_count <= len(second.context) - second.eval_count


def test_same_seed_gives_same_text(client: ollama.Client) -> None:
    opts = {"num_predict": 12, "temperature": 0.9, "seed": 1234}
    a = client.generate(model="smollm2-135m", prompt="Tell me a fact.", options=opts)
    b = client.generate(model="smollm2-135m", prompt="Tell me a fact.", options=opts)
    assert a.response == b.response


def test_num_predict_limits_and_reports_length(client: ollama.Client) -> None:
    r = client.generate(
        model="smollm2-135m",
        prompt="Write a very long story about a dragon.",
        options={"num_predict": 5, "temperature": 0},
    )
    assert r.eval_count == 5
    assert r.done_reason == "length"


def test_stop_sequence_ends_generation(client: ollama.Client) -> None:
    r = client.generate(
        model="smollm2-135m",
        prompt="List the numbers from 1 to 20 separated by commas.",
        options={"num_predict": 60, "temperature": 0, "stop": ["5"]},
    )
    assert "5" not in r.response
    assert r.done_reason == "stop"


def test_raw_and_template_prompts(client: ollama.Client) -> None:
    raw = client.generate(
        model="smollm2-135m",
        prompt="<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        raw=True,
        options=FAST,
    )
    # raw prompts are not templated: the prompt is exactly what we sent.
    assert raw.prompt_eval_count is not None and raw.prompt_eval_count < 15
    templated = client.generate(
        model="smollm2-135m",
        prompt="Hi",
        template="{{ if .System }}{{ .System }}\n{{ end }}Q: {{ .Prompt }}\nA:",
        system="Be brief.",
        options=FAST,
    )
    assert templated.done


def test_chat_with_roles_streaming_and_not(client: ollama.Client) -> None:
    messages = [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "What colour is the sky?"},
        {"role": "assistant", "content": "Blue."},
        {"role": "tool", "content": "weather: sunny"},
        {"role": "user", "content": "And grass?"},
    ]
    r = client.chat(model="billumy", messages=messages, options=FAST)
    assert r.message.role == "assistant" and r.message.content.strip()
    assert r.done and r.eval_count and r.prompt_eval_count
    parts = list(client.chat(model="billumy", messages=messages, options=FAST, stream=True))
    assert parts[-1].done and parts[-1].eval_count
    assert all(p.message.role == "assistant" for p in parts)


def test_embed_and_embeddings(client: ollama.Client) -> None:
    r = client.embed(model="billumy", input=["Vendas subiram 10%", "Sales went up"])
    assert len(r.embeddings) == 2
    assert len(r.embeddings[0]) == 576
    assert math.isclose(math.fsum(x * x for x in r.embeddings[0]), 1.0, rel_tol=1e-3)
    assert r.embeddings[0] != r.embeddings[1]
    single = client.embed(model="billumy", input="hello", dimensions=64)
    assert len(single.embeddings) == 1 and len(single.embeddings[0]) == 64
    old = client.embeddings(model="billumy", prompt="hello")
    assert len(old.embedding) == 576


def test_list_show_and_ps(client: ollama.Client) -> None:
    names = [m.model for m in client.list().models]
    assert {"billumy:latest", "smollm2-135m:latest", "gemma3-270m:latest"} <= set(names)
    shown = client.show("billumy")
    assert shown.modelfile and "FROM smollm2-135m" in shown.modelfile
    assert shown.details and shown.details.family == "llama"
    assert shown.parameters and "temperature" in shown.parameters
    client.generate(model="billumy", prompt="hi", options=FAST)
    running = [m.model for m in client.ps().models]
    assert "billumy:latest" in running


def test_empty_prompt_loads_and_keep_alive_zero_unloads(client: ollama.Client) -> None:
    loaded = client.generate(model="gemma3-270m", prompt="")
    assert loaded.done_reason == "load"
    assert "gemma3-270m:latest" in [m.model for m in client.ps().models]
    unloaded = client.generate(model="gemma3-270m", prompt="", keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert "gemma3-270m:latest" not in [m.model for m in client.ps().models]


def test_gemma_generates(client: ollama.Client) -> None:
    r = client.generate(model="gemma3-270m", prompt="The capital of France is", options=FAST)
    assert r.done and r.eval_count


def test_admin_can_create_copy_delete(client: ollama.Client) -> None:
    client.create(
        model="analyst-e2e",
        from_="billumy",
        system="Answer in one sentence.",
        parameters={"temperature": 0.1, "stop": ["\n\n"]},
    )
    shown = client.show("analyst-e2e")
    assert "Answer in one sentence." in (shown.modelfile or "")
    r = client.generate(model="analyst-e2e", prompt="hi", options=FAST)
    assert r.done
    client.copy("analyst-e2e", "analyst-e2e-copy")
    assert "analyst-e2e-copy:latest" in [m.model for m in client.list().models]
    client.delete("analyst-e2e-copy")
    client.delete("analyst-e2e")
    assert "analyst-e2e:latest" not in [m.model for m in client.list().models]
    with pytest.raises(ollama.ResponseError) as err:
        client.delete("analyst-e2e")
    assert err.value.status_code == 404


def test_create_from_the_original_modelfile(server: Server) -> None:
    import httpx

    modelfile = (
        "FROM mistral\n"
        'PARAMETER system "Você é Billumy, um assistente de análise de dados."\n'
        "PARAMETER temperature 0.7\n"
        "PARAMETER num_ctx 1024\n"
    )
    r = httpx.post(
        server.url + "/api/create",
        headers=server.headers,
        json={"model": "billumy-original", "modelfile": modelfile, "stream": False},
    )
    assert r.status_code == 200, r.text
    shown = httpx.post(
        server.url + "/api/show", headers=server.headers, json={"model": "billumy-original"}
    ).json()
    assert "Você é Billumy" in shown["system"]
    assert "num_ctx" in shown["parameters"] and "1024" in shown["parameters"]


def test_keys_without_admin_scope_cannot_manage_models(server: Server) -> None:
    import asyncio

    from billumy.auth import create_key
    from billumy.store.sql import SQLStore

    async def make() -> str:
        store = SQLStore("sqlite+aiosqlite:///" + str(server.data_dir / "billumy.db"))
        await store.ainit()
        try:
            key, _ = await create_key(store, name="reader", scopes=["inference"])
        finally:
            await store.aclose()
        return key

    key = asyncio.run(make())
    reader = ollama.Client(host=server.url, headers={"Authorization": f"Bearer {key}"})
    assert reader.list().models
    with pytest.raises(ollama.ResponseError) as err:
        reader.create(model="nope-e2e", from_="billumy")
    assert err.value.status_code == 403
    with pytest.raises(ollama.ResponseError) as err:
        reader.delete("billumy")
    assert err.value.status_code == 403


def test_without_a_key_every_api_route_is_401(server: Server) -> None:
    anonymous = ollama.Client(host=server.url)
    wrong = ollama.Client(host=server.url, headers={"Authorization": "Bearer bk_wrong-key-123456"})
    for c in (anonymous, wrong):
        for call in (
            lambda c=c: c.list(),
            lambda c=c: c.ps(),
            lambda c=c: c.show("billumy"),
            lambda c=c: c.generate(model="billumy", prompt="hi"),
            lambda c=c: c.chat(model="billumy", messages=[{"role": "user", "content": "hi"}]),
            lambda c=c: c.embed(model="billumy", input="hi"),
        ):
            with pytest.raises(ollama.ResponseError) as err:
                call()
            assert err.value.status_code == 401
