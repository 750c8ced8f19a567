"""A tiny language guess (Portuguese or English) to tell a small model which to write in."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-zà-ÿ]+")
_PT = frozenset(
    [
        "de",
        "da",
        "do",
        "das",
        "dos",
        "que",
        "não",
        "nao",
        "uma",
        "um",
        "para",
        "com",
        "por",
        "como",
        "mais",
        "mas",
        "você",
        "voce",
        "eu",
        "meu",
        "minha",
        "está",
        "esta",
        "são",
        "sao",
        "foi",
        "ser",
        "ter",
        "tem",
        "qual",
        "quais",
        "quanto",
        "quando",
        "onde",
        "olá",
        "ola",
        "obrigado",
        "vendas",
        "relatório",
        "relatorio",
        "mês",
        "mes",
        "ano",
        "dados",
        "também",
        "tambem",
        "isso",
        "este",
        "essa",
    ]
)
_EN = frozenset(
    [
        "the",
        "of",
        "and",
        "to",
        "is",
        "are",
        "was",
        "were",
        "what",
        "which",
        "how",
        "when",
        "where",
        "why",
        "this",
        "that",
        "with",
        "for",
        "from",
        "my",
        "your",
        "you",
        "i",
        "we",
        "they",
        "hello",
        "thanks",
        "sales",
        "report",
        "month",
        "year",
        "data",
        "please",
        "can",
        "could",
    ]
)
_PT_CHARS = frozenset("ãõçáéíóúâêôà")


def guess_language(text: str) -> str | None:
    """``"pt"``, ``"en"`` or None when the text gives no clear sign."""
    lowered = text.lower()
    words = _WORD.findall(lowered)
    pt = sum(w in _PT for w in words) + 2 * sum(c in _PT_CHARS for c in lowered)
    en = sum(w in _EN for w in words)
    if pt > en:
        return "pt"
    if en > pt:
        return "en"
    return None


LANGUAGE_NAMES = {"pt": "Brazilian Portuguese", "en": "English"}
