"""Sentences of a narrative, and text folded for matching words in either language.

Why a splitter of our own: the model's prose is checked sentence by sentence (a sentence is
kept only when every claim in it agrees with a fact), so a sentence must end where a reader
sees it end, and not at the dot of ``12.5``, ``R$ 1.234,56``, ``p.ex.``, ``e.g.``, ``vs.`` or
the month abbreviations Babel writes (``13 de mai. de 2024``, ``Mar. 11``).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass

__all__ = ["Sentence", "fold", "split_sentences"]

# Abbreviations (folded, without their final dot) after which a dot does not end a sentence.
_ABBREVIATIONS = frozenset(
    re.split(
        r"\s+",
        "p.ex ex e.g eg i.e ie vs v cf fig no n.o sr sra srs dr dra prof aprox approx est "
        "mr mrs ms st jr ltda inc co corp p.p pp obs tel av u.s "
        "jan fev feb mar abr apr mai jun jul ago aug set sep sept out oct nov dez dec",
    )
)
# A candidate end: a run of terminal punctuation, closing quotes or brackets, then white space.
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n")
_LEADING_CITATION = re.compile(r"\s*(\[\s*f[0-9]+(?:\s*[,;–-]\s*f?[0-9]+)*\s*\])")
_WORD_BEFORE = re.compile(r"([\w.]+)\.$")


@dataclass(frozen=True)
class Sentence:
    """One sentence: its text (stripped) and where it starts and ends in the whole text."""

    text: str
    start: int
    end: int


def fold(text: str) -> str:
    """``text`` lower-cased and without accents, *of the same length* (so a match in the
    folded text is a span of the original): ``Março`` -> ``marco``, ``1º`` -> ``1o``.
    Characters with no one-character folding are kept as they are."""
    out = []
    for char in text:
        bare = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
        low = bare.lower()
        out.append(low if len(low) == 1 else char.lower() if len(char.lower()) == 1 else char)
    return "".join(out)


def split_sentences(text: str) -> list[Sentence]:
    """The sentences of ``text``, in order, never empty.

    A sentence ends at a line break, or at ``.``, ``!``, ``?`` or ``…`` followed by white space
    and then something that may start a sentence (not a lower-case letter), unless the dot
    closes a known abbreviation. A fact citation right after the end (``… 12%. [f1] Next``)
    stays with the sentence it follows."""
    cuts = [0]
    for match in _END.finditer(text):
        if match.group() != "\n" and not _ends_here(text, match):
            continue
        cuts.append(match.end())
    cuts.append(len(text))
    sentences: list[Sentence] = []
    for begin, finish in itertools.pairwise(cuts):
        citation = _LEADING_CITATION.match(text, begin, finish)
        if citation and sentences:
            last = sentences.pop()
            joined = text[last.start : citation.end()]
            sentences.append(Sentence(joined.strip(), last.start, citation.end()))
            begin = citation.end()
        piece = text[begin:finish]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            sentences.append(Sentence(piece.strip(), begin + lead, begin + len(piece.rstrip())))
    return sentences


def _ends_here(text: str, match: re.Match[str]) -> bool:
    rest = text[match.end() :].lstrip()
    if rest[:1].islower():
        return False
    punctuation = match.group()
    if punctuation.startswith(".") and len(punctuation.rstrip("\"'”’)]")) == 1:
        before = _WORD_BEFORE.search(fold(text[max(0, match.start() - 12) : match.start() + 1]))
        if before and before.group(1).lstrip(".") in _ABBREVIATIONS:
            return False
    return True
