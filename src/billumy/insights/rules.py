"""The rule reader: a question read into a :class:`~billumy.insights.plan.Plan` by keyword
rules, without the model (:func:`rule_plan`): its measures and aggregates (sales, units,
weights, deliveries, durations, counts), dimensions, order, period ("last 3 months", "over
the past year"), value filters (``_EXCEPT``: "except", "sem", ...) and yes/no filters.
"""

from __future__ import annotations

import re
from typing import Literal

from billumy.insights.grains import choose_grain, grain_for_span
from billumy.insights.model import ColumnProfile, Profile
from billumy.insights.naming import (
    _AGG_WORDS,
    _SALES_STEMS,
    _column_words,
    _Named,
    _named_column,
    _named_value,
    _shared_words,
    _strongest,
    _value_positions,
    _value_words,
    _values_beside_their_column,
)
from billumy.insights.plan import (
    MAX_FILTERS,
    MAX_MEASURES,
    Agg,
    Filter,
    Grain,
    Measure,
    Op,
    Period,
    Plan,
)
from billumy.insights.profile import money_of, name_words, yes_no_values
from billumy.insights.ratios import (
    _PER,
    DATE_NAME_WORDS,
    _stems_meet,
    length_pair,
    ticket_of_rows,
)
from billumy.insights.roles import _measure_rank, default_agg, plan_agg
from billumy.insights.synonyms import (
    _find,
    _fold,
    _groups,
    _lookup,
    _tokens,
    _variants,
    compounds,
)

__all__ = [
    "names_a_measure",
    "rule_order",
    "rule_plan",
]


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
    # "nos fins de semana" is Saturdays and Sundays (see question.parse), not a weekly grain.
    question = WEEKEND.sub(" weekend ", question)
    # "a hora do dia", "hour of the day" names the hour (``hora``, ``hour``), not a daily series.
    question = HOUR_OF_DAY.sub(
        lambda m: " hora " if m[0].lower().startswith("hora") else " hour ", question
    )
    tokens = _tokens(blank_bounds(_fold(question)))
    visible = [c for c in profile.columns if not c.masked]
    # "a fila de vendas" (queue ``Q01 Vendas``) names a queue, not the sales column.
    beside = _values_beside_their_column(visible, tokens) | _value_words(visible, tokens)
    words = [frozenset() if i in beside else t for i, t in enumerate(_column_words(tokens))]
    groups = [_groups(w) for w in words]
    folded = _fold(question)
    shared = _shared_words(visible)
    named = {c.name: _named_column(words, groups, c, shared) for c in visible}
    _drop_modifiers(named, visible, tokens)
    _things_counted(named, visible, tokens)
    thresholds = threshold_filters(question, visible)
    for flt in thresholds:
        if any(named[c.name].position >= 0 for c in visible if c.name != flt.column):
            # "a avaliação média dos pedidos acima de 50 minutos": the time keeps rows, the
            # rating is the measure.
            named[flt.column] = _Named()
    # "Total Express" is a carrier, not a total: words of the values named are no aggregate.
    inside = _value_positions(visible, tokens)
    for column in visible:
        if column.kind == "numeric" and named[column.name].position in inside:
            # "viagens em atraso" (``status`` Em atraso): the value's word keeps those rows,
            # it does not name ``atraso_min``.
            named[column.name] = _Named()
    agg: Agg | None = _lookup([t for i, t in enumerate(tokens) if i not in inside], _AGG_WORDS)
    measures = _rule_measures(visible, named, agg, tokens, folded)
    volume = _sold_volume(visible)
    if (
        measures
        and volume is not None
        and (_sells(tokens) or any(t & _SALES_NOUNS for t in tokens))
        and not any(max(t, key=len) in _HOW_MUCH for t in tokens if t)
        and all(
            (c := profile.column(m.column)) is not None and c.money and named[c.name].strength == 1
            for m in measures
        )
    ):
        # "vendas de etanol" beside ``litros_vendidos`` and ``faturamento``: the sales of goods
        # the data records in litres sold are those litres; the money is "faturamento".
        measures = [Measure(column=volume.name, agg=agg or "sum")]
    dims = _compound_heads(_rule_dimensions(visible, named, tokens), named, question)
    if measures:
        # "Qual linha de produto mais cresceu?": "produto" names the product_line segments;
        # that it is also a synonym of ``menu_items`` makes no measure of those.
        spots = {
            i: named[d].strength
            for d in dims
            if named[d].position >= 0
            for i in range(named[d].position, named[d].position + max(1, named[d].length))
        }
        kept = [
            m
            for m in measures
            if m.column not in named
            or named[m.column].position not in spots
            or named[m.column].strength > spots[named[m.column].position]
        ]
        measures = kept or None
    period = _rule_period(visible, named, tokens, folded)
    filters = _rule_filters(visible, tokens, set(dims)) + thresholds
    flags = [] if "%" in question else _yes_no_filters(visible, tokens)
    if flags:
        # "total value of financed projects": the yes/no column named by its word keeps its
        # yes rows; it is no breakdown.
        dims = [d for d in dims if d not in {f.column for f in flags}]
        filters = [f for f in filters if f.column not in {g.column for g in flags}] + flags
        flagged = {
            _yes_no_position(c, tokens) for c in visible if c.name in {f.column for f in flags}
        }
        if (
            period is not None
            and named[period.column].position in flagged
            and _lookup(tokens, _GRAIN_WORDS) is None
        ):
            # "tickets still open" (``open`` yes) names no series of ``opened_at``.
            period = None
    bounded = {f.column for f in thresholds}  # "que demoraram mais de 50 minutos" keeps rows
    durations = [
        c
        for c in visible
        if c.kind == "numeric" and set(name_words(c.name)) & _DURATION and c.name not in bounded
    ]
    if (
        measures is None
        and durations
        and (_HOW_LONG.search(folded) or any(t & {"tempo", "time"} for t in tokens))
    ):
        # "Quanto tempo demora uma instalação?", "the average resolution time": the duration
        # column, on average.
        measures = [Measure(column=durations[0].name, agg=agg or "avg")]
    if (
        measures is None
        and _sells(tokens)
        and not any(max(t, key=len) in _HOW_MUCH for t in tokens if t)
    ):
        # "vendas de etanol", "which station sold more ethanol?" with ``litros_vendidos``
        # beside ``faturamento``: what the data says was sold is the quantity named so.
        sold = [
            c
            for c in visible
            if c.kind == "numeric" and any(w.startswith(_SELL_STEMS) for w in name_words(c.name))
        ]
        if len(sold) == 1 and not sold[0].money:
            measures = [Measure(column=sold[0].name, agg=agg or "sum")]
    if measures is None and _delivers(tokens):
        goods = [c for c in visible if c.kind == "numeric" and _is_quantity(c)]
        goods += [c for c in visible if c.kind == "numeric" and _is_weight(c)]
        if goods:
            measures = [Measure(column=goods[0].name, agg=agg or "sum")]
    if measures is None and any(t & _DEALS for t in tokens):
        # "Which segment closed the fewest deals?": a deal is a row (a contract, a sale).
        ids = [c for c in visible if c.kind == "id"]
        measures = [Measure(column=ids[0].name if ids else "*", agg="count")]
    # Rows counted, not the money on them, when nothing is sold and no amount asked for:
    counting = (
        measures is None
        and not _sells(tokens)
        and not any(max(t, key=len) in _HOW_MUCH for t in tokens if t)
    )
    most = any(t & _MOST_OF for t in tokens)
    flagged_rows = any(
        (at := _yes_no_position(c, tokens)) >= 0 and _plural(max(tokens[at], key=len))
        for c in visible
        if c.name in {f.column for f in flags}
    )
    if counting and most and (thresholds or _counted_value(filters, tokens) or flagged_rows):
        # "Which store has most deliveries taking longer than 45 min?": the rows the bound
        # keeps; "Qual especialidade tem mais faltas?" (``status`` Faltou): that status's;
        # "Qual depósito teve mais rupturas?" (``ruptura`` Sim): the yes rows.
        ids = [c for c in visible if c.kind == "id"]
        measures = [Measure(column=ids[0].name if ids else "*", agg="count")]
    elif counting and most and (dated_rows := _rows_dated(tokens, visible, named)):
        # "Which hour of the day has the most arrivals?" with a row per ``arrival``: each
        # row is one, counted (and no series of them is asked for).
        keys = _row_keys(visible)
        measures = [Measure(column=keys[0].name if keys else "*", agg="count")]
        if period is not None and period.column == dated_rows and not _lookup(tokens, _GRAIN_WORDS):
            period = None
    elif counting and _most_of_things(tokens, visible, named, beside):
        # "Which month had the most appointments?" on a row per appointment: rows counted,
        # said as rows (the word names nothing in the data, so it is not claimed).
        keys = _row_keys(visible)
        measures = [Measure(column=keys[0].name if keys else "*", agg="count")]
    dated = _events_dated(visible, named, tokens)
    rows_counted = measures is not None and all(
        m.agg == "count" and (m.column == "*" or m.column in {k.name for k in _row_keys(visible)})
        for m in measures
    )
    if dated is not None and (counting or rows_counted):
        # "Qual departamento tem mais desligamentos?" with ``data_desligamento`` empty for
        # those still employed: the rows with that date are the exits, counted.
        measures = [Measure(column=dated.name, agg="count")]
        # "Quantos desligamentos em 2024?": the year of the exits, not of the hirings.
        temporal = {c.name for c in visible if c.kind == "temporal"}
        filters = [
            f.model_copy(update={"column": dated.name}) if f.column in temporal else f
            for f in filters
        ]
        if period is not None and period.column in temporal:
            period = period.model_copy(update={"column": dated.name})
    if measures is None and not dims and period is None and not filters:
        return None
    if measures is None and volume is not None and _sales_position(tokens) is None:
        # "Which fuel grew the most?": goods sold by the litre (the kilo) grow, rank and
        # sell in litres, whatever their price did; money is asked for by its own words.
        measures = [Measure(column=volume.name, agg=agg or "sum")]
    if measures is None:
        measures = _default_measures(visible, agg)
    ticket = ticket_of_rows(question, profile)
    if ticket is not None:
        # "What's the average order value?" with a row per order: the money's average.
        measures = [Measure(column=ticket, agg="avg")]
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
    if agg is None and _per_row(visible, named, tokens):
        # "unidades por pedido" with one order a row (``pedido``, an id): each order's units
        # on average, not the units over the sum of the order numbers.
        measures = [
            Measure(column=m.column, agg="avg") if m.agg == "sum" and m.column != "*" else m
            for m in measures
        ]
    priced = _priced(tokens)
    if priced is not None and measures and agg is None:
        # "a transportadora mais barata": the lowest price on average, not the least money
        # spent in total (which is also the one used least).
        money = [m for m in measures if (c := profile.column(m.column)) is not None and c.money]
        if money:
            measures = [Measure(column=money[0].column, agg="avg")]
            order = priced
    first = profile.column(measures[0].column) if measures else None
    if first is not None and _judged(tokens) and _bad_when_high(first):
        # "o pior mês de cancelamentos" is the month with the most of them.
        order = "desc" if order == "asc" else "asc"
    top = re.search(r"\btop\s+(\d{1,2})\b", folded)
    names = {c.name for c in visible}
    added = [
        c.name
        for c in visible
        if c.kind == "numeric" and " + " in c.name and set(c.name.split(" + ")) <= names
    ]
    for added_name in added[:1]:
        # ``derive_sum`` makes "A + B" only when the question writes it: a part asked is the
        # sum asked.
        ends = set(added_name.split(" + "))
        part = next((m for m in measures if m.column in ends), None)
        if part is not None and added_name not in {m.column for m in measures}:
            measures = [Measure(column=added_name, agg=part.agg), *measures]
    if (
        period is not None
        and any(m.column in ROW_SPANS.values() for m in measures)
        and _lookup(tokens, _GRAIN_WORDS) is None
        and not period.last
    ):
        # "Which agent closes tickets fastest?": "closes" names ``closed_at``, one end of the
        # time asked for (``duration_hours``), and asks for no series of it.
        period = None
    summed = {m.column for m in measures if " + " in m.column}
    if summed:
        # "o faturamento (peças + mão de obra)": the two added (``derive_sum``'s column), not
        # either part alone.
        parts = {p for c in summed for p in c.split(" + ")}
        measures = [m for m in measures if m.column in summed] + [
            m for m in measures if m.column not in summed and m.column not in parts
        ]
    return Plan(
        measures=measures,
        dimensions=dims[:2],
        filters=filters,
        period=period,
        top_n=max(1, int(top[1])) if top else 5,
        order=order,
    )


HOUR_OF_DAY = re.compile(
    r"\bhoras? do dia\b|\bhours? of (?:the )?day\b|\btime of (?:the )?day\b", re.IGNORECASE
)


# "weekends", "week-end", "nos fins de semana": Saturdays and Sundays (one pattern for the
# rules, question.parse and the derived weekday column).
WEEKEND = re.compile(r"\b(?:fim|fins|finais|final) de semana\b|\bweek[- ]?ends?\b", re.IGNORECASE)
# "Quanto vendemos?": how much money, unless a unit is named.
_HOW_MUCH = frozenset({"quanto", "quanta", "much"})
_DEALS = frozenset(
    {"deal", "deals", "negocio", "negocios", "transaction", "transactions", "transacao",
     "transacoes",
     # "Qual cupom foi mais usado?": the rows that used it, counted.
     "usado", "usada", "usados", "usadas", "used", "utilizado", "utilizada", "utilizados",
     "utilizadas"}
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
        if agg is None or length_pair(clause, profile) is not None:
            # "the average booking length in hours" is hours over bookings (a ``per`` fact),
            # not the average of the bookings column.
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
# The columns :func:`~billumy.insights.service.derive_duration` makes: each row's whole time,
# from its start to its end, which any "tempo de atendimento", "resolution time" asks for.
ROW_SPANS = {("pt", True): "duracao_horas", ("pt", False): "duracao_dias",
             ("en", True): "duration_hours", ("en", False): "duration_days"}  # fmt: skip


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


def names_a_measure(question: str, profile: Profile) -> bool:
    """Whether ``question`` names a numeric column (or asks for a count), as :func:`rule_plan`
    reads it; False when a plan's measure would only be the data's default."""
    tokens = _tokens(blank_bounds(_fold(question)))
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


# Words of money only: "venderam menos unidades" sells units, "faturou mais" earns money.
_MONEY_STEMS = (
    "fatur", "receit", "revenue", "earn", "pagamos", "pagou", "pagaram", "pagar", "paid", "pay"
)  # fmt: skip


# Words that start like paying but name no money earned: "payroll loans" are a product.
_NOT_MONEY_STEMS = ("payroll",)


def _sales_position(tokens: list[frozenset[str]]) -> int | None:
    """Where a word of earning money ("faturou", "receita", "revenue") is, or None."""
    return next(
        (
            i
            for i, t in enumerate(tokens)
            if any(w.startswith(_MONEY_STEMS) and not w.startswith(_NOT_MONEY_STEMS) for w in t)
        ),
        None,
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


# Words that judge rather than measure: the worst month of costs is the highest.
_JUDGING = frozenset({"pior", "piores", "melhor", "melhores", "worst", "best"})
# What is bad when there is more of it (cancellations, costs, delays, complaints...).
_BAD_WHEN_HIGH = frozenset(
    {"cancelamento", "cancelamentos", "cancellation", "cancellations", "cancelados",
     "canceladas", "cancelled", "canceled", "churn", "evasao", "custo", "custos", "cost",
     "costs", "despesa", "despesas", "expense", "expenses", "gasto", "gastos", "atraso",
     "atrasos", "delay", "delays", "late", "reclamacao", "reclamacoes", "complaint",
     "complaints", "defeito", "defeitos", "defect", "defects", "devolucao", "devolucoes",
     "return", "returns", "refund", "refunds", "perda", "perdas", "loss", "losses", "falta",
     "faltas", "absence", "absences", "noshow", "noshows", "abandono", "abandoned", "erro",
     "erros", "error", "errors", "falha", "falhas", "failure", "failures", "incidente",
     "incidentes", "incident", "incidents", "desperdicio", "waste", "inadimplencia", "overdue",
     "atrasado", "atrasados", "espera", "wait"}
)  # fmt: skip


def _per_row(
    visible: list[ColumnProfile], named: dict[str, _Named], tokens: list[frozenset[str]]
) -> bool:
    """Whether "por"/"per" is followed by the thing each row is, an id column's word ("por
    pedido", "per order")."""
    for column in visible:
        at = named[column.name].position
        if column.kind == "id" and at > 0 and tokens[at - 1] & _PER:
            return True
    return False


_CHEAP = frozenset({"barato", "barata", "baratos", "baratas", "cheap", "cheaper", "cheapest"})
_DEAR = frozenset({"caro", "cara", "caros", "caras", "expensive", "pricier", "priciest"})


def _priced(tokens: list[frozenset[str]]) -> Literal["desc", "asc"] | None:
    """``asc`` for "mais barata"/"cheapest", ``desc`` for "mais cara"/"most expensive"."""
    said = frozenset().union(*tokens) if tokens else frozenset()
    if said & _CHEAP:
        return "asc"
    return "desc" if said & _DEAR else None


def _judged(tokens: list[frozenset[str]]) -> bool:
    """Whether the order word is one of judgement ("pior", "best"), not of size."""
    for i, token in enumerate(tokens):
        if i and tokens[i - 1] & _NOT_AN_ORDER_BEFORE:
            continue
        if token & (_ASC_WORDS | _DESC_WORDS):
            return bool(token & _JUDGING)
    return False


def _bad_when_high(column: ColumnProfile) -> bool:
    """Whether more of ``column`` is worse (cancellations, costs, delays), so that its worst
    segment or period is its highest."""
    bad = set(name_words(column.name)) & _BAD_WHEN_HIGH
    if column.money:
        bad -= {"return", "returns"}  # a return on money is good
    return bool(bad)


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
        at = named[column.name].position
        if at > 0 and _sells(tokens) and max(tokens[at - 1], key=len, default="") in _HOW_MANY:
            continue  # "quantos itens vendemos": the units sold, not a ranking of the products
        cued = _cued(tokens, at)
        if cued or _named_value(column, tokens) is None:
            dims.append(column.name)
    return dims


# "categoria do produto": the words between a breakdown and the one that qualifies it.
_OF = frozenset({"de", "do", "da", "dos", "das", "of"})


def _compound_heads(dims: list[str], named: dict[str, _Named], question: str) -> list[str]:
    """Of two breakdowns named as one compound, the head: "product category" and "categoria
    do produto" group by category (the product only says whose category), "store city" by
    city. Words apart ("product and category", "produto, categoria") are two breakdowns."""
    text = compounds(_fold(question))
    spans = [(m.start(), m.end(), m[0]) for m in re.finditer(r"[a-z0-9]+", text)]
    at = {
        named[d].position: d
        for d in dims
        if named[d].position >= 0 and named[d].position + max(1, named[d].length) <= len(spans)
    }

    def apart(first: int, last: int) -> bool:  # only spaces between words first..last
        return any(text[spans[i][1] : spans[i + 1][0]].strip() for i in range(first, last))

    modifiers = set()
    for position, name in at.items():
        end = position + max(1, named[name].length)  # the word after the name
        head = at.get(end)
        if head is not None and head != name and not apart(end - 1, end):
            modifiers.add(name)  # "product category"
        after = at.get(end + 1)
        if (
            after is not None
            and after != name
            and end < len(spans)
            and spans[end][2] in _OF
            and not apart(end - 1, end + 1)
        ):
            modifiers.add(after)  # "categoria do produto", "category of the product" aside
    kept = [d for d in dims if d not in modifiers]
    return kept or dims


# "mais de 50 minutos", "over R$ 100", "at least 4 stars": a bound on a number column.
_BOUNDS: dict[str, Op] = {
    "mais de": ">", "acima de": ">", "maior que": ">", "maiores que": ">", "superior a": ">",
    "superiores a": ">", "more than": ">", "over": ">", "above": ">", "greater than": ">",
    "longer than": ">", "pelo menos": ">=", "no minimo": ">=", "at least": ">=",
    "menos de": "<", "abaixo de": "<", "menor que": "<", "menores que": "<",
    "inferior a": "<", "inferiores a": "<", "less than": "<", "under": "<", "below": "<",
    "shorter than": "<", "no maximo": "<=", "at most": "<=",
}  # fmt: skip
_BOUND = re.compile(
    r"\b(?P<cmp>" + "|".join(sorted(_BOUNDS, key=len, reverse=True)).replace(" ", r"\s+") + r")"
    r"\s+(?P<cur>r\$|us\$|\$)?\s*(?P<num>\d+(?:[.,]\d+)?)(?![\d/:-])\s*(?P<unit>[a-z%$]+)?"
)
# Units a bound may be said in, and the words of the column names that hold them.
_UNIT_WORDS: dict[str, frozenset[str]] = {
    "min": frozenset({"min", "mins", "minuto", "minutos", "minute", "minutes"}),
    "h": frozenset({"h", "hora", "horas", "hour", "hours", "hr", "hrs"}),
    "dia": frozenset({"dia", "dias", "day", "days"}),
    "kg": frozenset({"kg", "kilos", "quilos"}),
    "km": frozenset({"km", "quilometros", "kilometers"}),
    "estrela": frozenset({"estrela", "estrelas", "star", "stars"}),
}
# "mais de 2 meses atrás" is a period; "mais de 5 dias" is a bound where a column holds days.
_PERIOD_UNITS = frozenset({"mes", "meses", "month", "months", "ano", "anos", "year", "years",
                           "semana", "semanas", "week", "weeks", "trimestre", "trimestres",
                           "quarter", "quarters"})  # fmt: skip


def _name_forms(column: ColumnProfile) -> frozenset[str]:
    """Every word of ``column``'s name, with its singulars."""
    return frozenset(v for w in name_words(column.name) for v in _variants(w))


def _same_or_synonym(a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether two sets of word forms share a form or a synonym group."""
    return bool(a & b or _groups(a) & _groups(b))


def blank_bounds(text: str) -> str:
    """``text`` (folded) with each word of its bounds ("mais de 50 minutos") made a blank
    word, so that "mais" and "menos" there rank nothing while the words keep their places."""
    return _BOUND.sub(lambda m: re.sub(r"[a-z0-9]+", "zz", m[0]), text)


def threshold_filters(question: str, visible: list[ColumnProfile]) -> list[Filter]:
    """A bound on a number column the question sets ("pedidos que demoraram mais de 50
    minutos", "orders over R$ 100", "avaliação abaixo de 3"): the column whose name holds the
    bound's unit (``tempo_entrega_min``), the money column for an amount in reais or dollars,
    or the one number column named just before the bound. A period ("mais de 2 meses") and a
    percentage are no such bound."""
    folded = _fold(question)
    numeric = [c for c in visible if c.kind == "numeric"]
    out: list[Filter] = []
    for match in _BOUND.finditer(folded):
        unit = match["unit"] or ""
        if unit in _PERIOD_UNITS or unit == "%" or unit.startswith("por"):
            continue
        value = float(match["num"].replace(",", "."))
        chosen: list[ColumnProfile] = []
        units = next((words for words in _UNIT_WORDS.values() if unit in words), None)
        if units is not None:
            chosen = [c for c in numeric if set(name_words(c.name)) & units]
            if not chosen and units is _UNIT_WORDS["estrela"]:
                rating = _variants("rating")
                chosen = [c for c in numeric if _same_or_synonym(rating, _name_forms(c))]
            if not chosen:
                continue  # "há mais de 5 dias" with no column of days: no bound
        if not chosen and (match["cur"] or unit in {"reais", "real", "dolares", "dollars"}):
            chosen = [c for c in numeric if c.money]
        if not chosen:
            # The number column named nearest before the bound ("avaliação abaixo de 3").
            for word in reversed(re.findall(r"[a-z0-9]+", folded[: match.start()])[-3:]):
                forms = _variants(word)
                chosen = [c for c in numeric if _same_or_synonym(forms, _name_forms(c))]
                if chosen:
                    break
        if len(chosen) == 1:
            out.append(Filter(column=chosen[0].name, op=_BOUNDS[" ".join(match["cmp"].split())],
                              value=value))  # fmt: skip
    return out


def _things_counted(
    named: dict[str, _Named], visible: list[ColumnProfile], tokens: list[frozenset[str]]
) -> None:
    """ "Quantos pedidos", "the number of orders", "queda de pedidos": a word that names an id
    column (``id_pedido``) names the things counted, not a number column it only qualifies
    (``valor_pedido``, the value of an order) when that column's own first word ("valor") is
    not said too; the number column is then not named."""
    ids = {named[c.name].position for c in visible if c.kind == "id"} - {-1}
    said = frozenset().union(*tokens) if tokens else frozenset()
    for column in visible:
        at = named[column.name].position
        if column.kind != "numeric" or at not in ids:
            continue
        if _same_or_synonym(_variants(name_words(column.name)[0]), said):
            continue  # "valor dos pedidos": the value is asked for
        named[column.name] = _Named()
    keys = _row_keys(visible)
    for column in visible:
        n = named[column.name]
        words = name_words(column.name)
        if len(keys) != 1 or column.kind != "numeric" or not column.money or n.position < 0:
            continue
        written = max(tokens[n.position], key=len) if tokens[n.position] else ""
        if (
            n.length != 1
            or len(words) < 2
            or money_of(words[0])[0]
            or not _plural(written)
            or any(_same_or_synonym(_variants(w), said) for w in words[1:])
        ):
            continue
        # "os contratos residenciais despencaram" with ``contract_value_brl`` and one key
        # (``project_id``): the contracts are the rows, counted; their value is not said.
        named[keys[0].name] = n
        named[column.name] = _Named()


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


def _rule_measures(
    visible: list[ColumnProfile],
    named: dict[str, _Named],
    agg: Agg | None,
    tokens: list[frozenset[str]],
    folded: str = "",
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
    if _sells(tokens):
        # "quantos pães vendemos": the units sold (``units_sold``), not those baked.
        units.sort(key=lambda c: not any(w.startswith(_SELL_STEMS) for w in name_words(c.name)))
    if units and _counts(tokens) and _sells(tokens) and units[0] not in numeric:
        # "How many croissants did we sell (and what's our loss rate)?": the units sold, not
        # the rows that hold them.
        if not numeric:
            return [Measure(column=units[0].name, agg=agg or "sum")]
        numeric = [units[0], *numeric]
        named = {**named, units[0].name: _Named(_sell_position(tokens), 0, 1)}
    if (
        not numeric
        and not _counts(tokens)
        and _sales_position(tokens) is not None
        and not any(t & _DEALS for t in tokens)  # "the payment method most used": counted
    ):
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
            # the money column (the one that adds up, valor_total, not a price), each asked
            # by its own part.
            earned = min(money, key=lambda c: _measure_rank(c, visible.index(c)))
            numeric = [*numeric, earned]
            at[earned.name] = sold
        numeric = _qualified(numeric, at)
        rank = _rank_position(tokens)
        if rank is not None:
            # The ranking is by the measure named nearest its "mais"/"most".
            numeric = sorted(numeric, key=lambda c: abs(at[c.name] - rank))
        measures = [Measure(column=c.name, agg=agg or plan_agg(c)) for c in numeric]
        if ids and _counts(tokens):
            # "How many orders, and which category brought in the most value?": both.
            measures.append(Measure(column=ids[0].name, agg="count"))
        elif len(re.split(r"\s*[,;]\s*|\s+(?:e|and)\s+", folded)) > 1 and _counted_rows(
            tokens, named, visible
        ):
            # "quantas cargas recebemos, quantas sacas foram...": the loads are the rows.
            every = [c for c in visible if c.kind == "id"]
            measures.append(Measure(column=every[0].name if every else "*", agg="count"))
        return measures[:MAX_MEASURES]
    if ids:
        return [Measure(column=ids[0].name, agg="count")]
    if _counts(tokens):
        return [Measure(column="*", agg="count")]
    return None


def _counted_rows(
    tokens: list[frozenset[str]], named: dict[str, _Named], visible: list[ColumnProfile]
) -> bool:
    """Whether "quantas"/"how many" is followed by two words that name no column ("quantas
    cargas recebemos", "how many loads came"): things counted that are the rows themselves."""
    spots = {
        i
        for n in named.values()
        if n.position >= 0
        for i in range(n.position, n.position + max(1, n.length))
    }
    words = frozenset().union(*(_name_forms(c) for c in visible))
    for i, token in enumerate(tokens[:-2]):
        if not token or max(token, key=len) not in _HOW_MANY or {i + 1, i + 2} & spots:
            continue
        following = tokens[i + 1] | tokens[i + 2]
        return not (
            tokens[i + 1] & _FILLERS
            or following & words
            or _groups(following) & _groups(frozenset(words))
        )
    return False


_HOW_MANY = frozenset({"quantos", "quantas", "many"})
_MOST_WORDS = frozenset({"most", "fewest", "more", "fewer", "mais", "menos"})
_MOST_OF = _MOST_WORDS | {"many", "quantos", "quantas"}


def _plural(word: str) -> bool:
    """Whether a word as written is a plural ("contratos", "appointments"; "gross" is not)."""
    return word.endswith("s") and not word.endswith("ss")


def _row_keys(visible: list[ColumnProfile]) -> list[ColumnProfile]:
    """The rows' own keys: one value a row ("project_id"; not "city_id", a key of cities)."""
    return [c for c in visible if c.kind == "id" and c.count > 0 and c.distinct == c.count]


# Plural words after "mais"/"most" that are no things counted: "mais vezes", "most days".
_NOT_THINGS = frozenset(
    {"vezes", "times", "dias", "days", "horas", "hours", "meses", "months", "semanas", "weeks",
     "anos", "years", "reais", "dollars", "pessoas", "people"}
)  # fmt: skip


def _events_dated(
    visible: list[ColumnProfile], named: dict[str, _Named], tokens: list[frozenset[str]]
) -> ColumnProfile | None:
    """The date column of an event not every row had ("data_desligamento",
    ``cancelled_at``), named in a question of how many or the most ("mais desligamentos",
    "how many cancellations", "quantos alunos cancelaram"): its dates count the events."""
    if not any(t & _MOST_OF for t in tokens):
        return None
    for column in visible:
        if column.kind != "temporal" or column.nulls == 0 or column.count == 0:
            continue
        words = frozenset(
            v for w in name_words(column.name) if w not in DATE_NAME_WORDS for v in _variants(w)
        )
        # "mais desligamentos", "how many cancellations", "quantos alunos cancelaram".
        if any(token and _same_or_synonym(token, words) for token in tokens):
            return column
    return None


def _rows_dated(
    tokens: list[frozenset[str]], visible: list[ColumnProfile], named: dict[str, _Named]
) -> str | None:
    """The date every row has that "mais"/"most" names by a plural right after it ("the most
    arrivals" for ``arrival``, "mais chegadas" for ``data_chegada``): each row is one; or
    None."""
    for column in visible:
        at = named[column.name].position
        if (
            column.kind == "temporal"
            and column.nulls == 0
            and at > 0
            and tokens[at - 1] & _MOST_WORDS
            and tokens[at]
            and _plural(max(tokens[at], key=len))
        ):
            return column.name
    return None


def _most_of_things(
    tokens: list[frozenset[str]],
    visible: list[ColumnProfile],
    named: dict[str, _Named],
    values: set[int],
) -> bool:
    """Whether "mais"/"most" is followed by a plural noun that names no column, no value and
    no money ("the most appointments", "mais consultas"): the rows are what is counted."""
    spots = {
        i
        for n in named.values()
        if n.position >= 0
        for i in range(n.position, n.position + max(1, n.length))
    }
    for i, token in enumerate(tokens[:-1]):
        if not token & _MOST_WORDS:
            continue
        j = i + 1
        written = max(tokens[j], key=len) if tokens[j] else ""
        if (
            len(written) >= 4
            and _plural(written)
            and j not in spots
            and j not in values
            and written not in _NOT_THINGS
            and not any(w.startswith(_MONEY_STEMS) for w in tokens[j])
        ):
            return True
    return False


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
     "fardos", "exemplar", "exemplares", "copy", "copies", "peca", "pecas", "piece", "pieces"}
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


_SALES_NOUNS = frozenset({"sale", "sales"})


def _sold_volume(visible: list[ColumnProfile]) -> ColumnProfile | None:
    """The one column of the weight or volume sold (``litros_vendidos``, ``kg_sold``), when
    the data records its sales so; None otherwise."""
    sold = [
        c
        for c in visible
        if c.kind == "numeric"
        and _is_weight(c)
        and any(w.startswith(_SELL_STEMS) for w in name_words(c.name))
    ]
    return sold[0] if len(sold) == 1 else None


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
    if grain is None and chosen is not None and named[chosen.name].strength < 2:
        # "the resolution time" names ``closed_at`` only through a synonym: no series by it.
        chosen = None
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
        if column.kind != "categorical" or column.name in dims or yes_no_values(column):
            # A yes/no column is kept by its word ("promo", "financiados"), never by "no"
            # or "sim" alone: "no ano" is "in the year".
            continue
        value = _named_value(column, tokens)
        if value is None and set(name_words(column.name)) & _OUTCOME_COLUMNS:
            value = _outcome_named(column, tokens)
        if value is not None:
            at = _find(tokens, re.findall(r"[a-z0-9]+", _fold(value)))
            # "excluding cancelled projects", "sem os cancelados": every other value.
            op: Op = "!=" if any(tokens[i] & _EXCEPT for i in range(max(0, at - 3), at)) else "="
            filters.append(Filter(column=column.name, op=op, value=value))
    return filters[:MAX_FILTERS]


_STEM = 6
# Columns of outcomes ("status" holding Realizada, Cancelada, Faltou), whose values a question
# names by a noun of its own language ("cancellations", "no-shows").
_OUTCOME_COLUMNS = frozenset(
    {"status", "situacao", "resultado", "outcome", "estado", "state", "desfecho"}
)


def _outcome_named(column: ColumnProfile, tokens: list[frozenset[str]]) -> str | None:
    """The one-word value of an outcome column a question word starts like, or is a synonym
    of in the other language ("cancellations" for ``Cancelada``), or None."""
    for value, _ in column.top:
        words = re.findall(r"[a-z0-9]+", _fold(value))
        if len(words) == 1 and any(_stems_meet(max(t, key=len), words[0]) for t in tokens if t):
            return value
    return None


def _counted_value(filters: list[Filter], tokens: list[frozenset[str]]) -> bool:
    """Whether a value kept is named by a plural noun ("mais faltas", "the most
    cancellations" for ``status`` Faltou, Cancelada): its rows are what is counted."""
    for flt in filters:
        if flt.op != "=" or not isinstance(flt.value, str):
            continue
        words = re.findall(r"[a-z0-9]+", _fold(flt.value))
        if len(words) != 1:
            continue
        for token in tokens:
            written = max(token, key=len) if token else ""
            if written.endswith("s") and (words[0] in token or _stems_meet(written, words[0])):
                return True
    return False


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
    pair = yes_no_values(column)
    if pair is None:
        return None
    yes, no = pair
    i = _yes_no_position(column, tokens)
    if i < 0:
        return None
    negated = any(tokens[j] & _EXCEPT for j in range(max(0, i - 2), i))
    return no if negated else yes


def _yes_no_position(column: ColumnProfile, tokens: list[frozenset[str]]) -> int:
    """Where a word of the column's own names it ("cancelados" for ``Cancelado``; a short
    word said as it is, "ativos" for ``ativo``; a synonym, "stockouts" for ``ruptura``), or
    -1."""
    own = [w for w in name_words(column.name) if len(w) >= 4]
    groups = _groups(frozenset(v for w in own for v in _variants(w)))
    for i, token in enumerate(tokens):
        if (
            any(w in token for w in own)
            or (groups and _groups(token) & groups)
            or any(
                len(f) >= _STEM and len(w) >= _STEM and f[:_STEM] == w[:_STEM]
                for f in token
                for w in own
            )
        ):
            return i
    return -1


_EXCEPT = frozenset(
    {"excluding", "exclude", "excluded", "except", "without", "not", "sem", "exceto",
     "excluindo", "excluir", "tirando", "fora", "nao"}
)  # fmt: skip
