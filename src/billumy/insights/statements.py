"""One sentence per fact, in Brazilian Portuguese or English, from the fact's own values.

The fact modules (:mod:`billumy.insights.salient`, :mod:`billumy.insights.planned`, ...)
compute each fact and write a plain English statement; this module writes the sentence a
reader gets, per fact kind and language, with locale formatting
(:mod:`billumy.insights.formats`): money as money, percentages, months by name. It reads only
what a fact carries (``kind``, ``values``, ``rows``, ``columns``, ``sql``) plus the profile
(money columns, a measure's default aggregate) and the plan the planned facts came from (its
aggregates, dimensions and filters), so a sentence can say nothing the fact does not hold.
The machine-readable values are never changed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from billumy.insights.formats import Formats
from billumy.insights.model import Fact, Profile, Scalar
from billumy.insights.periods import covered_span
from billumy.insights.plan import Filter, Plan
from billumy.insights.planned import _hour_column
from billumy.insights.profile import name_words
from billumy.insights.roles import average_weight, default_agg

__all__ = ["Context", "Metric", "describe"]

_AGGS = ("sum", "avg", "count", "min", "max")
_GRAIN_SQL = re.compile(r"date_trunc\('(day|week|month|quarter|year)'")
_SUFFIX = re.compile(r"_\d+$")  # facts make a result label unique with "_2", "_3"...

# (singular, plural, feminine) of each grain in Portuguese; English adds an "s".
_PT_GRAINS = {
    "day": ("dia", "dias", False),
    "week": ("semana", "semanas", True),
    "month": ("mês", "meses", False),
    "quarter": ("trimestre", "trimestres", False),
    "year": ("ano", "anos", False),
}
_PT_DIRECTION = {"up": "de alta", "down": "de queda", "flat": "estável"}


@dataclass
class Context:
    """What a sentence may draw on beyond the fact: the profile, the plan and which facts it
    produced (their ids), and the language's formats."""

    formats: Formats
    profile: Profile
    plan: Plan | None = None
    planned: set[str] = field(default_factory=set)
    # What the rows counted are, in the question's words ("consultas", "cancellations"), for
    # a count of rows or of an id that names nothing: "o número de consultas".
    rows: str | None = None

    @property
    def pt(self) -> bool:
        return self.formats.language == "pt"


@dataclass(frozen=True)
class Metric:
    """A measure as a sentence names it: ``column`` is ``"*"`` for the row count."""

    column: str
    agg: str

    def noun(self, ctx: Context) -> tuple[str, str]:
        """The article (Portuguese gender; empty in English) and the noun phrase."""
        c = self.column
        column = ctx.profile.column(c) if c != "*" else None
        if ctx.rows and self.agg == "count" and (c == "*" or (column and column.kind == "id")):
            return ("o", f"número de {ctx.rows}") if ctx.pt else ("", f"number of {ctx.rows}")
        if self.agg == "count" and column is not None and column.entity:
            # a source table's key: "o número de pedidos", "the number of orders"
            return (
                ("o", f"número de {_plural_pt(column.entity)}")
                if ctx.pt
                else (
                    "",
                    f"number of {_ENTITIES_EN.get(column.entity.lower(), column.entity + ' rows')}",
                )
            )
        keyed = (
            column is not None
            and column.kind == "id"
            and not column.entity
            and column.distinct == column.count == ctx.profile.row_count
        )
        if self.agg == "count" and keyed:
            # the rows' own key (``codigo``), naming nothing: its values are the records
            return (
                ("o", f"número de registros ({c})") if ctx.pt else ("", f"number of records ({c})")
            )
        if self.agg == "count" and column is not None and column.kind == "temporal":
            # ``data_desligamento`` counted: the rows that have the date, each an event.
            return (
                ("o", f"número de registros com {c}")
                if ctx.pt
                else ("", f"number of rows with {c}")
            )
        weight = average_weight(ctx.profile, c) if self.agg == "avg" and c != "*" else None
        if weight is not None:
            # The rows weigh as the things they average (:func:`average_weight`).
            if ctx.pt:
                return "a", f"média de {c} ponderada por {weight}"
            return "", f"average {c} weighted by {weight}"
        if ctx.pt:
            if c == "*":
                return "o", "número de linhas"
            return {
                "sum": ("o", f"total de {c}"),
                "avg": ("a", f"média de {c}"),
                "count": ("o", f"número de valores de {c}"),
                "min": ("o", f"mínimo de {c}"),
                "max": ("o", f"máximo de {c}"),
            }[self.agg]
        if c == "*":
            return "", "number of rows"
        words = {"sum": "total", "avg": "average", "min": "minimum", "max": "maximum"}
        return "", f"number of {c} values" if self.agg == "count" else f"{words[self.agg]} {c}"

    def subject(self, ctx: Context) -> str:
        """``o total de vendas`` / ``total vendas``, to open or continue a sentence."""
        article, noun = self.noun(ctx)
        return f"{article} {noun}" if article else noun

    def amount(self, value: Scalar, ctx: Context, places: int = 0) -> str:
        """``value`` of this measure: money when its column is money (and not a count), in
        percent when its column was written so; ``places``: at least that many decimals."""
        column = ctx.profile.column(self.column) if self.column != "*" else None
        if column is not None and column.money and self.agg != "count":
            return ctx.formats.money(value, column.currency)
        if column is not None and column.percent and self.agg not in ("count", "sum"):
            return ctx.formats.points(value, places)
        return ctx.formats.number(value, places)


# The English of the entities Django shops name their tables after (``vendas_pedido``).
_ENTITIES_EN = {
    "pedido": "orders", "venda": "sales", "cliente": "customers", "produto": "products",
    "loja": "stores", "fatura": "invoices", "pagamento": "payments", "entrega": "deliveries",
    "chamado": "tickets", "contrato": "contracts", "reserva": "bookings", "usuario": "users",
    "item": "items", "compra": "purchases", "transacao": "transactions",
    "consulta": "appointments", "viagem": "trips", "corrida": "rides", "envio": "shipments",
    "paciente": "patients", "aluno": "students", "atendimento": "services",
    "visita": "visits", "projeto": "projects", "funcionario": "employees",
}  # fmt: skip


# A bound on a number column, as a sentence says it.
_BOUND_WORDS = {
    ">": ("é maior que", "is over"),
    ">=": ("é pelo menos", "is at least"),
    "<": ("é menor que", "is under"),
    "<=": ("é no máximo", "is at most"),
}


def cap(text: str) -> str:
    """``text`` with its first letter in capitals (the rest as it is: names keep theirs); a
    name written with a capital inside its first word (``iFood``, ``eBay``) is left as it is."""
    first = text.split(" ", 1)[0]
    if first[:1].islower() and any(ch.isupper() for ch in first[1:]):
        return text
    return f"{text[:1].upper()}{text[1:]}"


_cap = cap


def metric_of(label: str, fact: Fact, ctx: Context) -> Metric:
    """The measure behind a result column: ``sum_receita`` (plan facts), ``receita`` (salient
    facts, aggregated by the column's default), ``rows``/``count`` (the row count)."""
    if label in ("rows", "count"):
        return Metric("*", "count")
    for name in (label, _SUFFIX.sub("", label)):
        for agg in _AGGS:
            rest = name.removeprefix(f"{agg}_")
            if rest != name and ctx.profile.column(rest) is not None:
                return Metric(rest, agg)
        column = ctx.profile.column(name)
        if column is not None:
            return Metric(name, default_agg(column))
    return Metric(fact.columns[-1] if fact.columns else "*", "sum")


def grain_of(fact: Fact) -> str:
    """The grain of a series fact (``month``, ``week``...)."""
    return _grain(fact)


def _grain(fact: Fact) -> str:
    # The series' bucket is the first date_trunc in the SQL facts built for it.
    match = _GRAIN_SQL.search(fact.sql)
    return match.group(1) if match else "day"


def _grain_words(grain: str, n: int, ctx: Context) -> str:
    if ctx.pt:
        one, many, _ = _PT_GRAINS[grain]
        return f"{ctx.formats.number(n)} {one if n == 1 else many}"
    return f"{ctx.formats.number(n)} {grain}{'' if n == 1 else 's'}"


def _per(grain: str, ctx: Context) -> str:
    return f"por {_PT_GRAINS[grain][0]}" if ctx.pt else f"per {grain}"


def scope(fact: Fact, ctx: Context) -> str:
    """The plan's filters and period window, as a phrase to follow a subject (or "")."""
    plan = ctx.plan
    if plan is None or fact.id not in ctx.planned:
        return ""
    fmt = ctx.formats
    periods: list[str] = []  # "em maio de 2024", "na semana 20"
    segments: list[str] = []  # "loja Sul", "loja Centro e Norte"
    conditions: list[str] = []  # "preco > 10"
    skip = str(fact.values.get("period_column")) if fact.kind == "change" else None
    if fact.values.get("of_rows"):
        skip = str(fact.values.get("part_column"))  # the rows rated, not a restriction
    filters = [f for f in plan.filters if f.column != skip]
    if fact.kind == "breakdown":
        # The ranking names the segments it keeps: "Por loja, ..." not "Por loja para loja...".
        filters = [f for f in filters if not (f.column in plan.dimensions and f.op in ("=", "in"))]
    ranges = _ranges(filters)
    said: set[str] = set()
    and_word = " e " if ctx.pt else " and "
    hours = _hours(filters, _hour_column(ctx.profile), ctx)
    if hours:
        filters = [f for f in filters if f.column != _hour_column(ctx.profile)]
    for flt in filters:
        column = ctx.profile.column(flt.column)
        kind = column.kind if column is not None else None
        days = _day_span(filters, flt.column) if kind == "temporal" else None
        if flt.column not in ranges and days is not None:
            # Any other span of days: "de 3 de jun. de 2025 a 12 de jun. de 2025", not SQL.
            if flt.column not in said:
                said.add(flt.column)
                first, last = (fmt.period(d.isoformat(), "day") for d in days)
                periods.append(f"de {first} a {last}" if ctx.pt else f"from {first} to {last}")
            continue
        if flt.column in ranges:
            if fact.as_of is not None and flt.column == fact.as_of["column"]:
                continue  # "em dezembro de 2024" says it, not "em 2024 em dezembro de 2024"
            if flt.column not in said:
                said.add(flt.column)
                periods.append(fmt.when(*ranges[flt.column]))
            continue
        if kind == "ordinal" and flt.op == "=" and not isinstance(flt.value, list):
            label = f"{_ordinal_word(flt.column)} {fmt.number(flt.value)}"
            periods.append(period_when(label, "", True, ctx))
        elif (
            kind in ("categorical", "boolean")
            and flt.op == "!="
            and not isinstance(flt.value, list)
        ):
            shown_value = fmt.label(flt.value)
            conditions.append(
                f"{flt.column} não é {shown_value}"
                if ctx.pt
                else f"{flt.column} is not {shown_value}"
            )
        elif kind in ("categorical", "boolean") and flt.op in ("=", "in"):
            values = flt.value if isinstance(flt.value, list) else [flt.value]
            shown = [fmt.label(v) for v in values]
            listed = ", ".join(shown[:-1]) + and_word + shown[-1] if len(shown) > 1 else shown[0]
            segments.append(f"{flt.column} {listed}")
        elif isinstance(flt.value, list):
            listed = ", ".join(repr(v) if isinstance(v, str) else fmt.number(v) for v in flt.value)
            conditions.append(f"{flt.column} {'em' if ctx.pt else 'in'} ({listed})")
        elif kind == "numeric" and flt.op in _BOUND_WORDS and not isinstance(flt.value, str):
            # "Onde tempo_entrega_min é maior que 50", not SQL.
            pt, en = _BOUND_WORDS[flt.op]
            bound = fmt.number(flt.value)
            conditions.append(
                f"{flt.column} {pt} {bound}" if ctx.pt else f"{flt.column} {en} {bound}"
            )
        else:
            shown_value = repr(flt.value) if isinstance(flt.value, str) else fmt.number(flt.value)
            conditions.append(f"{flt.column} {flt.op} {shown_value}")
    if hours and not (fact.as_of is not None and fact.as_of.get("hour") is not None):
        # After the day: "em 12 de set. de 2024 das 9h às 12h"; a level read at one hour
        # says that hour below.
        periods.append(hours)
    period = plan.period
    if period is not None and period.last is not None:
        conditions.append(_last_periods(period.column, period.grain, period.last, ctx))
    if fact.as_of is not None and fact.as_of.get("per"):
        # Each warehouse's level at its own latest record.
        per = fact.as_of["per"]
        periods.append(
            f"no último registro de cada {per}" if ctx.pt else f"at each {per}'s latest record"
        )
    elif fact.as_of is not None:
        # A stock's level on the latest date: "em dezembro de 2024", "in December 2024".
        periods.append(fmt.when(fact.as_of["period"], str(fact.as_of["grain"])))
        if fact.as_of.get("hour") is not None:
            hour = fmt.number(fact.as_of["hour"])
            periods.append(f"às {hour}h" if ctx.pt else f"at {hour}:00")
    text = ""
    if segments:
        text += (" para " if ctx.pt else " for ") + and_word.join(segments)
    if conditions:
        text += (" onde " if ctx.pt else " where ") + and_word.join(conditions)
    if periods:
        text += " " + " ".join(periods)
    return text


def _hours(filters: Sequence[Filter], hour: str | None, ctx: Context) -> str:
    """The hours of the day that filters on the hour column keep, in words: "das 9h às 12h",
    "from 9:00 to 12:00" (the intervals of 9, 10 and 11), "às 10h", "at 10:00"; "" when there
    are none or they are no such span."""
    if hour is None:
        return ""
    ops = {f.op: f.value for f in filters if f.column == hour}
    numbers = {op: v for op, v in ops.items() if isinstance(v, int | float)}
    if len(numbers) != len(ops) or not ops:
        return ""

    def clock(value: float) -> str:
        shown = ctx.formats.number(value)
        return f"{shown}h" if ctx.pt else f"{shown}:00"

    if set(numbers) == {"="}:
        return f"às {clock(numbers['='])}" if ctx.pt else f"at {clock(numbers['='])}"
    if set(numbers) == {">=", "<"}:
        start, end = clock(numbers[">="]), clock(numbers["<"])
        return f"das {start} às {end}" if ctx.pt else f"from {start} to {end}"
    return ""


def _ordinal_word(column: str) -> str:
    """``semana`` for ``semana``/``num_semana``/``week_number``; the name otherwise."""
    for word in name_words(column):
        if word in _ORDINAL_WORDS:
            return word
    return column


def _range_label(filters: Sequence[Filter], column: str) -> tuple[str, str] | None:
    """The day, month, quarter or year that a ``>=``/``<`` pair of ISO dates on ``column`` spans
    exactly (the question's "em maio", "in 2024"), as a period label and its grain."""
    low = next((f.value for f in filters if f.column == column and f.op == ">="), None)
    high = next((f.value for f in filters if f.column == column and f.op == "<"), None)
    if not isinstance(low, str) or not isinstance(high, str):
        return None
    try:
        start, end = date.fromisoformat(low[:10]), date.fromisoformat(high[:10])
    except ValueError:
        return None
    if (end - start).days == 1:
        return start.isoformat(), "day"  # "on Feb 10, 2024"
    if (end - start).days == 7 and start.weekday() == 0:
        return start.isoformat(), "week"  # "na semana de 16 de jun. de 2025"
    if start.day != 1 or end.day != 1:
        return None
    months = (end.year - start.year) * 12 + end.month - start.month
    if months == 12 and start.month == 1:
        return str(start.year), "year"
    if months == 6 and start.month in (1, 7):
        return f"{start.year}-H{1 if start.month == 1 else 2}", "half"
    if months == 3 and start.month % 3 == 1:
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}", "quarter"
    if months == 1:
        return f"{start.year}-{start.month:02d}", "month"
    return None


def _day_span(filters: Sequence[Filter], column: str) -> tuple[date, date] | None:
    """The first and last day a ``>=``/``<`` pair of dates on ``column`` keeps, if any."""
    low = next((f.value for f in filters if f.column == column and f.op == ">="), None)
    high = next((f.value for f in filters if f.column == column and f.op == "<"), None)
    start, end = _as_day(low), _as_day(high)
    if start is None or end is None or end <= start:
        return None
    return start, end - timedelta(days=1)


def _ranges(filters: Sequence[Filter]) -> dict[str, tuple[str, str]]:
    """The columns whose filters are exactly one named period, with that period."""
    out = {}
    for column in dict.fromkeys(f.column for f in filters):
        found = _range_label(filters, column)
        if found is not None:
            out[column] = found
    return out


def _last_periods(column: str, grain: str, n: int, ctx: Context) -> str:
    if not ctx.pt:
        return f"{column} in the last {_grain_words(grain, n, ctx)}"
    one, many, feminine = _PT_GRAINS[grain]
    if n == 1:
        return f"{column} {'na última' if feminine else 'no último'} {one}"
    last = "nas últimas" if feminine else "nos últimos"
    return f"{column} {last} {ctx.formats.number(n)} {many}"


def describe(fact: Fact, ctx: Context) -> str:
    """The fact as one or two sentences in ``ctx``'s language, numbers formatted for it."""
    writer = _WRITERS.get(fact.kind)
    return writer(fact, ctx) if writer is not None else fact.statement


def _row_count(fact: Fact, ctx: Context) -> str:
    n = fact.values.get("rows")
    shown = ctx.formats.number(n)
    if ctx.pt:
        return f"Os dados têm {shown} {'linha' if n == 1 else 'linhas'}."
    return f"The data has {shown} {'row' if n == 1 else 'rows'}."


def _summary(fact: Fact, ctx: Context) -> str:
    column = ctx.profile.column(fact.columns[0])
    agg = default_agg(column) if column is not None else "sum"
    v = fact.values
    metric = Metric(fact.columns[0], "sum")
    total, mean, low, high = (metric.amount(v.get(k), ctx) for k in ("total", "mean", "min", "max"))
    count = ctx.formats.number(v.get("count"))
    name = fact.columns[0]
    if agg == "avg":
        # "A média de avg_wait_sec ponderada por calls_answered", when it is weighted.
        _, noun = Metric(name, "avg").noun(ctx)
        if ctx.pt:
            return f"A {noun} é {mean} (de {low} a {high}, {count} valores)."
        return f"{_cap(noun)} is {mean} (from {low} to {high}, {count} values)."
    if ctx.pt:
        return (
            f"O total de {name} é {total} em {count} valores (média de {mean}, de {low} a {high})."
        )
    return f"Total {name} is {total} over {count} values (mean {mean}, from {low} to {high})."


def _segment(fact: Fact, ctx: Context) -> str:
    v = fact.values
    dim = fact.columns[0]
    metric = metric_of(fact.columns[1], fact, ctx) if len(fact.columns) > 1 else Metric("*", "")
    article, noun = metric.noun(ctx)
    name = ctx.formats.label(v.get("segment"))
    value = metric.amount(v.get("value"), ctx)
    bottom = fact.kind == "bottom_segment"
    if ctx.pt:
        head = f"{dim} {name} tem {article} {'menor' if bottom else 'maior'} {noun}: {value}"
        if "share_pct" in v:
            return f"{_cap(head)}, {ctx.formats.pct(v['share_pct'])} do total."
        return f"{_cap(head)}, contra {metric.amount(v.get('overall'), ctx)} no geral."
    head = f"{dim} {name} has the {'lowest' if bottom else 'highest'} {noun}: {value}"
    if "share_pct" in v:
        return f"{_cap(head)}, {ctx.formats.pct(v['share_pct'])} of the total."
    return f"{_cap(head)}, against {metric.amount(v.get('overall'), ctx)} overall."


def _trend(fact: Fact, ctx: Context) -> str:
    labels = [k for k in (fact.rows[0] if fact.rows else {}) if k != "period"]
    metric = metric_of(labels[0], fact, ctx) if labels else Metric("*", "count")
    grain = _grain(fact)
    v = fact.values
    where = scope(fact, ctx)
    if not v.get("periods"):
        if ctx.pt:
            return f"{_cap(_per(grain, ctx))}{where}, nenhuma linha atende aos filtros."
        return f"By {grain}{where}, no rows match."
    fmt = ctx.formats
    first, last = metric.amount(v.get("first"), ctx), metric.amount(v.get("last"), ctx)
    span = _grain_words(grain, int(v.get("periods") or 0), ctx)
    since, until = fmt.when(v.get("first_period"), grain), fmt.when(v.get("last_period"), grain)
    # The rate stated is the median slope (least squares where it is missing): the typical
    # change from one period to the next, which one outlying period does not inflate.
    slope = v.get("median_slope", v.get("slope"))
    tail = ""
    direction = str(v.get("direction"))
    if isinstance(slope, int | float):
        sign = "+" if slope > 0 else "-" if slope < 0 else ""
        # A flat series says no rate: "flat (-R$ 42.572,42 per month)" would contradict itself.
        per = "" if direction == "flat" else f" ({sign}{metric.amount(abs(slope), ctx)} "
        per += "" if direction == "flat" else f"{_per(grain, ctx)})"
        tail = (
            f"; a tendência é {_PT_DIRECTION.get(direction, direction)}{per}"
            if ctx.pt
            else f"; the trend is {direction}{per}"
        )
    subject = f"{metric.subject(ctx)} {_per(grain, ctx)}{where}"
    if ctx.pt:
        text = f"{_cap(subject)} foi de {first} {since} a {last} {until}, em {span}{tail}."
    else:
        text = f"{_cap(subject)} went from {first} {since} to {last} {until} over {span}{tail}."
    text += _each_period(fact, labels[0] if labels else "", metric, grain, ctx)
    change = _change(v, metric, grain, ctx)
    return f"{text} {change}" if change else text


MAX_LISTED_PERIODS = 12  # a series of up to a year of months is listed period by period


def _each_period(fact: Fact, label: str, metric: Metric, grain: str, ctx: Context) -> str:
    """ " Mês a mês: janeiro de 2024 R$ 10,00; fevereiro de 2024 R$ 30,00 …. O pico foi em
    fevereiro de 2024.": a short series (months, quarters, years) period by period, as an
    analyst reads it out, and a peak or a trough between its ends that stands out (at least
    half again, or a third under, the median of the other periods)."""
    if grain not in ("month", "quarter", "half", "year") or fact.id not in ctx.planned:
        return ""  # a series nobody asked for is summed up, not read out
    points = [(r.get("period"), r.get(label)) for r in fact.rows]
    series = [(p, float(x)) for p, x in points if isinstance(x, int | float)]
    if not 3 <= len(series) <= MAX_LISTED_PERIODS or len(series) != len(points):
        return ""
    fmt = ctx.formats
    listed = "; ".join(f"{fmt.period(p, grain)} {metric.amount(x, ctx)}" for p, x in series)
    heading = {
        "month": ("Mês a mês", "Month by month"),
        "quarter": ("Trimestre a trimestre", "Quarter by quarter"),
        "half": ("Semestre a semestre", "Half by half"),
        "year": ("Ano a ano", "Year by year"),
    }[grain][0 if ctx.pt else 1]
    text = f" {heading}: {listed}."
    values = [x for _, x in series]
    highest, lowest = values.index(max(values)), values.index(min(values))
    for at, high in ((highest, True), (lowest, False)):
        rest = sorted(values[:at] + values[at + 1 :])
        half = len(rest) // 2
        median = rest[half] if len(rest) % 2 else (rest[half - 1] + rest[half]) / 2
        if not 0 < at < len(values) - 1 or median <= 0:
            continue
        if high and values[at] >= 1.5 * median:
            said = ("O pico foi", "The peak was")
        elif not high and values[at] <= median * 2 / 3:
            said = ("O ponto mais baixo foi", "The low point was")
        else:
            continue
        text += f" {said[0 if ctx.pt else 1]} {fmt.when(series[at][0], grain)}."
    return text


def _change(v: dict[str, Scalar], metric: Metric, grain: str, ctx: Context) -> str:
    """The last period against the one before: ``Em março de 2024, foi R$ 10,00, alta de 5,0%
    em relação a R$ 9,52 em fevereiro de 2024.``"""
    change, pct = v.get("change"), v.get("change_pct")
    if not isinstance(change, int | float):
        return ""
    fmt = ctx.formats
    size = fmt.pct(abs(pct)) if isinstance(pct, int | float) else metric.amount(abs(change), ctx)
    last = metric.amount(v.get("last"), ctx)
    previous = metric.amount(v.get("previous"), ctx)
    before = fmt.when(v.get("previous_period"), grain)
    when = _cap(fmt.when(v.get("last_period"), grain))
    if ctx.pt:
        how = "sem variação" if change == 0 else f"{'alta' if change > 0 else 'queda'} de {size}"
        return f"{when}, foi {last}, {how} em relação a {previous} {before}."
    how = "unchanged" if change == 0 else f"{'up' if change > 0 else 'down'} {size}"
    return f"{when} it was {last}, {how} from {previous} {before}."


def _plan_metrics(fact: Fact, ctx: Context, keys: Sequence[str]) -> list[tuple[str, Metric]]:
    return [(key, metric_of(key, fact, ctx)) for key in keys]


def _aggregate(fact: Fact, ctx: Context) -> str:
    where = scope(fact, ctx).strip()
    if where and fact.values and all(v is None for v in fact.values.values()):
        # SQL's sum over no rows is NULL: "o total é n/d" would hide that nothing matched.
        names = (" e " if ctx.pt else " and ").join(
            dict.fromkeys(m.column for _, m in _plan_metrics(fact, ctx, list(fact.values)))
        )
        if ctx.pt:
            said = f"{_cap(where)}, nenhuma linha com {names} atende aos filtros."
        else:
            said = f"{_cap(where)}, no rows with {names} match."
        return f"{said}{span(fact, ctx)}"
    parts = []
    for key, metric in _plan_metrics(fact, ctx, list(fact.values)):
        is_word = "é" if ctx.pt else "is"
        parts.append(f"{metric.subject(ctx)} {is_word} {metric.amount(fact.values[key], ctx)}")
    # A plan may name one aggregate twice (small models do): say it once.
    text = "; ".join(dict.fromkeys(parts))
    return f"{_cap(where)}, {text}." if where else f"{_cap(text)}."


def span(fact: Fact, ctx: Context) -> str:
    """When a fact found nothing in a period the data does not reach: " Os dados de
    criado_em vão de 1 de jan. de 2024 a 23 de jun. de 2025." (or "")."""
    plan = ctx.plan
    if plan is None or (fact.rows and any(v is not None for v in fact.rows[0].values())):
        return ""
    for name in dict.fromkeys(f.column for f in plan.filters):
        column = ctx.profile.column(name)
        if column is None or column.kind != "temporal" or name not in fact.columns:
            continue
        low, high = _as_day(column.min), _as_day(column.max)
        lows, highs = [], []
        for flt in (f for f in plan.filters if f.column == name):
            values = flt.value if isinstance(flt.value, list) else [flt.value]
            days = [d for d in map(_as_day, values) if d is not None]
            if flt.op in (">=", ">", "between") and days:
                lows.append(days[0])
            if flt.op in ("<", "<=", "between") and days:
                highs.append(days[-1])
        if (
            low is None
            or high is None
            or not ((lows and max(lows) > high) or (highs and min(highs) <= low))
        ):
            continue  # the period is inside the data: the other filters left nothing
        first, last = (ctx.formats.period(d.isoformat(), "day") for d in (low, high))
        if ctx.pt:
            return f" Os dados de {name} vão de {first} a {last}."
        return f" The data's {name} runs from {first} to {last}."
    return ""


def _as_day(value: object) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value is not None else None
    except ValueError:
        return None


def _breakdown(fact: Fact, ctx: Context) -> str:
    plan = ctx.plan
    dims = list(plan.dimensions) if plan is not None else fact.columns[:1]
    by = (" e " if ctx.pt else " and ").join(dims)
    where = scope(fact, ctx)
    if not fact.rows:
        if ctx.pt:
            return f"Por {by}{where}, nenhuma linha atende aos filtros.{span(fact, ctx)}"
        return f"By {by}{where}, no rows match.{span(fact, ctx)}"
    keys = [k for k in fact.rows[0] if k not in dims]
    share = "share_pct" if "share_pct" in keys else None
    label = next(k for k in keys if k != share)
    metric = metric_of(label, fact, ctx)
    article, noun = metric.noun(ctx)
    places = ctx.formats.places(row[label] for row in fact.rows)
    ranking = "; ".join(_ranked(row, dims, label, share, metric, ctx, places) for row in fact.rows)
    top = " / ".join(ctx.formats.label(fact.rows[0][d]) for d in dims)
    low = _ascending(fact.rows, label, plan is not None and plan.order == "asc")
    if ctx.pt:
        most = "menor" if low else "maior"
        return f"Por {by}{where}, {top} tem {article} {most} {noun}. Ranking: {ranking}."
    most = "lowest" if low else "highest"
    return f"By {by}{where}, {top} has the {most} {noun}. Ranking: {ranking}."


def _ascending(rows: list[dict[str, Scalar]], label: str, default: bool) -> bool:
    """Whether a ranking runs from the lowest value up (read from its rows, since a question
    may ask for two rankings in opposite orders); ``default`` when the rows cannot tell."""
    first, last = rows[0].get(label), rows[-1].get(label)
    if isinstance(first, int | float) and isinstance(last, int | float) and first != last:
        return bool(first < last)
    return default


def _ranked(
    row: dict[str, Scalar],
    dims: list[str],
    label: str,
    share: str | None,
    metric: Metric,
    ctx: Context,
    places: int = 0,
) -> str:
    name = " / ".join(ctx.formats.label(row[d]) for d in dims)
    text = f"{name} {metric.amount(row[label], ctx, places)}"
    return f"{text} ({ctx.formats.pct(row[share])})" if share else text


def _outliers(fact: Fact, ctx: Context) -> str:
    v = fact.values
    metric = Metric(fact.columns[0], "max")
    n = v.get("count")
    low, high = metric.amount(v.get("lower_fence"), ctx), metric.amount(v.get("upper_fence"), ctx)
    extreme = metric.amount(v.get("most_extreme"), ctx)
    first = fact.rows[0] if fact.rows else {}
    key = next(iter(first), "row")
    where = f"{key} {ctx.formats.label(first.get(key))}"
    count = ctx.formats.number(n)
    if ctx.pt:
        what = "valor atípico" if n == 1 else "valores atípicos"
        return (
            f"{fact.columns[0]} tem {count} {what} fora do intervalo de {low} a {high}; "
            f"o mais extremo é {extreme} ({where})."
        )
    what = "outlier value" if n == 1 else "outlier values"
    return (
        f"{fact.columns[0]} has {count} {what} outside {low} to {high}; "
        f"the most extreme is {extreme} ({where})."
    )


def _correlation(fact: Fact, ctx: Context) -> str:
    r = fact.values.get("r")
    a, b = fact.columns[0], fact.columns[1]
    n = ctx.formats.number(fact.values.get("n"))
    r_value = float(r) if isinstance(r, int | float) else 0.0
    shown = ctx.formats.decimal2(r_value)
    strong = abs(r_value) >= 0.8
    if ctx.pt:
        strength = "forte" if strong else "moderada"
        sense = "positiva" if r_value > 0 else "negativa"
        return f"{a} e {b} têm correlação {strength} e {sense} (r = {shown} em {n} linhas)."
    strength = "strongly" if strong else "moderately"
    sense = "positively" if r_value > 0 else "negatively"
    return f"{a} and {b} are {strength} {sense} correlated (r = {shown} over {n} rows)."


def _share(fact: Fact, ctx: Context) -> str:
    v = fact.values
    dim = fact.columns[0]
    category = ctx.formats.label(v.get("category"))
    pct, count = ctx.formats.pct(v.get("share_pct")), ctx.formats.number(v.get("count"))
    if ctx.pt:
        return (
            f"O valor mais comum de {dim} é {category}, com {pct} das linhas que têm "
            f"um valor ({count})."
        )
    return f"The most common {dim} is {category}, with {pct} of the rows that have one ({count})."


def _plural_pt(word: str) -> str:
    """A Portuguese plural good enough for a column name: lojas, regiões, canais, vendedores."""
    # Column names are often written without accents: "regiao" -> "regioes".
    for end, plural in (("ão", "ões"), ("ao", "oes"), ("al", "ais"), ("el", "éis"), ("m", "ns")):
        if word.endswith(end):
            return word[: -len(end)] + plural
    return f"{word}es" if word.endswith(("r", "z", "s")) else f"{word}s"


_PT_ANOMALY = {"drop": "queda", "spike": "pico", "both": "queda ou pico"}
_EN_ANOMALY = {"drop": "drop", "spike": "spike", "both": "drop or spike"}


def _anomaly(fact: Fact, ctx: Context) -> str:
    """``Sim: Norte teve queda forte nas semanas de 6 e 13 de mai. de 2024: R$ 3.556,40
    contra R$ 8.891,00 esperados (−60,0%).``, or a "no" saying what was checked."""
    v = fact.values
    if not v.get("count"):
        no = _no_anomaly(v, ctx)
        answer, colon, rest = no.partition(": ")
        if colon and answer in ("Não", "No") and _within(v, ctx):
            return f"{answer}: {_within(v, ctx)}{rest[:1].lower()}{rest[1:]}"
        return no
    metric = Metric(str(v.get("measure")), str(v.get("agg") or "sum"))
    fmt = ctx.formats

    def amount(x: Scalar) -> str:
        return fmt.pct(x) if v.get("pct") else metric.amount(x, ctx)

    group = [
        r for r in fact.rows if (r["segment"], r["direction"]) == (v["segment"], v["direction"])
    ]
    periods = sorted((r["period"] for r in group), key=str)
    when = fmt.when_many(periods, str(v.get("grain")))
    who = fmt.label(v["segment"]) if v.get("segment") is not None else _anomaly_measure(v, ctx)
    value, expected = amount(v.get("group_value")), amount(v.get("group_expected"))
    pct = _signed_pct(v.get("group_change_pct"), ctx)
    others = [r for r in fact.rows if r not in group][:3]
    # "Sim:" answers a question about drops; a fact nobody asked for just states the case.
    asked = fact.id in ctx.planned
    # "Batel teve pico forte em cancelamentos": the measure, when the question named none and
    # a segment is the subject.
    said = v.get("segment") is not None and (bool(v.get("scanned")) or bool(v.get("per")))
    measure = _anomaly_measure(v, ctx) if said else ""
    within = _within(v, ctx)
    if ctx.pt:
        how = "teve queda forte" if v["direction"] == "drop" else "teve pico forte"
        how += f" em {measure}" if measure else ""
        text = f"{who} {how} {when}: {value} contra {expected} esperados ({pct})."
        text = f"{within}{text}" if within else _cap(text)
        text = f"Sim: {text}" if asked else _cap(text)
        listed = "; ".join(_other_case(r, v, ctx) for r in others)
        return f"{text} Outros casos: {listed}." if others else text
    how = "dropped sharply" if v["direction"] == "drop" else "spiked sharply"
    how += f" in {measure}" if measure else ""
    text = f"{who} {how} {when}: {value} against an expected {expected} ({pct})."
    text = f"{within}{text}" if within else _cap(text)
    text = f"Yes: {text}" if asked else _cap(text)
    listed = "; ".join(_other_case(r, v, ctx) for r in others)
    return f"{text} Other cases: {listed}." if others else text


def _within(v: dict[str, Scalar], ctx: Context) -> str:
    """The rows the series were made of, opening the sentence: "para cidade Recife, "."""
    within = v.get("within")
    if not within:
        return ""
    return f"para {within}, " if ctx.pt else f"for {within}, "


def _other_case(row: dict[str, Scalar], v: dict[str, Scalar], ctx: Context) -> str:
    who = ctx.formats.label(row["segment"]) if row["segment"] is not None else str(v["measure"])
    when = ctx.formats.when(row["period"], str(v.get("grain")))
    return f"{who} {when} ({_signed_pct(row['change_pct'], ctx)})"


def _signed_pct(value: Scalar, ctx: Context) -> str:
    # A minus sign (U+2212) or a plus, written by us: the percentage itself is unsigned.
    if not isinstance(value, int | float):
        return ctx.formats.pct(None)
    return f"{'−' if value < 0 else '+'}{ctx.formats.pct(abs(value))}"


def none_pt(noun: str) -> str:
    # Grammatical gender from the ending, the usual rule (loja, região, cidade: feminine).
    feminine = noun.endswith(("a", "ade", "ção", "são", "gião", "gem"))
    return "nenhuma" if feminine else "nenhum"


def _anomaly_measure(v: dict[str, Scalar], ctx: Context) -> str:
    """What the anomaly check read: a column, or a rate of two ("billed_usd per
    energy_mwh", "a taxa de trips_cancelled sobre trips_requested")."""
    measure, per = str(v.get("measure")), v.get("per")
    column = ctx.profile.column(measure)
    if per is None and v.get("agg") == "count" and column is not None and column.entity:
        # a count of an id: "o número de projetos", "the number of projects"
        return Metric(measure, "count").subject(ctx)
    if per is None:
        return measure
    if v.get("pct"):
        return f"a taxa de {measure} sobre {per}" if ctx.pt else f"the rate of {measure} in {per}"
    return f"{measure} por {per}" if ctx.pt else f"{measure} per {per}"


def _no_anomaly(v: dict[str, Scalar], ctx: Context) -> str:
    """``Não: nenhuma loja teve queda fora do normal em vendas_reais (3 lojas, 26 semanas
    verificadas).``"""
    grain, dim = str(v.get("grain")), v.get("dimension")
    measure = _anomaly_measure(v, ctx)
    periods = _grain_words(grain, int(v.get("periods") or 0), ctx)
    n = ctx.formats.number(v.get("segments"))
    direction = str(v.get("direction_checked"))
    if not v.get("segments"):
        # No series was long enough to judge: "no" would claim a check that was not made.
        least = ctx.formats.number(v.get("min_periods"))
        if ctx.pt:
            return (
                f"Não dá para dizer se {measure} teve {_PT_ANOMALY[direction]} fora do normal: "
                f"há só {periods} de dados, e são precisos pelo menos {least}."
            )
        return (
            f"Cannot tell whether {measure} had an unusual {_EN_ANOMALY[direction]}: there "
            f"are only {periods} of data, and at least {least} are needed."
        )
    only = v.get("only")
    if ctx.pt:
        checked = "verificadas" if _PT_GRAINS[grain][2] else "verificados"
        what = _PT_ANOMALY[direction]
        if only:
            return f"Não: {only} não teve {what} fora do normal em {measure} ({periods} {checked})."
        if dim is None:
            return f"Não: {measure} não teve {what} fora do normal ({periods} {checked})."
        many = _plural_pt(str(dim))
        counted = f"{n} {dim if v.get('segments') == 1 else many}"
        return (
            f"Não: {none_pt(str(dim))} {dim} teve {what} fora do normal em {measure} "
            f"({counted}, {periods} {checked})."
        )
    what = _EN_ANOMALY[direction]
    if only:
        return f"No: {only} had no unusual {what} in {measure} ({periods} checked)."
    if dim is None:
        return f"No: {measure} had no unusual {what} ({periods} checked)."
    segments = f"{n} segment{'' if v.get('segments') == 1 else 's'}"
    return f"No: no {dim} had an unusual {what} in {measure} ({segments}, {periods} checked)."


_ORDINAL_WORDS = {
    "semana": ("week", "na semana"),
    "week": ("week", "na semana"),
    "mes": ("month", "no mês"),
    "month": ("month", "no mês"),
}


def compared(values: dict[str, Scalar], end: str) -> Scalar:
    """The period a change fact's ``end`` (``a``, ``b``) measured: the days it was cut to
    (``span_a``: July to December of a 2023 the data holds from July on), else the one
    named (``period_a``)."""
    return values.get(f"span_{end}") or values.get(f"period_{end}")


def period_when(label: Scalar, grain: str, ordinal: bool, ctx: Context) -> str:
    """A compared period with its preposition: ``em maio de 2024``, ``na semana 20``,
    ``in week 20``."""
    if not ordinal:
        return ctx.formats.when(label, grain)
    word, _, number = str(label).rpartition(" ")
    english, pt = _ORDINAL_WORDS.get(word, (word, f"em {word}"))
    return f"{pt} {number}" if ctx.pt else f"in {english} {number}"


def _period_change(fact: Fact, ctx: Context) -> str:
    """``O total de vendas foi de R$ 13.000,00 na semana 19 para R$ 8.000,00 na semana 20
    (queda de 38,5%). A maior parte veio de Norte: −R$ 5.000,00 (100,0% da variação); Sul
    +R$ 10,00; Centro −R$ 10,00.``"""
    v = fact.values
    if v.get("agg") == "rate":
        return _rate_change(fact, ctx)
    metric = Metric(str(v.get("measure") or "*"), str(v.get("agg") or "count"))
    grain, ordinal = str(v.get("grain")), bool(v.get("ordinal"))
    since = period_when(compared(v, "a"), grain, ordinal, ctx)
    until = period_when(compared(v, "b"), grain, ordinal, ctx)
    first, last = metric.amount(v.get("value_a"), ctx), metric.amount(v.get("value_b"), ctx)
    change, pct = v.get("change"), v.get("change_pct")
    where = scope(fact, ctx)
    subject = _cap(f"{metric.subject(ctx)}{where}")
    how = ""
    if isinstance(change, int | float):
        size = (
            ctx.formats.pct(abs(pct))
            if isinstance(pct, int | float)
            else metric.amount(abs(change), ctx)
        )
        if ctx.pt:
            how = (
                " (sem variação)"
                if change == 0
                else f" ({'alta' if change > 0 else 'queda'} de {size})"
            )
        else:
            how = " (unchanged)" if change == 0 else f" ({'up' if change > 0 else 'down'} {size})"
    if ctx.pt:
        text = f"{subject} foi de {first} {since} para {last} {until}{how}."
    else:
        text = f"{subject} went from {first} {since} to {last} {until}{how}."
    text += _partial(fact, ctx)
    if not fact.rows or not isinstance(change, int | float) or change == 0:
        return text

    def signed(value: Scalar) -> str:
        number = float(value) if isinstance(value, int | float) else 0.0
        sign = "+" if number > 0 else "−" if number < 0 else ""
        return f"{sign}{metric.amount(abs(number), ctx)}"

    def growth(row: dict[str, Scalar]) -> str:
        """ ", +73.0%": the segment's own change, relative to its first period."""
        pct = row.get("change_pct")
        if not isinstance(pct, int | float):
            return ""
        sign = "+" if pct > 0 else "−" if pct < 0 else ""
        return f", {sign}{ctx.formats.pct(abs(pct))}"

    top = fact.rows[0]
    name = ctx.formats.label(top["segment"])
    share = ctx.formats.pct(top.get("share_of_change_pct"))
    others = "; ".join(
        f"{ctx.formats.label(r['segment'])} {signed(r['change'])}{growth(r)}" for r in fact.rows[1:]
    )
    mine = f"{signed(top['change'])}{growth(top)}"
    if ctx.pt:
        text += f" A maior parte veio de {name}: {mine} ({share} da variação)"
    else:
        text += f" Most of it came from {name}: {mine} ({share} of the change)"
    return f"{text}; {others}." if others else f"{text}."


def _period_bounds(label: Scalar, grain: str) -> tuple[date, date] | None:
    """[start, end) of a period label: ``2025``, ``2025-H1``, ``2025-Q2``, ``2025-03``, or
    the first day of a week or a day; None for anything else (a week number)."""
    text = str(label)
    found = re.fullmatch(r"(\d{4})(?:-(?:([HQ])(\d)|(\d{2}))(?:-(\d{2}))?)?", text)
    if found is None:
        return None
    year = int(found.group(1))
    if found.group(2):
        size = 6 if found.group(2) == "H" else 3
        first_month, months = (int(found.group(3)) - 1) * size + 1, size
    elif found.group(4) and found.group(5):
        start = date(year, int(found.group(4)), int(found.group(5)))
        return start, start + timedelta(days=7 if grain == "week" else 1)
    elif found.group(4):
        first_month, months = int(found.group(4)), 1
    else:
        first_month, months = 1, 12
    start = date(year, first_month, 1)
    index = year * 12 + first_month - 1 + months
    return start, date(index // 12, index % 12 + 1, 1)


def _partial(fact: Fact, ctx: Context) -> str:
    """ " 2025 só tem dados até 23 de jun. de 2025.": a compared period the data covers only
    in part (a month still running against a whole one), said where the comparison is; where
    the two were cut to the same part of their year, which part: " 2023 só tem dados a partir
    de 1 de jul. de 2023; por isso a comparação é de jul. a dez. de 2023 contra jul. a dez. de
    2024." """
    v = fact.values
    column = ctx.profile.column(str(v.get("period_column")))
    first, last = (_as_day(column.min), _as_day(column.max)) if column is not None else (None, None)
    if first is None or last is None or column is None or v.get("ordinal"):
        return ""
    grain = str(v.get("grain"))
    # What the last date stands for: a month's first day in monthly rows is the whole month.
    data = covered_span(first, last, column.distinct)
    first, covered = data.start, data.end
    cut = ""
    if v.get("span_a") and v.get("span_b"):
        since = ctx.formats.period(v["span_a"], "day")
        until = ctx.formats.period(v["span_b"], "day")
        cut = (
            f"; por isso a comparação é de {since} contra {until}."
            if ctx.pt
            else f", so {since} is compared against {until}."
        )
    for key in ("period_a", "period_b"):
        bounds = _period_bounds(v.get(key), grain)
        if bounds is None:
            continue
        start, end = bounds
        shown = ctx.formats.period(v.get(key), grain)
        if not ctx.pt:  # "the first half of 2025", "March 2025"
            shown = re.sub(r"^(in|on) ", "", ctx.formats.when(v.get(key), grain))
        if start < first <= end - timedelta(days=1):
            since = ctx.formats.period(first.isoformat(), "day")
            if ctx.pt:
                return f" {_cap(shown)} só tem dados a partir de {since}{cut or '.'}"
            return f" The data for {shown} only starts on {since}{cut or '.'}"
        if start <= last and covered < end:
            until = ctx.formats.period(last.isoformat(), "day")
            if ctx.pt:
                return f" {_cap(shown)} só tem dados até {until}{cut or '.'}"
            return f" The data for {shown} only runs to {until}{cut or '.'}"
    return ""


def _rate_change(fact: Fact, ctx: Context) -> str:
    """``The occupancy rate (quartos_ocupados over quartos_disponiveis) went from 75.8% in
    the 1st quarter 2024 to 71.2% in the 2nd quarter 2024 (down 4.6 points).``"""
    v = fact.values
    grain, ordinal = str(v.get("grain")), bool(v.get("ordinal"))
    since = period_when(compared(v, "a"), grain, ordinal, ctx)
    until = period_when(compared(v, "b"), grain, ordinal, ctx)
    # Periods cut to the same months say so (a part of a period alone is not said here).
    cut = _partial(fact, ctx) if v.get("span_a") else ""
    return _rate_change_text(fact, ctx, since, until) + cut


def _rate_change_text(fact: Fact, ctx: Context, since: str, until: str) -> str:
    v = fact.values
    first, last = ctx.formats.pct(v.get("value_a")), ctx.formats.pct(v.get("value_b"))
    part, whole, name = v.get("measure"), v.get("rate_whole"), v.get("rate_name")
    change = v.get("change")
    where = scope(fact, ctx)
    points = (
        ctx.formats.number(round(abs(float(change)), 1)) if isinstance(change, int | float) else ""
    )
    if ctx.pt:
        how = ""
        if isinstance(change, int | float):
            how = (
                " (sem variação)"
                if change == 0
                else (f" ({'alta' if change > 0 else 'queda'} de {points} p.p.)")
            )
        return (
            f"A taxa de {name} ({part} sobre {whole}){where} foi de {first} {since} "
            f"para {last} {until}{how}."
        )
    how = ""
    if isinstance(change, int | float):
        how = (
            " (unchanged)"
            if change == 0
            else (f" ({'up' if change > 0 else 'down'} {points} points)")
        )
    return (
        f"The {name} rate ({part} over {whole}){where} went from {first} {since} to {last} "
        f"{until}{how}."
    )


def _ratio(fact: Fact, ctx: Context) -> str:
    v = fact.values
    if v.get("of_rows"):
        return _rows_ratio(fact, ctx)
    part, whole = str(v.get("part")), str(v.get("whole"))
    a, b = Metric(part, "sum"), Metric(whole, "sum")
    shown = (
        ctx.formats.rate(v.get("ratio_pct")),
        a.amount(v.get("part_total"), ctx),
        b.amount(v.get("whole_total"), ctx),
    )
    where = scope(fact, ctx)
    dims = [k for k in (fact.rows[0] if fact.rows else {}) if k not in _RATIO_KEYS]
    rate = _rates(fact.rows if dims else [], ctx)
    listed = "; ".join(
        f"{ctx.formats.label(r[dims[0]])} {rate(r.get('ratio_pct'))}"
        for r in (fact.rows if dims else [])
    )
    name = v.get("name")
    stock = bool(v.get("whole_is_stock"))
    led = _led(fact.rows, dims, "ratio_pct", ctx, rate) if dims else ""
    days = v.get("whole_days")
    if isinstance(days, str):
        # Utilization: the days sold over the cars (rooms) times the days of each period.
        if ctx.pt:
            whole = f"{whole} × os dias de cada {_PT_GRAINS[days][0]}"
        else:
            whole = f"{whole} × the days of each {days}"
    if ctx.pt:
        over = f"{whole} somado em cada data" if stock else whole
        if name:
            text = (
                f"A taxa de {name} ({part} sobre {over}){where} é de {shown[0]} "
                f"({shown[1]} de {shown[2]})."
            )
        else:
            text = (
                f"A proporção de {part} em {over}{where} é de {shown[0]} "
                f"({shown[1]} de {shown[2]})."
            )
        return f"{text} Por {dims[0]}{led}: {listed}." if dims else text
    over = f"{whole} summed over the dates" if stock else whole
    if name:
        text = (
            f"The {name} rate ({part} over {over}){where} is {shown[0]} ({shown[1]} of {shown[2]})."
        )
    else:
        text = f"The share of {part} in {over}{where} is {shown[0]} ({shown[1]} of {shown[2]})."
    return f"{text} By {dims[0]}{led}: {listed}." if dims else text


def _rows_ratio(fact: Fact, ctx: Context) -> str:
    """ "The cancellation rate (rows with status Cancelled over all rows) is 5.1% (20 of
    396). By segment, ...": the share of the rows that hold one value."""
    v = fact.values
    column, value = str(v.get("part_column")), ctx.formats.label(v.get("part_value"))
    pct = ctx.formats.rate(v.get("ratio_pct"))
    part, whole = ctx.formats.number(v.get("part_total")), ctx.formats.number(v.get("whole_total"))
    where = scope(fact, ctx)
    dims = [k for k in (fact.rows[0] if fact.rows else {}) if k not in _RATIO_KEYS]
    rate = _rates(fact.rows if dims else [], ctx)
    listed = "; ".join(
        f"{ctx.formats.label(r[dims[0]])} {rate(r.get('ratio_pct'))}"
        for r in (fact.rows if dims else [])
    )
    led = _led(fact.rows, dims, "ratio_pct", ctx, rate) if dims else ""
    name = v.get("name")
    if v.get("part_dated"):
        value = ""  # the rows with the date of the event: "registros com data_cancelamento"
    if ctx.pt:
        rows = f"registros com {column} {value}".rstrip()
        if name:
            text = f"A taxa de {name} ({rows} sobre todos os registros){where} é de {pct}"
        else:
            text = f"A proporção de {rows}{where} é de {pct}"
        text += f" ({part} de {whole})."
        return f"{text} Por {dims[0]}{led}: {listed}." if dims else text
    rows = f"rows with {column} {value}".rstrip()
    if name:
        text = f"The {name} rate ({rows} over all rows){where} is {pct}"
    else:
        text = f"The share of {rows}{where} is {pct}"
    text += f" ({part} of {whole})."
    return f"{text} By {dims[0]}{led}: {listed}." if dims else text


def _rates(rows: list[dict[str, Scalar]], ctx: Context) -> Callable[[Scalar], str]:
    """How the rates of a ranking are written: each with as many decimals as the others
    (two at most where all are under 10%, else one)."""
    values = [r.get("ratio_pct") for r in rows]
    places = ctx.formats.places(values)
    if any(isinstance(x, int | float) and abs(x) >= 10 for x in values):
        places = min(places, 1)
    return lambda x: ctx.formats.rate(x, places)


def _led(
    rows: list[dict[str, Scalar]],
    dims: list[str],
    key: str,
    ctx: Context,
    shown: Callable[[Scalar], str],
) -> str:
    """ ", <highest> has the highest (value) and <lowest> the lowest (value)" of a ranking of
    three or more (its rows run from the highest down), "" otherwise."""
    values = [r.get(key) for r in rows]
    if len(rows) < 3 or not all(isinstance(x, int | float) for x in values):
        return ""
    top, low = ctx.formats.label(rows[0][dims[0]]), ctx.formats.label(rows[-1][dims[0]])
    high_value, low_value = shown(rows[0].get(key)), shown(rows[-1].get(key))
    if ctx.pt:
        return f", a maior é a de {top} ({high_value}) e a menor a de {low} ({low_value})"
    return f", {top} has the highest ({high_value}) and {low} the lowest ({low_value})"


_RATIO_KEYS = frozenset({"part_total", "whole_total", "ratio_pct"})


def _per_unit(fact: Fact, ctx: Context) -> str:
    v = fact.values
    top, bottom = str(v.get("numerator")), str(v.get("denominator"))
    amount = Metric(top, "avg").amount  # money when the numerator is money
    if _is_money(bottom, ctx) and _is_money(top, ctx):
        amount = _multiple  # money over money (ROAS: revenue per dollar spent)

    where = scope(fact, ctx)
    dims = [k for k in (fact.rows[0] if fact.rows else {}) if k not in _PER_KEYS]
    places = ctx.formats.places(r.get("per_value") for r in (fact.rows if dims else []))
    listed = "; ".join(
        f"{ctx.formats.label(r[dims[0]])} {amount(r.get('per_value'), ctx, places)}"
        for r in (fact.rows if dims else [])
    )
    shown = amount(v.get("per_value"), ctx)
    name = v.get("name")
    if isinstance(v.get("unit"), str):
        # "por Wp (system_kwp × 1.000)": the column converted to the unit asked for.
        bottom = f"{v['unit']} ({bottom} × {ctx.formats.number(v.get('unit_factor'))})"
    unit = v.get("per_period")
    # Its rows run from the lowest up (a cost per order is better low): say both ends.
    led = (
        _led(fact.rows[::-1], dims, "per_value", ctx, lambda x: amount(x, ctx, places))
        if dims
        else ""
    )
    if v.get("weighted"):
        # "A média de tempo_medio_reparo_dias ponderada por os_concluidas em 2024 é 3,81."
        shown = ctx.formats.number(v.get("per_value"))
        listed = "; ".join(
            f"{ctx.formats.label(r[dims[0]])} {ctx.formats.number(r.get('per_value'))}"
            for r in (fact.rows if dims else [])
        )
        led = _led(fact.rows[::-1], dims, "per_value", ctx, ctx.formats.number) if dims else ""
        if ctx.pt:
            text = f"A média de {top} ponderada por {bottom}{where} é {shown}."
            return f"{text} Por {dims[0]}{led}: {listed}." if dims else text
        text = f"The average {top} weighted by {bottom}{where} is {shown}."
        return f"{text} By {dims[0]}{led}: {listed}." if dims else text
    if isinstance(unit, str):
        # "order_lines por dia (63.268 em 53 dias)"
        count = v.get("denominator_total")
        total = Metric(top, "sum").amount(v.get("numerator_total"), ctx)
        plural = _PERIOD_UNIT_WORDS[unit][1 if ctx.pt else 3]
        bottom = _PERIOD_UNIT_WORDS[unit][0 if ctx.pt else 2]
        over = f"{total} em {count} {plural}" if ctx.pt else f"{total} over {count} {plural}"
        if v.get("level") and unit in _AVERAGE_PERIOD:
            # "the average daily census": beds occupied on an average day, not done per day.
            pt_words, en_words = _AVERAGE_PERIOD[unit]
            if ctx.pt:
                return f"{_cap(top)} {pt_words}{where} é {shown} ({over})."
            return f"{_cap(top)} {en_words}{where} is {shown} ({over})."
        if ctx.pt:
            return f"{_cap(top)} por {bottom}{where} é {shown} ({over})."
        return f"{_cap(top)} per {bottom}{where} is {shown} ({over})."
    if ctx.pt:
        said = f"{_the(name, True)} ({top} por {bottom})" if name else f"{_cap(top)} por {bottom}"
        text = f"{said}{where} é {shown}."
        return f"{text} Por {dims[0]}{led}: {listed}." if dims else text
    said = f"{_the(name, False)} ({top} per {bottom})" if name else f"{_cap(top)} per {bottom}"
    text = f"{said}{where} is {shown}."
    return f"{text} By {dims[0]}{led}: {listed}." if dims else text


def _the(name: object, pt: bool) -> str:
    """A rate's name opening a sentence: "O ROAS", "A permanência média", "ROAS", "The
    average length of stay"."""
    text = str(name)
    acronym = " " not in text and any(c.isupper() for c in text)
    if pt:
        feminine = not acronym and text.split()[0].endswith("a")
        return f"{'A' if feminine else 'O'} {text}"
    return text if acronym else f"The {text}"


_PER_KEYS = frozenset({"numerator_total", "denominator_total", "per_value"})
_AVERAGE_PERIOD = {
    "day": ("num dia médio", "on an average day"),
    "week": ("numa semana média", "in an average week"),
    "month": ("num mês médio", "in an average month"),
}
_PERIOD_UNIT_WORDS = {
    "day": ("dia", "dias", "day", "days"),
    "week": ("semana", "semanas", "week", "weeks"),
    "month": ("mês", "meses", "month", "months"),
}


def _is_money(name: str, ctx: Context) -> bool:
    column = ctx.profile.column(name)
    return column is not None and column.money


def _multiple(value: Scalar, ctx: Context, places: int = 0) -> str:
    """A quantity over one of its own unit, with two decimals ("6,20"; ``places`` is for
    the signature of :meth:`Metric.amount`)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return ctx.formats.decimal2(float(value))
    return ctx.formats.number(None)


def _difference(fact: Fact, ctx: Context) -> str:
    v = fact.values
    top, bottom = str(v.get("minuend")), str(v.get("subtrahend"))
    a, b = Metric(top, "sum"), Metric(bottom, "sum")
    where = scope(fact, ctx).strip()
    shown = (
        a.amount(v.get("difference"), ctx),
        a.amount(v.get("minuend_total"), ctx),
        b.amount(v.get("subtrahend_total"), ctx),
    )
    if ctx.pt:
        text = f"o saldo de {top} menos {bottom} é {shown[0]} ({shown[1]} − {shown[2]})"
    else:
        text = f"{top} less {bottom} is {shown[0]} ({shown[1]} − {shown[2]})"
    return f"{_cap(where)}, {text}." if where else f"{_cap(text)}."


def _nps(fact: Fact, ctx: Context) -> str:
    """ "O NPS de nota é 18,5: 45,0% de promotores (9 e 10) e 26,5% de detratores (0 a 6) em
    2.000 respostas. Por canal, o maior é o de Loja física (48,2) ...": the promoters' share
    less the detractors', in points."""
    v = fact.values
    score, answers = str(v.get("score")), v.get("answers")
    where = scope(fact, ctx)
    nps = ctx.formats.number(v.get("nps"), 1)
    whole = float(answers) if isinstance(answers, int | float) and answers else None

    def share(key: str) -> str:
        n = v.get(key)
        pct = 100 * float(n) / whole if whole and isinstance(n, int | float) else None
        return f"{ctx.formats.pct(pct)} ({ctx.formats.number(n)})"

    dims = [k for k in (fact.rows[0] if fact.rows else {}) if k not in _NPS_KEYS]
    listed = "; ".join(
        f"{ctx.formats.label(r[dims[0]])} {ctx.formats.number(r.get('nps'), 1)}"
        for r in (fact.rows if dims else [])
    )
    led = _led(fact.rows, dims, "nps", ctx, lambda x: ctx.formats.number(x, 1)) if dims else ""
    count = ctx.formats.number(answers)
    if ctx.pt:
        text = (
            f"O NPS de {score}{where} é {nps}: {share('promoters')} de promotores (9 e 10) e "
            f"{share('detractors')} de detratores (0 a 6) em {count} respostas."
        )
        return f"{text} Por {dims[0]}{led}: {listed}." if dims else text
    text = (
        f"The NPS of {score}{where} is {nps}: {share('promoters')} promoters (9-10) and "
        f"{share('detractors')} detractors (0-6) of {count} answers."
    )
    return f"{text} By {dims[0]}{led}: {listed}." if dims else text


_NPS_KEYS = frozenset({"promoters", "detractors", "answers", "nps"})


_WRITERS = {
    "nps": _nps,
    "difference": _difference,
    "ratio": _ratio,
    "per": _per_unit,
    "change": _period_change,
    "row_count": _row_count,
    "summary": _summary,
    "top_segment": _segment,
    "bottom_segment": _segment,
    "trend": _trend,
    "aggregate": _aggregate,
    "breakdown": _breakdown,
    "outliers": _outliers,
    "correlation": _correlation,
    "share": _share,
    "anomaly": _anomaly,
}
