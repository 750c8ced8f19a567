"""The claims in the model's prose, each checked against the facts: a sentence is kept only
when every claim in it agrees.

Why: a small model writes fluent sentences that name the wrong store as the leader, say sales
fell when they rose, or put one store's number next to another's name. Checking only the
numbers stamped "Sudeste has the highest total units" as verified (it has no number) on data
where Sul leads. So every sentence is read for six kinds of claim, in Brazilian Portuguese and
English alike (words are matched folded: lower case, no accents, on word boundaries):

* **number**: as :mod:`billumy.insights.verify` reads and matches them. A number is also
  bound to the segments it is about (:mod:`billumy.insights.evidence`): when a sentence names
  segments, a number that only another segment's row or values hold does not agree
  ("Norte sold R$ 137.978,50" when that is Centro's total);
* **segment**: a value of a dimension column the facts (or the profile's most common values)
  mention ("Norte", "Rio de Janeiro"); it must be mentioned by a cited fact. Values of one
  or two letters, or that are common words, count only as written (case and all) after a
  word of a column name ("loja A");
* **column**: a column's name or its words (``vendas_reais``, "vendas reais"); it must be a
  column of a cited fact. Names made only of generic words (``data``, ``mes``, ``valor``...)
  are not claims;
* **period**: see :mod:`billumy.insights.periods`; bare years too. It must overlap a period a
  cited fact covers;
* **rank** (highest, lowest, most, least, top, bottom, best, worst, leads, maior, menor,
  melhor, pior, líder, lidera, último lugar; "o que mais vendeu", "a mais alta"): about the
  segment named nearest to the word, which must be at that end of a cited ranking (over the
  measure named in the sentence, when one is); with no segment named, about the period named
  nearest, which must hold the highest or lowest point of a cited series; with neither, it is
  not a claim. "Maior queda"/"biggest drop" also agrees with the most severe case of a cited
  anomaly. Comparisons ("Centro vendeu mais que Norte", "higher than") between two named
  segments must agree with a cited ranking; comparisons with anything else are not claims;
* **direction** (up, down, grew, rose, increased, fell, dropped, declined, cresceu, subiu,
  aumentou, caiu, queda, alta, diminuiu, recuou...): must agree with a cited trend (its
  stated direction or its last change; with a period named, the change into a point in that
  period) or anomaly case (of the segment named nearest, if any). A negated direction ("não
  teve queda", "did not fall") agrees when a cited fact looked and found none.

A claim agrees when one of the facts the insight cites agrees with it (any fact when it cites
none); fact citations written in the sentence (``[f2]``) count as cited. A sentence with no
claim (advice, interpretation) is kept, but checks nothing: :attr:`TextCheck.verified` needs
at least one claim, and every kept sentence's claims agree by construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from billumy.insights import lexicon
from billumy.insights.evidence import Evidence, Series, read_fact
from billumy.insights.model import Fact, Profile
from billumy.insights.periods import PeriodMention, Span, When, find_periods
from billumy.insights.profile import name_words
from billumy.insights.sentences import fold, split_sentences
from billumy.insights.verify import NumberMention, agrees, extract_numbers

__all__ = ["Claim", "ClaimChecker", "SentenceCheck", "TextCheck"]

ClaimKind = Literal["number", "segment", "column", "period", "rank", "direction"]


_CITATION = re.compile(r"(?<!\w)f([0-9]+)(?!\w)", re.IGNORECASE)
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


@dataclass
class SentenceCheck:
    """A sentence, its claims, those no cited fact agrees with, and the facts that agreed."""

    text: str
    claims: list[Claim] = field(default_factory=list)
    failed: list[Claim] = field(default_factory=list)
    facts: set[str] = field(default_factory=set)

    @property
    def kept(self) -> bool:
        return not self.failed

    @property
    def assertions(self) -> int:
        """How many of its claims assert something (see :attr:`Claim.asserts`)."""
        return sum(1 for claim in self.claims if claim.asserts)


@dataclass
class TextCheck:
    """A text checked sentence by sentence."""

    sentences: list[SentenceCheck]

    @property
    def kept(self) -> list[SentenceCheck]:
        return [s for s in self.sentences if s.kept]

    @property
    def dropped(self) -> list[SentenceCheck]:
        return [s for s in self.sentences if not s.kept]

    @property
    def text(self) -> str:
        """The kept sentences, in order."""
        return " ".join(s.text for s in self.kept)

    @property
    def checked_claims(self) -> int:
        """Claims that assert something (numbers, ranks, directions) in the kept sentences;
        every claim of a kept sentence agreed."""
        return sum(s.assertions for s in self.kept)

    @property
    def verified(self) -> bool:
        """The kept text asserts at least one thing, and every claim in it agreed: names
        alone ("Foque no Sul") check nothing worth the stamp."""
        return self.checked_claims > 0

    @property
    def facts(self) -> list[str]:
        return sorted({i for s in self.kept for i in s.facts}, key=lambda i: (len(i), i))


@dataclass(frozen=True)
class _Found:
    """A claim as read, with what checking it needs."""

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


class ClaimChecker:
    """Checks texts against ``facts`` (read once); ``profile`` adds the segment values and
    columns no fact mentions, so that naming them is a claim (that then fails)."""

    def __init__(
        self, facts: Sequence[Fact], language: str | None = None, profile: Profile | None = None
    ) -> None:
        self.language = language
        self.english = (language or "").lower().startswith("en")
        self.evidence = {fact.id: read_fact(fact, language) for fact in facts}
        names: set[str] = set().union(*(e.names for e in self.evidence.values()))
        columns: set[str] = set().union(*(e.columns for e in self.evidence.values()))
        self.originals: dict[str, str] = {}
        for fact in facts:
            for value in [*fact.values.values(), *(c for r in fact.rows for c in r.values())]:
                if isinstance(value, str):
                    self.originals.setdefault(fold(value), value)
        segments: dict[str, set[str]] = {}
        for evidence in self.evidence.values():
            for dimension, values in evidence.by_dimension.items():
                segments.setdefault(dimension, set()).update(values)
        if profile is not None:
            for column in profile.columns:
                columns.add(column.name)
                if column.kind in ("categorical", "boolean") and not column.masked:
                    for value, _ in column.top:
                        if any(c.isalpha() for c in value) and len(value) <= 80:
                            segments.setdefault(column.name, set()).add(fold(value))
                            self.originals.setdefault(fold(value), value)
        names |= set().union(*segments.values()) if segments else set()
        for evidence in self.evidence.values():
            if evidence.covers in segments:
                # An anomaly check looked at every segment: "Centro não teve queda" is about it.
                evidence.names = evidence.names | segments[evidence.covers]
        self.column_words = set().union(*(name_words(c) for c in columns)) if columns else set()
        self.segment_pattern = _alternation(names)
        self.columns = {
            c: re.compile(r"(?<![^\W_])" + r"[\s_-]+".join(map(re.escape, w)) + r"s?(?![^\W_])")
            for c in columns
            if (w := name_words(c)) and not set(w) <= _GENERIC
        }
        self.measures: set[str] = set().union(*(e.measures for e in self.evidence.values()))

    # --- the check ---------------------------------------------------------------------------

    def check(self, text: str, cited: Sequence[str] = ()) -> TextCheck:
        """``text`` split into sentences, each checked (see :meth:`check_sentence`)."""
        return TextCheck([self.check_sentence(s.text, cited) for s in split_sentences(text)])

    def check_sentence(self, sentence: str, cited: Sequence[str] = ()) -> SentenceCheck:
        """Every claim of ``sentence`` against the cited facts, plus those the sentence
        cites itself; all facts when none are cited."""
        ids = [i for i in cited if i in self.evidence]
        ids += [f"f{n}" for n in _CITATION.findall(sentence) if f"f{n}" in self.evidence]
        pool = [self.evidence[i] for i in dict.fromkeys(ids)] or list(self.evidence.values())
        found = self.read(sentence)
        result = SentenceCheck(sentence)
        named = {f.name for f in found if f.claim.kind == "segment"}
        measures = {f.name for f in found if f.claim.kind == "column" and f.name in self.measures}
        for item in found:
            agreeing = self._agreeing(item, pool, named, measures)
            result.claims.append(item.claim)
            if agreeing:
                result.facts |= agreeing
            else:
                result.failed.append(item.claim)
        return result

    def _agreeing(
        self, item: _Found, pool: list[Evidence], named: set[str], measures: set[str]
    ) -> set[str]:
        kind = item.claim.kind
        if kind == "segment":
            return {e.id for e in pool if item.name in e.names}
        if kind == "column":
            return {e.id for e in pool if item.name in e.columns}
        if kind == "period":
            return {e.id for e in pool if all(_covers(e.spans, w) for w in item.whens)}
        if kind == "number":
            assert item.mention is not None
            return _number_support(item.mention, pool, named)
        if kind == "rank":
            return {e.id for e in pool if _ranks(item, e, measures)}
        return _direction_support(item, pool, measures)

    # --- reading -----------------------------------------------------------------------------

    def read(self, sentence: str) -> list[_Found]:
        """The claims in ``sentence``, in order of where they start."""
        folded = fold(sentence)
        found: list[_Found] = []
        periods = find_periods(sentence, self.language)
        taken = [(p.start, p.end) for p in periods]
        found += [_Found(Claim("period", p.text, p.start, p.end), whens=p.whens) for p in periods]
        segments = self._segments(sentence, folded, taken)
        found += segments
        taken += [(s.claim.start, s.claim.end) for s in segments]
        for column, pattern in self.columns.items():
            for match in pattern.finditer(folded):
                if not _overlaps(match.span(), taken):
                    claim = Claim("column", sentence[match.start() : match.end()], *match.span())
                    found.append(_Found(claim, name=column))
                    taken.append(match.span())
        for mention in extract_numbers(sentence, self.language):
            span = (mention.start, mention.end)
            if _overlaps(span, taken):
                continue
            if _bare_year(mention):
                year = (When("year", int(mention.value)),)
                periods.append(PeriodMention(mention.text, *span, year))
                found.append(_Found(Claim("period", mention.text, *span), whens=year))
            else:
                found.append(_Found(Claim("number", mention.text, *span), mention=mention))
        found += self._words(sentence, folded, taken, segments, periods)
        return sorted(_unique(found), key=lambda f: f.claim.start)

    def _segments(self, sentence: str, folded: str, taken: list[tuple[int, int]]) -> list[_Found]:
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
            out.append(_Found(claim, name=re.sub(r"\s+", " ", name)))
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
        segments: list[_Found],
        periods: list[PeriodMention],
    ) -> list[_Found]:
        """Direction and rank claims, each tied to the segment (or period) it is about."""
        tokens = [m for m in _TOKEN.finditer(folded) if not _overlaps(m.span(), taken)]
        words = [m.group() for m in tokens]
        named_periods = tuple(w for p in periods for w in p.whens)
        out: list[_Found] = []
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
                _Found(
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
                    out.append(_Found(claim, high=high, subject=before.name, other=after.name))
                continue
            local = _within(segments, lexicon.clause(folded, where))
            subject = _nearest(local or segments, where)
            if subject is not None:
                out.append(_Found(claim, high=high, subject=subject.name, moving=moving))
                continue
            period = _nearest_period(periods, where)
            if period is not None:
                out.append(_Found(claim, high=high, period=period))
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


def _unique(found: list[_Found]) -> list[_Found]:
    """One claim per kind and folded words in a sentence: naming Norte twice is one claim."""
    seen: set[tuple[str, str, bool, str | None]] = set()
    out = []
    for item in found:
        key = (item.claim.kind, fold(item.claim.text), item.high, item.subject)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _within(items: list[_Found], clause: tuple[int, int]) -> list[_Found]:
    return [i for i in items if clause[0] <= i.claim.start and i.claim.end <= clause[1]]


def _nearest(items: list[_Found], position: int) -> _Found | None:
    def distance(item: _Found) -> tuple[int, bool]:
        claim = item.claim
        gap = position - claim.end if claim.end <= position else max(0, claim.start - position)
        return gap, claim.start > position

    return min(items, key=distance, default=None)


def _nearest_period(periods: list[PeriodMention], position: int) -> PeriodMention | None:
    def distance(period: PeriodMention) -> tuple[int, bool]:
        gap = position - period.end if period.end <= position else max(0, period.start - position)
        return gap, period.start > position

    return min(periods, key=distance, default=None)


# --- agreeing ----------------------------------------------------------------------------------


def _covers(spans: Sequence[Span], when: When) -> bool:
    """Whether a period named overlaps one of ``spans`` (in any of their years when the name
    has none)."""
    if when.year is not None:
        target = when.span()
        return target is not None and any(target.overlaps(s) for s in spans)
    years = {s.start.year for s in spans}
    for year in years:
        target = when.span(year)
        if target is not None and any(target.overlaps(s) for s in spans):
            return True
    return False


def _number_support(mention: NumberMention, pool: list[Evidence], named: set[str]) -> set[str]:
    """Facts whose values or cells hold the number, about a segment the sentence names (or
    about no one segment); the statements' numbers only when no value or cell has it."""
    held = [
        (e.id, r)
        for e in pool
        for r in e.records
        if not r.loose and any(agrees(mention, k) for k in r.numbers)
    ]
    if held:
        return {i for i, r in held if not named or not r.names or r.names & named}
    return {
        e.id
        for e in pool
        for r in e.records
        if r.loose and any(agrees(mention, k) for k in r.numbers)
    }


def _ranks(item: _Found, evidence: Evidence, measures: set[str]) -> bool:
    rankings = [r for r in evidence.rankings if not measures or r.measure in measures]
    if item.other is not None and item.subject is not None:
        for ranking in rankings:
            a, b = ranking.value_of(item.subject), ranking.value_of(item.other)
            if a is not None and b is not None and (a > b if item.high else a < b):
                return True
        return False
    if item.subject is not None:
        if any(r.at_end(item.subject, item.high) for r in rankings):
            return True
        return _most_severe(item, evidence)
    if item.period is not None:
        for series in evidence.series:
            if (measures and series.measure not in measures) or not series.points:
                continue
            values = [p.value for p in series.points]
            target = max(values) if item.high else min(values)
            ends = [p.span for p in series.points if p.value == target]
            if any(_covers(ends, w) for w in item.period.whens):
                return True
    return False


def _most_severe(item: _Found, evidence: Evidence) -> bool:
    """ "A maior queda foi de Norte": the segment of the largest (or smallest) case of the
    sentence's direction in an anomaly fact."""
    if item.moving is None or not evidence.moves:
        return False
    cases = [m for m in evidence.moves if m.up == item.moving]
    if not cases:
        return False
    pick = max if item.high else min
    end = pick(m.severity for m in cases)
    return any(m.name == item.subject for m in cases if m.severity == end)


def _direction_support(item: _Found, pool: list[Evidence], measures: set[str]) -> set[str]:
    """Facts that agree with a direction: a trend (overall, last change, or into the named
    periods) or an anomaly case, of the segment named if any. A negated direction agrees
    with facts that looked for it (an anomaly check, a series) when none shows it."""
    showing: set[str] = set()
    looked: set[str] = set()
    wanted = "up" if item.high else "down"
    for evidence in pool:
        for move in evidence.moves:
            if item.subject is not None and move.name != item.subject:
                continue
            if item.whens and not (move.span and any(_covers([move.span], w) for w in item.whens)):
                continue
            if move.up == item.high:
                showing.add(evidence.id)
        if wanted in evidence.looked_for:
            looked.add(evidence.id)
        for series in evidence.series:
            if measures and series.measure not in measures:
                continue
            if item.subject is not None and item.subject not in series.names:
                continue
            looked.add(evidence.id)
            if _series_moves(series, item.high, item.whens):
                showing.add(evidence.id)
    if item.negated:
        return set() if showing else looked
    return showing


def _series_moves(series: Series, up: bool, whens: tuple[When, ...]) -> bool:
    sign = 1.0 if up else -1.0
    if not whens:
        last = series.last_change
        return series.direction == ("up" if up else "down") or (
            last is not None and last * sign > 0
        )
    inside = [p for p in series.points if any(_covers([p.span], w) for w in whens)]
    if len(inside) >= 2 and (inside[-1].value - inside[0].value) * sign > 0:
        return True
    return any(p.change is not None and p.change * sign > 0 for p in inside)
