"""A question split into the parts an answer must cover, and the periods it names.

Why: a plan read from a question's column words alone answered "Which store sold the most, and
how did sales change over the weeks?" only where both halves happened to name a column, and
dropped "em maio" or "Centro e Norte" entirely. Here the question's *intent* words are read
(pt-BR and English, accents, case and plurals ignored), independently of its column words:

* ``rank``: the most/least ("maior", "vendeu mais", "lowest", "top");
* ``total``: how much in all ("total", "quanto", "how much");
* ``trend``: change over time ("evolução", "ao longo", "over the weeks", "how did ... change");
* ``anomaly``: drops, spikes, anything abnormal (:func:`anomalies.asked_direction`);
* ``compare_periods``: two periods named ("2023 vs 2024", "março e abril"), or one compared
  with the one before ("em relação ao mês anterior");
* ``compare_segments``: two or more values of one column named ("Centro e Norte");
* ``share``: a part of the whole ("participação", "share", "percentual");
* ``drivers``: what explains a change ("por que", "o que puxou", "why", "what drove");
* ``filter``: a period ("em maio", "in 2024", "no 1º trimestre", "semana 20") or a segment
  ("na loja Sul") that restricts the rows.

:func:`reconcile` then makes the plan cover every part (a dimension for a ranking, a period for
a trend, the named periods as filters, the compared values as an ``in`` filter), and
:func:`coverage` says, after the facts are computed, which fact answers each part; a part no
fact answers is said so in the answer, never silently dropped.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, Literal

from billumy.insights import anomalies
from billumy.insights.grains import choose_grain
from billumy.insights.model import ColumnProfile, Fact, Profile
from billumy.insights.naming import column_vocabulary, named_columns
from billumy.insights.periods import MONTHS, as_date
from billumy.insights.plan import Filter, Measure, Period, Plan
from billumy.insights.planned import _hour_column
from billumy.insights.profile import is_ordinal_name, name_words, yes_no_values
from billumy.insights.roles import dimension_columns, is_stock, main_columns, plan_agg
from billumy.insights.rules import HOUR_OF_DAY, WEEKEND, blank_bounds, rule_order, rule_plan
from billumy.insights.sentences import fold
from billumy.insights.synonyms import (
    cognates,
    one_edit,
    same_word_across_languages,
    synonym_groups,
    variants,
)
from billumy.language import guess_language

__all__ = ["Part", "Question", "Window", "coverage", "parse", "rankings", "reconcile"]

PartKind = Literal[
    "rank",
    "peak",
    "total",
    "trend",
    "anomaly",
    "compare_periods",
    "compare_segments",
    "share",
    "drivers",
    "filter",
]
WindowGrain = Literal["day", "week", "month", "quarter", "half", "year"]


def _fold(text: str) -> list[str]:
    return name_words(text)


def _last_at(words: list[str], value: list[str]) -> int:
    """Where ``value``'s first word is last said in ``words`` (-1 when it is not)."""
    return max((i for i, w in enumerate(words) if value and w == value[0]), default=-1)


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


def _forms(word: str) -> set[str]:
    return {word, word[:-1]} if word.endswith("s") and len(word) > 3 else {word}


_RANK = _set(
    "maior maiores menor menores mais menos melhor melhores pior piores lider top best worst "
    "highest lowest most least largest smallest biggest greatest fewest bottom"
)
_NOT_RANK_BEFORE = frozenset({"at", "pelo", "ao", "no", "de"})  # "at least", "pelo menos"
_TOTAL = _set("total totais soma somatorio quanto quanta quantos quantas sum")
_TOTAL_PHRASES = (("how", "much"), ("how", "many"), ("no", "total"), ("in", "total"))
_TREND = _set(
    "tendencia tendencias evolucao evoluiu evoluiram evolution evolve evolved trend trends "
    "trending mudou mudaram mudanca change changed changes variou variaram variacao historico "
    "history cresceu cresceram crescimento grow grew growth growing"
)
_TREND_PHRASES = (
    ("ao", "longo"),
    ("over", "time"),
    ("over", "the"),
    ("mes", "a", "mes"),
    ("month", "over", "month"),
    ("semana", "a", "semana"),
    ("week", "over", "week"),
    ("ano", "a", "ano"),
    ("year", "over", "year"),
    ("como", "foram"),
)
_COMPARE = _set(
    "compare comparar compara comparado comparada comparando comparison comparacao versus vs "
    "contra against"
)
_COMPARE_PHRASES = (("em", "relacao"), ("relative", "to"), ("compared", "to"))
_PREVIOUS = _set("anterior previous prior before antes")
# A ranking of how segments moved: "qual loja mais cresceu", "which store fell the most".
_GROWTH = _set(
    "cresceu cresceram crescimento crescer grew grow growth increased increase aumentou "
    "aumentaram aumento subiu subiram rose gained"
)
_FALL = _set(
    "caiu cairam queda fell fall dropped declined decreased decrease diminuiu diminuiram "
    "recuou recuaram perdeu perderam shrank lost"
)
_SHARE = _set(
    "participacao share percentual porcentagem percentage percent fatia proporcao proportion "
    "representa representam representou representaram represent represents represented"
)
_DRIVERS = _set(
    "porque why explica explicam explicou explain explains explained drove drive driven driver "
    "drivers puxou puxaram contribuiu contribuiram contributed contribution contribuicao "
    "responsavel responsaveis responsible motivo motivos causa causas cause caused reason"
)
_DRIVERS_PHRASES = (("por", "que"), ("por", "qual", "motivo"), ("what", "drove"))
# Words of contributing ask what drove a change only when a change is named ("quem mais
# contribuiu para a queda"); "qual loja contribuiu mais?" ranks the stores' parts of the total.
_CONTRIBUTING = _set(
    "contribuiu contribuiram contributed contribution contribuicao responsavel responsaveis "
    "responsible"
)
_CHANGING = _set(
    "queda caiu cairam quedas aumento aumentou aumentaram subiu subiram diminuiu diminuiram "
    "reducao variacao mudanca cresceu cresceram crescimento alta baixa recuou drop dropped "
    "fell fall decline declined increase increased decrease decreased rise rose growth grew "
    "change changed"
)

_MONTHS = MONTHS
# Short forms that are also ordinary words ("mar" is the sea, "may" a verb, "set", "out") count
# only right before a year ("mai 2024", "may 2024").
_AMBIGUOUS_MONTHS = frozenset({"mar", "may", "mai", "set", "out", "jun", "jul", "dez", "dec"})
_ORDINALS = {
    "primeiro": 1, "primeira": 1, "first": 1, "1o": 1, "1a": 1, "1": 1, "1st": 1,
    "segundo": 2, "segunda": 2, "second": 2, "2o": 2, "2a": 2, "2": 2, "2nd": 2,
    "terceiro": 3, "terceira": 3, "third": 3, "3o": 3, "3": 3, "3rd": 3,
    "quarto": 4, "quarta": 4, "fourth": 4, "4o": 4, "4": 4, "4th": 4,
}  # fmt: skip
_QUARTER = frozenset({"trimestre", "quarter", "tri"})
_HALF = frozenset({"semestre", "half"})
_THIS = (
    ("este", "ano"),
    ("deste", "ano"),
    ("neste", "ano"),
    ("esse", "ano"),
    ("desse", "ano"),
    ("this", "year"),
    ("ano", "atual"),
    ("current", "year"),
)
# "quantos pães vendemos no ano?": the data's (latest) year, unless a year is named otherwise.
_THE_YEAR = (("no", "ano"), ("in", "the", "year"))
_LAST = (("ano", "passado"), ("last", "year"), ("ano", "anterior"), ("previous", "year"))
_WEEK = frozenset({"semana", "week", "wk"})
_MONTH_WORD = frozenset({"mes", "month"})
_YEAR = re.compile(r"^(19|20)\d\d$")
_IN_YEAR = frozenset({"em", "in", "during", "durante", "ano", "year"})


@dataclass(frozen=True)
class Window:
    """A period the question names, as a half-open range ``[start, end)`` of a temporal
    column, or one value of an ordinal column (``semana = 20``). ``label`` is how facts write
    it (``2024-05``, ``2024-Q1``, ``2024``, ``2024-05-13`` for a week; ``semana 20``)."""

    column: str
    grain: WindowGrain
    label: str
    start: date | None = None
    end: date | None = None
    value: int | None = None  # an ordinal column's value
    now: bool = False  # "hoje", "right now": the data's latest date

    @property
    def ordinal(self) -> bool:
        return self.value is not None

    def filters(self) -> list[Filter]:
        if self.value is not None:
            return [Filter(column=self.column, op="=", value=self.value)]
        assert self.start is not None and self.end is not None
        return [
            Filter(column=self.column, op=">=", value=self.start.isoformat()),
            Filter(column=self.column, op="<", value=self.end.isoformat()),
        ]

    def previous(self) -> Window:
        """The period just before, of the same length."""
        if self.value is not None:
            word = self.label.rsplit(" ", 1)[0]
            return Window(self.column, self.grain, f"{word} {self.value - 1}", value=self.value - 1)
        assert self.start is not None
        start = _shift(self.start, self.grain, -1)
        return _window(self.column, self.grain, start)


def _shift(day: date, grain: WindowGrain, n: int) -> date:
    if grain == "day":
        return day + timedelta(days=n)
    if grain == "week":
        return day + timedelta(weeks=n)
    months = {"month": 1, "quarter": 3, "half": 6, "year": 12}[grain] * n
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _window(column: str, grain: WindowGrain, start: date) -> Window:
    end = _shift(start, grain, 1)
    if grain == "year":
        label = f"{start.year}"
    elif grain == "quarter":
        label = f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    elif grain == "half":
        label = f"{start.year}-H{(start.month - 1) // 6 + 1}"
    elif grain == "month":
        label = f"{start.year}-{start.month:02d}"
    else:
        label = start.isoformat()
    return Window(column, grain, label, start=start, end=end)


@dataclass(frozen=True)
class Part:
    """One part of the question; ``words`` are the question words that asked for it."""

    kind: PartKind
    words: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "words": self.words, **self.detail}


@dataclass
class Question:
    text: str
    parts: list[Part]
    windows: list[Window]
    segments: dict[str, list[str]]  # column -> the values the question names

    def has(self, kind: PartKind) -> bool:
        return any(p.kind == kind for p in self.parts)


# The words a clause that asks something opens with: "... e qual ala teve mais internações?",
# "..., and which ward had the most admissions?".
_ASKING = (
    "qual|quais|quanto|quanta|quantos|quantas|como|onde|quando|quem|houve|existe|existem|"
    "which|what|whats|what's|how|when|where|who|did|was|were|is|are|has|have|do|does"
)
_SENTENCE_END = re.compile(r"(?<=[?;!])\s+|(?<=[a-zà-ú)])\.\s+(?=\S)", re.IGNORECASE)
_CLAUSE_START = re.compile(
    rf"(?:\s*,\s*(?:(?:e|and|but|mas)\s+)?|\s+(?:e|and|but|mas)\s+)(?=(?:{_ASKING})\b)",
    re.IGNORECASE,
)
_ASKS = re.compile(rf"\b(?:{_ASKING})\b", re.IGNORECASE)
_OPENING_AND = re.compile(r"^(?:e|and|but|mas)\s+", re.IGNORECASE)


def clauses(text: str) -> list[str]:
    """The question's clauses that each ask something, in order: "Qual foi a taxa de ocupação
    da UTI em abril e qual ala teve mais internações?" -> ["Qual foi a taxa de ocupação da UTI
    em abril", "qual ala teve mais internações"]. One clause (the whole text) when it asks one
    thing; a lead-in such as "Na ortopedia, em 16/01/2024:" stays with the clause it opens."""
    out = []
    for sentence in _SENTENCE_END.split(text.strip()):
        pieces = [
            _OPENING_AND.sub("", p.strip(" ,;?!.")).strip() for p in _CLAUSE_START.split(sentence)
        ]
        pieces = [p for p in pieces if p]
        if len(pieces) > 1 and not _ASKS.search(pieces[0]):
            # "Em 2024, quantas matrículas...": the lead-in is the first clause's scope.
            pieces[:2] = [f"{pieces[0]}, {pieces[1]}"]
        out += pieces
    return out or [text]


_ARTICLES = frozenset({"o", "a", "the", "os", "as", "no", "na", "in", "do", "da", "of"})


def _chained(words: list[str], i: int) -> list[int]:
    """The ordinals before ``words[i]`` ("trimestre"), chained by "e"/"and": "o primeiro e o
    segundo semestre" -> [1, 2]."""
    found: list[int] = []
    j = i - 1
    while j >= 0 and words[j] in _ORDINALS:
        found.append(_ORDINALS[words[j]])
        j -= 1
        while j >= 0 and words[j] in _ARTICLES:
            j -= 1
        if j < 0 or words[j] not in (
            "e",
            "and",
            "ou",
            "or",
            "para",
            "pro",
            "pra",
            "ao",
            "to",
            "vs",
            "versus",
        ):
            break
        j -= 1
        while j >= 0 and words[j] in _ARTICLES:
            j -= 1
    return sorted(found)


# "last week", "a semana passada", "este mês": the data's latest week or month (its dates
# end where the data ends, which is seldom today); "the week before", "o mês anterior": the
# one before it.
_RECENT: dict[WindowGrain, tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, ...], ...]]] = {
    "week": (
        (("last", "week"), ("this", "week"), ("ultima", "semana"), ("semana", "passada"),
         ("esta", "semana"), ("nesta", "semana"), ("latest", "week")),
        (("week", "before"), ("previous", "week"), ("prior", "week"), ("semana", "anterior"),
         ("semana", "retrasada"), ("penultima", "semana")),
    ),
    "month": (
        (("last", "month"), ("this", "month"), ("ultimo", "mes"), ("mes", "passado"),
         ("este", "mes"), ("neste", "mes"), ("esse", "mes"), ("nesse", "mes"),
         ("latest", "month")),
        (("month", "before"), ("previous", "month"), ("prior", "month"), ("mes", "anterior"),
         ("mes", "retrasado"), ("penultimo", "mes")),
    ),
    "quarter": (
        (("last", "quarter"), ("this", "quarter"), ("ultimo", "trimestre"),
         ("trimestre", "passado"), ("este", "trimestre"), ("latest", "quarter")),
        (("quarter", "before"), ("previous", "quarter"), ("prior", "quarter"),
         ("trimestre", "anterior"), ("penultimo", "trimestre")),
    ),
    # "hoje", "right now": the data's latest date (its latest day, or the month its monthly
    # rows are dated at), where a level such as animals in care or items on the menu is read.
    "day": (
        (("hoje",), ("today",), ("right", "now"), ("agora",), ("atualmente",), ("currently",),
         ("neste", "momento"), ("no", "momento"), ("at", "the", "moment"), ("as", "of", "now")),
        (("ontem",), ("yesterday",)),
    ),
    # "no semestre" without its number: the data's latest half (most often the only one).
    "half": (
        (("last", "semester"), ("this", "semester"), ("the", "semester"), ("this", "half"),
         ("ultimo", "semestre"), ("semestre", "passado"), ("este", "semestre"),
         ("neste", "semestre"), ("no", "semestre"), ("nesse", "semestre"),
         ("latest", "semester")),
        (("semester", "before"), ("previous", "semester"), ("prior", "semester"),
         ("semestre", "anterior"), ("penultimo", "semestre")),
    ),
}  # fmt: skip


_SINCE = frozenset({"since", "desde"})
# "last quarter", "o mês passado", "a última semana": the latest whole one.
_LAST_WORDS = frozenset({"last", "passado", "passada", "ultimo", "ultima"})
# "the latest quarter" is the data's latest, whole or not.
_LATEST_WORDS: dict[WindowGrain, tuple[tuple[str, ...], ...]] = {
    grain: (("latest", grain if grain != "half" else "semester"),)
    for grain in ("week", "month", "quarter", "day", "half")
}

# Words of relative periods as they are mistyped ("o mês pasado").
_TYPOS = {
    "pasado": "passado", "pasada": "passada", "passdo": "passado", "anterio": "anterior",
    "ultmo": "ultimo", "utimo": "ultimo", "ultma": "ultima",
}  # fmt: skip


_THIS_WORDS = frozenset(
    {"this", "este", "esta", "neste", "nesta", "esse", "essa", "nesse", "nessa", "current"}
)


def _recent(
    words: list[str], column: str, first: date, last: date, step: float = 1.0
) -> list[Window]:
    """The windows of "last week vs the week before" and the like, in the order named.

    "This quarter" is the data's latest; "last quarter", "o mês passado" the latest the data
    holds whole: the one before when the data stops inside it ("last quarter" of data
    through April is Q1). A period is whole when no more days than the data's ``step`` (the
    days between its dates) follow its last date in it: monthly rows dated the 1st hold
    their month, a Monday-to-Saturday business's Saturday ends its week."""
    words = [_TYPOS.get(w, w) for w in words]
    found: list[tuple[int, Window]] = []
    for grain, (latest_phrases, before_phrases) in _RECENT.items():
        this = tuple(p for p in latest_phrases if p[0] in _THIS_WORDS)
        latest_at = _position(words, latest_phrases)
        before_at = _position(words, before_phrases)
        this_at = _position(words, this)
        last_at = _position(words, tuple(p for p in latest_phrases if p not in this))
        whole_only = False
        if this_at is not None and last_at is not None and before_at is None:
            # "esse mês vs o mês passado": beside "this month", "last month" is the one before.
            latest_at, before_at = this_at, last_at
        elif this_at is None and last_at is not None:
            whole_only = _position(words, _LATEST_WORDS[grain]) is None and any(
                set(p) & _LAST_WORDS for p in latest_phrases if _position(words, (p,)) is not None
            )
        if latest_at is None and before_at is None:
            continue
        if grain == "day":
            start = last
            if latest_at is not None:
                found.append((latest_at, replace(_window(column, grain, start), now=True)))
                latest_at = None
        elif grain == "week":
            start = last - timedelta(days=last.weekday())
        else:
            size = {"quarter": 3, "half": 6}.get(grain, 1)
            start = date(last.year, (last.month - 1) // size * size + 1, 1)
        if (
            whole_only
            and (_shift(start, grain, 1) - last).days - 1 > max(1.0, step)
            and _shift(start, grain, -1) >= first
        ):
            start = _shift(start, grain, -1)
        if latest_at is not None:
            found.append((latest_at, _window(column, grain, start)))
        previous = _shift(start, grain, -1)
        if before_at is not None and _shift(previous, grain, 1) > first:
            found.append((before_at, _window(column, grain, previous)))
    return [w for _, w in sorted(found, key=lambda pair: pair[0])]


# "o fim de semana passado", "last weekend": the data's latest whole weekend; "este fim de
# semana", "this weekend": its latest weekend, whole or not.
_LAST_WEEKEND = (
    ("fim", "de", "semana", "passado"), ("final", "de", "semana", "passado"),
    ("ultimo", "fim", "de", "semana"), ("ultimo", "final", "de", "semana"),
    ("last", "weekend"), ("past", "weekend"), ("previous", "weekend"),
)  # fmt: skip
_THIS_WEEKEND = (
    ("este", "fim", "de", "semana"), ("neste", "fim", "de", "semana"),
    ("esse", "fim", "de", "semana"), ("nesse", "fim", "de", "semana"),
    ("this", "weekend"), ("latest", "weekend"),
)  # fmt: skip


def _last_weekend(words: list[str], column: str, first: date, last: date) -> Window | None:
    """The Saturday and Sunday of "last weekend" or "this weekend", relative to the data's
    latest date as "hoje" and "esta semana" are: this weekend is the latest the data reaches
    (its Saturday on or before the latest date), last weekend the latest it holds whole (its
    Sunday on or before the latest date). None when neither is named or the data ends before
    it."""
    # "week-end" is a weekend.
    words = " ".join(_TYPOS.get(w, w) for w in words).replace("week end", "weekend").split()
    latest = _position(words, _THIS_WEEKEND)
    if latest is None and _position(words, _LAST_WEEKEND) is None:
        return None
    saturday = last - timedelta(days=(last.weekday() - 5) % 7)
    if latest is None and saturday + timedelta(days=1) > last:
        saturday -= timedelta(weeks=1)  # its Sunday is not in the data yet
    sunday = saturday + timedelta(days=1)
    if sunday < first:
        return None
    label = f"{saturday.isoformat()}/{sunday.isoformat()}"
    return Window(column, "day", label, start=saturday, end=sunday + timedelta(days=1))


def _month(word: str) -> int | None:
    """The month ``word`` names, also typed with one letter wrong, missing or extra
    ("setenbro", "fevereiro" as "feveriro"), for names of six letters or more."""
    if word in _MONTHS:
        return _MONTHS[word]
    if len(word) < 6:
        return None
    for name, month in _MONTHS.items():
        if len(name) >= 6 and one_edit(word, name):
            return month
    return None


def _position(words: list[str], phrases: tuple[tuple[str, ...], ...]) -> int | None:
    """Where the first of ``phrases`` appears in ``words``, or None."""
    found = [
        i
        for p in phrases
        for i in range(len(words) - len(p) + 1)
        if tuple(words[i : i + len(p)]) == p
    ]
    return min(found) if found else None


def _phrase(words: list[str], phrases: tuple[tuple[str, ...], ...]) -> str | None:
    for p in phrases:
        for i in range(len(words) - len(p) + 1):
            if tuple(words[i : i + len(p)]) == p:
                return " ".join(p)
    return None


def _word(
    words: list[str], vocabulary: frozenset[str], skip_after: frozenset[str] = frozenset()
) -> str | None:
    for i, w in enumerate(words):
        if _forms(w) & vocabulary and not (i and words[i - 1] in skip_after):
            return w
    return None


def _temporal(profile: Profile) -> ColumnProfile | None:
    _, _, name = main_columns(profile)
    if name is not None:
        return profile.column(name)
    return next((c for c in profile.columns if c.kind == "temporal" and not c.masked), None)


def _ordinal_for(profile: Profile, grain_words: frozenset[str]) -> ColumnProfile | None:
    for column in profile.columns:
        if column.masked or not is_ordinal_name(column.name):
            continue
        if set(name_words(column.name)) & grain_words:
            return column
    return None


def _relative_years(words: list[str], latest: int | None) -> dict[int, int]:
    """Where "este ano", "do ano passado", "last year"... stand (the word after a "de"/"do"/
    "of" before them), and the year each names: the data's latest, or the one before."""
    found: dict[int, int] = {}
    if latest is None:
        return found
    for phrases, back in ((_THIS, 0), (_LAST, 1)):
        for phrase in phrases:
            for i in range(len(words) - len(phrase) + 1):
                if tuple(words[i : i + len(phrase)]) == phrase:
                    start = i - 1 if i and words[i - 1] in ("do", "de", "of") else i
                    found.setdefault(start, latest - back)
    return dict(sorted(found.items()))


_SAME = frozenset({"mesmo", "mesma", "same", "equivalente", "corresponding"})


def _same_period(words: list[str], at: int) -> bool:
    """Whether the relative year at ``at`` ("do ano passado") is said of the same period as one
    named before: "com o do ano passado" (the one of last year), "com o mesmo período do ano
    passado", "with the same quarter last year"; not "com o ano passado" (the year)."""
    of = at < len(words) and words[at] in ("do", "de", "da", "of")
    if of and at > 0 and words[at - 1] in ("o", "a", "os", "as"):
        return True
    return bool(_SAME & set(words[max(0, at - 4) : at]))


def _year_for_month(
    month: int, years: list[int], column: ColumnProfile, any_year: bool = False
) -> int | None:
    """The year a month without one refers to: a year the question names, else the latest
    year of the data that has that month (with ``any_year``, the latest up to the data's end,
    held in the data or not)."""
    if years:
        return years[0]
    last = as_date(column.max)
    first = as_date(column.min)
    if last is None or first is None:
        return None
    year = last.year if month <= last.month else last.year - 1
    held = date(year, month, 1) >= date(first.year, first.month, 1)
    return year if held or any_year else None


def _inside_values(words: list[str], profile: Profile) -> frozenset[int]:
    """The positions of the words of categorical values of two or more words that the
    question names whole ("Copacabana Mar Hotel"): none of them is a month."""
    spots: set[int] = set()
    for column in profile.columns:
        if column.masked or column.kind != "categorical":
            continue
        for value, _ in column.top:
            value_words = name_words(value)
            n = len(value_words)
            if n < 2:
                continue
            for i in range(len(words) - n + 1):
                if words[i : i + n] == value_words:
                    spots.update(range(i, i + n))
    return frozenset(spots)


def _day_of(words: list[str], i: int) -> tuple[int, int | None] | None:
    """(day, year or None) of a date written around the month word at ``i``: "Feb 10, 2024",
    "Feb 10", "10 de fevereiro de 2024", "10 fevereiro"; None when no day is written."""
    nxt = words[i + 1] if i + 1 < len(words) else ""
    after = words[i + 2] if i + 2 < len(words) else ""
    if re.fullmatch(r"[0-9]{1,2}", nxt) and 1 <= int(nxt) <= 31:
        return int(nxt), int(after) if _YEAR.match(after) else None
    before = words[i - 2] if i >= 2 and words[i - 1] == "de" else words[i - 1] if i else ""
    if re.fullmatch(r"[0-9]{1,2}", before) and 1 <= int(before) <= 31:
        if _YEAR.match(nxt):
            return int(before), int(nxt)
        return int(before), int(after) if nxt == "de" and _YEAR.match(after) else None
    return None


_DAY_NUMBER = re.compile(r"(0?[1-9]|[12][0-9]|3[01])(?:st|nd|rd|th|o)?")
# "de 3 a 12 de junho", "from 3 to 12 June", "June 3 through 12"; "e"/"and" only after
# "entre"/"between" ("3 e 12 de junho" names two days).
_DAYS_TO = frozenset({"a", "ate", "ao", "to", "till", "until", "through", "thru"})
_DAYS_AND = frozenset({"e", "and"})
_BETWEEN = frozenset({"entre", "between"})
_DAY_WORDS = frozenset({"dia", "dias", "day", "days", "the", "o"})


def _day_number(word: str) -> int | None:
    found = _DAY_NUMBER.fullmatch(word)
    return int(found.group(1)) if found else None


def _day_range(words: list[str], i: int, day: int) -> tuple[int, int, bool] | None:
    """The first and last day named with ``day`` in the month named at ``i``, and whether
    they are the ends of one span: "entre 3 e 12 de junho", "de 3 a 12 de junho", "from 3 to
    12 June", "June 3-12" (the dash is gone from the words: "june 3 12"), "between June 3 and
    12" are; "3 e 12 de junho", "June 3 and 12" are two days. None when one day is named."""

    def skip(j: int, step: int) -> int:
        while 0 <= j < len(words) and words[j] in _DAY_WORDS:
            j += step
        return j

    def at(j: int) -> str:
        return words[j] if 0 <= j < len(words) else ""

    if _day_number(at(i + 1)) == day:
        # "June 3 to 12", "June 3-12", "between June 3 and 12": the other end after the day.
        j = skip(i + 2, 1)
        joined = at(j) in _DAYS_TO or at(j) in _DAYS_AND
        spanned = at(j) not in _DAYS_AND or at(skip(i - 1, -1)) in _BETWEEN
        other = skip(j + 1, 1) if joined else j
        end = _day_number(at(other))
        if end is not None and end > day and _month(at(other + 1)) is None:
            return day, end, spanned
        return None
    # "de 3 a 12 de junho", "between 3 and 12 June", "3-12 de junho": the day before it.
    j = i - 2 if at(i - 1) == "de" else i - 1
    k = skip(j - 1, -1)
    joined = at(k) in _DAYS_TO or at(k) in _DAYS_AND
    spanned = at(k) not in _DAYS_AND or at(skip(k - 2, -1)) in _BETWEEN
    start = _day_number(at(skip(k - 1, -1) if joined else k))
    if start is not None and start < day:
        return start, day, spanned
    return None


def _windows(
    words: list[str],
    profile: Profile,
    capitalized: frozenset[str] = frozenset(),
    inside: frozenset[int] = frozenset(),
) -> list[Window]:
    """The periods ``words`` name, in the order named (duplicates removed); ``capitalized``
    holds the words written with a capital inside the question ("May", "Mar"); words at the
    ``inside`` positions belong to a value ("Copacabana Mar Hotel") and name no period."""
    out: list[Window] = []
    temporal = _temporal(profile)
    years = [int(w) for w in words if _YEAR.match(w)]
    # "em 2023" on data that starts in 2024: a year the data lacks, still asked for (its
    # facts then find no rows and say so); a bare number ("mais de 2000") is not a year.
    asked_years = {
        int(w) for i, w in enumerate(words) if _YEAR.match(w) and i and words[i - 1] in _IN_YEAR
    }
    used_years: set[int] = set()
    # "julho deste ano com julho do ano passado": a month takes the relative year right
    # after it, and that year is then no period of its own.
    latest = as_date(temporal.max) if temporal is not None else None
    latest_year = latest.year if latest is not None else None
    relative_years = _relative_years(words, latest_year)
    bound: set[int] = set()
    within: list[tuple[int, Window]] = []  # (where, a month, quarter or half named)
    i = 0
    while i < len(words):
        w = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else ""
        after = words[i + 2] if i + 2 < len(words) else ""
        # "semana 20", "week 20", "semanas 20 e 21", "mês 5" on an ordinal column
        for grain_words, grain in ((_WEEK, "week"), (_MONTH_WORD, "month")):
            if not (_forms(w) & grain_words) or not nxt.isdigit():
                continue
            column = _ordinal_for(profile, grain_words)
            if column is None:
                continue
            j = i + 1
            while j < len(words) and (words[j].isdigit() or words[j] in ("e", "and", "a", "to")):
                if words[j].isdigit():
                    value = int(words[j])
                    out.append(Window(column.name, grain, f"{w.rstrip('s')} {value}", value=value))  # type: ignore[arg-type]
                j += 1
        if temporal is not None:
            month = _month(w) if i not in inside else None
            short = _short_year(nxt, temporal)  # "dez/24", "mar 23"
            clear = (
                w not in _AMBIGUOUS_MONTHS
                or w in capitalized
                or _YEAR.match(nxt or "x")
                or short is not None
            )
            day = _day_of(words, i) if month is not None and clear and short is None else None
            if day is not None and month is not None:
                # "What was the revenue on Feb 10, 2024?", "em 10 de fevereiro": that day.
                # "em 12 de março" on data of September: the latest 12 March before the
                # data ends, still asked for (its facts find no rows and say where the data
                # is), never dropped for an answer about every day.
                day_year = day[1] or _year_for_month(month, years, temporal, any_year=True)
                days = _day_range(words, i, day[0])
                if day_year is not None:
                    used_years.add(day_year)
                    try:
                        if days is not None and days[2]:
                            # "entre 3 e 12 de junho": one span, the month said once.
                            low = date(day_year, month, days[0])
                            high = date(day_year, month, days[1])
                            label = f"{low.isoformat()}/{high.isoformat()}"
                            end = high + timedelta(days=1)
                            out.append(Window(temporal.name, "day", label, start=low, end=end))
                        elif days is not None:
                            # "3 e 12 de junho": two days of the one month.
                            for each in days[:2]:
                                out.append(
                                    _window(temporal.name, "day", date(day_year, month, each))
                                )
                        else:
                            out.append(_window(temporal.name, "day", date(day_year, month, day[0])))
                    except ValueError:
                        pass  # "fevereiro 31": no such day
                    else:
                        i += 1
                        continue
            if month is not None and clear:
                year: int | None = None
                if _YEAR.match(nxt):
                    year = int(nxt)
                elif short is not None:
                    year = short
                elif nxt == "de" and _YEAR.match(after):
                    year = int(after)
                else:
                    at = next((j for j in range(i + 1, i + 3) if j in relative_years), None)
                    if at is not None:
                        year = relative_years[at]
                        bound.add(at)
                if year is not None:
                    used_years.add(year)
                else:
                    year = _year_for_month(month, years, temporal)
                since = (i > 0 and words[i - 1] in _SINCE) or words[max(0, i - 3) : i] == [
                    "a",
                    "partir",
                    "de",
                ]
                first_day = as_date(temporal.min)
                if year is not None and since and first_day and date(year, month, 1) <= first_day:
                    # "How have customers changed since January 2023?" on data that starts
                    # then: the whole series, not January alone.
                    pass
                elif year is not None:
                    out.append(_window(temporal.name, "month", date(year, month, 1)))
                    within.append((i, out[-1]))
            # "o primeiro e o segundo semestre", "Q1", "no 2º trimestre de 2023"
            spans: list[tuple[WindowGrain, int, int]] = []
            if _forms(w) & _QUARTER:
                spans += [("quarter", q, 3) for q in _chained(words, i) if 1 <= q <= 4]
            elif re.fullmatch(r"q[1-4]", w):
                spans.append(("quarter", int(w[1]), 3))
            if _forms(w) & _HALF:
                spans += [("half", h, 6) for h in _chained(words, i) if h in (1, 2)]
            for grain, number, size in spans:
                span_year = next((int(x) for x in words[i + 1 : i + 4] if _YEAR.match(x)), None)
                at = next((j for j in range(i + 1, i + 3) if j in relative_years), None)
                if span_year is None and at is not None:
                    # "o 1º trimestre deste ano"
                    span_year = relative_years[at]
                    bound.add(at)
                if span_year is not None:
                    used_years.add(span_year)
                else:
                    latest = as_date(temporal.max)
                    span_year = years[0] if years else (latest.year if latest else None)
                if span_year is not None:
                    first_month = size * (number - 1) + 1
                    out.append(_window(temporal.name, grain, date(span_year, first_month, 1)))
                    within.append((i, out[-1]))
        i += 1
    if temporal is not None:
        first, last = as_date(temporal.min), as_date(temporal.max)
        # "este ano" / "ano passado": the data's latest year and the one before, in the
        # order named.
        relative = [(at, year) for at, year in relative_years.items() if at not in bound]
        for at, year in list(relative):
            earlier = [window for j, window in within if j < at]
            if earlier and earlier[-1].start is not None and _same_period(words, at):
                # "o 1º trimestre deste ano com o do ano passado": last year's first quarter.
                start = earlier[-1].start
                out.append(_window(temporal.name, earlier[-1].grain, start.replace(year=year)))
                relative.remove((at, year))
                used_years.add(year)
        at = _position(words, _THE_YEAR)
        if at is not None and last is not None and not relative and not years:
            relative.append((at, last.year))
        for _, year in sorted(relative):
            if year not in years:
                years.append(year)
        for year in dict.fromkeys(years):
            if year in used_years or first is None or last is None:
                continue
            if first.year <= year <= last.year or year in asked_years:
                out.append(_window(temporal.name, "year", date(year, 1, 1)))
        if last is not None and first is not None:
            step = (last - first).days / max(1, temporal.distinct - 1)
            out += _recent(words, temporal.name, first, last, step)
            weekend = _last_weekend(words, temporal.name, first, last)
            if weekend is not None:
                out.append(weekend)
    unique: dict[tuple[str, str], Window] = {}
    for window in out:
        unique.setdefault((window.column, window.label), window)
    return list(unique.values())


def rankings(question: Question, profile: Profile, plan: Plan | None) -> list[Plan]:
    """The rankings a question asks for by different measures or orders ("Qual transportadora
    entregou mais e qual tem o menor atraso médio?": the most deliveries, and the lowest
    average delay), each by the plan's dimensions, when there are two or more: the question
    is cut at its "e"/"and"/commas, and each part with a word of rank is read on its own."""
    if plan is None or not plan.dimensions or not question.has("rank"):
        return []
    out: list[Plan] = []
    seen: set[tuple[str, str]] = set()
    for clause in re.split(r"\s*[,;]\s*|\s+(?:e|and|and also|e também)\s+", question.text):
        if _word(_fold(clause), _RANK, _NOT_RANK_BEFORE) is None:
            continue
        read = rule_plan(clause, profile)
        if read is None or read.measures[0].column == "*":
            continue
        key = (read.measures[0].column, read.order)
        if key in seen:
            continue
        seen.add(key)
        out.append(
            plan.model_copy(
                update={"measures": read.measures[:1], "order": read.order, "period": None}
            )
        )
    return out if len(out) >= 2 else []


def _short_year(word: str, temporal: ColumnProfile) -> int | None:
    """A two-digit year after a month ("dez/24") that the data's dates cover, or None."""
    if not re.fullmatch(r"\d{2}", word):
        return None
    first, last = as_date(temporal.min), as_date(temporal.max)
    year = 2000 + int(word)
    return (
        year if first is not None and last is not None and first.year <= year <= last.year else None
    )


def _segments(
    words: list[str], profile: Profile, capitalized: frozenset[str] = frozenset()
) -> dict[str, list[str]]:
    """The values of categorical columns the question names, by column, in the order named."""
    found: dict[str, list[tuple[int, str]]] = {}
    vocabulary = column_vocabulary(profile)
    for column in profile.columns:
        if column.masked or column.kind != "categorical" or yes_no_values(column):
            continue  # a yes/no column is named by its word, not by "no" ("no ano")
        for value, _ in column.top:
            value_words = name_words(value)
            if not value_words:
                continue
            if len("".join(value_words)) < 2:
                # "F" and "M" of a ``genero`` column: "mulheres", "men".
                at = _by_sex(words, value, column)
                if at is not None:
                    found.setdefault(column.name, []).append((at, value))
                continue
            # "TikTok Ads" is "tik tok ads" by its case, and "tiktok ads" as people type it.
            spellings = [value_words, name_words(value.lower())]
            # "pães franceses" names "Pão francês": each word may be a plural of the value's.
            hit = next(
                (
                    i
                    for spelled in spellings
                    for i in range(len(words) - len(spelled) + 1)
                    if all(
                        w == words[i + k] or w in variants(words[i + k])
                        for k, w in enumerate(spelled)
                    )
                ),
                None,
            )
            if hit is not None:
                found.setdefault(column.name, []).append((hit, value))
            else:
                at = _synonym_of(words, value_words, vocabulary)
                if at is None:
                    codes = {w.lower() for w in value.split() if w.isupper() and len(w) <= 3}
                    at = _by_first_word(words, spellings[1], column, vocabulary, codes)
                if at is None:
                    at = _by_near_spelling(words, spellings[1], column, vocabulary)
                if at is None:
                    at = _by_proper_name(words, spellings[1], column, vocabulary, capitalized)
                if at is None:
                    at = _by_translation(words, spellings[1])
                if at is None:
                    at = _by_cognate(words, spellings[1], column, vocabulary)
                if at is None:
                    at = _by_code(words, value, column)
                if at is None:
                    at = _by_state_name(words, value)
                if at is None:
                    at = _by_sex(words, value, column)
                if at is not None:
                    found.setdefault(column.name, []).append((at, value))
    return {name: [v for _, v in sorted(hits)] for name, hits in found.items()}


_KIND_WORDS = frozenset(
    {"ads", "ad", "inc", "ltda", "sa", "co", "corp", "llc", "ltd", "group", "grupo", "store",
     "shop", "online", "app", "me", "eireli"}
)  # fmt: skip


def _by_first_word(
    words: list[str],
    value_words: list[str],
    column: ColumnProfile,
    vocabulary: frozenset[str],
    codes: set[str] | frozenset[str] = frozenset(),
) -> int | None:
    """Where a value of several words is named by its first alone ("tiktok" for ``TikTok
    Ads``), when the others only say what kind of thing it is (ads, ltda, store), the first is
    long enough, names no column and starts no other value. ("a clínica" is not "Clínica
    Geral", nor "no total" "Total Express".)"""
    if len(value_words) < 2:
        return None
    # A word most of the column's values share says what kind of thing they are, as "ads"
    # does: "Livraria" in "Livraria Centro", "Livraria Aeroporto" and "Livraria Norte".
    named = [name_words(v.lower()) for v, _ in column.top]
    common = {
        w for w in {w for n in named for w in n} if 2 * sum(w in n for n in named) > len(named)
    }
    common = common if len(named) > 2 else set()
    # "DC Cajamar": the other words may also be a code in capitals (DC, CD, SP); a month is
    # never a value's distinct word ("janeiro" is no "Rio de Janeiro").
    for k, word in enumerate(value_words):
        rest = value_words[:k] + value_words[k + 1 :]
        if len(word) < 4 or word in vocabulary or word in _MONTHS:
            continue
        if not all(w in _KIND_WORDS or w in codes or w in common for w in rest):
            continue
        if sum(1 for n in named if word in n) != 1:
            continue
        at = _said(words, word, vocabulary)
        if at is not None:
            return at
    # "the north mall store" for ``Livraria Shopping Norte``: the words left without the
    # shared one, said in the other language, when no other value holds them all.
    distinct = [w for w in value_words if w not in common and w not in _KIND_WORDS]
    if 2 <= len(distinct) < len(value_words) and sum(set(distinct) <= set(n) for n in named) == 1:
        at = _by_translation(words, distinct)
        if at is not None:
            return at
    return _by_distinct_part(words, value_words, column, vocabulary)


def _said(words: list[str], word: str, vocabulary: frozenset[str]) -> int | None:
    """Where ``word`` (a value's) is said, as it is or in the other language ("the airport
    store" for ``Livraria Aeroporto``, "downtown" for ``Loja Centro``), by a word that names no
    column."""
    if word in words:
        return words.index(word)
    groups = synonym_groups(word)
    if not groups:
        return None
    for i, said in enumerate(words):
        forms = variants(said)
        if not forms & vocabulary and any(synonym_groups(f) & groups for f in forms):
            return i
    return None


def _by_distinct_part(
    words: list[str], value_words: list[str], column: ColumnProfile, vocabulary: frozenset[str]
) -> int | None:
    """Where a value is named by a part of it no other value has: two or more of its words
    in a row ("Serra Azul" for ``Pousada Serra Azul``, "suporte técnico" for ``Q02 Suporte
    Técnico``; two of them of three letters or more), or one word of eight letters or more
    ("Copacabana" for ``Copacabana Mar Hotel``) that names no column; never a month."""
    others = [name_words(v.lower()) for v, _ in column.top]
    for size in range(len(value_words) - 1, 0, -1):
        for start in range(len(value_words) - size + 1):
            part = value_words[start : start + size]
            if any(w in _MONTHS for w in part):
                continue  # "de janeiro a junho" is no "Rio de Janeiro"
            if size == 1 and (len(part[0]) < 8 or part[0] in vocabulary):
                continue  # "a clínica" is the business, not "Clínica Geral"
            if size > 1 and sum(1 for w in part if w not in _KIND_WORDS and len(w) > 2) < 2:
                continue
            shared = sum(
                1
                for other in others
                if any(other[i : i + size] == part for i in range(len(other) - size + 1))
            )
            if shared != 1:
                continue
            at = next(
                (i for i in range(len(words) - size + 1) if words[i : i + size] == part), None
            )
            if at is not None:
                return at
    return None


def _by_proper_name(
    words: list[str],
    value_words: list[str],
    column: ColumnProfile,
    vocabulary: frozenset[str],
    capitalized: frozenset[str],
) -> int | None:
    """Where a value of several words is named by its first, written with a capital in the
    question as a name is ("Denver's hot desks" for ``Denver LoDo``; "a clínica" stays the
    business), when no other value starts with it and it names no column and no month."""
    if len(value_words) < 2:
        return None
    first = value_words[0]
    if len(first) < 4 or first not in capitalized or first in vocabulary or first in _MONTHS:
        return None
    if sum(1 for v, _ in column.top if name_words(v.lower())[:1] == [first]) != 1:
        return None
    return words.index(first) if first in words else None


def _by_near_spelling(
    words: list[str], value_words: list[str], column: ColumnProfile, vocabulary: frozenset[str]
) -> int | None:
    """Where a one-word value of seven letters or more is named one letter off, as a typo or
    the other language writes it ("residencial" for ``Residential``, "comercial" for
    ``Commercial``, "Guarulhso"), when no other value of the column is that close and the word
    names no column and no month."""
    if len(value_words) != 1 or len(value_words[0]) < 7:
        return None
    value = value_words[0]
    for i, word in enumerate(words):
        forms = variants(word)
        if forms & vocabulary or any(f in _MONTHS for f in forms):
            continue
        if not any(len(f) >= 7 and one_edit(f, value) for f in forms):
            continue
        close = [
            v
            for v, _ in column.top
            if len(name_words(v)) == 1 and any(one_edit(f, name_words(v)[0]) for f in forms)
        ]
        if len(close) == 1:
            return i
    return None


def _by_cognate(
    words: list[str], value_words: list[str], column: ColumnProfile, vocabulary: frozenset[str]
) -> int | None:
    """Where a one-word value is said in the other language as its cognate ("maternidade" for
    ``Maternity``, "ortopedia" for ``Orthopedics``), when no other value of the column is and
    the word names no column and no month."""
    if len(value_words) != 1:
        return None
    for i, word in enumerate(words):
        forms = variants(word)
        if forms & vocabulary or any(f in _MONTHS for f in forms):
            continue
        if not any(cognates(f, value_words[0]) for f in forms):
            continue
        close = [
            v
            for v, _ in column.top
            if len(name_words(v)) == 1 and any(cognates(f, name_words(v)[0]) for f in forms)
        ]
        if len(close) == 1:
            return i
    return None


def _by_code(words: list[str], value: str, column: ColumnProfile) -> int | None:
    """Where a value holding a code in capitals (``Medical ICU``, ``DC SP``) is named by that
    code or its synonym in the other language ("a UTI" for ``Medical ICU``), when no other
    value of the column holds it."""
    codes = [w.lower() for w in re.findall(r"\b[A-Z]{2,4}\b", value)]
    for code in codes:
        holders = [v for v, _ in column.top if code in (w.lower() for w in v.split())]
        if len(holders) != 1:
            continue
        for i, word in enumerate(words):
            if word == code or any(
                synonym_groups(f) & synonym_groups(code) for f in variants(word)
            ):
                return i
    return None


# Brazil's states, by the code a column of states holds (``uf``: SP, BA...).
_STATES = {
    "AC": "acre", "AL": "alagoas", "AP": "amapa", "AM": "amazonas", "BA": "bahia",
    "CE": "ceara", "DF": "distrito federal", "ES": "espirito santo", "GO": "goias",
    "MA": "maranhao", "MT": "mato grosso", "MS": "mato grosso do sul", "MG": "minas gerais",
    "PA": "para", "PB": "paraiba", "PR": "parana", "PE": "pernambuco", "PI": "piaui",
    "RJ": "rio de janeiro", "RN": "rio grande do norte", "RS": "rio grande do sul",
    "RO": "rondonia", "RR": "roraima", "SC": "santa catarina", "SP": "sao paulo",
    "SE": "sergipe", "TO": "tocantins",
}  # fmt: skip
_STATE_WORDS = {code: name.split() for code, name in _STATES.items()}


def _by_state_name(words: list[str], value: str) -> int | None:
    """Where a state held by its code (``BA``) is named by its name ("para a Bahia", "in
    Minas Gerais"); the longest name said wins, so "Mato Grosso do Sul" is not ``MT``."""
    spelled = _STATE_WORDS.get(value.strip())
    if spelled is None:
        return None
    for i in range(len(words) - len(spelled) + 1):
        if words[i : i + len(spelled)] != spelled:
            continue
        longer = any(
            len(other) > len(spelled) and words[i : i + len(other)] == other
            for other in _STATE_WORDS.values()
        )
        if value.strip() == "PA" and i > 0 and words[i - 1] not in ("o", "do", "no", "of", "in"):
            continue  # "para" is mostly "for": the state is "o Pará", "no Pará"
        if not longer:
            return i
    return None


_VALUE_CONNECTORS = frozenset({"de", "da", "do", "das", "dos", "e", "of", "the", "and", "&"})


_SEX_COLUMN = frozenset({"genero", "gender", "sexo", "sex"})
_SEXES = (
    frozenset({"f", "fem", "feminino", "feminina", "female", "mulher", "mulheres", "woman",
               "women"}),
    frozenset({"m", "masc", "masculino", "masculina", "male", "homem", "homens", "man", "men"}),
)  # fmt: skip


def _by_sex(words: list[str], value: str, column: ColumnProfile) -> int | None:
    """Where a value of a sex column (``genero`` F/M, ``gender`` Female/Male) is named by
    its word in either language ("homens e mulheres", "women"); only in a column named so
    ("M" of a size column is no man)."""
    if not _SEX_COLUMN & set(name_words(column.name)):
        return None
    folded = "".join(name_words(value.lower()))
    said = next((s for s in _SEXES if folded in s), None)
    if said is None:
        return None
    return next((i for i, w in enumerate(words) if w in said and len(w) > 1), None)


def _by_translation(words: list[str], value_words: list[str]) -> int | None:
    """Where a value of two or more words is said in the other language, word for word in
    either order ("precision agriculture" for ``Agricultura de Precisão``, "manutenção
    preventiva" for ``Preventive Maintenance``): each word the same across languages (a
    synonym, a plural, a cognate), none of them short."""
    content = [w for w in value_words if w not in _VALUE_CONNECTORS]
    # A short word is a designator ("Torre B" for ``Tower B``): it must be said as it is.
    if len(content) < 2 or not any(len(w) >= 4 for w in content):
        return None
    if any(len(w) < 4 and not (len(w) == 1 or w.isdigit()) for w in content):
        return None
    size = len(content)

    def same(a: str, b: str) -> bool:
        return a == b if len(b) < 4 else same_word_across_languages(a, b)

    for i in range(len(words) - size + 1):
        said = words[i : i + size]
        for order in (content, content[::-1]):
            if all(same(a, b) for a, b in zip(said, order, strict=True)):
                return i
    return None


def _synonym_of(words: list[str], value_words: list[str], vocabulary: frozenset[str]) -> int | None:
    """Where a one-word value is named by a synonym or plural ("defects" for ``Defeito``), or
    None; a word that names a column ("entregas" with a column ``entregas``) names the column,
    not a value (``Delivery``)."""
    if len(value_words) != 1:
        return None
    groups = synonym_groups(value_words[0])
    for i, word in enumerate(words):
        forms = variants(word)
        if forms & vocabulary or (value_words[0] not in forms and not groups):
            continue
        if value_words[0] in forms or any(synonym_groups(f) & groups for f in forms):
            return i
    return None


_NUMERIC_DATE = re.compile(
    r"\b(?:(\d{4})-(\d{1,2})-(\d{1,2})|(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})|(\d{2})/(\d{2}))\b"
)
_MONTH_NAMES = [
    "janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro",
    "outubro", "novembro", "dezembro",
]  # fmt: skip


def _spelled_dates(question: str) -> str:
    """``question`` with its dates written in figures spelled out for the period reader:
    "em 16/01/2024" -> "em 16 janeiro 2024", "on 2024-01-16" and "on 1/16/2024" too. Day and
    month go in the order the language writes them (dd/mm in Portuguese, mm/dd in English)
    unless one of them is over 12; "16/01" needs two figures each ("1/3 das vendas" is a
    fraction)."""
    month_first = guess_language(question) == "en"

    def spelled(match: re.Match[str]) -> str:
        iso_y, iso_m, iso_d, a, b, year, c, d = match.groups()
        if iso_y:
            day, month, full = int(iso_d), int(iso_m), iso_y
        else:
            first, second = (int(a), int(b)) if a else (int(c), int(d))
            day, month = (second, first) if month_first else (first, second)
            if month > 12 >= day:
                day, month = month, day
            full = year or ""
            if len(full) == 2:
                full = f"20{full}"
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return match.group(0)
        return f"{day} {_MONTH_NAMES[month - 1]} {full}".strip()

    return _NUMERIC_DATE.sub(spelled, question)


_MOVED = _GROWTH | _FALL | _set("drop grown variation")
# "from June 3 to June 12", "de março até maio": one span of days, not two periods compared.
_SPAN = re.compile(r"\b(?:from|de|desde|do|da)\b.*\b(?:to|until|till|through|thru|a|ate|ao)\b")


def _spanned(words: list[str], windows: list[Window]) -> list[Window]:
    """Two periods of one date column named as the ends of a span ("from ... to ...",
    "de ... até ...") are the one window from the first's start to the second's end, unless
    the question compares ("compare", "vs") them."""
    if len(windows) != 2 or _word(words, _COMPARE) or _phrase(words, _COMPARE_PHRASES):
        return windows
    if _word(words, _TREND | _MOVED):
        return windows  # "which grew the most from January to June": the two ends compared
    a, b = windows
    if (
        a.column != b.column
        or a.start is None
        or b.start is None
        or a.end is None
        or b.end is None
        or not a.start < b.start
        or not _SPAN.search(" ".join(words))
    ):
        return windows
    last = b.end - timedelta(days=1)
    label = f"{a.start.isoformat()}/{last.isoformat()}"
    return [Window(a.column, "day", label, start=a.start, end=b.end)]


# "maior que o dos outros", "than the other doctors": one segment against the rest.
_OTHERS = frozenset({"outros", "outras", "demais", "others", "other", "rest", "resto"})
# A question opened by one of these asks what, how much or which, not yes or no.
OPEN_STARTS = frozenset(
    {"what", "how", "which", "why", "when", "where", "who", "qual", "quais", "quanto", "quanta",
     "quantos", "quantas", "como", "quando", "onde", "quem", "por", "porque", "compare",
     "compara", "mostre", "show", "list", "liste"}
)  # fmt: skip


def _against_others(
    words: list[str], segments: dict[str, list[str]], profile: Profile
) -> str | None:
    """The column of the one value a question sets against "the others" ("than the other
    specialties": the specialty named; "que o dos outros" with one value named: that one's)."""
    at = [i for i, w in enumerate(words) if w in _OTHERS]
    if not at:
        return None
    single = {c: v for c, v in segments.items() if len(v) == 1}
    for i in at:
        # "the other specialties", "os outros convênios": the column named right after.
        after = " ".join(words[i + 1 : i + 3])
        named = [c for c in named_columns(after, profile) if c in single] if after else []
        if named:
            return named[0]
    return next(iter(single)) if len(segments) == 1 and single else None


def parse(question: str, profile: Profile) -> Question:
    """The parts of ``question`` and the periods and segment values it names."""
    # "the hour of the day with the most arrivals" ranks hours, not days.
    question = HOUR_OF_DAY.sub(
        lambda m: " hora " if m[0].lower().startswith("hora") else " hour ", question
    )
    words = _fold(_spelled_dates(question))
    capitalized = frozenset(w.lower() for w in re.findall(r"(?<=[\w,;:] )[A-Z][a-z]+\b", question))
    windows = _spanned(words, _windows(words, profile, capitalized, _inside_values(words, profile)))
    # A question typed all in lower case ("a receita de denver caiu?") writes names in lower
    # case too: any word of five letters or more may be a name's first word.
    names = (
        capitalized if question != question.lower() else frozenset(w for w in words if len(w) >= 5)
    )
    segments = _segments(words, profile, names)
    parts: list[Part] = []

    def add(kind: PartKind, found: str | None, **detail: Any) -> None:
        if found is not None:
            parts.append(Part(kind, found, detail))

    direction = anomalies.asked_direction(question)
    # "Qual o valor por motivo?" names a column ``motivo``: no question of why.
    drivers = _phrase(words, _DRIVERS_PHRASES) or _word(
        words, _DRIVERS - column_vocabulary(profile)
    )
    if drivers and _forms(drivers) & _CONTRIBUTING and not (direction or _word(words, _CHANGING)):
        drivers = None
    compare = _phrase(words, _COMPARE_PHRASES) or _word(words, _COMPARE)
    previous = _word(words, _PREVIOUS)
    add("anomaly", direction, direction=direction)
    add("drivers", drivers)
    # "mais de 50 minutos" bounds a number; it ranks nothing.
    rank = _word(_fold(blank_bounds(fold(_spelled_dates(question)))), _RANK, _NOT_RANK_BEFORE)
    compared_segments = {c: v for c, v in segments.items() if len(v) >= 2}
    peak = _peak_grain(words, rank) if rank else None
    if peak is not None:
        # "Qual foi o melhor mês?", "which week had the fewest visits?": periods ranked.
        add("peak", f"{rank} {peak[1]}", grain=peak[0])
    else:
        # "Qual loja mais cresceu?": the ranking is of the change, upward or downward.
        grew, fell = bool(_word(words, _GROWTH)), bool(_word(words, _FALL))
        moved = {"moved": "up" if grew else "down"} if grew != fell else {}
        add("rank", rank, **moved)
    add("total", _phrase(words, _TOTAL_PHRASES) or _word(words, _TOTAL))
    trend = _phrase(words, _TREND_PHRASES) or _word(words, _TREND)
    if trend and not (drivers and direction):  # "por que caiu" asks why, not for a trend
        add("trend", trend)
    # "Compare exits in Sales and Engineering in 2024": the segments are compared, in 2024.
    compares_one = bool(previous) or (bool(compare) and not compared_segments)
    # "Qual loja teve o maior crescimento no último trimestre?", "which store grew the most in
    # March?": a growth ranked within one period is against the period before it.
    compares_one = compares_one or bool(rank and _word(words, _GROWTH) and len(windows) == 1)
    periods_compared = len(windows) >= 2 or (len(windows) == 1 and compares_one)
    if periods_compared:
        # "did its volume grow from October to November?" asks yes or no about the change.
        grew, fell = bool(_word(words, _GROWTH)), bool(_word(words, _FALL))
        # "What was the MRR growth from 2023 to 2024?" asks how much: no yes or no.
        polar = not set(words[:1]) & OPEN_STARTS
        asked_move = (
            {"moved": "up" if grew else "down"} if grew != fell and not rank and polar else {}
        )
        add("compare_periods", " / ".join(w.label for w in windows), **asked_move)
    elif compare and not compared_segments and not windows:
        # "compare with the previous month" with no period named: the last two periods
        add("compare_periods", compare)
    for column, values in compared_segments.items():
        add("compare_segments", " / ".join(values), column=column, values=values)
    against = _against_others(words, segments, profile) if not compared_segments else None
    if against is not None:
        # "O tempo de espera do Dr. João Prado é maior que o dos outros?": the one named
        # against every other value of its column, none of them left out.
        column, values = against, segments[against]
        compared_segments = {column: values}
        add("compare_segments", values[0], column=column, values=values, others=True)
    share = _word(words, _SHARE) or ("%" if "%" in question else None)
    # "what share came from Sul": Sul is the share's focus, not a filter.
    focus = {c: v for c, v in segments.items() if c not in compared_segments} if share else {}
    if len(focus) > 1:
        # "What share of our installed capacity comes from agribusiness?": the segment named
        # last is the share's; the others ("installed") restrict the whole.
        last = max(focus, key=lambda c: max(_last_at(words, _fold(v)) for v in focus[c]))
        focus = {last: focus[last]}
    add("share", share, focus=focus)
    if windows and not periods_compared and not drivers:
        add("filter", " / ".join(w.label for w in windows), periods=[w.label for w in windows])
    for column, values in segments.items():
        if column not in compared_segments and column not in focus:
            add("filter", values[0], column=column, values=values[:1])
    hour = _hour_column(profile)
    hours = hours_asked(question) if hour is not None else None
    if hours is not None:
        # "em 12 de março entre 9h e 12h": the hours of the day, beside the day.
        add("filter", hours[2], column=hour, hours=[hours[0], hours[1]])
    weekend = None if segments.keys() & _WEEKDAY_COLUMNS else _weekend(words, profile)
    if weekend is not None:
        # "per day on weekends", "nos fins de semana": Saturdays and Sundays.
        add("filter", " / ".join(weekend[1]), column=weekend[0], values=weekend[1])
    return Question(question, parts, windows, segments)


_WEEKDAY_COLUMNS = frozenset({"dia_da_semana", "day_of_week"})
_WEEKEND_DAYS = (("sábado", "domingo"), ("Saturday", "Sunday"))


def _weekend(words: list[str], profile: Profile) -> tuple[str, list[str]] | None:
    """The weekday column and its Saturday and Sunday when the question says "weekend",
    "fim de semana" or "fins de semana"."""
    if not WEEKEND.search(" ".join(words)):
        return None
    for column in profile.columns:
        held = {v for v, _ in column.top}
        for days in _WEEKEND_DAYS:
            if column.name in _WEEKDAY_COLUMNS and set(days) <= held:
                return column.name, list(days)
    return None


def _clock(name: str) -> str:
    """A time of day as people write it, its parts named ``{name}`` (the hour), ``{name}_m``
    or ``{name}_hm`` (minutes: 9:30, 9h30), ``{name}_s`` (h, am, pm...) and ``{name}_w``
    (noon, meio-dia...)."""
    return (
        rf"(?:(?P<{name}>[01]?[0-9]|2[0-4])(?::(?P<{name}_m>[0-5][0-9]))?\s*"
        rf"(?P<{name}_s>h(?P<{name}_hm>[0-5][0-9])?(?:oras?|rs?)?(?![a-z])|[ap]\.?m\.?(?![a-z])"
        rf"|o'?clock)?"
        rf"|(?P<{name}_w>noon|midday|meio[- ]dia|midnight|meia[- ]noite))"
    )


# "entre 9h e 12h", "das 9 às 12h", "de 9h a 12h", "between 9am and noon", "from 9 to 11am",
# "9h-12h"; "e"/"and" only after "entre"/"between". Read over folded text ("às" is "as").
_HOURS = re.compile(
    rf"(?<![\w:/.-])(?P<opener>entre|between|das|from|de|desde)?\s*{_clock('a')}\s*"
    rf"(?P<to>-|–|ate|a|as|e|and|to|till|until|through)\s*{_clock('b')}(?![\w:/])"
)
# "às 10h", "at 10am", "at 10:00": one hour.
_AT_HOUR = re.compile(rf"\b(?:as|at)\s+{_clock('a')}(?![\w:/])")
_NAMED_HOURS = {"noon": 12, "midday": 12, "meio-dia": 12, "meio dia": 12}
_NAMED_HOURS |= {"midnight": 24, "meia-noite": 24, "meia noite": 24}


def _hour_of(match: re.Match[str], name: str) -> tuple[int, int, str | None] | None:
    """(hour, minutes, suffix) of one end; None when it is not written as a time."""
    g = match.group
    if g(f"{name}_w"):
        return _NAMED_HOURS[g(f"{name}_w")], 0, "named"
    if g(name) is None:
        return None
    suffix = (g(f"{name}_s") or "").replace(".", "") or None
    minutes = g(f"{name}_m") or g(f"{name}_hm")
    suffix = "h" if suffix and suffix[0] == "h" else suffix
    hour = int(g(name))
    if suffix in ("am", "pm"):
        if hour > 12:
            return None
        hour = hour % 12 + (12 if suffix == "pm" else 0)
    return hour, int(minutes or 0), suffix or (":" if minutes else None)


def hours_asked(question: str) -> tuple[int, int, str] | None:
    """The hours of the day a question names, as the first hour and the one after the last
    (a span [start, end) of hour-long intervals, each named by the hour it starts, as hourly
    data dates them), and the words that named them: "entre 9h e 12h" and "between 9am and
    noon" are 9 to 12 (the intervals of 9, 10 and 11); "das 9h às 12h30" reaches 13; "às
    10h", "at 10am" are 10 to 11. A bare number is no hour ("entre 3 e 12 de junho"): one end
    at least is written as a time (9h, 9am, 9:00, noon)."""
    folded = fold(question)
    for match in _HOURS.finditer(folded):
        a, b = _hour_of(match, "a"), _hour_of(match, "b")
        if a is None or b is None or (a[2] is None and b[2] is None):
            continue
        if match.group("to") in ("e", "and") and match.group("opener") not in ("entre", "between"):
            continue
        start, end = a[0], b[0] + (1 if b[1] else 0)
        if b[2] == "pm" and a[2] is None and start < 12 and start + 12 < end:
            start += 12  # "from 2 to 5pm"
        if 0 <= start < end <= 24:
            return start, end, question[match.start() : match.end()].strip()
    for match in _AT_HOUR.finditer(folded):
        a = _hour_of(match, "a")
        if a is not None and a[2] is not None and a[0] < 24:
            return a[0], a[0] + 1, question[match.start() : match.end()].strip()
    return None


_GRAIN_OF: dict[str, WindowGrain] = {
    "dia": "day", "day": "day", "semana": "week", "week": "week", "mes": "month",
    "month": "month", "trimestre": "quarter", "quarter": "quarter", "ano": "year",
    "year": "year",
}  # fmt: skip


def _peak_grain(words: list[str], rank: str) -> tuple[WindowGrain, str] | None:
    """The grain of a ranking of periods: a grain word within two words of the order word
    ("o melhor mês", "mês com mais vendas", "which week had the most"), not followed by a
    number ("semana 20" is a period, not a ranking)."""
    at = words.index(rank)
    for j in range(max(0, at - 3), min(len(words), at + 3)):
        word = words[j]
        grain = _GRAIN_OF.get(word) or _GRAIN_OF.get(word[:-1] if word.endswith("s") else "")
        following = words[j + 1] if j + 1 < len(words) else ""
        if grain is not None and not following.isdigit():
            return grain, word
    return None


def _main_dimension(profile: Profile, question: Question) -> str | None:
    compared = next(
        (p.detail["column"] for p in question.parts if p.kind == "compare_segments"), None
    )
    if compared:
        return str(compared)
    focus = next((p.detail.get("focus") for p in question.parts if p.kind == "share"), None)
    if focus:
        # "Quanto as máquinas representam?": the share among the categories.
        return str(next(iter(focus)))
    kind = _kind_by_values(profile, question.text)
    if kind is not None:
        return kind
    _, dimension, _ = main_columns(profile)
    return dimension


_WHICH_WORDS = frozenset({"qual", "quais", "which", "what"})


def _kind_by_values(profile: Profile, text: str) -> str | None:
    """The column a "which" asks among when the kind of thing is said by a word several of its
    values share: "qual linha de crédito" for ``produto`` (Crédito Rural, Crédito Pessoal),
    "which credit line" too; None when no column, or more than one, fits."""
    words = name_words(text)
    for i, word in enumerate(words):
        if word not in _WHICH_WORDS:
            continue
        said = [w for w in words[i + 1 : i + 4] if len(w) >= 4]
        fits = set()
        for column in profile.columns:
            if column.masked or column.kind != "categorical":
                continue
            value_words = [set(name_words(v)) for v, _ in column.top]
            for w in said:
                sharing = [
                    ws
                    for ws in value_words
                    if w in ws or any(same_word_across_languages(w, v) for v in ws if len(v) >= 4)
                ]
                if 2 <= len(sharing) < len(value_words):
                    fits.add(column.name)
        if len(fits) == 1:
            return fits.pop()
    return None


def _ranked_within(dims: list[str], filters: list[Filter], profile: Profile) -> list[str]:
    """The dimensions of a ranking, less those kept to one value by a filter: "Qual gênero
    vende mais na loja do aeroporto?" ranks the genres within that store, not the one store
    (whose share would be 100%). A ranking left with no dimension takes the data's next one."""
    single = {
        f.column
        for f in filters
        if f.op == "=" or (f.op == "in" and isinstance(f.value, list) and len(f.value) == 1)
    }
    kept = [d for d in dims if d not in single]
    if len(kept) == len(dims) or any(_kind(profile, d) != "temporal" for d in kept):
        return kept
    other = next((d for d in dimension_columns(profile) if d not in single), None)
    return [other, *kept][:2] if other is not None else dims


def reconcile(plan: Plan | None, question: Question, profile: Profile, source: str) -> Plan | None:
    """``plan`` made to cover every part of ``question``: a dimension for a ranking or a share,
    a period for a trend, the named periods as filters (unless they are being compared), the
    compared segment values as an ``in`` filter with their column as the dimension.

    A model's plan (``source == "model"``) keeps its dimensions and period only where a part
    asks for them: a small model adds columns nobody asked about."""
    needs_dimension = (
        question.has("rank") or question.has("share") or question.has("compare_segments")
    )
    needs_period = question.has("trend") or question.has("peak")
    # Periods compared, or one whose change is explained, are the change fact's, not filters.
    compared = question.has("compare_periods") or question.has("drivers")
    windowed = [] if compared else list(question.windows)
    if plan is None:
        if all(p.kind == "anomaly" for p in question.parts):
            return None  # the anomaly fact answers it, from the data's main columns
        measure, _, _ = main_columns(profile)
        column = profile.column(measure) if measure else None
        measures = (
            [Measure(column=column.name, agg=plan_agg(column))]
            if column is not None
            else [Measure(column="*", agg="count")]
        )
        plan = Plan(measures=measures, order=rule_order(question.text))
    update: dict[str, Any] = {}
    if any(is_stock(c) for m in plan.measures if (c := profile.column(m.column)) is not None):
        # "our backlog right now": a level is read at each segment's latest record (the
        # stock's own as-of), not on the one latest date, which may miss a warehouse.
        windowed = [w for w in windowed if not w.now]
    events = [
        m.column
        for m in plan.measures
        if m.agg == "count" and (c := profile.column(m.column)) is not None
        if c.kind == "temporal"
    ]
    if events:
        # "Quantos desligamentos em 2024?" counts ``data_desligamento``: the year is of the
        # exits, not of the hirings the table is dated by.
        windowed = [
            dataclasses.replace(w, column=events[0]) if w.start is not None else w for w in windowed
        ]
    dims = list(plan.dimensions)
    if source == "model" and not needs_dimension:
        dims = []
    if needs_dimension and not [d for d in dims if _kind(profile, d) != "temporal"]:
        dimension = _main_dimension(profile, question)
        if dimension is not None:
            dims = [dimension, *dims][:2]
    filters = list(plan.filters)
    for part in question.parts:
        if part.kind == "compare_segments":
            column = part.detail["column"]
            filters = [f for f in filters if f.column != column]
            if not part.detail.get("others"):
                filters.append(Filter(column=column, op="in", value=list(part.detail["values"])))
            if column not in dims:
                dims = [column, *dims][:2]
        elif part.kind == "filter" and part.detail.get("hours"):
            # "entre 9h e 12h": the intervals from 9 up to 12, on an hour-of-day column.
            column, (start, end) = part.detail["column"], part.detail["hours"]
            filters = [f for f in filters if f.column != column]
            if end - start == 1:
                filters.append(Filter(column=column, op="=", value=start))
            else:
                filters.append(Filter(column=column, op=">=", value=start))
                filters.append(Filter(column=column, op="<", value=end))
            dims = [d for d in dims if d != column]
        elif part.kind == "filter" and part.detail.get("column"):
            # A segment the rules' own reading missed ("tiktok" for TikTok Ads).
            column = part.detail["column"]
            if column in dims and not needs_dimension:
                # "the Cobrança queue": the column's word beside its value names the segment,
                # not a breakdown by queue.
                dims = [d for d in dims if d != column]
            # "Qual gênero vende mais na loja do aeroporto?": one store named beside another
            # breakdown is the rows ranked, not a second breakdown.
            within = len(part.detail["values"]) == 1 and any(
                d != column and _kind(profile, d) != "temporal" for d in dims
            )
            if not any(f.column == column for f in filters) and (column not in dims or within):
                values = list(part.detail["values"])
                if len(values) > 1:
                    filters.append(Filter(column=column, op="in", value=values))
                else:
                    filters.append(Filter(column=column, op="=", value=values[0]))
    if needs_dimension and not question.has("compare_segments"):
        dims = _ranked_within(dims, filters, profile)
    named_filters = {(f.column, f.op) for f in filters}
    for window in windowed:
        for flt in window.filters():
            if (flt.column, flt.op) not in named_filters:
                filters.append(flt)
    if question.has("share") and not question.has("compare_segments"):
        # "what share came from Sul": rank every segment, keeping Sul's row visible.
        share = next(p for p in question.parts if p.kind == "share")
        focused = list(share.detail.get("focus") or question.segments)
        for name in focused:
            filters = [f for f in filters if not (f.column == name and f.op == "=")]
        if focused:
            # "Quanto % vem das unidades de São Paulo?": São Paulo's share among the cities;
            # "unidades" says what São Paulo's rows are, it is no second breakdown.
            dims = focused[:2]
    update["dimensions"] = list(dict.fromkeys(dims))
    update["filters"] = filters[:10]
    period = plan.period
    # "Quantos alunos entraram por mês em 2025?": the months of the year named, a series.
    within = (
        period is not None
        and source == "rules"
        and not compared
        and bool(windowed)
        and all(_GRAIN_ORDER.get(period.grain, 9) < _GRAIN_ORDER.get(w.grain, -1) for w in windowed)
    )
    if (compared or windowed) and not needs_period and not within:
        period = None  # a series over the one period named, or beside a comparison, is noise
    elif source == "model" and not needs_period and not question.has("anomaly"):
        period = None
    peak = next((p for p in question.parts if p.kind == "peak"), None)
    if needs_period and period is None:
        temporal = _temporal(profile)
        if temporal is not None:
            period = Period(column=temporal.name, grain=choose_grain(temporal.min, temporal.max))
    if peak is not None and period is not None:
        grain = peak.detail["grain"]
        if grain != "half":
            period = period.model_copy(update={"grain": grain})
    update["period"] = period
    if question.has("share") or question.has("compare_segments"):
        update["top_n"] = max(plan.top_n, 10)
    return plan.model_copy(update=update)


_GRAIN_ORDER = {"day": 0, "week": 1, "month": 2, "quarter": 3, "half": 4, "year": 5}


def _kind(profile: Profile, name: str) -> str | None:
    column = profile.column(name)
    return column.kind if column is not None else None


_COVERED_BY: dict[str, tuple[str, ...]] = {
    "rank": ("breakdown", "per", "ratio", "nps"),
    "total": ("aggregate", "per", "ratio", "difference", "nps"),
    "trend": ("trend",),
    "anomaly": ("anomaly",),
    "compare_periods": ("change",),
    "drivers": ("change",),
    "compare_segments": ("breakdown", "per", "ratio", "nps"),
    "share": ("breakdown", "ratio"),
    "filter": ("aggregate", "breakdown", "trend", "per", "ratio", "difference", "nps"),
    "peak": ("trend",),
}


def coverage(
    question: Question, facts: list[Fact], planned: set[str], plan: Plan | None
) -> list[dict[str, Any]]:
    """Each part with the planned facts that answer it (``covered`` false: none does)."""
    out = []
    mine = [f for f in facts if f.id in planned]
    filters = {(f.column, str(f.value)) for f in (plan.filters if plan else [])}
    for part in question.parts:
        kinds = _COVERED_BY[part.kind]
        ids = [f.id for f in mine if f.kind in kinds]
        if part.kind == "share":
            ids = [f.id for f in mine if f.kind == "ratio"] or [
                f.id for f in mine if f.kind == "breakdown" and f.rows and "share_pct" in f.rows[0]
            ]
        if part.kind == "drivers":
            ids = [f.id for f in mine if f.kind == "change" and f.values.get("driver") is not None]
        if part.kind == "filter" and plan is not None:
            column = part.detail.get("column")
            if column is not None and not any(c == column for c, _ in filters):
                ids = []
            if part.detail.get("periods") and not plan.filters:
                # "hoje", "right now" on a level: the facts read at the latest date say it.
                now = bool(question.windows) and all(w.now for w in question.windows)
                ids = [f.id for f in mine if f.id in ids and f.as_of is not None] if now else []
        out.append({**part.as_dict(), "covered": bool(ids), "facts": ids})
    return out
