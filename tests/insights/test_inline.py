"""The budget of inline JSON data, counted on the bytes before anything is parsed."""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest

from billumy.errors import PayloadTooLargeError
from billumy.insights.inline import VALUE_BYTES, check_inline_json
from billumy.insights.sandbox import Limits

MiB = 1024 * 1024


def body(data: object, **fields: object) -> bytes:
    return json.dumps({"question": "total?", "data": data, **fields}).encode()


def test_data_within_the_limits_passes() -> None:
    limits = Limits(max_rows=100)
    records = [{"loja": f"S{i}", "v": i} for i in range(100)]
    check_inline_json(body(records, columns=["loja"], mask=["v"]), limits)
    check_inline_json(body({"loja": ["a"] * 5000, "v": list(range(5000))}), limits)


def test_more_objects_than_rows_is_a_413_naming_the_limit() -> None:
    with pytest.raises(PayloadTooLargeError) as info:
        check_inline_json(body([{"v": i} for i in range(103)]), Limits(max_rows=100))
    assert "more JSON objects and lists (105, the request's own included)" in str(info.value)
    assert "than the 100 rows allowed (max_dataset_rows)" in str(info.value)
    assert info.value.status_code == 413


def test_nested_lists_count_as_rows_too() -> None:
    with pytest.raises(PayloadTooLargeError, match="JSON objects and lists"):
        check_inline_json(body([[i] for i in range(200)]), Limits(max_rows=100))


def test_more_values_than_the_decoded_bytes_allow_is_a_413() -> None:
    limits = Limits(max_decoded_bytes=1000 * VALUE_BYTES)
    check_inline_json(body({"v": [1.5] * 990}), limits)
    with pytest.raises(PayloadTooLargeError) as info:
        check_inline_json(body({"v": [1.5] * 1001}), limits)
    assert "max_dataset_decoded_bytes" in str(info.value)
    assert f"at most {1000 * VALUE_BYTES} are allowed" in str(info.value)


def test_braces_and_commas_inside_strings_are_text() -> None:
    # CSV text: a hundred thousand commas and braces, one value.
    csv = "a,b\n" + '"{x}, [y]",2\n' * 20_000
    limits = Limits(max_rows=100, max_decoded_bytes=1000 * VALUE_BYTES)
    check_inline_json(body(csv), limits)
    records = [{"t": 'he said "{[,]}", then \\ left', "n": i} for i in range(50)]
    check_inline_json(body(records), limits)


def test_a_memory_bomb_is_refused_without_being_parsed() -> None:
    # 50 MiB of empty objects: 17 million dicts, a gigabyte, had it been parsed.
    bomb = b'{"question": "x", "data": [' + b"{}," * (50 * MiB // 3) + b"{}]}"
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(PayloadTooLargeError, match="JSON objects and lists"):
            check_inline_json(bomb, Limits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 * MiB
    assert time.monotonic() - started < 5
