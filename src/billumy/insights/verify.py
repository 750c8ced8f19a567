"""Check every number in a text against the facts it was written from.

Why: the facts are computed deterministically, but the prose around them is written by a small
language model, and small models invent numbers, round them wrongly, swap digits or carry a
number over from the wrong fact. This module reads numbers and says which facts support them;
:mod:`billumy.insights.checker` uses it for the number claims of the model's narrative (a
sentence with a number no cited fact supports is dropped), and tests use :func:`check` to trace
every number of our own answer to its facts. The checker errs on the side of "unverified": a
false "unverified" costs a sentence, a false "verified" puts a made-up number in front of a
user with our stamp on it. For the same reason a text with no number at all is *not* verified
by :func:`check`: there was nothing to check, and "verified" must mean that something was
checked and agreed (``checked_claims`` tells "nothing to check", 0, from "wrong", unsupported
mentions).

Extraction (:func:`extract_numbers`), in English and Brazilian Portuguese:

* numbers with thousands separators and decimals in either convention (``1,234.5``,
  ``1.234,5``), signs (``-3.2``, ``−3.2``, ``+4%``), currencies (``$``, ``R$``, ``US$``, ``€``,
  ``£``), percentages (``%``, ``percent``, ``por cento``, ``p.p.``, ``pp``, ``percentage
  points``, ``pontos percentuais``), and scales (``k``, ``M``, ``B``, ``bn``, ``thousand``,
  ``million``, ``billion``, ``trillion``, ``mil``, ``mi``, ``milhão``/``milhões``, ``bi``,
  ``bilhão``/``bilhões``, ``tri``, ``trilhão``/``trilhões``);
* ``1.234`` means 1234 in Portuguese and 1.234 in English, ``1,234`` the reverse. The
  language is the one given, else guessed from the number formats in the text (an
  unambiguous ``12,5`` or ``1.234,56`` means Portuguese, ``12.5`` or ``1,234.56`` English),
  else from ``R$``, else from common words. When it stays unknown, both readings are kept
  (English first) and verification accepts either;
* not numbers: fact citations (``[f3]``, ``[f1, f2]``, ``f3``), dates and times (``2024-01-31``,
  ``2024-03``, ``2024-Q1``, ``31/01/2024``, ``03/2024``, ``10:30``), list and heading
  numbering at the start of a line (``1.``, ``2)``, ``## 3.``), and ordinals (``3rd``, ``1º``,
  ``2ª``, ``#1``): they name a position, not a quantity. A bare year (``2024``) *is* a number;
* number words ("two", "três") are not extracted: the model is told to write figures, and
  reading words would make every "one of the regions" a claim to check;
* a malformed number (``1.2.3``) is kept as a mention that nothing can support;
* the one-letter scales ``k``, ``m``, ``b`` count only when attached (``3k``, ``$5m``); units
  are otherwise ignored (``5kg`` is 5), and a range ``10-20%`` reads as 10 and 20%.

Support (:func:`supported_by`): a fact supports a mention when one of its numbers, rounded to
the precision the mention was written with, equals the mention. The precision is half a unit
of the last written digit after scaling: ``12.5%`` accepts 12.45..12.55, ``12%`` accepts
11.5..12.5, ``1.2 million`` accepts 1,150,000..1,250,000 and ``3 mil`` 2,500..3,500. A fact's
numbers are:

* the numeric ``values`` and the numeric cells of its ``rows``;
* numbers written in its ``statement``, its string values and cells, and its column names
  (a segment called "Store 12" supports "12"), with underscores read as spaces;
* years in period labels and dates (``"2024-03"`` or ``2024-01-31`` support the bare year
  2024, and nothing else: not 3, not 31);
* the number of rows (so "the 3 regions" is supported by a three-row breakdown).

A percentage mention is supported only by a number that is a percentage: a value or column
whose name says so (``pct``, ``percent``, ``share``, ``rate``, ``ratio``, ``margin``,
``growth``, ``taxa``, ``participação``...), a ``%`` number in the statement, or a fraction
(a float between -1 and 1) times 100, so a share of 0.4523 supports "45%". A plain mention may
match any number except a fraction times 100 and a ``%`` number written in a text.

Without an explicit sign a mention matches the magnitude ("fell 3.2%" is supported by -3.2,
because prose carries the sign in its verbs); a written sign must agree with a value or cell,
or with a sign written in the statement. Direction words are checked by
:mod:`billumy.insights.checker`, not here.

A number read from text (a statement's "12.5%") stands for everything that rounds to it, and
supports a mention only if all of that rounds to the mention: "12.5%" in a statement supports
"12.5%", but neither "13%" nor "12.47%" (those need the exact value).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from billumy.insights.model import Fact, Scalar
from billumy.language import guess_language

Language = Literal["pt", "en"]

# One scanner for everything: at a given position the first alternative that matches wins, so
# the things that are not numbers (citations, dates, numbering, ordinals) are listed first and
# swallow their digits before the number pattern can see them.
_TOKEN = re.compile(
    r"""
    (?P<cite>\[\s*f[0-9]+(?:\s*[,;–-]\s*f?[0-9]+)*\s*\])
    | (?P<fact_id>(?<!\w)f[0-9]+(?!\w))
    | (?P<date>(?<![^\W_])(?<![.,])(?:
          [0-9]{4}-(?:0?[1-9]|1[0-2])
              (?:-(?:0?[1-9]|[12][0-9]|3[01])
                  (?:[T\x20][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?
                      (?:Z|[+-][0-9]{2}:?[0-9]{2})?)?)?
        | [0-9]{4}-[qthw][0-9]{1,2}
        | [0-9]{1,2}/[0-9]{1,2}/[0-9]{2,4}
        | [0-9]{4}/[0-9]{1,2}(?:/[0-9]{1,2})?
        | [0-9]{1,2}/[0-9]{4}
        | [0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?
      )(?!\w)(?![.,/:-]?[0-9]))
    | (?P<numbering>^[\x20\t]*(?:\#{1,6}[\x20\t]+)?(?:[-*+][\x20\t]+)?[0-9]{1,2}[.)](?=[\x20\t]))
    | (?P<ordinal>(?<![^\W_])(?<![.,])(?:\#[0-9]+|[0-9]+(?:st|nd|rd|th|[ºª°])(?![^\W\d_])))
    | (?P<number>(?<![^\W_])(?<![.,])  # not glued to a word or number; _12%_ counts
        (?P<sign1>[-−+])?
        (?P<currency>(?:R\$|US\$|\$|€|£)\s?)?
        (?P<sign2>[-−+])?
        (?P<digits>
            [0-9]{1,3}(?:\.[0-9]{3})+(?:,[0-9]+)?
          | [0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?
          | [0-9]+(?:[.,][0-9]+)?
          | \.[0-9]+
        )
        (?P<malformed>(?:[.,][0-9]+)+)?
        (?:
            (?P<percent>\s?%|\s?(?:per\s?cent|por\s+cento|pontos?\s+percentuais
                |percentage\s+points?|p\.p\.|pp)(?!\w))
          | \s?(?P<scale>thousands?|millions?|billions?|trillions?|milhão|milhões|milhao|milhoes
                |bilhão|bilhões|bilhao|bilhoes|trilhão|trilhões|trilhao|trilhoes
                |mil|mi|bi|tri|mn|bn)(?!\w)
          | (?P<letter_scale>[kmb])(?!\w)
        )?
      )
    """,
    re.VERBOSE | re.IGNORECASE | re.MULTILINE,
)

_SCALES = {
    "k": 1e3,
    "thousand": 1e3,
    "mil": 1e3,
    "m": 1e6,
    "mn": 1e6,
    "mi": 1e6,
    "million": 1e6,
    "milhão": 1e6,
    "milhões": 1e6,
    "milhao": 1e6,
    "milhoes": 1e6,
    "b": 1e9,
    "bn": 1e9,
    "bi": 1e9,
    "billion": 1e9,
    "bilhão": 1e9,
    "bilhões": 1e9,
    "bilhao": 1e9,
    "bilhoes": 1e9,
    "tri": 1e12,
    "trillion": 1e12,
    "trilhão": 1e12,
    "trilhões": 1e12,
    "trilhao": 1e12,
    "trilhoes": 1e12,
}

# Number formats only one of the two conventions can have written.
_PT_FORMAT = re.compile(
    r"(?<![\w.,])(?:[0-9]{1,3}(?:\.[0-9]{3})+,[0-9]+|[0-9]{1,3}(?:\.[0-9]{3}){2,}"
    r"|[0-9]+,[0-9]{1,2}|[0-9]+,[0-9]{4,}|0,[0-9]+)(?![.,]?[0-9])"
)
_EN_FORMAT = re.compile(
    r"(?<![\w.,])(?:[0-9]{1,3}(?:,[0-9]{3})+\.[0-9]+|[0-9]{1,3}(?:,[0-9]{3}){2,}"
    r"|[0-9]+\.[0-9]{1,2}|[0-9]+\.[0-9]{4,}|0\.[0-9]+)(?![.,]?[0-9])"
)
_THOUSANDS_SEPARATOR: dict[Language, str] = {"pt": ".", "en": ","}

_YEAR = re.compile(r"(?<![0-9])(1[5-9][0-9]{2}|2[0-2][0-9]{2})(?![0-9])")

# Names of values and columns that hold percentages (or fractions to be shown as percentages).
_PERCENT_TOKENS = frozenset({"pct", "pp", "perc", "yoy", "mom", "qoq", "%"})
_PERCENT_PREFIXES = (
    "percent",
    "share",
    "rate",
    "ratio",
    "proportion",
    "fraction",
    "margin",
    "growth",
    "porcent",
    "taxa",
    "particip",
    "propor",
    "fatia",
    "cresc",
    "variac",
    "variaç",
    "margem",
)


@dataclass
class NumberMention:
    """One number as written in a text.

    ``value`` is the preferred reading; ``alternatives`` are the other readings of an
    ambiguous ``1.234`` or ``1,234`` when the language is unknown. ``unit`` is the place value
    of the last written digit, scaled (``12.5%`` → 0.1, ``1.2 million`` → 100000): the mention
    claims a number within half a unit of ``value``. ``signed`` says a sign was written.
    A malformed number has a NaN value, which nothing supports.
    """

    text: str
    value: float
    percent: bool
    start: int
    end: int
    alternatives: list[float] = field(default_factory=list)
    unit: float = 1.0
    alternative_units: list[float] = field(default_factory=list)
    signed: bool = False

    def readings(self) -> list[tuple[float, float]]:
        """Every (value, unit) this mention may mean, the preferred one first."""
        others = zip(self.alternatives, self.alternative_units, strict=True)
        return [(self.value, self.unit), *others]


@dataclass
class Check:
    """The outcome of :func:`check`: ``support`` maps a mention's index to a fact id."""

    verified: bool
    mentions: list[NumberMention]
    unsupported: list[NumberMention]
    support: dict[int, str]

    @property
    def checked_claims(self) -> int:
        """How many claims (numbers) the text makes that were checked against the facts."""
        return len(self.mentions)


# --- extraction -------------------------------------------------------------------------------


def extract_numbers(text: str, language: str | None = None) -> list[NumberMention]:
    """The numbers in ``text``, in order; see the module docstring for what counts."""
    lang = _resolve_language(text, language)
    mentions = []
    for match in _TOKEN.finditer(text):
        if match.group("number") is not None:
            mentions.append(_mention(match, lang))
    return mentions


def _resolve_language(text: str, language: str | None) -> Language | None:
    """The number convention of ``text``: the given language, else a guess, else None."""
    code = (language or "").lower()
    if code.startswith("pt"):
        return "pt"
    if code.startswith("en"):
        return "en"
    pt_formats, en_formats = len(_PT_FORMAT.findall(text)), len(_EN_FORMAT.findall(text))
    if pt_formats and not en_formats:
        return "pt"
    if en_formats and not pt_formats:
        return "en"
    if "R$" in text:
        return "pt"
    guess = guess_language(text)
    return "pt" if guess == "pt" else "en" if guess == "en" else None


def _mention(match: re.Match[str], lang: Language | None) -> NumberMention:
    start, end = match.span("number")
    text = match.group("number")
    signs = (match.group("sign1") or "") + (match.group("sign2") or "")
    negative = signs.count("-") + signs.count("−") == 1
    percent = match.group("percent") is not None
    if match.group("malformed"):
        return NumberMention(text, math.nan, percent, start, end, unit=math.nan, signed=bool(signs))
    scale = _scale(match.group("scale") or match.group("letter_scale"))
    readings = [
        (float(value * scale) * (-1 if negative else 1), float(scale.scaleb(-decimals)))
        for value, decimals in _readings(match.group("digits"), lang)
    ]
    (value, unit), *others = readings
    return NumberMention(
        text=text,
        value=value,
        percent=percent,
        start=start,
        end=end,
        alternatives=[v for v, _ in others],
        unit=unit,
        alternative_units=[u for _, u in others],
        signed=bool(signs),
    )


def _scale(word: str | None) -> Decimal:
    if not word:
        return Decimal(1)
    key = word.lower()
    if key not in _SCALES and key.endswith("s"):
        key = key[:-1]  # English plurals: millions, billions
    return Decimal(_SCALES[key])


def _readings(digits: str, lang: Language | None) -> list[tuple[Decimal, int]]:
    """(value, number of decimals written) for each plausible reading of ``digits``."""
    if digits.startswith("."):
        return [(Decimal("0" + digits), len(digits) - 1)]
    dots, commas = digits.count("."), digits.count(",")
    if dots and commas:  # both: the last one is the decimal separator
        decimal_sep = "." if digits.rfind(".") > digits.rfind(",") else ","
        return [_with_decimal_separator(digits, decimal_sep)]
    if not dots and not commas:
        return [(Decimal(digits), 0)]
    sep = "." if dots else ","
    if dots + commas > 1:  # 1.234.567 or 1,234,567: only thousands separators
        return [(Decimal(digits.replace(sep, "")), 0)]
    head, tail = digits.split(sep)
    decimal = _with_decimal_separator(digits, sep)
    if len(tail) != 3 or len(head) > 3 or head.startswith("0"):
        return [decimal]
    grouped = (Decimal(head + tail), 0)
    if lang is None:  # ambiguous: keep both, the English reading first
        return [decimal, grouped] if sep == "." else [grouped, decimal]
    return [grouped] if sep == _THOUSANDS_SEPARATOR[lang] else [decimal]


def _with_decimal_separator(digits: str, sep: str) -> tuple[Decimal, int]:
    whole, _, fraction = digits.rpartition(sep)
    other = "," if sep == "." else "."
    return Decimal(f"{whole.replace(other, '')}.{fraction}"), len(fraction)


# --- the numbers a fact stands for ------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """A number a fact supports, with what kind of mention it may support (built by
    :func:`numbers_of_scalar` and :func:`numbers_in_text`, compared by :func:`agrees`)."""

    value: float
    unit: float = 0.0  # the precision of a number read from text; values and cells are exact
    percent: bool = False  # a percentage: '%' in the statement or a percent-like name
    plain: bool = True  # may support a plain mention: all but the '%' numbers of a text
    signed: bool = True  # its sign is known: values and cells, or a sign written in a text
    fraction: bool = False  # a float in [-1, 1] that may be shown times 100 as a percentage
    year: bool = False  # a year read from a period label: supports only a bare integer


def _fact_numbers(fact: Fact, language: str | None) -> list[Known]:
    known: list[Known] = []
    for name, value in fact.values.items():
        known += numbers_of_scalar(name, value)
    for row in fact.rows:
        for name, value in row.items():
            known += numbers_of_scalar(name, value)
    # Statements are written in the language of the answer (and of the narrative checked).
    known += numbers_in_text(fact.statement, language or "en")
    for column in fact.columns:
        known += numbers_in_text(column.replace("_", " "), None)
    if fact.rows:
        known.append(Known(float(len(fact.rows))))
    return known


def numbers_of_scalar(name: str, value: Scalar | object) -> list[Known]:
    """The numbers a value or cell named ``name`` supports (a number, or those in a label)."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, int | float | Decimal):
        number = float(value)
        if not math.isfinite(number):
            return []
        fraction = not isinstance(value, int) and abs(number) <= 1
        return [Known(number, percent=_percent_name(name), fraction=fraction)]
    return numbers_in_text(str(value).replace("_", " "), None)


def numbers_in_text(text: str, language: str | None) -> list[Known]:
    """The numbers a statement or label supports, and the years of its dates and periods."""
    known = [Known(float(year), year=True) for year in _YEAR.findall(text)]
    for mention in extract_numbers(text, language):
        for value, unit in mention.readings():
            if math.isfinite(value):
                fraction = not mention.percent and unit < 1 and abs(value) <= 1
                known.append(
                    Known(
                        value,
                        unit,
                        percent=mention.percent,
                        plain=not mention.percent,
                        signed=mention.signed,
                        fraction=fraction,
                    )
                )
    return known


def _percent_name(name: str) -> bool:
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()
    tokens = [t for t in re.split(r"[^0-9a-zà-ÿ%]+", spaced) if t]
    return any(t in _PERCENT_TOKENS or t.startswith(_PERCENT_PREFIXES) for t in tokens)


# --- support ----------------------------------------------------------------------------------


def supported_by(
    mention: NumberMention, facts: Iterable[Fact], language: str | None = None
) -> str | None:
    """The id of the first fact that supports ``mention`` (statements read in ``language``,
    English by default), or None."""
    pools = [(fact.id, _fact_numbers(fact, language)) for fact in facts]
    return _first_support(mention, pools)


def _first_support(mention: NumberMention, pools: Sequence[tuple[str, list[Known]]]) -> str | None:
    for fact_id, known in pools:
        if any(agrees(mention, number) for number in known):
            return fact_id
    return None


def agrees(mention: NumberMention, known: Known) -> bool:
    """Whether ``known`` supports ``mention`` (see the module docstring)."""
    for value, unit in mention.readings():
        if not math.isfinite(value):
            continue
        slack = 1e-9 * max(1.0, abs(value))
        for target, target_unit in _targets(mention, known, unit):
            observed = target if mention.signed else abs(target)
            # Everything the known number may stand for must round to the mention: a
            # statement's "12.5%" supports "12.5%" but neither "13%" nor "12.47%".
            if abs(observed - value) + target_unit / 2 <= unit / 2 + slack:
                return True
    return False


def _targets(mention: NumberMention, known: Known, unit: float) -> list[tuple[float, float]]:
    """The (number, precision) ``known`` stands for, compared with a mention of this kind."""
    exact = (known.value, known.unit)
    if mention.signed and not known.signed:
        return []  # "fell 3.2%" in a statement cannot confirm a written "+3.2%"
    if known.year:
        return [exact] if not mention.percent and unit == 1 else []
    if not mention.percent:
        return [exact] if known.plain else []
    targets = [exact] if known.percent else []
    if known.fraction:
        targets.append((known.value * 100, known.unit * 100))
    return targets


# --- the check --------------------------------------------------------------------------------


def check(
    text: str,
    facts: Sequence[Fact],
    language: str | None = None,
    cited: Sequence[str] | None = None,
) -> Check:
    """Verify every number in ``text`` against ``facts``.

    ``verified`` is true iff the text has at least one mention and every mention is supported:
    a text without numbers is not verified (its ``checked_claims`` is 0).
    When ``cited`` fact ids are given they are tried first, so ``support`` points at the fact
    the narrative cited, but any fact may support a number: the model often cites one fact and
    repeats a number from another, and that number is still true.
    """
    mentions = extract_numbers(text, language)
    pools = [(fact.id, _fact_numbers(fact, language)) for fact in _cited_first(facts, cited or [])]
    support: dict[int, str] = {}
    unsupported: list[NumberMention] = []
    for index, mention in enumerate(mentions):
        fact_id = _first_support(mention, pools)
        if fact_id is None:
            unsupported.append(mention)
        else:
            support[index] = fact_id
    return Check(bool(mentions) and not unsupported, mentions, unsupported, support)


def _cited_first(facts: Sequence[Fact], cited: Sequence[str]) -> list[Fact]:
    rank = {fact_id: i for i, fact_id in enumerate(cited)}
    return sorted(facts, key=lambda fact: rank.get(fact.id, len(rank)))
