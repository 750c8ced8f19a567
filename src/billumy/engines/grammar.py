"""The grammar that forces a request's ``format``: any JSON, or JSON valid for a schema.

Our own converter from JSON schema to llama.cpp's GBNF, for the subset that structured outputs
use (the types, ``properties``/``required``/``additionalProperties``, ``items``/``prefixItems``
with ``minItems``/``maxItems``, ``minLength``/``maxLength``, ``pattern``, the date, time and
uuid ``format``\\ s, ``enum``, ``const``, ``anyOf``/``oneOf``, ``allOf`` of objects, local
``$ref``). Annotations and keywords it does not enforce (``title``, ``minimum``...) are ignored,
as llama.cpp's own converter ignores them. Properties come out in the order the schema declares
them.

The schema comes from a client (or from dataset column names, in the insights plan), so:

* every literal and character class is escaped character by character (:mod:`.gbnf`);
* the schema's size and nesting, every repetition count and the grammar's size are bounded by
  :class:`GrammarLimits` (settings ``max_schema_bytes``, ``max_schema_depth``,
  ``max_schema_repeat``, ``max_grammar_bytes``); over a limit is a 400 naming it and its value;
* anything it cannot express faithfully is a 400, never a grammar llama.cpp may choke on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from billumy.engines import gbnf
from billumy.errors import BadRequestError

__all__ = ["GrammarLimits", "format_grammar", "schema_grammar"]

# Any JSON object: llama.cpp's grammars/json.gbnf (Ollama's "json" format). Written out here:
# the API process, which checks formats, never imports llama_cpp.
JSON_GBNF = r"""root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws ::= | " " | "\n" [ \t]{0,20}
"""

# JSON numbers beyond this cannot be told apart from their neighbours as doubles, and bigger
# integers do not fit the 64 bits of the response cache's keys.
_MAX_SAFE_INT = 2**53


@dataclass(frozen=True)
class GrammarLimits:
    """Bounds on a ``format`` schema and the grammar made from it."""

    max_schema_bytes: int = 64 * 1024
    max_schema_depth: int = 32
    max_schema_repeat: int = 4096
    max_grammar_bytes: int = 256 * 1024


def format_grammar(fmt: str | dict[str, Any] | None, limits: GrammarLimits) -> str | None:
    """The GBNF grammar for an Ollama ``format``: None for none, any JSON for ``"json"``, or
    JSON valid for the schema. Raises :class:`~billumy.errors.BadRequestError` (400)."""
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return JSON_GBNF
    if isinstance(fmt, dict):
        return schema_grammar(fmt, limits)
    raise BadRequestError('format must be "json" or a JSON schema object')


def schema_grammar(schema: dict[str, Any], limits: GrammarLimits) -> str:
    """The GBNF grammar of the JSON texts valid for ``schema`` (root rule ``root``)."""
    _check_shape(schema, limits)
    converter = _Converter(schema, limits)
    root = converter.visit(schema, 0)
    text = converter.grammar(root)
    if len(text) > limits.max_grammar_bytes:
        raise BadRequestError(
            f"format: the grammar made from this schema is {len(text)} bytes, over this "
            f"server's limit of {limits.max_grammar_bytes} (BILLUMY_MAX_GRAMMAR_BYTES)"
        )
    return text


def _check_shape(schema: Any, limits: GrammarLimits) -> None:
    """Depth, numbers and size of the whole schema, walked without recursion."""
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.max_schema_depth:
            raise BadRequestError(
                f"format: the schema nests deeper than this server's limit of "
                f"{limits.max_schema_depth} (BILLUMY_MAX_SCHEMA_DEPTH)"
            )
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > _MAX_SAFE_INT:
            raise BadRequestError(f"format: the number {node} in the schema is out of range")
    size = len(json.dumps(schema, ensure_ascii=False, separators=(",", ":")).encode())
    if size > limits.max_schema_bytes:
        raise BadRequestError(
            f"format: the schema is {size} bytes, over this server's limit of "
            f"{limits.max_schema_bytes} (BILLUMY_MAX_SCHEMA_BYTES)"
        )


# The JSON primitives, as llama.cpp's converter writes them; whitespace is at most one space so
# that a model cannot run away in it.
_PRIMITIVES = {
    "space": '" "?',
    "boolean": '("true" | "false") space',
    "null": '"null" space',
    "integral-part": "[0] | [1-9] [0-9]{0,15}",
    "decimal-part": "[0-9]{1,16}",
    "number": '("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space',
    "integer": '("-"? integral-part) space',
    "char": '[^"\\\\\\x7F\\x00-\\x1F] | [\\\\] (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "string": '"\\"" char* "\\"" space',
    "value": "object | array | string | number | boolean | null",
    "object": '"{" space ( string ":" space value ("," space string ":" space value)* )? "}" space',
    "array": '"[" space ( value ("," space value)* )? "]" space',
    "date": '[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )',
    "time": '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? '
    '( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )',
    "date-time": 'date "T" time',
    "uuid": '"\\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} '
    '"-" [0-9a-fA-F]{12} "\\"" space',
}
_DEPENDS = {
    "boolean": ["space"],
    "null": ["space"],
    "number": ["integral-part", "decimal-part", "space"],
    "integer": ["integral-part", "space"],
    "string": ["char", "space"],
    "value": ["object", "array", "string", "number", "boolean", "null"],
    "object": ["space", "string", "value"],
    "array": ["space", "value"],
    "date-time": ["date", "time"],
    "uuid": ["space"],
}
_STRING_FORMATS = ("date", "time", "date-time")
_STRING_KEYWORDS = {"pattern", "minLength", "maxLength", "format"}
_TYPES = ("string", "number", "integer", "boolean", "null", "object", "array")


class _Converter:
    def __init__(self, root: dict[str, Any], limits: GrammarLimits) -> None:
        self.root = root
        self.limits = limits
        self.rules: dict[str, str] = {}  # name -> body
        self.names: dict[str, str] = {}  # body -> name: the same body is one rule
        self.refs: dict[str, str] = {}  # "$ref" -> rule name

    # --- rules ----------------------------------------------------------------------------

    def primitive(self, name: str) -> str:
        if name not in self.rules:
            self.rules[name] = _PRIMITIVES[name]
            for dep in _DEPENDS.get(name, []):
                self.primitive(dep)
        return name

    def rule(self, body: str) -> str:
        if body.replace("-", "").isalnum():
            return body  # already a rule's name
        name = self.names.get(body)
        if name is None:
            name = self.names[body] = f"r{len(self.names) + 1}"
            self.rules[name] = body
            if sum(len(b) for b in self.rules.values()) > self.limits.max_grammar_bytes:
                raise BadRequestError(
                    "format: the grammar made from this schema is over this server's limit of "
                    f"{self.limits.max_grammar_bytes} bytes (BILLUMY_MAX_GRAMMAR_BYTES)"
                )
        return name

    def grammar(self, root: str) -> str:
        lines = [f"root ::= {root}"]
        lines.extend(f"{name} ::= {body}" for name, body in self.rules.items())
        return "\n".join(lines) + "\n"

    def repeat_count(self, where: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequestError(f"format: {where} must be a non-negative integer")
        if isinstance(value, float) and not value.is_integer():
            raise BadRequestError(f"format: {where} must be a non-negative integer")
        count = int(value)
        if count < 0:
            raise BadRequestError(f"format: {where} must be a non-negative integer")
        self.check_repeat(count, where)
        return count

    def check_repeat(self, count: int, where: str = "a repetition count") -> None:
        if count > self.limits.max_schema_repeat:
            raise BadRequestError(
                f"format: {where} of {count} is over this server's limit of "
                f"{self.limits.max_schema_repeat} (BILLUMY_MAX_SCHEMA_REPEAT)"
            )

    # --- schemas --------------------------------------------------------------------------

    def visit(self, schema: Any, depth: int) -> str:
        if depth > self.limits.max_schema_depth:  # $ref chains nest without nesting the JSON
            raise BadRequestError(
                f"format: the schema nests deeper than this server's limit of "
                f"{self.limits.max_schema_depth} (BILLUMY_MAX_SCHEMA_DEPTH)"
            )
        if schema is True or schema == {}:
            return self.primitive("value")
        if schema is False:
            raise BadRequestError("format: a schema of false matches nothing")
        if not isinstance(schema, dict):
            raise BadRequestError(f"format: a schema must be an object, not {_kind(schema)}")
        if "$ref" in schema:
            return self.ref(schema["$ref"], depth)
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                return self.union(keyword, schema[keyword], depth)
        if "allOf" in schema:
            return self.all_of(schema, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            return self.union("type", [{**schema, "type": t} for t in kind], depth)
        if "const" in schema:
            return self.rule(self.value_literal(schema["const"]))
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise BadRequestError("format: enum must be a non-empty list")
            literals = dict.fromkeys(self.value_literal(v) for v in values)
            return self.rule(" | ".join(literals))
        if kind is not None and kind not in _TYPES:
            raise BadRequestError(f"format: unknown type {kind!r}")
        if kind == "object" or (
            kind is None and ("properties" in schema or "additionalProperties" in schema)
        ):
            return self.object(schema, depth)
        if kind == "array" or (kind is None and ("items" in schema or "prefixItems" in schema)):
            return self.array(schema, depth)
        if kind == "string" or (kind is None and _STRING_KEYWORDS & schema.keys()):
            return self.string(schema)
        if kind is None:
            return self.primitive("value")
        return self.primitive(kind)

    def value_literal(self, value: Any) -> str:
        """A constant JSON value exactly as the model must write it, then a space."""
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return f"{gbnf.literal(text)} {self.primitive('space')}"

    def union(self, keyword: str, options: Any, depth: int) -> str:
        if not isinstance(options, list) or not options:
            raise BadRequestError(f"format: {keyword} must be a non-empty list")
        names = list(dict.fromkeys(self.visit(o, depth + 1) for o in options))
        return names[0] if len(names) == 1 else self.rule(" | ".join(names))

    def ref(self, ref: Any, depth: int) -> str:
        if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
            raise BadRequestError(
                f"format: only local $ref (#/$defs/...) are supported, not {ref!r}"
            )
        name = self.refs.get(ref)
        if name is not None:
            return name
        target: Any = self.root
        for part in ref[2:].split("/") if ref != "#" else []:
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and key in target:
                target = target[key]
            elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
                target = target[int(key)]
            else:
                raise BadRequestError(f"format: $ref {ref!r} points at nothing")
        # Named before it is visited, so that a recursive schema refers to itself.
        name = self.refs[ref] = f"ref{len(self.refs) + 1}"
        self.rules[name] = ""
        self.rules[name] = self.visit(target, depth + 1)
        return name

    def all_of(self, schema: dict[str, Any], depth: int) -> str:
        parts = schema["allOf"]
        if not isinstance(parts, list) or not parts:
            raise BadRequestError("format: allOf must be a non-empty list")
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        if len(parts) == 1 and not ({"properties", "type", "items"} & rest.keys()):
            return self.visit(parts[0], depth + 1)
        properties: dict[str, Any] = dict(rest.get("properties") or {})
        required: list[Any] = list(rest.get("required") or [])
        for part in parts:
            part = self.resolve(part)
            if not isinstance(part, dict) or part.get("type", "object") != "object":
                raise BadRequestError("format: allOf is supported for objects only")
            properties.update(part.get("properties") or {})
            required.extend(part.get("required") or [])
        merged = {"type": "object", "properties": properties, "required": required}
        return self.object(merged, depth)

    def resolve(self, schema: Any) -> Any:
        seen = 0
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            seen += 1
            ref = schema["$ref"]
            if seen > self.limits.max_schema_depth or not ref.startswith("#/"):
                raise BadRequestError(f"format: $ref {ref!r} cannot be used in allOf")
            target: Any = self.root
            for part in ref[2:].split("/"):
                key = part.replace("~1", "/").replace("~0", "~")
                target = target.get(key) if isinstance(target, dict) else None
            if target is None:
                raise BadRequestError(f"format: $ref {ref!r} points at nothing")
            schema = target
        return schema

    def object(self, schema: dict[str, Any], depth: int) -> str:
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        if not isinstance(properties, dict):
            raise BadRequestError("format: properties must be an object")
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise BadRequestError("format: required must be a list of property names")
        extra = schema.get("additionalProperties")
        if not properties and extra in (None, True):
            return self.primitive("object")
        space = self.primitive("space")
        items = [
            (
                self.rule(
                    f'{gbnf.literal(json.dumps(name, ensure_ascii=False))} {space} ":" {space} '
                    + self.visit(sub, depth + 1)
                ),
                name in required,
            )
            for name, sub in properties.items()
        ]
        extra_kv = None
        if extra is True or isinstance(extra, dict):
            value = self.visit({} if extra is True else extra, depth + 1)
            extra_kv = self.rule(f'{self.primitive("string")} ":" {space} {value}')
        elif extra not in (None, False):
            raise BadRequestError("format: additionalProperties must be a boolean or a schema")
        return self.rule(f'"{{" {space} {self.members(items, extra_kv)} "}}" {space}')

    def members(self, items: list[tuple[str, bool]], extra_kv: str | None) -> str:
        """The members in order, each optional one optional, commas only between members;
        linear in the number of properties (a rule per position)."""
        space = self.primitive("space")
        tail = f'("," {space} {extra_kv})*' if extra_kv else ""
        after = [tail]  # after[k]: the members from position n-k on, one already written
        for kv, needed in reversed(items[1:]):
            step = f'"," {space} {kv}' if needed else f'("," {space} {kv})?'
            rest = after[-1]
            after.append(self.rule(f"{step} {rest}".strip()) if rest else step)
        after.append("")  # position 0 always comes first
        after.reverse()  # after[i]: from position i on
        first = f"({extra_kv} {tail})?" if extra_kv else ""
        for i in range(len(items) - 1, -1, -1):
            kv, needed = items[i]
            written = f"{kv} {after[i + 1]}".strip()
            if needed or not first:
                first = self.rule(written) if needed else self.rule(f"({written})?")
            else:
                first = self.rule(f"{written} | {first}")
        return first

    def array(self, schema: dict[str, Any], depth: int) -> str:
        space = self.primitive("space")
        tuple_items = schema.get("prefixItems")
        if tuple_items is None and isinstance(schema.get("items"), list):
            tuple_items = schema["items"]
        if tuple_items is not None:
            if not isinstance(tuple_items, list):
                raise BadRequestError("format: prefixItems must be a list of schemas")
            self.check_repeat(len(tuple_items), "prefixItems")
            names = [self.visit(s, depth + 1) for s in tuple_items]
            inner = f' "," {space} '.join(names)
            return self.rule(f'"[" {space} {inner} "]" {space}')
        low = self.repeat_count("minItems", schema.get("minItems", 0))
        high = schema.get("maxItems")
        high = None if high is None else self.repeat_count("maxItems", high)
        if high is not None and high < low:
            raise BadRequestError(f"format: maxItems {high} is below minItems {low}")
        if high == 0:
            return self.rule(f'"[" {space} "]" {space}')
        item = self.visit(schema.get("items", True), depth + 1)
        more = gbnf.repeat(
            f'"," {space} {item}', max(low - 1, 0), None if high is None else high - 1
        )
        body = f"{item} {more}".strip()
        if low == 0:
            body = f"({body})?"
        return self.rule(f'"[" {space} {body} "]" {space}')

    def string(self, schema: dict[str, Any]) -> str:
        space = self.primitive("space")
        if "pattern" in schema:
            pattern = schema["pattern"]
            if not isinstance(pattern, str):
                raise BadRequestError("format: pattern must be a string")
            content = gbnf.pattern_rule(
                pattern,
                max_depth=self.limits.max_schema_depth,
                check_repeat=self.check_repeat,
                add_rule=self.rule,
            )
            return self.rule(f'"\\"" {content} "\\"" {space}')
        fmt = schema.get("format")
        if fmt == "uuid":
            return self.primitive("uuid")
        if fmt in _STRING_FORMATS:
            return self.rule(f'"\\"" {self.primitive(fmt)} "\\"" {space}')
        if "minLength" in schema or "maxLength" in schema:
            low = self.repeat_count("minLength", schema.get("minLength", 0))
            high = schema.get("maxLength")
            high = None if high is None else self.repeat_count("maxLength", high)
            if high is not None and high < low:
                raise BadRequestError(f"format: maxLength {high} is below minLength {low}")
            chars = gbnf.repeat(self.primitive("char"), low, high)
            return self.rule(f'"\\"" {chars} "\\"" {space}'.replace("  ", " "))
        return self.primitive("string")


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
