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


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words of one language only (never "a", "as", "no", "total", "normal": both have them),
# including the business words questions to Billumy are made of.
_PT |= _words(
    "o os e é em na nas nos ao aos à às pelo pela pelos pelas teve tiveram houve alguma "
    "algum algumas alguns quantos quantas cada entre sobre desde até ate seu sua nosso "
    "nossa ele ela eles elas muito muita pouco maior menor melhor pior vendeu venderam "
    "vendemos vender faturamento faturou receita lucro custo loja lojas cliente clientes "
    "região regiao regiões regioes semana semanas meses anos dia dias queda quedas "
    "crescimento cresceu caiu caíram cairam forte participação participacao porque "
    "evoluiu evoluíram evoluiram"
)
_EN |= _words(
    "did does do had has have any all most least per by in on at it its there sold sell "
    "store stores revenue week weeks months years drop drops spike spikes share growth "
    "between over than highest lowest be been an or not if who came grew fell change"
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
