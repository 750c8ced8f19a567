"""Unit tests for billumy.engines.decoding.TextAssembler: stop sequences and split UTF-8."""

from __future__ import annotations

import itertools

import pytest

from billumy.engines.decoding import TextAssembler


def feed_all(assembler: TextAssembler, pieces: list[bytes]) -> list[str]:
    return [assembler.feed(piece) for piece in pieces]


def test_plain_text_passes_through_at_once() -> None:
    assembler = TextAssembler([])
    assert feed_all(assembler, [b"Hello", b", ", b"world"]) == ["Hello", ", ", "world"]
    assert assembler.flush() == ""
    assert not assembler.stopped


def test_empty_stop_strings_are_ignored() -> None:
    assembler = TextAssembler(["", ""])
    assert assembler.feed(b"abc") == "abc"
    assert not assembler.stopped


def test_text_far_from_any_stop_is_not_held() -> None:
    assembler = TextAssembler(["</s>"])
    assert assembler.feed(b"Hello ") == "Hello "
    assert assembler.feed(b"world") == "world"


def test_stop_split_across_feeds_is_detected_and_never_emitted() -> None:
    assembler = TextAssembler(["</s>"])
    emitted = feed_all(assembler, [b"abc<", b"/", b"s", b">more text", b"and more"])
    assert emitted == ["abc", "", "", "", ""]
    assert assembler.stopped
    assert assembler.flush() == ""


def test_stop_at_the_very_start() -> None:
    assembler = TextAssembler(["User:"])
    assert assembler.feed(b"User: hi") == ""
    assert assembler.stopped
    assert assembler.flush() == ""


def test_first_of_several_stops_wins() -> None:
    assembler = TextAssembler(["\n\n", "User:"])
    out = assembler.feed(b"Answer.\nUs") + assembler.feed(b"er: next\n\n")
    assert out == "Answer.\n"
    assert assembler.stopped


@pytest.mark.parametrize("text", ["Hello world</s>ignored", "olá, tudo bem?</s></s>x"])
def test_every_split_yields_exactly_the_text_before_the_stop(text: str) -> None:
    data = text.encode()
    expected = text.split("</s>")[0]
    for i, j in itertools.combinations(range(1, len(data)), 2):
        assembler = TextAssembler(["</s>"])
        out = "".join(feed_all(assembler, [data[:i], data[i:j], data[j:]])) + assembler.flush()
        assert out == expected, (i, j)
        assert assembler.stopped


def test_stop_lookalike_is_released_when_it_diverges() -> None:
    assembler = TextAssembler(["</s>"])
    assert assembler.feed(b"x<") == "x"
    assert assembler.feed(b"/") == ""
    assert assembler.feed(b"t") == "</t"
    assert assembler.feed(b"ail") == "ail"
    assert not assembler.stopped


def test_flush_releases_held_prefix() -> None:
    assembler = TextAssembler(["</s>"])
    assert assembler.feed(b"the end </") == "the end "
    assert assembler.flush() == "</"
    assert assembler.flush() == ""


def test_multibyte_character_split_across_feeds_is_emitted_intact() -> None:
    a_tilde = "ã".encode()
    assert len(a_tilde) == 2
    assembler = TextAssembler([])
    assert assembler.feed(b"S" + a_tilde[:1]) == "S"
    assert assembler.feed(a_tilde[1:] + b"o Paulo") == "ão Paulo"


def test_four_byte_character_split_into_single_bytes_with_stops() -> None:
    rocket = "🚀".encode()
    assembler = TextAssembler(["</s>"])
    emitted = feed_all(assembler, [bytes([b]) for b in rocket])
    assert emitted == ["", "", "", "🚀"]
    assert "\ufffd" not in "".join(emitted)


def test_multibyte_stop_sequence_split_mid_character() -> None:
    stop = "fim ção"
    data = ("resposta " + stop + " resto").encode()
    for cut in range(1, len(data)):
        assembler = TextAssembler([stop])
        out = assembler.feed(data[:cut]) + assembler.feed(data[cut:]) + assembler.flush()
        assert out == "resposta ", cut


def test_incomplete_character_at_the_end_becomes_replacement_on_flush() -> None:
    assembler = TextAssembler([])
    assert assembler.feed(b"ok" + "ã".encode()[:1]) == "ok"
    assert assembler.flush() == "\ufffd"


def test_nothing_is_emitted_after_a_stop() -> None:
    assembler = TextAssembler(["STOP"])
    assert assembler.feed(b"before STOP after") == "before "
    assert assembler.feed(b"more") == ""
    assert assembler.flush() == ""
