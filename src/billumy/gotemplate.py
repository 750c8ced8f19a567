"""A subset of Go's ``text/template``: enough to render Ollama Modelfile TEMPLATEs.

Supported: text, ``{{ }}`` actions with ``{{-``/``-}}`` trim markers, comments, fields, ``.``,
``$``, variables (``:=``/``=``), ``if``/``else if``/``else``, ``range`` (with ``else``, ``break``,
``continue``), ``with``/``else``, pipelines, parenthesised sub-expressions and the functions in
``_FUNCS``. Unlike Go, a missing field is ``None`` and renders as "" (Ollama passes structs, whose
absent fields are zero values, so templates rely on ``{{ if .System }}``). Not supported:
``define``/``template``/``block``, methods, rune literals; these raise :class:`TemplateError`.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from billumy.errors import BadRequestError

__all__ = ["Template", "TemplateError", "parse", "render"]


class TemplateError(BadRequestError):
    """The template is malformed or unsupported, or failed while rendering."""


class _Fail(Exception):
    """A failure inside a function; the evaluator adds the position and re-raises it."""


class _Break(Exception):
    """``{{break}}``: leaves the innermost range."""


class _Continue(Exception):
    """``{{continue}}``: starts the next iteration of the innermost range."""


class _Tok(NamedTuple):
    kind: str  # text open close ident field var chain str num decl = | ( ) , eof
    val: Any
    pos: int


_SPACE = " \t\r\n"
_STR = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_RAW = re.compile(r"`[^`]*`")
_NAMES = re.compile(r"(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUM = re.compile(r"[+-]?(?:0[xXoObB][0-9a-fA-F_]+|(?:\d[\d_]*\.?[\d_]*|\.\d+)(?:[eE][+-]?\d+)?)")
_INT = re.compile(r"[+-]?(?:0[xXoObB][0-9a-fA-F_]+|\d[\d_]*)")
_ESC = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.S)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_ESCAPES.update({"\\": "\\", '"': '"', "'": "'"})
_LITERALS: dict[str, Any] = {"true": True, "false": False, "nil": None}
_UNSUPPORTED = ("define", "template", "block")
_MISSING: Any = object()  # "no piped value" marker, distinct from None
# Templates come with requests and run in the engine process: a range in a range over a long
# conversation must end with an error, not hold the engine for minutes.
MAX_STEPS = 500_000
MAX_OUTPUT_CHARS = 32 * 1024 * 1024


class OutputTooLongError(TemplateError):
    """The output passed the ``max_chars`` its caller allowed (a prompt that cannot fit)."""


def _err(src: str, pos: int, msg: str) -> TemplateError:
    line = src.count("\n", 0, pos) + 1
    col = pos - (src.rfind("\n", 0, pos) + 1) + 1
    return TemplateError(f"template: line {line}, column {col}: {msg}")


def _skip_space(src: str, i: int) -> int:
    while i < len(src) and src[i] in _SPACE:
        i += 1
    return i


# ---------------------------------------------------------------------------------- lexer


def _lex(src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos, trim_next = 0, False
    while True:
        start = src.find("{{", pos)
        text = src[pos:] if start < 0 else src[pos:start]
        if trim_next:
            text = text.lstrip(_SPACE)
        # Go only treats "{{-" as a trim marker when a space follows ("{{-3}}" is a number).
        left_trim = (
            start >= 0
            and src.startswith("-", start + 2)
            and _skip_space(src, start + 3) > start + 3
        )
        if left_trim:
            text = text.rstrip(_SPACE)
        if text:
            toks.append(_Tok("text", text, pos))
        if start < 0:
            break
        inner = start + (3 if left_trim else 2)
        if src.startswith("/*", _skip_space(src, inner)):
            pos, trim_next = _lex_comment(src, _skip_space(src, inner), start)
        else:
            toks.append(_Tok("open", None, start))
            pos, trim_next = _lex_action(src, inner, toks, start)
    toks.append(_Tok("eof", None, len(src)))
    return toks


def _lex_comment(src: str, i: int, start: int) -> tuple[int, bool]:
    end = src.find("*/", i + 2)
    if end < 0:
        raise _err(src, start, "unclosed comment")
    k = _skip_space(src, end + 2)
    if src.startswith("}}", k):
        return k + 2, False
    if src.startswith("-}}", k) and k > end + 2:
        return k + 3, True
    raise _err(src, start, "comment must end the action")


def _lex_action(src: str, i: int, toks: list[_Tok], start: int) -> tuple[int, bool]:
    while True:
        i = _skip_space(src, i)
        if i >= len(src):
            raise _err(src, start, "unclosed action (missing }})")
        if src.startswith("}}", i) or (src.startswith("-}}", i) and src[i - 1] in _SPACE):
            toks.append(_Tok("close", None, i))
            trim = src[i] == "-"
            return i + (3 if trim else 2), trim
        tok, i = _lex_token(src, i)
        toks.append(tok)
        names, end = _names_at(src, i)
        if tok.kind == ")" and names:  # (pipeline).Field
            toks.append(_Tok("chain", names, i))
            i = end


def _names_at(src: str, i: int) -> tuple[tuple[str, ...], int]:
    """Read a field chain such as ``.A.B`` at ``i``; ``((), i)`` when there is none."""
    m = _NAMES.match(src, i)
    return (tuple(m.group()[1:].split(".")), m.end()) if m else ((), i)


def _lex_token(src: str, i: int) -> tuple[_Tok, int]:
    c = src[i]
    if src.startswith(":=", i):
        return _Tok("decl", None, i), i + 2
    if c in "=|(),":
        return _Tok(c, None, i), i + 1
    if c in '"`':
        m = (_STR if c == '"' else _RAW).match(src, i)
        if not m:
            raise _err(src, i, "unterminated quoted string")
        try:
            val = _unescape(m.group()[1:-1]) if c == '"' else m.group()[1:-1]
        except _Fail as exc:
            raise _err(src, i, str(exc)) from None
        return _Tok("str", val, i), m.end()
    if c == "$":
        end = i + 1
        while end < len(src) and (src[end].isalnum() or src[end] == "_"):
            end += 1
        names, after = _names_at(src, end)
        return _Tok("var", (src[i:end], names), i), after
    if c == "." and not src[i + 1 : i + 2].isdigit():
        names, end = _names_at(src, i)
        return _Tok("field", names, i), max(end, i + 1)  # no names: "." itself
    if c in "+-.0123456789" and (m := _NUM.match(src, i)):
        end = m.end()
        if end < len(src) and (src[end].isalnum() or src[end] in "._"):
            raise _err(src, i, f"bad number syntax: {src[i : end + 1]!r}")
        return _Tok("num", _number(src, i, m.group()), i), end
    if m := _IDENT.match(src, i):
        return _Tok("ident", m.group(), i), m.end()
    raise _err(src, i, f"unexpected {c!r} in action")


def _number(src: str, pos: int, text: str) -> int | float:
    try:
        if _INT.fullmatch(text):
            digits = text.lstrip("+-")
            # Go reads a leading 0 as octal ("010" == 8); Python's base 0 rejects it.
            return int(text, 8 if digits[0] == "0" and digits[1:2].isdigit() else 0)
        return float(text)
    except ValueError:
        raise _err(src, pos, f"bad number syntax: {text!r}") from None


def _unescape(body: str) -> str:
    def one(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc[0] in "xuU":
            return chr(int(esc[1:], 16))
        if len(esc) == 3:
            return chr(int(esc, 8))
        if esc in _ESCAPES:
            return _ESCAPES[esc]
        raise _Fail(f"unknown escape sequence \\{esc}")

    try:
        return _ESC.sub(one, body)
    except ValueError:
        raise _Fail("invalid escape sequence") from None


# ---------------------------------------------------------------------------------- nodes


@dataclass
class _Field:  # .A.B on dot; an empty chain is "." itself
    names: tuple[str, ...]


@dataclass
class _Var:
    name: str
    names: tuple[str, ...]


@dataclass
class _Lit:
    value: Any


@dataclass
class _Func:
    name: str
    pos: int


@dataclass
class _Sub:  # (pipeline).A.B
    pipe: _Pipe
    names: tuple[str, ...]


_Operand = _Field | _Var | _Lit | _Func | _Sub


@dataclass
class _Pipe:
    decls: list[str]
    assign: bool
    cmds: list[list[_Operand]]
    pos: int


@dataclass
class _Control:  # if / with / range
    kind: str
    pipe: _Pipe
    body: list[_Node]
    alt: list[_Node]


@dataclass
class _Loop:  # break / continue
    kind: str


_Node = str | _Pipe | _Control | _Loop  # text, action, control, break/continue


# ---------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, src: str) -> None:
        self.src, self.toks, self.i = src, _lex(src), 0
        self.scope: list[str] = ["$"]  # variables visible here, checked at parse time like Go
        self.loops = 0

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def expect(self, kind: str, context: str) -> _Tok:
        tok = self.next()
        if tok.kind != kind:
            raise self.fail(tok, f"unexpected {_describe(tok)} in {context}")
        return tok

    def fail(self, tok: _Tok, msg: str) -> TemplateError:
        return _err(self.src, tok.pos, msg)

    def nodes(self, stops: tuple[str, ...], opener: _Tok | None) -> tuple[list[_Node], str]:
        """Parse until EOF (top level) or one of ``stops`` (consumed, its ``}}`` is not)."""
        out: list[_Node] = []
        while True:
            tok = self.next()
            if tok.kind == "text":
                out.append(tok.val)
            elif tok.kind == "eof":
                if opener is None:
                    return out, "eof"
                raise self.fail(opener, f"{{{{{opener.val}}}}} has no matching {{{{end}}}}")
            else:
                word = self.peek().val if self.peek().kind == "ident" else None
                if word in ("end", "else"):
                    if word not in stops:
                        raise self.fail(self.peek(), f"unexpected {{{{{word}}}}}")
                    self.next()
                    return out, word
                out.append(self.action(word))

    def action(self, word: str | None) -> _Node:
        kw = self.peek()
        if word in ("if", "with", "range"):
            return self.control(self.next())
        if word in ("break", "continue"):
            if not self.loops:
                raise self.fail(kw, f"{{{{{word}}}}} outside {{{{range}}}}")
            self.next()
            self.expect("close", word)
            return _Loop(word)
        if word in _UNSUPPORTED:
            raise self.fail(kw, f"{{{{{word}}}}} is not supported")
        pipe = self.pipeline("command")
        self.expect("close", "command")
        return pipe

    def control(self, opener: _Tok) -> _Control:
        kind, mark = opener.val, len(self.scope)
        pipe = self.pipeline(kind)
        self.expect("close", kind)
        inner = len(self.scope)
        self.loops += kind == "range"
        body, stop = self.nodes(("else", "end"), opener)
        self.loops -= kind == "range"
        del self.scope[inner:]
        alt: list[_Node] = []
        if stop == "else" and kind != "range" and self.peek().val == kind:
            alt = [self.control(self.next())]  # "else if" shares the outer {{end}}
        elif stop == "else":
            self.expect("close", "else")
            alt, _ = self.nodes(("end",), opener)
            self.expect("close", "end")
        else:
            self.expect("close", "end")
        del self.scope[mark:]
        return _Control(kind, pipe, body, alt)

    def pipeline(self, context: str) -> _Pipe:
        start = self.peek()
        decls, assign = self.declarations(context)
        cmds = [self.command(context)]
        while self.peek().kind == "|":
            self.next()
            cmds.append(self.command(context))
        if not assign:
            self.scope.extend(decls)
        return _Pipe(decls, assign, cmds, start.pos)

    def declarations(self, context: str) -> tuple[list[str], bool]:
        first, op = self.peek(), self.peek(1)
        if first.kind != "var" or first.val[1]:
            return [], False
        names = [first.val[0]]
        if op.kind == "," and context == "range" and self.peek(2).kind == "var":
            names.append(self.peek(2).val[0])
            op = self.peek(3)
        if op.kind not in ("decl", "="):
            if op.kind == ",":
                raise self.fail(op, f"too many declarations in {context}")
            return [], False
        if op.kind == "=":
            if context == "range":
                raise self.fail(op, "range cannot assign to variables; use :=")
            if names[0] not in self.scope:
                raise self.fail(first, f"undefined variable {names[0]}")
        self.i += 2 * len(names)
        return names, op.kind == "="

    def command(self, context: str) -> list[_Operand]:
        args: list[_Operand] = []
        while self.peek().kind not in ("close", "|", ")", "eof"):
            args.append(self.operand())
        if not args:
            raise self.fail(self.peek(), f"missing value for {context}")
        return args

    def operand(self) -> _Operand:
        tok = self.next()
        if tok.kind == "field":
            return _Field(tok.val)
        if tok.kind == "var":
            if tok.val[0] not in self.scope:
                raise self.fail(tok, f"undefined variable {tok.val[0]}")
            return _Var(*tok.val)
        if tok.kind in ("str", "num"):
            return _Lit(tok.val)
        if tok.kind == "ident" and tok.val in _LITERALS:
            return _Lit(_LITERALS[tok.val])
        if tok.kind == "ident":
            if tok.val not in _FUNCS:
                raise self.fail(tok, f'function "{tok.val}" not defined')
            return _Func(tok.val, tok.pos)
        if tok.kind == "(":
            pipe = self.pipeline("parenthesized pipeline")
            self.expect(")", "parenthesized pipeline")
            chain = self.next().val if self.peek().kind == "chain" else ()
            return _Sub(pipe, chain)
        raise self.fail(tok, f"unexpected {_describe(tok)} in operand")


def _describe(tok: _Tok) -> str:
    names = {"close": '"}}"', "eof": "end of template", "open": '"{{"', "decl": '":="'}
    return names.get(tok.kind, repr(tok.val) if tok.val is not None else repr(tok.kind))


# ---------------------------------------------------------------------------------- evaluator


class _Exec:
    def __init__(self, src: str, root: Any, max_steps: int, max_chars: int | None) -> None:
        self.src = src
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.out: list[str] = []
        self.size = 0
        self.steps = 0
        self.max_steps = max_steps
        self.max_chars = max_chars

    def emit(self, text: str) -> None:
        self.size += len(text)
        if self.max_chars is not None and self.size > self.max_chars:
            raise OutputTooLongError(f"template: the output is over {self.max_chars} characters")
        if self.size > MAX_OUTPUT_CHARS:
            raise TemplateError(
                f"template: the output is over {MAX_OUTPUT_CHARS} characters (loops within loops?)"
            )
        self.out.append(text)

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise TemplateError(
                f"template: rendering took over {self.max_steps} steps (loops within loops?)"
            )

    def walk(self, nodes: list[_Node], dot: Any) -> None:
        for node in nodes:
            self.step()
            if isinstance(node, str):
                self.emit(node)
            elif isinstance(node, _Pipe):
                value = self.pipe(node, dot)
                if not node.decls:  # Go prints nothing for a declaration
                    self.emit(_go_str(value))
            elif isinstance(node, _Loop):
                raise _Break() if node.kind == "break" else _Continue()
            else:
                self.control(node, dot)

    def control(self, node: _Control, dot: Any) -> None:
        mark = len(self.vars)
        try:
            value = self.pipe(node.pipe, dot, declare=node.kind != "range")
            if node.kind == "range":
                self.iterate(node, value, dot, mark)
            elif _truthy(value):
                self.walk(node.body, value if node.kind == "with" else dot)
            else:
                self.walk(node.alt, dot)
        finally:
            del self.vars[mark:]  # variables live until the {{end}} of their control

    def iterate(self, node: _Control, value: Any, dot: Any, mark: int) -> None:
        if value is None:
            items: list[tuple[Any, Any]] = []
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, Mapping):
            items = _sorted_items(value)
        else:
            raise _err(
                self.src,
                node.pipe.pos,
                f"range can't iterate over {_go_type(value)} {_go_str(value)!r}",
            )
        if not items:
            self.walk(node.alt, dot)
        for key, elem in items:
            self.step()
            del self.vars[mark:]
            decls = node.pipe.decls
            self.vars.extend(zip(decls, [elem] if len(decls) == 1 else [key, elem], strict=False))
            try:
                self.walk(node.body, elem)
            except _Break:
                break
            except _Continue:
                continue

    def pipe(self, pipe: _Pipe, dot: Any, *, declare: bool = True) -> Any:
        value = _MISSING
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value, pipe.pos)
        if declare and pipe.decls:
            name = pipe.decls[0]
            if pipe.assign:
                self.vars[self.find(name, pipe.pos)] = (name, value)
            else:
                self.vars.append((name, value))
        return value

    def find(self, name: str, pos: int) -> int:
        # Parse-time checks miss one case: a range's variables used in its {{else}}.
        for index in range(len(self.vars) - 1, -1, -1):
            if self.vars[index][0] == name:
                return index
        raise _err(self.src, pos, f"undefined variable {name}")

    def command(self, cmd: list[_Operand], dot: Any, final: Any, pos: int) -> Any:
        head = cmd[0]
        try:
            if isinstance(head, _Func):
                return self.call(head.name, cmd[1:], dot, final, pos)
            if len(cmd) > 1 or final is not _MISSING:
                raise _Fail("can't give argument to non-function")
            return self.arg(head, dot, pos)
        except _Fail as exc:
            raise _err(self.src, pos, str(exc)) from None

    def call(self, name: str, nodes: list[_Operand], dot: Any, final: Any, pos: int) -> Any:
        if final is not _MISSING:
            nodes = [*nodes, _Lit(final)]
        fn, lo, hi = _FUNCS[name]
        if not lo <= len(nodes) <= (hi if hi >= 0 else len(nodes)):
            raise _Fail(f"wrong number of args for {name}: got {len(nodes)}")
        if name in ("and", "or"):  # short-circuit, as Go >= 1.18 does
            value = None
            for node in nodes:
                value = self.arg(node, dot, pos)
                if _truthy(value) == (name == "or"):
                    break
            return value
        return fn(*(self.arg(node, dot, pos) for node in nodes))

    def arg(self, node: _Operand, dot: Any, pos: int) -> Any:
        if isinstance(node, _Lit):
            return node.value
        if isinstance(node, _Field):
            return _walk_fields(dot, node.names)
        if isinstance(node, _Var):
            return _walk_fields(self.vars[self.find(node.name, pos)][1], node.names)
        if isinstance(node, _Func):  # a bare function name as an argument is a niladic call
            return self.command([node], dot, _MISSING, node.pos)
        return _walk_fields(self.pipe(node.pipe, dot), node.names)


def _walk_fields(value: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        # Missing keys and fields of non-maps are None: Ollama's structs have zero values there.
        value = value.get(name) if isinstance(value, Mapping) else None
    return value


# ---------------------------------------------------------------------------------- values


def _truthy(value: Any) -> bool:
    return bool(value)


_GO_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "bool"),
    (int, "int"),
    (float, "float64"),
    (str, "string"),
    (Mapping, "map"),
    ((list, tuple), "slice"),
    (type(None), "nil"),
)


def _go_type(value: Any) -> str:
    """Go's name for the type of ``value``, for error messages and printf's %!verb(type=...)."""
    return next((name for cls, name in _GO_TYPES if isinstance(value, cls)), type(value).__name__)


def _kind(value: Any) -> str:
    kind = _go_type(value)
    return "number" if kind in ("int", "float64") else kind


def _sorted_items(mapping: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    try:
        return sorted(mapping.items(), key=lambda kv: kv[0])  # Go ranges maps in key order
    except TypeError:
        return list(mapping.items())


def _go_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, Mapping):
        pairs = (f"{_go_str(k)}:{_go_str(v)}" for k, v in _sorted_items(value))
        return "map[" + " ".join(pairs) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_go_str(v) for v in value) + "]"
    return str(value)


def _go_float(value: float) -> str:
    """Format like Go's ``%v`` (strconv 'g', shortest): exponent form below 1e-4 or from 1e6."""
    if math.isnan(value) or math.isinf(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign, digit_tuple, exp = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exp)  # digits before the decimal point
    prefix = "-" if sign else ""
    if point - 1 < -4 or point - 1 >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'+' if point > 0 else '-'}{abs(point - 1):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    whole, frac = digits[:point].ljust(point, "0"), digits[point:]
    return prefix + whole + ("." + frac if frac else "")


def _eq(first: Any, *others: Any) -> bool:
    # Values of different kinds are simply unequal (Go would raise for some of these).
    return any(_kind(first) == _kind(o) and first == o for o in others)


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        if _kind(a) != _kind(b) or _kind(a) not in ("number", "string"):
            raise _Fail(f"incompatible types for comparison: {_go_type(a)} and {_go_type(b)}")
        return op(a, b)

    return compare


def _len(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, (str, list, tuple, Mapping)):
        return len(value)
    raise _Fail(f"len of type {_go_type(value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, (list, tuple, str)):
            if not _is_int(key) or not 0 <= key < len(value):
                raise _Fail(f"error calling index: index out of range: {_go_str(key)}")
            value = value[key]
        else:
            raise _Fail(f"can't index item of type {_go_type(value)}")
    return value


def _slice(value: Any, *bounds: Any) -> Any:
    if not isinstance(value, (list, tuple, str)):
        raise _Fail(f"can't slice item of type {_go_type(value)}")
    limit = 2 if isinstance(value, str) else 3  # the 3-index (capacity) form is for slices only
    if len(bounds) > limit or not all(map(_is_int, bounds)):
        raise _Fail("error calling slice: invalid slice indices")
    start = bounds[0] if bounds else 0
    end = bounds[1] if len(bounds) > 1 else len(value)
    cap = bounds[2] if len(bounds) > 2 else len(value)
    if not 0 <= start <= end <= cap <= len(value):
        raise _Fail(f"error calling slice: index out of range: {start}:{end}")
    return value[start:end]


def _print(*args: Any) -> str:
    # fmt.Sprint: a space goes between operands only when neither is a string.
    out = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_go_str(arg))
    return "".join(out)


_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d*))?(.?)", re.S)


def _printf(fmt: Any, *args: Any) -> str:
    if not isinstance(fmt, str):
        raise _Fail("printf format must be a string")
    rest = list(args)

    def convert(m: re.Match[str]) -> str:
        flags, width, prec, verb = m.groups()
        if verb == "%":
            return "%"
        if not verb:
            return "%!(NOVERB)"
        if not rest:
            return f"%!{verb}(MISSING)"
        if len(width) > 4 or len(prec or "") > 4:  # no multi-megabyte padding from a template
            raise _Fail("printf width or precision too large")
        spec = "%" + flags + width + ("." + prec if prec is not None else "")
        arg = rest.pop(0)
        try:
            return _format_one(spec, verb, arg)
        except (ValueError, OverflowError):  # e.g. %c of a number that is no code point
            return f"%!{verb}({_go_type(arg)}={_go_str(arg)})"

    out = _VERB.sub(convert, fmt)
    if rest:
        out += "%!(EXTRA " + ", ".join(f"{_go_type(a)}={_go_str(a)}" for a in rest) + ")"
    return out


def _format_one(spec: str, verb: str, arg: Any) -> str:
    # Python's printf-style operator shares Go's flags, width and precision syntax.
    if verb in "sv" or (verb == "t" and isinstance(arg, bool)):
        return (spec + "s") % _go_str(arg)
    if verb == "q":  # JSON string syntax is close to Go's strconv.Quote
        return (spec + "s") % json.dumps(_go_str(arg), ensure_ascii=False)
    if verb in "dxXoc" and _is_int(arg):
        return (spec + verb) % int(arg)
    if verb in "eEfFgG" and _kind(arg) == "number":
        return (spec + verb) % float(arg)
    return f"%!{verb}({_go_type(arg)}={_go_str(arg)})"


def _json(value: Any) -> str:
    """Ollama's ``json``: compact encoding with Go's HTML-safe escapes."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _Fail(f"error calling json: {exc}") from None
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


_FUNCS: dict[str, tuple[Callable[..., Any], int, int]] = {  # name: (function, min, max args)
    "and": (_truthy, 1, -1),  # and/or are evaluated lazily in _Exec.call
    "or": (_truthy, 1, -1),
    "not": (lambda v: not _truthy(v), 1, 1),
    "eq": (_eq, 2, -1),
    "ne": (lambda a, b: not _eq(a, b), 2, 2),
    "lt": (_ordered(operator.lt), 2, 2),
    "le": (_ordered(operator.le), 2, 2),
    "gt": (_ordered(operator.gt), 2, 2),
    "ge": (_ordered(operator.ge), 2, 2),
    "len": (_len, 1, 1),
    "index": (_index, 1, -1),
    "slice": (_slice, 1, 4),
    "print": (_print, 0, -1),
    "printf": (_printf, 1, -1),
    "json": (_json, 1, 1),
    "toJson": (_json, 1, 1),
}


# ---------------------------------------------------------------------------------- API


class Template:
    """A parsed template; immutable, so one instance may render concurrently."""

    def __init__(self, source: str, nodes: list[_Node]) -> None:
        self.source = source
        self._nodes = nodes

    def render(
        self, data: Mapping[str, Any], *, max_steps: int = MAX_STEPS, max_chars: int | None = None
    ) -> str:
        """Execute the template with ``data`` as both ``.`` and ``$``: a :class:`TemplateError`
        after ``max_steps`` steps (at most :data:`MAX_STEPS`), an :class:`OutputTooLongError`
        once the output passes ``max_chars``."""
        run = _Exec(self.source, data, min(max_steps, MAX_STEPS), max_chars)
        try:
            run.walk(self._nodes, data)
        except RecursionError:
            raise TemplateError("template: nested too deeply") from None
        return "".join(run.out)


def parse(template: str) -> Template:
    """Compile ``template``; raises :class:`TemplateError` naming the problem and its line."""
    try:
        nodes, _ = _Parser(template).nodes((), None)
    except RecursionError:
        raise TemplateError("template: nested too deeply") from None
    return Template(template, nodes)


def render(
    template: str,
    data: Mapping[str, Any],
    *,
    max_steps: int = MAX_STEPS,
    max_chars: int | None = None,
) -> str:
    """Parse and render in one step (prefer :func:`parse` once for templates used often)."""
    return parse(template).render(data, max_steps=max_steps, max_chars=max_chars)
