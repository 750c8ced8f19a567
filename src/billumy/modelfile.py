"""Ollama Modelfile parsing, validation and rendering.

Supports the instructions FROM, PARAMETER, SYSTEM, TEMPLATE and MESSAGE (case-insensitive), ``#``
comment lines, and values that are bare (rest of the line), ``"double quoted"`` (``\\"`` and
``\\\\`` are the only escapes; other backslashes are kept, as Ollama keeps them) or
``\"\"\"triple quoted\"\"\"`` (raw, may span lines). ``PARAMETER system <text>`` is accepted as a
synonym for SYSTEM, because Billumy's original Modelfile was written that way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from billumy.errors import BadRequestError

__all__ = [
    "Modelfile",
    "ModelfileError",
    "coerce_parameters",
    "parse_modelfile",
    "render_modelfile",
]


class ModelfileError(BadRequestError):
    """The Modelfile (or a parameters object) is malformed or uses something unsupported."""


@dataclass
class Modelfile:
    """A parsed Modelfile; ``parameters`` hold typed values and ``stop`` is a list."""

    from_: str | None
    system: str | None = None
    template: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)


_INT_PARAMS = (
    "num_ctx num_predict num_keep seed top_k repeat_last_n num_batch num_thread num_gpu mirostat"
)
_FLOAT_PARAMS = (
    "temperature top_p min_p typical_p repeat_penalty presence_penalty frequency_penalty"
    " mirostat_tau mirostat_eta tfs_z"
)
_INT_TEXT = re.compile(r"[+-]?\d+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_BOOL_TEXT = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}
_WORD = re.compile(r"\S+")
_ROLES = ("system", "user", "assistant", "tool")
_INSTRUCTIONS = ("FROM", "PARAMETER", "SYSTEM", "TEMPLATE", "MESSAGE")


def _bad(name: str, value: Any, expected: str) -> ModelfileError:
    shown = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(shown) > 80:
        shown = shown[:80] + "…"
    return ModelfileError(f'invalid value "{shown}" for parameter "{name}": expected {expected}')


# llama.cpp takes these as 32-bit integers; the seed as an unsigned one, where Ollama's -1
# (any negative, there) means a random seed.
_INT_RANGE = (-(2**31), 2**31 - 1)
_INT_RANGES = {
    "seed": (-1, 2**32 - 1),
    "mirostat": (0, 2),  # off, Mirostat 1.0 or 2.0: llama.cpp samples anything else as 0
    "repeat_last_n": (-1, 2**31 - 1),  # -1: the whole context
}
_INT_EXPECTED = {
    "seed": f"-1 (random) or an integer from 0 to {2**32 - 1}",
    "mirostat": "0 (off), 1 (Mirostat) or 2 (Mirostat 2.0)",
    "repeat_last_n": f"-1 (the whole context) or an integer from 0 to {2**31 - 1}",
}


def _to_int(name: str, value: Any) -> int:
    low, high = _INT_RANGES.get(name, _INT_RANGE)
    expected = _INT_EXPECTED.get(name, f"an integer from {low} to {high}")
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        # Digits past 40 are out of range anyway (and int() refuses thousands of them).
        number = int(value) if len(value) <= 40 else high + 1
    # Bools are ints in Python but not here; an int of any size is compared, not converted.
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    # JSON bodies may carry 1024.0 for an integer.
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    else:
        raise _bad(name, value, "an integer")
    if not low <= number <= high:
        raise _bad(name, value, expected)
    return number


# Sampling numbers llama.cpp reads without checking: out of these ranges they are either
# silently meaningless (mirostat 7 samples as 0) or poison the logits (a repeat penalty of 0
# divides by zero, a penalty of 1e308 times a count overflows to an infinity, and a softmax of
# infinities is NaN). Each: (lowest, highest, the lowest itself allowed, how it reads).
_FLOAT_RANGES: dict[str, tuple[float, float, bool, str]] = {
    "temperature": (0.0, math.inf, True, "a number from 0 up"),
    "top_p": (0.0, 1.0, True, "a number from 0 to 1"),
    "min_p": (0.0, 1.0, True, "a number from 0 to 1"),
    "typical_p": (0.0, 1.0, True, "a number from 0 to 1"),
    "tfs_z": (0.0, 1.0, True, "a number from 0 to 1"),
    "repeat_penalty": (0.0, 100.0, False, "a number above 0, at most 100"),
    "presence_penalty": (-2.0, 2.0, True, "a number from -2 to 2"),
    "frequency_penalty": (-2.0, 2.0, True, "a number from -2 to 2"),
    "mirostat_tau": (0.0, 100.0, True, "a number from 0 to 100"),
    "mirostat_eta": (0.0, 1.0, True, "a number from 0 to 1"),
}


def _to_float(name: str, value: Any) -> float:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not numeric and not (isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip())):
        raise _bad(name, value, "a number")
    try:
        number = float(value)
    except OverflowError:  # an integer of a thousand digits
        number = math.inf
    if not math.isfinite(number):
        raise _bad(name, value, "a finite number")
    low, high, low_allowed, expected = _FLOAT_RANGES.get(
        name, (-math.inf, math.inf, True, "a number")
    )
    if number > high or number < low or (number == low and not low_allowed):
        raise _bad(name, value, expected)
    return number


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOL_TEXT:
        return _BOOL_TEXT[value.strip().lower()]
    raise _bad(name, value, "true or false")


def _to_stop(name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _bad(name, value, "a string or a list of strings")


_CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    **dict.fromkeys(_INT_PARAMS.split(), _to_int),
    **dict.fromkeys(_FLOAT_PARAMS.split(), _to_float),
    "penalize_newline": _to_bool,
    "stop": _to_stop,
}


def _coerce(name: str, value: Any) -> Any:
    converter = _CONVERTERS.get(name)
    if converter is None:
        raise ModelfileError(f'unknown parameter "{name}"')
    return converter(name, value)


def coerce_parameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and type a parameters mapping (Modelfile text or JSON values).

    Numbers may be given as numbers or numeric strings, ``stop`` as a string or a list of
    strings. ``None`` values are dropped, as Ollama ignores null options. Unknown names and
    values of the wrong type raise :class:`ModelfileError`.
    """
    return {name: _coerce(name, value) for name, value in raw.items() if value is not None}


# ---------------------------------------------------------------------------------- parsing


class _Reader:
    """A cursor over the Modelfile text that knows its line number."""

    def __init__(self, text: str) -> None:
        self.text = text.removeprefix("\ufeff").replace("\r\n", "\n")
        self.pos = 0
        self.line = 1

    def advance(self, pos: int) -> None:
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos

    def line_end(self) -> int:
        end = self.text.find("\n", self.pos)
        return len(self.text) if end < 0 else end

    def skip_blanks(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def word(self, what: str) -> str:
        """Read the next whitespace-delimited word on the current line."""
        self.skip_blanks()
        match = _WORD.match(self.text, self.pos, self.line_end())
        if not match:
            raise ModelfileError(f"missing {what} on line {self.line}")
        self.pos = match.end()
        return match.group()

    def value(self, what: str) -> str:
        """Read a bare, quoted or triple-quoted value and move to the next line."""
        self.skip_blanks()
        start_line, text = self.line, self.text
        if text.startswith('"""', self.pos):
            end = text.find('"""', self.pos + 3)
            if end < 0:
                raise ModelfileError(f'unterminated """ for {what} on line {start_line}')
            value = text[self.pos + 3 : end]
            self.advance(end + 3)
        elif text.startswith('"', self.pos):
            value, end = _read_quoted(text, self.pos + 1)
            if end < 0:
                raise ModelfileError(f'unterminated " for {what} on line {start_line}')
            self.advance(end + 1)
        else:
            value = text[self.pos : self.line_end()].strip()
            if not value:
                raise ModelfileError(f"missing value for {what} on line {start_line}")
            self.advance(self.line_end())
        trailing = text[self.pos : self.line_end()].strip()
        if trailing:
            raise ModelfileError(f"unexpected text after quoted value on line {self.line}")
        self.advance(min(self.line_end() + 1, len(text)))
        return value


def _read_quoted(text: str, pos: int) -> tuple[str, int]:
    """Read a "..." body from ``pos``; return it and the closing quote's offset (-1 if none)."""
    out: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == "\\" and text[pos + 1 : pos + 2] in ('"', "\\"):
            out.append(text[pos + 1])
            pos += 2
        elif char == '"':
            return "".join(out), pos
        else:
            out.append(char)
            pos += 1
    return "", -1


def parse_modelfile(text: str) -> Modelfile:
    """Parse Modelfile text; raises :class:`ModelfileError` naming the problem and line."""
    reader = _Reader(text)
    mf = Modelfile(from_=None)
    while reader.pos < len(reader.text):
        reader.skip_blanks()
        rest = reader.text[reader.pos : reader.line_end()].strip()
        if not rest or rest.startswith("#"):
            reader.advance(min(reader.line_end() + 1, len(reader.text)))
            continue
        line, word = reader.line, reader.word("instruction")
        instruction = word.upper()
        if instruction not in _INSTRUCTIONS:
            raise ModelfileError(f'unsupported Modelfile instruction "{word}" on line {line}')
        _apply(mf, instruction, reader, line)
    if mf.from_ is None:
        raise ModelfileError("Modelfile has no FROM instruction")
    return mf


def _apply(mf: Modelfile, instruction: str, reader: _Reader, line: int) -> None:
    if instruction == "FROM":
        if mf.from_ is not None:
            raise ModelfileError(f"duplicate FROM instruction on line {line}")
        mf.from_ = reader.value("FROM")
    elif instruction == "SYSTEM":
        mf.system = reader.value("SYSTEM")
    elif instruction == "TEMPLATE":
        mf.template = reader.value("TEMPLATE")
    elif instruction == "MESSAGE":
        role = reader.word("message role").lower()
        if role not in _ROLES:
            raise ModelfileError(
                f'invalid message role "{role}" on line {line}: expected one of {", ".join(_ROLES)}'
            )
        mf.messages.append({"role": role, "content": reader.value("MESSAGE")})
    else:
        _apply_parameter(mf, reader.word("parameter name"), reader.value("PARAMETER"), line)


def _apply_parameter(mf: Modelfile, name: str, value: str, line: int) -> None:
    if name == "system":  # Billumy's original Modelfile set the system prompt this way
        mf.system = value
        return
    try:
        typed = _coerce(name, value)
    except ModelfileError as exc:
        raise ModelfileError(f"{exc.message} on line {line}") from None
    if name == "stop":  # stop may repeat; every other parameter keeps its last value
        mf.parameters.setdefault("stop", []).extend(typed)
    else:
        mf.parameters[name] = typed


# ---------------------------------------------------------------------------------- rendering


def _quote(value: str) -> str:
    """Write ``value`` so that :func:`parse_modelfile` reads back exactly the same string."""
    plain = value and value == value.strip() and "\n" not in value and not value.startswith('"')
    if plain:
        return value
    if '"""' not in value and not value.endswith('"'):
        return f'"""{value}"""'
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _format_parameter(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _quote(value) if isinstance(value, str) else repr(value)


def render_modelfile(mf: Modelfile) -> str:
    """Render ``mf`` as Modelfile text (for ``/api/show``); parses back to an equal Modelfile.

    A Modelfile without ``from_`` renders without a FROM line, which does not parse back.
    """
    lines = [f"FROM {_quote(mf.from_)}"] if mf.from_ is not None else []
    if mf.template is not None:
        lines.append(f"TEMPLATE {_quote(mf.template)}")
    if mf.system is not None:
        lines.append(f"SYSTEM {_quote(mf.system)}")
    for name, value in coerce_parameters(mf.parameters).items():
        for item in value if name == "stop" else [value]:
            lines.append(f"PARAMETER {name} {_format_parameter(item)}")
    for message in mf.messages:
        lines.append(f"MESSAGE {message['role']} {_quote(message['content'])}")
    return "\n".join(lines) + "\n"
