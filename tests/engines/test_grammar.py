"""The converter from JSON schemas (and their patterns) to llama.cpp grammars.

Its literals are read back here the way llama.cpp's parser reads them; its grammars are given to
llama.cpp itself (in a child process, see ``tests/grammar_check.py``), which must parse each one,
accept the JSON texts the schema allows (checked with ``jsonschema``, and for patterns with
``re``) and refuse the near misses.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import jsonschema
import pytest

from billumy.conversations import TITLE_SCHEMA
from billumy.engines import gbnf
from billumy.engines.grammar import JSON_GBNF, GrammarLimits, format_grammar, schema_grammar
from billumy.engines.maestro import SCHEMA as MAESTRO_SCHEMA
from billumy.errors import BadRequestError
from billumy.insights import data
from billumy.insights.plan import plan_schema
from billumy.insights.profile import profile
from billumy.insights.service import _narrative_schema

LIMITS = GrammarLimits()
TRICKY = [
    'a"b',
    "back\\slash",
    "new\nline\r",
    "tab\t\u0001\u001f\u007f",
    "ção é 😀 \u2028",
    "]",
    "}",
    "[^a-z]",
    '"]}\\',
    "",
    " ",
    "{{ .Prompt }}",
    'a"; DROP TABLE data; --',
]


# --- literals, read back as llama.cpp's parse_char reads them ---------------------------------

_ESCAPES = {"t": "\t", "r": "\r", "n": "\n", "\\": "\\", '"': '"', "[": "[", "]": "]"}


def read_literal(text: str) -> str:
    """The characters a GBNF ``"..."`` literal stands for (llama-grammar.cpp's parse_char)."""
    assert text[0] == '"' and text[-1] == '"'
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        c = body[i]
        assert c != '"', "an unescaped quote ends the literal early"
        if c != "\\":
            out.append(c)
            i += 1
            continue
        kind = body[i + 1]
        width = {"x": 2, "u": 4, "U": 8}.get(kind)
        if width is None:
            out.append(_ESCAPES[kind])  # any other escape is a parse error in llama.cpp
            i += 2
        else:
            out.append(chr(int(body[i + 2 : i + 2 + width], 16)))
            i += 2 + width
    return "".join(out)


@pytest.mark.parametrize("text", [*TRICKY, "".join(chr(c) for c in range(128)), "\U0010ffff"])
def test_a_literal_reads_back_as_the_text_and_is_plain_ascii(text: str) -> None:
    written = gbnf.literal(text)
    assert written.isascii() and written.isprintable()
    assert read_literal(written) == text


def test_a_character_class_escapes_everything_but_letters_and_digits() -> None:
    written = gbnf.char_class([(0x5D, 0x5D), (0x5C, 0x5C), (0x2D, 0x2D), (0x61, 0x7A), (0, 31)])
    assert written == "[\\x5D\\x5C\\x2Da-z\\x00-\\x1F]"
    assert gbnf.char_class([(0x22, 0x22)], negated=True) == "[^\\x22]"
    assert gbnf.char_class([(0x1F600, 0x1F64F)]) == "[\\U0001F600-\\U0001F64F]"


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0, 1, "(x)?"),
        (0, None, "(x)*"),
        (1, None, "(x)+"),
        (1, 1, "x"),
        (0, 0, ""),
        (3, 3, "(x){3}"),
        (2, None, "(x){2,}"),
        (2, 5, "(x){2,5}"),
    ],
)
def test_repetitions_use_gbnf_counts_never_nesting(lo: int, hi: int | None, expected: str) -> None:
    assert gbnf.repeat("x", lo, hi) == expected


# --- limits and unsupported schemas: 400s that say why ------------------------------------------


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "string", "pattern": "^(a|b|c|d){1,100000}$"}, ("100000", "4096")),
        ({"type": "string", "pattern": "^a{5000,}$"}, ("5000", "REPEAT")),
        ({"type": "string", "pattern": "^a{1," + "9" * 5000 + "}$"}, ("REPEAT",)),
        ({"type": "array", "minItems": 100000}, ("minItems of 100000", "REPEAT")),
        ({"type": "array", "maxItems": 100000}, ("maxItems of 100000", "REPEAT")),
        ({"type": "string", "minLength": 100000}, ("minLength of 100000", "REPEAT")),
        ({"type": "string", "maxLength": 100000}, ("maxLength of 100000", "REPEAT")),
        ({"prefixItems": [{}] * 5000}, ("prefixItems of 5000", "REPEAT")),
        ({"type": "string", "maxLength": 2.5}, ("maxLength must be a non-negative integer",)),
        ({"type": "string", "maxLength": True}, ("maxLength must be a non-negative integer",)),
        ({"type": "string", "maxLength": "9"}, ("maxLength must be a non-negative integer",)),
        ({"type": "array", "minItems": 3, "maxItems": 2}, ("maxItems 2 is below minItems 3",)),
        (json.loads('{"items":' * 40 + "{}" + "}" * 40), ("nests deeper", "32", "DEPTH")),
        ({"pattern": "^" + "(" * 40 + "a" + ")" * 40 + "$"}, ("groups nest deeper", "DEPTH")),
        ({"enum": ["x" * 70_000]}, ("over this server's limit of 65536", "SCHEMA_BYTES")),
        ({"const": 2**64}, ("out of range",)),
        ({"title": -(2**60)}, ("out of range",)),
        (False, ("matches nothing",)),
        ({"type": "strange"}, ("unknown type 'strange'",)),
        ({"type": "object", "properties": []}, ("properties must be an object",)),
        ({"type": "object", "properties": {"a": {}}, "required": "a"}, ("required must be",)),
        ({"type": "object", "properties": {"a": 1}}, ("must be an object, not a number",)),
        ({"additionalProperties": "yes"}, ("additionalProperties must be",)),
        ({"enum": "abc"}, ("enum must be a non-empty list",)),
        ({"anyOf": []}, ("anyOf must be a non-empty list",)),
        ({"allOf": [{"type": "string"}, {"type": "integer"}]}, ("allOf is supported for objects",)),
        ({"$ref": "#/$defs/missing"}, ("points at nothing",)),
        ({"$ref": "other.json#/a"}, ("only local $ref",)),
        ({"type": "string", "pattern": 5}, ("pattern must be a string",)),
        ({"pattern": "abc$"}, ("must start with ^ and end with $",)),
        ({"pattern": "^abc\\$"}, ("must start with ^ and end with $",)),
        ({"pattern": "^a(?=b)$"}, ("lookarounds",)),
        ({"pattern": "^(?<n>a)$"}, ("lookarounds, named groups",)),
        ({"pattern": "^(a)\\1$"}, ("\\1 is not supported",)),
        ({"pattern": "^a\\bb$"}, ("\\b is not supported",)),
        ({"pattern": "^a^b$"}, ("only at the start",)),
        ({"pattern": "^*a$"}, ("nothing to repeat",)),
        ({"pattern": "^a**$"}, ("cannot follow another",)),
        ({"pattern": "^(a*)+$"}, ("must not match the empty string",)),
        ({"pattern": "^(a|)*$"}, ("must not match the empty string",)),
        ({"pattern": "^(ab$"}, ("unbalanced parentheses",)),
        ({"pattern": "^ab)$"}, ("unbalanced parentheses",)),
        ({"pattern": "^[ab$"}, ("unbalanced square brackets",)),
        ({"pattern": "^[b-a]$"}, ("out of order",)),
        ({"pattern": "^[\\d-z]$"}, ("single characters at both ends",)),
        ({"pattern": "^\\x4$"}, ("hexadecimal digits",)),
        ({"pattern": "^a{3,2}$"}, ("maximum is below the minimum",)),
        ({"pattern": "^[^\\s\\S]$"}, ("matches nothing",)),
    ],
)
def test_schemas_over_a_limit_or_unsupported_are_refused_naming_why(
    schema: Any, words: tuple[str, ...]
) -> None:
    with pytest.raises(BadRequestError) as caught:
        schema_grammar(schema, LIMITS)
    assert caught.value.status_code == 400
    assert caught.value.message.startswith("format: ")
    for word in words:
        assert word in caught.value.message


def test_limits_are_the_settings_values() -> None:
    tight = GrammarLimits(
        max_schema_bytes=300, max_schema_depth=4, max_schema_repeat=10, max_grammar_bytes=2000
    )
    schema_grammar({"type": "array", "maxItems": 10}, tight)
    with pytest.raises(BadRequestError, match=r"maxItems of 11 .* limit of 10 \("):
        schema_grammar({"type": "array", "maxItems": 11}, tight)
    with pytest.raises(BadRequestError, match="limit of 300 "):
        schema_grammar({"enum": ["x" * 300]}, tight)
    with pytest.raises(BadRequestError, match="limit of 4 "):
        schema_grammar({"items": {"items": {"items": {"items": {}}}}}, tight)
    small_grammar = GrammarLimits(max_grammar_bytes=1024)
    with pytest.raises(BadRequestError, match=r"limit of 1024 bytes \(BILLUMY_MAX_GRAMMAR_BYTES"):
        schema_grammar({"enum": [{"k": i} for i in range(100)]}, small_grammar)


def test_format_json_none_and_other_strings() -> None:
    assert format_grammar(None, LIMITS) is None
    assert format_grammar("", LIMITS) is None
    assert format_grammar("json", LIMITS) == JSON_GBNF
    with pytest.raises(BadRequestError, match='format must be "json" or a JSON schema'):
        format_grammar("xml", LIMITS)


def test_properties_keep_their_order_and_names_are_escaped() -> None:
    name = 'a"; DROP TABLE data; --'
    schema = {"properties": {"z": {}, name: {}, "a": {}}, "required": ["z", name, "a"]}
    grammar = schema_grammar(schema, LIMITS)
    z, hostile, a = (grammar.index(gbnf.literal(json.dumps(n))) for n in ("z", name, "a"))
    assert z < hostile < a
    assert name not in grammar and "DROP TABLE" in grammar


# --- llama.cpp reads every grammar, and accepts exactly the valid texts --------------------------

PATTERN_PROBES = [
    "",
    "a",
    "ab",
    "abc",
    "123-AB",
    "12-AB",
    "foo",
    "foobaz",
    "fob",
    'ab"\\x.',
    'ab"x.',
    "ABC",
    '"',
    "\\",
    "\n",
    "\t",
    " x",
    "x",
    "a\nc",
    "abc",
    "ção",
    "çãoé",
    "me@host.com",
    "me@host.org",
    "]\\-",
    "b",
    "😀😀",
    "a-b",
]
PATTERNS = [
    r"^\d{3}-[A-Z]{2}$",
    r"^(foo|ba[rz])+$",
    r'^[a-c]{2}"\\(x|y)\.$',
    r'^[^a-z"]*$',
    r"^a.c$",
    r"^\w+@\w+\.com$",
    "^ção\u00e9?$",
    r"^\s?x$",
    r"^[\]\\\-]+$",
    r"^a{0}b$",
    r"^(?:ab|c)?$",
    r"^[\x41-\u0043]+$",
    r"^\D\W\S$",
    r"^.{2}$",
]

OBJECT = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}}
MIXED = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}},
    "required": ["b"],
}
EXTRA = {
    "type": "object",
    "properties": {"x": {"type": "integer"}},
    "additionalProperties": {"type": "integer"},
}
LINKED = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "v": {"type": "integer"},
                "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]},
            },
            "required": ["v", "next"],
        }
    },
    "$ref": "#/$defs/node",
}

# name: (schema, texts jsonschema accepts, texts it refuses)
CASES: dict[str, tuple[Any, list[str], list[str]]] = {
    "tricky enum": (
        {"enum": [*TRICKY, 1, None, {"k": [True]}]},
        [json.dumps(v, ensure_ascii=False) for v in TRICKY] + ["1", "null", '{"k":[true]}'],
        ['"a\\\\"b"', '"a"b"', '"]]"', "2", '{"k": [true]}', '"\\u00e7ão é 😀 \u2028"'],
    ),
    "optional members": (
        OBJECT,
        ["{}", '{"a": 1}', '{"b": "x"}', '{"a": 1, "b": "x"}', '{ "a": -5 }'],
        ['{"b": "x", "a": 1}', '{"a": 1,}', "{,}", '{"c": 1}', '{"a": "1"}', '{"a": 1 "b": ""}'],
    ),
    "one required among optional": (
        MIXED,
        ['{"b": 1}', '{"a": 1, "b": 2}', '{"b": 1, "c": 2}', '{"a": 1, "b": 2, "c": 3}'],
        ["{}", '{"a": 1}', '{"c": 1, "b": 2}', '{"a": 1, "c": 3}'],
    ),
    "additional properties": (
        EXTRA,
        ['{"x": 1, "y": 2}', '{"y": 2}', "{}", '{"x": 1}', '{"p": 1, "q": 2}'],
        ['{"y": "s"}', '{"x": "s"}', '{"y": 2, "x": 1,}'],
    ),
    "no properties allowed": (
        {"type": "object", "properties": {}, "additionalProperties": False},
        ["{}", "{ }"],
        ['{"a": 1}'],
    ),
    "array bounds": (
        {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3},
        ["[1, 2]", "[1,2,3]"],
        ["[]", "[1]", "[1, 2, 3, 4]", "[1, 2,]"],
    ),
    "empty array only": ({"type": "array", "maxItems": 0}, ["[]"], ["[1]", "[null]"]),
    "tuple": (
        {"prefixItems": [{"type": "integer"}, {"enum": ["x"]}]},
        ['[1, "x"]'],
        ['["x", 1]', "[1]"],
    ),
    "string length": (
        {"type": "string", "minLength": 2, "maxLength": 3},
        ['"ab"', '"abc"', '"a\\n"', '"\\u00e7ab"', '"ção"'],
        ['"a"', '"abcd"', '"a\\"bcd"', '"\n\n"'],
    ),
    "formats": (
        {"anyOf": [{"format": "date", "type": "string"}, {"type": "string", "format": "uuid"}]},
        ['"2024-01-31"', '"123e4567-e89b-12d3-a456-426614174000"'],
        ['"2024-13-01"', '"2024-1-1"', '"123e4567"'],
    ),
    "date-time": (
        {"type": "string", "format": "date-time"},
        ['"2024-01-31T10:20:30Z"', '"2024-01-31T10:20:30.123+03:00"'],
        ['"2024-01-31 10:20:30"'],
    ),
    "recursive ref": (
        LINKED,
        ['{"v": 1, "next": null}', '{"v": 1, "next": {"v": 2, "next": null}}'],
        ['{"v": 1}', '{"v": 1, "next": {"v": 2}}'],
    ),
    "type list": ({"type": ["string", "null"]}, ['"x"', "null"], ["1", "true"]),
    "any of": ({"anyOf": [{"type": "integer"}, {"type": "boolean"}]}, ["1", "true"], ['"x"']),
    "all of": (
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {"const": "y"}}},
            ]
        },
        ['{"a": 1}', '{"a": 1, "b": "y"}'],
        ['{"b": "y"}', '{"a": 1, "b": "z"}'],
    ),
    "numbers": (
        {"type": "array", "items": {"type": "number"}},
        ["[0, -1.5, 2e10, 1.25E-3]"],
        ["[01]", "[.5]", "[NaN]", '["1"]'],
    ),
    "anything": (True, ['{"a": [1, "x", null]}', "3", '"s"'], ["{a: 1}"]),
}


def _pattern_case(pattern: str) -> tuple[Any, list[str], list[str]]:
    schema = {"type": "string", "pattern": pattern}
    # ECMAScript's \d and \w are ASCII, Python's (and so jsonschema's) Unicode: probes on
    # which the two differ are left out.
    body = pattern[1:-1]
    probes = [
        p
        for p in PATTERN_PROBES
        if bool(re.fullmatch(body, p, re.ASCII)) == bool(re.fullmatch(body, p))
    ]
    good = [p for p in probes if re.fullmatch(body, p)]
    bad = [p for p in probes if not re.fullmatch(body, p)]
    as_json = [json.dumps(p, ensure_ascii=False) for p in good]
    assert as_json, f"no probe matches {pattern}"
    return schema, as_json, [json.dumps(p, ensure_ascii=False) for p in bad]


for _pattern in PATTERNS:
    CASES[f"pattern {_pattern}"] = _pattern_case(_pattern)


def _hostile_plan_schema() -> dict[str, Any]:
    records = [
        {"loja": s, 'a"; DROP TABLE data; --': n, "x\\]}\u0007": n / 2}
        for s, n in [("Sul", 1), ("Norte", 2), ("Leste", 3)]
    ]
    with data.from_records(records) as table:
        return plan_schema(profile(table))


# Schemas the server itself sends; each must parse (and accept what it documents).
BUILT_IN = {
    "insights plan with hostile column names": _hostile_plan_schema(),
    "insights narrative": _narrative_schema(["f1", "f2", 'f"3'], 3),
    "maestro tiers": MAESTRO_SCHEMA,
    "chat title": TITLE_SCHEMA,
}


@pytest.fixture(scope="module")
def verdicts() -> dict[str, tuple[bool, list[bool], list[bool]]]:
    """llama.cpp's answers for every case: (parsed, accepted good texts, accepted bad ones)."""
    names = [*CASES, *BUILT_IN]
    grammars = [schema_grammar(CASES[n][0], LIMITS) for n in CASES]
    grammars += [schema_grammar(BUILT_IN[n], LIMITS) for n in BUILT_IN]
    grammars.append(JSON_GBNF)
    texts = []
    for i, name in enumerate(CASES):
        _, good, bad = CASES[name]
        texts += [[i, t] for t in good + bad]
    texts += [[len(grammars) - 1, '{"a": [1, "x", {"b": null}]}'], [len(grammars) - 1, "[1]"]]
    out = subprocess.run(
        [sys.executable, "-m", "tests.grammar_check"],
        input=json.dumps({"grammars": grammars, "texts": texts}),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answer = json.loads(out.stdout)
    accepted = iter(answer["accepted"])
    result = {}
    for i, name in enumerate(names):
        if name in CASES:
            _, good, bad = CASES[name]
            result[name] = (
                answer["parsed"][i],
                [next(accepted) for _ in good],
                [next(accepted) for _ in bad],
            )
        else:
            result[name] = (answer["parsed"][i], [], [])
    result["json"] = (answer["parsed"][-1], [next(accepted)], [next(accepted)])
    return result


@pytest.mark.parametrize("name", list(CASES))
def test_llama_cpp_accepts_exactly_the_valid_texts(
    verdicts: dict[str, tuple[bool, list[bool], list[bool]]], name: str
) -> None:
    schema, good, bad = CASES[name]
    # The cases are right about the schema...
    for text in good:
        jsonschema.validate(json.loads(text), schema if schema is not True else {})
    # ...and llama.cpp, under the converted grammar, agrees.
    parsed, good_ok, bad_ok = verdicts[name]
    assert parsed
    assert all(good_ok), [t for t, ok in zip(good, good_ok, strict=True) if not ok]
    assert not any(bad_ok), [t for t, ok in zip(bad, bad_ok, strict=True) if ok]


@pytest.mark.parametrize("name", list(BUILT_IN))
def test_the_servers_own_schemas_parse(
    verdicts: dict[str, tuple[bool, list[bool], list[bool]]], name: str
) -> None:
    assert verdicts[name][0]


def test_any_json_is_llama_cpps_own_grammar(
    verdicts: dict[str, tuple[bool, list[bool], list[bool]]],
) -> None:
    parsed, objects, arrays = verdicts["json"]
    assert parsed and objects == [True] and arrays == [False]  # "json" means an object
