"""Scoring one ``/api/insights`` response against one case: pure functions, no server.

What is measured, per case (:class:`CaseScore`):

* **plan covers the question**: every expected item is held by one of the response's facts
  (a row of it, or its ``values``, with the item's labels among its cells or the fact's
  filter ``params``, a quarter by both of its bounds there, and a number that agrees with the
  item's value; of the item's ``kind`` when it names one). A miss here is the planner's: the
  number was never computed;
* **answer complete**: every expected item is stated by one sentence of the ``answer``: the
  sentence names the item's labels and holds a number that agrees with its value; a
  ``text_any`` item needs one of its patterns to match the answer. A miss here with the plan
  covered is the answer writer's;
* **language right**: the answer's ``language`` is the case's;
* **wrong numbers** (must be 0): in a clause of the answer (sentences are cut at ``;`` and at
  sentence ends) that names all of an item's labels, numbers of the item's sort (percent or
  not) are stated, none agrees with the item's value, and one of them is not even a number
  the response's facts hold for those labels: a number said of a label that is not its value.
  Numbers that are true of the label but answer something else (its item count beside its
  sales) are not counted wrong, nor are numbers of facts about no label at all (the grand
  total, the row count): the "answer complete" check already misses the value;
* **false verified** (must be 0): a model insight marked ``verified`` whose text matches a
  ``must_not`` pattern, has a wrong number by the rule above, or gives a segment of the data
  (a value of a categorical column, from the response's profile) numbers none of which the
  facts hold for it, one of them not even a grand total or a count of rows (``Moda tem o
  maior total de quantidade: 97`` when 97 is Livros'): the verifier must tie a number to
  what it is said of, not only find it somewhere in the facts;
* **must_not**: the case's forbidden patterns that match the answer.

Numbers are read with :func:`billumy.insights.verify.extract_numbers` in the answer's language,
after blanking dates (``22 e 29 de abr. de 2024``, ``Jun 24, 2024``, ``março de 2024``),
bare years and week numbers, which are labels, not amounts. A number agrees with a value when
it is within 0.5% of it, or 0.01, or half a unit of its last written digit (``R$ 1,2 mi``
claims 1,150,000..1,250,000), whichever is widest; the sign is left to the prose ("caiu").

Labels are found accent- and case-insensitively. A period label is found in any of the
ways an answer writes it: ``2024-03``, ``03/2024``, ``março de 2024``, ``mar. de 2024``,
``March 2024``; a week or day ``2024-04-22`` as ``22 de abr.`` (also inside ``22 e 29 de
abr.``), ``Apr 22``, ``22/04``; ``2024-Q1`` as ``1º trimestre`` or ``Q1``; ``2024-H1`` as
``primeiro semestre``, ``first half`` or ``H1``, or by naming January and June.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from billumy.evaluation.cases import Case, Expected, fold
from billumy.insights.verify import NumberMention, extract_numbers

__all__ = [
    "CaseScore",
    "agrees",
    "label_spans",
    "mask_dates",
    "misattributed",
    "score",
    "segments_of",
    "wrong_numbers",
]

RELATIVE_TOLERANCE = 0.005
ABSOLUTE_TOLERANCE = 0.01

_PT_MONTHS = [
    "janeiro", "fevereiro", "marco", "abril", "maio", "junho",
    "julho", "agosto", "setembro", "outubro", "novembro", "dezembro",
]  # fmt: skip
_PT_ABBR = ["jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez"]
_EN_MONTHS = [
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
]  # fmt: skip
_EN_ABBR = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_ORD_PT = ("primeiro", "segundo", "terceiro", "quarto")
_ORD_EN = ("first", "second", "third", "fourth")
_ORD_SUFFIX = ("st", "nd", "rd", "th")


def _month_word(month: int) -> str:
    """A regex for month ``month`` (1..12) in folded pt or en text; the Portuguese
    abbreviations need their dot (``out.``, ``set.``), the English ones stand alone."""
    i = month - 1
    words = {_PT_MONTHS[i], _EN_MONTHS[i], _EN_ABBR[i], rf"{_PT_ABBR[i]}\."}
    if month == 9:
        words.add("sept")
    return r"\b(?:" + "|".join(sorted(words, key=len, reverse=True)) + r")(?![a-z])"


_ANY_MONTH = r"(?:" + "|".join(_month_word(m) for m in range(1, 13)) + r")\.?"
_LIST = r"(?:\s*(?:,|\be\b|\band\b)\s*\d{1,2})*"
_DATE_PHRASES = re.compile(
    "|".join(
        [
            # whole ISO and slashed dates first: a bare year must not split 2024-06-24
            r"(?<![\d.,])\d{4}-\d{2}(?:-\d{2})?(?!\d)",
            r"(?<![\d.,/])\d{1,2}/\d{1,2}(?:/\d{2,4})?(?![\d/])",
            r"(?<![\d.,/])\d{1,2}/\d{4}(?![\d/])",
            rf"\b\d{{1,2}}{_LIST}\s+de\s+{_ANY_MONTH}(?:\s+de\s+\d{{4}})?",  # 22 e 29 de abr.
            rf"{_ANY_MONTH}\s+\d{{1,2}}\b(?:,?\s+\d{{4}})?",  # Apr 22, 2024
            rf"\b\d{{1,2}}\s+{_ANY_MONTH}",  # 22 April
            rf"{_ANY_MONTH}(?:\s+de)?\s+\d{{4}}\b",  # março de 2024, March 2024
            r"(?<![\d.,])(?:19|20)\d{2}(?![\d]|[.,]\d)",  # a bare year
            r"\b(?:semanas?|weeks?)\s+\d{1,2}(?:\s*(?:,|\be\b|\band\b)\s*\d{1,2})*\b",
        ]
    )
)
_CLAUSE_END = re.compile(r";|[.!?](?=\s+[A-ZÀ-Ý(])|\n")


def mask_dates(text: str) -> str:
    """``text`` with its date phrases, bare years and week numbers blanked (same length)."""
    folded = fold(text)
    chars = list(text)
    for match in _DATE_PHRASES.finditer(folded):
        for i in range(*match.span()):
            chars[i] = " "
    return "".join(chars)


@cache
def _period_patterns(label: str) -> tuple[re.Pattern[str], ...]:
    parts = label.split("-")
    year = parts[0]
    forms: list[str] = []
    if len(parts) == 1:
        forms.append(rf"(?<![\d/.,-]){year}(?!\d|[-/]\d)")
    elif parts[1].startswith("Q"):
        n = int(parts[1][1])
        forms += [
            rf"\b{year}-q{n}\b",
            rf"\bq{n}\b",
            rf"\bt{n}\b",
            rf"\b{n}\s*[o°]?\s*trimestre",
            rf"\b{_ORD_PT[n - 1]}\s+trimestre",
            rf"\b{n}{_ORD_SUFFIX[n - 1]}\s+quarter",
            rf"\b{_ORD_EN[n - 1]}\s+quarter",
        ]
    elif parts[1].startswith("H"):
        n = int(parts[1][1])
        forms += [
            rf"\b{year}-h{n}\b",
            rf"\bh{n}\b",
            rf"\bs{n}\b",
            rf"\b{n}\s*[o°]?\s*semestre",
            rf"\b{_ORD_PT[n - 1]}\s+semestre",
            rf"\b{n}{_ORD_SUFFIX[n - 1]}\s+half",
            rf"\b{_ORD_EN[n - 1]}\s+half",
            # "de janeiro a junho", "January to June"
            rf"{_month_word(6 * n - 5)}\.?.{{0,40}}?{_month_word(6 * n)}",
        ]
    else:
        month = int(parts[1])
        word = _month_word(month)
        if len(parts) == 2:
            forms += [
                rf"(?<!\d){year}-{parts[1]}(?!\d|-\d)",
                rf"(?<![\d/]){month:d}/{year}\b",
                rf"(?<![\d/]){parts[1]}/{year}\b",
                # março de 2024, abril e maio de 2024, March 2024, April and May 2024
                rf"{word}\.?(?:\s*(?:,|\be\b|\band\b)\s*[a-z]+\.?)*,?\s+(?:de\s+)?{year}\b",
            ]
        else:
            day = int(parts[2])
            forms += [
                rf"(?<!\d){label}(?!\d)",
                rf"(?<![\d/])0?{day}/0?{month}(?:/{year})?(?![\d/])",
                rf"(?<![\d,])0?{day}{_LIST}\s+de\s+{word}",  # 22 de abr., 22 e 29 de abr.
                rf"{word}\.?\s+0?{day}\b",  # Apr 22
                rf"(?<![\d,])0?{day}\s+{word}",  # 22 April
            ]
    return tuple(re.compile(f) for f in forms)


def label_spans(folded: str, kind: str, label: str) -> list[tuple[int, int]]:
    """Where the ``kind`` (``segment`` or ``period``) label is named in ``folded`` text."""
    if kind == "segment":
        pattern = re.compile(r"(?<![\w-])" + re.escape(fold(label)) + r"(?![\w]|-\w)")
        return [m.span() for m in pattern.finditer(folded)]
    return [m.span() for p in _period_patterns(label) for m in p.finditer(folded)]


def _names_all(folded: str, item: Expected) -> bool:
    return all(label_spans(folded, kind, label) for kind, label in item.labels)


def _close(number: float, value: float) -> bool:
    tolerance = max(ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE * abs(value))
    return abs(abs(number) - abs(value)) <= tolerance


def agrees(mention: NumberMention, value: float, pct: bool) -> bool:
    """Whether ``mention`` states ``value`` (in percent when ``pct``), given how it was
    rounded (see the module docstring)."""
    if mention.percent != pct:
        return False
    for reading, unit in mention.readings():
        if math.isnan(reading):
            continue
        tolerance = max(ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE * abs(value), unit / 2)
        if abs(abs(reading) - abs(value)) <= tolerance:
            return True
    return False


# --- facts -------------------------------------------------------------------------------------


def _rows(fact: dict[str, Any]) -> list[list[Any]]:
    """The fact's rows and its ``values`` as one more row, each with the fact's ``params``
    (its filter values: they hold for every row)."""
    params = list(fact.get("params") or [])
    rows = [list(r.values()) + params for r in fact.get("rows") or [] if isinstance(r, dict)]
    values = fact.get("values")
    if isinstance(values, dict):
        rows.append(list(values.values()) + params)
    return rows


def _cell_has(cell: Any, kind: str, label: str) -> bool:
    if kind == "segment":
        return isinstance(cell, str) and fold(cell) == fold(label)
    if "-H" in label:
        return True  # no fact labels half-years: the value alone decides
    if isinstance(cell, int) and not isinstance(cell, bool):
        return len(label) == 4 and cell == int(label)
    if not isinstance(cell, str):
        return False
    return cell == label or (cell.startswith(label) and cell[len(label)] in "-T ")


def _quarter_bounds(row: Sequence[Any], label: str) -> bool:
    """Whether ``row`` holds the bounds of quarter ``label`` (``2024-Q2``: a filter from
    ``2024-04-01`` to before ``2024-07-01``)."""
    quarter = re.fullmatch(r"(\d{4})-Q([1-4])", label)
    if quarter is None:
        return False
    year, n = int(quarter[1]), int(quarter[2])
    start = f"{year}-{3 * n - 2:02d}-01"
    end = f"{year + n // 4}-{(3 * n) % 12 + 1:02d}-01"
    cells = [c for c in row if isinstance(c, str)]
    return any(c.startswith(start) for c in cells) and any(c.startswith(end) for c in cells)


def _row_has(row: Sequence[Any], item: Expected) -> bool:
    return all(
        any(_cell_has(c, kind, label) for c in row)
        or (kind == "period" and _quarter_bounds(row, label))
        for kind, label in item.labels
    )


def _numbers(row: Iterable[Any]) -> list[float]:
    return [
        float(c)
        for c in row
        if isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c)
    ]


def _row_states(row: Sequence[Any], item: Expected) -> bool:
    if item.value is None:
        return True
    value = item.value
    for number in _numbers(row):
        if _close(number, value) or (item.pct and abs(number) <= 1 and _close(100 * number, value)):
            return True
    return False


def covered(item: Expected, facts: Sequence[dict[str, Any]]) -> bool:
    """Whether one of ``facts`` holds ``item`` (see the module docstring)."""
    if item.text_any:
        return True
    for fact in facts:
        if item.kind and fact.get("kind") != item.kind:
            continue
        if any(_row_has(row, item) and _row_states(row, item) for row in _rows(fact)):
            return True
    return False


def _own(item: Expected, facts: Sequence[dict[str, Any]]) -> list[float]:
    """The numbers the facts hold in rows that carry all of ``item``'s labels."""
    return [n for f in facts for row in _rows(f) if _row_has(row, item) for n in _numbers(row)]


def _global(facts: Sequence[dict[str, Any]]) -> list[float]:
    """Numbers about no label at all: rows without text (a total, a correlation) of facts
    without filters, and each fact's number of rows ("the 5 categories")."""
    out: list[float] = []
    for fact in facts:
        out.append(float(len(fact.get("rows") or [])))
        if fact.get("params"):
            continue
        for row in _rows(fact):
            if not any(isinstance(c, str) for c in row):
                out += _numbers(row)
    return out


def _true_of(item: Expected, facts: Sequence[dict[str, Any]]) -> list[float]:
    """The numbers a clause naming ``item``'s labels may state without being wrong: its own
    and the global ones (a clause may name a segment and the grand total beside it)."""
    return _own(item, facts) + _global(facts)


def segments_of(response: dict[str, Any]) -> list[str]:
    """The values of the data's categorical columns that the response's profile lists."""
    profile = response.get("profile") or {}
    out = []
    for column in profile.get("columns") or []:
        if isinstance(column, dict) and column.get("kind") == "categorical":
            out += [t["value"] for t in column.get("top") or [] if isinstance(t.get("value"), str)]
    return out


def misattributed(
    text: str, segments: Sequence[str], facts: Sequence[dict[str, Any]], language: str
) -> list[str]:
    """Numbers ``text`` gives a segment that the facts do not hold for it (see the module
    docstring), each as ``"97 for Moda"``."""
    masked, folded = mask_dates(text), fold(text)
    general = _global(facts)
    found = []
    for start, end in _clauses(masked):
        said = _mentions(masked[start:end], language)
        if not said:
            continue
        for segment in segments:
            if not label_spans(folded[start:end], "segment", segment):
                continue
            own = _own(Expected(segment=segment), facts)
            if any(agrees(m, n, m.percent) for m in said for n in own):
                continue
            stray = [m for m in said if not any(agrees(m, n, m.percent) for n in general)]
            if stray:
                found.append(f"{stray[0].text.strip()} for {segment}")
    return found


# --- text --------------------------------------------------------------------------------------


def _clauses(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in _CLAUSE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def _mentions(masked: str, language: str) -> list[NumberMention]:
    return [m for m in extract_numbers(masked, language) if not math.isnan(m.value)]


def states(text: str, item: Expected, language: str) -> bool:
    """Whether ``text`` (one sentence of an answer) names ``item``'s labels and states its
    value."""
    folded = fold(text)
    if not _names_all(folded, item):
        return False
    if item.value is None:
        return True
    value = item.value
    return any(agrees(m, value, item.pct) for m in _mentions(mask_dates(text), language))


def wrong_numbers(
    text: str, items: Sequence[Expected], facts: Sequence[dict[str, Any]], language: str
) -> list[str]:
    """The numbers ``text`` says of an expected label that are not its value (see the
    module docstring), each as ``"R$ 9,00 for Centro = 142,625.60"``."""
    masked, folded = mask_dates(text), fold(text)
    found = []
    for start, end in _clauses(masked):
        for item in items:
            value = item.value
            if value is None or not item.labels or not _names_all(folded[start:end], item):
                continue
            # A number inside the label itself ("Rodovia BR-277") is its name, not a value.
            clause = masked[start:end]
            for kind, label in item.labels:
                if kind == "segment":
                    clause = re.sub(re.escape(label), " ", clause, flags=re.IGNORECASE)
            said = [m for m in _mentions(clause, language) if m.percent == item.pct]
            if not said or any(agrees(m, value, item.pct) for m in said):
                continue
            true = _true_of(item, facts)
            for mention in said:
                if not any(agrees(mention, n, mention.percent) for n in true):
                    found.append(f"{mention.text.strip()} for {item.describe()}")
    return found


def _matches(patterns: Iterable[str], text: str) -> list[str]:
    hits = []
    for pattern in patterns:
        compiled = re.compile(pattern, re.IGNORECASE | re.MULTILINE)
        match = compiled.search(text) or compiled.search(fold(text))
        if match:
            hits.append(f"/{pattern}/ matched {match.group(0)!r}")
    return hits


# --- a case ------------------------------------------------------------------------------------


@dataclass
class CaseScore:
    """The outcome of one case; ``problems`` says what failed, one line each, prefixed by
    the check (``plan:``, ``answer:``, ``language:``, ``wrong:``, ``must_not:``,
    ``verified:``, ``error:``)."""

    case_id: str
    expected: int = 0
    covered: int = 0
    stated: int = 0
    language_ok: bool = False
    wrong_numbers: int = 0
    false_verified: int = 0
    must_not_hits: int = 0
    error: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def plan_covers(self) -> bool:
        return self.error is None and self.covered == self.expected

    @property
    def answer_complete(self) -> bool:
        return self.error is None and self.stated == self.expected

    @property
    def passed(self) -> bool:
        return (
            self.plan_covers
            and self.answer_complete
            and self.language_ok
            and self.wrong_numbers == 0
            and self.false_verified == 0
            and self.must_not_hits == 0
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "plan_covers": self.plan_covers,
            "answer_complete": self.answer_complete,
            "language_ok": self.language_ok,
            "expected_items": self.expected,
            "covered_items": self.covered,
            "stated_items": self.stated,
            "wrong_numbers": self.wrong_numbers,
            "false_verified": self.false_verified,
            "must_not_hits": self.must_not_hits,
            "error": self.error,
            "problems": self.problems,
        }


def failed(case: Case, error: str) -> CaseScore:
    """The score of a case whose request failed."""
    return CaseScore(case.id, expected=len(case.expect), error=error, problems=[f"error: {error}"])


def _hint(sentences: Sequence[str], item: Expected, language: str) -> str:
    """What the answer says near ``item``'s labels, for the failure list."""
    for text in sentences:
        if item.labels and _names_all(fold(text), item):
            said = [m.text.strip() for m in _mentions(mask_dates(text), language)]
            return f" (a sentence names it with {', '.join(said) or 'no number'})"
    return ""


def score(case: Case, response: dict[str, Any]) -> CaseScore:
    """Score ``response`` (the insight record: ``answer``, ``facts``, ``insights``) against
    ``case``."""
    answer = response.get("answer") or {}
    facts = [f for f in response.get("facts") or [] if isinstance(f, dict)]
    language = str(answer.get("language") or "")
    lang = "pt" if language.startswith("pt") else "en"
    sentences = [str(s.get("text", "")) for s in answer.get("sentences") or []]
    text = str(answer.get("text") or " ".join(sentences))
    result = CaseScore(case.id, expected=len(case.expect), language_ok=language == case.language)
    if not result.language_ok:
        result.problems.append(f"language: answered in {language or 'nothing'}")
    for item in case.expect:
        is_covered = covered(item, facts)
        result.covered += is_covered
        if not is_covered:
            result.problems.append(f"plan: no fact holds {item.describe()}")
        if item.text_any:
            is_stated = bool(_matches(item.text_any, text))
        else:
            is_stated = any(states(s, item, lang) for s in sentences)
        result.stated += is_stated
        if not is_stated:
            hint = "" if item.text_any else _hint(sentences, item, lang)
            result.problems.append(f"answer: missing {item.describe()}{hint}")
    valued = [i for i in case.expect if i.value is not None and i.labels]
    for sentence in sentences:
        for wrong in wrong_numbers(sentence, valued, facts, lang):
            result.wrong_numbers += 1
            result.problems.append(f"wrong: {wrong}")
    for hit in _matches(case.must_not, text):
        result.must_not_hits += 1
        result.problems.append(f"must_not: {hit}")
    segments = segments_of(response)
    for insight in response.get("insights") or []:
        if not isinstance(insight, dict) or insight.get("verified") is not True:
            continue
        said = f"{insight.get('title', '')}\n{insight.get('text', '')}"
        bad = _matches(case.must_not, said) + wrong_numbers(said, valued, facts, lang)
        bad += misattributed(said, segments, facts, lang)
        if bad:
            result.false_verified += 1
            result.problems.append(f"verified: insight {insight.get('title')!r}: {bad[0]}")
    return result
