"""Numbers, money, percentages and periods written for a reader, through Babel's CLDR data.

Why Babel and not f-strings: separators, currency placement, month names and quarter names
differ per locale (``6.006,50`` and ``R$ 6.006,50`` in Brazilian Portuguese, ``6,006.50`` in
English, ``março de 2024``, ``1º trimestre de 2024``), and CLDR is where they are kept right.

Rules that decide what a number looks like:

* integers get thousands separators; other numbers at most 2 decimals (2 significant digits
  for tiny ones, so 0.0034 stays visible);
* money (a column :func:`~billumy.insights.profile.money_of` recognises) always has 2 decimals;
  in Portuguese it is written in reais (``R$``) unless the column names another currency; in
  English a currency symbol appears only when the column names one (``price_usd``): we never
  guess dollars;
* percentages have one decimal (``12,5%``, ``12.5%``), or 2 significant digits where one
  decimal would round a non-zero one to 0.0% (``0,0067%``);
* a span of days (``2023-07-01/2023-12-31``) is written as one: ``jul. a dez. de 2023`` /
  ``July–December 2023`` when it is whole months, ``3 a 12 de jun. de 2025`` / ``Jun 3–12,
  2025`` otherwise;
* Babel puts a no-break space between ``R$`` and the amount (CLDR's choice, which keeps them on
  one line); the verifier reads it like any space.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import InvalidOperation
from typing import Any, Literal

from babel.dates import format_date, format_interval, format_skeleton
from babel.lists import format_list
from babel.numbers import format_currency, format_decimal, format_percent

from billumy.insights.model import Scalar

__all__ = ["Formats", "Language", "for_language"]

Language = Literal["pt", "en"]

_LOCALES: dict[Language, str] = {"pt": "pt_BR", "en": "en_US"}
_HALF = re.compile(r"^(\d{4})-H([12])$")
_PERIOD = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?|-Q([1-4]))?$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})/(\d{4}-\d{2}-\d{2})$")


def _month_end(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1) - timedelta(days=1)


def _range(label: Scalar) -> tuple[date, date] | None:
    """The first and last day of a span label ``2023-07-01/2023-12-31``, or None."""
    found = _RANGE.match(str(label))
    if found is None:
        return None
    try:
        first, last = (date.fromisoformat(end) for end in found.groups())
    except ValueError:
        return None
    return (first, last) if first <= last else None


# Beyond this, Babel's decimal quantizing fails (1.5e308 raised InvalidOperation, a 500).
_HUGE = 1e15


def _safe(formatter: Callable[..., str], value: float, *args: Any, **kwargs: Any) -> str:
    """Babel's formatter, or, for a magnitude it cannot quantize, plain scientific notation
    (``1.5e+308``): a number nobody keeps in a sales table, written all the same."""
    if abs(value) >= _HUGE:
        return f"{value:.4g}"
    try:
        return formatter(value, *args, **kwargs)
    except (InvalidOperation, OverflowError, ValueError):
        return f"{value:.4g}"


@dataclass(frozen=True)
class Formats:
    """How one language writes numbers and periods; ``language`` is ``"pt"`` or ``"en"``."""

    language: Language

    @property
    def locale(self) -> str:
        return _LOCALES[self.language]

    def number(self, value: Scalar, places: int = 0) -> str:
        """A plain number: ``6.006,5`` (pt) or ``6,006.5`` (en); labels pass through.
        ``places``: at least that many decimals, so that numbers side by side in a ranking
        line up (``1,90`` beside ``1,65``; see :meth:`places`)."""
        if value is None:
            return "n/d" if self.language == "pt" else "n/a"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return str(value)
        if isinstance(value, float) and not math.isfinite(value):
            # A sum of values near 1e308 overflows; CLDR has no way to write it.
            return "n/d" if self.language == "pt" else "n/a"
        if places > 0 and not (0 < abs(value) < 0.01):
            return _safe(format_decimal, value, format="#,##0." + "0" * places, locale=self.locale)
        if isinstance(value, int) or value.is_integer():
            return _safe(format_decimal, round(value), format="#,##0", locale=self.locale)
        # A ratio under one keeps a third decimal: 0.068 tickets a customer is not 0.07.
        pattern = "@@" if 0 < abs(value) < 0.01 else "#,##0.###" if abs(value) < 1 else "#,##0.##"
        return _safe(format_decimal, value, format=pattern, locale=self.locale)

    @staticmethod
    def places(values: Iterable[Scalar]) -> int:
        """The decimals (0 to 2; 3 when all are under one) the non-integer numbers among
        ``values`` need, for writing them side by side with as many each."""
        shown = [
            v
            for v in values
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        ]
        # Three decimals only where every number is under one (0.064 beside 0.071).
        cap = 3 if shown and all(abs(v) < 1 for v in shown) else 2
        most = 0
        for value in shown:
            if isinstance(value, float) and abs(value) >= 0.01:
                decimals = f"{value:.{cap}f}".rstrip("0").partition(".")[2]
                most = max(most, len(decimals))
        return most

    def money(self, value: Scalar, currency: str | None = None) -> str:
        """An amount of money: ``R$ 6.006,50`` (pt), ``6,006.50`` (en, no currency named),
        ``$6,006.50`` (en, ``USD`` named)."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return self.number(value)
        if isinstance(value, float) and not math.isfinite(value):
            return self.number(value)
        chosen = currency or ("BRL" if self.language == "pt" else None)
        if chosen is None:
            return _safe(format_decimal, value, format="#,##0.00", locale=self.locale)
        return _safe(format_currency, value, chosen, locale=self.locale)

    def pct(self, value: Scalar) -> str:
        """A percentage given in percent units (12.5 -> ``12,5%`` / ``12.5%``)."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return self.number(None)
        if isinstance(value, float) and not math.isfinite(value):
            return self.number(None)
        # A change that one decimal would write as 0.0% is not none: two significant digits
        # (+12,139.78 on 182 million is +0.0067%, not +0.0%).
        pattern = "@@%" if 0 < abs(value) <= 0.05 else "#,##0.0%"
        return _safe(format_percent, value / 100, format=pattern, locale=self.locale)

    def rate(self, value: Scalar, places: int = 0) -> str:
        """A rate in percent units (a part over its whole): as :meth:`pct`, but under 10% with
        a second decimal where it has one (a default rate of 1.95% is not 2.0%), or
        ``places`` decimals (rates side by side, :meth:`places`)."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return self.number(None)
        if isinstance(value, float) and not math.isfinite(value):
            return self.number(None)
        if 0 < abs(value) <= 0.05:
            return self.pct(value)
        if places:
            pattern = "#,##0." + "0" * min(places, 2) + "%"
        else:
            pattern = "#,##0.0#%" if abs(value) < 10 else "#,##0.0%"
        return _safe(format_percent, value / 100, format=pattern, locale=self.locale)

    def points(self, value: Scalar, places: int = 0) -> str:
        """A value kept in percentage points, as its column wrote it (1.65 -> ``1,65%`` /
        ``1.65%``): up to two decimals, as a rate is quoted (``places``: at least that many)."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return self.number(value)
        if isinstance(value, float) and not math.isfinite(value):
            return self.number(None)
        pattern = "#,##0." + "0" * places + "#" * (2 - min(places, 2)) + "%"
        return _safe(format_percent, value / 100, format=pattern, locale=self.locale)

    def decimal2(self, value: float) -> str:
        """A coefficient with exactly 2 decimals (a correlation's r): ``0,85`` / ``0.85``."""
        return _safe(format_decimal, value, format="0.00", locale=self.locale)

    def period(self, label: Scalar, grain: str) -> str:
        """A period label as facts write it (``2024-03``, ``2024-Q1``, ``2024-03-11``) in
        words: ``março de 2024`` / ``March 2024``; anything else is returned as it is."""
        text = str(label)
        ends = _range(text)
        if ends is not None:
            return self._span(*ends)
        half = _HALF.match(text)
        if half is not None:
            year, number = half.groups()
            if self.language == "pt":
                return f"{number}º semestre de {year}"
            return f"{'first' if number == '1' else 'second'} half of {year}"
        match = _PERIOD.match(text)
        if match is None:
            return text
        year, month, day, quarter = match.groups()
        if quarter:
            first = date(int(year), 3 * int(quarter) - 2, 1)
            return format_skeleton("yQQQQ", first, locale=self.locale)
        if month is None:
            return year
        when = date(int(year), int(month), int(day or 1))
        if day is None or grain == "month":
            return format_skeleton("yMMMM", when, locale=self.locale)
        return format_skeleton("yMMMd", when, locale=self.locale)

    def _span(self, first: date, last: date) -> str:
        """Days from ``first`` to ``last``: whole months by their names (``jul. a dez. de
        2023``, ``July–December 2023``), else the days (``3 a 12 de jun. de 2025``, ``Jun
        3–12, 2025``); the year and month said once where both ends share them."""
        months = first.day == 1 and (last + timedelta(days=1)).day == 1
        if months and (first.year, first.month) == (last.year, last.month):
            return self.period(f"{first.year}-{first.month:02d}", "month")
        if first == last:
            return self.period(first.isoformat(), "day")
        pt = self.language == "pt"
        skeleton = ("yMMM" if pt else "yMMMM") if months else "yMMMd"
        shown = format_interval(first, last, skeleton, locale=self.locale)
        return re.sub(r"\s*–\s*", " a " if pt else "–", shown)

    def when(self, label: Scalar, grain: str) -> str:
        """A period with its preposition: ``em março de 2024``, ``na semana de 11 de mar. de
        2024``, ``in March 2024``, ``on Mar 11, 2024``; a span of days ``de jul. a dez. de
        2023``, ``in July–December 2023``."""
        ends = _range(label)
        if ends is not None:
            first, last = ends
            if first != last and not (first.day == 1 and last == _month_end(first)):
                shown = self._span(first, last)
                return f"de {shown}" if self.language == "pt" else f"in {shown}"
            label = first.isoformat()[: 10 if first == last else 7]
            grain = "day" if first == last else "month"
        shown = self.period(label, grain)
        if re.fullmatch(r"\d{4}", shown):
            # A year compared with a half or a quarter: "in 2024", "em 2024", never "in the
            # 2024" / "no 2024".
            return f"em {shown}" if self.language == "pt" else f"in {shown}"
        if self.language == "pt":
            return {
                "week": f"na semana de {shown}",
                "quarter": f"no {shown}",
                "half": f"no {shown}",
            }.get(grain, f"em {shown}")
        return {
            "week": f"in the week of {shown}",
            "day": f"on {shown}",
            "quarter": f"in the {shown}" if shown[:1].isdigit() else f"in {shown}",
            "half": f"in the {shown}",
        }.get(grain, f"in {shown}")

    def periods(self, labels: list[Scalar], grain: str) -> str:
        """Several periods as one list, the year (and in Portuguese the month) said once
        where they share it: ``6 e 13 de mai. de 2024``, ``May 6 and May 13, 2024``,
        ``abril e maio de 2024``."""
        parsed = [_PERIOD.match(str(label)) for label in labels]
        if not labels or any(m is None or m.group(4) or m.group(2) is None for m in parsed):
            return format_list([self.period(x, grain) for x in labels], locale=self.locale)
        days = [date(int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)) for m in parsed if m]
        monthly = grain == "month" or any(m.group(3) is None for m in parsed if m)
        shown = []
        for when in days[:-1]:
            last = days[-1]
            if when.year != last.year:
                skeleton = "yMMMM" if monthly else "yMMMd"
            elif monthly:
                # CLDR has no skeleton for a bare full month name: the stand-alone pattern.
                shown.append(format_date(when, "LLLL", locale=self.locale))
                continue
            else:
                same_month = when.month == last.month and self.language == "pt"
                skeleton = "d" if same_month else "MMMd"
            shown.append(format_skeleton(skeleton, when, locale=self.locale))
        shown.append(format_skeleton("yMMMM" if monthly else "yMMMd", days[-1], locale=self.locale))
        return format_list(shown, locale=self.locale)

    def when_many(self, labels: list[Scalar], grain: str) -> str:
        """Periods with their preposition: ``nas semanas de 6 e 13 de mai. de 2024``, ``in
        the weeks of May 6 and May 13, 2024``; one period as :meth:`when` says it."""
        if len(labels) == 1:
            return self.when(labels[0], grain)
        shown = self.periods(labels, grain)
        if self.language == "pt":
            named = {"week": f"nas semanas de {shown}", "day": f"nos dias {shown}"}
            return named.get(grain, f"no {shown}" if grain == "quarter" else f"em {shown}")
        named = {"week": f"in the weeks of {shown}", "day": f"on {shown}"}
        return named.get(grain, f"in the {shown}" if grain == "quarter" else f"in {shown}")

    def label(self, value: Scalar) -> str:
        """A segment's label: numbers formatted, text as it is."""
        return self.number(value) if isinstance(value, int | float) else str(value)


def for_language(language: str) -> Formats:
    """The formats of ``"pt"``/``"pt-BR"`` or ``"en"``."""
    return Formats("pt" if language.lower().startswith("pt") else "en")
