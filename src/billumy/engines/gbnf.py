"""GBNF text, written so that llama.cpp's grammar parser reads back exactly what was meant.

llama.cpp parses a grammar with recursive descent in native code: a literal it cannot read makes
it return no grammar (which llama-cpp-python then dereferences), and deep nesting overflows its
stack. So everything here escapes every character outside printable ASCII (and every one with a
meaning in GBNF) and writes repetitions as ``x{m,n}`` rather than nested optionals; the callers
bound the counts and the nesting (:mod:`billumy.engines.grammar`).

:func:`pattern_rule` turns a JSON-schema ``pattern`` (a regular expression) into a rule for the
JSON string that matches it: the characters a JSON string must escape (``"``, ``\\``, control
characters) are matched in their escaped form.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from billumy.errors import BadRequestError

MAX_CODEPOINT = 0x10FFFF
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _escape_char(c: str, safe: frozenset[str] | str) -> str:
    code = ord(c)
    if c in safe:
        return c
    if code < 0x100:
        return f"\\x{code:02X}"
    if code < 0x10000:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


_LITERAL_SAFE = _SAFE | frozenset(" !#$%&'()*+,-./:;<=>?@^_`{|}~")


def literal(text: str) -> str:
    """A GBNF literal matching ``text`` exactly; ``""`` for the empty string.

    Printable ASCII other than ``"``, ``\\``, ``[`` and ``]`` is written as is, everything else
    as ``\\xHH``, ``\\uHHHH`` or ``\\UHHHHHHHH``."""
    return '"' + "".join(_escape_char(c, _LITERAL_SAFE) for c in text) + '"'


def char_class(ranges: list[tuple[int, int]], *, negated: bool = False) -> str:
    """A GBNF character class (``[...]`` or ``[^...]``) of inclusive code point ranges, every
    character but letters and digits escaped."""
    parts = []
    for lo, hi in ranges:
        first = _escape_char(chr(lo), _SAFE)
        parts.append(first if lo == hi else f"{first}-{_escape_char(chr(hi), _SAFE)}")
    return "[" + ("^" if negated else "") + "".join(parts) + "]"


def repeat(expr: str, lo: int, hi: int | None) -> str:
    """``expr`` from ``lo`` to ``hi`` times (``None``: no upper bound), in GBNF's own
    repetition syntax (llama.cpp expands it without recursion)."""
    if hi is not None and hi == 0:
        return ""
    if (lo, hi) == (1, 1):
        return expr
    if (lo, hi) == (0, 1):
        suffix = "?"
    elif (lo, hi) == (0, None):
        suffix = "*"
    elif (lo, hi) == (1, None):
        suffix = "+"
    elif hi is None:
        suffix = f"{{{lo},}}"
    elif lo == hi:
        suffix = f"{{{lo}}}"
    else:
        suffix = f"{{{lo},{hi}}}"
    return f"({expr}){suffix}"


def json_escaped(c: str) -> str:
    """How one character appears inside a JSON string."""
    return json.dumps(c, ensure_ascii=False)[1:-1]


# ------------------------------------------------------------------------- sets of characters

Ranges = list[tuple[int, int]]


def _normalise(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _complement(ranges: Ranges) -> Ranges:
    out: Ranges = []
    start = 0
    for lo, hi in _normalise(ranges):
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= MAX_CODEPOINT:
        out.append((start, MAX_CODEPOINT))
    return out


def _subtract(ranges: Ranges, removed: Ranges) -> Ranges:
    keep = _complement(removed)
    out: Ranges = []
    for lo, hi in _normalise(ranges):
        for klo, khi in keep:
            a, b = max(lo, klo), min(hi, khi)
            if a <= b:
                out.append((a, b))
    return out


def _intersect(ranges: Ranges, other: Ranges) -> Ranges:
    return _subtract(ranges, _complement(other))


# Characters a JSON string cannot hold as they are: the quote, the backslash and C0 controls.
_JSON_SPECIAL: Ranges = [(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C)]
_SURROGATES: Ranges = [(0xD800, 0xDFFF)]


def json_char_set(ranges: Ranges) -> str:
    """A GBNF expression for one character of ``ranges`` as written inside a JSON string."""
    ranges = _subtract(_normalise(ranges), _SURROGATES)
    if not ranges:
        raise BadRequestError("format: a pattern has a character class that matches nothing")
    plain = _subtract(ranges, _JSON_SPECIAL)
    special = _intersect(ranges, _JSON_SPECIAL)
    options = []
    if plain:
        # A huge class (most of Unicode) is shorter written as what it leaves out.
        missing = _subtract(_complement(plain), _SURROGATES)
        if len(missing) < len(plain):
            options.append(char_class(missing, negated=True))
        else:
            options.append(char_class(plain))
    for lo, hi in special:
        options.extend(literal(json_escaped(chr(c))) for c in range(lo, hi + 1))
    return options[0] if len(options) == 1 else "(" + " | ".join(options) + ")"


# ----------------------------------------------------------------------- regular expressions

_DIGIT: Ranges = [(0x30, 0x39)]
_WORD: Ranges = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_SPACE: Ranges = [(0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x2028, 0x2029), (0xFEFF, 0xFEFF)]
_CLASSES = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
_CONTROL_ESCAPES = {"t": 0x09, "n": 0x0A, "v": 0x0B, "f": 0x0C, "r": 0x0D, "0": 0x00}
_DOT: Ranges = _complement([(0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029)])


@dataclass
class _Set:
    ranges: Ranges


@dataclass
class _Seq:
    items: list[_Node]


@dataclass
class _Alt:
    options: list[_Node]


@dataclass
class _Repeat:
    item: _Node
    lo: int
    hi: int | None


_Node = _Set | _Seq | _Alt | _Repeat


def _nullable(node: _Node) -> bool:
    if isinstance(node, _Set):
        return False
    if isinstance(node, _Seq):
        return all(_nullable(i) for i in node.items)
    if isinstance(node, _Alt):
        return any(_nullable(o) for o in node.options)
    return node.lo == 0 or _nullable(node.item)


class _PatternReader:
    """Recursive descent over the subset of ECMAScript regular expressions that JSON schemas
    use: literals, escapes, ``.``, classes, groups, ``|`` and quantifiers."""

    def __init__(self, pattern: str, *, max_depth: int, check_repeat: Callable[[int], None]):
        self.src = pattern
        self.pos = 0
        self.max_depth = max_depth
        self.check_repeat = check_repeat

    def fail(self, message: str) -> BadRequestError:
        return BadRequestError(f"format: pattern {self.src!r}, at {self.pos}: {message}")

    def peek(self) -> str:
        return self.src[self.pos] if self.pos < len(self.src) else ""

    def take(self) -> str:
        c = self.peek()
        self.pos += 1
        return c

    def alternation(self, depth: int) -> _Node:
        if depth > self.max_depth:
            raise self.fail(
                f"groups nest deeper than this server's limit of {self.max_depth} "
                "(BILLUMY_MAX_SCHEMA_DEPTH)"
            )
        options = [self.sequence(depth)]
        while self.peek() == "|":
            self.take()
            options.append(self.sequence(depth))
        return options[0] if len(options) == 1 else _Alt(options)

    def sequence(self, depth: int) -> _Node:
        items: list[_Node] = []
        while self.peek() not in ("", "|", ")"):
            atom = self.atom(depth)
            items.append(self.quantified(atom))
        return items[0] if len(items) == 1 else _Seq(items)

    def atom(self, depth: int) -> _Node:
        c = self.take()
        if c == "(":
            if self.src.startswith("?:", self.pos):
                self.pos += 2
            elif self.peek() == "?":
                raise self.fail("lookarounds, named groups and flags are not supported")
            inner = self.alternation(depth + 1)
            if self.take() != ")":
                raise self.fail("unbalanced parentheses")
            return inner
        if c == "[":
            return _Set(self.char_class())
        if c == ".":
            return _Set(_DOT)
        if c == "\\":
            return _Set(self.escape(in_class=False))
        if c in "^$":
            raise self.fail(f"{c} is supported only at the start (^) and the end ($)")
        if c in "*+?":
            raise self.fail(f"nothing to repeat before {c}")
        if c == "{" and self.quantifier_ahead(self.pos - 1):
            raise self.fail("nothing to repeat before {")
        return _Set([(ord(c), ord(c))])

    def quantifier_ahead(self, at: int) -> bool:
        end = self.src.find("}", at)
        if end < 0:
            return False
        body = self.src[at + 1 : end]
        lo, _, hi = body.partition(",")
        return lo.isascii() and lo.isdigit() and (not hi or (hi.isascii() and hi.isdigit()))

    def quantified(self, atom: _Node) -> _Node:
        c = self.peek()
        if c in ("*", "+", "?"):
            self.take()
            lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
        elif c == "{" and self.quantifier_ahead(self.pos):
            end = self.src.index("}", self.pos)
            body = self.src[self.pos + 1 : end]
            self.pos = end + 1
            low, comma, high = body.partition(",")
            lo = self.count(low)
            hi = lo if not comma else (self.count(high) if high else None)
            if hi is not None and hi < lo:
                raise self.fail(f"{{{body}}}: the maximum is below the minimum")
        else:
            return atom
        if self.peek() == "?":
            self.take()  # lazy: the same language once the whole string must match
        if self.peek() in ("*", "+", "?") or (
            self.peek() == "{" and self.quantifier_ahead(self.pos)
        ):
            raise self.fail("a quantifier cannot follow another")
        if (hi is None or hi > 1) and _nullable(atom):
            raise self.fail("a repeated part must not match the empty string")
        return _Repeat(atom, lo, hi)

    def count(self, digits: str) -> int:
        value = int(digits) if len(digits) <= 18 else 10**18
        self.check_repeat(value)
        return value

    def escape(self, *, in_class: bool) -> Ranges:
        c = self.take()
        if not c:
            raise self.fail("the pattern ends with a backslash")
        if c.lower() in _CLASSES:
            ranges = _CLASSES[c.lower()]
            return _complement(ranges) if c.isupper() else list(ranges)
        if c in _CONTROL_ESCAPES:
            return [(_CONTROL_ESCAPES[c],) * 2]
        if c == "b" and in_class:
            return [(0x08, 0x08)]
        if c in "xu":
            width = 2 if c == "x" else 4
            digits = self.src[self.pos : self.pos + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self.fail(f"\\{c} needs {width} hexadecimal digits")
            self.pos += width
            code = int(digits, 16)
            return [(code, code)]
        if c.isascii() and c.isalnum():
            raise self.fail(f"\\{c} is not supported (word boundaries, back-references)")
        return [(ord(c), ord(c))]

    def char_class(self) -> Ranges:
        negated = self.peek() == "^"
        if negated:
            self.take()
        ranges: Ranges = []
        first = True
        while True:
            c = self.take()
            if not c:
                raise self.fail("unbalanced square brackets")
            if c == "]" and not first:
                break
            first = False
            low = self.escape(in_class=True) if c == "\\" else [(ord(c), ord(c))]
            if self.peek() == "-" and self.src[self.pos + 1 : self.pos + 2] not in ("]", ""):
                self.take()
                d = self.take()
                high = self.escape(in_class=True) if d == "\\" else [(ord(d), ord(d))]
                if len(low) != 1 or len(high) != 1 or low[0][0] != low[0][1]:
                    raise self.fail("a range in a class needs single characters at both ends")
                if high[0][0] < low[0][0]:
                    raise self.fail("a range in a class is out of order")
                ranges.append((low[0][0], high[0][1]))
            else:
                ranges.extend(low)
        return _complement(ranges) if negated else _normalise(ranges)


def pattern_rule(
    pattern: str,
    *,
    max_depth: int,
    check_repeat: Callable[[int], None],
    add_rule: Callable[[str], str],
) -> str:
    """A GBNF expression for the *content* of a JSON string that matches ``pattern`` (which
    must start with ``^`` and end with ``$``). ``check_repeat`` raises for a count over the
    limit; ``add_rule`` names a rule body (the same body, the same name)."""
    escaped_end = (len(pattern) - 1 - len(pattern[:-1].rstrip("\\"))) % 2 == 1
    if not (pattern.startswith("^") and pattern.endswith("$")) or escaped_end:
        raise BadRequestError(f"format: pattern {pattern!r} must start with ^ and end with $")
    reader = _PatternReader(pattern, max_depth=max_depth, check_repeat=check_repeat)
    reader.pos = 1
    reader.src = pattern[:-1]
    node = reader.alternation(0)
    if reader.pos != len(reader.src):
        raise reader.fail("unbalanced parentheses")
    return _emit(node, add_rule)


def _emit(node: _Node, add_rule: Callable[[str], str]) -> str:
    if isinstance(node, _Set):
        body = json_char_set(node.ranges)
        # Big sets (., negated classes) recur: named once.
        return add_rule(body) if len(body) > 40 else body
    if isinstance(node, _Seq):
        parts = [_emit(i, add_rule) for i in node.items]
        return " ".join(p for p in parts if p) or '""'
    if isinstance(node, _Alt):
        return "(" + " | ".join(_emit(o, add_rule) or '""' for o in node.options) + ")"
    inner = _emit(node.item, add_rule)
    return repeat(inner, node.lo, node.hi) or '""'
