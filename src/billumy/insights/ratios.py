"""Ratios: one count as a percentage of another, when a question asks for a rate.

"What percentage of deliveries were late?" on data with ``entregas`` and ``atrasadas``, "what's
our resolution rate?" on data with ``tickets_opened`` and ``tickets_resolved``: the answer is
the sum of the part over the sum of the whole, not any one segment's share of a total (that is
the ``breakdown`` fact's ``share_pct``).

Which two columns: the additive measures the question's plan names (summed, not averages or
stocks); when it names only one (the part: "resolution"), the whole is a column that shares a
word of its name (``tickets_opened`` for ``tickets_resolved``). A pair counts only when the
data agree that one is a part of the other: both sums are positive, no value is negative, and
the part's sum is below the whole's. The plan's filters apply to both.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from billumy.insights.data import Table, quote_ident
from billumy.insights.grains import natural_grain
from billumy.insights.model import ColumnProfile, Fact, Profile, Scalar
from billumy.insights.naming import column_vocabulary, named_columns, names_sales
from billumy.insights.plan import Measure, Plan
from billumy.insights.planned import as_of_conditions, filter_conditions
from billumy.insights.profile import dtype_family, name_words, plain
from billumy.insights.roles import (
    default_agg,
    is_stock,
    main_columns,
    on_the_books,
    outcome_rank,
)
from billumy.insights.synonyms import _fold, compounds, one_edit, synonym_groups, variants
from billumy.insights.wording import fmt_number, fmt_pct

__all__ = [
    "asks_for_rate",
    "difference_fact",
    "jargon",
    "known_rate",
    "length_pair",
    "nps_fact",
    "per_fact",
    "per_period_fact",
    "rate_of",
    "rated_event",
    "rated_value",
    "ratio_fact",
    "unit_scale",
    "value_rate_fact",
    "weighted_fact",
]

# Question words that ask for a rate (folded); the question's share words ("percentual",
# "percentage", "%") ask for one too when no segment is named.
_RATE_WORDS = frozenset(
    {"rate", "rates", "taxa", "taxas", "ratio", "razao", "indice", "conversion", "conversao",
     # "qual especialidade teve mais faltas proporcionalmente?": the faltas per consulta
     "proporcionalmente", "proporcional", "proportionally", "proportionately", "relativamente",
     "relatively"}
)  # fmt: skip
_GENERIC = frozenset({"total", "valor", "value", "qtd", "quantidade", "num", "numero", "n"})


_CONVERSION = frozenset(
    {"conversion", "conversions", "conversao", "conversoes", "converte", "convert", "converts",
     "converted", "converteu", "convertem"}
)  # fmt: skip
_CONVERTED = frozenset(
    {"orders", "order", "pedidos", "pedido", "compras", "compra", "purchases", "purchase",
     "conversions", "conversoes", "vendas", "sales", "signups", "cadastros", "leads"}
)  # fmt: skip
_VISITS = frozenset(
    {"sessions", "session", "sessoes", "visitas", "visits", "visitors", "visitantes", "acessos",
     "clicks", "cliques", "views", "impressions", "impressoes"}
)  # fmt: skip


def respelled(question: str, profile: Profile) -> str:
    """``question`` with each long word that is one letter off exactly one word the data's
    columns or this module's rates are named by written as that word ("ocupancy rate" reads
    "occupancy rate", "admisions" ``admissions``); words the data or the vocabulary already
    know (a plural, a value) stay as they are."""
    known = {w for w in column_vocabulary(profile) if len(w) >= 7} | {
        w for w in _RATE_VOCABULARY if len(w) >= 7
    }
    values = {
        w
        for c in profile.columns
        if c.kind == "categorical" and not c.masked
        for v, _ in c.top
        for w in name_words(str(v).lower())
    }

    def fix(match: re.Match[str]) -> str:
        word = match[0]
        folded = name_words(word.lower())
        if len(folded) != 1 or len(folded[0]) < 7:
            return word
        forms = variants(folded[0])
        if forms & (known | values) or any(synonym_groups(f) for f in forms):
            return word
        # The word as written first ("admisions": ``admissions``), then its singulars.
        close = {k for k in known if one_edit(folded[0], k)}
        close = close or {k for k in known if any(one_edit(f, k) for f in forms)}
        return close.pop() if len(close) == 1 else word

    return re.sub(r"[^\W\d_]+", fix, question)


def rate_of(question: str, profile: Profile) -> tuple[str, str] | None:
    """The (numerator, denominator) columns of the rate ``question`` names by its jargon
    ("length of stay", "inadimplência") or as one quantity per another ("price per pastry"),
    when the data has them; else None."""
    known = jargon(question, profile)
    if known is not None:
        return known[1], known[2]
    return _per_pair(question, profile)


def known_rate(phrase: str) -> bool:
    """Whether ``phrase`` names a rate this module computes from two columns (conversion,
    churn, ROAS, CPA, CTR...)."""
    words = set(name_words(phrase.lower()))
    return bool(words & (_CONVERSION | _CHURN | _JARGON_WORDS | _TICKET | _PHRASE_WORDS))


# --- business jargon: one quantity over another, by the roles of the columns -------------------

_ROLES: dict[str, frozenset[str]] = {
    "spend": frozenset(
        {"spend", "spent", "gasto", "gastos", "investimento", "investido", "ad", "ads", "custo",
         "custos", "cost", "costs", "budget", "verba", "midia", "anuncios"}
    ),
    "orders": _CONVERTED,
    "clicks": frozenset({"clicks", "click", "cliques", "clique"}),
    "impressions": frozenset({"impressions", "impressoes", "views", "visualizacoes"}),
    "occupied": frozenset(
        {"ocupados", "ocupadas", "ocupado", "occupied", "sold", "vendidos", "vendidas", "diarias",
         "booked", "reservado", "reservadas", "reservados"}
    ),
    # A loan book: what is past due, and the balance it is a part of.
    "overdue": frozenset(
        {"atraso", "atrasado", "atrasados", "overdue", "vencido", "vencidos", "inadimplente",
         "inadimplentes", "delinquent", "arrears", "npl"}
    ),
    "balance": frozenset({"saldo", "carteira", "balance", "outstanding", "book", "portfolio"}),
    # A hospital: the patients who left, over whom the bed-days are spread.
    "discharges": frozenset({"discharges", "discharge", "altas", "alta", "saidas"}),
    "available": frozenset(
        {"disponiveis", "disponivel", "available", "capacity", "capacidade", "bookable",
         "sellable", "staffed", "operacionais", "operational", "instalados", "ativos", "frota",
         "fleet"}
    ),
    "bookings": frozenset(
        {"reservas", "reserva", "reservations", "reservation", "bookings", "booking",
         "agendamentos", "appointments", "pedidos", "orders", "contratos", "contracts"}
    ),
    "cancellations": frozenset(
        {"cancelamentos", "cancelamento", "cancellations", "cancelations", "cancelled",
         "canceled", "cancelados", "canceladas", "churn", "churned", "evasao", "evasoes",
         "desistencias", "dropouts"}
    ),
    # What a ticket is the money of: an order, a sale, or a customer served (a restaurant's
    # covers, a shop's receipts).
    "tickets": _CONVERTED | frozenset(
        {"clientes", "cliente", "customers", "customer", "clients", "covers", "couverts",
         "transacoes", "transactions", "atendimentos", "comandas", "cupons", "tickets",
         "receipts"}
    ),
}  # fmt: skip
_CHURN = frozenset({"churn", "cancelamento", "cancelamentos", "cancellation", "evasao"})

# Word -> (fact kind, numerator role, denominator role, the name it is said by).
_JARGON: dict[str, tuple[str, str, str, str]] = {
    "roas": ("per", "revenue", "spend", "ROAS"),
    "cpa": ("per", "spend", "orders", "CPA"),
    "cac": ("per", "spend", "orders", "CAC"),
    "cpc": ("per", "spend", "clicks", "CPC"),
    "ctr": ("ratio", "clicks", "impressions", "CTR"),
    "aov": ("per", "revenue", "orders", "AOV"),
    "adr": ("per", "revenue", "occupied", "ADR"),
    "revpar": ("per", "revenue", "available", "RevPAR"),
}
# Rates named by a phrase: (its words, kind, numerator role, denominator role, name).
_JARGON_PHRASES: tuple[tuple[tuple[str, ...], str, str, str, str], ...] = (
    (("diaria", "media"), "per", "revenue", "occupied", "diária média"),
    (("average", "daily", "rate"), "per", "revenue", "occupied", "ADR"),
    (("taxa", "de", "ocupacao"), "ratio", "occupied", "available", "ocupação"),
    (("occupancy", "rate"), "ratio", "occupied", "available", "occupancy"),
    (("occupancy",), "ratio", "occupied", "available", "occupancy"),
    (("ocupacao",), "ratio", "occupied", "available", "ocupação"),
    # The average length of stay: bed-days occupied over the patients discharged.
    (("length", "of", "stay"), "per", "occupied", "discharges", "average length of stay"),
    (("tempo", "medio", "de", "permanencia"), "per", "occupied", "discharges", "permanência média"),
    (("permanencia", "media"), "per", "occupied", "discharges", "permanência média"),
    (("alos",), "per", "occupied", "discharges", "ALOS"),
    # The average ticket: the money taken per order (sale, visit), not the rows' average.
    (("ticket", "medio"), "per", "revenue", "tickets", "ticket médio"),
    (("average", "ticket"), "per", "revenue", "tickets", "average ticket"),
    (("average", "order", "value"), "per", "revenue", "orders", "average order value"),
    # Fleet (room, seat) utilization: the days sold over the days there were to sell.
    (("taxa", "de", "utilizacao"), "ratio", "occupied", "available", "utilização"),
    (("utilizacao",), "ratio", "occupied", "available", "utilização"),
    (("utilization",), "ratio", "occupied", "available", "utilization"),
    (("utilisation",), "ratio", "occupied", "available", "utilisation"),
    (("inadimplencia",), "ratio", "overdue", "balance", "inadimplência"),
    (("delinquency",), "ratio", "overdue", "balance", "delinquency"),
    (("default", "rate"), "ratio", "overdue", "balance", "default rate"),
)
_JARGON_WORDS = frozenset(_JARGON)
_PHRASE_WORDS = frozenset(
    {
        "ocupacao",
        "occupancy",
        "diaria",
        "adr",
        "revpar",
        "inadimplencia",
        "delinquency",
        "permanencia",
        "alos",
        "ticket",
        "utilizacao",
        "utilization",
        "utilisation",
    }
)
_RATE_VOCABULARY = (
    _PHRASE_WORDS | _CONVERSION | _CHURN | _RATE_WORDS | frozenset().union(*_ROLES.values())
)


def _role(profile: Profile, role: str) -> ColumnProfile | None:
    """The first visible numeric column that plays ``role`` (revenue: money coming in; a stock:
    members, subscribers, headcount...)."""
    numeric = [c for c in profile.columns if c.kind == "numeric" and not c.masked]
    if role == "revenue":
        found = [c for c in numeric if names_sales(c.name) and c.money]
        found = found or [c for c in numeric if names_sales(c.name)]
    elif role == "stock":
        found = [c for c in numeric if is_stock(c)]
    else:
        words = _ROLES[role]
        found = [c for c in numeric if _words(c) & words and not names_sales(c.name)]
        if role == "bookings":
            # Bookings counted, not "gross_bookings_usd": a rate over money is no rate.
            found = [c for c in found if not c.money]
        if role == "spend":
            found.sort(key=lambda c: not c.money)
        if role == "tickets":
            # The customers served, not those who came or left ("new", "churned"); those on
            # the books when a month's row keeps them.
            left = _ROLES["cancellations"] | {"new", "novos", "novas"}
            found = [c for c in found if not c.money and not _words(c) & left]
            found.sort(key=lambda c: not on_the_books(c))
        if role == "balance":
            # ``saldo_carteira``, not ``saldo_em_atraso_90d``: the whole, not the part past due.
            found = [c for c in found if not _words(c) & _ROLES["overdue"]]
    return found[0] if found else None


def jargon(question: str, profile: Profile) -> tuple[str, str, str, str] | None:
    """(kind, numerator, denominator, name) of the rate a question names by its jargon ("o
    ROAS do Google Ads": revenue over ad spend; "churn rate", "taxa de cancelamento":
    cancellations over the members on the books), when the data has a column for each role;
    else None."""
    said = name_words(question.lower())  # "RevPAR" is one word, not "rev par"
    words = set(said)
    for phrase, kind, top, bottom, name in _JARGON_PHRASES:
        n = len(phrase)
        if any(tuple(said[i : i + n]) == phrase for i in range(len(said) - n + 1)):
            a, b = _role(profile, top), _role(profile, bottom)
            if a is not None and b is not None and a.name != b.name:
                return kind, a.name, b.name, name
    for word, (kind, top, bottom, name) in _JARGON.items():
        if word in words:
            a, b = _role(profile, top), _role(profile, bottom)
            if a is not None and b is not None and a.name != b.name:
                return kind, a.name, b.name, name
    if _says_area(said) and words & _PRICE_SAID:
        # "o metro quadrado mais caro", "price per square foot": the price over the area.
        price = [
            c
            for c in profile.columns
            if c.kind == "numeric" and not c.masked and c.money and _words(c) & _PRICE_SAID
        ]
        area = [
            c
            for c in profile.columns
            if c.kind == "numeric" and not c.masked and _words(c) & _AREA_WORDS
        ]
        if price and area:
            pt = bool(words & {"metro", "metros", "quadrado", "preco", "caro", "barato"})
            return "per", price[0].name, area[0].name, "preço do m²" if pt else "price per m²"
    if words & _CHURN and (words & _RATE_WORDS or words & _SHARE_WORDS):
        said_as = next(w for w in said if w in _CHURN)
        part = _role(profile, "cancellations")
        booked = None if said_as in ("churn", "evasao") else _role(profile, "bookings")
        if part is not None and booked is not None and _additive(part) and _additive(booked):
            # "taxa de cancelamento" beside ``reservas``: the bookings cancelled, not churn.
            return "ratio", part.name, booked.name, said_as.removesuffix("s")
        whole = _role(profile, "stock")
        if part is not None and whole is not None and _additive(part):
            # A school's churn is its "evasão", and is said so.
            return "ratio", part.name, whole.name, "evasão" if said_as == "evasao" else "churn"
    return None


_AREA_WORDS = frozenset({"area", "m2", "metragem", "sqm", "sqft", "footage"})
_PRICE_SAID = frozenset(
    {"preco", "precos", "price", "prices", "valor", "value", "caro", "cara", "caros", "barato",
     "barata", "baratos", "expensive", "cheap", "cheapest", "custa", "costs", "cost", "aluguel",
     "rent"}
)  # fmt: skip


def _says_area(said: list[str]) -> bool:
    """Whether the question says a unit of area: "m²", "metro quadrado", "square foot"."""
    return bool({"m2", "sqm", "sqft"} & set(said)) or any(
        pair in _AREA_PAIRS for pair in itertools.pairwise(said)
    )


_AREA_PAIRS = frozenset(
    {("metro", "quadrado"), ("metros", "quadrados"), ("square", "meter"), ("square", "meters"),
     ("square", "metre"), ("square", "foot"), ("square", "feet")}
)  # fmt: skip


_SHARE_WORDS = frozenset({"percentual", "percentage", "porcentagem", "pct", "percent"})
_TICKET_PHRASES = (("ticket", "medio"), ("average", "ticket"), ("average", "order", "value"))


def ticket_of_rows(question: str, profile: Profile) -> str | None:
    """The money column whose average is the ticket ("ticket médio", "average order value",
    "AOV") on data with a row per order: no column counts the orders, so the money per order
    is the rows' average; None otherwise."""
    said = name_words(question.lower())
    asked = "aov" in said or any(
        tuple(said[i : i + len(p)]) == p for p in _TICKET_PHRASES for i in range(len(said))
    )
    if not asked or _role(profile, "orders") is not None:
        return None
    keyed = any(
        c.kind == "id" and not c.masked and c.distinct == c.count == profile.row_count
        for c in profile.columns
    )
    if not keyed:
        return None  # a day's (a store's) row is no order: its average is no ticket
    revenue = _role(profile, "revenue")
    return revenue.name if revenue is not None and revenue.money else None


def _words(column: ColumnProfile) -> set[str]:
    return set(name_words(column.name))


def asks_for_rate(question: str, profile: Profile | None = None) -> bool:
    """Whether ``question`` has a word of rate ("taxa de resolução", "resolution rate"); with
    ``profile``, not one that is part of a column's name said whole ("a taxa de entrega" for
    ``taxa_entrega``, the fee charged per delivery)."""
    words = set(name_words(question))
    rate = words & _RATE_WORDS
    if profile is not None:
        for column in profile.columns:
            own = set(name_words(column.name))
            if not column.masked and len(own) >= 2 and own & rate and own <= words:
                rate -= own
    return bool(rate)


def _additive(column: ColumnProfile | None) -> bool:
    return (
        column is not None
        and column.kind == "numeric"
        and default_agg(column) == "sum"
        and not is_stock(column)
        and isinstance(column.min, int | float)
        and column.min >= 0
    )


def _candidates(
    profile: Profile, plan: Plan, question: str, table: Table | None = None
) -> list[tuple[str, str]]:
    """(part, whole) pairs to try: the plan's summed measures, then the additive columns the
    question names some other way ("resolution rate" names ``tickets_resolved`` though
    ``avg_resolution_hours`` is the plan's measure)."""
    named = [m.column for m in plan.measures if m.agg == "sum" and m.column != "*"]
    named += named_columns(question, profile, any_word=True) if question else []
    known = jargon(question, profile) if question else None
    if known is not None and known[0] == "ratio":
        if known[3] in ("churn", "evasão") and table is not None:
            # "cancellation rate" with trips requested = completed + cancelled: the trips
            # cancelled over those requested, not over the drivers on the books.
            exact = _dominating(table, profile, known[1], exact_only=True)
            return [(known[1], w) for w in exact[:1]] + [(known[1], known[2])]
        return [(known[1], known[2])]
    named = list(dict.fromkeys(c for c in named if _additive(profile.column(c))))
    if question and set(name_words(question)) & _CONVERSION:
        # "taxa de conversão", "conversion rate": orders over sessions (or visits, clicks).
        parts = [c.name for c in profile.columns if _additive(c) and _CONVERTED & _words(c)]
        wholes = [c.name for c in profile.columns if _additive(c) and _VISITS & _words(c)]
        return [(a, b) for a in parts for b in wholes]
    # A count over money is no rate ("faltas over faturamento"), nor money over a count.
    pairs = [(a, b) for a in named for b in named if a != b and _same_kind(profile, a, b)]
    # "calls offered, calls answered and the abandonment rate": the part is what the clause
    # with the word of rate names.
    rated = _rated_clause(question)
    if rated:
        first = [c for c in named_columns(rated, profile, any_word=True) if c in named]
        pairs.sort(key=lambda pair: pair[0] not in first)
        if first and len(named) > 1 and table is not None and not pairs:
            # "the highest no-show rate, and how did billing change?": the rated part's whole
            # is the column that holds it on every row, as for a part named alone.
            pairs += [(first[0], whole) for whole in _dominating(table, profile, first[0])]
    if len(named) == 1:
        words = set(name_words(named[0])) - _GENERIC
        shared = [
            (named[0], c.name)
            for c in profile.columns
            if not c.masked
            and c.name != named[0]
            and _additive(c)
            and words & set(name_words(c.name))
        ]
        pairs += shared
        if not shared and table is not None:
            # "the no-show rate" beside ``bookings``: the whole is the column that holds the
            # part on every row, the smallest such (bookings, not capacity hours).
            pairs += [(named[0], whole) for whole in _dominating(table, profile, named[0])]
    return pairs


def _counted(column: ColumnProfile) -> bool:
    """Whether ``column`` holds non-negative whole numbers (beds, people, items on hand)."""
    return (
        dtype_family(column.dtype) == "integer"
        and isinstance(column.min, int | float)
        and column.min >= 0
    )


def _same_kind(profile: Profile, part: str, whole: str) -> bool:
    """Whether ``whole`` may be the whole of ``part`` in a percentage: money over money, a
    count over a count (money over a count is an amount per thing, another fact)."""
    a, b = profile.column(part), profile.column(whole)
    return a is not None and b is not None and a.money == b.money


def _dominating(table: Table, profile: Profile, part: str, exact_only: bool = False) -> list[str]:
    """The additive columns at least as large as ``part`` on every row (and larger in sum),
    smallest sum first: the wholes ``part`` may be a share of."""
    p = quote_ident(part)
    column = profile.column(part)
    if column is None or column.dtype not in ("BIGINT", "INTEGER", "HUGEINT", "SMALLINT"):
        return []  # a count of things is a part; an amount of money or hours is not
    others = [
        c
        for c in profile.columns
        if not c.masked and c.name != part and _additive(c) and _same_kind(profile, part, c.name)
    ]
    if not others:
        return []
    checks = ", ".join(
        f"bool_and({quote_ident(c.name)} >= {p}), sum({quote_ident(c.name)})" for c in others
    )
    row = table.query(f"SELECT {checks} FROM data WHERE {p} IS NOT NULL")[0]  # noqa: S608
    found = [
        (float(row[2 * i + 1] or 0), c.name) for i, c in enumerate(others) if row[2 * i] is True
    ]
    wholes = [name for _, name in sorted(found)]
    if len(wholes) < 2 and not exact_only:
        return wholes
    # The whole the part is of, where one is the part plus another column on every row
    # (appointments = no-shows + consultations seen): not merely a larger column.
    pairs = [(w, o.name) for w in wholes[:4] for o in others if o.name not in (w, part)]
    if not pairs:
        return [] if exact_only else wholes
    sums = ", ".join(f"bool_and({quote_ident(w)} = {p} + {quote_ident(o)})" for w, o in pairs)
    made = table.query(f"SELECT {sums} FROM data WHERE {p} IS NOT NULL")[0]  # noqa: S608
    exact = list(dict.fromkeys(w for (w, _), ok in zip(pairs, made, strict=True) if ok is True))
    return exact if exact_only else exact + [w for w in wholes if w not in exact]


def _rated_clause(question: str) -> str:
    """The clause of ``question`` (between commas, "and", "e") with a word of rate, or ""."""
    for clause in re.split(r"\s*[,;]\s*|\s+(?:e|and)\s+", question):
        if set(name_words(clause)) & _RATE_WORDS:
            return clause
    return ""


def ratio_fact(
    table: Table,
    profile: Profile,
    plan: Plan | None,
    dimension: str | None = None,
    question: str = "",
    now: bool = False,
) -> Fact | None:
    """The ``ratio`` fact for the first pair the data agree is a part and its whole, or
    None. ``values``: ``part``, ``whole`` (columns), ``part_total``, ``whole_total`` and
    ``ratio_pct``; with a ``dimension`` ("a taxa de atraso por transportadora"), ``rows``
    hold each segment's ratio, highest first (up to ``plan.top_n``). With no plan ("what's
    our conversion rate?"), over all the rows. ``now`` ("hoje", "right now"): a rate of two
    levels is read on the latest date the filters keep (the fact's ``as_of``)."""
    if plan is None:
        plan = Plan(measures=[Measure(column="*", agg="count")])
    conditions, params = filter_conditions(profile, plan.filters)
    known = jargon(question, profile) if question else None
    for part, whole in _candidates(profile, plan, question, table):
        as_of = None
        part_column, whole_column = profile.column(part), profile.column(whole)
        if (
            now
            and part_column is not None
            and whole_column is not None
            and is_stock(part_column)
            and is_stock(whole_column)
        ):
            # A rate of one level in another today (the balance past due in the loan book)
            # is read at a moment, the latest date the filters keep, not over the levels of
            # every date summed (which an occupancy over a quarter is: bed-days over beds).
            as_of = as_of_conditions(table, profile, plan)
        if as_of is not None:
            conditions, params = as_of[0], as_of[1]
        else:
            conditions, params = filter_conditions(profile, plan.filters)
        where = " AND ".join(conditions) if conditions else "true"
        p, w = quote_ident(part), quote_ident(whole)
        days = _days_per_row(table, profile, part, whole)
        below = f"sum({w} * {days[1]})" if days is not None else f"sum({w})"
        select = (
            f"sum({p}) AS part_total, {below} AS whole_total, "
            f"100.0 * sum({p}) / nullif({below}, 0) AS ratio_pct"
        )
        sql = f"SELECT {select} FROM data WHERE {where}"  # noqa: S608
        row = table.records(sql, list(params))[0]
        part_total, whole_total = plain(row["part_total"]), plain(row["whole_total"])
        if not isinstance(part_total, int | float) or not isinstance(whole_total, int | float):
            continue
        if not 0 < part_total < whole_total:
            continue
        ratio = plain(row["ratio_pct"])
        values = {
            "part": part,
            "whole": whole,
            "part_total": part_total,
            "whole_total": whole_total,
            "ratio_pct": ratio,
        }
        if known is not None and (known[1], known[2]) == (part, whole):
            values["name"] = known[3]
        if days is not None:
            # Rental days over the cars on the books times the days of each month.
            values["whole_days"] = days[0]
        elif whole_column is not None and is_stock(whole_column) and as_of is None:
            # Churn: the cancellations over the members on the books at each date, summed
            # (member-months on monthly rows), not over any one date's level.
            values["whole_is_stock"] = True
        statement = (
            f"The share of {part} in {whole} is "
            f"{fmt_pct(ratio if isinstance(ratio, float) else None)} "
            f"({fmt_number(part_total)} of {fmt_number(whole_total)})."
        )
        rows = [{k: plain(v) for k, v in row.items()}]
        if dimension is not None:
            sql, rows, listed = _per_segment(
                table, dimension, select, where, list(params), plan.top_n
            )
            statement += listed
        columns = [part, whole, dimension, *(f.column for f in plan.filters)]
        fact = _fact("ratio", statement, values, columns, sql, rows, params)
        if as_of is not None:
            fact.as_of = as_of[2]
            fact.columns = list(dict.fromkeys([*fact.columns, str(as_of[2]["column"])]))
        return fact
    return None


# A count of days (or nights) sold: "diarias", "room_nights", "dias_locados".
_DAY_COUNTS = frozenset({"diarias", "diaria", "dias", "days", "nights", "noites", "pernoites"})
_PERIOD_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def _days_per_row(table: Table, profile: Profile, part: str, whole: str) -> tuple[str, str] | None:
    """(grain, SQL of the days each row covers) when ``part`` counts days sold and ``whole``
    is a stock (cars, rooms) on rows coarser than a day: a month's 57 cars are 57 x 31 car
    days to rent out, so the days sold are a share of that, not of the 57. None otherwise
    (daily rows: a night's rooms are that night's room nights already)."""
    column, stock = profile.column(part), profile.column(whole)
    if column is None or stock is None or not is_stock(stock):
        return None
    if not set(name_words(column.name)) & _DAY_COUNTS:
        return None
    _, _, main = main_columns(profile)
    if main is None:
        return None
    grain = natural_grain(table, main)
    t = f"CAST({quote_ident(main)} AS DATE)"
    if grain == "week":
        return grain, "7"
    if grain in _PERIOD_MONTHS:
        start = f"CAST(date_trunc('{grain}', {t}) AS DATE)"
        end = f"CAST({start} + INTERVAL {_PERIOD_MONTHS[grain]} MONTH AS DATE)"
        return grain, f"({end} - {start})"
    return None


def _per_segment(
    table: Table, dimension: str, select: str, where: str, params: list[Any], top_n: int
) -> tuple[str, list[dict[str, Scalar]], str]:
    """A ratio's ``select`` per ``dimension`` segment, highest first: its SQL, its rows and
    " By <dimension>: a 5.1%; b 4.8%." for the statement."""
    d = quote_ident(dimension)
    sql = (
        f"SELECT {d}, {select} FROM data "  # noqa: S608
        f"WHERE {where} AND {d} IS NOT NULL GROUP BY {d} "
        f"ORDER BY ratio_pct DESC NULLS LAST, {d} LIMIT {int(top_n)}"
    )
    rows = [{k: plain(v) for k, v in r.items()} for r in table.records(sql, params)]
    listed = "; ".join(f"{r[dimension]} {fmt_pct(_float(r['ratio_pct']))}" for r in rows)
    return sql, rows, f" By {dimension}: {listed}."


def _fact(
    kind: str,
    statement: str,
    values: dict[str, Scalar],
    columns: list[str | None],
    sql: str,
    rows: list[dict[str, Scalar]],
    params: list[Any],
) -> Fact:
    """A ``ratio`` or ``per`` fact, ranked with the plan's own facts."""
    fact = Fact(
        id="",
        kind=kind,
        statement=statement,
        values=values,
        columns=list(dict.fromkeys(c for c in columns if c)),
        sql=sql,
        rows=rows,
        params=[plain(v) for v in params],
    )
    fact.score = 0.9
    return fact


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# --- one amount per unit of another ("cost per order", "ticket médio por aluno") ----------------

_PER = frozenset({"per", "por", "each", "cada"})
# "Which class pays the least per MWh?": the money paid, per the unit named.
_PAYING = (
    "pay", "paid", "paga", "pago", "cost", "cust", "charge", "cobr", "spend", "gast", "price",
    "preco", "tarif",
)  # fmt: skip
_SKIP = frozenset({"a", "o", "as", "os", "the", "de", "do", "da", "dos", "das", "um", "uma", "an"})
# "ticket médio", "mensalidade média por aluno": money per customer, order or student.
_TICKET = frozenset({"ticket", "tiquete", "mensalidade", "tuition", "fee", "fees"})


def _numeric_named(words: list[str], profile: Profile) -> list[ColumnProfile]:
    named = named_columns(" ".join(words), profile, any_word=True) if words else []
    columns = [profile.column(n) for n in named]
    return [c for c in columns if c is not None and c.kind == "numeric" and not c.masked]


_SOLD = frozenset({"sold", "vendidos", "vendidas", "vendido", "vendida"})


def _units_sold(profile: Profile) -> list[ColumnProfile]:
    """The count of units sold (``units_sold``, ``itens_vendidos``), when the data has one."""
    return [
        c
        for c in profile.columns
        if c.kind == "numeric" and not c.masked and not c.money and _SOLD & set(name_words(c.name))
    ][:1]


def _names_a_value(word: str, profile: Profile) -> bool:
    """Whether ``word`` (or its singular) is a word of a categorical column's value."""
    forms = variants(word)
    return any(
        forms & variants(w)
        for c in profile.columns
        if c.kind == "categorical" and not c.masked
        for v, _ in c.top
        for w in name_words(str(v).lower())
    )


# Units a question may divide by, and the columns' units they convert from: (dimension,
# factor to the dimension's base unit). "preço por Wp" over ``system_kwp``: per watt, a
# thousandth of a kWp.
_UNITS: dict[str, tuple[str, float]] = {
    "w": ("power", 1.0), "wp": ("power", 1.0), "watt": ("power", 1.0), "watts": ("power", 1.0),
    "kw": ("power", 1e3), "kwp": ("power", 1e3), "mw": ("power", 1e6), "mwp": ("power", 1e6),
    "gw": ("power", 1e9), "wh": ("energy", 1.0), "kwh": ("energy", 1e3),
    "mwh": ("energy", 1e6), "gwh": ("energy", 1e9), "g": ("mass", 1.0), "grama": ("mass", 1.0),
    "gramas": ("mass", 1.0), "gram": ("mass", 1.0), "grams": ("mass", 1.0),
    "kg": ("mass", 1e3), "kilo": ("mass", 1e3), "kilos": ("mass", 1e3), "quilo": ("mass", 1e3),
    "quilos": ("mass", 1e3), "t": ("mass", 1e6), "ton": ("mass", 1e6), "tons": ("mass", 1e6),
    "tonne": ("mass", 1e6), "tonnes": ("mass", 1e6), "tonelada": ("mass", 1e6),
    "toneladas": ("mass", 1e6), "km": ("length", 1e3), "metro": ("length", 1.0),
    "metros": ("length", 1.0), "meter": ("length", 1.0), "meters": ("length", 1.0),
}  # fmt: skip


def _unit_of(column: ColumnProfile) -> tuple[str, float] | None:
    """The (dimension, factor) of the unit a numeric column's name ends in (``system_kwp``,
    ``peso_kg``), or None."""
    words = name_words(column.name)
    return _UNITS.get(words[-1]) if words and column.kind == "numeric" else None


def _per_unit_column(word: str, profile: Profile) -> list[ColumnProfile]:
    """The measure counted in another unit of what ``word`` names ("Wp": ``system_kwp``),
    when exactly one is."""
    asked = _UNITS.get(word)
    if asked is None:
        return []
    found = [
        c
        for c in profile.columns
        if not c.masked and not c.money and (unit := _unit_of(c)) and unit[0] == asked[0]
    ]
    return found if len(found) == 1 else []


def unit_scale(question: str, profile: Profile, column: str) -> tuple[str, float] | None:
    """(the unit as the question writes it, the factor) when "<X> per <unit>" divides by
    ``column`` counted in another unit of the same kind ("por Wp" over ``system_kwp``: Wp,
    1000, the kWp times a thousand); None when it names the column's own unit or none."""
    measured = profile.column(column)
    own = _unit_of(measured) if measured is not None else None
    if own is None:
        return None
    words = name_words(question)
    for i, word in enumerate(words[:-1]):
        if word not in _PER:
            continue
        unit = _UNITS.get(words[i + 1])
        if unit is not None and unit[0] == own[0] and unit[1] != own[1]:
            written = {w.lower(): w for w in re.findall(r"\w+", question)}
            return written.get(words[i + 1], words[i + 1]), own[1] / unit[1]
    return None


# Patient days (bed days): the beds occupied, summed over the days of daily rows.
_PATIENT_DAYS = frozenset(
    {("patient", "day"), ("patient", "days"), ("bed", "day"), ("bed", "days"),
     ("occupied", "bed", "day"), ("occupied", "bed", "days"), ("paciente", "dia"),
     ("pacientes", "dia"), ("leito", "dia"), ("leitos", "dia"), ("leito", "ocupado", "dia")}
)  # fmt: skip


def _per_pair(question: str, profile: Profile) -> tuple[str, str] | None:
    """The (numerator, denominator) columns of "<X> per <Y>" where Y names a numeric column
    (a count of orders, members, visits): "por canal" groups by a segment, it divides by
    nothing. X is the numeric column named just before, or the money for a "ticket"."""
    words = name_words(question)
    for i, word in enumerate(words):
        if word not in _PER or i + 1 >= len(words):
            continue
        j = i + 1
        while j < len(words) and words[j] in _SKIP:
            j += 1
        below = _numeric_named(words[j : j + 1], profile)
        # "preço médio por Wp": the capacity counted in kWp, in another unit.
        below = below or _per_unit_column(words[j], profile)
        if tuple(words[j : j + 2]) in _PATIENT_DAYS or tuple(words[j : j + 3]) in _PATIENT_DAYS:
            # "nursing hours per patient day": a patient in a bed for a day is a bed occupied
            # on a day's row, so the patient days are the occupied beds summed over the days.
            occupied = _role(profile, "occupied")
            below = [occupied] if occupied is not None else []
        # "per technician hour", "por OS concluída": the column both words name.
        second = _numeric_named(words[j + 1 : j + 2], profile)
        both = [c for c in second if c in below]
        both += [
            c for c in _numeric_named(words[j : j + 2], profile) if c in second and c not in both
        ]
        # "unidades por linha": the lines picked (a flow), not the backlog of lines (a stock);
        # "milhas por corrida": the trips completed, not those requested or cancelled.
        # "receita por cliente" with new, churned and active customers: per the customers on
        # the books (ARPU), not those who came or left in the month.
        below.sort(key=lambda c: (not on_the_books(c), is_stock(c), outcome_rank(c)))
        below = both[:1] + [c for c in below if c not in both[:1]]
        before = [w for w in words[max(0, i - 3) : i] if w not in _SKIP]
        if not below and any(w.startswith(_PAYING) for w in before) and j < len(words):
            # "the price we get per pastry" (a value of ``product_line``): per unit sold.
            below = _units_sold(profile) if _names_a_value(words[j], profile) else []
        if not below:
            continue
        if set(before) & _TICKET or (
            not _numeric_named(before, profile) and any(w.startswith(_PAYING) for w in before)
        ):
            # The money that comes in (receita, revenue, vendas), not what goes out.
            money = [c for c in profile.columns if c.kind == "numeric" and c.money]
            money.sort(key=lambda c: not names_sales(c.name))
            above = money[:1]
        else:
            above = [c for c in _numeric_named(before, profile) if c.name != below[0].name]
            if not above:
                # "quantos litros de diesel cada caminhão coloca em média por abastecimento":
                # the quantity named further back in the clause.
                further = [w for w in words[max(0, i - 9) : max(0, i - 3)] if w not in _SKIP]
                above = [c for c in _numeric_named(further, profile) if c.name != below[0].name]
        if above:
            return above[0].name, below[0].name
    return None


_LENGTH = frozenset({"length", "duration", "duracao", "tempo", "time"})
_TIME_UNITS = frozenset(
    {"hours", "horas", "hour", "hora", "hrs", "minutes", "minutos", "min", "mins", "days", "dias",
     "seconds", "segundos", "duration", "duracao"}
)  # fmt: skip


def length_pair(question: str, profile: Profile) -> tuple[str, str] | None:
    """(time column, count column) of "the average booking length in hours", "a duração
    média das reservas": the hours booked over the bookings, not the average of either."""
    words = [w for w in name_words(question) if w not in _SKIP]
    thing: str | None = None
    for i, word in enumerate(words[:-2]):
        if word in _AVERAGE and words[i + 2] in _LENGTH:  # average booking length
            thing = words[i + 1]
        elif word in _LENGTH and words[i + 1] in _AVERAGE:  # duração média das reservas
            thing = words[i + 2]
        if thing is not None:
            break
    if thing is None:
        return None
    counted = [c for c in _numeric_named([thing], profile) if _additive(c) and not is_stock(c)]
    times = [
        c
        for c in profile.columns
        if c.kind == "numeric" and not c.masked and set(name_words(c.name)) & _TIME_UNITS
    ]
    if not counted or not times:
        return None
    # The hours of the bookings ("booked_hours"), not the hours there were to book.
    # "booked" and "booking" share their first four letters.
    related = [
        c
        for c in times
        if any(
            _stems_meet(w, thing) or (len(w) >= 4 and w[:4] == thing[:4])
            for w in name_words(c.name)
        )
    ]
    chosen = related or (times if len(times) == 1 else [])
    if not chosen or chosen[0].name == counted[0].name:
        return None
    return chosen[0].name, counted[0].name


def per_fact(
    table: Table,
    profile: Profile,
    plan: Plan | None,
    question: str,
    dimension: str | None = None,
) -> Fact | None:
    """The ``per`` fact of "<X> per <Y>": the sum of X over the sum of Y (``values``:
    ``numerator``, ``denominator``, their totals and ``per_value``), per segment of
    ``dimension`` in ``rows`` when one is named (lowest first: a cost per order is better
    low, and both ends are there); None when the question asks for none."""
    known = jargon(question, profile)
    pair = (known[1], known[2]) if known is not None and known[0] == "per" else None
    pair = pair or _per_pair(question, profile) or length_pair(question, profile)
    if pair is None:
        return None
    top, bottom = pair
    filters = plan.filters if plan is not None else []
    conditions, params = filter_conditions(profile, filters)
    where = " AND ".join(conditions) if conditions else "true"
    a, b = quote_ident(top), quote_ident(bottom)
    unit = unit_scale(question, profile, bottom)
    below = f"sum({b}) * {unit[1]!r}" if unit is not None else f"sum({b})"
    select = (
        f"sum({a}) AS numerator_total, {below} AS denominator_total, "
        f"sum({a}) / nullif({below}, 0) AS per_value"
    )
    sql = f"SELECT {select} FROM data WHERE {where}"  # noqa: S608
    row = table.records(sql, list(params))[0]
    value = plain(row["per_value"])
    if not isinstance(value, int | float):
        return None
    rows = [{k: plain(v) for k, v in row.items()}]
    per = f"{unit[0]} ({bottom} x {fmt_number(unit[1])})" if unit is not None else bottom
    statement = f"{top} per {per} is {fmt_number(value)}."
    if dimension is not None:
        sql, rows, listed = _per_breakdown(table, select, where, params, dimension)
        statement += listed
    values = {
        "numerator": top,
        "denominator": bottom,
        "numerator_total": plain(row["numerator_total"]),
        "denominator_total": plain(row["denominator_total"]),
        "per_value": value,
    }
    if known is not None and (known[1], known[2]) == pair:
        values["name"] = known[3]
    if unit is not None:
        # "per Wp" over kWp: the denominator in the question's unit, times the factor.
        values["unit"], values["unit_factor"] = unit
    columns = [top, bottom, dimension, *(f.column for f in filters)]
    return _fact("per", statement, values, columns, sql, rows, params)


def _per_breakdown(
    table: Table,
    select: str,
    where: str,
    params: list[Any],
    dimension: str,
    key: str = "per_value",
    highest_first: bool = False,
) -> tuple[str, list[dict[str, Scalar]], str]:
    """A ``per`` fact's value (``key``) per segment of ``dimension``, lowest first (a cost per
    order is better low, and both ends are there) unless ``highest_first``: its SQL, its rows
    and the sentence that lists them (" By loja: A 1.50; B 2.00.")."""
    d = quote_ident(dimension)
    order = f"{key} DESC" if highest_first else f"{key} NULLS LAST"
    sql = (
        f"SELECT {d}, {select} FROM data WHERE {where} AND {d} IS NOT NULL "  # noqa: S608
        f"GROUP BY {d} ORDER BY {order}, {d} LIMIT 20"
    )
    rows = [{k: plain(v) for k, v in r.items()} for r in table.records(sql, list(params))]
    listed = "; ".join(f"{r[dimension]} {fmt_number(r[key])}" for r in rows)
    return sql, rows, f" By {dimension}: {listed}."


# --- an average of averages, weighted by what each row averages ---------------------------------

_MEAN_NAME = frozenset({"medio", "media", "avg", "mean", "average"})


def _weight_of(profile: Profile, column: ColumnProfile) -> ColumnProfile | None:
    """The column a row's average time is over (``os_concluidas`` for
    ``tempo_medio_reparo_dias``): the one count of things done beside it (a time is measured
    on the orders completed, the trips made), when the data has exactly one; else None."""
    words = set(name_words(column.name))
    if not words & _MEAN_NAME or not words & _TIME_UNITS or column.kind != "numeric":
        return None
    done = [
        c
        for c in profile.columns
        if not c.masked
        and c.name != column.name
        and _additive(c)
        and _counted(c)
        and not c.money
        and outcome_rank(c) == 0
    ]
    return done[0] if len(done) == 1 else None


def weighted_fact(
    table: Table,
    profile: Profile,
    plan: Plan | None,
    dimension: str | None = None,
) -> Fact | None:
    """The ``per`` fact of "o tempo médio de reparo da rede" where each row holds its own
    average (a month's mean repair days over its orders): the rows' averages weighted by the
    orders each is over, sum(time x orders) / sum(orders), not the mean of the rows, which
    gives a month of 3 slow warranty orders the weight of one of 300 quick revisions.
    ``values`` are a ``per`` fact's with ``weighted`` true; per segment of ``dimension`` in
    ``rows`` (lowest first). None when the plan's one measure is no such column's average."""
    if plan is None or len(plan.measures) != 1:
        # "How many tickets, how many resolved, and the resolution rate?": the aggregate
        # holds every part; an average asked beside them keeps its place there.
        return None
    averaged = [
        c for m in plan.measures if m.agg == "avg" and (c := profile.column(m.column)) is not None
    ]
    pairs = [(c, found) for c in averaged if (found := _weight_of(profile, c)) is not None]
    if not pairs:
        return None
    column, weight = pairs[0]
    conditions, params = filter_conditions(profile, plan.filters)
    where = " AND ".join(conditions) if conditions else "true"
    a, w = quote_ident(column.name), quote_ident(weight.name)
    select = (
        f"sum(CAST({a} AS DOUBLE) * {w}) AS numerator_total, sum({w}) AS denominator_total, "
        f"sum(CAST({a} AS DOUBLE) * {w}) / nullif(sum({w}), 0) AS per_value"
    )
    kept = f"{where} AND {a} IS NOT NULL AND {w} IS NOT NULL"
    sql = f"SELECT {select} FROM data WHERE {kept}"  # noqa: S608
    row = {k: plain(v) for k, v in table.records(sql, list(params))[0].items()}
    value = row["per_value"]
    if not isinstance(value, int | float):
        return None
    rows = [row]
    statement = f"{column.name} weighted by {weight.name} is {fmt_number(value)}."
    if dimension is not None:
        sql, rows, listed = _per_breakdown(table, select, kept, params, dimension)
        statement += listed
    values: dict[str, Scalar] = {
        "numerator": column.name,
        "denominator": weight.name,
        "weighted": True,
        **row,
    }
    columns = [column.name, weight.name, dimension, *(f.column for f in plan.filters)]
    return _fact("per", statement, values, columns, sql, rows, params)


# --- one total less another ("saldo", "net", "diferença") --------------------------------------

# "quanto ficou em aberto", "outstanding": what was billed and not received.
_NET = frozenset(
    {"saldo", "net", "liquido", "liquida", "diferenca", "difference", "balanco", "balance",
     "aberto", "outstanding", "restante", "remaining", "pendente", "unpaid"}
)  # fmt: skip
_OUTFLOW = _ROLES["cancellations"] | frozenset(
    {"custo", "custos", "cost", "costs", "despesa", "despesas", "expense", "expenses", "gasto",
     "gastos", "spend", "devolucoes", "returns", "refunds", "saidas", "perdas", "losses",
     "descontos", "discounts", "estornos", "chargebacks", "desligamentos", "demissoes"}
)  # fmt: skip


def difference_fact(
    table: Table, profile: Profile, plan: Plan | None, question: str
) -> Fact | None:
    """The ``difference`` fact of "quantas matrículas e cancelamentos? E o saldo?": the first
    summed measure the plan names less the second (what goes out, cancellations or costs, is
    the one taken away), within the plan's filters. ``values``: ``minuend``, ``subtrahend``,
    their totals and ``difference``. None when the question asks for no net or balance, when
    the plan sums other than two additive measures, or when a column is itself the balance."""
    words = set(name_words(question))
    if plan is None or not words & _NET:
        return None
    summed = [m.column for m in plan.measures if m.agg == "sum" and m.column != "*"]
    summed = list(dict.fromkeys(c for c in summed if _additive(profile.column(c))))
    if len(summed) != 2 or any(_words(c) & _NET for c in profile.columns if not c.masked):
        return None
    top, bottom = summed
    if set(name_words(top)) & _OUTFLOW and not set(name_words(bottom)) & _OUTFLOW:
        top, bottom = bottom, top
    conditions, params = filter_conditions(profile, plan.filters)
    where = " AND ".join(conditions) if conditions else "true"
    a, b = quote_ident(top), quote_ident(bottom)
    sql = (
        f"SELECT sum({a}) AS minuend_total, sum({b}) AS subtrahend_total, "  # noqa: S608
        f"sum({a}) - sum({b}) AS difference FROM data WHERE {where}"
    )
    row = {k: plain(v) for k, v in table.records(sql, list(params))[0].items()}
    if not all(isinstance(row[k], int | float) for k in row):
        return None
    values: dict[str, Scalar] = {"minuend": top, "subtrahend": bottom, **row}
    statement = (
        f"{top} less {bottom} is {fmt_number(row['difference'])} "
        f"({fmt_number(row['minuend_total'])} - {fmt_number(row['subtrahend_total'])})."
    )
    columns: list[str | None] = [top, bottom, *(f.column for f in plan.filters)]
    return _fact("difference", statement, values, columns, sql, [row], params)


# --- an amount per day, week or month ("how many lines do we pick per day?") --------------------

_PERIOD_UNITS: dict[str, str] = {
    "day": "day", "dia": "day", "week": "week", "semana": "week", "month": "month",
    "mes": "month",
}  # fmt: skip
_PER_PERIOD_BEFORE = frozenset({"per", "por", "ao", "a", "each", "cada"})
_DAILY = {"daily": "day", "diario": "day", "diaria": "day", "weekly": "week", "semanal": "week",
          "monthly": "month", "mensal": "month"}  # fmt: skip
_AVERAGE = frozenset({"average", "avg", "mean", "media", "medio", "typically", "typical"})


def _per_period(question: str) -> str | None:
    """The period of "per day", "por semana", "média diária" in a question that asks for an
    average, or None."""
    words = name_words(question)
    if not set(words) & _AVERAGE:
        return None
    for i, word in enumerate(words):
        if word in _PERIOD_UNITS and i and words[i - 1] in _PER_PERIOD_BEFORE:
            return _PERIOD_UNITS[word]
        if word in _DAILY and i and words[i - 1] in ("media", "average", "medio"):
            return _DAILY[word]
        if word in _DAILY and words[i + 1 : i + 2] in (["media"], ["medio"]):
            return _DAILY[word]  # "o censo diário médio"
    return None


def per_period_fact(
    table: Table, profile: Profile, plan: Plan | None, question: str
) -> Fact | None:
    """The ``per`` fact of "on average, how many lines does DC Extrema pick per day?": the
    plan's measure summed, over the number of days (weeks, months) the data has rows on,
    within the plan's filters; not the average row (a wave, an order), which is the
    aggregate's. None when the question asks for no average per period, or the rows are no
    finer than the period (monthly rows: the average month is the aggregate's)."""
    unit = _per_period(question)
    _, _, main = main_columns(profile)
    temporal = profile.column(main) if main is not None else None
    if unit is None or plan is None or temporal is None:
        return None
    summed = [m.column for m in plan.measures if m.column != "*"]
    column = profile.column(summed[0]) if summed else None
    level = column is not None and is_stock(column) and _counted(column)
    if column is None or not (_additive(column) or level):
        return None
    conditions, params = filter_conditions(profile, plan.filters)
    where = " AND ".join(conditions) if conditions else "true"
    a, t = quote_ident(column.name), quote_ident(temporal.name)
    periods = f"count(DISTINCT date_trunc('{unit}', CAST({t} AS TIMESTAMP)))"
    if level:
        # "the average daily census": a level (beds occupied) adds up across the segments on
        # each date and is averaged over the dates, never summed across them: every segment's
        # level summed, over the dates the data has, when its dates are the period asked
        # (daily rows for a daily average; monthly rows are no weeks, and the average of a
        # month's days is no monthly sum).
        if natural_grain(table, temporal.name) != unit:
            return None
        periods = f"count(DISTINCT {t})"
    sql = (
        f"SELECT sum({a}) AS numerator_total, {periods} AS denominator_total, "  # noqa: S608
        f"sum({a}) / nullif({periods}, 0) AS per_value, count(*) AS row_count "
        f"FROM data WHERE {where}"
    )
    row = {k: plain(v) for k, v in table.records(sql, list(params))[0].items()}
    value, rows_count, count = row["per_value"], row.pop("row_count"), row["denominator_total"]
    if (
        not isinstance(value, int | float)
        or not isinstance(count, int)
        or not isinstance(rows_count, int)
    ):
        return None
    if rows_count <= count:
        return None  # one row per period at most: the average row is the average period
    values: dict[str, Scalar] = {
        "numerator": column.name,
        "denominator": unit,
        "per_period": unit,
        **row,
    }
    if level:
        values["level"] = True  # the level on an average day, not an amount done per day
    statement = (
        f"{column.name} per {unit} is {fmt_number(value)} "
        f"({fmt_number(row['numerator_total'])} over {count} {unit}s)."
    )
    columns: list[str | None] = [column.name, temporal.name, *(f.column for f in plan.filters)]
    return _fact("per", statement, values, columns, sql, [row], params)


# --- a rate of rows: the share of the rows that hold one value ------------------------------

_YES = frozenset({"yes", "sim", "y", "s", "true", "1", "t"})
_STEM = 6  # "cancellation", "cancelamento", "cancelado" and ``Cancelled`` share "cancel"


def _stems_meet(word: str, other: str) -> bool:
    """Whether two words start alike ("cancelamento", ``Cancelled``) or are synonyms in the
    other language ("devolução", ``returned``)."""
    if len(word) >= _STEM and len(other) >= _STEM and word[:_STEM] == other[:_STEM]:
        return True
    forms, others = variants(word), variants(other)
    groups = frozenset().union(*(synonym_groups(f) for f in forms))
    return bool(groups) and any(synonym_groups(f) & groups for f in others)


def rated_value(question: str, profile: Profile, skip: str | None = None) -> tuple[str, str] | None:
    """The (column, value) whose share of the rows ``question`` asks for, when one row is one
    thing (a project, a contract): "the cancellation rate" on a ``status`` holding
    ``Cancelled``, "% dos projetos foi financiada" on a yes/no ``financed`` (its yes value).
    A value is named by a word that starts like it; of several, the one nearest the word of
    rate. None when the question asks for no rate or share, or names no such value; ``skip``
    is a column that ranks (the dimension), never the one rated."""
    words = name_words(compounds(_fold(question)))
    marks = [
        i
        for i, w in enumerate(words)
        if w in _RATE_WORDS or w in _SHARE_WORDS or w in ("share", "proporcao", "fraction")
    ]
    if "%" in question:
        marks.append(len(words))
    if not marks:
        return None
    found: list[tuple[int, str, str]] = []  # (distance to a word of rate, column, value)
    for column in profile.columns:
        if column.masked or column.name == skip or column.kind not in ("categorical", "boolean"):
            continue
        values = [str(v) for v, _ in column.top]
        if not values or len(values) > 12:
            continue
        own = [w for w in name_words(column.name) if len(w) >= _STEM]
        # "on-time" (one word, "ontime") for ``entregue_no_prazo``: a synonym of any of its words.
        groups = frozenset().union(
            *(synonym_groups(v) for w in name_words(column.name) for v in variants(w))
        )
        yes = next((v for v in values if v.strip().lower() in _YES), None)
        for i, word in enumerate(words):
            said = any(_stems_meet(word, w) for w in own) or any(
                synonym_groups(v) & groups for v in variants(word)
            )
            if yes is not None and len(values) == 2 and said:
                found.append((min(abs(i - m) for m in marks), column.name, yes))
            for value in values:
                value_words = name_words(value)
                if len(value_words) == 1 and _stems_meet(word, value_words[0]):
                    found.append((min(abs(i - m) for m in marks), column.name, value))
    if not found:
        return None
    _, column_name, value = min(found)
    return column_name, value


# The words of a date column's name that say it is a date ("data_desligamento", "churn_date").
DATE_NAME_WORDS = frozenset({"data", "date", "dt", "at", "on", "em", "dia", "day", "de", "of"})


def rated_event(question: str, profile: Profile) -> str | None:
    """The date column of an event some rows had whose rate ``question`` asks for ("taxa de
    cancelamento" on ``data_cancelamento``, "churn rate" on ``churned_at``): a date column
    with empty values, named by a word of rate's neighbour; else None."""
    words = name_words(compounds(_fold(question)))
    if not set(words) & (_RATE_WORDS | _SHARE_WORDS):
        return None
    for column in profile.columns:
        if column.masked or column.kind != "temporal" or not column.nulls or not column.count:
            continue
        own = [w for w in name_words(column.name) if w not in DATE_NAME_WORDS]
        groups = frozenset().union(*(synonym_groups(v) for w in own for v in variants(w)))
        for word in words:
            if any(w == word or (len(w) >= _STEM and _stems_meet(word, w)) for w in own) or any(
                synonym_groups(v) & groups for v in variants(word)
            ):
                return column.name
    return None


def value_rate_fact(
    table: Table,
    profile: Profile,
    plan: Plan | None,
    dimension: str | None = None,
    question: str = "",
) -> Fact | None:
    """The ``ratio`` fact of the rows holding the value :func:`rated_value` finds over all
    the rows the plan's other filters keep (per ``dimension`` segment when given, highest
    first), or None. Its values have ``of_rows``, ``part_column`` and ``part_value``."""
    rated = rated_value(question, profile, skip=dimension)
    event = rated_event(question, profile) if rated is None else None
    if rated is None and event is None and dimension is not None:
        # "Qual % dos pedidos foi cancelado?": the share's own column is no breakdown of it.
        rated, dimension = rated_value(question, profile), None
    if rated is None and event is None:
        return None
    column, value = rated if rated is not None else (str(event), "")
    kept = [f for f in (plan.filters if plan is not None else []) if f.column != column]
    conditions, params = filter_conditions(profile, kept)
    where = " AND ".join(conditions) if conditions else "true"
    c = quote_ident(column)
    # "taxa de cancelamento" with ``data_cancelamento`` empty for members who stay: the rows
    # with that date.
    hit = f"{c} IS NOT NULL" if event is not None else f"CAST({c} AS VARCHAR) = ?"
    select = (
        f"count(*) FILTER (WHERE {hit}) AS part_total, count(*) AS whole_total, "
        f"100.0 * count(*) FILTER (WHERE {hit}) / nullif(count(*), 0) AS ratio_pct"
    )
    sql = f"SELECT {select} FROM data WHERE {where}"  # noqa: S608
    args = [*([] if event is not None else [value, value]), *params]
    row = table.records(sql, args)[0]
    part_total, whole_total = plain(row["part_total"]), plain(row["whole_total"])
    if not isinstance(part_total, int) or not isinstance(whole_total, int) or not whole_total:
        return None
    ratio = plain(row["ratio_pct"])
    # "cancellation rate": the word that named the value ("Cancelled") or its yes/no column
    # ("taxa de cancelamento" for ``Cancelado`` Sim).
    targets = [*name_words(value), *name_words(column)]
    named = next((w for w in name_words(question) if any(_stems_meet(w, t) for t in targets)), None)
    values: dict[str, Scalar] = {
        "part": f"{column} = {value}",
        "whole": "rows",
        "part_total": part_total,
        "whole_total": whole_total,
        "ratio_pct": ratio,
        "of_rows": True,
        "part_column": column,
        "part_value": value,
    }
    if event is not None:
        values["part"], values["part_dated"] = f"{column} filled", True
    if named is not None and asks_for_rate(question, profile):
        # Said as the question writes it: "devolução", not "devolucao".
        written = {"".join(name_words(w)): w.lower() for w in re.findall(r"\w+", question)}
        written |= {"noshow": "no-show", "ontime": "on-time"}  # words joined by compounds()
        values["name"] = written.get(named, named)
    statement = (
        f"The share of rows with {column} {value} is "
        f"{fmt_pct(ratio if isinstance(ratio, float) else None)} "
        f"({fmt_number(part_total)} of {fmt_number(whole_total)})."
    )
    rows = [{k: plain(v) for k, v in row.items()}]
    if dimension is not None:
        top_n = plan.top_n if plan else 10
        sql, rows, listed = _per_segment(table, dimension, select, where, args, top_n)
        statement += listed
    columns = [column, dimension, *(f.column for f in kept)]
    return _fact("ratio", statement, values, columns, sql, rows, args)


# --- the Net Promoter Score of a 0-10 answer ----------------------------------------------------

_NPS_WORDS = frozenset(
    {"nps", "promotores", "promotor", "promoters", "promoter", "detratores", "detrator",
     "detractors", "detractor", "neutros", "passives", "passivos"}
)  # fmt: skip
_SCORE_NAMES = frozenset(
    {"nota", "score", "nps", "recomendacao", "recommendation", "likelihood", "recommend",
     "resposta", "answer", "rating", "avaliacao"}
)  # fmt: skip


def _nps_score(profile: Profile) -> ColumnProfile | None:
    """The column of 0-10 answers ("how likely are you to recommend us?"): whole numbers
    from 0 to 10, named as a score (``nota``, ``score``, ``nps``) or the only such column."""
    scales = [
        c
        for c in profile.columns
        if c.kind == "numeric"
        and not c.masked
        and dtype_family(c.dtype) == "integer"
        and isinstance(c.min, int | float)
        and isinstance(c.max, int | float)
        and c.min >= 0
        and 7 <= c.max <= 10
    ]
    named = [c for c in scales if _words(c) & _SCORE_NAMES]
    return named[0] if named else (scales[0] if len(scales) == 1 else None)


def nps_fact(
    table: Table, profile: Profile, plan: Plan | None, question: str, dimension: str | None
) -> Fact | None:
    """The ``nps`` fact of "Qual o NPS por canal?": the share of answers of 9 or 10
    (promoters) less the share of 0 to 6 (detractors), in points from -100 to 100, with both
    counts and the answers, per segment of ``dimension`` (highest first) when one is named;
    None when the question does not ask for it or no column holds 0-10 answers."""
    if not set(name_words(compounds(_fold(question)))) & _NPS_WORDS:
        return None
    score = _nps_score(profile)
    if score is None:
        return None
    s = quote_ident(score.name)
    filters = plan.filters if plan is not None else []
    conditions, params = filter_conditions(profile, filters)
    where = " AND ".join([f"{s} IS NOT NULL", *conditions])
    select = (
        f"count(*) FILTER (WHERE {s} >= 9) AS promoters, "
        f"count(*) FILTER (WHERE {s} <= 6) AS detractors, count(*) AS answers, "
        f"100.0 * (count(*) FILTER (WHERE {s} >= 9) - count(*) FILTER (WHERE {s} <= 6)) "
        "/ count(*) AS nps"
    )
    sql = f"SELECT {select} FROM data WHERE {where}"  # noqa: S608
    row = {k: plain(v) for k, v in table.records(sql, list(params))[0].items()}
    answers = row.get("answers")
    if not isinstance(answers, int) or not answers:
        return None
    rows = [row]
    statement = (
        f"NPS of {score.name} is {fmt_number(row['nps'])}: {fmt_number(row['promoters'])} "
        f"promoters (9-10) and {fmt_number(row['detractors'])} detractors (0-6) of "
        f"{fmt_number(answers)} answers."
    )
    if dimension is not None:
        sql, rows, listed = _per_breakdown(
            table, select, where, params, dimension, key="nps", highest_first=True
        )
        statement += listed
    values: dict[str, Scalar] = {"score": score.name, **row}
    columns = [score.name, dimension, *(f.column for f in filters)]
    return _fact("nps", statement, values, columns, sql, rows, params)
