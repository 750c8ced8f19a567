"""A change between two periods, and the segments that drove it.

"Por que as vendas caíram na semana 20?", "compare 2023 with 2024", "what drove the change in
March?": the answer is the measure in one period against the other, and, for measures that add
up (sums and counts), each segment's part of the difference: ``change`` of the segment, and
its share of the total change. The segments are those of the plan's dimension, else the data's
main one. Periods come from the question (:class:`~billumy.insights.question.Window`); with one
named, it is compared with the one before; with none, the data's last period with the one
before it.

When one of two years, halves or quarters compared is only partly in the data (2023 from
July on against the whole of 2024; 2025 up to June against 2024), both are cut to the part of
their year (half, quarter) that the data holds in both: July to December of 2023 against July
to December of 2024, January to June of 2025 against the same months of 2024. The fact keeps
the periods named (``period_a``, ``period_b``) and says which days were compared (``span_a``,
``span_b``, as ``2023-07-01/2023-12-31``); its numbers are those days' queries.

Every number is computed by one DuckDB query per period over the same filtered rows, so the
parts add up to the total exactly (for additive measures), which the tests check.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from typing import Any

from billumy.insights.data import Table, quote_ident
from billumy.insights.grains import choose_grain, natural_grain
from billumy.insights.model import Fact, Profile, Scalar
from billumy.insights.periods import Span, as_date, covered_span
from billumy.insights.plan import Plan
from billumy.insights.planned import filter_conditions
from billumy.insights.profile import plain
from billumy.insights.question import Question, Window, _window
from billumy.insights.roles import default_agg, main_columns, metric_sql

__all__ = ["MAX_DRIVERS", "change_fact"]

MAX_DRIVERS = 5


def _windows(
    table: Table, profile: Profile, plan: Plan | None, question: Question
) -> tuple[Window, Window] | None:
    """The two periods compared, earlier first."""
    named = question.windows
    if len(named) >= 2:
        first, second = named[0], named[1]
        return (first, second) if _key(first) <= _key(second) else (second, first)
    if len(named) == 1:
        return named[0].previous(), named[0]
    column = plan.period.column if plan is not None and plan.period is not None else None
    if column is None:
        _, _, column = main_columns(profile)
    temporal = profile.column(column) if column else None
    if temporal is None or column is None:
        return None
    natural = natural_grain(table, column)
    grain = plan.period.grain if plan is not None and plan.period is not None else None
    if grain is None:
        grain = choose_grain(temporal.min, temporal.max, natural)
    c = quote_ident(column)
    latest = table.query(f"SELECT max(date_trunc('{grain}', {c})) FROM data")[0][0]  # noqa: S608
    if latest is None:
        return None
    start = latest.date() if isinstance(latest, datetime) else latest
    assert isinstance(start, date)
    last = _window(column, grain, start)
    return last.previous(), last


# Periods that repeat within a year at the same months: they can be cut to the same part.
_CUT_GRAINS = frozenset({"quarter", "half", "year"})
# Days a period may lack at either end and still count as whole.
_SLACK_DAYS = 7.0


def _months_later(day: date, months: int) -> date:
    """``day`` moved by whole months, kept within its month (31 March, a month back, is 28
    or 29 February)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _days(window: Window, start: date, end: date) -> Window:
    last = end - timedelta(days=1)
    label = f"{start.isoformat()}/{last.isoformat()}"
    return Window(window.column, "day", label, start=start, end=end)


def like_for_like(profile: Profile, a: Window, b: Window) -> tuple[Window, Window] | None:
    """``a`` and ``b`` (two years, halves or quarters) cut to the part of each that the data
    holds in both, at the same months and days of their period, when one of them is in the
    data only in part; None when both are whole (or neither holds a common part).

    A period is whole when the data misses a week of it or less, or two of the steps
    between its dates: deliveries that stop on Friday 28 June hold the quarter (its weekend
    had none), the days between Christmas and New Year a business closes are no part missing,
    weekly rows dated Monday 23 September hold the quarter up to its Monday 30th; monthly rows
    stand for their whole month (:func:`~billumy.insights.periods.covered_span`)."""
    if a.grain != b.grain or a.grain not in _CUT_GRAINS or a.ordinal or b.ordinal:
        return None
    if a.start is None or a.end is None or b.start is None or b.end is None:
        return None
    column = profile.column(b.column)
    first, last = (as_date(column.min), as_date(column.max)) if column else (None, None)
    if column is None or first is None or last is None:
        return None
    data = covered_span(first, last, column.distinct)
    step = (last - first).days / max(1, column.distinct - 1)
    slack = timedelta(days=max(_SLACK_DAYS, 2 * step))
    whole = [Span(a.start, a.end), Span(b.start, b.end)]
    held = []
    for period in whole:
        start, end = max(period.start, data.start), min(period.end, data.end)
        if start >= end:
            return None  # a period without data: said as such, not cut
        start = period.start if start - period.start <= slack else start
        end = period.end if period.end - end <= slack else end
        held.append(Span(start, end))
    if held == whole:
        return None
    months = (b.start.year - a.start.year) * 12 + b.start.month - a.start.month
    start = max(held[1].start, _months_later(held[0].start, months))
    end = min(held[1].end, _months_later(held[0].end, months))
    if start >= end:
        return None
    return (
        _days(a, _months_later(start, -months), _months_later(end, -months)),
        _days(b, start, end),
    )


def _key(window: Window) -> tuple[int, str]:
    if window.value is not None:
        return (window.value, "")
    return (0, window.start.isoformat() if window.start else "")


def _number(value: Any) -> float:
    scalar = plain(value)
    if isinstance(scalar, bool) or not isinstance(scalar, int | float):
        return 0.0
    return float(scalar)


def change_fact(
    table: Table,
    profile: Profile,
    plan: Plan | None,
    question: Question,
    rate: tuple[str, str, str] | None = None,
) -> Fact | None:
    """The measure in the two periods and, when it adds up, each segment's part of the
    change; None when the data has no period to compare (no date or period-number column).
    With a ``rate`` (part, whole, name: "occupancy rate Q1 vs Q2"), the measure is the part's
    sum over the whole's, in percent, in each period."""
    pair = _windows(table, profile, plan, question)
    if pair is None:
        return None
    named_a, named_b = pair
    # 2023 from July on against all of 2024: July to December of each.
    a, b = like_for_like(profile, named_a, named_b) or pair
    measure_column, agg = "*", "count"
    if rate is not None:
        measure_column, agg = rate[0], "rate"
    elif plan is not None:
        measure_column, agg = plan.measures[0].column, plan.measures[0].agg
    else:
        main, _, _ = main_columns(profile)
        column = profile.column(main) if main else None
        if column is not None:
            measure_column, agg = column.name, default_agg(column)
    dtype = "BIGINT"
    if measure_column != "*":
        col = profile.column(measure_column)
        dtype = col.dtype if col is not None else dtype
    metric = "count(*)"
    if measure_column != "*":
        metric = metric_sql(measure_column, agg, dtype, profile)  # type: ignore[arg-type]
    if rate is not None:
        p, w = quote_ident(rate[0]), quote_ident(rate[1])
        metric = f"100.0 * sum(CAST({p} AS DOUBLE)) / nullif(sum(CAST({w} AS DOUBLE)), 0)"
    kept = [f for f in (plan.filters if plan else []) if f.column != b.column]
    dims = [d for d in (plan.dimensions if plan else []) if _categorical(profile, d)]
    if not dims:
        _, main_dim, _ = main_columns(profile)
        single = {f.column for f in kept if f.op == "="}
        dims = [main_dim] if main_dim and main_dim not in single else []
    dimension = dims[0] if dims else None
    additive = agg in ("sum", "count")

    def select(window: Window, grouped: bool) -> tuple[str, list[Any]]:
        conditions, params = filter_conditions(profile, [*kept, *window.filters()])
        where = " AND ".join(conditions) or "true"
        if grouped and dimension is not None:
            d = quote_ident(dimension)
            return (
                f"SELECT {d} AS segment, {metric} AS v FROM data WHERE {where} "  # noqa: S608
                f"AND {d} IS NOT NULL GROUP BY {d}",
                params,
            )
        return f"SELECT {metric} AS v FROM data WHERE {where}", params  # noqa: S608

    total_a, params_a = select(a, False)
    total_b, params_b = select(b, False)
    sql = f"SELECT ({total_a}) AS value_a, ({total_b}) AS value_b"
    params = [*params_a, *params_b]
    totals = table.records(sql, params)[0]
    value_a, value_b = plain(totals["value_a"]), plain(totals["value_b"])
    if value_a is None and value_b is None:
        return None
    for window in (a, b):
        # A period with no rows at all ("the week before" in monthly data) is no zero.
        conditions, window_params = filter_conditions(profile, [*kept, *window.filters()])
        where = " AND ".join(conditions) or "true"
        if not table.query(f"SELECT count(*) FROM data WHERE {where}", window_params)[0][0]:  # noqa: S608
            return None
    if additive:
        value_a = value_a if value_a is not None else 0
        value_b = value_b if value_b is not None else 0
    change = None if value_a is None or value_b is None else _number(value_b) - _number(value_a)
    pct = None
    if change is not None and value_a not in (None, 0):
        pct = 100.0 * change / abs(_number(value_a))
    values: dict[str, Scalar] = {
        "period_a": named_a.label,
        "period_b": named_b.label,
        "grain": named_b.grain,
        "ordinal": named_b.ordinal,
        "value_a": value_a,
        "value_b": value_b,
        "change": change,
        "change_pct": pct,
        "measure": measure_column,
        "agg": agg,
        "dimension": dimension,
        "period_column": b.column,
    }
    if (a, b) != pair:
        values |= {"span_a": a.label, "span_b": b.label}
    if rate is not None:
        values |= {"rate_whole": rate[1], "rate_name": rate[2]}
    rows: list[dict[str, Scalar]] = []
    fact_sql = sql
    if additive and dimension is not None and change is not None:
        grouped_a, gp_a = select(a, True)
        grouped_b, gp_b = select(b, True)
        fact_sql = (
            f"WITH a AS ({grouped_a}), b AS ({grouped_b}) "  # noqa: S608
            "SELECT coalesce(a.segment, b.segment) AS segment, coalesce(a.v, 0) AS value_a, "
            "coalesce(b.v, 0) AS value_b, coalesce(b.v, 0) - coalesce(a.v, 0) AS change "
            "FROM a FULL OUTER JOIN b ON a.segment = b.segment "
            # The drivers only: a dimension with a million values must not come back whole.
            f"ORDER BY change {'DESC' if change >= 0 else 'ASC'}, segment LIMIT {MAX_DRIVERS}"
        )
        params = [*gp_a, *gp_b]
        found = [{k: plain(v) for k, v in r.items()} for r in table.records(fact_sql, params)]
        found.sort(key=lambda r: _number(r["change"]), reverse=change >= 0)
        for row in found[:MAX_DRIVERS]:
            share = 100.0 * _number(row["change"]) / change if change else None
            before = _number(row["value_a"])
            # Each segment's own growth: "which group grew the most" may mean either.
            growth = 100.0 * _number(row["change"]) / before if before > 0 else None
            rows.append({**row, "share_of_change_pct": share, "change_pct": growth})
        if rows and change:
            top = rows[0]
            values.update(
                driver=top["segment"],
                driver_change=top["change"],
                driver_share_pct=top["share_of_change_pct"],
            )
    columns = [c for c in [dimension, b.column, measure_column] if c and c != "*"]
    if rate is not None:
        columns.append(rate[1])
    return Fact(
        id="",
        kind="change",
        statement=_statement(values, rows),
        values=values,
        columns=columns,
        sql=fact_sql,
        rows=rows,
        score=0.95,
        params=[plain(p) for p in params],
    )


def _categorical(profile: Profile, name: str) -> bool:
    column = profile.column(name)
    return column is not None and column.kind in ("categorical", "boolean")


def _fmt(value: Scalar) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _statement(values: dict[str, Scalar], rows: list[dict[str, Scalar]]) -> str:
    """A plain English statement (statements.py writes the reader's sentence)."""
    subject = (
        "the number of rows" if values["measure"] == "*" else f"{values['agg']} {values['measure']}"
    )
    since = values.get("span_a") or values["period_a"]
    until = values.get("span_b") or values["period_b"]
    text = (
        f"{subject.capitalize()} went from {_fmt(values['value_a'])} in {since} "
        f"to {_fmt(values['value_b'])} in {until}"
    )
    if values.get("change_pct") is not None:
        text += f" ({_number(values['change_pct']):+.1f}%)"
    text += "."
    if rows:
        listed = "; ".join(f"{r['segment']} {_number(r['change']):+,.2f}" for r in rows)
        text += f" Change by {values['dimension']}: {listed}."
    return text
