"""The words of rank and direction in Brazilian Portuguese and English, read in context.

A word is read from the words around it (folded: lower case, no accents), because the same
word is a claim in one place and not in another: "maior" ranks in "a maior loja" and compares
in "maior que"; "mais" ranks in "a loja que mais vendeu" but counts in "mais de R$ 5.000";
"increase" is a rise in "an increase" and advice in "to increase sales"; "última" is a period
in "a última semana" and a rank in "último lugar".
"""

from __future__ import annotations

import re

__all__ = ["clause", "direction", "negated", "rank", "vocabulary"]


def vocabulary(words: str) -> frozenset[str]:
    """The words of a space-separated list."""
    return frozenset(words.split())


_HIGH = vocabulary(
    "highest largest biggest greatest top best leading leader leads led peak peaks peaked "
    "maior maiores melhor melhores lider lideres lidera lideram liderou lideraram liderando "
    "lideranca topo"
)
_LOW = vocabulary(
    "lowest smallest least fewest worst bottom trough bottomed trails trailed lags lagged menor "
    "menores pior piores lanterna"
)
_COMPARATIVE_HIGH = vocabulary("more higher greater larger bigger better")
_COMPARATIVE_LOW = vocabulary("less fewer lower smaller worse")
_HIGH_ADJECTIVES = vocabulary(
    "alto alta altos altas forte fortes elevado elevada elevados elevadas vendido vendida "
    "vendidos vendidas lucrativo lucrativa lucrativos lucrativas rentavel rentaveis"
)
_LOW_ADJECTIVES = vocabulary("baixo baixa baixos baixas fraco fraca fracos fracas")

_UP = vocabulary(
    """grew grows growing growth rose rises rising risen increased increases increasing climbed
    climbing jumped spiked surged soared gained upward upturn uptrend rebounded recovered
    cresceu cresceram cresce crescem crescendo crescimento subiu subiram sobe sobem subindo
    aumentou aumentaram aumenta aumentam aumentando aumento aumentos alta altas avancou
    avancaram avanco disparou dispararam saltou salto pico picos"""
)
_DOWN = vocabulary(
    """fell falls falling fallen dropped drops dropping declined declines declining decreased
    decreases decreasing shrank shrunk slipped plunged plummeted dipped slumped downward
    downturn downtrend caiu cairam cai caem caindo queda quedas diminuiu diminuiram diminui
    diminuem diminuindo diminuicao recuou recuaram recuo reducao reduziu reduziram despencou
    despencaram retracao encolheu"""
)
# Words that are a direction as nouns ("a drop", "the increase") but advice as verbs ("to
# increase sales"): claims only after a determiner or an adjective of size.
_NOUN_UP = vocabulary("increase rise jump spike surge gain")
_NOUN_DOWN = vocabulary("decrease drop fall decline dip")
_DETERMINERS = vocabulary(
    "a an the this that its their sharp strong big large small slight steep notable"
)
_SIZES = vocabulary("sharpest steepest strongest sharper steeper stronger only any no first")
_STATE_VERBS = vocabulary(
    "went go goes going is was were are been be trending trended moved turned"
)
_NEGATIONS = vocabulary(
    "nao nenhum nenhuma sem nem nunca jamais not never none without nor didn doesn wasn weren "
    "hasn haven"
)
_PAST_ENDINGS = ("ou", "eu", "iu", "ed")
_ENGLISH_VERBS = vocabulary("sold grew had has made won brought")


def _at(words: list[str], i: int) -> str:
    return words[i] if 0 <= i < len(words) else ""


def direction(words: list[str], i: int) -> bool | None:
    """True for a word of rising, False for one of falling, None for neither."""
    word, before, after = words[i], _at(words, i - 1), _at(words, i + 1)
    if word in ("alta", "altas") and before in ("mais", "menos", "muito", "bem", "tao"):
        return None  # "a mais alta" is a rank; "alta demanda" is not a rise either, but rarer
    if word in _UP:
        return True
    if word in _DOWN:
        return False
    if word in _NOUN_UP or word in _NOUN_DOWN:
        named = before in _DETERMINERS or before in _HIGH or before in _LOW or before in _SIZES
        verb = before in ("not", "did", "didn", "does", "doesn", "never", "will", "won")
        return word in _NOUN_UP if named or verb else None
    if word in ("up", "down") and (before in _STATE_VERBS or after.isdigit() or after == "by"):
        return word == "up"
    return None


def negated(words: list[str], i: int, english: bool) -> bool:
    window = words[max(0, i - 4) : i]
    return any(w in _NEGATIONS or (english and w == "no") for w in window)


def _than(words: list[str], i: int) -> bool:
    """A comparison follows: "than"/"que"/"do que" within the next three words."""
    ahead = words[i + 1 : i + 4]
    return any(w in ("than", "que") for w in ahead)


def rank(words: list[str], i: int, english: bool) -> tuple[bool, bool] | None:
    """(high, comparative) for a rank word at ``i``, None when it ranks nothing."""
    word, before, after = words[i], _at(words, i - 1), _at(words, i + 1)
    if word in _HIGH or word in _LOW:
        if word == "top" and (after.isdigit() or before == "on"):
            return None  # "top 3" is a group, "on top of" no rank
        return word in _HIGH, _than(words, i)
    if word in _COMPARATIVE_HIGH or word in _COMPARATIVE_LOW:
        return (word in _COMPARATIVE_HIGH, True) if _than(words, i) else None
    if word in ("ultimo", "ultima", "primeiro", "primeira", "last", "first"):
        placed = after in ("lugar", "colocado", "colocada", "posicao", "place")
        if placed or before in ("ranked", "came", "finished"):
            return word in ("primeiro", "primeira", "first"), False
        return None  # "a última semana", "the first week": periods, not ranks
    if word in ("mais", "menos"):
        high = word == "mais"
        if after in _LOW_ADJECTIVES:
            high = not high
        if _than(words, i):
            return high, True
        if after == "de" or after.isdigit():
            return None  # "mais de R$ 5.000" is a quantity
        if after in _HIGH_ADJECTIVES or after in _LOW_ADJECTIVES:
            return high, False  # "a venda mais alta", "o mais vendido"
        verb = before.endswith(_PAST_ENDINGS) and len(before) > 3
        if before in ("que", "quem", "o", "a", "os", "as") or verb:
            return high, False
        return None
    if english and word in ("most", "least"):
        if after in ("recent", "recently", "likely") or (
            after == "of" and _at(words, i + 2) not in ("any", "all")
        ):
            return None  # "most of" is a share (not "the most of any store"), "most recent" a time
        if before == "the" or before in _ENGLISH_VERBS or before.endswith("ed"):
            return word == "most", False
    return None


_CLAUSE_MARKS = re.compile(r"[,;:()—–]|\b(?:mas|but|while|enquanto|whereas|porem|however)\b")


def clause(folded: str, position: int) -> tuple[int, int]:
    """The clause of ``folded`` around ``position``: between commas, semicolons, colons,
    brackets, dashes and "but"/"while"/"mas"/"enquanto"."""
    start, end = 0, len(folded)
    for mark in _CLAUSE_MARKS.finditer(folded):
        if mark.end() <= position:
            start = mark.end()
        elif mark.start() >= position:
            end = mark.start()
            break
    return start, end
