"""Planned facts: a question's :class:`~billumy.insights.plan.Plan` run through DuckDB
(:func:`facts_for_plan`): ``aggregate`` (the measures overall), ``breakdown`` (by the plan's
dimensions) and ``trend`` (by its period), under its filters and period; a stock is taken on
the latest date. :func:`filter_conditions` gives other fact builders the same ``WHERE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from billumy.insights.data import Table, quote_ident
from billumy.insights.fact_sql import _fact, _labels, _num, _numbered
from billumy.insights.grains import _period_sql, coarser, natural_grain, period_label
from billumy.insights.model import Fact, Profile, Scalar
from billumy.insights.plan import Filter, Period, Plan, _coerce, validate_plan
from billumy.insights.profile import name_words, plain
from billumy.insights.roles import _Metric, _roles, average_weight, is_stock, main_columns
from billumy.insights.trends import _series_sql, _series_values, _trend_statement
from billumy.insights.wording import _fmt_label, _sentence, fmt_number, fmt_pct

__all__ = [
    "as_of_conditions",
    "facts_for_plan",
    "filter_conditions",
]


@dataclass
class _Where:
    """The plan's filters (and period window) as SQL conditions, parameters and words."""

    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    @property
    def sql(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "true"

    @property
    def phrase(self) -> str:
        return f" where {' and '.join(self.words)}" if self.words else ""


def _filters(profile: Profile, filters: list[Filter]) -> _Where:
    where = _Where()
    for flt in filters:
        column = profile.column(flt.column)
        assert column is not None  # validated
        c = quote_ident(flt.column)
        where.columns.append(flt.column)
        if isinstance(flt.value, list):
            values = [_coerce(column, v) for v in flt.value]
            where.conditions.append(f"{c} IN ({', '.join('?' for _ in values)})")
            where.params.extend(values)
            shown = ", ".join(_quoted(v) for v in values)
            where.words.append(f"{flt.column} in ({shown})")
        else:
            value = _coerce(column, flt.value)
            where.conditions.append(f"{c} {flt.op} ?")
            where.params.append(value)
            where.words.append(f"{flt.column} {flt.op} {_quoted(value)}")
    return where


def filter_conditions(profile: Profile, filters: list[Filter]) -> tuple[list[str], list[Any]]:
    """``filters`` as SQL conditions (``?`` placeholders) and their typed parameters."""
    where = _filters(profile, filters)
    return where.conditions, where.params


def as_of_conditions(
    table: Table, profile: Profile, plan: Plan
) -> tuple[list[str], list[Any], dict[str, Scalar]] | None:
    """The plan's filters narrowed to the latest date they keep, as a stock's total reads it
    (each segment's latest record where segments are recorded at their own times): SQL
    conditions, their parameters and the date as a period (a fact's ``as_of``); None when the
    data has no date column or no row."""
    snapshot = _as_of(table, profile, plan, _filters(profile, plan.filters))
    if snapshot is None:
        return None
    narrowed, as_of = snapshot
    return narrowed.conditions, narrowed.params, as_of


def _quoted(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, date | datetime):
        return value.isoformat()
    return fmt_number(value) if isinstance(value, int | float) else str(value)


_INTERVAL = {
    "day": (1, "DAY"),
    "week": (7, "DAY"),
    "month": (1, "MONTH"),
    "quarter": (3, "MONTH"),
    "year": (1, "YEAR"),
}


def _with_period(where: _Where, period: Period | None) -> _Where:
    """``where`` plus the last ``period.last`` calendar periods up to the latest one kept."""
    if period is None or period.last is None:
        return where
    grain = period.grain
    factor, unit = _INTERVAL[grain]
    latest = f"(SELECT max({quote_ident(period.column)}) FROM data WHERE {where.sql})"  # noqa: S608
    condition = (
        f"{_period_sql(grain, period.column)} > date_trunc('{grain}', {latest}) - "
        f"INTERVAL {int(period.last) * factor} {unit}"
    )
    words = f"{period.column} in the last {period.last} {grain}{'s' if period.last > 1 else ''}"
    return _Where(
        [*where.conditions, condition],
        [*where.params, *where.params],
        [*where.words, words],
        [*where.columns, period.column],
    )


def _plan_metrics(profile: Profile, plan: Plan) -> list[_Metric]:
    out = []
    for measure in plan.measures:
        column = profile.column(measure.column)
        weight = average_weight(profile, measure.column) if measure.agg == "avg" else None
        out.append(
            _Metric(measure.column, measure.agg, column.dtype if column else "BIGINT", weight)
        )
    return out


def _metric_label(metric: _Metric) -> str:
    return "count" if metric.column == "*" else f"{metric.agg}_{metric.column}"


def _aggregate_fact(table: Table, metrics: list[_Metric], where: _Where) -> Fact:
    labels = _labels([_metric_label(m) for m in metrics])
    select = ", ".join(
        f"{m.sql} AS {quote_ident(label)}" for m, label in zip(metrics, labels, strict=True)
    )
    sql = f"SELECT {select} FROM data WHERE {where.sql}"  # noqa: S608
    columns = _metric_columns(metrics, where)
    fact, rows = _fact(table, "aggregate", sql, columns, where.params)
    fact.values = dict(rows[0])
    parts = [
        f"{m.phrase} is {fmt_number(rows[0][label])}"
        for m, label in zip(metrics, labels, strict=True)
    ]
    text = "; ".join(parts)
    fact.statement = _sentence(f"{where.phrase.strip()}, {text}" if where.words else text)
    fact.score = 1.0
    return fact


def _metric_columns(metrics: list[_Metric], where: _Where, *extra: str) -> list[str]:
    """The columns a plan fact uses: ``extra`` (dimensions, period), measures, filters."""
    names = [*extra, *(m.column for m in metrics if m.column != "*")]
    names += [m.weight for m in metrics if m.weight is not None]
    names += where.columns
    return list(dict.fromkeys(names))


def _breakdown_fact(table: Table, plan: Plan, metrics: list[_Metric], where: _Where) -> Fact:
    dims = plan.dimensions
    metric_labels = _labels([_metric_label(m) for m in metrics], dims)
    share_label = _labels(["share_pct"], [*dims, *metric_labels])[0]
    first = metrics[0]
    selects = [f"{quote_ident(d)}" for d in dims]
    selects += [
        f"{m.sql} AS {quote_ident(label)}" for m, label in zip(metrics, metric_labels, strict=True)
    ]
    if first.additive:
        share = f"100.0 * {first.sql} / nullif(sum({first.sql}) OVER (), 0)"
        selects.append(f"{share} AS {quote_ident(share_label)}")
    not_null = [f"{quote_ident(d)} IS NOT NULL" for d in dims]
    order = "ASC" if plan.order == "asc" else "DESC"
    sql = (
        f"SELECT {', '.join(selects)} FROM data WHERE {' AND '.join([where.sql, *not_null])} "  # noqa: S608
        f"GROUP BY {', '.join(quote_ident(d) for d in dims)} "
        f"ORDER BY {quote_ident(metric_labels[0])} {order} NULLS LAST, "
        f"{', '.join(quote_ident(d) for d in dims)} LIMIT {int(plan.top_n)}"
    )
    fact, rows = _fact(
        table, "breakdown", sql, _metric_columns(metrics, where, *dims), where.params
    )
    fact.score = 0.9
    by = " and ".join(dims)
    if not rows:
        fact.values = {"segments": 0}
        fact.statement = f"By {by}{where.phrase}, no rows match."
        return fact
    top = rows[0]
    name = " / ".join(_fmt_label(top[d]) for d in dims)
    fact.values = {"segments": len(rows), "top_segment": name, "top_value": top[metric_labels[0]]}
    if first.additive:
        fact.values["top_share_pct"] = top[share_label]
    listed = "; ".join(
        _segment_words(r, dims, metric_labels[0], share_label if first.additive else None)
        for r in rows
    )
    where_word = "lowest" if plan.order == "asc" else "highest"
    fact.statement = (
        f"By {by}{where.phrase}, {first.phrase} is {where_word} for {name}. Ranking: {listed}."
    )
    return fact


def _segment_words(row: dict[str, Scalar], dims: list[str], label: str, share: str | None) -> str:
    name = " / ".join(_fmt_label(row[d]) for d in dims)
    text = f"{name} {fmt_number(row[label])}"
    return f"{text} ({fmt_pct(_num(row[share]))})" if share else text


def _plan_trend_fact(
    table: Table, plan: Plan, metrics: list[_Metric], where: _Where, stocks: bool = False
) -> Fact:
    period = plan.period
    assert period is not None
    natural = natural_grain(table, period.column)
    grain = coarser(period.grain, natural) if natural else period.grain
    labels = _labels([_metric_label(m) for m in metrics], ["period"])
    conditions = list(where.conditions)
    if stocks:
        # A stock per period is its level on the period's last date, not the sum of its dates.
        c = f"CAST({quote_ident(period.column)} AS TIMESTAMP)"
        conditions.append(
            f"{c} = (SELECT max(CAST(d2.{quote_ident(period.column)} AS TIMESTAMP)) "  # noqa: S608
            f"FROM data AS d2 WHERE date_trunc('{grain}', d2.{quote_ident(period.column)}) "
            f"= date_trunc('{grain}', data.{quote_ident(period.column)}))"
        )
    covered, covered_params = _on_column(where, period.column)
    sql = _series_sql(metrics, labels, period.column, grain, conditions, covered)
    columns = _metric_columns(metrics, where, period.column)
    fact, rows = _fact(table, "trend", sql, columns, [*covered_params, *where.params])
    fact.score = 0.8
    values = _series_values(rows, labels[0])
    if not values:
        fact.values = {"periods": 0}
        fact.statement = f"By {grain}{where.phrase}, no rows match."
        return fact
    fact.values = values
    fact.statement = _trend_statement(grain, metrics[0].phrase, values, where.phrase)
    return fact


def _on_column(where: _Where, column: str) -> tuple[list[str], list[Any]]:
    """The conditions of ``where`` on ``column`` (the question's months: they cut a period
    short; a filter on a grain does not) and their parameters, in order."""
    c = quote_ident(column)
    kept: list[str] = []
    params: list[Any] = []
    position = 0
    for condition in where.conditions:
        holes = condition.count("?")
        if c in condition:
            kept.append(condition)
            params += where.params[position : position + holes]
        position += holes
    return kept, params


def _stock_metrics(profile: Profile, metrics: list[_Metric]) -> list[_Metric]:
    """The metrics that total a stock (headcount, estoque): they add up only on one date."""
    out = []
    for metric in metrics:
        column = profile.column(metric.column) if metric.column != "*" else None
        if column is not None and metric.agg == "sum" and is_stock(column):
            out.append(metric)
    return out


def _as_of(
    table: Table, profile: Profile, plan: Plan, where: _Where
) -> tuple[_Where, dict[str, Scalar]] | None:
    """``where`` narrowed to the latest date of the plan's date column (else the data's main
    one) among the rows it keeps, and that date as a period (``{"column", "period",
    "grain"}``); None when the data has no date column or no row."""
    temporal = plan.period.column if plan.period is not None else None
    if temporal is None:
        dated = _roles(profile).temporal
        temporal = dated[0].name if dated else None
    if temporal is None:
        return None
    t = f"CAST({quote_ident(temporal)} AS TIMESTAMP)"
    grain = natural_grain(table, temporal) or "day"
    sql = (
        f"SELECT max({t}) AS latest, {period_label(grain, f'max({t})')} AS period "  # noqa: S608
        f"FROM data WHERE {where.sql}"
    )
    latest, label = table.query(sql, list(where.params))[0]
    if latest is None:
        return None
    _, entity, _ = main_columns(profile)
    if entity is not None:
        # Stocks recorded per event (a backlog after each picking wave, each warehouse at its
        # own times): the level is each warehouse's at its latest record, summed; the rows
        # at the one latest moment would hold one warehouse only.
        d = quote_ident(entity)
        sql = (
            f"SELECT count(DISTINCT {d}) FILTER (WHERE {t} = CAST(? AS TIMESTAMP)), "  # noqa: S608
            f"count(DISTINCT {d}) FROM data WHERE {where.sql}"
        )
        at_latest, overall = table.query(sql, [latest, *where.params])[0]
        if at_latest < overall:
            latest_of_each = (
                f"{t} = (SELECT max(CAST(d2.{quote_ident(temporal)} AS TIMESTAMP)) "  # noqa: S608
                f"FROM data AS d2 WHERE d2.{d} IS NOT DISTINCT FROM data.{d} AND ({where.sql}))"
            )
            narrowed = _Where(
                [*where.conditions, latest_of_each],
                [*where.params, *where.params],
                [*where.words, f"{temporal} = each {entity}'s latest"],
                [*where.columns, temporal],
            )
            period = {"column": temporal, "period": plain(label), "grain": grain, "per": entity}
            return narrowed, period
    narrowed = _Where(
        [*where.conditions, f"{t} = CAST(? AS TIMESTAMP)"],
        [*where.params, latest],
        [*where.words, f"{temporal} = {_quoted(latest)} (the latest)"],
        [*where.columns, temporal],
    )
    as_of: dict[str, Scalar] = {"column": temporal, "period": plain(label), "grain": grain}
    hour = _hour_column(profile) if grain == "day" else None
    if hour is not None:
        # Agents logged in "right now", recorded per hour beside a date: the latest hour of
        # the latest day, not the sum of that day's hours.
        h = quote_ident(hour)
        sql = f"SELECT max({h}) FROM data WHERE {narrowed.sql}"  # noqa: S608
        at = table.query(sql, list(narrowed.params))[0][0]
        if at is not None:
            narrowed = _Where(
                [*narrowed.conditions, f"{h} = ?"],
                [*narrowed.params, at],
                [*narrowed.words, f"{hour} = {at} (the latest)"],
                [*narrowed.columns, hour],
            )
            as_of |= {"hour": plain(at)}
    return narrowed, as_of


_HOUR_WORDS = frozenset({"hour", "hours", "hora", "horas", "hr", "hh"})


def _hour_column(profile: Profile) -> str | None:
    """An integer column that holds the hour of the day beside a date (``hour``, ``hora``,
    ``hora_do_dia``): 0 to 23 and named only for the hour."""
    for column in profile.columns:
        words = name_words(column.name)
        if (
            column.kind in ("ordinal", "numeric")
            and isinstance(column.min, int | float)
            and isinstance(column.max, int | float)
            and column.min >= 0
            and column.max <= 24
            and any(w in _HOUR_WORDS for w in words)
            and all(
                w in _HOUR_WORDS or w in ("of", "the", "do", "da", "de", "day", "dia")
                for w in words
            )
        ):
            return column.name
    return None


def facts_for_plan(table: Table, profile: Profile, plan: Plan) -> list[Fact]:
    """Facts answering ``plan``: the aggregates overall, by its dimensions (top ``top_n``,
    with each one's share of the total) and by its period (series, last vs previous). The
    series is never bucketed finer than the data are recorded (:func:`natural_grain`): a
    weekly series of monthly data becomes monthly; ``period.last`` keeps the grain asked.

    A stock's total (:func:`is_stock`: headcount, estoque, saldo) is taken on the latest date
    the rows cover (the fact's ``as_of``), and per period on each period's last date: "how
    many employees" is the last month's headcount, never the sum of 24 months of it."""
    validate_plan(plan, profile)
    metrics = _plan_metrics(profile, plan)
    where = _with_period(_filters(profile, plan.filters), plan.period)
    stocks = _stock_metrics(profile, metrics)
    snapshot = _as_of(table, profile, plan, where) if stocks else None
    flows = [m for m in metrics if m not in stocks] if snapshot is not None else metrics
    facts = []
    if flows:
        facts.append(_aggregate_fact(table, flows, where))
    if snapshot is not None:
        snap_where, as_of = snapshot
        facts.append(_aggregate_fact(table, stocks, snap_where))
        facts[-1].as_of = as_of
    if plan.dimensions:
        if snapshot is not None and metrics[0] in stocks:
            facts.append(_breakdown_fact(table, plan, stocks, snapshot[0]))
            facts[-1].as_of = snapshot[1]
        else:
            facts.append(_breakdown_fact(table, plan, flows, where))
    if plan.period is not None:
        trend = _plan_trend_fact(table, plan, metrics, where, stocks=bool(stocks))
        # One period ("o ROAS no trimestre", filtered to one quarter) is no trend: "from X in
        # Q1 2024 to X in Q1 2024" repeats the total beside it.
        if trend.values.get("periods") != 1 or not facts:
            facts.append(trend)
    return _numbered(facts)
