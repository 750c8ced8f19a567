"""Trends: a measure as a series by period, shared by salient and planned facts: the series
query (partial first and last periods left out), its arithmetic (first/last, last vs
previous, the least-squares slope, flat or not) and the statement that reads it.
"""

from __future__ import annotations

from collections.abc import Sequence

from billumy.insights.data import quote_ident
from billumy.insights.fact_sql import _num
from billumy.insights.grains import _period_sql, period_label
from billumy.insights.model import Scalar
from billumy.insights.plan import Grain
from billumy.insights.roles import _Metric
from billumy.insights.wording import fmt_number, fmt_pct

MIN_PERIOD_COVER = 0.75  # a period seen on under 3/4 of the usual number of days is partial
FLAT_SHARE = 0.05  # a trend moving less than 5% of the mean level over the series is flat


def _slope(values: Sequence[float]) -> float | None:
    """Least-squares slope of ``values`` over 0..n-1 (``regr_slope(value, index)``)."""
    n = len(values)
    if n < 2:
        return None
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def _median_slope(values: Sequence[float]) -> float:
    """The median of the slopes between every two points (Theil-Sen): one outlying period (a
    back-to-school February) moves it little, where it tilts a least-squares line."""
    slopes = sorted(
        (values[j] - values[i]) / (j - i)
        for i in range(len(values))
        for j in range(i + 1, len(values))
    )
    middle = len(slopes) // 2
    return slopes[middle] if len(slopes) % 2 else (slopes[middle - 1] + slopes[middle]) / 2


MAX_PAIRWISE = 400  # longer series take the least-squares slope as their typical rate


def _typical_slope(values: Sequence[float], slope: float) -> float:
    """The rate a trend is stated at: the median slope, which one outlying period does not
    inflate (a February ten times the rest made a least-squares rate ten times the median)."""
    return _median_slope(values) if len(values) <= MAX_PAIRWISE else slope


def _direction(slope: float | None, values: Sequence[float]) -> str:
    """Up or down when the least-squares line and the median slope both move more than
    ``FLAT_SHARE`` of the mean level over the series, the same way; "flat" otherwise."""
    if slope is None or len(values) < 2:
        return "flat"
    scale = sum(abs(v) for v in values) / len(values)
    robust = _typical_slope(values, slope)

    def moves(rate: float) -> bool:
        return rate != 0 and abs(rate) * (len(values) - 1) >= FLAT_SHARE * scale

    if not moves(slope) or not moves(robust) or (slope > 0) != (robust > 0):
        return "flat"
    return "up" if slope > 0 else "down"


def _series_values(rows: list[dict[str, Scalar]], label: str) -> dict[str, Scalar]:
    """first/last/previous, change and change_pct (last vs previous period), slope, direction."""
    points = [(str(r["period"]), _num(r[label])) for r in rows]
    series = [(p, v) for p, v in points if v is not None]
    if not series:
        return {}
    values = [v for _, v in series]
    slope = _slope(values)
    out: dict[str, Scalar] = {
        "periods": len(series),
        "first_period": series[0][0],
        "first": _as_scalar(rows, label, series[0][0]),
        "last_period": series[-1][0],
        "last": _as_scalar(rows, label, series[-1][0]),
        "slope": slope,
        "median_slope": None if slope is None else _typical_slope(values, slope),
        "direction": _direction(slope, values),
    }
    if len(series) >= 2:
        previous, last = values[-2], values[-1]
        out["previous_period"] = series[-2][0]
        out["previous"] = _as_scalar(rows, label, series[-2][0])
        out["change"] = last - previous
        out["change_pct"] = 100 * (last - previous) / abs(previous) if previous else None
    return out


def _as_scalar(rows: list[dict[str, Scalar]], label: str, period: str) -> Scalar:
    return next(r[label] for r in rows if str(r["period"]) == period)


def _change_words(values: dict[str, Scalar], grain: Grain = "day") -> str:
    change = _num(values.get("change"))
    if change is None:
        return ""
    pct = _num(values.get("change_pct"))
    if change == 0:
        how = "unchanged"
    else:
        amount = fmt_pct(abs(pct)) if pct is not None else fmt_number(abs(change))
        how = f"{'up' if change > 0 else 'down'} {amount}"
    subject = f"the week of {values['last_period']}" if grain == "week" else values["last_period"]
    return (
        f"{subject} was {fmt_number(values['last'])}, {how} from "
        f"{fmt_number(values['previous'])} {_when(grain, values['previous_period'])}"
    )


def _series_sql(
    metrics: Sequence[_Metric],
    labels: Sequence[str],
    column: str,
    grain: Grain,
    where: Sequence[str] = (),
    covered: Sequence[str] = (),
) -> str:
    """The series' SQL; ``covered``: the conditions whose rows count a period's days (a plan's
    filters, whose ``?`` then come twice: once for the days, once for the series)."""
    aggregates = ", ".join(f"{m.sql} AS v{i}" for i, m in enumerate(metrics))
    outputs = ", ".join(f"v{i} AS {quote_ident(label)}" for i, label in enumerate(labels))
    conditions = " AND ".join([f"{quote_ident(column)} IS NOT NULL", *where])
    c = quote_ident(column)
    # A first or last period the data covers on far fewer days than the others (the week the
    # data ends in on a Tuesday, or the question's month on a Monday) would read as a drop:
    # such periods are left out of series. A period between two others is whole whatever its
    # days: few hirings in 2021 are few, not a part of the year.
    days = " AND ".join([f"{c} IS NOT NULL", *covered])
    cover = (
        f"cover AS (SELECT {_period_sql(grain, column)} AS p, "  # noqa: S608
        f"count(DISTINCT CAST({c} AS DATE)) AS d FROM data WHERE {days} GROUP BY 1), "
        f"whole AS (SELECT p FROM cover WHERE d >= {MIN_PERIOD_COVER} * "
        "(SELECT median(d) FROM cover) OR (p > (SELECT min(p) FROM cover) "
        "AND p < (SELECT max(p) FROM cover))), "
    )
    return (
        f"WITH {cover}series AS (SELECT {_period_sql(grain, column)} AS p, "  # noqa: S608
        f"{aggregates} FROM data WHERE {conditions} GROUP BY p) "
        f"SELECT {period_label(grain, 'p')} AS period, {outputs} FROM series "
        "WHERE p IN (SELECT p FROM whole) ORDER BY p"
    )


_GRAIN_ADJECTIVE = {
    "day": "Daily",
    "week": "Weekly",
    "month": "Monthly",
    "quarter": "Quarterly",
    "year": "Yearly",
}


def _when(grain: Grain, label: Scalar) -> str:
    """``in 2024-03``, or ``in the week of 2024-03-11`` (weeks are labelled by their start)."""
    return f"in the week of {label}" if grain == "week" else f"in {label}"


def _trend_statement(grain: Grain, phrase: str, values: dict[str, Scalar], scope: str) -> str:
    slope = _num(values.get("median_slope", values.get("slope")))
    trend = ""
    if slope is not None:
        sign = "+" if slope > 0 else "-" if slope < 0 else ""
        trend = f"; the trend is {values['direction']} ({sign}{fmt_number(abs(slope))} per {grain})"
    periods = values["periods"]
    text = (
        f"{_GRAIN_ADJECTIVE[grain]} {phrase}{scope} went from {fmt_number(values['first'])} "
        f"{_when(grain, values['first_period'])} to {fmt_number(values['last'])} "
        f"{_when(grain, values['last_period'])} over {periods} {grain}{'' if periods == 1 else 's'}"
        f"{trend}"
    )
    change = _change_words(values, grain)
    return f"{text}. {change[0].upper()}{change[1:]}." if change else f"{text}."
