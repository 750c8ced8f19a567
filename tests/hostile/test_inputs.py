"""Inputs that reached llama.cpp in a state it cannot take: each is refused with a 400 (or
served), and the engine process every tenant shares runs on (see ``conftest.engine_survives``).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.hostile.conftest import Hostile, refused

MODEL = "billumy"
UNLOAD = {"model": MODEL, "keep_alive": 0, "stream": False}
GENERATE = {"model": MODEL, "prompt": "Oi", "stream": False, "options": {"num_predict": 2}}


def loaded(hostile: Hostile) -> list[str]:
    return [m["name"] for m in hostile.admin.get("/api/ps").json()["models"]]


# --- embeddings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/api/embed", {"model": MODEL, "input": ""}, "input is empty"),
        ("/api/embed", {"model": MODEL, "input": ["a", ""]}, "input 1 is empty"),
        ("/api/embeddings", {"model": MODEL, "prompt": ""}, "input is empty"),
        ("/v1/embeddings", {"model": MODEL, "input": ""}, "input 0 is empty"),
        ("/v1/embeddings", {"model": MODEL, "input": ["x", "y", ""]}, "input 2 is empty"),
    ],
)
def test_an_empty_embedding_input_is_refused_and_an_unload_right_after_is_safe(
    hostile: Hostile, path: str, body: dict[str, Any], where: str
) -> None:
    refused(hostile.attacker.post(path, json=body), where, "nothing to embed")
    # The report: an unload right after the failed embedding killed the engine. (Only an
    # admin unloads for everyone; an inference key's keep_alive 0 is clamped.)
    r = hostile.admin.post("/api/generate", json=UNLOAD)
    assert r.status_code == 200 and r.json()["done_reason"] == "unload", r.text


def test_an_unload_during_an_embedding_waits_for_it(hostile: Hostile) -> None:
    # The report: eight inputs, an unload 0.3 s later, the model freed under llama_decode.
    inputs = [
        f"Row {i}: revenue grew in the south region, costs fell in the north. " * 5
        for i in range(8)
    ]
    results: dict[str, Any] = {}

    def embed() -> None:
        results["embed"] = hostile.attacker.post(
            "/api/embed", json={"model": MODEL, "input": inputs}
        )
        results["embedded_at"] = time.monotonic()

    worker = threading.Thread(target=embed)
    worker.start()
    time.sleep(0.3)
    unload = hostile.admin.post("/api/generate", json=UNLOAD)
    unloaded_at = time.monotonic()
    worker.join(timeout=120)
    assert unload.status_code == 200 and unload.json()["done_reason"] == "unload", unload.text
    r = results["embed"]
    assert r.status_code == 200, r.text
    vectors = r.json()["embeddings"]
    assert len(vectors) == 8 and all(len(v) == len(vectors[0]) > 0 for v in vectors)
    if r.json()["total_duration"] > 1.5e9:  # it was still running when the unload came
        assert unloaded_at > results["embedded_at"] - 0.5, "the unload did not wait for it"


def test_an_unload_during_a_generation_frees_the_model_when_it_ends(hostile: Hostile) -> None:
    counting = {
        "model": MODEL,
        "prompt": "1, 2, 3, 4, 5, 6, 7, 8,",
        "raw": True,
        "options": {"num_predict": 24, "temperature": 0},
    }
    with hostile.attacker.stream("POST", "/api/generate", json=counting) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        assert not json.loads(next(lines))["done"]
        unload = hostile.admin.post("/api/generate", json=UNLOAD)
        assert unload.status_code == 200, unload.text
        rest = [json.loads(line) for line in lines if line.strip()]
    assert rest[-1]["done"] and all("error" not in part for part in rest), rest[-1]
    deadline = time.monotonic() + 10
    while MODEL + ":latest" in loaded(hostile) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert MODEL + ":latest" not in loaded(hostile)


# --- tokens, seeds, options --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "words"),
    [
        ([-1], ("context holds -1", "not a token id")),
        ([10**9], ("context holds 1000000000", "not a token of this model")),
        ([2**70], ("not a token id",)),
        ([1, 2, 49152], ("context holds 49152", "ids run from 0 to 49151")),
        (list(range(5000)), ("context is 5000 tokens", "num_ctx=2048")),
    ],
)
def test_context_ids_out_of_range_are_refused(
    hostile: Hostile, context: list[int], words: tuple[str, ...]
) -> None:
    body = {**GENERATE, "context": context}
    refused(hostile.attacker.post("/api/generate", json=body), *words)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"seed": 2**64}, ("seed", "-1 (random) or an integer from 0 to 4294967295")),
        ({"seed": -5}, ("seed",)),
        ({"seed": 2**32}, ("seed",)),
        ({"top_k": 2**70}, ("top_k", "an integer from")),
        ({"num_ctx": 10**30}, ("num_ctx",)),
        ({"num_predict": 1e300}, ("num_predict",)),
    ],
)
def test_options_out_of_range_are_refused(
    hostile: Hostile, options: dict[str, Any], words: tuple[str, ...]
) -> None:
    body = {**GENERATE, "options": {**GENERATE["options"], **options}}  # type: ignore[dict-item]
    refused(hostile.attacker.post("/api/generate", json=body), *words)


@pytest.mark.parametrize("seed", [2**64, -5, 2**32])
def test_openai_seeds_out_of_range_are_refused(hostile: Hostile, seed: int) -> None:
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "Oi"}], "seed": seed}
    refused(hostile.attacker.post("/v1/chat/completions", json=chat), "seed")


def test_the_seeds_llama_cpp_takes_are_served(hostile: Hostile) -> None:
    for seed in (-1, 0, 2**32 - 1):
        body = {**GENERATE, "options": {"num_predict": 2, "seed": seed, "temperature": 0.7}}
        r = hostile.attacker.post("/api/generate", json=body)
        assert r.status_code == 200, (seed, r.text)


@pytest.mark.parametrize("keep_alive", [1e308, "99999999999999999999h", -1, "-5m"])
def test_keep_alive_from_here_to_forever_is_served(hostile: Hostile, keep_alive: Any) -> None:
    r = hostile.attacker.post("/api/generate", json={**GENERATE, "keep_alive": keep_alive})
    assert r.status_code == 200, r.text
    assert r.json()["done"]


# --- prompts that took the engine for minutes ---------------------------------------------------


def test_a_chat_of_twenty_thousand_turns_is_cut_to_fit_at_once(hostile: Hostile) -> None:
    # Turns were left out one rendering (and tokenization) of the whole history at a time.
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"}
        for i in range(20_000)
    ]
    body = {
        "model": "smollm2-135m",
        "messages": messages,
        "stream": False,
        "options": {"num_ctx": 256, "num_predict": 2, "temperature": 0},
    }
    started = time.monotonic()
    r = hostile.attacker.post("/api/chat", json=body)
    assert r.status_code == 200, r.text
    assert 0 < r.json()["prompt_eval_count"] <= 256
    assert time.monotonic() - started < 60


def test_a_prompt_of_special_tokens_too_long_to_fit_is_refused_untokenized(
    hostile: Hostile,
) -> None:
    # llama.cpp's special-token partitioning is quadratic: 500,000 of them took hours.
    body = {
        "model": "smollm2-135m",
        "prompt": "a<|im_end|>" * 500_000,
        "raw": True,
        "stream": False,
        "options": {"num_predict": 2},
    }
    started = time.monotonic()
    refused(hostile.attacker.post("/api/generate", json=body), "longer than the context length")
    assert time.monotonic() - started < 60


# --- templates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "words"),
    [
        # .Messages of a message is nothing: the prompt renders empty (it was a 500 with the
        # message "generation failed: ").
        ("{{range .Messages}}{{range .Messages}}{{.Content}}{{end}}{{end}}", ("prompt is empty",)),
        ("{{ if false }}x{{ end }}", ("prompt is empty",)),
        ("{{ index .Messages 99 }}", ("template:", "index out of range")),
        ("{{ range $a := .Messages }}{{ end", ("template:",)),
        ("{{" + "(" * 3000 + "1" + ")" * 3000 + "}}", ("template: nested too deeply",)),
    ],
)
def test_template_errors_are_400s_with_their_reason(
    hostile: Hostile, template: str, words: tuple[str, ...]
) -> None:
    body = {**GENERATE, "template": template}
    error = refused(hostile.attacker.post("/api/generate", json=body), *words)
    assert error != "generation failed: "


def test_a_template_that_loops_too_long_is_stopped(hostile: Hostile) -> None:
    # Ranges in ranges over the two messages (system, user): 2**25 iterations, minutes of the
    # engine process's time before templates had a budget.
    template = "{{ range $.Messages }}" * 25 + "x" + "{{ end }}" * 25
    body = {**GENERATE, "system": "Be brief.", "template": template}
    started = time.monotonic()
    refused(hostile.attacker.post("/api/generate", json=body), "template:", "steps")
    assert time.monotonic() - started < 30
