"""Formats (JSON schemas) that made llama.cpp crash while it built or read their grammar: each
is served with the right output or refused with a 400 naming the limit it broke, and the engine
process runs on (see ``conftest.engine_survives``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.hostile.conftest import Hostile, refused

MODEL = "billumy"
TRICKY = ['a"b', "back\\slash", "new\nline", "tab\tand\u0001ctl", "ção 😀", "]", "}", '"]}\\']


def generate(hostile: Hostile, fmt: Any, num_predict: int = 24) -> Any:
    body = {
        "model": MODEL,
        "prompt": "Answer.",
        "stream": False,
        "format": fmt,
        "options": {"num_predict": num_predict, "temperature": 0},
    }
    return hostile.attacker.post("/api/generate", json=body)


def test_the_reported_enum_with_a_quote_is_written_exactly(hostile: Hostile) -> None:
    r = generate(hostile, {"type": "string", "enum": ['a"b']})
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["response"]) == 'a"b'


def test_values_with_quotes_and_control_characters_are_written_exactly(hostile: Hostile) -> None:
    # One constant per property: the grammar leaves the model no choice but these texts.
    names = [f"v{i}" for i in range(len(TRICKY))]
    schema = {
        "type": "object",
        "properties": {n: {"const": v} for n, v in zip(names, TRICKY, strict=True)},
        "required": names,
    }
    r = generate(hostile, schema, num_predict=120)
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["response"]) == dict(zip(names, TRICKY, strict=True))


def test_property_names_like_sql_injections_are_written_exactly(hostile: Hostile) -> None:
    name = 'a"; DROP TABLE data; --'
    schema = {
        "type": "object",
        "properties": {name: {"type": "string", "enum": ["x"]}, "n\\]}": {"const": 1}},
        "required": [name, "n\\]}"],
        "additionalProperties": False,
    }
    r = generate(hostile, schema, num_predict=40)
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["response"]) == {name: "x", "n\\]}": 1}


def test_openai_response_format_with_a_quote_in_an_enum(hostile: Hostile) -> None:
    schema = {"type": "object", "properties": {"v": {"enum": ['a"b']}}, "required": ["v"]}
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Answer."}],
        "max_tokens": 24,
        "temperature": 0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    r = hostile.attacker.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["choices"][0]["message"]["content"]) == {"v": 'a"b'}


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        (
            {"type": "string", "pattern": "^(a|b|c|d){1,100000}$"},
            ("repetition count of 100000", "limit of 4096", "BILLUMY_MAX_SCHEMA_REPEAT"),
        ),
        (
            {"type": "array", "items": {"type": "integer"}, "minItems": 200000},
            ("minItems of 200000", "BILLUMY_MAX_SCHEMA_REPEAT"),
        ),
        (
            {"type": "array", "items": {"type": "integer"}, "maxItems": 300000},
            ("maxItems of 300000", "BILLUMY_MAX_SCHEMA_REPEAT"),
        ),
        (
            {"type": "string", "minLength": 500000},
            ("minLength of 500000", "BILLUMY_MAX_SCHEMA_REPEAT"),
        ),
        (
            {"type": "string", "maxLength": 500000},
            ("maxLength of 500000", "BILLUMY_MAX_SCHEMA_REPEAT"),
        ),
        (
            {"type": "string", "pattern": "^" + "(" * 40 + "a" + ")" * 40 + "$"},
            ("groups nest deeper", "limit of 32", "BILLUMY_MAX_SCHEMA_DEPTH"),
        ),
        (
            json.loads('{"type": "array", "items": ' * 40 + "{}" + "}" * 40),
            ("nests deeper", "limit of 32", "BILLUMY_MAX_SCHEMA_DEPTH"),
        ),
        (
            {"type": "string", "enum": [f"value number {i}" for i in range(5000)]},
            ("bytes, over this server's limit of 65536", "BILLUMY_MAX_SCHEMA_BYTES"),
        ),
        ({"type": "string", "maxItems": 2**70}, ("out of range",)),
        ({"type": "string", "minLength": -1}, ("minLength must be a non-negative integer",)),
        ({"type": "string", "minLength": 5, "maxLength": 2}, ("below minLength",)),
        ({"type": "string", "pattern": "abc"}, ("must start with ^ and end with $",)),
        ({"type": "string", "pattern": "^(?=a)b$"}, ("lookarounds",)),
        ({"type": "string", "pattern": "^(a)\\1$"}, ("back-references",)),
        ({"type": "string", "pattern": "^(a*)*$"}, ("must not match the empty string",)),
        ({"type": "string", "pattern": "^[z-a]$"}, ("out of order",)),
        ({"$ref": "https://example.com/schema.json"}, ("only local $ref",)),
        ({"type": "strange"}, ("unknown type",)),
        ({"enum": []}, ("enum must be a non-empty list",)),
        # Made by the converter, refused by llama.cpp's parser (a rule that is its own
        # first symbol): a 400 from the engine process, never a null grammar in use.
        ({"$ref": "#"}, ("llama.cpp could not read the grammar",)),
        ("xml", ('format must be "json" or a JSON schema object',)),
    ],
)
def test_schemas_over_the_limits_or_unsupported_are_400s_naming_why(
    hostile: Hostile, schema: Any, words: tuple[str, ...]
) -> None:
    refused(generate(hostile, schema), *words)


def test_a_bad_format_is_refused_before_a_stream_starts(hostile: Hostile) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Oi"}],
        "format": {"$ref": "#"},
    }
    refused(hostile.attacker.post("/api/chat", json=body), "llama.cpp could not read")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": '^[a-c]{2}"\\\\(x|y)$'},
        {"type": "array", "items": {"type": "boolean"}, "minItems": 2, "maxItems": 2},
        {"type": "string", "maxLength": 4096},
    ],
)
def test_schemas_within_the_limits_are_served(hostile: Hostile, schema: dict[str, Any]) -> None:
    r = generate(hostile, schema, num_predict=16)
    assert r.status_code == 200, r.text
