"""What a fact can vouch for, read once from its rows and values for the claim checker.

A fact (:class:`~billumy.insights.model.Fact`) is read into:

* **records**: its numbers, each with the segments it is about. A row of a ranking or of an
  anomaly is about the segment it names; the values that summarise the first row (a
  ranking's ``value``, ``share_pct``, ``top_value``; an anomaly's ``value``, ``expected``,
  ``change_pct``...) are about that row's segment; everything else (totals, counts of
  segments and periods, a trend's values) is about no one segment. The numbers written in the
  statement and the column names are a last resort, used only for a number no value or cell
  has (a year, a rounding the statement wrote);
* **names**: the segment values it mentions (the values of its dimension columns in rows and
  values, and its filter values), folded (lower case, no accents);
* **spans**: the periods it covers, from its period labels (see :mod:`billumy.insights.periods`);
* **rankings**: segments in the order the fact ranks them by a measure (top and bottom
  segments, a plan's breakdown, the most common values), and whether every segment is there;
* **series**: a measure per period (trends), with each point's change from the previous one
  and the overall direction the fact states;
* **moves**: an anomaly's drops and spikes, per segment and period, and which directions it
  looked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from billumy.insights.model import Fact, Scalar
from billumy.insights.periods import Span, find_periods, label_span
from billumy.insights.sentences import fold
from billumy.insights.verify import Known, numbers_in_text, numbers_of_scalar

__all__ = ["Evidence", "Move", "Point", "Ranking", "Record", "Series", "read_fact"]

_AGGS = ("sum", "avg", "count", "min", "max")
_SUFFIX = re.compile(r"_[0-9]+$")  # facts make a result label unique with "_2", "_3"...
_LIMIT = re.compile(r"\bLIMIT\s+([0-9]+)\s*$", re.IGNORECASE)
_ORDER = re.compile(r"\bORDER\s+BY\s+[^,]*?\s(ASC|DESC)\b", re.IGNORECASE)
_GRAIN = re.compile(r"date_trunc\('(day|week|month|quarter|year)'")
# Values that state the first row's (or the largest case's) numbers: about its segment.
_ABOUT_SEGMENT = frozenset(
    {
        "value", "share_pct", "top_value", "top_share_pct", "expected", "change",
        "change_pct", "group_value", "group_expected", "group_change", "group_change_pct",
        "group_cases",
    }
)  # fmt: skip
_NAME_VALUES = ("segment", "top_segment", "category")
_MOVE_DIRECTIONS = {"drop": frozenset({"down"}), "spike": frozenset({"up"})}


@dataclass(frozen=True)
class Record:
    """Numbers a fact holds and the segments (folded) they are about; none: about no one
    segment. ``loose`` numbers were read from the statement or the column names."""

    names: frozenset[str]
    numbers: tuple[Known, ...]
    loose: bool = False


@dataclass(frozen=True)
class Ranking:
    """Segments ranked by ``measure`` (a column, ``*`` for rows), in the fact's order:
    descending (first is the highest) or ascending. ``complete``: no segment was left out,
    so the last entry is the other end."""

    measure: str
    entries: tuple[tuple[frozenset[str], float], ...]
    descending: bool
    complete: bool

    def value_of(self, name: str) -> float | None:
        return next((value for names, value in self.entries if name in names), None)

    def at_end(self, name: str, high: bool) -> bool:
        """Whether ``name`` is the highest (``high``) or the lowest segment, ties included."""
        value = self.value_of(name)
        if value is None:
            return False
        values = [v for _, v in self.entries]
        if high == self.descending:
            return value == values[0]  # the fact's first entry is the end asked about
        return self.complete and value == values[-1]


@dataclass(frozen=True)
class Point:
    span: Span
    value: float
    change: float | None  # from the previous point


@dataclass(frozen=True)
class Series:
    """``measure`` per period; ``names``: the segments its filters keep (none: all)."""

    measure: str
    names: frozenset[str]
    points: tuple[Point, ...]
    direction: str  # up, down or flat, as the fact states it

    @property
    def last_change(self) -> float | None:
        return self.points[-1].change if self.points else None


@dataclass(frozen=True)
class Move:
    """A drop (``up`` false) or spike of segment ``name`` ("" for the total) in ``span``;
    ``severity`` is its size, |change| in percent of the expected value."""

    name: str
    span: Span | None
    up: bool
    severity: float


@dataclass
class Evidence:
    """One fact as the claim checker reads it (see the module docstring)."""

    id: str
    kind: str
    records: list[Record] = field(default_factory=list)
    names: frozenset[str] = frozenset()
    columns: frozenset[str] = frozenset()
    spans: list[Span] = field(default_factory=list)
    rankings: list[Ranking] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    looked_for: frozenset[str] = frozenset()  # directions an anomaly fact checked: up, down
    covers: str | None = None  # the dimension whose every segment an anomaly fact checked
    measures: frozenset[str] = frozenset()  # the columns its numbers measure
    by_dimension: dict[str, frozenset[str]] = field(default_factory=dict)  # column -> names


def read_fact(fact: Fact, language: str | None) -> Evidence:
    """``fact`` as evidence; its statement's numbers are read in ``language``."""
    grain = _grain(fact)
    dims = _dimension_keys(fact)
    filters = frozenset(fold(str(p)) for p in fact.params if _is_name(p))
    records: list[Record] = []
    names: set[str] = set(filters)
    spans: list[Span] = []
    by_dimension: dict[str, set[str]] = {}
    for row in fact.rows:
        row_names = {fold(str(row[k])) for k in dims if _is_name(row.get(k))}
        names |= row_names
        for key in dims:
            if _is_name(row.get(key)):
                column = str(fact.values.get("dimension")) if key == "segment" else key
                by_dimension.setdefault(_SUFFIX.sub("", column), set()).add(fold(str(row[key])))
        numbers = [n for key, value in row.items() for n in numbers_of_scalar(key, value)]
        records.append(Record(frozenset(row_names) | filters, tuple(numbers)))
        spans += _spans(row, grain)
    subject = _value_names(fact)
    names |= subject
    about = [
        n for k, v in fact.values.items() if k in _ABOUT_SEGMENT for n in numbers_of_scalar(k, v)
    ]
    rest = [
        n
        for k, v in fact.values.items()
        if k not in _ABOUT_SEGMENT
        for n in numbers_of_scalar(k, v)
    ]
    if fact.rows:
        rest.append(Known(float(len(fact.rows))))
    records.append(Record(frozenset(subject) | filters, tuple(about)))
    records.append(Record(filters, tuple(rest)))
    loose = numbers_in_text(_without_periods(fact.statement, language), language or "en")
    for column in fact.columns:
        loose += numbers_in_text(column.replace("_", " "), None)
    records.append(Record(filters, tuple(loose), loose=True))
    spans += _spans(fact.values, grain)
    evidence = Evidence(
        id=fact.id,
        kind=fact.kind,
        records=records,
        names=frozenset(names),
        columns=frozenset(fact.columns),
        spans=spans,
        by_dimension={k: frozenset(v) for k, v in by_dimension.items()},
    )
    _read_shape(fact, evidence, dims, grain, filters)
    return evidence


def _read_shape(
    fact: Fact, evidence: Evidence, dims: list[str], grain: str | None, filters: frozenset[str]
) -> None:
    """Rankings, series and moves, by the fact's kind."""
    measures: set[str] = set()
    if fact.kind in ("top_segment", "bottom_segment", "breakdown", "share") and fact.rows:
        ranking = _ranking(fact, dims)
        if ranking is not None:
            evidence.rankings.append(ranking)
            measures.add(ranking.measure)
    elif fact.kind == "trend" and fact.rows:
        series = _series(fact, grain, filters)
        if series is not None:
            evidence.series.append(series)
            measures.add(series.measure)
    if fact.kind == "anomaly":
        evidence.moves = [
            Move(
                fold(str(row.get("segment") or "")),
                label_span(row.get("period"), grain, bare_year=True),
                row.get("direction") == "spike",
                abs(_number(row.get("change_pct")) or 0.0),
            )
            for row in fact.rows
        ]
        if _number(fact.values.get("segments")):
            checked = str(fact.values.get("direction_checked"))
            evidence.looked_for = _MOVE_DIRECTIONS.get(checked, frozenset({"up", "down"}))
            dimension = fact.values.get("dimension")
            evidence.covers = dimension if isinstance(dimension, str) else None
        measures.add(str(fact.values.get("measure")))
    elif fact.kind in ("summary", "outliers", "correlation") and fact.columns:
        measures |= set(fact.columns[: 2 if fact.kind == "correlation" else 1])
    for key, value in fact.values.items():
        column = _measure_of(key, fact.columns)
        if column and column != "*" and _number(value) is not None:
            measures.add(column)
    evidence.measures = frozenset(measures)


def _ranking(fact: Fact, dims: list[str]) -> Ranking | None:
    keys = list(fact.rows[0])
    rest = [k for k in keys if k not in dims and _number(fact.rows[0][k]) is not None]
    if not dims or not rest:
        return None
    measure = _measure_of(rest[0], fact.columns) or "*"
    entries = []
    for row in fact.rows:
        value = _number(row.get(rest[0]))
        if value is not None:
            entries.append(
                (frozenset(fold(str(row[k])) for k in dims if _is_name(row.get(k))), value)
            )
    order = _ORDER.search(fact.sql)
    descending = fact.kind != "bottom_segment" and not (order and order.group(1).upper() == "ASC")
    limit = _LIMIT.search(fact.sql)
    complete = limit is None or len(fact.rows) < int(limit.group(1))
    return Ranking(measure, tuple(entries), descending, complete)


def _series(fact: Fact, grain: str | None, filters: frozenset[str]) -> Series | None:
    keys = [k for k in fact.rows[0] if k != "period" and _number(fact.rows[0][k]) is not None]
    if "period" not in fact.rows[0] or not keys:
        return None
    measure = _measure_of(keys[0], fact.columns) or "*"
    points: list[Point] = []
    previous: float | None = None
    for row in fact.rows:
        span, value = label_span(row["period"], grain, bare_year=True), _number(row[keys[0]])
        if span is None or value is None:
            continue
        points.append(Point(span, value, None if previous is None else value - previous))
        previous = value
    return Series(measure, filters, tuple(points), str(fact.values.get("direction", "flat")))


def _without_periods(statement: str, language: str | None) -> str:
    """``statement`` with its periods blanked: the 17 of "17 de jun. de 2024" is a day, not a
    number the fact vouches for (the periods are read from the labels)."""
    for period in reversed(find_periods(statement, language)):
        statement = (
            statement[: period.start] + " " * (period.end - period.start) + statement[period.end :]
        )
    return statement


def _grain(fact: Fact) -> str | None:
    if isinstance(fact.values.get("grain"), str):
        return str(fact.values["grain"])
    match = _GRAIN.search(fact.sql)
    return match.group(1) if match else None


def _dimension_keys(fact: Fact) -> list[str]:
    """Row keys that hold segment values: the fact's columns holding text, and an anomaly's
    ``segment``."""
    if not fact.rows:
        return []
    columns = set(fact.columns)
    keys = []
    for key in fact.rows[0]:
        base = _SUFFIX.sub("", key)
        if (key in columns or base in columns or key == "segment") and any(
            _is_name(row.get(key)) for row in fact.rows
        ):
            keys.append(key)
    return keys


def _value_names(fact: Fact) -> frozenset[str]:
    names = set()
    for key in _NAME_VALUES:
        value = fact.values.get(key)
        if _is_name(value):
            names |= {fold(part.strip()) for part in str(value).split(" / ") if _is_name(part)}
    return frozenset(names)


def _is_name(value: object) -> bool:
    """A segment value: text with a letter that is not a period label."""
    if not isinstance(value, str) or not any(c.isalpha() for c in value):
        return False
    return label_span(value) is None


def _spans(cells: dict[str, Scalar], grain: str | None) -> list[Span]:
    spans = []
    for key, value in cells.items():
        periodic = key == "period" or key.endswith("_period")
        span = label_span(value, grain if periodic else None, bare_year=periodic)
        if span is not None:
            spans.append(span)
    return spans


def _measure_of(key: str, columns: list[str]) -> str | None:
    """The column a result label measures: ``sum_receita`` or ``receita_2`` -> ``receita``;
    ``rows`` and ``count`` -> ``*``."""
    if key in ("rows", "count"):
        return "*"
    for name in (key, _SUFFIX.sub("", key)):
        if name in columns:
            return name
        for agg in _AGGS:
            rest = name.removeprefix(f"{agg}_")
            if rest != name and rest in columns:
                return rest
    return None


def _number(value: Scalar) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
