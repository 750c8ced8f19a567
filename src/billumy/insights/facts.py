"""Facts: deterministic findings, each computed by one SQL query over the table ``data``.

The language model only writes about facts; it never computes. So every number a narrative
may cite is produced here, by SQL that Billumy builds itself (identifiers through
:func:`~billumy.insights.data.quote_ident`, user values only as ``?`` parameters, kept in
``Fact.params``), and a verifier can re-run it.

Conventions every fact follows:

* ``sql`` (with ``params``) returns exactly ``rows``: same columns, same order. For
  single-number facts that is one row;
* ``values`` are cells of ``rows`` or plain arithmetic on them: ``change = last - previous``,
  ``change_pct = 100 * change / |previous|``, ``slope`` = the least-squares slope of the
  measure over the period index 0..n-1 (what DuckDB's ``regr_slope`` computes);
* numbers are plain ``int``/``float`` (``None`` for undefined), labels are ``str``, dates are
  ISO strings; statements round to 2 decimals and percentages to 1;
* sums of floating-point columns use ``fsum`` (compensated summation), so a total does not
  depend on the order in which DuckDB's threads add the parts;
* series are bucketed at the coarser of the grain the data are recorded at (first days of
  months are monthly data, see :func:`natural_grain`) and the grain their span reads best
  at; periods are labelled ``2024-03-15`` (day), the ISO date of the week's Monday (week,
  stated as "the week of 2024-03-11"), ``2024-03`` (month), ``2024-Q1``, ``2024``.

Kinds: ``row_count``, ``summary`` (a measure's total, mean, min, max), ``trend`` (a series
by period: first/last, last vs previous, slope), ``top_segment`` and ``bottom_segment`` (a
measure by a dimension), ``outliers``, ``correlation``, ``share`` (the most common value of a
dimension); from plans, ``aggregate`` (the measures overall) and ``breakdown`` (by the plan's
dimensions), plus ``trend`` for its period. ``anomaly`` facts (drops and spikes per segment
per period) are computed in :mod:`billumy.insights.anomalies`; ``salient_facts`` ranks them
with the rest.

Two entry points: :func:`salient_facts` (no question: the most telling facts about the data,
ranked by a simple salience score) and :func:`facts_for_plan` (a question turned into a
:class:`Plan`, by the model under the JSON schema of :func:`plan_schema` or by
:func:`rule_plan`'s keyword rules). Masked columns never appear in a fact.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from billumy.errors import BadRequestError
from billumy.insights.data import Table, quote_ident
from billumy.insights.model import ColumnProfile, Fact, Profile, Scalar
from billumy.insights.profile import CATEGORY_MIN_DISTINCT, dtype_family, name_words, plain

__all__ = [
    "Filter",
    "Measure",
    "Period",
    "Plan",
    "choose_grain",
    "coarser",
    "column_vocabulary",
    "default_agg",
    "facts_for_plan",
    "filter_conditions",
    "fmt_number",
    "fmt_pct",
    "is_stock",
    "main_columns",
    "metric_sql",
    "named_columns",
    "names_a_dimension",
    "names_a_measure",
    "names_sales",
    "natural_grain",
    "period_label",
    "plan_agg",
    "plan_schema",
    "rule_order",
    "rule_plan",
    "salient_facts",
    "synonym_groups",
    "validate_plan",
    "variants",
]

Agg = Literal["sum", "avg", "count", "min", "max"]
Grain = Literal["day", "week", "month", "quarter", "year"]
Op = Literal["=", "!=", ">", ">=", "<", "<=", "in"]

MAX_SEGMENT_ROWS = 10
MIN_PERIOD_COVER = 0.75  # a period seen on under 3/4 of the usual number of days is partial
MAX_OUTLIER_EXAMPLES = 5
MIN_CORRELATION = 0.5
FLAT_SHARE = 0.05  # a trend moving less than 5% of the mean level over the series is flat
MAX_MEASURES = 5
MAX_FILTERS = 10


# --- the plan ------------------------------------------------------------------------------


class Measure(BaseModel):
    """One aggregate: ``column`` is a numeric column, or ``"*"`` with ``count`` for rows."""

    model_config = ConfigDict(extra="forbid")
    column: str
    agg: Agg


class Filter(BaseModel):
    """A condition on a column; ``value`` is a list exactly when ``op`` is ``in``."""

    model_config = ConfigDict(extra="forbid")
    column: str
    op: Op
    value: str | float | list[str | float]


class Period(BaseModel):
    """Group by ``grain`` of a temporal column; ``last`` keeps the last N calendar periods."""

    model_config = ConfigDict(extra="forbid")
    column: str
    grain: Grain
    last: int | None = Field(default=None, ge=1, le=1000)


class Plan(BaseModel):
    """What to compute for a question: aggregates, by up to two dimensions and/or a period,
    over the rows the filters keep."""

    model_config = ConfigDict(extra="forbid")
    measures: list[Measure] = Field(min_length=1, max_length=MAX_MEASURES)
    dimensions: list[str] = Field(default_factory=list, max_length=2)
    filters: list[Filter] = Field(default_factory=list, max_length=MAX_FILTERS)
    period: Period | None = None
    top_n: int = Field(default=5, ge=1, le=100)
    order: Literal["desc", "asc"] = "desc"


# --- formatting ----------------------------------------------------------------------------


def fmt_number(value: Scalar) -> str:
    """A number for a statement: thousands separators, at most 2 decimals (2 significant
    digits for tiny values), no trailing zeros."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or value.is_integer():
        return f"{round(value):,}"
    if 0 < abs(value) < 0.01:
        return f"{value:.2g}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def fmt_pct(value: float | None) -> str:
    """A percentage with one decimal: ``12.5%``."""
    return "n/a" if value is None else f"{value:.1f}%"


def _fmt_label(value: Scalar) -> str:
    return fmt_number(value) if isinstance(value, int | float) else str(value)


def _sentence(text: str) -> str:
    """``text`` with its first letter upper-cased (and nothing else changed) and a period."""
    return f"{text[:1].upper()}{text[1:]}."


# --- measure roles -------------------------------------------------------------------------

_AVG_WORDS = {
    "age", "idade", "nps", "pct", "avg", "mean", "rate", "taxa", "ratio", "score", "nota",
    "rating", "media", "margin", "margem", "price", "preco", "tempo", "time", "hours", "horas",
    "hour", "hora", "days", "dias", "minutes", "minutos", "seconds", "segundos", "duration",
    "duracao", "latency", "latencia", "discount", "desconto", "temperature", "temperatura",
    "satisfaction", "satisfacao", "percent", "percentage", "percentual", "porcentagem",
    "medio", "average", "min", "mins", "delay", "atraso", "lag", "speed",
    "velocidade", *("headcount", "saldo", "balance", "estoque", "inventory", "stock"),
}  # fmt: skip
# Stocks: levels at a moment (people on the payroll, units in the warehouse, money in the
# account), which add up across segments on one date but never across dates.
_STOCK_WORDS = {
    "headcount", "saldo", "balance", "estoque", "inventory", "stock", "employees",
    "funcionarios", "colaboradores", "efetivo", "assinantes", "subscribers", "ativos", "active",
    "matriculados", "enrolled", "inscritos", "backlog", "carteira", "vigentes", "ativas",
    "disponiveis", "available", "logged", "online", "capacity", "capacidade", "frota", "fleet",
}  # fmt: skip
_MONEY_WORDS = {
    "revenue", "receita", "sales", "vendas", "venda", "valor", "value", "amount", "total",
    "faturamento", "montante", "lucro", "profit", "gmv", "income", "renda",
}  # fmt: skip
_GRAIN_DAYS: tuple[tuple[Grain, int], ...] = (
    ("day", 62),
    ("week", 26 * 7),
    ("month", 3 * 366),
    ("quarter", 8 * 366),
)


_COUNT_NOUNS = frozenset(
    {"boletos", "pedidos", "orders", "tickets", "chamados", "entregas", "deliveries", "faturas",
     "invoices", "itens", "items", "clientes", "customers", "casos", "cases", "contas",
     "accounts", "payments", "pagamentos", "parcelas", "titulos", "envios", "shipments"}
)  # fmt: skip
# Words of an average that stay one however counted: "tickets_tempo_medio" is a time.
_STATE_EXEMPT = frozenset(
    {"medio", "media", "avg", "mean", "average", "rate", "taxa", "pct", "percent", "tempo",
     "time", "hours", "horas", "days", "dias", "minutes", "minutos", "score", "nota", "price",
     "preco", "idade", "age"}
)  # fmt: skip


def default_agg(column: ColumnProfile) -> Literal["sum", "avg"]:
    """``avg`` for measures that do not add up (prices, rates, scores, durations, ratios in
    [0, 1]); ``sum`` for quantities and money."""
    words = name_words(column.name)
    if any(word in _AVG_WORDS for word in words):
        # "boletos_em_atraso" counts the boletos that are late; "atraso_dias" is a delay.
        counted = set(words) & _COUNT_NOUNS and not set(words) & _STATE_EXEMPT
        least = column.min
        if counted and isinstance(least, int) and not isinstance(least, bool) and least >= 0:
            return "sum"
        return "avg"
    low, high = column.min, column.max
    is_ratio = isinstance(low, float) and isinstance(high, float) and low >= 0 and high <= 1
    return "avg" if is_ratio and dtype_family(column.dtype) == "float" else "sum"


def is_stock(column: ColumnProfile) -> bool:
    """Whether ``column`` is a level at a moment (headcount, estoque, saldo), not a flow."""
    return column.kind == "numeric" and any(w in _STOCK_WORDS for w in name_words(column.name))


def plan_agg(column: ColumnProfile) -> Agg:
    """The aggregate a question about ``column`` means when it names none: a stock's total
    (taken on the latest date, see :func:`facts_for_plan`), else :func:`default_agg`. Salient
    facts, which read no question, keep :func:`default_agg` (a stock's average level)."""
    return "sum" if is_stock(column) else default_agg(column)


@dataclass(frozen=True)
class _Metric:
    """A measure as facts compute it: ``column`` is ``"*"`` for the row count."""

    column: str
    agg: Agg
    dtype: str = "BIGINT"

    @property
    def sql(self) -> str:
        if self.column == "*":
            return "count(*)"
        c = quote_ident(self.column)
        if (
            self.agg == "sum"
            and dtype_family(self.dtype) == "float"
            and "DECIMAL" not in self.dtype
        ):
            return f"fsum(CAST({c} AS DOUBLE))"
        if self.agg == "avg":
            return f"avg(CAST({c} AS DOUBLE))"
        return f"{self.agg}({c})"

    @property
    def phrase(self) -> str:
        if self.column == "*":
            return "the number of rows"
        return {
            "sum": f"total {self.column}",
            "avg": f"average {self.column}",
            "count": f"the number of {self.column} values",
            "min": f"minimum {self.column}",
            "max": f"maximum {self.column}",
        }[self.agg]

    @property
    def additive(self) -> bool:
        return self.agg in ("sum", "count")


@dataclass
class _Roles:
    measures: list[_Metric] = field(default_factory=list)  # most important first
    dimensions: list[ColumnProfile] = field(default_factory=list)
    temporal: list[ColumnProfile] = field(default_factory=list)
    ids: list[ColumnProfile] = field(default_factory=list)


def _measure_rank(column: ColumnProfile, position: int) -> tuple[int, int, int]:
    money = any(word in _MONEY_WORDS for word in name_words(column.name))
    return (default_agg(column) != "sum", not money, position)


def _roles(profile: Profile) -> _Roles:
    visible = [c for c in profile.columns if not c.masked]
    numeric = [(i, c) for i, c in enumerate(visible) if c.kind == "numeric"]
    numeric.sort(key=lambda pair: _measure_rank(pair[1], pair[0]))
    dims = [c for c in visible if c.kind in ("categorical", "boolean") and c.distinct >= 2]
    dims.sort(key=lambda c: (c.distinct > CATEGORY_MIN_DISTINCT, c.kind == "boolean"))
    temporal = [c for c in visible if c.kind == "temporal" and c.min != c.max]
    return _Roles(
        measures=[_Metric(c.name, default_agg(c), c.dtype) for _, c in numeric],
        dimensions=dims,
        temporal=temporal,
        ids=[c for c in visible if c.kind == "id"],
    )


def main_columns(profile: Profile) -> tuple[str | None, str | None, str | None]:
    """The columns the salient facts lead with: the main measure (money first), the main
    dimension and the main date column; None where the data has none."""
    roles = _roles(profile)
    measure = next((m.column for m in roles.measures), None)
    dimension = roles.dimensions[0].name if roles.dimensions else None
    temporal = roles.temporal[0].name if roles.temporal else None
    return measure, dimension, temporal


def metric_sql(column: str, agg: Agg, dtype: str) -> str:
    """The SQL aggregate of ``column`` as facts compute it (``fsum`` for float sums)."""
    return _Metric(column, agg, dtype).sql


# --- SQL pieces ----------------------------------------------------------------------------


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


def _labels(wanted: Sequence[str], taken: Iterable[str] = ()) -> list[str]:
    """Result-column names: ``wanted``, each made unique (case-insensitively) by a suffix."""
    used = {t.casefold() for t in taken}
    out = []
    for name in wanted:
        label, n = name, 2
        while label.casefold() in used:
            label, n = f"{name}_{n}", n + 1
        used.add(label.casefold())
        out.append(label)
    return out


def _clean_rows(rows: list[dict[str, Any]]) -> list[dict[str, Scalar]]:
    return [{k: plain(v) for k, v in row.items()} for row in rows]


def _num(value: Scalar) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _fact(
    table: Table,
    kind: str,
    sql: str,
    columns: list[str],
    params: Sequence[Any] = (),
) -> tuple[Fact, list[dict[str, Scalar]]]:
    """Run ``sql`` and start a fact around its rows; the caller fills statement and values."""
    rows = _clean_rows(table.records(sql, list(params)))
    fact = Fact(
        id="",
        kind=kind,
        statement="",
        values={},
        columns=columns,
        sql=sql,
        rows=rows,
        params=[plain(p) for p in params],
    )
    return fact, rows


def _numbered(facts: list[Fact]) -> list[Fact]:
    for position, fact in enumerate(facts, start=1):
        fact.id = f"f{position}"
    return facts


# --- series arithmetic ---------------------------------------------------------------------


def _slope(values: Sequence[float]) -> float | None:
    """Least-squares slope of ``values`` over 0..n-1 (``regr_slope(value, index)``)."""
    n = len(values)
    if n < 2:
        return None
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def _direction(slope: float | None, values: Sequence[float]) -> str:
    if slope is None or not values:
        return "flat"
    scale = sum(abs(v) for v in values) / len(values)
    if slope == 0 or abs(slope) * (len(values) - 1) < FLAT_SHARE * scale:
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


# --- salient facts -------------------------------------------------------------------------


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
    sql = (
        f"SELECT {total} AS total, avg(CAST({c} AS DOUBLE)) AS mean, min({c}) AS min, "  # noqa: S608
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


def _series_sql(
    metrics: Sequence[_Metric],
    labels: Sequence[str],
    column: str,
    grain: Grain,
    where: Sequence[str] = (),
) -> str:
    aggregates = ", ".join(f"{m.sql} AS v{i}" for i, m in enumerate(metrics))
    outputs = ", ".join(f"v{i} AS {quote_ident(label)}" for i, label in enumerate(labels))
    conditions = " AND ".join([f"{quote_ident(column)} IS NOT NULL", *where])
    c = quote_ident(column)
    # A first or last period the data covers on far fewer days than the others (the week the
    # data ends in on a Tuesday) would read as a drop: such periods are left out of series.
    cover = (
        f"cover AS (SELECT {_period_sql(grain, column)} AS p, "  # noqa: S608
        f"count(DISTINCT CAST({c} AS DATE)) AS d FROM data WHERE {c} IS NOT NULL GROUP BY 1), "
        f"whole AS (SELECT p FROM cover WHERE d >= {MIN_PERIOD_COVER} * "
        "(SELECT median(d) FROM cover)), "
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
    slope = _num(values.get("slope"))
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


# --- plans: schema and validation ----------------------------------------------------------


def _allowed(profile: Profile) -> dict[str, list[str]]:
    visible = [c for c in profile.columns if not c.masked]
    return {
        "measures": [c.name for c in visible if c.kind == "numeric"] + ["*"],
        "dimensions": [c.name for c in visible if c.kind in ("categorical", "boolean", "temporal")],
        "filters": [c.name for c in visible if c.kind not in ("empty", "text")],
        "periods": [c.name for c in visible if c.kind == "temporal"],
    }


def _enum(values: list[str]) -> dict[str, Any]:
    return {"type": "string", "enum": values} if values else {"type": "string", "enum": [""]}


def plan_schema(profile: Profile) -> dict[str, Any]:
    """The JSON schema of :class:`Plan` for this profile, column fields as ``enum`` of the
    columns allowed there; plain enough for llama.cpp's JSON-schema grammar (no ``$ref``,
    no ``oneOf``)."""
    allowed = _allowed(profile)
    scalar = [{"type": "string"}, {"type": "number"}]
    properties: dict[str, Any] = {
        "measures": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "column": _enum(allowed["measures"]),
                    "agg": {"type": "string", "enum": ["sum", "avg", "count", "min", "max"]},
                },
                "required": ["column", "agg"],
                "additionalProperties": False,
            },
        },
        "dimensions": {
            "type": "array",
            "maxItems": 2 if allowed["dimensions"] else 0,
            "items": _enum(allowed["dimensions"]),
        },
        "filters": {
            "type": "array",
            "maxItems": 3 if allowed["filters"] else 0,
            "items": {
                "type": "object",
                "properties": {
                    "column": _enum(allowed["filters"]),
                    "op": {"type": "string", "enum": ["=", "!=", ">", ">=", "<", "<=", "in"]},
                    "value": {"anyOf": [*scalar, {"type": "array", "items": {"anyOf": scalar}}]},
                },
                "required": ["column", "op", "value"],
                "additionalProperties": False,
            },
        },
        "top_n": {"type": "integer", "minimum": 1, "maximum": 20},
        "order": {"type": "string", "enum": ["desc", "asc"]},
    }
    if allowed["periods"]:
        properties["period"] = {
            "type": "object",
            "properties": {
                "column": _enum(allowed["periods"]),
                "grain": {"type": "string", "enum": ["day", "week", "month", "quarter", "year"]},
                "last": {"type": "integer", "minimum": 1, "maximum": 1000},
            },
            "required": ["column", "grain"],
            "additionalProperties": False,
        }
    return {
        "type": "object",
        "properties": properties,
        "required": ["measures", "dimensions", "filters"],
        "additionalProperties": False,
    }


def _column(profile: Profile, name: str, role: str) -> ColumnProfile:
    column = profile.column(name)
    if column is None:
        raise BadRequestError(f"the plan names an unknown column {name!r} (in {role})")
    if column.masked:
        raise BadRequestError(f"column {name!r} is masked and cannot be used in {role}")
    return column


def _check_measure(profile: Profile, measure: Measure) -> None:
    if measure.column == "*":
        if measure.agg != "count":
            raise BadRequestError(f"'*' only counts rows; {measure.agg} needs a numeric column")
        return
    column = _column(profile, measure.column, "measures")
    if measure.agg == "count":
        return
    if measure.agg in ("min", "max") and column.kind == "temporal":
        return
    if column.kind != "numeric":
        raise BadRequestError(
            f"cannot take the {measure.agg} of column {measure.column!r}: it is "
            f"{column.kind}, not numeric"
        )


def _check_filter(profile: Profile, flt: Filter) -> None:
    column = _column(profile, flt.column, "filters")
    if column.kind in ("empty", "text"):
        raise BadRequestError(f"column {flt.column!r} is {column.kind} and cannot be filtered")
    if (flt.op == "in") != isinstance(flt.value, list):
        raise BadRequestError(
            f"the filter on {flt.column!r} needs a list value with 'in' and a single value "
            "with other operators"
        )
    if flt.op == "in" and not flt.value:
        raise BadRequestError(f"the 'in' filter on {flt.column!r} has an empty list")
    for value in flt.value if isinstance(flt.value, list) else [flt.value]:
        _coerce(column, value)


def validate_plan(plan: Plan, profile: Profile) -> None:
    """400 when the plan names an unknown or masked column, or one of the wrong kind."""
    for measure in plan.measures:
        _check_measure(profile, measure)
    if len(set(plan.dimensions)) != len(plan.dimensions):
        raise BadRequestError("the plan repeats a dimension")
    for name in plan.dimensions:
        column = _column(profile, name, "dimensions")
        if column.kind not in ("categorical", "boolean", "temporal"):
            raise BadRequestError(
                f"column {name!r} is {column.kind} and cannot be a dimension; use a "
                "categorical, boolean or temporal column"
            )
    for flt in plan.filters:
        _check_filter(profile, flt)
    if plan.period is not None:
        column = _column(profile, plan.period.column, "period")
        if column.kind != "temporal":
            raise BadRequestError(
                f"column {plan.period.column!r} is {column.kind}, not a date or time"
            )


def _coerce(column: ColumnProfile, value: str | float) -> Any:
    """A filter value as a parameter of the column's type; 400 if it cannot be one."""
    family = dtype_family(column.dtype)
    text = str(value).strip()
    try:
        if family == "integer":
            number = float(value)
            return int(number) if number.is_integer() else number
        if family == "float":
            return float(value)
        if family == "boolean":
            if text.lower() in ("true", "1", "1.0", "yes", "sim"):
                return True
            if text.lower() in ("false", "0", "0.0", "no", "nao", "não"):
                return False
            raise ValueError(text)
        if family == "temporal":
            return _as_datetime(text, column.dtype)
    except (TypeError, ValueError):
        raise BadRequestError(
            f"the filter value {text!r} does not fit column {column.name!r} ({column.dtype})"
        ) from None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_datetime(text: str, dtype: str) -> date | datetime:
    if re.fullmatch(r"\d{4}-\d{2}", text):
        text += "-01"
    elif re.fullmatch(r"\d{4}", text):
        text += "-01-01"
    moment = datetime.fromisoformat(text)
    return (
        moment.date()
        if dtype == "DATE" and moment == datetime.combine(moment.date(), datetime.min.time())
        else moment
    )


# --- plans: facts --------------------------------------------------------------------------


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
        out.append(_Metric(measure.column, measure.agg, column.dtype if column else "BIGINT"))
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
    names = [*extra, *(m.column for m in metrics if m.column != "*"), *where.columns]
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
    sql = _series_sql(metrics, labels, period.column, grain, conditions)
    columns = _metric_columns(metrics, where, period.column)
    fact, rows = _fact(table, "trend", sql, columns, where.params)
    fact.score = 0.8
    values = _series_values(rows, labels[0])
    if not values:
        fact.values = {"periods": 0}
        fact.statement = f"By {grain}{where.phrase}, no rows match."
        return fact
    fact.values = values
    fact.statement = _trend_statement(grain, metrics[0].phrase, values, where.phrase)
    return fact


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


# --- plans from keywords -------------------------------------------------------------------


def _fold(text: str) -> str:
    bare = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return bare.lower()


_PLURALS = (("oes", "ao"), ("aes", "ao"), ("ies", "y"), ("ais", "al"), ("eis", "el"), ("ns", "m"))


def synonym_groups(word: str) -> frozenset[int]:
    """The synonym groups ``word`` (folded, singular) belongs to."""
    return _SYNONYM_GROUPS.get(word, frozenset())


def variants(word: str) -> frozenset[str]:
    """``word`` and its possible singulars (see :func:`_variants`)."""
    return _variants(word)


def _variants(word: str) -> frozenset[str]:
    """The word and its possible singulars (English and Portuguese): ``regioes`` ->
    ``regiao``, ``valores`` -> ``valor``, ``trimestres`` -> ``trimestre``."""
    out = {word}
    for plural, singular in _PLURALS:
        # "pães" -> "pão", "mães" -> "mão": one letter before -ães/-ões is enough.
        least = len(plural) if singular == "ao" else len(plural) + 1
        if word.endswith(plural) and len(word) > least:
            out.add(word[: -len(plural)] + singular)
    if word.endswith("ed") and len(word) > 5:  # "churned" -> "churn", "changed" -> "change"
        out.update((word[:-2], word[:-1]))
    if word.endswith("s") and len(word) > 3 and not word.endswith("ss"):
        out.add(word[:-1])
        if word.endswith("es") and len(word) > 4:
            out.add(word[:-2])
    return frozenset(out)


def _tokens(text: str) -> list[frozenset[str]]:
    return [_variants(w) for w in re.findall(r"[a-z0-9]+", _fold(text))]


def _find(tokens: list[frozenset[str]], words: list[str]) -> int:
    """Where ``words`` appear in a row in ``tokens`` (plurals matching singulars), or -1."""
    wanted = [_variants(w) for w in words]
    if not wanted:
        return -1
    for start in range(len(tokens) - len(wanted) + 1):
        if all(tokens[start + i] & w for i, w in enumerate(wanted)):
            return start
    return -1


def _lookup(tokens: list[frozenset[str]], table: dict[str, Any]) -> Any:
    return next((table[v] for t in tokens for v in sorted(t) if v in table), None)


# Common business words, English and Portuguese (folded, singular): a question word matches a
# column word of the same group. A word may sit in several groups ("receita" is revenue and
# sales). Single words only: a column "Receita Líquida" still needs both its words named.
# Words of losing people or customers: an exit (HR) and a cancellation (churn) alike.
_LOSING = ("lose", "lost", "losing", "perdeu", "perdemos", "perda", "perdas")
_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("revenue", "receita", "faturamento", "income", "renda"),
    ("sales", "sale", "venda", "receita", "faturamento"),
    ("amount", "value", "valor", "montante"),
    ("region", "regiao", "regional"),
    ("month", "mes"),
    ("year", "ano"),
    ("quarter", "trimestre"),
    ("week", "semana"),
    ("day", "dia"),
    ("date", "data", "dt"),
    ("unit", "unidade", "quantity", "quantidade", "qty", "qtd", "qtde"),
    ("customer", "client", "cliente", "consumidor"),
    ("product", "produto", "item"),
    ("store", "shop", "loja"),
    ("channel", "canal"),
    ("category", "categoria"),
    ("price", "preco"),
    ("cost", "custo", "expense", "despesa", "gasto", "spend", "spent", "spending"),
    ("profit", "lucro"),
    ("margin", "margem"),
    ("order", "pedido"),
    ("visit", "visita"),
    ("signup", "cadastro", "registration", "inscricao"),
    ("priority", "prioridade"),
    ("satisfaction", "satisfacao", "csat"),
    ("source", "origem", "fonte"),
    ("city", "cidade"),
    ("state", "estado", "uf"),
    ("country", "pais"),
    ("seller", "vendedor", "salesperson"),
    ("employee", "funcionario", "colaborador"),
    ("department", "departamento", "setor"),
    ("status", "situacao"),
    ("ticket", "chamado"),
    ("discount", "desconto"),
    ("hour", "hora"),
    ("age", "idade"),
    ("gender", "genero", "sexo"),
    ("brand", "marca"),
    ("supplier", "fornecedor"),
    ("payment", "pagamento"),
    ("type", "tipo"),
    ("segment", "segmento"),
    ("resolution", "resolucao"),
    ("appointment", "consulta", "agendamento", "atendimento"),
    ("patient", "paciente"),
    ("doctor", "medico", "physician"),
    ("specialty", "especialidade", "speciality"),
    ("plan", "plano"),
    ("unit", "unitario"),
    ("branch", "filial", "unidade", "location", "local", "site"),
    # people and HR
    ("employee", "funcionario", "colaborador", "headcount", "staff"),
    ("hire", "contratacao", "contratar", "contratou", "contratamos", "admissao", "hiring"),
    (
        "exit",
        "saida",
        "desligamento",
        "demissao",
        "left",
        "leaver",
        "attrition",
        "turnover",
        *_LOSING,
    ),
    ("payroll", "folha", "salario", "salary", "wage"),
    ("team", "equipe", "department", "departamento", "area", "setor"),
    # returns and logistics
    ("return", "returns", "devolucao", "devolucoes", "devolvido", "devolvida", "returned"),
    ("refund", "reembolso", "reembolsado", "estorno"),
    ("reason", "motivo", "causa"),
    ("defect", "defeito", "defeituoso"),
    ("stock", "estoque", "inventory", "inventario"),
    ("member", "membro", "aluno", "associado", "subscriber", "assinante"),
    (
        "cancellation",
        "cancelamento",
        "cancel",
        "cancelled",
        "canceled",
        "cancelou",
        "churn",
        "cancelaram",
        *_LOSING,
    ),
    ("spend", "gasto", "gastamos", "gastou", "investimento", "investido", "spent"),
    ("ad", "ads", "anuncio", "midia", "publicidade", "advertising", "marketing"),
    ("session", "sessao", "visita", "acesso"),
    ("signup", "matricula", "enrollment", "inscricao", "adesao"),
    (
        "resolved",
        "resolve",
        "resolvido",
        "resolveu",
        "resolveram",
        "resolvemos",
        "closed",
        "close",
        "fechado",
        "fechou",
        "fecharam",
        "solved",
        "resolucao",
        "resolution",
    ),
    ("delay", "atraso", "lag"),
    ("late", "atrasado", "atrasada", "atrasadas", "atrasados", "overdue"),
    (
        "delivery",
        "entrega",
        "entregue",
        "entregou",
        "entregaram",
        "entregamos",
        "delivered",
        "shipment",
        "envio",
        "shipped",
    ),
    ("carrier", "transportadora", "shipper"),
    ("loss", "perda", "waste", "desperdicio", "quebra", "spoilage"),
    # schools and collections
    ("student", "aluno", "estudante", "pupil"),
    ("new", "novo", "nova", "novato", "novata"),
    ("enrolment", "enrollment", "matricula", "enrolled", "matriculado", "inscrito"),
    (
        "received",
        "recebido",
        "recebimento",
        "recebemos",
        "recebeu",
        "receberam",
        "receber",
        "collected",
        "collect",
        "collection",
        "arrecadado",
        "arrecadacao",
        "arrecadamos",
    ),
    ("billing", "billed", "faturado", "faturamento", "faturamos", "faturou", "faturar"),
    ("overdue", "inadimplencia", "inadimplente", "atraso", "delinquency", "late"),
    ("payment", "boleto"),
    ("campus", "unidade", "escola", "school"),
    # warehouses
    ("line", "linha"),
    (
        "pick",
        "picked",
        "picking",
        "separado",
        "separada",
        "separacao",
        "separar",
        "separamos",
        "separou",
    ),
    ("wave", "onda"),
    ("warehouse", "dc", "cd", "armazem", "deposito"),
    ("backlog", "pendente", "pendencia"),
    # call centers
    ("call", "ligacao", "chamada", "telefonema"),
    ("answered", "atendida", "atendido", "atendemos", "attended"),
    ("abandoned", "abandonada", "abandonado", "abandono", "abandonment", "desistencia"),
    ("offered", "incoming", "inbound", "entrante", "entrada", "entraram"),
    ("queue", "fila"),
    ("agent", "agente", "atendente", "operador"),
    ("wait", "espera", "waiting"),
    # hotels
    ("room", "quarto", "apartamento"),
    ("occupied", "ocupado", "ocupada", "diaria"),
    ("available", "disponivel", "capacity", "capacidade"),
    ("guest", "hospede"),
    ("occupancy", "ocupacao"),
    ("rental", "rentals", "locacao", "aluguel", "alugueis", "rent"),
    ("kg", "kilo", "kilos", "quilo", "quilos", "kilogram", "kilograms", "quilograma"),
    ("saca", "sacas", "sack", "sacks", "bag", "bags"),
    ("soja", "soy", "soybean", "soybeans"),
    ("milho", "corn", "maize"),
    ("trigo", "wheat"),
    ("cafe", "coffee"),
    ("booking", "bookings", "reserva", "reservas", "agendamento", "agendamentos"),
    # energy
    ("kwp", "kw", "mwp", "mw", "potencia", "power", "capacity", "capacidade"),
)
_SYNONYM_GROUPS: dict[str, frozenset[int]] = {}
for _group, _words in enumerate(_SYNONYMS):
    for _word in _words:
        _SYNONYM_GROUPS[_word] = _SYNONYM_GROUPS.get(_word, frozenset()) | {_group}
# "data" is Portuguese for "date", but "the data" is English for the data.
_NOT_A_DATE_BEFORE_DATA = {"the", "this", "that", "these", "those", "my", "our", "your", "of"}
_PREFIX_MIN = 4  # a prefix of at least 4 letters ...
_PREFIX_SHARE = 0.75  # ... and 3/4 of the longer word ("client"/"cliente", not "custo"/"customer")


def _groups(variants: frozenset[str]) -> frozenset[int]:
    return frozenset().union(*(_SYNONYM_GROUPS.get(v, frozenset()) for v in variants))


def _column_words(tokens: list[frozenset[str]]) -> list[frozenset[str]]:
    """The question words that may name a column: all but the English "the data"."""
    return [
        frozenset() if "data" in t and i and tokens[i - 1] & _NOT_A_DATE_BEFORE_DATA else t
        for i, t in enumerate(tokens)
    ]


def _prefixed(a: str, b: str) -> bool:
    short, long = sorted((a, b), key=len)
    return (
        len(short) >= _PREFIX_MIN
        and long.startswith(short)
        and len(short) >= _PREFIX_SHARE * len(long)
    )


def _word_match(token: frozenset[str], groups: frozenset[int], word: str) -> int:
    """2 when a question word is ``word`` (plurals aside), 1 when it is a synonym or a close
    prefix of it ("client"/"cliente"), 0 otherwise."""
    wanted = _variants(word)
    if token & wanted:
        return 2
    if groups & _groups(wanted):
        return 1
    return int(any(_prefixed(a, b) for a in token for b in wanted))


@dataclass(frozen=True)
class _Named:
    """Where a column is named in the question (-1: not named) and how: 2 by its own words,
    1 through synonyms or prefixes, 0 by the first of its words alone."""

    position: int = -1
    strength: int = 0
    length: int = 0  # question words the name takes
    # How weakly a fallback names it, among matches of strength 0: 0 by its first word; 1 by
    # another word no other measure has; 2 by a word other measures share ("linhas":
    # order_lines and backlog_lines); 3 by a word that qualifies another ("linhas
    # separadas": "separadas" says which lines).
    weakness: int = 0


def _find_column(
    tokens: list[frozenset[str]], groups: list[frozenset[int]], words: list[str]
) -> _Named:
    """The best place where ``words`` appear in a row in the question, each matched by
    :func:`_word_match`: the strongest match, the first among equals."""
    best = _Named()
    if not words:
        return best
    # A two-word name may come in either order: English puts the adjective first ("unit
    # price" names "preco_unitario").
    orders = [words, words[::-1]] if len(words) == 2 else [words]
    for order in orders:
        for start in range(len(tokens) - len(order) + 1):
            strength = min(
                _word_match(tokens[start + i], groups[start + i], w) for i, w in enumerate(order)
            )
            if strength > best.strength:
                best = _Named(start, strength, len(order))
    if best.position >= 0 or len(words) != 2:
        return best
    # "tickets were closed", "resolveu menos chamados": a two-word name split by a word or
    # two of the sentence.
    for order in orders:
        for gap in (1, 2):
            for start in range(len(tokens) - gap - 1):
                end = start + gap + 1
                strength = min(
                    _word_match(tokens[start], groups[start], order[0]),
                    _word_match(tokens[end], groups[end], order[1]),
                )
                if strength > best.strength:
                    best = _Named(start, strength, gap + 2)
    return best


def _strongest(columns: list[ColumnProfile], named: dict[str, _Named]) -> list[ColumnProfile]:
    """The columns named by their own words if any is, else those named through synonyms."""
    found = [c for c in columns if named[c.name].position >= 0]
    if not found:
        return []
    top = max(named[c.name].strength for c in found)
    found = [c for c in found if named[c.name].strength == top]

    def inside(inner: _Named, outer: _Named) -> bool:
        return (
            outer.length > inner.length
            and outer.position <= inner.position
            and inner.position + inner.length <= outer.position + outer.length
        )

    # "unit price" names preco_unitario; its word "unit" alone does not also name quantidade.
    found = [c for c in found if not any(inside(named[c.name], named[o.name]) for o in found)]
    # "linhas separadas" names order_lines by its noun; not also units_picked by "separadas";
    # and "lines" shared by order_lines and backlog_lines names the flow, not the stock.
    weakest = min(named[c.name].weakness for c in found)
    found = [c for c in found if named[c.name].weakness == weakest]
    if weakest == 2:
        found = [c for c in found if not is_stock(c)] or found
    return found


_AGG_WORDS: dict[str, Agg] = {
    "total": "sum", "soma": "sum", "sum": "sum", "somatorio": "sum",
    "media": "avg", "medio": "avg", "average": "avg", "mean": "avg", "avg": "avg",
    "maximo": "max", "maximum": "max", "max": "max",
    "minimo": "min", "minimum": "min", "min": "min",
}  # fmt: skip
# "quantos pedidos" counts; "quanto vendeu" (how much) does not: the singular is not a count.
_COUNT_WORDS = {"quantos", "quantas", "count", "contagem", "numero", "number", "many"}
_GRAIN_WORDS: dict[str, Grain] = {
    "dia": "day", "diario": "day", "diaria": "day", "daily": "day", "day": "day",
    "semana": "week", "semanal": "week", "week": "week", "weekly": "week",
    "mes": "month", "mensal": "month", "month": "month", "monthly": "month",
    "trimestre": "quarter", "trimestral": "quarter", "quarter": "quarter", "quarterly": "quarter",
    "ano": "year", "anual": "year", "year": "year", "yearly": "year", "annual": "year",
}  # fmt: skip
_ASC_WORDS = {
    "menor", "menos", "pior", "lowest", "bottom", "least", "worst", "fewest", "smallest",
}  # fmt: skip
_DESC_WORDS = {
    "maior", "mais", "melhor", "top", "best", "highest", "most", "largest", "biggest",
    "greatest",
}  # fmt: skip
_NOT_AN_ORDER_BEFORE = {"at", "pelo", "ao"}  # "at least", "pelo menos", "ao menos"
_DIMENSION_CUES = {
    "qual", "quai", "quais", "por", "cada", "entre", "which", "what", "by", "per", "each",
    "across", "among",
}  # fmt: skip
_FILLERS = {"a", "o", "as", "os", "the", "de", "do", "da", "dos", "das", "each", "cada"}
_LAST_N = re.compile(r"\b(?:ultimos|ultimas|ultimo|ultima|last|past)\s+(\d{1,3})\b")


def rule_plan(question: str, profile: Profile) -> Plan | None:
    """A plan from keywords, for when no model is available or its plan is invalid.

    It looks for columns named in the question (accents, case and plurals ignored; common
    business words matched across English and Portuguese through a small synonym table, so
    "receita" names a column ``revenue`` and "região" one called ``region``; close prefixes,
    "client" for ``cliente``), preferring columns named by their own words over synonyms. It
    reads aggregate words ("total", "soma", "média", "average"...), grains ("mês",
    "quarter"...), "top N", "last N"/"últimos N", and the order: the first of "maior",
    "mais", "top", "best", "highest"... (descending, the default) or "menor", "menos",
    "pior", "lowest", "worst"... (ascending). A categorical column named after "qual",
    "quais", "por", "which", "by", "per"... is a dimension, and so is one named anywhere
    whose values the question does not name; values of categorical columns ("no Sul") are
    filters. None when the question names nothing usable.
    """
    tokens = _tokens(question)
    visible = [c for c in profile.columns if not c.masked]
    # "a fila de vendas" (queue ``Q01 Vendas``) names a queue, not the sales column.
    beside = _values_beside_their_column(visible, tokens) | _value_words(visible, tokens)
    words = [frozenset() if i in beside else t for i, t in enumerate(_column_words(tokens))]
    groups = [_groups(w) for w in words]
    folded = _fold(question)
    shared = _shared_words(visible)
    named = {c.name: _named_column(words, groups, c, shared) for c in visible}
    _drop_modifiers(named, visible, tokens)
    # "Total Express" is a carrier, not a total: words of the values named are no aggregate.
    inside = _value_positions(visible, tokens)
    agg: Agg | None = _lookup([t for i, t in enumerate(tokens) if i not in inside], _AGG_WORDS)
    measures = _rule_measures(visible, named, agg, tokens)
    dims = _rule_dimensions(visible, named, tokens)
    period = _rule_period(visible, named, tokens, folded)
    filters = _rule_filters(visible, tokens, set(dims))
    flags = [] if "%" in question else _yes_no_filters(visible, tokens)
    if flags:
        # "total value of financed projects": the yes/no column named by its word keeps its
        # yes rows; it is no breakdown.
        dims = [d for d in dims if d not in {f.column for f in flags}]
        filters = [f for f in filters if f.column not in {g.column for g in flags}] + flags
    durations = [c for c in visible if c.kind == "numeric" and set(name_words(c.name)) & _DURATION]
    if measures is None and durations and _HOW_LONG.search(folded):
        # "Quanto tempo demora uma instalação?": the duration column, on average.
        measures = [Measure(column=durations[0].name, agg=agg or "avg")]
    if measures is None and _delivers(tokens):
        goods = [c for c in visible if c.kind == "numeric" and _is_quantity(c)]
        goods += [c for c in visible if c.kind == "numeric" and _is_weight(c)]
        if goods:
            measures = [Measure(column=goods[0].name, agg=agg or "sum")]
    if measures is None and any(t & _DEALS for t in tokens):
        # "Which segment closed the fewest deals?": a deal is a row (a contract, a sale).
        ids = [c for c in visible if c.kind == "id"]
        measures = [Measure(column=ids[0].name if ids else "*", agg="count")]
    if measures is None and not dims and period is None and not filters:
        return None
    if measures is None:
        measures = _default_measures(visible, agg)
    measures = [*measures, *_other_aggregates(question, profile, measures)]
    order = _rule_order(tokens)
    if not any(named[c.name].position >= 0 for c in visible if c.kind == "numeric"):
        # "Which department has the largest team?": a team's size is its people.
        people = [c for c in visible if c.kind == "numeric" and _PEOPLE & set(name_words(c.name))]
        if people and any(t & _TEAM for t in tokens) and any(t & _SIZE for t in tokens):
            measures = [Measure(column=people[0].name, agg=agg or plan_agg(people[0]))]
    speed = _speed(tokens)
    if speed is not None and durations:
        # "who resolves tickets faster?": the shortest average time, whatever else is named.
        named_durations = [c for c in durations if named[c.name].position >= 0] or durations
        measures = [Measure(column=named_durations[0].name, agg=agg or "avg")]
        order = speed
    elif (
        durations
        and _HOW_LONG.search(folded)
        and not any(named[c.name].position >= 0 for c in durations)
    ):
        # "How long does a commercial installation take?": its duration column, on average.
        measures = [Measure(column=durations[0].name, agg=agg or "avg")]
    top = re.search(r"\btop\s+(\d{1,2})\b", folded)
    return Plan(
        measures=measures,
        dimensions=dims[:2],
        filters=filters,
        period=period,
        top_n=max(1, int(top[1])) if top else 5,
        order=order,
    )


_DEALS = frozenset(
    {"deal", "deals", "negocio", "negocios", "transaction", "transactions", "transacao",
     "transacoes"}
)  # fmt: skip


def _other_aggregates(question: str, profile: Profile, measures: list[Measure]) -> list[Measure]:
    """A measure a clause asks for with another aggregate ("how many kWp in total, and what's
    the average system size?": the sum and the average of ``system_kwp``)."""
    out: list[Measure] = []
    planned = {(m.column, m.agg) for m in measures}
    columns = {m.column for m in measures}
    for clause in re.split(r"\s*[,;]\s*|\s+(?:e|and)\s+", question):
        tokens = _tokens(clause)
        agg = _lookup(tokens, _AGG_WORDS)
        if agg is None:
            continue
        read = rule_plan(clause, profile) if len(clause) < len(question) else None
        if read is None:
            continue
        for m in read.measures:
            if m.column in columns and (m.column, agg) not in planned and m.column != "*":
                planned.add((m.column, agg))
                out.append(Measure(column=m.column, agg=agg))
    return out


_HOW_LONG = re.compile(r"\bhow long\b|\bquanto tempo\b|\bdemora|\bleva(m)? quant")
_TEAM = frozenset({"team", "teams", "equipe", "equipes", "time", "staff", "quadro"})
_SIZE = frozenset({"largest", "biggest", "smallest", "maior", "menor", "maiores", "menores"})
_PEOPLE = frozenset(
    {"headcount", "employees", "employee", "funcionarios", "colaboradores", "staff", "pessoas",
     "people", "efetivo"}
)  # fmt: skip
_FAST = frozenset(
    {"faster", "fastest", "quicker", "quickest", "quickly", "rapido", "rapida", "rapidos",
     "rapidas", "rapidamente", "agil", "ageis", "veloz"}
)  # fmt: skip
_SLOW = frozenset(
    {"slower", "slowest", "slowly", "lento", "lenta", "lentos", "lentas", "demora", "demorou",
     "demoram", "demoraram", "demorado", "demorada", "longest", "demorados"}
)  # fmt: skip
_DURATION = frozenset(
    {"tempo", "time", "hours", "horas", "hora", "hour", "minutes", "minutos", "min", "mins",
     "seconds", "segundos", "dias", "days", "duration", "duracao", "latency", "latencia",
     "lead", "sla", "sec", "secs", "seg", "hrs", "ms"}
)  # fmt: skip
DURATION_WORDS = _DURATION


def is_duration(column: ColumnProfile) -> bool:
    """Whether a numeric column holds a time taken (``avg_wait_sec``, ``install_days``)."""
    return column.kind == "numeric" and bool(set(name_words(column.name)) & _DURATION)


def _speed(tokens: list[frozenset[str]]) -> Literal["asc", "desc"] | None:
    """``asc`` (shortest time first) for words of speed ("faster", "mais rápido"), ``desc`` for
    words of slowness ("mais lento", "demora mais"), None for neither."""
    for token in tokens:
        if token & _FAST:
            return "asc"
        if token & _SLOW:
            return "desc"
    return None


_ID_NAME_WORDS = frozenset({"id", "ids", "uuid", "guid", "key", "code", "cod", "codigo", "num"})
_CURRENCY_WORDS = frozenset(
    {"usd", "brl", "eur", "gbp", "reais", "real", "dolares", "dollars", "euros", "rs"}
)
_AMOUNT_WORDS = frozenset(
    {"valor", "value", "amount", "montante", "vl", "vlr", "qtd", "qtde", "quantidade", "qty",
     "quantity", "numero", "number", "num", "n"}
)  # fmt: skip


_CONNECTORS = frozenset(
    {"em", "de", "do", "da", "dos", "das", "no", "na", "nos", "nas", "of", "in", "on", "at",
     "the", "e", "and", "to", "para"}
)  # fmt: skip


def _naming_words(column: ColumnProfile) -> list[str]:
    """The words that name a column in a question: an id column is named by its entity
    ("pedidos" names ``pedido_id``)."""
    # "boletos_em_atraso" is named by "boletos em atraso" and by "late boletos": a name's
    # connecting words are not asked for.
    words = [w for w in name_words(column.name) if w not in _CONNECTORS] or name_words(column.name)
    if column.kind == "id":
        entity = [w for w in words if w not in _ID_NAME_WORDS]
        return entity or words
    if column.kind == "numeric":
        # "valor_total" is named by "valor"/"value": "total" is the question's aggregate word;
        # "valor_reembolsado" by "reembolsado": "valor" only says it is an amount.
        words = [w for w in words if w not in _AGG_WORDS] or words
        # "ad_spend_usd" is named by "ad spend": the currency only says what it is counted in.
        words = [w for w in words if w not in _CURRENCY_WORDS] or words
        return [w for w in words if w not in _AMOUNT_WORDS] or words
    return words


def _named_column(
    words: list[frozenset[str]],
    groups: list[frozenset[int]],
    column: ColumnProfile,
    shared: frozenset[str] = frozenset(),
) -> _Named:
    """Where ``column`` is named: by all its words, or, for a measure of several words, by
    its first alone, more weakly ("churn" names ``churned_accounts``), or by another word of
    it that no other measure's name has ("inadimplência" names ``boletos_em_atraso`` beside
    ``boletos_emitidos``)."""
    naming = _naming_words(column)
    found = _find_column(words, groups, naming)
    if found.position >= 0 or column.kind != "numeric" or len(naming) < 2:
        return found
    head = _find_column(words, groups, naming[:1])
    if head.position >= 0:
        return _Named(head.position, 0, head.length)
    best = found
    for word in naming[1:]:
        if (len(word) < 3 and not _SYNONYM_GROUPS.get(word)) or word in _GENERIC_SHORT:
            continue  # "kwp" names ``system_kwp``, "kilos" ``peso_kg``; "avg" or "brl" nothing
        other = _find_column(words, groups, [word])
        if other.position < 0:
            continue
        weakness = 3 if _participle(words[other.position]) else 2 if word in shared else 1
        if best.position < 0 or weakness < best.weakness:
            best = _Named(other.position, 0, other.length, weakness)
    return best


_GENERIC_SHORT = frozenset(
    {"avg", "qtd", "qty", "num", "nro", "pct", "brl", "usd", "eur", "sum", "max", "min", "per",
     "por", "all", "id", "tot", "val", "vlr", "new", "old"}
)  # fmt: skip
_PARTICIPLE_ENDINGS = ("ado", "ada", "ados", "adas", "ido", "ida", "idos", "idas", "ed")


def _participle(forms: frozenset[str]) -> bool:
    """Whether a question word is a participle ("separadas", "picked", "recebido")."""
    return any(f.endswith(_PARTICIPLE_ENDINGS) and len(f) > 4 for f in forms)


def _shared_words(columns: list[ColumnProfile]) -> frozenset[str]:
    """The naming words that more than one measure's name has ("boletos" of
    ``boletos_emitidos`` and ``boletos_em_atraso``)."""
    counts = Counter(w for c in columns if c.kind == "numeric" for w in set(_naming_words(c)))
    return frozenset(w for w, n in counts.items() if n > 1)


def column_vocabulary(profile: Profile) -> frozenset[str]:
    """The words that name the visible columns, with their synonyms ("motivo" and "reason"
    for a column ``motivo``): a question word among them names a column before anything
    else."""
    words = {w for c in profile.columns if not c.masked for w in name_words(c.name)}
    groups = frozenset().union(*(_SYNONYM_GROUPS.get(w, frozenset()) for w in words))
    synonyms = {w for w, g in _SYNONYM_GROUPS.items() if g & groups}
    return frozenset(words | synonyms)


def named_columns(question: str, profile: Profile, *, any_word: bool = False) -> list[str]:
    """Every visible column ``question`` names, by its words, synonyms or first word (with
    ``any_word``, by any one of its words: "resolution" for ``tickets_resolved``), in the
    order named."""
    tokens = _tokens(question)
    visible = [c for c in profile.columns if not c.masked]
    # "a fila de vendas" (queue ``Q01 Vendas``) names a queue, not the sales column.
    beside = _values_beside_their_column(visible, tokens) | _value_words(visible, tokens)
    words = [frozenset() if i in beside else t for i, t in enumerate(_column_words(tokens))]
    groups = [_groups(w) for w in words]
    named = []
    shared = _shared_words([c for c in profile.columns if not c.masked])
    for column in profile.columns:
        if column.masked:
            continue
        found = _named_column(words, groups, column, shared)
        if found.position < 0 and any_word:
            spots = [_find_column(words, groups, [w]) for w in _naming_words(column)]
            found = min(
                (f for f in spots if f.position >= 0), key=lambda f: f.position, default=found
            )
        if found.position >= 0:
            named.append((found.position, column.name))
    return [name for _, name in sorted(named)]


def names_a_dimension(question: str, profile: Profile) -> bool:
    """Whether ``question`` names a categorical column (a store, a region...)."""
    tokens = _tokens(question)
    visible = [c for c in profile.columns if not c.masked]
    # "a fila de vendas" (queue ``Q01 Vendas``) names a queue, not the sales column.
    beside = _values_beside_their_column(visible, tokens) | _value_words(visible, tokens)
    words = [frozenset() if i in beside else t for i, t in enumerate(_column_words(tokens))]
    groups = [_groups(w) for w in words]
    visible = [c for c in profile.columns if not c.masked and c.kind in ("categorical", "boolean")]
    return any(_find_column(words, groups, _naming_words(c)).position >= 0 for c in visible)


def names_a_measure(question: str, profile: Profile) -> bool:
    """Whether ``question`` names a numeric column (or asks for a count), as :func:`rule_plan`
    reads it; False when a plan's measure would only be the data's default."""
    tokens = _tokens(question)
    visible = [c for c in profile.columns if not c.masked]
    # "a fila de vendas" (queue ``Q01 Vendas``) names a queue, not the sales column.
    beside = _values_beside_their_column(visible, tokens) | _value_words(visible, tokens)
    words = [frozenset() if i in beside else t for i, t in enumerate(_column_words(tokens))]
    groups = [_groups(w) for w in words]
    visible = [c for c in profile.columns if not c.masked]
    shared = _shared_words(visible)
    named = {c.name: _named_column(words, groups, c, shared) for c in visible}
    if _rule_measures(visible, named, None, tokens) is not None:
        return True
    # "quanto a loja Sul vendeu": a verb of selling names the money column.
    sells = any(w.startswith(_SALES_STEMS) for t in tokens for w in t)
    return sells and any(c.kind == "numeric" and c.money for c in visible)


_SALES_STEMS = ("vend", "sold", "sell", "sale", "fatur", "receit", "revenue", "earn")


# Words of money only: "venderam menos unidades" sells units, "faturou mais" earns money.
_MONEY_STEMS = ("fatur", "receit", "revenue", "earn")


def names_sales(name: str) -> bool:
    """Whether a column's name says it is money coming in (receita, revenue, vendas...)."""
    return any(w.startswith(_SALES_STEMS) for w in name_words(name))


def _sales_position(tokens: list[frozenset[str]]) -> int | None:
    """Where a word of earning money ("faturou", "receita", "revenue") is, or None."""
    return next(
        (i for i, t in enumerate(tokens) if any(w.startswith(_MONEY_STEMS) for w in t)), None
    )


def _rank_position(tokens: list[frozenset[str]]) -> int | None:
    """Where the first word about order ("mais", "most", "menor") is, or None."""
    for i, token in enumerate(tokens):
        if i and tokens[i - 1] & _NOT_AN_ORDER_BEFORE:
            continue
        if token & (_ASC_WORDS | _DESC_WORDS):
            return i
    return None


def rule_order(question: str) -> Literal["desc", "asc"]:
    """``asc`` when the question's first word about order asks for the lowest."""
    return _rule_order(_tokens(question))


def _rule_order(tokens: list[frozenset[str]]) -> Literal["desc", "asc"]:
    """``asc`` when the first word about order asks for the lowest, else ``desc``."""
    for i, token in enumerate(tokens):
        if i and tokens[i - 1] & _NOT_AN_ORDER_BEFORE:
            continue
        if token & _ASC_WORDS:
            return "asc"
        if token & _DESC_WORDS:
            return "desc"
    return "desc"


def _cued(tokens: list[frozenset[str]], position: int) -> bool:
    """Whether a dimension cue ("qual", "por", "which", "by"...) comes just before
    ``position``, possibly with an article between ("qual a região", "by the region")."""
    before = tokens[max(0, position - 2) : position]
    if before and before[-1] & _DIMENSION_CUES:
        return True
    return len(before) == 2 and bool(before[0] & _DIMENSION_CUES and before[1] & _FILLERS)


def _rule_dimensions(
    visible: list[ColumnProfile], named: dict[str, _Named], tokens: list[frozenset[str]]
) -> list[str]:
    """Categorical columns the question groups by: named after a cue, or named where none of
    their values is (then "a região Sul" filters on Sul instead)."""
    categorical = [c for c in visible if c.kind in ("categorical", "boolean")]
    dims = []
    for column in _strongest(categorical, named):
        cued = _cued(tokens, named[column.name].position)
        if cued or _named_value(column, tokens) is None:
            dims.append(column.name)
    return dims


def _value_positions(visible: list[ColumnProfile], tokens: list[frozenset[str]]) -> set[int]:
    """The positions of the words of categorical values of more than one word the question
    names ("Total Express", "Customer Support")."""
    spots: set[int] = set()
    for column in visible:
        if column.kind != "categorical":
            continue
        for value, _ in column.top:
            words = re.findall(r"[a-z0-9]+", _fold(value))
            if len(words) > 1 and (at := _find(tokens, words)) >= 0:
                spots.update(range(at, at + len(words)))
    return spots


def _drop_modifiers(
    named: dict[str, _Named], visible: list[ColumnProfile], tokens: list[frozenset[str]]
) -> None:
    """A count named right before money ("rental revenue": ``locacoes``, ``receita``) only
    says which money it is: the compound's last word is the quantity asked for, so the first
    is not named. ("late deliveries" names the late ones, a part of the deliveries; words
    joined by "and", "e" or a comma are two quantities.)"""
    columns = {c.name: c for c in visible}
    at = {
        named[c.name].position: c.name
        for c in visible
        if c.kind == "numeric" and named[c.name].position >= 0 and named[c.name].length == 1
    }
    for position, name in at.items():
        head = at.get(position + 1)
        if head is not None and columns[head].money and not columns[name].money:
            named[name] = _Named()


def _values_beside_their_column(
    visible: list[ColumnProfile], tokens: list[frozenset[str]]
) -> set[int]:
    """The positions of words of a categorical value said right after its column's word ("a
    fila de vendas", "the queue Vendas", "loja centro"): they name the segment, never a
    column ("vendas" is no ``sales_brl`` there)."""
    spots: set[int] = set()
    for column in visible:
        if column.kind != "categorical":
            continue
        own = {w for w in name_words(column.name) if w not in _CONNECTORS}
        own_groups = _groups(frozenset(own))
        value_words = {
            w for value, _ in column.top for w in re.findall(r"[a-z0-9]+", _fold(value))
        } - _CONNECTORS
        for i, token in enumerate(tokens):
            if not token & value_words or token & own:
                continue
            j = i - 1
            if j >= 0 and tokens[j] & _CONNECTORS:
                j -= 1
            if j >= 0 and (tokens[j] & own or (own_groups and _groups(tokens[j]) & own_groups)):
                spots.add(i)
    return spots


def _value_words(visible: list[ColumnProfile], tokens: list[frozenset[str]]) -> set[int]:
    """The positions of words that are a one-word categorical value ("installed" for status
    ``Installed``) and no word of a column's name: they name the segment, not a column that
    starts like them (``install_days``)."""
    names = {v for c in visible for w in name_words(c.name) for v in _variants(w)}
    values = {
        words[0]
        for c in visible
        if c.kind == "categorical"
        for value, _ in c.top
        if len(words := re.findall(r"[a-z0-9]+", _fold(value))) == 1 and len(words[0]) >= 4
    }
    return {i for i, token in enumerate(tokens) if token & values and not token & values & names}


def _named_value(column: ColumnProfile, tokens: list[frozenset[str]]) -> str | None:
    """The first of the column's frequent values the question names (as whole words)."""
    for value, _ in column.top:
        words = re.findall(r"[a-z0-9]+", _fold(value))
        if words and len("".join(words)) >= 2 and _find(tokens, words) >= 0:
            return value
    return None


def _rule_measures(
    visible: list[ColumnProfile],
    named: dict[str, _Named],
    agg: Agg | None,
    tokens: list[frozenset[str]],
) -> list[Measure] | None:
    numeric = _strongest([c for c in visible if c.kind == "numeric"], named)
    # "total de pedidos" with a pedido_id column: orders are counted, never summed, and never
    # answered with another column's total. A word that names a segment column too ("loja"
    # for ``loja`` and ``cod_loja``) names the segments, not a count of their codes.
    segments = {named[c.name].position for c in visible if c.kind == "categorical"} - {-1}
    ids = _strongest(
        [c for c in visible if c.kind == "id" and named[c.name].position not in segments], named
    )
    units = [c for c in visible if c.kind == "numeric" and _is_quantity(c)]
    if units and _counts(tokens) and _sells(tokens) and units[0] not in numeric:
        # "How many croissants did we sell (and what's our loss rate)?": the units sold, not
        # the rows that hold them.
        if not numeric:
            return [Measure(column=units[0].name, agg=agg or "sum")]
        numeric = [units[0], *numeric]
        named = {**named, units[0].name: _Named(_sell_position(tokens), 0, 1)}
    if not numeric and not _counts(tokens) and _sales_position(tokens) is not None:
        # "Qual loja faturou mais?": the verb of earning names the money column.
        earning = [(i, c) for i, c in enumerate(visible) if c.kind == "numeric" and c.money]
        if earning:
            # The money that adds up (valor_total), not a price.
            _, main = min(earning, key=lambda pair: _measure_rank(pair[1], pair[0]))
            return [Measure(column=main.name, agg=agg or plan_agg(main))]
    sold_at = _sales_position(tokens)
    weak = all(named[c.name].strength == 0 for c in numeric)
    if len(numeric) > 1 and weak and sold_at is not None:
        # "room revenue": the money the phrase is about, not the rooms that qualify it.
        numeric = [c for c in numeric if named[c.name].position == sold_at] or numeric
    if numeric:
        at = {c.name: named[c.name].position for c in numeric}
        money = [c for c in visible if c.kind == "numeric" and c.money and c not in numeric]
        sold = _sales_position(tokens)
        if money and sold is not None and sold not in at.values():
            # "Quantas consultas tivemos e qual especialidade faturou mais?": consultas and
            # the money column, each asked by its own part.
            numeric = [*numeric, money[0]]
            at[money[0].name] = sold
        numeric = _qualified(numeric, at)
        rank = _rank_position(tokens)
        if rank is not None:
            # The ranking is by the measure named nearest its "mais"/"most".
            numeric = sorted(numeric, key=lambda c: abs(at[c.name] - rank))
        measures = [Measure(column=c.name, agg=agg or plan_agg(c)) for c in numeric]
        if ids and _counts(tokens):
            # "How many orders, and which category brought in the most value?": both.
            measures.append(Measure(column=ids[0].name, agg="count"))
        return measures[:MAX_MEASURES]
    if ids:
        return [Measure(column=ids[0].name, agg="count")]
    if _counts(tokens):
        return [Measure(column="*", agg="count")]
    return None


def _qualified(numeric: list[ColumnProfile], at: dict[str, int]) -> list[ColumnProfile]:
    """``numeric`` without a whole named right beside a part of it: "entregas atrasadas",
    "late deliveries" name the late ones (``atrasadas``), not also every delivery. A part is
    the smaller total of two counts that add up."""
    wholes = set()
    for a in numeric:
        for b in numeric:
            if (
                a is not b
                and abs(at[a.name] - at[b.name]) == 1
                and default_agg(a) == default_agg(b) == "sum"
                and isinstance(a.sum, int | float)
                and isinstance(b.sum, int | float)
                and 0 <= a.sum < b.sum
            ):
                wholes.add(b.name)
    return [c for c in numeric if c.name not in wholes] or numeric


_SELL_STEMS = ("vend", "sold", "sell")
_QUANTITY_GROUP = frozenset(
    {"unit", "unidade", "quantity", "quantidade", "qty", "qtd", "qtde", "saca", "sacas", "sack",
     "sacks", "bag", "bags", "caixa", "caixas", "box", "boxes", "pacote", "pacotes", "fardo",
     "fardos"}
)  # fmt: skip
# Weights and volumes: quantities too, after the counted units ("sacas" before "peso_kg").
_WEIGHT_GROUP = frozenset(
    {"kg", "kilos", "quilos", "peso", "weight", "toneladas", "tons", "ton", "litros", "liters",
     "litres", "m3", "volume"}
)  # fmt: skip
# "Qual município entregou menos soja?", "how much corn did we receive?": the goods' quantity.
_DELIVER_STEMS = ("entreg", "receb", "deliver", "receiv", "colh", "harvest")


def _sell_position(tokens: list[frozenset[str]]) -> int:
    return next(i for i, t in enumerate(tokens) if any(w.startswith(_SELL_STEMS) for w in t))


def _sells(tokens: list[frozenset[str]]) -> bool:
    """Whether the question has a verb of selling ("vendemos", "did we sell", "sold")."""
    return any(w.startswith(_SELL_STEMS) for t in tokens for w in t)


def _is_quantity(column: ColumnProfile) -> bool:
    """A column of units (``unidades``, ``qty``, ``units_sold``, ``sacas``), not money."""
    words = {v for w in name_words(column.name) for v in _variants(w)}
    return bool(words & _QUANTITY_GROUP) and not column.money


def _is_weight(column: ColumnProfile) -> bool:
    """A column of weight or volume (``peso_liquido_kg``, ``litros``), not money."""
    words = {v for w in name_words(column.name) for v in _variants(w)}
    return bool(words & _WEIGHT_GROUP) and not column.money


def _delivers(tokens: list[frozenset[str]]) -> bool:
    """Whether the question has a verb of delivering or receiving goods."""
    return any(w.startswith(_DELIVER_STEMS) for t in tokens for w in t)


def _counts(tokens: list[frozenset[str]]) -> bool:
    # Tokens hold singular forms too ("quantos" -> "quanto"): look at the word as written,
    # which each token's longest form is.
    return any(max(t, key=len) in _COUNT_WORDS for t in tokens if t)


def _default_measures(visible: list[ColumnProfile], agg: Agg | None) -> list[Measure]:
    """The main measure (money first, then additive quantities), or the row count."""
    numeric = [(i, c) for i, c in enumerate(visible) if c.kind == "numeric"]
    if not numeric:
        return [Measure(column="*", agg="count")]
    _, main = min(numeric, key=lambda pair: _measure_rank(pair[1], pair[0]))
    return [Measure(column=main.name, agg=agg or plan_agg(main))]


def _rule_period(
    visible: list[ColumnProfile],
    named: dict[str, _Named],
    tokens: list[frozenset[str]],
    folded: str,
) -> Period | None:
    temporal = [c for c in visible if c.kind == "temporal"]
    if not temporal:
        return None
    grain: Grain | None = _lookup(tokens, _GRAIN_WORDS)
    chosen = next(iter(_strongest(temporal, named)), None)
    if grain is None and chosen is None:
        return None
    column = chosen or temporal[0]
    span = _SPAN.search(folded)
    if span is not None:
        # "nos últimos dois anos", "over the past 18 months": a window of the data's last
        # periods; two years are read by month, not as a series of 2 points.
        count = max(1, int(span[1]) if span[1].isdigit() else _NUMBER_WORDS[span[1]])
        unit = _GRAIN_WORDS[_singular(span[2])]
        days = count * _GRAIN_LENGTH[unit]
        # "últimos 6 meses" is a series of 6 months; "two years" of 2 points says little.
        within = unit if count >= 3 else grain_for_span(days)
        return Period(
            column=column.name,
            grain=within,
            last=min(1000, max(1, round(days / _GRAIN_LENGTH[within]))),
        )
    last = _LAST_N.search(folded)
    natural = choose_grain(column.min, column.max)
    if grain is not None and _OVER_THE.search(folded) and _finer(natural, grain):
        # "over the year", "ao longo do ano" on a year of data: the year is the span, read
        # by the grain the data's range calls for, not a series of one point.
        grain = natural
    return Period(
        column=column.name,
        grain=grain or natural,
        last=max(1, int(last[1])) if last else None,
    )


_OVER_THE = re.compile(
    r"\b(?:over|across|during|throughout|through) the (?:year|quarter|month|semester)\b"
    r"|\bao longo do (?:ano|trimestre|mes|semestre)\b|\bdurante o (?:ano|trimestre|mes)\b"
)


def _finer(grain: Grain, than: Grain) -> bool:
    return _GRAIN_LENGTH[grain] < _GRAIN_LENGTH[than]


_NUMBER_WORDS = {
    "um": 1, "uma": 1, "one": 1, "dois": 2, "duas": 2, "two": 2, "tres": 3, "three": 3,
    "quatro": 4, "four": 4, "cinco": 5, "five": 5, "seis": 6, "six": 6, "doze": 12,
    "twelve": 12, "dezoito": 18, "eighteen": 18, "vinte": 20, "twenty": 20,
}  # fmt: skip
_SPAN = re.compile(
    r"\b(?:ultimos|ultimas|ultimo|ultima|last|past)\s+"
    r"(\d{1,3}|" + "|".join(_NUMBER_WORDS) + r")\s+"
    r"(anos|years|meses|months|semanas|weeks|dias|days|trimestres|quarters)\b"
)
_GRAIN_LENGTH: dict[Grain, float] = {
    "day": 1.0, "week": 7.0, "month": 30.44, "quarter": 91.31, "year": 365.25,
}  # fmt: skip


def _singular(word: str) -> str:
    return "mes" if word == "meses" else word.removesuffix("s")


def _rule_filters(
    visible: list[ColumnProfile], tokens: list[frozenset[str]], dims: set[str]
) -> list[Filter]:
    """``column = value`` for each categorical column one of whose frequent values the
    question names (as whole words)."""
    filters = []
    for column in visible:
        if column.kind != "categorical" or column.name in dims:
            continue
        value = _named_value(column, tokens)
        if value is not None:
            at = _find(tokens, re.findall(r"[a-z0-9]+", _fold(value)))
            # "excluding cancelled projects", "sem os cancelados": every other value.
            op: Op = "!=" if any(tokens[i] & _EXCEPT for i in range(max(0, at - 3), at)) else "="
            filters.append(Filter(column=column.name, op=op, value=value))
    return filters[:MAX_FILTERS]


_YES_VALUES = frozenset({"sim", "yes", "s", "y", "true", "t", "1", "verdadeiro"})
_NO_VALUES = frozenset({"nao", "no", "n", "false", "f", "0", "falso"})
_STEM = 6


def _yes_no_filters(visible: list[ColumnProfile], tokens: list[frozenset[str]]) -> list[Filter]:
    """``column = yes`` (or no) for each yes/no column the question names by its word
    ("orders cancelled", "projetos financiados"), unless it asks for a rate or a share: then
    the column is the rate's part ("taxa de cancelamento"), not a restriction."""
    if any(t & (_RATE_OR_SHARE) for t in tokens):
        return []
    out = []
    for column in visible:
        if column.kind == "categorical":
            flag = _yes_no_named(column, tokens)
            if flag is not None:
                out.append(Filter(column=column.name, op="=", value=flag))
    return out


_RATE_OR_SHARE = frozenset(
    {"rate", "rates", "taxa", "taxas", "ratio", "percentage", "percent", "percentual",
     "porcentagem", "pct", "share", "proporcao", "fracao", "fraction"}
)  # fmt: skip


def _yes_no_named(column: ColumnProfile, tokens: list[frozenset[str]]) -> str | None:
    """The value a question keeps of a yes/no column it names by a word of the column's
    own ("cancelled" or "cancelados" for ``Cancelado`` holding Sim/Não: its Sim; "not
    cancelled", "não cancelados": its Não), or None."""
    values = [str(v) for v, _ in column.top]
    if len(values) != 2:
        return None
    folded = {_fold(v).strip(): v for v in values}
    yes = next((v for k, v in folded.items() if k in _YES_VALUES), None)
    no = next((v for k, v in folded.items() if k in _NO_VALUES), None)
    if yes is None or no is None:
        return None
    own = [w for w in name_words(column.name) if len(w) >= _STEM]
    for i, token in enumerate(tokens):
        if any(len(f) >= _STEM and f[:_STEM] == w[:_STEM] for f in token for w in own):
            negated = any(tokens[j] & _EXCEPT for j in range(max(0, i - 2), i))
            return no if negated else yes
    return None


_EXCEPT = frozenset(
    {"excluding", "exclude", "excluded", "except", "without", "not", "sem", "exceto",
     "excluindo", "excluir", "tirando", "fora", "nao"}
)  # fmt: skip
