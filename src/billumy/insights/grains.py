"""Time grains: the grain a series is bucketed at (the coarser of the grain the data are
recorded at, see :func:`natural_grain`, and the grain their span reads best at), the SQL that
buckets a date at a grain, and the label of each period: ``2024-03-15`` (day), the ISO date of
the week's Monday (week), ``2024-03`` (month), ``2024-Q1``, ``2024``.
"""

from __future__ import annotations

from datetime import datetime

from billumy.insights.data import Table, quote_ident
from billumy.insights.fact_sql import _num
from billumy.insights.model import Scalar
from billumy.insights.plan import Grain
from billumy.insights.profile import plain

__all__ = [
    "choose_grain",
    "coarser",
    "natural_grain",
    "period_label",
]


_GRAIN_DAYS: tuple[tuple[Grain, int], ...] = (
    ("day", 62),
    ("week", 26 * 7),
    ("month", 3 * 366),
    ("quarter", 8 * 366),
)


_GRAIN_ORDER: tuple[Grain, ...] = ("day", "week", "month", "quarter", "year")
# Median gap between consecutive distinct dates (in days) from which the data is taken to be
# recorded at a coarser grain: weekly, monthly, quarterly or yearly snapshots.
_GAP_GRAINS: tuple[tuple[float, Grain], ...] = (
    (360.0, "year"),
    (85.0, "quarter"),
    (27.0, "month"),
    (6.5, "week"),
)


def coarser(a: Grain, b: Grain) -> Grain:
    """The coarser of two grains (``month`` over ``week``)."""
    return a if _GRAIN_ORDER.index(a) >= _GRAIN_ORDER.index(b) else b


def choose_grain(first: Scalar, last: Scalar, natural: Grain | None = None) -> Grain:
    """The grain that gives a readable series for the span between two ISO dates, and never
    one finer than ``natural``, the grain the data are recorded at (see
    :func:`natural_grain`): monthly data spanning 6 months are monthly, not weekly."""
    try:
        start = datetime.fromisoformat(str(first))
        end = datetime.fromisoformat(str(last))
    except ValueError:
        return natural or "month"
    by_span = grain_for_span((end - start).days)
    return coarser(by_span, natural) if natural else by_span


def grain_for_span(days: float) -> Grain:
    """The grain that gives a readable series over ``days`` days."""
    return next((grain for grain, most in _GRAIN_DAYS if days <= most), "year")


def natural_grain(table: Table, column: str) -> Grain | None:
    """The grain a temporal column is recorded at, from its distinct values: ``year`` when
    every date is a 1 January, ``quarter`` when every one starts a quarter, ``month`` when
    every one is the first of a month; otherwise from the median gap between consecutive
    distinct dates (about a year, a quarter, a month or a week apart), else ``day``. None
    when the column has fewer than two distinct values."""
    c = quote_ident(column)
    sql = (
        f"WITH d AS (SELECT DISTINCT CAST({c} AS TIMESTAMP) AS t FROM data "  # noqa: S608
        f"WHERE {c} IS NOT NULL), "
        "g AS (SELECT t, date_diff('second', lag(t) OVER (ORDER BY t), t) / 86400.0 AS gap "
        "FROM d) "
        "SELECT count(*), bool_and(t = date_trunc('year', t)), "
        "bool_and(t = date_trunc('quarter', t)), bool_and(t = date_trunc('month', t)), "
        "quantile_cont(gap, 0.5) FROM g"
    )
    n, years, quarters, months, gap = table.query(sql)[0]
    if not n or n < 2:
        return None
    if years:
        return "year"
    if quarters:
        return "quarter"
    if months:
        return "month"
    median_gap = _num(plain(gap)) or 0.0
    return next((grain for least, grain in _GAP_GRAINS if median_gap >= least), "day")


def _period_sql(grain: Grain, column: str) -> str:
    return f"date_trunc('{grain}', {quote_ident(column)})"


def period_label(grain: Grain, expr: str) -> str:
    """A period's natural label: ``2024-03-15`` for a day, the ISO date of its first day
    (Monday) for a week, ``2024-03`` for a month, ``2024-Q1`` for a quarter, ``2024`` for a
    year. Weeks are labelled by their start date rather than ``2024-W11`` so that they sort,
    chart on a time axis and read unambiguously across year boundaries."""
    if grain == "quarter":
        return f"strftime({expr}, '%Y') || '-Q' || quarter({expr})"
    fmt = {"day": "%Y-%m-%d", "week": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}[grain]
    return f"strftime({expr}, '{fmt}')"
