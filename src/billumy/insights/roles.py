"""Measure roles: which columns the facts measure, how each is aggregated (a flow is summed,
an average or a rate is averaged, a stock is taken at a moment), and which columns lead when
no question says (:func:`main_columns`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from billumy.insights.data import quote_ident
from billumy.insights.model import ColumnProfile, Profile
from billumy.insights.plan import Agg
from billumy.insights.profile import CATEGORY_MIN_DISTINCT, dtype_family, is_id_name, name_words

__all__ = [
    "average_weight",
    "default_agg",
    "dimension_columns",
    "is_stock",
    "main_columns",
    "metric_sql",
    "outcome_rank",
    "plan_agg",
]


_AVG_WORDS = {
    "age", "idade", "nps", "pct", "avg", "mean", "rate", "taxa", "ratio", "score", "nota",
    "rating", "avaliacao", "media", "margin", "margem", "price", "preco", "tempo", "time",
    "hours", "horas",
    "hour", "hora", "days", "dias", "minutes", "minutos", "seconds", "segundos", "duration",
    "duracao", "latency", "latencia", "discount", "desconto", "temperature", "temperatura",
    "satisfaction", "satisfacao", "csat", "percent", "percentage", "percentual", "porcentagem",
    "medio", "average", "min", "mins", "delay", "atraso", "lag", "speed",
    "velocidade", *("headcount", "saldo", "balance", "estoque", "inventory", "stock"),
    # a person's pay: the payroll is its sum, asked for by that word
    "salario", "salary", "salarios", "salaries", "wage", "wages", "remuneracao",
}  # fmt: skip
_HOUR_WORDS = frozenset({"hours", "horas", "hour", "hora", "hrs", "hh"})
_WORK_WORDS = frozenset(
    {"tecnicas", "tecnicos", "trabalhadas", "trabalho", "worked", "work", "labor", "labour",
     "billable", "faturaveis", "faturadas", "homem", "man", "apontadas", "logged", "produtivas",
     "extras", "overtime", "engineering", "engenharia", "consultoria", "voluntariado"}
)  # fmt: skip
_MEAN_WORDS = frozenset({"media", "medio", "avg", "mean", "average", "per", "por"})
# Stocks: levels at a moment (people on the payroll, units in the warehouse, money in the
# account), which add up across segments on one date but never across dates.
_STOCK_WORDS = {
    "headcount", "saldo", "balance", "estoque", "inventory", "stock", "employees",
    "funcionarios", "colaboradores", "efetivo", "assinantes", "subscribers", "ativos", "active",
    "matriculados", "enrolled", "inscritos", "backlog", "carteira", "vigentes", "ativas",
    "disponiveis", "available", "logged", "online", "capacity", "capacidade", "frota", "fleet",
    "beds", "leitos",
}  # fmt: skip
_MONEY_WORDS = {
    "revenue", "receita", "sales", "vendas", "venda", "valor", "value", "amount", "total",
    "faturamento", "montante", "lucro", "profit", "gmv", "income", "renda",
}  # fmt: skip


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
    if set(words) & _HOUR_WORDS and set(words) & _WORK_WORDS and not set(words) & _MEAN_WORDS:
        # "horas_tecnicas", "labor_hours", "horas_trabalhadas": hours of work add up.
        return "sum"
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
    (taken on the latest date, see :func:`~billumy.insights.planned.facts_for_plan`), else
    :func:`default_agg`. Salient facts, which read no question, keep :func:`default_agg` (a
    stock's average level)."""
    return "sum" if is_stock(column) else default_agg(column)


# What was done ("trips_completed", "calls_answered") and what was not ("trips_cancelled"):
# a quantity per trip is per trip made, an average wait is the answered calls' wait.
DONE_WORDS = frozenset(
    {"completed", "complete", "completas", "completadas", "concluidas", "concluidos",
     "concluida", "concluido", "finalizadas", "finalizados", "finished", "delivered",
     "entregues", "realizadas", "realizados", "fulfilled", "served", "atendidas", "atendidos",
     "done", "closed", "fechadas", "fechados", "resolved", "resolvidos", "resolvidas",
     "answered", "handled"}
)  # fmt: skip
NOT_DONE_WORDS = frozenset(
    {"cancelled", "canceled", "canceladas", "cancelados", "failed", "falhas", "lost",
     "perdidas", "perdidos", "rejected", "recusadas", "recusados", "abandoned", "abandonadas",
     "declined", "noshow", "noshows", "churned", "evadidos"}
)  # fmt: skip


def outcome_rank(column: ColumnProfile) -> int:
    """0 for what was done (``trips_completed``), 2 for what was not (``trips_cancelled``), 1
    for the rest (``trips_requested``)."""
    words = set(name_words(column.name))
    return 0 if words & DONE_WORDS else 2 if words & NOT_DONE_WORDS else 1


# A column that is itself an average of the things a row counts ("avg_wait_sec" of the hour's
# answered calls, "ticket_medio" of the day's orders), and one that is a rate on money
# ("taxa_media_mensal" of the month's contracts).
_AVERAGE_NAME = frozenset({"media", "medio", "avg", "mean", "average"})
_RATE_NAME = frozenset({"taxa", "rate", "juros", "interest", "pct", "percent", "percentual"})


_ON_BOOKS = frozenset(
    {"active", "ativos", "ativas", "vigentes", "matriculados", "enrolled", "inscritos", "current"}
)


def on_the_books(column: ColumnProfile) -> bool:
    """A count of the members held at a moment (``active_customers``, ``alunos_ativos``)."""
    return bool(_ON_BOOKS & set(name_words(column.name)))


def average_weight(profile: Profile, name: str) -> str | None:
    """The column an average column's rows weigh by, or None: rows that each average a
    different number of things (an hour of 300 calls, one of 20) do not weigh alike, so the
    average over rows is the sum of each row's average times its count over the counts, as
    the data's owner would compute it from the calls themselves.

    Only a column whose name says it is an average (``avg_wait_sec``, ``atraso_medio_min``)
    has one. A rate (``taxa_media_mensal``) weighs by the money it applies to
    (``valor_contratado``); any other average by a count of things (a flow, never a stock),
    what was done first (``calls_answered`` before ``calls_offered``, ``tickets_resolved``
    before ``tickets_opened``: the wait of the calls answered, the time of the tickets
    resolved), the abandoned or cancelled last."""
    column = profile.column(name)
    if column is None or column.kind != "numeric" or default_agg(column) != "avg":
        return None
    words = set(name_words(column.name))
    if not words & _AVERAGE_NAME:
        return None
    others = [
        c
        for c in profile.columns
        if not c.masked
        and c.kind == "numeric"
        and c.name != column.name
        and not is_id_name(c.name)
        and default_agg(c) == "sum"
        and not is_stock(c)
        and isinstance(c.min, int | float)
        and c.min >= 0
    ]
    if words & _RATE_NAME:
        money = [c for c in others if c.money]
        return money[0].name if money else None
    if column.money:
        # "mensalidade_media" beside ``alunos_ativos`` and ``matriculas_novas``: a fee is
        # paid by the members on the books, not by the month's newcomers.
        members = [
            c
            for c in profile.columns
            if not c.masked
            and c.kind == "numeric"
            and not c.money
            and dtype_family(c.dtype) == "integer"
            and on_the_books(c)
        ]
        if members:
            return members[0].name
    counts = [c for c in others if not c.money and dtype_family(c.dtype) == "integer"]
    counts.sort(key=outcome_rank)
    return counts[0].name if counts else None


@dataclass(frozen=True)
class _Metric:
    """A measure as facts compute it: ``column`` is ``"*"`` for the row count."""

    column: str
    agg: Agg
    dtype: str = "BIGINT"
    weight: str | None = None  # an average's weight (:func:`average_weight`)

    @property
    def sql(self) -> str:
        if self.column == "*":
            return "count(*)"
        c = quote_ident(self.column)
        if self.agg == "avg" and self.weight is not None:
            w = quote_ident(self.weight)
            return (
                f"sum(CAST({c} AS DOUBLE) * {w}) / "
                f"nullif(sum(CASE WHEN {c} IS NOT NULL THEN CAST({w} AS DOUBLE) END), 0)"
            )
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
        if self.agg == "avg" and self.weight is not None:
            return f"average {self.column} weighted by {self.weight}"
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


# Money coming in ("receita", "gross_revenue", "vendas"), ahead of money going out (costs).
_INCOME_STEMS = ("vend", "sale", "fatur", "receit", "revenue", "earn", "gmv", "mrr", "income")


def _measure_rank(column: ColumnProfile, position: int) -> tuple[bool, bool, bool, bool, int]:
    words = name_words(column.name)
    money = column.money or any(word in _MONEY_WORDS for word in words)
    income = money and any(w.startswith(_INCOME_STEMS) for w in words)
    # Money first (what comes in before what goes out), then flows (admissions), then levels
    # (staffed beds, a loan book's balance).
    return (default_agg(column) != "sum", not money, not income, is_stock(column), position)


def _roles(profile: Profile) -> _Roles:
    visible = [c for c in profile.columns if not c.masked]
    numeric = [(i, c) for i, c in enumerate(visible) if c.kind == "numeric"]
    numeric.sort(key=lambda pair: _measure_rank(pair[1], pair[0]))
    dims = [c for c in visible if c.kind in ("categorical", "boolean") and c.distinct >= 2]
    # A code kept as text ("cód_agência" of "0101") is the segments' key, not their name:
    # the column of names ("agência") leads.
    dims.sort(
        key=lambda c: (is_id_name(c.name), c.distinct > CATEGORY_MIN_DISTINCT, c.kind == "boolean")
    )
    temporal = [c for c in visible if c.kind == "temporal" and c.min != c.max]
    return _Roles(
        measures=[
            _Metric(c.name, default_agg(c), c.dtype, average_weight(profile, c.name))
            for _, c in numeric
        ],
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


def dimension_columns(profile: Profile) -> list[str]:
    """The columns a ranking may break the data down by, the main one first."""
    return [column.name for column in _roles(profile).dimensions]


def metric_sql(column: str, agg: Agg, dtype: str, profile: Profile | None = None) -> str:
    """The SQL aggregate of ``column`` as facts compute it (``fsum`` for float sums; with the
    ``profile``, an average column's average weighted, :func:`average_weight`)."""
    weight = average_weight(profile, column) if profile is not None and agg == "avg" else None
    return _Metric(column, agg, dtype, weight).sql
