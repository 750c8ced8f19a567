"""Salient facts: the most telling facts about the data when no question is asked, ranked by
a simple salience score (:func:`salient_facts`).

Kinds: ``row_count``, ``summary`` (a measure's total, mean, min, max), ``trend`` (a series
by period: first/last, last vs previous, slope), ``top_segment`` and ``bottom_segment`` (a
measure by a dimension), ``outliers``, ``correlation``, ``share`` (the most common value of a
dimension). ``anomaly`` facts (drops and spikes per segment per period) are computed in
:mod:`billumy.insights.anomalies`; :func:`salient_facts` ranks them with the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from billumy.insights.data import Table, quote_ident
from billumy.insights.fact_sql import _fact, _labels, _num, _numbered
from billumy.insights.grains import choose_grain, natural_grain
from billumy.insights.model import ColumnProfile, Fact, Profile, Scalar
from billumy.insights.plan import Grain
from billumy.insights.profile import plain
from billumy.insights.roles import _Metric, _Roles, _roles
from billumy.insights.trends import _series_sql, _series_values, _trend_statement
from billumy.insights.wording import _fmt_label, fmt_number, fmt_pct

__all__ = [
    "salient_facts",
]


MAX_SEGMENT_ROWS = 10
MAX_OUTLIER_EXAMPLES = 5
MIN_CORRELATION = 0.5


def _row_count_fact(table: Table) -> Fact:
    fact, rows = _fact(table, "row_count", "SELECT count(*) AS rows FROM data", [])
    count = rows[0]["rows"]
    fact.values = {"rows": count}
    fact.statement = f"The data has {fmt_number(count)} row{'' if count == 1 else 's'}."
    fact.score = 0.5
    return fact


def _summary_fact(table: Table, metric: _Metric, rank: int) -> Fact | None:
    c = quote_ident(metric.column)
    total = _Metric(metric.column, "sum", metric.dtype).sql
    # An average column's mean weighs its rows as the aggregate's does (``avg_wait_sec`` by
    # the calls answered each hour).
    mean = metric.sql if metric.agg == "avg" and metric.weight else f"avg(CAST({c} AS DOUBLE))"
    sql = (
        f"SELECT {total} AS total, {mean} AS mean, min({c}) AS min, "  # noqa: S608
        f"max({c}) AS max, count({c}) AS count FROM data"
    )
    fact, rows = _fact(table, "summary", sql, [metric.column])
    values = rows[0]
    if not values["count"]:
        return None
    fact.values = dict(values)
    spread = f"from {fmt_number(values['min'])} to {fmt_number(values['max'])}"
    if metric.agg == "avg":
        fact.statement = (
            f"Average {metric.column} is {fmt_number(values['mean'])} "
            f"({spread}, {fmt_number(values['count'])} values)."
        )
    else:
        fact.statement = (
            f"Total {metric.column} is {fmt_number(values['total'])} over "
            f"{fmt_number(values['count'])} values (mean {fmt_number(values['mean'])}, {spread})."
        )
    fact.score = 0.75 if rank == 0 else 0.45 if rank == 1 else 0.4
    return fact


def _trend_fact(
    table: Table, temporal: ColumnProfile, grain: Grain, metric: _Metric, weight: float
) -> Fact | None:
    label = _labels(["rows" if metric.column == "*" else metric.column], ["period"])[0]
    sql = _series_sql([metric], [label], temporal.name, grain)
    columns = [temporal.name] + ([] if metric.column == "*" else [metric.column])
    fact, rows = _fact(table, "trend", sql, columns)
    values = _series_values(rows, label)
    if int(values.get("periods") or 0) < 3:
        return None
    fact.values = values
    fact.statement = _trend_statement(grain, metric.phrase, values, "")
    pct = _num(values.get("change_pct"))
    fact.score = weight * (0.65 + 0.2 * min(1.0, abs(pct or 0.0) / 50))
    if values["direction"] == "flat":
        fact.score *= 0.75
    return fact


def _segment_sql(metric: _Metric, dim: str, labels: Sequence[str], ascending: bool) -> str:
    d = quote_ident(dim)
    measure, extra = quote_ident(labels[1]), quote_ident(labels[2])
    if metric.additive:
        third = f"100.0 * {metric.sql} / nullif(sum({metric.sql}) OVER (), 0) AS {extra}"
    else:
        c = quote_ident(metric.column)
        third = (
            f"sum(fsum(CAST({c} AS DOUBLE))) OVER () / nullif(sum(count({c})) OVER (), 0) "
            f"AS {extra}"
        )
    order = "ASC" if ascending else "DESC"
    return (
        f"SELECT {d} AS {quote_ident(labels[0])}, {metric.sql} AS {measure}, {third} "  # noqa: S608
        f"FROM data WHERE {d} IS NOT NULL GROUP BY {d} "
        f"ORDER BY {measure} {order} NULLS LAST, {d} LIMIT {MAX_SEGMENT_ROWS}"
    )


def _segment_fact(
    table: Table, dim: ColumnProfile, metric: _Metric, weight: float, *, bottom: bool
) -> Fact | None:
    extra = "share_pct" if metric.additive else "overall"
    labels = _labels([dim.name, metric.column, extra])
    sql = _segment_sql(metric, dim.name, labels, ascending=bottom)
    kind = "bottom_segment" if bottom else "top_segment"
    fact, rows = _fact(table, kind, sql, [dim.name, metric.column])
    if len(rows) < 2 or rows[0][labels[1]] is None:
        return None
    first = rows[0]
    fact.values = {"segment": first[labels[0]], "value": first[labels[1]], extra: first[labels[2]]}
    where = "lowest" if bottom else "highest"
    name = _fmt_label(first[labels[0]])
    if metric.additive:
        share = fmt_pct(_num(first[labels[2]]))
        fact.statement = (
            f"{metric.phrase[0].upper()}{metric.phrase[1:]} is {where} for {dim.name} {name}: "
            f"{fmt_number(first[labels[1]])}, {share} of the total."
        )
    else:
        fact.statement = (
            f"{metric.phrase[0].upper()}{metric.phrase[1:]} is {where} for {dim.name} {name}: "
            f"{fmt_number(first[labels[1]])} against {fmt_number(first[labels[2]])} overall."
        )
    fact.score = weight * _segment_score(first[labels[1]], first[labels[2]], dim, metric, bottom)
    return fact


def _segment_score(
    value: Scalar, extra: Scalar, dim: ColumnProfile, metric: _Metric, bottom: bool
) -> float:
    k = max(2, dim.distinct)
    if metric.additive:
        share = (_num(extra) or 0.0) / 100
        even = 1 / k
        spread = (share - even) / (1 - even) if not bottom else (even - share) / even
    else:
        overall, got = _num(extra), _num(value)
        spread = abs(got - overall) / abs(overall) if overall and got is not None else 0.0
    base = 0.55 if bottom else 0.7
    return base + (0.2 if bottom else 0.25) * max(0.0, min(1.0, spread))


def _outlier_fact(table: Table, metric: _Metric, ident: ColumnProfile | None) -> Fact | None:
    """Values beyond Tukey's fences (1.5 IQR past the quartiles), or beyond 3 standard
    deviations from the mean where the quartiles coincide."""
    c = f"CAST({quote_ident(metric.column)} AS DOUBLE)"
    key = quote_ident(ident.name) if ident else "data.rowid + 1"
    labels = _labels(
        [ident.name if ident else "row", metric.column, "outliers", "lower_fence", "upper_fence"]
    )
    q = [quote_ident(label) for label in labels]
    sql = (
        f"WITH stats AS (SELECT quantile_cont({c}, 0.25) AS q1, quantile_cont({c}, 0.75) AS q3, "  # noqa: S608
        f"avg({c}) AS mean, stddev_samp({c}) AS sd FROM data), "
        "fences AS (SELECT CASE WHEN q3 > q1 THEN q1 - 1.5 * (q3 - q1) ELSE mean - 3 * sd END "
        "AS lower, CASE WHEN q3 > q1 THEN q3 + 1.5 * (q3 - q1) ELSE mean + 3 * sd END AS upper "
        "FROM stats) "
        f"SELECT {key} AS {q[0]}, {quote_ident(metric.column)} AS {q[1]}, "
        f"count(*) OVER () AS {q[2]}, lower AS {q[3]}, upper AS {q[4]} "
        f"FROM data, fences WHERE {c} < lower OR {c} > upper "
        f"ORDER BY greatest(lower - {c}, {c} - upper) DESC, data.rowid "
        f"LIMIT {MAX_OUTLIER_EXAMPLES}"
    )
    columns = [metric.column] + ([ident.name] if ident else [])
    fact, rows = _fact(table, "outliers", sql, columns)
    if not rows:
        return None
    first = rows[0]
    count = int(first[labels[2]] or 0)
    fact.values = {
        "count": count,
        "lower_fence": first[labels[3]],
        "upper_fence": first[labels[4]],
        "most_extreme": first[labels[1]],
    }
    where = f"{labels[0]} {first[labels[0]]}"
    fact.statement = (
        f"{metric.column} has {fmt_number(count)} outlier value{'s' if count != 1 else ''} "
        f"outside {fmt_number(first[labels[3]])} to {fmt_number(first[labels[4]])}; the most "
        f"extreme is {fmt_number(first[labels[1]])} ({where})."
    )
    fraction = count / max(1, table.row_count)
    fact.score = 0.35 + 0.3 * min(1.0, 10 * fraction)
    return fact


def _correlation_fact(table: Table, metrics: list[_Metric]) -> Fact | None:
    pairs = [(a, b) for i, a in enumerate(metrics) for b in metrics[i + 1 :]]
    if not pairs:
        return None

    def corr(a: _Metric, b: _Metric) -> str:
        return (
            f"corr(CAST({quote_ident(a.column)} AS DOUBLE), CAST({quote_ident(b.column)} "
            "AS DOUBLE))"
        )

    found = table.query("SELECT " + ", ".join(corr(a, b) for a, b in pairs) + " FROM data")[0]  # noqa: S608
    scored = [(abs(r), n) for n, r in enumerate(found) if _num(plain(r)) is not None]
    if not scored or max(scored)[0] < MIN_CORRELATION:
        return None
    best = min(scored, key=lambda pair: (-pair[0], pair[1]))[1]
    a, b = pairs[best]
    both = f"{quote_ident(a.column)} IS NOT NULL AND {quote_ident(b.column)} IS NOT NULL"
    sql = f"SELECT {corr(a, b)} AS r, count(*) AS n FROM data WHERE {both}"  # noqa: S608
    fact, rows = _fact(table, "correlation", sql, [a.column, b.column])
    r = _num(rows[0]["r"])
    if r is None:
        return None
    fact.values = {"r": rows[0]["r"], "n": rows[0]["n"]}
    strength = "strongly" if abs(r) >= 0.8 else "moderately"
    sense = "positively" if r > 0 else "negatively"
    fact.statement = (
        f"{a.column} and {b.column} are {strength} {sense} correlated "
        f"(r = {r:.2f} over {fmt_number(rows[0]['n'])} rows)."
    )
    fact.score = 0.4 + 0.25 * min(1.0, (abs(r) - MIN_CORRELATION) / (1 - MIN_CORRELATION))
    return fact


def _category_share_fact(table: Table, dim: ColumnProfile) -> Fact | None:
    labels = _labels([dim.name, "rows", "share_pct"])
    d = quote_ident(dim.name)
    sql = (
        f"SELECT {d} AS {quote_ident(labels[0])}, count(*) AS {quote_ident(labels[1])}, "  # noqa: S608
        f"100.0 * count(*) / sum(count(*)) OVER () AS {quote_ident(labels[2])} "
        f"FROM data WHERE {d} IS NOT NULL GROUP BY {d} "
        f"ORDER BY {quote_ident(labels[1])} DESC, {d} LIMIT {MAX_SEGMENT_ROWS}"
    )
    fact, rows = _fact(table, "share", sql, [dim.name])
    if len(rows) < 2 or rows[0][labels[1]] == rows[1][labels[1]]:
        return None  # no single most common value
    first = rows[0]
    share = _num(first[labels[2]]) or 0.0
    fact.values = {"category": first[labels[0]], "count": first[labels[1]], "share_pct": share}
    fact.statement = (
        f"The most common {dim.name} is {_fmt_label(first[labels[0]])}, with "
        f"{fmt_pct(share)} of the rows that have one ({fmt_number(first[labels[1]])})."
    )
    even = 1 / max(2, dim.distinct)
    fact.score = 0.35 + 0.3 * max(0.0, min(1.0, (share / 100 - even) / (1 - even)))
    return fact


def _candidates(table: Table, roles: _Roles) -> Iterable[Fact | None]:
    yield _row_count_fact(table)
    for rank, metric in enumerate(roles.measures):
        yield _summary_fact(table, metric, rank)
    main = roles.measures[:2]
    series = [*main, _Metric("*", "count")]
    for t_rank, temporal in enumerate(roles.temporal[:2]):
        grain = choose_grain(temporal.min, temporal.max, natural_grain(table, temporal.name))
        for m_rank, metric in enumerate(series):
            weight = (1.0, 0.9, 0.8)[m_rank] * (1.0 if t_rank == 0 else 0.8)
            if metric.column == "*" and any(m.agg == "sum" for m in main):
                weight *= 0.8
            yield _trend_fact(table, temporal, grain, metric, weight)
    for d_rank, dim in enumerate(roles.dimensions[:3]):
        for m_rank, metric in enumerate(main):
            weight = (1.0, 0.9)[m_rank] * (1.0, 0.95, 0.9)[d_rank]
            yield _segment_fact(table, dim, metric, weight, bottom=False)
            if dim.distinct >= 3:
                yield _segment_fact(table, dim, metric, weight, bottom=True)
    if table.reads_rows:
        # Quantiles and correlations of the rows themselves: in a source, a full scan each
        # (seconds on millions of rows) for a fact nobody asked for.
        ident = roles.ids[0] if roles.ids else None
        for metric in roles.measures:
            yield _outlier_fact(table, metric, ident)
        yield _correlation_fact(table, roles.measures)
    for dim in roles.dimensions[:3]:
        yield _category_share_fact(table, dim)


def _headlines(fact: Fact) -> list[tuple[frozenset[str], float]]:
    """The numbers a fact is *about*, each with the columns it describes: a summary's total
    and mean of its measure, an aggregate's value of each measure, a segment's (or a
    breakdown's) top value of the measure by its dimension, a trend's last value. Two facts
    sharing one of these say the same thing twice."""
    values = fact.values
    columns = frozenset(fact.columns)
    numbers: list[tuple[frozenset[str], Scalar]] = []
    if fact.kind == "summary":
        numbers = [(columns, values.get("total")), (columns, values.get("mean"))]
    elif fact.kind == "aggregate":
        for key, value in values.items():
            named = next((c for c in fact.columns if key in {f"{a}_{c}" for a in _AGGS}), None)
            numbers.append((frozenset([named]) if named else columns, value))
    elif fact.kind in ("top_segment", "bottom_segment"):
        numbers = [(columns, values.get("value"))]
    elif fact.kind == "breakdown":
        numbers = [(columns, values.get("top_value"))]
    elif fact.kind == "trend":
        numbers = [(columns, values.get("last"))]
    out: list[tuple[frozenset[str], float]] = []
    for about, value in numbers:
        number = _num(value)
        if number is not None:
            out.append((about, number))
    return out


_AGGS = ("sum", "avg", "count", "min", "max")


def _repeats(fact: Fact, known: Sequence[tuple[frozenset[str], float]]) -> bool:
    return any(
        about == seen and math.isclose(number, value, rel_tol=1e-9, abs_tol=1e-9)
        for about, number in _headlines(fact)
        for seen, value in known
    )


def salient_facts(
    table: Table,
    profile: Profile,
    *,
    limit: int = 8,
    exclude: Sequence[Fact] = (),
    extra: Sequence[Fact] = (),
) -> list[Fact]:
    """The ``limit`` most salient facts about the data, numbered f1, f2... by salience.

    Salience ranks the main measure's total first, then its top segments by each dimension
    and its trends, then bottom segments and correlations, and only then secondary summaries,
    the row count, outliers and the most common values. Facts that repeat a number of a fact
    in ``exclude`` (the facts a question's plan produced) for the same columns are left out:
    the total of a measure the plan already aggregated, the top segment of a breakdown it
    already ranked, the last point of a series it already computed. ``extra`` facts computed
    elsewhere (anomalies) are ranked with the rest by their own scores."""
    known = [headline for fact in exclude for headline in _headlines(fact)]
    found = [
        f
        for f in (*_candidates(table, _roles(profile)), *extra)
        if f is not None and not (known and _repeats(f, known))
    ]
    ranked = sorted(enumerate(found), key=lambda pair: (-pair[1].score, pair[0]))
    return _numbered([fact for _, fact in ranked[:limit]])
