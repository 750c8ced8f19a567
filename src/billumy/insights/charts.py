"""Vega-Lite charts for facts, and their rendering to SVG on the server.

Why: an insight is easier to trust when the numbers behind it can be seen. Each fact already
carries the small table it was computed from (``Fact.rows``), so a chart is a pure function of
the fact: the rows go *inline* into the spec (``data.values``) and the chart type follows from
the shape of the rows and the kind of fact:

* a period or date column and a number (``trend``, ``period_change``, ``series``) → a line with
  points; ISO dates on a temporal (UTC) axis, other period labels (``2024-03``, ``2024-Q1``,
  ``Jan``) on an ordinal axis in the order of the rows;
* a category and a number (``top_segment``, ``bottom_segment``, ``by_dimension``, ``share``)
  → bars sorted by value, horizontal when the labels are long or many;
* two numbers over many rows, for a ``correlation`` fact only → a scatter plot (a scatter of
  two unrelated numbers, such as a summary's total and mean, means nothing);
* one number per row (``distribution``, ``outliers``) → a strip of ticks, over a box plot when
  there are enough values;
* anything else → no chart (None): a fact with fewer than two rows (one number, or one row
  of numbers, is stated, not drawn), ``row_count``, and ``aggregate``/``summary`` facts
  unless their rows are a series or segments.

Column names are arbitrary user strings, and Vega-Lite reads dots and brackets in a field name
as nested access, so fields are backslash-escaped (``a\\.b``); names with control characters,
which Vega-Lite cannot address even escaped, are copied to a plain alias with a ``calculate``
transform. Titles go into Vega-Lite's generated expressions unescaped, so double quotes and
backslashes in them are replaced by look-alikes.

Rendering uses vl-convert (a bundled JavaScript engine, no browser). It never touches the
network: the data are inline, the spec names no URL (``$schema`` is an identifier, not
fetched), and :func:`render_svg` passes ``allowed_base_urls=[]`` so that a URL would be refused.
The first render in a process starts the engine (about 0.8 s); later ones take tens of
milliseconds. vl-convert serialises concurrent calls itself, so threads may call
:func:`render_svg` freely, but it holds the GIL while rendering: ``asyncio.to_thread`` keeps
the call off the event loop's stack, not off its clock. Call :func:`warm_up` at start-up so
that no request pays for the engine's start.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import vl_convert

from billumy.insights.model import Fact

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
WIDTH = 480
HEIGHT = 260
TITLE_CHARS = 90

_TIME_KINDS = frozenset({"trend", "period_change", "series", "time_series", "seasonality"})
_SEGMENT_KINDS = frozenset(
    {"top_segment", "bottom_segment", "by_dimension", "share", "segment", "breakdown"}
)
_PAIR_KINDS = frozenset({"correlation"})
_SPREAD_KINDS = frozenset({"distribution", "outliers", "outlier", "spread"})
_NO_CHART_KINDS = frozenset({"row_count"})
# Kinds drawn only when their rows are a series (a line) or segments (bars).
_SERIES_OR_SEGMENTS_KINDS = frozenset({"aggregate", "summary", "row_count"})
_SCATTER_MIN_ROWS = 3

_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
_PERIOD = re.compile(r"^\d{4}(?:-\d{2}|-[QqHhWw]\d{1,2})?$")
_PERIOD_NAMES = frozenset(
    {
        "date",
        "day",
        "week",
        "month",
        "quarter",
        "year",
        "period",
        "time",
        "data",
        "dia",
        "semana",
        "mes",
        "mês",
        "trimestre",
        "ano",
        "periodo",
        "período",
    }
)
_SHARE_NAME = re.compile(r"share|pct|percent|ratio|rate|fraction|proportion", re.IGNORECASE)
_FIELD_SPECIALS = frozenset(".[]\\'\"")
_LONG_LABEL = 12
_MANY_BARS = 10
_MAX_COLORS = 10
_BOX_MIN_VALUES = 5
_CHAR_PX = 7  # rough width of a label character at the default font size

Spec = dict[str, Any]


@dataclass(frozen=True)
class _Shape:
    """The columns of a fact's rows, by role, in the order they first appear."""

    periods: list[str]
    numbers: list[str]
    categories: list[str]
    flags: list[str]  # boolean columns (e.g. is_outlier)
    dates: frozenset[str]  # the period columns that hold full ISO dates


class _Fields:
    """How each column is addressed in the spec: an escaped field or a calculated alias."""

    def __init__(self, names: Sequence[str]) -> None:
        self.refs: dict[str, str] = {}
        self.transforms: list[dict[str, str]] = []
        for index, name in enumerate(names):
            if all(ch.isprintable() or ch == " " for ch in name):
                self.refs[name] = escape_field(name)
                continue
            alias = _free_alias(index, names)
            self.transforms.append({"calculate": f"datum[{json.dumps(name)}]", "as": alias})
            self.refs[name] = alias

    def encode(self, name: str, kind: str, **extra: Any) -> dict[str, Any]:
        return {"field": self.refs[name], "type": kind, "title": axis_title(name), **extra}


def escape_field(name: str) -> str:
    """``name`` as a Vega-Lite field: dots, brackets, quotes and backslashes escaped."""
    return "".join(f"\\{ch}" if ch in _FIELD_SPECIALS else ch for ch in name)


def axis_title(name: str) -> str:
    """A column name made safe for a title (Vega-Lite pastes titles into expressions)."""
    cleaned = name.replace('"', "”").replace("\\", "∖")
    cleaned = "".join(ch if ch.isprintable() else " " for ch in cleaned).strip()
    return cleaned or "value"


def _free_alias(index: int, names: Sequence[str]) -> str:
    alias = f"billumy_field_{index}"
    while alias in names:
        alias += "_"
    return alias


# --- choosing a chart -------------------------------------------------------------------------


def chart_for(fact: Fact, *, title: str | None = None) -> Spec | None:
    """A Vega-Lite v5 spec drawing ``fact.rows``, or None when no chart fits the fact."""
    if len(fact.rows) < 2 or fact.kind in _NO_CHART_KINDS:
        return None
    names = _column_names(fact.rows)
    shape = _shape(fact.rows, names)
    build = _builder(fact.kind, shape, len(fact.rows))
    if build is None:
        return None
    fields = _Fields(names)
    spec: Spec = {
        "$schema": SCHEMA,
        "title": {"text": _shorten(title if title is not None else fact.statement)},
        "width": WIDTH,
        "height": HEIGHT,
        "data": {"values": _json_rows(fact.rows)},
    }
    if fields.transforms:
        spec["transform"] = fields.transforms
    spec.update(build(fact, shape, fields))
    return spec


_Builder = Callable[[Fact, _Shape, _Fields], Spec]


def _builder(kind: str, shape: _Shape, n_rows: int) -> _Builder | None:
    """The chart for this kind when the rows have the shape for it, else the shape's chart."""
    line = bool(shape.periods and shape.numbers)
    bars = bool(shape.categories and shape.numbers)
    pair = len(shape.numbers) >= 2 and n_rows >= _SCATTER_MIN_ROWS
    spread = bool(shape.numbers) and n_rows >= 2
    by_kind = [
        (kind in _TIME_KINDS and line, _line),
        (kind in _SEGMENT_KINDS and bars, _bars),
        (kind in _PAIR_KINDS and pair, _scatter),
        (kind in _SPREAD_KINDS and spread, _strip),
    ]
    by_shape = [(line, _line), (bars, _bars)]
    if kind not in _SERIES_OR_SEGMENTS_KINDS:
        by_shape.append((spread, _strip))
    return next((build for fits, build in [*by_kind, *by_shape] if fits), None)


def _column_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _shape(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> _Shape:
    periods: list[str] = []
    numbers: list[str] = []
    categories: list[str] = []
    flags: list[str] = []
    dates: set[str] = set()
    for name in names:
        values = [row.get(name) for row in rows if row.get(name) is not None]
        if not values:
            continue
        if all(isinstance(v, bool) for v in values):
            flags.append(name)
        elif _is_period(name, values):
            periods.append(name)
            if all(isinstance(v, date) or _DATE.match(str(v)) for v in values):
                dates.add(name)
        elif all(_is_number(v) for v in values):
            numbers.append(name)
        else:
            categories.append(name)
    return _Shape(periods, numbers, categories, flags, frozenset(dates))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _is_period(name: str, values: Sequence[Any]) -> bool:
    """Dates, ISO-like period labels, or any labels in a column named like a period."""
    if all(isinstance(v, date | datetime) for v in values):
        return True
    if all(isinstance(v, str) and (_DATE.match(v) or _PERIOD.match(v)) for v in values):
        return True
    tokens = set(re.split(r"[^a-zà-ÿ]+", name.lower()))
    if tokens & _PERIOD_NAMES and all(isinstance(v, str) for v in values):
        return True
    # Integers are periods only in a column named just that: "year", not "day_count".
    whole_ints = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    return whole_ints and name.strip().lower() in _PERIOD_NAMES


# --- the charts -------------------------------------------------------------------------------


def _line(fact: Fact, shape: _Shape, fields: _Fields) -> Spec:
    period = shape.periods[0]
    measure = _measure(fact, shape)
    if period in shape.dates:
        x = fields.encode(period, "temporal", scale={"type": "utc"})
    else:
        x = fields.encode(period, "ordinal", sort=None, axis={"labelOverlap": True})
    encoding: dict[str, Any] = {"x": x, "y": fields.encode(measure, "quantitative")}
    series = _few_valued(fact.rows, shape.categories)
    if series is not None:
        encoding["color"] = fields.encode(series, "nominal")
    encoding["tooltip"] = _tooltip(shape, fields)
    return {"mark": {"type": "line", "point": True}, "encoding": encoding}


def _bars(fact: Fact, shape: _Shape, fields: _Fields) -> Spec:
    category = shape.categories[0]
    measure = _measure(fact, shape)
    labels = [str(row.get(category, "")) for row in fact.rows]
    horizontal = len(labels) > _MANY_BARS or max(map(len, labels)) > _LONG_LABEL
    value_channel, label_channel = ("x", "y") if horizontal else ("y", "x")
    descending = fact.kind != "bottom_segment"
    sort = f"-{value_channel}" if descending else value_channel
    value = fields.encode(measure, "quantitative")
    if _is_fraction_column(fact.rows, measure):
        value["axis"] = {"format": ".0%"}
    label = fields.encode(category, "nominal", sort=sort)
    if not horizontal:  # upright labels when they fit side by side
        fits = len(labels) * max(map(len, labels)) * _CHAR_PX < WIDTH
        label["axis"] = {"labelAngle": 0 if fits else -40}
    encoding = {
        label_channel: label,
        value_channel: value,
        "tooltip": _tooltip(shape, fields),
    }
    return {"mark": {"type": "bar"}, "encoding": encoding}


def _scatter(fact: Fact, shape: _Shape, fields: _Fields) -> Spec:
    preferred = [c for c in fact.columns if c in shape.numbers]
    first, second = [*preferred, *[c for c in shape.numbers if c not in preferred]][:2]
    encoding = {
        "x": fields.encode(first, "quantitative", scale={"zero": False}),
        "y": fields.encode(second, "quantitative", scale={"zero": False}),
        "tooltip": _tooltip(shape, fields),
    }
    return {"mark": {"type": "point", "filled": True}, "encoding": encoding}


def _strip(fact: Fact, shape: _Shape, fields: _Fields) -> Spec:
    x = fields.encode(_measure(fact, shape), "quantitative", scale={"zero": False})
    ticks: dict[str, Any] = {"x": x, "tooltip": _tooltip(shape, fields)}
    if shape.flags:
        ticks["color"] = fields.encode(shape.flags[0], "nominal")
    tick_layer = {"mark": {"type": "tick", "thickness": 2}, "encoding": ticks}
    if len(fact.rows) < _BOX_MIN_VALUES:
        return tick_layer
    box_layer = {"mark": {"type": "boxplot", "extent": 1.5, "opacity": 0.35}, "encoding": {"x": x}}
    return {"layer": [box_layer, tick_layer]}


def _measure(fact: Fact, shape: _Shape) -> str:
    """The number to draw: for a share the share, else the first one the fact is about."""
    if fact.kind == "share":
        shares = [c for c in shape.numbers if _SHARE_NAME.search(c)]
        if shares:
            return shares[0]
    about = [c for c in fact.columns if c in shape.numbers]
    return about[0] if about else shape.numbers[0]


def _tooltip(shape: _Shape, fields: _Fields) -> list[dict[str, Any]]:
    tips = [fields.encode(c, "nominal") for c in shape.categories + shape.periods + shape.flags]
    return tips + [fields.encode(c, "quantitative") for c in shape.numbers]


def _few_valued(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str | None:
    """The first column with 2..10 distinct values, to colour several series."""
    for column in columns:
        distinct = {str(row.get(column)) for row in rows}
        if 2 <= len(distinct) <= _MAX_COLORS:
            return column
    return None


def _is_fraction_column(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    if not _SHARE_NAME.search(column):
        return False
    values = [row.get(column) for row in rows]
    return all(v is None or (_is_number(v) and 0 <= float(v) <= 1) for v in values)


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= TITLE_CHARS:
        return text
    cut = text[: TITLE_CHARS - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return f"{cut}…"


def _json_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A copy of the rows with every cell as JSON (dates as ISO text, NaN as null)."""
    return [{name: _json_value(value) for name, value in row.items()} for row in rows]


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


# --- rendering --------------------------------------------------------------------------------


def render_svg(spec: Mapping[str, Any]) -> str:
    """The chart as an SVG document; no network access is allowed while rendering.

    Specs come from :func:`chart_for`, not from users, so a failure is a bug on our side: it is
    raised as a RuntimeError with vl-convert's message.
    """
    try:
        svg = vl_convert.vegalite_to_svg(dict(spec), allowed_base_urls=[])
    except Exception as exc:  # vl-convert raises ValueError carrying the JavaScript error
        raise RuntimeError(f"rendering the chart failed: {exc}") from exc
    return str(svg)
