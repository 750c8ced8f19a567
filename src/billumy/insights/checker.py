"""Checks the model's prose against the facts: a sentence is kept only when every claim in it
(see :mod:`billumy.insights.claims`) agrees with a fact the text cites.

A claim agrees when one of the cited facts (any fact when none is cited; citations written in
the sentence, ``[f2]``, count as cited), read as :mod:`billumy.insights.evidence`, agrees:

* a **number** when a value or cell holds it (as :mod:`billumy.insights.verify` matches),
  about a segment the sentence names or about no one segment: "Norte sold R$ 137.978,50" fails
  when that is Centro's total. Numbers written only in a statement count when no value has;
* a **segment** when the fact mentions it (an anomaly check mentions every segment it looked
  at); a **column** when it is one of the fact's; a **period** when it overlaps one the fact
  covers;
* a **rank** when its segment is at that end of a ranking of the fact (over the measure the
  sentence names, when it names one), or its period holds the highest or lowest point of a
  series; "maior queda"/"biggest drop" also when the segment had the fact's most severe case;
  a comparison when the fact ranks the two segments that way;
* a **direction** when a trend of the fact moves that way (its stated direction or its last
  change; with periods named, into a point in them) or an anomaly case does, for the segment
  named if any; a negated one ("não teve queda") when the fact looked and found none.

A sentence with no claim (advice, interpretation) is kept, but checks nothing:
:attr:`TextCheck.verified` needs at least one number, rank or direction in the kept text (names
alone only say what a sentence is about), and every kept sentence's claims agree by
construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from billumy.insights.claims import Claim, ClaimReader, Reading
from billumy.insights.evidence import Evidence, Series, read_fact
from billumy.insights.model import Fact, Profile
from billumy.insights.periods import Span, When
from billumy.insights.sentences import fold, split_sentences
from billumy.insights.verify import NumberMention, agrees

__all__ = ["ClaimChecker", "SentenceCheck", "Tally", "TextCheck"]

_CITATION = re.compile(r"(?<!\w)f([0-9]+)(?!\w)", re.IGNORECASE)
_TERMINAL = frozenset(".!?…)]\"'”’")


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
        """The kept sentences, in order; one that ended at a line break without punctuation
        still ends a line, so that the text splits into the same sentences again."""
        out = ""
        for sentence in self.kept:
            if out:
                out += " " if out[-1] in _TERMINAL else "\n"
            out += sentence.text
        return out

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


@dataclass
class Tally:
    """What checking a narrative did: sentences checked, kept and dropped; claims that assert
    (numbers, ranks, directions) and names (segments, columns, periods) checked; insights
    dropped whole because none of their sentences was kept."""

    sentences: int = 0
    kept: int = 0
    dropped: int = 0
    claims_checked: int = 0
    names_checked: int = 0
    insights_dropped: int = 0

    def add(self, checks: Iterable[SentenceCheck], *, shown: bool = True) -> None:
        """Count ``checks``; with ``shown`` false (an insight dropped whole) none is kept."""
        for check in checks:
            kept = check.kept and shown
            self.sentences += 1
            self.kept += kept
            self.dropped += not kept
            self.claims_checked += check.assertions
            self.names_checked += sum(
                1 for c in check.claims if c.kind in ("segment", "column", "period")
            )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ClaimChecker:
    """Checks texts against ``facts`` (read once); ``profile`` adds the segment values and
    columns no fact mentions, so that naming them is a claim (that then fails)."""

    def __init__(
        self, facts: Sequence[Fact], language: str | None = None, profile: Profile | None = None
    ) -> None:
        self.evidence = {fact.id: read_fact(fact, language) for fact in facts}
        names: set[str] = set().union(*(e.names for e in self.evidence.values()))
        columns: set[str] = set().union(*(e.columns for e in self.evidence.values()))
        originals: dict[str, str] = {}
        for fact in facts:
            for value in [*fact.values.values(), *(c for r in fact.rows for c in r.values())]:
                if isinstance(value, str):
                    originals.setdefault(fold(value), value)
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
                            originals.setdefault(fold(value), value)
        names |= set().union(*segments.values()) if segments else set()
        for evidence in self.evidence.values():
            if evidence.covers in segments:
                # An anomaly check looked at every segment: "Centro não teve queda" is about it.
                evidence.names = evidence.names | segments[evidence.covers]
        self.reader = ClaimReader(names, columns, originals, language)
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
        found = self.reader.read(sentence)
        result = SentenceCheck(sentence)
        if _asks(sentence):
            # "Por que as vendas caíram?" states nothing a fact could back; shown under a
            # verified narrative, it reads as the product's claim that there is a why.
            asked = Claim("question", sentence, 0, len(sentence))
            result.claims.append(asked)
            result.failed.append(asked)
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
        self, item: Reading, pool: list[Evidence], named: set[str], measures: set[str]
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


def _asks(sentence: str) -> bool:
    """Whether ``sentence`` is a question: it ends with a question mark (before any closing
    quote or bracket), or opens with an inverted one."""
    stripped = sentence.strip()
    return stripped.startswith("¿") or stripped.rstrip("\"'”’)]*_ ").endswith("?")


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


def _ranks(item: Reading, evidence: Evidence, measures: set[str]) -> bool:
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


def _most_severe(item: Reading, evidence: Evidence) -> bool:
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


def _direction_support(item: Reading, pool: list[Evidence], measures: set[str]) -> set[str]:
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
