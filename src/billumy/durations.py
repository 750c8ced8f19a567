"""Ollama-style durations (``keep_alive``): seconds as a number, or Go duration strings."""

from __future__ import annotations

import math
import re

from billumy.errors import BadRequestError

_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
FOREVER_S = 100 * 365 * 86400.0
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | float | int | None) -> float | None:
    """Seconds for ``value``; ``None`` when unset; negative means forever (``math.inf``)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadRequestError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        sign = -1.0 if text.startswith("-") else 1.0
        # One sign at most ("--5m", "-+1" are garbage); float() alone would take a second one.
        text = text[1:] if text[:1] in ("+", "-") else text
        if _NUMBER.fullmatch(text):
            seconds = sign * float(text)
        else:
            parts = _PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise BadRequestError(
                    f'invalid duration {value!r}: use seconds or a duration like "5m" or "1h30m"'
                )
            seconds = sign * sum(float(n) * _UNIT[u] for n, u in parts)
    if math.isnan(seconds):
        raise BadRequestError(f"invalid duration {value!r}")
    # Past a century (1e308, "99999999999999999999h") a duration means forever: no date
    # arithmetic downstream can overflow on it.
    return math.inf if seconds < 0 or seconds > FOREVER_S else seconds
