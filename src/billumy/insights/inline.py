"""A budget for inline JSON data, checked on the raw bytes before they are parsed.

A request body is parsed into Python objects whole, and a Python object costs many times its
JSON text: the 50 MiB a data route accepts, written as ``[{},{},...]``, is 17 million dicts
(about a gigabyte) before :func:`billumy.insights.data.from_records` could count its rows.
So the bytes are counted first: the objects and lists in them (a row each, in records) and
the values (a cell each). Counting ``{``, ``[`` and ``,`` over the bytes is a C-speed upper
bound; only a body whose bound is over the limits is scanned again with its strings left
out (braces and commas inside strings are text), one string at a time so that the scan
hands the interpreter to the event loop as it goes.
"""

from __future__ import annotations

import re

from billumy.errors import PayloadTooLargeError
from billumy.insights.sandbox import Limits

__all__ = ["VALUE_BYTES", "check_inline_json"]

# The least a parsed JSON value holds in memory: its slot in a list or dict (8 bytes) and a
# float object (24); small ints and one-character strings are shared, but every row's dict is
# more. Inline data may hold max_decoded_bytes / VALUE_BYTES values.
VALUE_BYTES = 32
# Objects and lists of the request itself around the data: the body, ``data`` in records or
# columns form, ``columns`` and ``mask``.
_OWN_CONTAINERS = 4
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _counts(raw: bytes) -> tuple[int, int]:
    """Objects and lists, and values, in ``raw`` counting the bytes of strings too."""
    containers = raw.count(b"{") + raw.count(b"[")
    return containers, raw.count(b",") + containers


def _counts_outside_strings(raw: bytes, containers: int, values: int) -> tuple[int, int]:
    """``_counts(raw)`` less the braces, brackets and commas inside strings."""
    for match in _STRING.finditer(raw):
        text = match.group()
        inner, commas = text.count(b"{") + text.count(b"["), text.count(b",")
        containers -= inner
        values -= inner + commas
    return containers, values


def check_inline_json(raw: bytes, limits: Limits) -> None:
    """413 when the JSON ``raw`` holds more objects and lists than ``limits.max_rows`` rows
    (beside the request's own few) or more values than ``max_decoded_bytes / VALUE_BYTES``;
    nothing is parsed. Malformed JSON passes: the parser that follows says what is wrong."""
    max_containers = limits.max_rows + _OWN_CONTAINERS
    max_values = limits.max_decoded_bytes // VALUE_BYTES
    containers, values = _counts(raw)
    if containers <= max_containers and values <= max_values:
        return
    containers, values = _counts_outside_strings(raw, containers, values)
    if containers > max_containers:
        raise PayloadTooLargeError(
            f"the data holds more JSON objects and lists ({containers}, the request's own "
            f"included) than the {limits.max_rows} rows allowed (max_dataset_rows); it was "
            "not read"
        )
    if values > max_values:
        raise PayloadTooLargeError(
            f"the data holds about {values} JSON values, which would take about "
            f"{values * VALUE_BYTES} bytes once read; at most {limits.max_decoded_bytes} are "
            f"allowed (max_dataset_decoded_bytes); it was not read: send a file instead"
        )
