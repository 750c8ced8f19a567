"""The claims in the model's prose, read sentence by sentence: numbers, segments, columns,
periods, ranks and directions, in Brazilian Portuguese and English alike.

Why: a small model writes fluent sentences that name the wrong store as the leader, say sales
fell when they rose, or put one store's number next to another's name. Checking only the
numbers stamped "Sudeste has the highest total units" as verified (it has no number) on data
where Sul leads. So :class:`ClaimReader` finds six kinds of claim (words are matched folded:
lower case, no accents, on word boundaries), and :mod:`billumy.insights.checker` checks each
against the facts:

* **number**: as :mod:`billumy.insights.verify` reads them; a bare year (``2024``) is a period;
* **segment**: a value of a dimension column the facts (or the profile's most common values)
  mention ("Norte", "Rio de Janeiro"). Values of one or two letters, or that are common
  words, count only as written (case and all) after a word of a column name ("loja A");
* **column**: a column's name or its words (``vendas_reais``, "vendas reais"). Names made only
  of generic words (``data``, ``mes``, ``valor``...) are not claims;
* **period**: see :mod:`billumy.insights.periods`;
* **rank** (highest, lowest, most, least, top, bottom, best, worst, leads, maior, menor,
  melhor, pior, líder, lidera, último lugar; "o que mais vendeu", "a mais alta"; see
  :mod:`billumy.insights.lexicon`): about the segment named nearest to the word (in its
  clause first), else the period named nearest; with neither it is not a claim. A comparison
  ("Centro vendeu mais que Norte", "higher than") is a claim only between two named segments;
* **direction** (up, down, grew, rose, increased, fell, dropped, declined, cresceu, subiu,
  aumentou, caiu, queda, alta, diminuiu, recuou...): about the segment named nearest in its
  clause (if any) and the periods the sentence names; "não teve queda" is negated.

Numbers, ranks and directions *assert* something; segments, columns and periods name what a
sentence is about.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from billumy.insights import lexicon
from billumy.insights.periods import PeriodMention, When, find_periods
from billumy.insights.profile import name_words
from billumy.insights.sentences import fold
from billumy.insights.verify import NumberMention, extract_numbers

__all__ = ["Claim", "ClaimKind", "ClaimReader", "Reading"]

# "question" is not read from a sentence: the checker marks a sentence that asks (one ending in
# "?") with it, so that the sentence fails; a narrative states, it does not ask.
ClaimKind = Literal["number", "segment", "column", "period", "rank", "direction", "question"]

_TOKEN = re.compile(r"[^\W_]+")
# Column names made only of these words are not claims: they are how prose speaks anyway.
_GENERIC = lexicon.vocabulary(
    "data date datetime dia day dias days mes month meses months semana week semanas weeks ano "
    "year anos years periodo period time tempo hora valor value valores values total totals id "
    "nome name tipo type row rows linha linhas count quantidade"
)
# Segment values that are also common words need the column's word before them ("loja A").
_COMMON = lexicon.vocabulary(
    "a o e de do da em no na um uma as os ao the an and of in on at to is it or by yes no sim "
    "nao total outros outras other others all todos todas geral"
)


@dataclass(frozen=True)
class Claim:
    """One checkable statement in a sentence: its kind, and the words that make it."""

    kind: ClaimKind
    text: str
    start: int
    end: int

    @property
    def asserts(self) -> bool:
        """Numbers, ranks and directions say something; segments, columns and periods only
        name what it is about (checked all the same: a wrong name drops the sentence)."""
        return self.kind in ("number", "rank", "direction")


@dataclass(frozen=True)
class Reading:
    """A claim as read, with what checking it needs: the segment or column it names, the
    periods, the number, the polarity and subject of a rank or direction."""

    claim: Claim
    name: str = ""  # segment (folded) or column
    whens: tuple[When, ...] = ()
    mention: NumberMention | None = None
    high: bool = True  # rank and direction polarity (up)
    subject: str | None = None  # rank/direction: the segment it is about (folded)
    other: str | None = None  # comparison: the segment compared with
    period: PeriodMention | None = None  # rank: the period it is about
    negated: bool = False
    moving: bool | None = None  # rank: the sentence speaks of rises (True) or falls (False)


class ClaimReader:
    """Reads the claims of sentences, knowing the segment values (folded) and the columns to
    look for; ``originals`` maps a folded value to how the data writes it."""

    def __init__(
        self,
        names: Iterable[str],
        columns: Iterable[str],
        originals: dict[str, str],
        language: str | None = None,
    ) -> None:
        self.language = language
        self.english = (language or "").lower().startswith("en")
        self.originals = originals
        columns = set(columns)
        self.column_words = set().union(*(name_words(c) for c in columns)) if columns else set()
        self.segment_pattern = _alternation(names)
        self.columns = {
            c: re.compile(r"(?<![^\W_])" + r"[\s_-]+".join(map(re.escape, w)) + r"s?(?![^\W_])")
            for c in columns
            if (w := name_words(c)) and not set(w) <= _GENERIC
        }

    # --- reading -----------------------------------------------------------------------------

    def read(self, sentence: str) -> list[Reading]:
        """The claims in ``sentence``, in order of where they start."""
        folded = fold(sentence)
        found: list[Reading] = []
        periods = find_periods(sentence, self.language)
        taken = [(p.start, p.end) for p in periods]
        found += [Reading(Claim("period", p.text, p.start, p.end), whens=p.whens) for p in periods]
        segments = self._segments(sentence, folded, taken)
        found += segments
        taken += [(s.claim.start, s.claim.end) for s in segments]
        for column, pattern in self.columns.items():
            for match in pattern.finditer(folded):
                if not _overlaps(match.span(), taken):
                    claim = Claim("column", sentence[match.start() : match.end()], *match.span())
                    found.append(Reading(claim, name=column))
                    taken.append(match.span())
        for mention in extract_numbers(sentence, self.language):
            span = (mention.start, mention.end)
            if _overlaps(span, taken):
                continue
            if _bare_year(mention):
                year = (When("year", int(mention.value)),)
                periods.append(PeriodMention(mention.text, *span, year))
                found.append(Reading(Claim("period", mention.text, *span), whens=year))
            else:
                found.append(Reading(Claim("number", mention.text, *span), mention=mention))
        found += self._words(sentence, folded, taken, segments, periods)
        return sorted(_unique(found), key=lambda f: f.claim.start)

    def _segments(self, sentence: str, folded: str, taken: list[tuple[int, int]]) -> list[Reading]:
        if self.segment_pattern is None:
            return []
        out = []
        for match in self.segment_pattern.finditer(folded):
            name, (start, end) = match.group(), match.span()
            if _overlaps((start, end), taken):
                continue
            if (len(name) <= 2 or name in _COMMON) and not self._written_as_value(
                sentence, name, start, end
            ):
                continue
            claim = Claim("segment", sentence[start:end], start, end)
            out.append(Reading(claim, name=re.sub(r"\s+", " ", name)))
        return out

    def _written_as_value(self, sentence: str, name: str, start: int, end: int) -> bool:
        """A short or common-word value counts as written exactly after a column's word."""
        before = _TOKEN.findall(fold(sentence[:start]))
        original = self.originals.get(name)
        return sentence[start:end] == original and bool(before) and before[-1] in self.column_words

    def _words(
        self,
        sentence: str,
        folded: str,
        taken: list[tuple[int, int]],
        segments: list[Reading],
        periods: list[PeriodMention],
    ) -> list[Reading]:
        """Direction and rank claims, each tied to the segment (or period) it is about."""
        tokens = [m for m in _TOKEN.finditer(folded) if not _overlaps(m.span(), taken)]
        words = [m.group() for m in tokens]
        named_periods = tuple(w for p in periods for w in p.whens)
        out: list[Reading] = []
        moving: bool | None = None
        for i, match in enumerate(tokens):
            up = lexicon.direction(words, i)
            if up is None:
                continue
            moving = up if moving is None else moving
            subject = _nearest(
                _within(segments, lexicon.clause(folded, match.start())), match.start()
            )
            out.append(
                Reading(
                    Claim("direction", sentence[match.start() : match.end()], *match.span()),
                    high=up,
                    subject=subject.name if subject else None,
                    whens=named_periods,
                    negated=lexicon.negated(words, i, self.english),
                )
            )
        for i, match in enumerate(tokens):
            rank = lexicon.rank(words, i, self.english)
            if rank is None:
                continue
            (high, comparative), where = rank, match.start()
            claim = Claim("rank", sentence[where : match.end()], *match.span())
            if comparative:
                before = _nearest([s for s in segments if s.claim.end <= where], where)
                after = _nearest([s for s in segments if s.claim.start >= match.end()], where)
                if before is not None and after is not None and before.name != after.name:
                    out.append(Reading(claim, high=high, subject=before.name, other=after.name))
                continue
            local = _within(segments, lexicon.clause(folded, where))
            subject = _nearest(local or segments, where)
            if subject is not None:
                out.append(Reading(claim, high=high, subject=subject.name, moving=moving))
                continue
            period = _nearest_period(periods, where)
            if period is not None:
                out.append(Reading(claim, high=high, period=period))
        return out


# --- reading words -----------------------------------------------------------------------------


def _alternation(names: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for every segment value, longest first, on word boundaries."""
    ordered = sorted({n for n in names if n.strip()}, key=len, reverse=True)
    if not ordered:
        return None
    parts = [r"\s+".join(map(re.escape, name.split())) for name in ordered]
    return re.compile(r"(?<![^\W_])(?:" + "|".join(parts) + r")(?![^\W_])")


def _overlaps(span: tuple[int, int], taken: Iterable[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in taken)


def _bare_year(mention: NumberMention) -> bool:
    """``2024`` alone (no currency, sign, decimals, scale or percent) names a year."""
    return (
        mention.text.isdigit()
        and len(mention.text) == 4
        and 1900 <= mention.value <= 2100
        and not mention.percent
    )


def _unique(found: list[Reading]) -> list[Reading]:
    """One claim per kind and folded words in a sentence: naming Norte twice is one claim."""
    seen: set[tuple[str, str, bool, str | None]] = set()
    out = []
    for item in found:
        key = (item.claim.kind, fold(item.claim.text), item.high, item.subject)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _within(items: list[Reading], clause: tuple[int, int]) -> list[Reading]:
    return [i for i in items if clause[0] <= i.claim.start and i.claim.end <= clause[1]]


def _nearest(items: list[Reading], position: int) -> Reading | None:
    def distance(item: Reading) -> tuple[int, bool]:
        claim = item.claim
        gap = position - claim.end if claim.end <= position else max(0, claim.start - position)
        return gap, claim.start > position

    return min(items, key=distance, default=None)


def _nearest_period(periods: list[PeriodMention], position: int) -> PeriodMention | None:
    def distance(period: PeriodMention) -> tuple[int, bool]:
        gap = position - period.end if period.end <= position else max(0, period.start - position)
        return gap, period.start > position

    return min(periods, key=distance, default=None)
