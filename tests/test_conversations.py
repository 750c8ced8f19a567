"""Pure parts of the conversation service: cursors, ids, titles, language guess."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billumy.conversations import (
    _fallback_title,
    _parse_title,
    check_id,
    decode_cursor,
    encode_cursor,
    export_markdown,
    new_chat_id,
)
from billumy.errors import BadRequestError
from billumy.language import guess_language
from billumy.store.base import Chat, ChatMessage


def _chat() -> Chat:
    now = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    return Chat(
        id=new_chat_id(),
        tenant="t",
        user_id="u",
        model="billumy",
        created_at=now,
        updated_at=now,
        title="Vendas",
        messages=[
            ChatMessage(id="m1", chat_id="c", seq=1, role="user", content="Oi", created_at=now),
            ChatMessage(
                id="m2",
                chat_id="c",
                seq=2,
                role="assistant",
                content="Olá",
                created_at=now,
                incomplete=True,
            ),
        ],
    )


def test_cursor_round_trip() -> None:
    chat = _chat()
    page = decode_cursor(encode_cursor(chat))
    assert page.id == chat.id and page.created_at == chat.created_at


@pytest.mark.parametrize(
    "bad", ["", "garbage", "e30", "eyJ0IjogMX0", "!!!", "eyJ0IjoiMjAyNi0wMS0wMSIsImlkIjoiMTIzIn0"]
)
def test_bad_cursors(bad: str) -> None:
    with pytest.raises(BadRequestError, match="invalid cursor"):
        decode_cursor(bad)


def test_ids() -> None:
    assert check_id(new_chat_id())
    for bad in ("", "x" * 24, "0123", "../etc/passwd", "0123456789ABCDEF01234567"):
        with pytest.raises(BadRequestError):
            check_id(bad)


def test_titles() -> None:
    assert _parse_title('{"title": "  Vendas do mês.  "}') == "Vendas do mês"
    assert _parse_title("not json") is None
    assert _parse_title('{"title": ""}') is None
    assert (
        _fallback_title("um dois três quatro cinco seis sete") == "um dois três quatro cinco seis…"
    )


def test_language_guess() -> None:
    assert guess_language("Olá, como estão as vendas deste mês?") == "pt"
    assert guess_language("What were the sales of this month?") == "en"
    assert guess_language("42") is None


def test_markdown_export_marks_incomplete_replies() -> None:
    md = export_markdown(_chat())
    assert md.startswith("# Vendas\n")
    assert "## User\n\nOi" in md and "## Assistant (incomplete)\n\nOlá" in md
