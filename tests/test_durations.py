"""Unit tests for billumy.durations.parse_duration (Ollama ``keep_alive`` values)."""

from __future__ import annotations

import math

import pytest

from billumy.durations import parse_duration
from billumy.errors import BadRequestError
from billumy.inference import bounded_keep_alive
from billumy.settings import Settings


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (10, 10.0),
        (2.5, 2.5),
        ("0", 0.0),
        ("30", 30.0),
        ("1.5", 1.5),
        (" 45 ", 45.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1h30m15s", 5415.0),
        ("1.5h", 5400.0),
        ("300ms", 0.3),
        ("250us", 250e-6),
        ("250µs", 250e-6),
        ("1000000ns", 1e-3),
        ("+2s", 2.0),
    ],
)
def test_numbers_and_go_durations(value: str | float, seconds: float) -> None:
    result = parse_duration(value)
    assert result is not None
    assert result == pytest.approx(seconds)


@pytest.mark.parametrize("value", [-1, -0.5, "-1", "-5m", "-1h30m"])
def test_negative_means_forever(value: str | float) -> None:
    assert parse_duration(value) == math.inf


@pytest.mark.parametrize("value", [1e308, "99999999999999999999h", 4e9, "1000000h"])
def test_past_a_century_means_forever(value: str | float) -> None:
    # A duration this long used to overflow date arithmetic in the engine (a 500, and the
    # model's slot never released).
    assert parse_duration(value) == math.inf


@pytest.mark.parametrize("value", [None, ""])
def test_unset(value: str | None) -> None:
    assert parse_duration(value) is None


def test_zero_is_not_unset() -> None:
    # keep_alive 0 unloads at once; it must not be confused with "not given".
    assert parse_duration("0") == 0.0
    assert parse_duration(0) == 0.0


@pytest.mark.parametrize(
    "value",
    [
        *("abc", "5x", "m", "5m3", "1h 30m", "5 m", "h1", "1e", "1e3", "1_000", "nan", "inf"),
        *("-", "--5m", "+-5m", "-+1", "- 5", "--1"),
        *(True, False),
    ],
)
def test_garbage_is_a_bad_request(value: object) -> None:
    with pytest.raises(BadRequestError) as excinfo:
        parse_duration(value)  # type: ignore[arg-type]
    assert excinfo.value.status_code == 400
    assert "invalid duration" in str(excinfo.value)


@pytest.mark.parametrize(
    ("seconds", "applied"),
    [(0.0, 60.0), (30.0, 60.0), (60.0, 60.0), (300.0, 300.0), (1800.0, 1800.0), (1e6, 1800.0)],
)
def test_keep_alive_of_a_non_admin_key_is_clamped(seconds: float, applied: float) -> None:
    assert bounded_keep_alive(seconds, (60.0, 1800.0)) == applied


def test_a_pin_of_a_non_admin_key_is_clamped_to_the_maximum() -> None:
    forever = parse_duration("-1")
    assert forever == math.inf
    assert bounded_keep_alive(forever, (60.0, 1800.0)) == 1800.0


@pytest.mark.parametrize(
    ("low", "high"), [("0", "30m"), ("-1", "30m"), ("1m", "-1"), ("10m", "5m"), ("1m", "soon")]
)
def test_keep_alive_bounds_must_be_an_interval_above_zero(low: str, high: str) -> None:
    with pytest.raises(ValueError, match="inference_keep_alive"):
        Settings(inference_keep_alive_min=low, inference_keep_alive_max=high)
