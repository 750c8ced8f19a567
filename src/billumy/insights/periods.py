"""Periods: the ones a narrative names, the ones a fact covers, as spans of days.

A narrative names periods in words (``março de 2024``, ``13 e 20 de mai. de 2024``, ``May 13,
2024``, ``semana 20``, ``week 20``, ``1º trimestre``, ``Q1 2024``) or as labels (``2024-03``,
``2024-05-13``, ``2024-Q1``, ``13/05/2024``); a fact covers the periods its rows and values
label (``2024-03``, ``2024-Q1``, ``2024``, and ``2024-05-13`` standing for a day, or for the
week it starts when the fact is weekly). Both become :class:`Span` s of days, and a period
named agrees with a fact when their spans overlap: "maio" agrees with the week of 13 May.

A period named without a year (``em maio``, ``semana 20``) is read in each year the facts
cover. Week numbers are ISO weeks (the week of Monday 13 May 2024 is week 20). Bare years
(``2024``) are numbers to :mod:`billumy.insights.verify`; :mod:`billumy.insights.claims`
turns them into periods. Relative periods ("a última semana", "last month") are not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from billumy.insights.model import Scalar
from billumy.insights.sentences import fold

__all__ = [
    "PeriodMention",
    "Span",
    "When",
    "as_date",
    "covered_span",
    "find_periods",
    "label_span",
    "year_span",
]

Grain = Literal["day", "week", "month", "quarter", "year"]

MONTHS = {  # month names and abbreviations, pt-BR and English, folded
    "janeiro": 1, "january": 1, "jan": 1,
    "fevereiro": 2, "february": 2, "fev": 2, "feb": 2,
    "marco": 3, "march": 3, "mar": 3,
    "abril": 4, "april": 4, "abr": 4, "apr": 4,
    "maio": 5, "may": 5, "mai": 5,
    "junho": 6, "june": 6, "jun": 6,
    "julho": 7, "july": 7, "jul": 7,
    "agosto": 8, "august": 8, "ago": 8, "aug": 8,
    "setembro": 9, "september": 9, "set": 9, "sep": 9, "sept": 9,
    "outubro": 10, "october": 10, "out": 10, "oct": 10,
    "novembro": 11, "november": 11, "nov": 11,
    "dezembro": 12, "december": 12, "dez": 12, "dec": 12,
}  # fmt: skip
# Names that are also ordinary words ("may", "mar", "out", "set", "ago", "dez"): a period only
# next to a day or a year.
_AMBIGUOUS = frozenset(n for n in MONTHS if len(n) <= 4 and n not in ("maio", "june", "july"))
_ABBREVIATED = frozenset(
    re.split(" ", "jan fev feb mar abr apr mai jun jul ago aug set sep sept out oct nov dez dec")
)
_ORDINALS = {
    "primeiro": 1, "segundo": 2, "terceiro": 3, "quarto": 4,
    "first": 1, "second": 2, "third": 3, "fourth": 4,
}  # fmt: skip

_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_YEAR = r"(?:19|20)[0-9]{2}"
_DAY = r"(?:0?[1-9]|[12][0-9]|3[01])"
_MORE = r"(?:\s*(?:,|e|and|&|a|to|-|–)\s*(?:o\s+|the\s+)?" + _DAY + r"(?:st|nd|rd|th|o)?)*"

# Alternatives in priority order, over folded text: the first to match at a position wins.
_PERIOD = re.compile(
    rf"""
    (?P<iso>(?<![\w.,/-])(?P<iso_y>{_YEAR})-(?:
          (?P<iso_m>0[1-9]|1[0-2])(?:-(?P<iso_d>{_DAY}))?
          (?:[t\x20][0-9]{{2}}:[0-9]{{2}}(?::[0-9]{{2}})?)?
        | q(?P<iso_q>[1-4]) | w(?P<iso_w>[0-5]?[0-9]))(?![\w/-]))
    | (?P<slash>(?<![\w.,/])(?P<sl_a>[0-9]{{1,2}})/(?P<sl_b>[0-9]{{1,2}})/(?P<sl_y>{_YEAR})
        (?![\w/]))
    | (?P<slash_month>(?<![\w.,/])(?P<slm_m>0?[1-9]|1[0-2])/(?P<slm_y>{_YEAR})(?![\w/]))
    | (?P<day_month>(?<![\w.,])(?P<dm_d>{_DAY})(?:o|st|nd|rd|th)?(?P<dm_more>{_MORE})
        \s+(?P<dm_de>de\s+|of\s+)?(?P<dm_m>{_MONTH})(?![a-z])(?P<dm_dot>\.)?
        (?:,?\s+(?:de\s+)?(?P<dm_y>{_YEAR}))?(?![\w]))
    | (?P<month_day>(?<![\w.])(?P<md_m>{_MONTH})\.?\s+(?P<md_d>{_DAY})(?:st|nd|rd|th)?
        (?P<md_more>{_MORE})(?:,?\s+(?P<md_y>{_YEAR}))?(?![\w.,]?[0-9])(?![a-z]))
    | (?P<week>(?<![\w.])(?:semanas?|weeks?)\s+(?:n[.o]?\s*|no\.\s*|\#\s*)?(?P<wk>[0-5]?[0-9])
        (?P<wk_more>(?:\s*(?:,|e|and|&|a|to|-|–)\s*[0-5]?[0-9])*)
        (?:\s+(?:de|of)\s+(?P<wk_y>{_YEAR}))?(?![\w.,]?[0-9]))
    | (?P<quarter>(?<![\w.])(?:
          q(?P<q_a>[1-4])(?:\s*(?:de\s+|of\s+)?(?P<q_ay>{_YEAR}))?
        | (?P<q_by>{_YEAR})\s*q(?P<q_b>[1-4])
        | (?P<q_c>[1-4])(?:o|st|nd|rd|th)?\s*(?:trimestre|quarter)
          (?:\s+(?:de|of)\s+(?P<q_cy>{_YEAR}))?
        | (?:o\s+|the\s+)?(?P<q_d>primeiro|segundo|terceiro|quarto|first|second|third|fourth)
          \s+(?:trimestre|quarter)(?:\s+(?:de|of)\s+(?P<q_dy>{_YEAR}))?
      )(?!\w))
    | (?P<month>(?<![\w.])(?P<m_m>{_MONTH})(?![a-z])\.?(?:,?\s+(?:de\s+)?(?P<m_y>{_YEAR})(?!\w))?)
    """,
    re.VERBOSE,
)


def as_date(value: Any) -> date | None:
    """The day of a date, a datetime or an ISO text (``2024-03-11``, ``2024-03-11 10:00:00``);
    None for anything else."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return datetime.fromisoformat(str(value)[:19]).date()
    except ValueError:
        return None


@dataclass(frozen=True, order=True)
class Span:
    """Days from ``start`` up to, not including, ``end``."""

    start: date
    end: date

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class When:
    """A period as named, its year possibly unsaid: a day (``month``, ``day``), an ISO week
    (``number``), a month, a quarter (``number``) or a year."""

    grain: Grain
    year: int | None
    month: int = 0
    day: int = 0
    number: int = 0

    def span(self, year: int | None = None) -> Span | None:
        """The days it covers in its year, else in ``year``; None when it names no real day
        (31 February, week 53 of a 52-week year) or no year is known."""
        y = self.year if self.year is not None else year
        if y is None:
            return None
        try:
            if self.grain == "day":
                first = date(y, self.month, self.day)
                return Span(first, first + timedelta(days=1))
            if self.grain == "week":
                first = date.fromisocalendar(y, self.number, 1)
                return Span(first, first + timedelta(days=7))
            if self.grain == "month":
                return Span(date(y, self.month, 1), _next_month(y, self.month))
            if self.grain == "quarter":
                return Span(date(y, 3 * self.number - 2, 1), _next_month(y, 3 * self.number))
            return year_span(y)
        except ValueError:
            return None


@dataclass(frozen=True)
class PeriodMention:
    """A period named in a text: where, and the one or more periods it names (``13 e 20 de
    maio`` names two days)."""

    text: str
    start: int
    end: int
    whens: tuple[When, ...]


def _next_month(year: int, month: int) -> date:
    return date(year + month // 12, month % 12 + 1, 1)


def year_span(year: int) -> Span:
    return Span(date(year, 1, 1), date(year + 1, 1, 1))


def covered_span(first: date, last: date, distinct: int) -> Span:
    """The days a date column's values stand for, from its ``first`` and ``last`` date and
    how many ``distinct`` dates it holds: monthly rows (28 days or more apart) stand for their
    whole month, whichever day they are dated ("2024-12-01" and "2024-12-31" both hold
    December), weekly ones for the week their last date starts, others for their day."""
    step = (last - first).days / max(1, distinct - 1)
    if step >= 28:
        return Span(first.replace(day=1), _next_month(last.year, last.month))
    return Span(first, last + timedelta(days=7 if step >= 7 else 1))


def _int(value: str | None) -> int | None:
    return int(value) if value else None


def _days(first: str, more: str | None) -> list[int]:
    return [int(first), *(int(d) for d in re.findall(r"[0-9]+", more or ""))]


def find_periods(text: str, language: str | None = None) -> list[PeriodMention]:
    """The periods named in ``text`` (pt-BR or English), in order; see the module docstring.
    ``language`` says how to read ``03/04/2024``: day first in Portuguese (the default), month
    first in English, unless one of the two is over 12."""
    folded = fold(text)
    mentions = []
    for match in _PERIOD.finditer(folded):
        whens = _whens(match, text, (language or "pt").lower().startswith("en"))
        if whens:
            start, end = match.span()
            if folded[end - 1] == "." and folded[start : end - 1].split()[-1] not in _ABBREVIATED:
                end -= 1  # "em maio." ends a sentence; "13 de mai." abbreviates
            mentions.append(PeriodMention(text[start:end], start, end, tuple(whens)))
    return mentions


def _whens(match: re.Match[str], original: str, month_first: bool) -> list[When]:
    g = match.group
    if g("iso"):
        year = int(g("iso_y"))
        if g("iso_q"):
            return [When("quarter", year, number=int(g("iso_q")))]
        if g("iso_w"):
            return [When("week", year, number=int(g("iso_w")))]
        if g("iso_d"):
            return [When("day", year, int(g("iso_m")), int(g("iso_d")))]
        return [When("month", year, int(g("iso_m")))]
    if g("slash"):
        a, b = int(g("sl_a")), int(g("sl_b"))
        if a > 12 or (b <= 12 and not month_first):
            day, month = a, b
        else:
            day, month = b, a
        return [When("day", int(g("sl_y")), month, day)]
    if g("slash_month"):
        return [When("month", int(g("slm_y")), int(g("slm_m")))]
    if g("day_month"):
        name = g("dm_m")
        if name in _AMBIGUOUS and not (g("dm_y") or g("dm_de") or g("dm_dot")):
            return []  # "7 out of 10", "5 may grow"
        month = MONTHS[name]
        return [When("day", _int(g("dm_y")), month, d) for d in _days(g("dm_d"), g("dm_more"))]
    if g("month_day"):
        name = g("md_m")
        if name in _AMBIGUOUS and not (g("md_y") or original[match.start()].isupper()):
            return []  # "out 20 stores"; "May 13" and "mar. 11, 2024" are periods
        month = MONTHS[name]
        return [When("day", _int(g("md_y")), month, d) for d in _days(g("md_d"), g("md_more"))]
    if g("week"):
        weeks = _days(g("wk"), g("wk_more"))
        return [When("week", _int(g("wk_y")), number=n) for n in weeks if 1 <= n <= 53]
    if g("quarter"):
        for key, year_key in (("q_a", "q_ay"), ("q_b", "q_by"), ("q_c", "q_cy"), ("q_d", "q_dy")):
            if g(key):
                number = _ORDINALS.get(g(key)) or int(g(key))
                return [When("quarter", _int(g(year_key)), number=number)]
    if g("month"):
        name, said = g("m_m"), _int(g("m_y"))
        if name in _AMBIGUOUS and said is None and not _named_month(original, match.start()):
            return []
        return [When("month", said, MONTHS[name])]
    return []


_MONTH_PREPOSITION = re.compile(r"(?:^|\W)(?:in|of|during|since|until|through|by|em|de)\s+$")


def _named_month(original: str, start: int) -> bool:
    """``May`` capitalised after a preposition ("in May", "em Mar.") is the month."""
    before = fold(original[max(0, start - 10) : start])
    return original[start].isupper() and _MONTH_PREPOSITION.search(before) is not None


_RANGE = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2})/([0-9]{4}-[0-9]{2}-[0-9]{2})$")
_LABEL = re.compile(
    r"^(?P<y>(?:1[5-9]|2[0-2])[0-9]{2})(?:-(?:(?P<m>0[1-9]|1[0-2])(?:-(?P<d>[0-3][0-9])"
    r"(?:[T ][0-9:.+Z-]*)?)?|Q(?P<q>[1-4])))?$"
)


def label_span(label: Scalar, grain: str | None = None, *, bare_year: bool = False) -> Span | None:
    """The days a fact's period label covers: ``2024-03`` a month, ``2024-Q1`` a quarter,
    ``2024-05-13`` a day, or the week it starts when ``grain`` is ``week``; ``2024`` a year
    only when ``bare_year`` (a label in a period column, not any number); ``2023-07-01/
    2023-12-31`` the days from the first to the last, both in. None otherwise."""
    if isinstance(label, bool) or label is None:
        return None
    text = str(label).strip()
    ends = _RANGE.match(text)
    if ends is not None:
        try:
            first, last = (date.fromisoformat(end) for end in ends.groups())
        except ValueError:
            return None
        return Span(first, last + timedelta(days=1)) if first <= last else None
    match = _LABEL.match(text)
    if match is None or (isinstance(label, int | float) and not bare_year):
        return None
    year = int(match.group("y"))
    try:
        if match.group("q"):
            return When("quarter", year, number=int(match.group("q"))).span()
        if match.group("d"):
            first = date(year, int(match.group("m")), int(match.group("d")))
            days = 7 if grain == "week" else 1
            return Span(first, first + timedelta(days=days))
        if match.group("m"):
            return When("month", year, int(match.group("m"))).span()
    except ValueError:
        return None
    return year_span(year) if bare_year else None
