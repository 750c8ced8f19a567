"""Grounded insights: facts computed by queries, narrative written by the model, numbers checked.

The flow of one request:

1. the data (inline records, columns or CSV, or a stored dataset) is loaded into DuckDB, keeping
   only the allowed columns; masked columns are profiled for counts only;
2. the question becomes a :class:`~billumy.insights.plan.Plan` through keyword rules, or,
   when they read nothing, through JSON-schema constrained output over the dataset's columns
   (never SQL from the model); Billumy builds and runs the queries; with no question, the
   most salient facts are chosen;
3. our own code writes the ``answer`` from the facts, in the question's language, and the
   facts' statements in the same language (:mod:`billumy.insights.answer`); it goes out first;
4. the model writes insights citing fact ids, in the asked language (JSON-schema constrained),
   when the narrative is on: as the request says, else as the ``insights_narrative`` setting
   says (``auto``: on for a model served upstream, off for the small embedded one);
5. the narrative is checked sentence by sentence (:mod:`billumy.insights.checker`): a sentence
   is kept only when every claim in it (numbers, segments, columns, periods, rank and direction
   words) agrees with a fact the insight cites; the others are dropped and counted. An insight
   is verified only when its kept text asserts at least one number, rank or direction, and
   one with nothing checkable left is dropped. Each insight is checked as soon as the model
   has finished it and streamed only then; nothing of the model's text goes out unchecked. An
   unusable narrative gives no insights (the answer already states the facts);
6. each insight gets a Vega-Lite chart of a fact it cites; the record is stored for history and
   for showing what changed when the same question runs on a newer dataset version.

The blocking parts (DuckDB, chart rendering) run in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import re
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pydantic_core
from pydantic import ValidationError

from billumy.auth import Principal
from billumy.errors import (
    BadRequestError,
    BillumyError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
)
from billumy.inference import InferenceService
from billumy.insights import anomalies, changes, charts, checker, data, profile, ratios, snapshots
from billumy.insights import question as questions
from billumy.insights.answer import Answer, Sentence, missing_columns, write_answer
from billumy.insights.datasets import Dataset, Datasets, new_id
from billumy.insights.formats import Formats, for_language
from billumy.insights.grains import coarser, natural_grain
from billumy.insights.model import Fact, Profile
from billumy.insights.naming import named_columns, names_a_dimension, names_sales
from billumy.insights.plan import (
    MAX_MEASURES,
    Filter,
    Grain,
    Measure,
    Plan,
    plan_schema,
    validate_plan,
)
from billumy.insights.planned import facts_for_plan
from billumy.insights.profile import name_words
from billumy.insights.roles import plan_agg
from billumy.insights.rules import ROW_SPANS, WEEKEND, names_a_measure, rule_order, rule_plan
from billumy.insights.salient import salient_facts
from billumy.insights.sources import Source, Sources, SourceTable, source_profile
from billumy.insights.statements import Context, describe
from billumy.language import LANGUAGE_NAMES, guess_language
from billumy.schemas.insights import DatasetUpload, InsightRequest
from billumy.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class _Clause:
    """One clause of a question answered on its own: its plan and the facts it produced."""

    text: str
    asked: questions.Question
    plan: Plan | None
    source: str
    facts: list[Fact]
    parts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.text,
            "plan": None if self.plan is None else self.plan.model_dump(),
            "plan_source": self.source,
            "facts": [f.id for f in self.facts],
        }


@dataclass
class _Split:
    """A question answered clause by clause (:meth:`InsightService._by_clause`): every
    clause's facts first, then the data's other notable facts, numbered f1, f2..."""

    clauses: list[_Clause]
    facts: list[Fact]

    def answer(self, fmt: Formats, prof: Profile, most: int) -> Answer:
        """Each clause's answer in turn, each fact described with its own clause's plan (its
        filters, its ranking) and a fact two clauses share said once."""
        sentences: list[Sentence] = []
        parts: list[dict[str, Any]] = []
        said: set[str] = set()
        language = "pt-BR" if fmt.language == "pt" else "en"
        for clause in self.clauses:
            ctx = Context(fmt, prof, clause.plan, {f.id for f in clause.facts})
            got = write_answer(
                question=clause.text, facts=clause.facts, ctx=ctx, most=most, parts=clause.parts
            )
            language = got.language
            sentences += [x for x in got.sentences if x.text not in said]
            said |= {x.text for x in got.sentences}
            parts += got.parts
        cited = {f.id for clause in self.clauses for f in clause.facts}
        plain = Context(fmt, prof)
        for fact in self.facts:
            if fact.id not in cited:
                fact.statement = describe(fact, plain)
        return Answer(language, sentences, parts)

    def as_list(self) -> list[dict[str, Any]]:
        return [clause.as_dict() for clause in self.clauses]


@dataclass
class _Clauses:
    """A question's clauses (:func:`questions.clauses`), each parsed once, and the measures
    (column, aggregate) the rules read in each; none when it asks one thing."""

    parsed: list[tuple[str, questions.Question]]
    named: set[tuple[str, str]]

    @classmethod
    def of(cls, question: str, prof: Profile) -> _Clauses:
        texts = questions.clauses(question)
        if len(texts) < 2:
            return cls([], set())
        named: set[tuple[str, str]] = set()
        for text in texts:
            read = rule_plan(text, prof)
            if read is not None and names_a_measure(text, prof):
                named |= {(m.column, m.agg) for m in read.measures if m.column != "*"}
        return cls([(text, questions.parse(text, prof)) for text in texts], named)

    def unmeasured(
        self, plans: list[Plan | None], facts: list[Fact], planned: set[str]
    ) -> set[tuple[str, str]]:
        """The measures the clauses name that the answer misses: no planned fact reads the
        column ("No posto Centro em janeiro: quantos litros, quantos abastecimentos e quanto
        faturou?" answered with the refuelings and the money only), or the ``plans`` read it
        with another aggregate ("How many work orders did Rio Verde open, and what was the
        average repair time?" averaging the work orders too)."""
        exact = {(m.column, m.agg) for plan in plans if plan for m in plan.measures}
        other = {m.column for plan in plans if plan for m in plan.measures}
        read_by = {c for f in facts if f.id in planned for c in f.columns}
        return {
            (column, agg)
            for column, agg in self.named
            if (column, agg) not in exact and (column in other or column not in read_by)
        }

    def misplaced(self, plan: Plan | None) -> int:
        """How many of ``plan``'s filters hold a value only a later clause names, and so
        belong to that clause alone: "For Bastrop East in March 2024: how much energy did it
        deliver, what was the industrial peak demand, and how much did we bill?" bills every
        class."""
        if plan is None or not self.parsed:
            return 0
        first = self.parsed[0][1].segments
        later = {
            (column, value)
            for _, asked in self.parsed[1:]
            for column, values in asked.segments.items()
            for value in values
        }
        return sum(
            1
            for f in plan.filters
            if (f.column, str(f.value)) in later and str(f.value) not in first.get(f.column, [])
        )

    def references(self) -> int:
        """How many clauses after a ranking point back at what it picked
        (:func:`_refers_back`), which a whole-question answer cannot resolve."""
        if not self.parsed or not self.parsed[0][1].has("rank"):
            return 0
        return sum(_refers_back(text, asked) for text, asked in self.parsed[1:])


def _filters(plan: Plan) -> set[tuple[str, str, str]]:
    return {(f.column, f.op, str(f.value)) for f in plan.filters}


def _totals(text: str, asked: questions.Question, plan: Plan | None, prof: Profile) -> bool:
    """Whether a clause asks only for totals ("quantos abastecimentos", "how much did we
    bill"): no ranking, trend, rate or anomaly, no segments."""
    return (
        plan is not None
        and not plan.dimensions
        and plan.period is None
        and all(p.kind in ("total", "filter") for p in asked.parts)
        and not ratios.asks_for_rate(text, prof)
        and ratios.jargon(text, prof) is None
        and anomalies.asked_direction(text) is None
    )


# Words that point back at what an earlier clause picked: "e quanto faturou dele?", "and
# how much did it bill?".
_BACK = frozenset(
    {"dele", "dela", "deles", "delas", "nele", "nela", "neles", "nelas", "it", "its", "they",
     "their", "them"}
)  # fmt: skip
_HOW_MUCH = frozenset({"quanto", "quanta", "quantos", "quantas", "como"})


def _refers_back(text: str, asked: questions.Question) -> bool:
    """Whether a later clause is about the segment the clause before it picked: a pronoun
    ("dele", "it"), or in Portuguese a verb with no subject after "quanto"/"como" ("e
    quanto faturou?", "e quantos hóspedes recebeu?": the hotel's, where "quanto faturamos?"
    is the business's). A clause naming its own segment is about that one."""
    if asked.segments:
        return False
    words = name_words(text)
    if set(words) & _BACK:
        return True
    if not words or words[0] not in _HOW_MUCH:
        return False
    verbs = words[1:3] if words[0] != "como" else words[1:2]
    return any(w == "teve" or (len(w) > 4 and w.endswith(("ou", "eu", "iu"))) for w in verbs)


def _top_segment(clause: _Clause) -> tuple[str, str] | None:
    """(column, value) of the segment a ranking clause picked: its ranking's first, or the
    highest (lowest, when it asks for the least) of its rate's segments."""
    for fact in clause.facts:
        if fact.kind == "breakdown" and fact.values.get("top_segment") is not None:
            plan = clause.plan
            if plan is not None and len(plan.dimensions) == 1:
                return plan.dimensions[0], str(fact.values["top_segment"])
    order = rule_order(clause.text)
    for fact in clause.facts:
        if fact.kind in ("ratio", "per") and fact.rows:
            key = "ratio_pct" if fact.kind == "ratio" else "per_value"
            dimension = next((c for c in fact.rows[0] if c in fact.columns), None)
            rated = [(float(v), r) for r in fact.rows if isinstance(v := r.get(key), int | float)]
            if dimension is None or not rated:
                continue
            _, pick = (min if order == "asc" else max)(rated, key=lambda pair: pair[0])
            return dimension, str(pick[dimension])
    return None


def _carried(plan: Plan, before: list[Filter], prof: Profile) -> Plan:
    """``plan`` with the filters of the clauses before it that it does not set itself: "Em
    abril, qual foi a receita e qual loja vendeu mais?" ranks April's stores. A filter on a
    column the clause ranks by is not carried: "qual ala" ranks every ward, not the UTI."""
    own = {f.column for f in plan.filters} | set(plan.dimensions)
    known = {c.name for c in prof.columns}
    added = [f for f in before if f.column not in own and f.column in known]
    if not added:
        return plan
    return plan.model_copy(update={"filters": [*plan.filters, *added]})


NARRATIVE_TOKENS = 400
PLAN_TOKENS = 160


@dataclass
class Loaded:
    """The data of one request, in DuckDB, with where it came from."""

    table: data.Table
    source: dict[str, Any]  # {"id", "version", "hash"} for datasets, {"hash"} inline
    masked: set[str] = field(default_factory=set)


def _narrative_schema(fact_ids: list[str], most: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "insights": {
                "type": "array",
                "minItems": 1,
                "maxItems": most,
                "items": {
                    "type": "object",
                    "properties": {
                        "title": {"type": "string", "maxLength": 120},
                        "text": {"type": "string", "maxLength": 600},
                        "facts": {
                            "type": "array",
                            "items": {"type": "string", "enum": fact_ids},
                            "minItems": 1,
                            "maxItems": 3,
                        },
                    },
                    "required": ["title", "text", "facts"],
                },
            },
            "summary": {"type": "string", "maxLength": 600},
        },
        "required": ["insights", "summary"],
    }


def _without_data_words(question: str, prof: Profile) -> str:
    """``question`` without the words of the data's segment values and column names; the
    question itself when that leaves no sign of a language."""
    names = {c.name for c in prof.columns} | {
        v for c in prof.columns if c.kind == "categorical" for v, _ in c.top
    }
    data_words = {w.lower() for name in names for w in re.findall(r"\w+", name)}
    kept = " ".join(w for w in re.findall(r"\w+|\S", question) if w.lower() not in data_words)
    return kept if guess_language(kept) else question


def _language(requested: str | None, question: str | None) -> str:
    if requested:
        low = requested.lower()
        if low.startswith("pt"):
            return "pt"
        if low.startswith("en"):
            return "en"
        raise BadRequestError("language must be 'pt', 'pt-BR' or 'en'")
    return guess_language(question or "") or "en"


_YEAR_WORDS = frozenset({"ano", "year", "yr", "exercicio"})
_MONTH_WORDS = frozenset({"mes", "month"})
DERIVED_PERIOD = "periodo"


def _period_key(table: data.Table, words: frozenset[str]) -> str | None:
    for name in table.columns:
        kind = profile.dtype_family(table.types[name])
        if (
            kind == "integer"
            and profile.is_ordinal_name(name)
            and set(profile.name_words(name)) & words
        ):
            return name
    return None


def derive_period(table: data.Table, masked: set[str]) -> data.Table:
    """A date column ``periodo`` made from integer year and month columns (``ano`` and
    ``mes``, ``year`` and ``month``), when the data has no date column: "em 2024", "no 4º
    trimestre", "mês a mês" and anomaly checks then work on data kept as year and month
    numbers. The year and month columns stay (ordinal keys, never summed); nothing is derived
    from masked columns or when the name is taken."""
    if any(profile.dtype_family(t) == "temporal" for t in table.types.values()):
        return table
    year = _period_key(table, _YEAR_WORDS)
    if year is None or year in masked or DERIVED_PERIOD in table.columns:
        return table
    month = _period_key(table, _MONTH_WORDS)
    if month in masked:
        month = None
    y = data.quote_ident(year)
    m = data.quote_ident(month) if month else "1"
    valid = f"{y} BETWEEN 1 AND 9999 AND {m} BETWEEN 1 AND 12"
    made = f"CASE WHEN {valid} THEN make_date(CAST({y} AS BIGINT), CAST({m} AS BIGINT), 1) END"
    return _with_column(table, made, DERIVED_PERIOD)


def _with_column(table: data.Table, expression: str, name: str) -> data.Table:
    """``table`` with a column ``name`` of ``expression`` over each row, added to its data
    (every ``derive_*`` makes its column so)."""
    table.query(
        f"CREATE OR REPLACE TABLE data AS SELECT *, {expression} "  # noqa: S608
        f"AS {data.quote_ident(name)} FROM data"
    )
    return table.refreshed()


_WEEKDAY_ASKED = re.compile(
    r"\bdias? da semana\b|\bday of (?:the )?week\b|\bdays of (?:the )?week\b|\bweekdays?\b"
    # A weekday named: "aos sábados", "na sexta-feira", "on Fridays" ("a segunda" alone may
    # be the second of something, so those need their "-feira" or a plural after aos/nas/às).
    r"|\b(?:domingos?|s[áa]bados?|(?:segunda|ter[çc]a|quarta|quinta|sexta)s?-feiras?)\b"
    r"|\b(?:aos|nas|[àa]s|nos) (?:segundas|ter[çc]as|quartas|quintas|sextas)\b"
    r"|\b(?:sundays?|mondays?|tuesdays?|wednesdays?|thursdays?|fridays?|saturdays?)\b"
    rf"|{WEEKEND.pattern}",
    re.IGNORECASE,
)
_WEEKDAYS = {
    "pt": ("domingo", "segunda", "terça", "quarta", "quinta", "sexta", "sábado"),
    "en": ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"),
}


# A line of an order: units and the price of one ("quantity", "unit_price"), no money total.
_UNITS_WORDS = frozenset(
    {"quantity", "quantidade", "qtd", "qtde", "qty", "quant", "units", "unidades", "itens",
     "items"}
)  # fmt: skip
_PRICE_WORDS = frozenset({"price", "preco", "unitario", "unit"})
_SALES_ASKED = re.compile(
    r"\b(?:receitas?|revenues?|faturamento|fatur\w*|vendas|sales|order value|valor (?:m[ée]dio )?"
    r"(?:do|dos|por) pedidos?|ticket|vendemos|vendeu|venderam|sold|sell|sells)\b",
    re.IGNORECASE,
)


def derive_revenue(
    table: data.Table, masked: set[str], question: str | None, language: str
) -> data.Table:
    """A money column ``receita`` / ``revenue`` of each row's units times its unit price
    (``quantity`` × ``unit_price``), made when the question asks for sales or revenue and the
    data has those two columns but no money column of sales; it keeps the price's currency.
    No discount is taken off: it is the gross revenue, which the answer's column says."""
    if not question or not _SALES_ASKED.search(question):
        return table
    numeric = [
        n
        for n, t in table.types.items()
        if profile.dtype_family(t) in ("integer", "float") and n not in masked
    ]
    if any(names_sales(n) and profile.money_of(n)[0] for n in numeric):
        return table
    units = [n for n in numeric if set(profile.name_words(n)) & _UNITS_WORDS]
    prices = [
        n
        for n in numeric
        if set(profile.name_words(n)) & _PRICE_WORDS
        and (profile.money_of(n)[0] or table.units.get(n) in ("BRL", "USD"))
    ]
    units = [n for n in units if n not in prices]
    name = "receita_bruta" if language == "pt" else "gross_revenue"
    if len(units) != 1 or len(prices) != 1 or name in table.columns:
        return table
    q, p = data.quote_ident(units[0]), data.quote_ident(prices[0])
    derived = _with_column(table, f"CAST({q} AS DOUBLE) * CAST({p} AS DOUBLE)", name)
    if prices[0] in table.units:
        derived.units[name] = table.units[prices[0]]
    return derived


_DURATION_ASKED = re.compile(
    r"\b(?:tempo|time|times|how long|longest|shortest|fastest|slowest|quickest|duration|"
    r"dura[çc][ãa]o|demor\w*|leva\w*|takes?|took|lead time|turnaround|ciclo|cycle|prazo)\b",
    re.IGNORECASE,
)
# The two moments of a thing: when it began (a ticket opened, an order placed) and ended.
_STARTS = frozenset(
    {"opened", "open", "created", "start", "started", "inicio", "abertura", "aberto", "aberta",
     "criado", "criada", "criacao", "submitted", "requested", "solicitacao", "checkin",
     "placed", "entrada", "begin", "began", "recebido", "received"}
)  # fmt: skip
_ENDS = frozenset(
    {"closed", "close", "resolved", "resolucao", "resolvido", "end", "ended", "fim", "termino",
     "fechamento", "fechado", "fechada", "finished", "concluido", "concluida", "conclusao",
     "completed", "done", "solved", "checkout", "delivered", "entregue", "entrega", "saida",
     "finalizado", "finalizada", "encerrado", "encerrada", "encerramento"}
)  # fmt: skip


def derive_duration(
    table: data.Table, masked: set[str], question: str | None, language: str
) -> data.Table:
    """A column of the time each row took, from its start to its end (``opened_at`` to
    ``closed_at``, ``data_abertura`` to ``data_fechamento``): hours when the columns hold
    times of day, else days (``duracao_horas``/``duration_hours``, ``duracao_dias``/
    ``duration_days``), made when the question asks how long or for a time and the data has
    exactly one such pair and no duration column; empty where the end is (still open)."""
    if not question or not _DURATION_ASKED.search(question):
        return table
    temporal = {
        n: t
        for n, t in table.types.items()
        if profile.dtype_family(t) == "temporal" and n not in masked
    }
    starts = [n for n in temporal if set(profile.name_words(n)) & _STARTS]
    ends = [n for n in temporal if set(profile.name_words(n)) & _ENDS and n not in starts]
    if len(starts) != 1 or len(ends) != 1:
        return table
    timed = all(temporal[n].upper().startswith("TIMESTAMP") for n in (starts[0], ends[0]))
    name = ROW_SPANS["pt" if language == "pt" else "en", timed]
    if name in table.columns or any(
        profile.dtype_family(t) in ("integer", "float")
        and set(profile.name_words(n)) & {"duracao", "duration", "tempo", "time"}
        for n, t in table.types.items()
    ):
        return table
    a, b = data.quote_ident(starts[0]), data.quote_ident(ends[0])
    span = (
        f"date_diff('second', CAST({a} AS TIMESTAMP), CAST({b} AS TIMESTAMP)) / 3600.0"
        if timed
        else f"CAST(date_diff('day', CAST({a} AS DATE), CAST({b} AS DATE)) AS DOUBLE)"
    )
    return _with_column(table, span, name)


_PLUS = re.compile(r"([^\W\d_][\w ]*?)\s*\+\s*([^\W\d_][\w ]*)")


def derive_sum(
    table: data.Table, masked: set[str], question: str | None, language: str
) -> data.Table:
    """A column of two number columns added, when the question writes them so ("o
    faturamento total (peças + mão de obra)"): ``valor_pecas + valor_mao_de_obra``, each
    side naming exactly one number column; empty values count as zero where the other side
    has one."""
    if not question or "+" not in question:
        return table
    match = _PLUS.search(question)
    if match is None:
        return table
    prof = profile.profile(table, masked=masked)
    numbers = {c.name for c in prof.columns if c.kind == "numeric" and not c.masked}
    sides = []
    for side, said in enumerate(match.groups()):
        # The words right beside the "+": "total (peças" is "peças".
        words = said.split()
        near = " ".join(words[-3:]) if side == 0 else " ".join(words[:4])
        named = [n for n in named_columns(near, prof, any_word=True) if n in numbers]
        if len(named) != 1:
            return table
        sides.append(named[0])
    if sides[0] == sides[1]:
        return table
    name = f"{sides[0]} + {sides[1]}"
    if name in table.columns:
        return table
    a, b = (data.quote_ident(n) for n in sides)
    added = (
        f"CASE WHEN {a} IS NULL AND {b} IS NULL THEN NULL "
        f"ELSE coalesce(CAST({a} AS DOUBLE), 0) + coalesce(CAST({b} AS DOUBLE), 0) END"
    )
    derived = _with_column(table, added, name)
    unit = table.units.get(sides[0])
    if unit is not None and unit == table.units.get(sides[1]):
        derived.units[name] = unit
    return derived


_ACTIVE_ASKED = re.compile(
    r"\b(?:ativ[oa]s?|active|current|vigentes?|remaining|restantes?)\b", re.IGNORECASE
)
_OPEN_ASKED = re.compile(
    r"\b(?:em aberto|abert[oa]s?|open|opened|pending|pendentes?|unresolved)\b", re.IGNORECASE
)
# Words of a date on which a thing ended: a ticket closed, a customer churned, a contract ended.
_ENDED = frozenset(
    {"closed", "close", "resolved", "resolucao", "end", "ended", "fim", "termino",
     "fechamento", "encerramento", "churn", "churned", "cancel", "cancelled", "canceled",
     "cancelamento", "cancelado", "desligamento", "demissao", "saida", "exit", "left",
     "termination", "terminated", "inativacao", "deactivated", "solved", "concluido",
     "conclusao", "finished"}
)  # fmt: skip


def derive_active(
    table: data.Table, masked: set[str], question: str | None, language: str
) -> data.Table:
    """A yes/no column of the rows whose end has not come (``churn_date``,
    ``data_desligamento``, ``closed_at`` empty), named as the question asks: ``open`` /
    ``em_aberto`` for "still open", "em aberto", else ``active`` / ``ativo``; made only when
    the question asks for them and the data has exactly one such date column with empty
    values. "How many active customers?" then keeps its yes rows."""
    if not question:
        return table
    opened = _OPEN_ASKED.search(question) is not None
    if not opened and _ACTIVE_ASKED.search(question) is None:
        return table
    ended = [
        n
        for n, t in table.types.items()
        if profile.dtype_family(t) == "temporal"
        and n not in masked
        and set(profile.name_words(n)) & _ENDED
    ]
    if len(ended) != 1:
        return table
    pt = language == "pt"
    name = ("em_aberto" if pt else "open") if opened else ("ativo" if pt else "active")
    if name in table.columns or any(n.lower() == name for n in table.columns):
        return table
    e = data.quote_ident(ended[0])
    if not table.query(f"SELECT count(*) FILTER (WHERE {e} IS NULL) FROM data")[0][0]:  # noqa: S608
        return table  # every row has ended: no column of ones that have not
    yes, no = ("sim", "não") if pt else ("yes", "no")
    return _with_column(table, f"CASE WHEN {e} IS NULL THEN '{yes}' ELSE '{no}' END", name)


_HOUR_ASKED = re.compile(
    r"\b(?:hora do dia|horas do dia|hor[áa]rios?|hour of (?:the )?day|hours of (?:the )?day|"
    r"time of (?:the )?day|what time|que horas|which hour|qual hora|peak hours?|"
    r"hor[áa]rio de pico)\b",
    re.IGNORECASE,
)


def derive_hour(
    table: data.Table, masked: set[str], question: str | None, language: str
) -> data.Table:
    """A column of the hour of the day (``hora``/``hour``: "08h", "08:00") of the
    data's one timestamp column, made when the question asks about hours of the day ("Which
    hour of the day has the most arrivals?") and the times are not all midnight."""
    if not question or not _HOUR_ASKED.search(question):
        return table
    timed = [
        n for n, t in table.types.items() if t.upper().startswith("TIMESTAMP") and n not in masked
    ]
    name = "hora" if language == "pt" else "hour"
    if len(timed) != 1 or name in table.columns:
        return table
    c = data.quote_ident(timed[0])
    if table.query(f"SELECT count(DISTINCT hour({c})) FROM data")[0][0] < 2:  # noqa: S608
        return table  # dates written as timestamps: no hours to compare
    label = f"lpad(CAST(hour({c}) AS VARCHAR), 2, '0') || '{'h' if language == 'pt' else ':00'}'"
    return _with_column(table, label, name)


def derive_weekday(
    table: data.Table, masked: set[str], question: str | None, language: str
) -> data.Table:
    """A column of weekday names (``dia_da_semana``: segunda, terça...; ``day_of_week``: Monday,
    Tuesday...) made from the data's date column when the question asks about days of the
    week ("Qual dia da semana vende mais?") and the dates fall on every weekday; the column's
    values are in the answer's language."""
    if not question or not _WEEKDAY_ASKED.search(question):
        return table
    dated = [
        n
        for n, t in table.types.items()
        if profile.dtype_family(t) == "temporal" and n not in masked
    ]
    name = "dia_da_semana" if language == "pt" else "day_of_week"
    if not dated or name in table.columns:
        return table
    d = data.quote_ident(dated[0])
    if table.query(f"SELECT count(DISTINCT dayofweek({d})) FROM data")[0][0] < 5:  # noqa: S608
        return table  # monthly or weekly dates: no weekday to compare (a clinic's Mon-Sat are)
    names = _WEEKDAYS[language]
    cases = " ".join(f"WHEN {i} THEN '{n}'" for i, n in enumerate(names))
    return _with_column(table, f"CASE dayofweek({d}) {cases} END", name)


def _profile(loaded: Loaded) -> Profile:
    """The profile of the loaded table; a source's comes from its sample and its count."""
    if isinstance(loaded.table, SourceTable):
        return source_profile(loaded.table, masked=loaded.masked)
    return profile.profile(loaded.table, masked=loaded.masked)


def _shown(facts: list[Fact], table: data.Table) -> list[dict[str, Any]]:
    """The facts as sent; a source's facts show the SQL that ran in the source."""
    shown = table.shown if isinstance(table, SourceTable) else {}
    out = []
    for fact in facts:
        item = fact.as_dict()
        if fact.sql in shown:
            item["sql"] = shown[fact.sql]
        out.append(item)
    return out


class AnalysisSlots:
    """At most ``limit`` insights requests doing DuckDB work at once in this process.

    Each one may take ``insights_threads`` cores and ``insights_memory_limit`` bytes, so a burst
    of them would starve every other request of CPU and the process of memory. One over the
    limit is refused at once (503 with ``Retry-After``) rather than queued: a queue of analyses
    would hold connections and memory for work the client may no longer want. Counting needs no
    lock: it happens on the event loop, with no await between the check and the increment."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """One slot for the ``with`` block, freed however the block ends (done, error,
        cancelled because the client went away); :class:`OverloadedError` if none is free."""
        if self.held >= self.limit:
            raise OverloadedError(
                "too many insights requests at once (insights_max_concurrent = "
                f"{self.limit}); try again shortly"
            )
        self.held += 1
        try:
            yield
        finally:
            self.held -= 1


class InsightService:
    def __init__(
        self, *, settings: Settings, inference: InferenceService, datasets: Datasets
    ) -> None:
        self.settings = settings
        self.inference = inference
        self.datasets = datasets
        self.slots = AnalysisSlots(settings.insights_max_concurrent)
        self.sources = Sources(settings.sources)
        self.limits = data.Limits(
            max_rows=settings.max_dataset_rows,
            max_columns=settings.max_dataset_columns,
            max_bytes=settings.max_dataset_bytes,
            # What DuckDB may use per request (billumy.insights.sandbox).
            max_decoded_bytes=settings.max_dataset_decoded_bytes,
            max_result_rows=settings.insights_max_result_rows,
            query_timeout_s=settings.insights_query_timeout,
            memory_limit_bytes=settings.insights_memory_limit,
            threads=settings.insights_threads,
            temp_directory=settings.insights_temp_dir or settings.data_dir / "tmp" / "duckdb",
            max_temp_bytes=settings.insights_max_temp_bytes,
        )

    # --- datasets ------------------------------------------------------------------------------

    async def upload(
        self,
        caller: Principal,
        *,
        content: bytes | None = None,
        fmt: str | None = None,
        inline: Any = None,
        dataset_id: str | None = None,
        name: str | None = None,
        user_id: str | None = None,
    ) -> tuple[Dataset, bool]:
        """Store uploaded data as a dataset (or its next version); True when a new version."""
        if dataset_id is not None:  # 404 before any work
            await self.datasets.get(caller.tenant, dataset_id)
        scratch = await asyncio.to_thread(self.datasets.scratch)

        def load() -> tuple[data.Table, dict[str, Any] | None]:
            if content is None:
                return self._load_inline(inline), None
            return self._load_bytes(content, fmt or "csv", scratch), None

        return await self._store(caller, load, dataset_id=dataset_id, name=name, user_id=user_id)

    async def snapshot(
        self, caller: Principal, body: DatasetUpload
    ) -> tuple[Dataset, bool, dict[str, Any]]:
        """The rows of a source's table that the body's filter picks, stored as a dataset (or
        its next version, unless they equal the latest): the dataset, True when a new version,
        and what was copied (:mod:`billumy.insights.snapshots`)."""
        assert body.source is not None
        found = self.sources.get(caller.tenant, body.source)  # another tenant's: 404 alike
        spec = found.table_config(body.table)
        snapshots.shape(body.filter)  # 400 for a malformed filter before any work
        if body.dataset_id is not None:
            await self.datasets.get(caller.tenant, body.dataset_id)
        origin: dict[str, Any] = {}

        def load() -> tuple[data.Table, dict[str, Any] | None]:
            taken = snapshots.take(
                found, spec, conditions=body.filter, columns=body.columns, limits=self.limits
            )
            origin.update(taken.origin)
            return taken.table, taken.origin

        name = body.name
        if name is None and body.dataset_id is None:
            name = f"{found.name}.{spec.name}"
        dataset, created = await self._store(
            caller, load, dataset_id=body.dataset_id, name=name, user_id=body.user_id
        )
        return dataset, created, origin

    async def _store(
        self,
        caller: Principal,
        load: Callable[[], tuple[data.Table, dict[str, Any] | None]],
        *,
        dataset_id: str | None,
        name: str | None,
        user_id: str | None,
    ) -> tuple[Dataset, bool]:
        """The table ``load`` makes (in a thread), hashed and written as Parquet, stored as a
        dataset version with where it came from; True when a new version."""
        scratch = await asyncio.to_thread(self.datasets.scratch)

        def prepare() -> tuple[Path, str, int, list[dict[str, str]], dict[str, Any] | None]:
            table, origin = load()
            with table:
                digest = data.dataset_hash(table)
                target = scratch / f"{new_id('ds')}.parquet"
                data.save_parquet(table, target)
                columns = [{"name": c, "type": table.types[c]} for c in table.columns]
                return target, digest, table.row_count, columns, origin

        target, digest, rows, columns, origin = await asyncio.to_thread(prepare)
        try:
            return await self.datasets.add_version(
                caller.tenant,
                dataset_id=dataset_id,
                name=name,
                user_id=user_id,
                parquet=target,
                digest=digest,
                rows=rows,
                columns=columns,
                origin=origin,
            )
        finally:
            target.unlink(missing_ok=True)

    def _load_bytes(self, content: bytes, fmt: str, scratch: Path) -> data.Table:
        if len(content) > self.limits.max_bytes:
            raise PayloadTooLargeError(
                f"the data is {len(content)} bytes; the limit is {self.limits.max_bytes}"
            )
        if fmt == "csv":
            return data.from_csv(content, self.limits)
        with tempfile.NamedTemporaryFile(dir=scratch, suffix=f".{fmt}") as handle:
            handle.write(content)
            handle.flush()
            return data.from_file(Path(handle.name), fmt, self.limits)  # type: ignore[arg-type]

    def _load_inline(self, value: Any) -> data.Table:
        if isinstance(value, str):
            return data.from_csv(value, self.limits)
        if isinstance(value, list):
            return data.from_records(value, self.limits)
        if isinstance(value, dict):
            return data.from_columns(value, self.limits)
        raise BadRequestError("data must be a list of records, an object of columns, or CSV text")

    async def _load(self, caller: Principal, req: InsightRequest) -> Loaded:
        given = [x for x in (req.data, req.dataset_id, req.source) if x is not None]
        if len(given) != 1:
            raise BadRequestError("send exactly one of data, dataset_id and source")
        if req.table is not None and req.source is None:
            raise BadRequestError("table goes with source")
        if req.source is not None:
            found = self.sources.get(caller.tenant, req.source)
            return await asyncio.to_thread(self._open_source, req, found)
        if req.dataset_id is None:
            return await asyncio.to_thread(self._open, req, None, {})
        dataset = await self.datasets.get(caller.tenant, req.dataset_id)
        chosen, path = await self.datasets.version(caller.tenant, dataset, req.dataset_version)
        source = {"id": dataset.id, "version": chosen.version, "hash": chosen.hash}
        return await asyncio.to_thread(self._open, req, path, source)

    def _open(self, req: InsightRequest, path: Path | None, source: dict[str, Any]) -> Loaded:
        """The table of a dataset's cached file, or of the request's inline data."""
        if path is not None:
            table = data.from_file(path, "parquet", self.limits)
        else:
            table = self._load_inline(req.data)
            source = {"hash": data.dataset_hash(table)}
        try:
            table = self._scope(table, req)
            table = derive_period(table, set(req.mask or []))
            language = _language(req.language, req.question) if req.question else "en"
            table = derive_weekday(table, set(req.mask or []), req.question, language)
            table = derive_hour(table, set(req.mask or []), req.question, language)
            table = derive_revenue(table, set(req.mask or []), req.question, language)
            table = derive_duration(table, set(req.mask or []), req.question, language)
            table = derive_sum(table, set(req.mask or []), req.question, language)
            table = derive_active(table, set(req.mask or []), req.question, language)
        except BaseException:
            table.close()
            raise
        return Loaded(table=table, source=source, masked=set(req.mask or []))

    def _open_source(self, req: InsightRequest, source: Source) -> Loaded:
        """The source's table, read in place: facts' queries run in the source."""
        spec = source.table_config(req.table, req.question or "")
        table: data.Table = SourceTable(source, spec, self.limits)
        masked = set(req.mask or []) | set(spec.mask)
        try:
            table = self._scope(table, req)
            table = derive_period(table, masked)
            language = _language(req.language, req.question) if req.question else "en"
            table = derive_weekday(table, masked, req.question, language)
        except BaseException:
            table.close()
            raise
        return Loaded(
            table=table, source={"source": source.name, "table": spec.name}, masked=masked
        )

    @staticmethod
    def _scope(table: data.Table, req: InsightRequest) -> data.Table:
        """Keep only the allowed columns; check the masked ones exist."""
        for name in [*(req.columns or []), *(req.mask or [])]:
            if name not in table.columns:
                raise BadRequestError(f"unknown column '{name}'")
        if not req.columns:
            return table
        keep = ", ".join(data.quote_ident(c) for c in table.columns if c in req.columns)
        table.query(f"CREATE OR REPLACE TABLE data AS SELECT {keep} FROM data")  # noqa: S608
        return table.refreshed()

    # --- analysis ------------------------------------------------------------------------------

    async def run(
        self, caller: Principal, req: InsightRequest
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The events of one insight request: ``facts``, ``answer``, one ``insight`` per model
        insight that passed the check, ``insights`` (the stored record). Errors before the
        first event are raised as they are."""
        language = _language(req.language, req.question)
        most = req.max_insights
        clock = _Clock()
        asked_as = req.question  # what the record keeps: the question as it was asked
        narrate = await self._narrative_on(req, caller.tenant)
        # The slot covers the DuckDB work (load to facts); the narrative after it is model
        # work, bounded by the model's own queue and the key's parallel limit.
        with self.slots.hold():
            loaded = await self._load(caller, req)
            clock.lap("load")
            try:
                prof = await asyncio.to_thread(_profile, loaded)
                clock.lap("profile")
                if req.question:
                    req = req.model_copy(update={"question": ratios.respelled(req.question, prof)})
                if not req.language and req.question:
                    # "Vendas vs Retenção: which queue sold more?" is English: the names of
                    # the data's values and columns say nothing of the asker's language.
                    language = _language(None, _without_data_words(req.question, prof))
                asked = questions.parse(req.question, prof) if req.question else None
                plan, plan_source = await self._plan(caller, req, prof, asked)
                if plan is not None and asked is not None and asked.has("compare_periods"):
                    # The ranking clause's own month, beside the clause comparing months.
                    plan = _clause_period(asked.text, prof, plan)
                clock.lap("plan")
                found, planned = await asyncio.to_thread(
                    self._facts, loaded.table, prof, plan, most, req.question, asked
                )
                covered = (
                    questions.coverage(asked, found, planned, plan) if asked is not None else []
                )
                split = None
                clauses = _Clauses.of(req.question or "", prof)
                if (
                    any(not part["covered"] for part in covered)
                    or clauses.unmeasured([plan], found, planned)
                    or clauses.misplaced(plan)
                    or clauses.references()
                ):
                    # "Qual foi a taxa de ocupação da UTI em abril e qual ala teve mais
                    # internações?": the UTI is the rate's, the ranking is of every ward.
                    split = await self._by_clause(
                        caller,
                        req,
                        prof,
                        loaded.table,
                        most,
                        clauses,
                        (found, planned, plan),
                        covered,
                    )
                clock.lap("facts")
            finally:
                await asyncio.to_thread(loaded.table.close)  # frees memory, removes spill files
        fmt = for_language(language)
        if split is not None:
            found = split.facts
            plan, plan_source = split.clauses[0].plan, split.clauses[0].source
            answer = split.answer(fmt, prof, most)
        else:
            answer = write_answer(
                question=req.question,
                facts=found,
                ctx=Context(fmt, prof, plan, planned),
                most=req.max_insights,
                parts=covered,
            )
        clock.lap("answer")
        yield {
            "type": "facts",
            "facts": _shown(found, loaded.table),
            "profile": prof.as_dict(),
            "plan": None if plan is None else plan.model_dump(),
            "plan_source": plan_source,
        }
        yield {"type": "answer", "answer": answer.as_dict()}
        review = _Review(found, language, prof, most, answer)
        if narrate:
            reader = _NarrativeReader()
            async for piece in self._narrate(caller, req, found, language, most):
                for item in reader.feed(piece):
                    kept = review.insight(item)
                    if kept is not None:
                        # Only what survived the check goes out, insight by insight.
                        yield {"type": "insight", "insight": kept}
            for item in reader.close():
                kept = review.insight(item)
                if kept is not None:
                    yield {"type": "insight", "insight": kept}
            review.summarise(reader.summary, usable=reader.usable)
        clock.lap("narrative")
        insights, summary, tally, dropped = review.result()
        clock.lap("verify_and_charts")
        record = {
            "id": new_id("in"),
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "user_id": req.user_id,
            "model": req.model or self.settings.insights_model,
            "question": asked_as,
            "language": language,
            "dataset": loaded.source,
            "plan": None if plan is None else plan.model_dump(),
            "plan_source": plan_source,
            "clauses": None if split is None else split.as_list(),
            "profile": prof.as_dict(),
            "facts": _shown(found, loaded.table),
            "answer": answer.as_dict(),
            "answer_charts": answer_charts(answer.as_dict(), found, most),
            "insights": insights,
            "summary": summary,
            "narrative": narrate,
            "narrative_check": tally,
            "narrative_dropped": dropped,
            "timings": clock.laps,
        }
        record["changes"] = await self._changes(caller, record)
        await self.datasets.save_insight(caller.tenant, record)
        yield {"type": "insights", **record}

    async def _plan(
        self,
        caller: Principal,
        req: InsightRequest,
        prof: Profile,
        asked: questions.Question | None = None,
        *,
        model: bool = True,
    ) -> tuple[Plan | None, str]:
        """The plan of :meth:`_planned`, made to cover every part of the question
        (:func:`questions.reconcile`); the uncorrected plan if the correction is invalid."""
        plan, source = await self._planned(caller, req, prof, asked, model=model)
        if asked is None:
            return plan, source
        missing = missing_columns(req.question, prof) if req.question else []
        if req.question and (
            (plan is None and missing)
            or (any(c.measure for c in missing) and not names_a_measure(req.question, prof))
            or any(c.measure and c.qualified(req.question) for c in missing)
            or (any(c.dimension for c in missing) and not names_a_dimension(req.question, prof))
        ):
            # "Qual foi o custo total?", "profit by store" on data with no cost or profit:
            # the total of another column would be a guess; the answer says what is missing.
            return None, "none"
        try:
            fixed = questions.reconcile(plan, asked, prof, source)
            if fixed is not None:
                validate_plan(fixed, prof)
                return fixed, source if plan is not None else "rules"
        except (BadRequestError, ValidationError) as exc:
            log.info("plan correction unusable", extra={"reason": str(exc)[:200]})
        return plan, source

    async def _planned(
        self,
        caller: Principal,
        req: InsightRequest,
        prof: Profile,
        asked: questions.Question | None,
        *,
        model: bool = True,
    ) -> tuple[Plan | None, str]:
        """The question as a plan: the rules' when they read one, else the model's (validated,
        unless ``model`` is false), else none.

        The rules find every part of the question that names a column (its words, synonyms,
        aggregate, order, grain, filters) in milliseconds; the embedded model's constrained plan
        took seconds and often dropped a part they found ("Qual loja vendeu mais?" became
        "max and min of sales", with no store), so it is asked only for questions the rules
        cannot read at all."""
        if not req.question:
            return None, "none"
        rules = rule_plan(req.question, prof)
        if rules is not None:
            return rules, "rules"
        if asked is not None and questions.reconcile(None, asked, prof, "rules") is not None:
            # The question's parts alone make a plan (a ranking, a trend, a period...): no
            # model needed.
            return None, "none"
        if ratios.asks_for_rate(req.question, prof):
            # "What's our conversion rate?": the ratio fact answers it from the columns, or
            # nothing does; a model's plan about other columns would be a guess.
            return None, "none"
        if anomalies.asked_direction(req.question):
            # The anomaly fact answers it from the data's main columns; a model's plan would
            # cost seconds and add nothing it needs.
            return None, "none"
        if missing_columns(req.question, prof):
            # It asks for something the data lacks (a cost, a customer): the answer says so,
            # rather than a model's plan about other columns.
            return None, "none"
        if not model:
            return None, "none"
        schema = plan_schema(prof)
        columns = ", ".join(f"{c.name} ({c.kind})" for c in prof.columns if not c.masked)
        instruction = (
            "Map the question to an analysis plan over these columns: "
            f"{columns}. Use only these column names. Answer with JSON.\n\n"
            f"Question: {req.question[:2000]}"
        )
        limit = self.settings.insights_plan_timeout or None
        try:
            async with asyncio.timeout(limit):
                raw = "".join(
                    [
                        piece
                        async for piece in self._stream(
                            caller, req, instruction, schema, PLAN_TOKENS, temperature=0.0
                        )
                    ]
                )
        except TimeoutError:
            # A busy engine must not hold the answer: it goes on with the data's own facts.
            log.info("plan from the model timed out", extra={"seconds": limit})
            return None, "none"
        except BillumyError as exc:
            log.info("plan from the model unusable", extra={"reason": str(exc)[:200]})
            return None, "none"
        try:
            plan = Plan.model_validate_json(raw)
            try:
                validate_plan(plan, prof)
            except BadRequestError:
                # A small model often adds a filter it cannot fill in: keep the rest.
                plan = plan.model_copy(update={"filters": []})
                validate_plan(plan, prof)
            if plan.measures or plan.dimensions or plan.period:
                return plan, "model"
        except (BillumyError, ValidationError, ValueError) as exc:
            log.info("plan from the model unusable", extra={"reason": str(exc)[:200]})
        return None, "none"

    async def _by_clause(
        self,
        caller: Principal,
        req: InsightRequest,
        prof: Profile,
        table: data.Table,
        most: int,
        clauses: _Clauses,
        whole: tuple[list[Fact], set[str], Plan | None],
        covered: list[dict[str, Any]],
    ) -> _Split | None:
        """The question answered clause by clause, when that answers more of its parts than
        answering it whole did (``covered``); None otherwise. Each clause gets its own plan
        (the rules', never the model's: seconds for a guess), with the filters of the clauses
        before it that it does not set itself (:func:`_carried`), and its own facts; a
        clause that yields none leaves the question to be answered whole."""
        if not clauses.parsed:
            return None
        read: list[tuple[str, questions.Question, Plan | None, str]] = []
        before: list[Filter] = []
        for index, (text, asked) in enumerate(clauses.parsed):
            back = index > 0 and _refers_back(text, asked)
            clause_req = req.model_copy(update={"question": text})
            plan, source = await self._plan(caller, clause_req, prof, asked, model=False)
            if plan is not None:
                plan = _carried(plan, before, prof)
                if asked.has("compare_periods"):
                    plan = _clause_period(text, prof, plan)
                if index == 0:
                    # The lead-in's scope ("For Bastrop East in March 2024: ...") holds for
                    # every clause; a later clause's own ("the industrial peak") for itself.
                    before = list(plan.filters)
            last = read[-1] if read else None
            if (
                last is not None
                and last[2] is not None
                and plan is not None
                and not back
                and _filters(last[2]) == _filters(plan)
                and _totals(last[0], last[1], last[2], prof)
                and _totals(text, asked, plan, prof)
            ):
                # "quantos litros, quantos abastecimentos e quanto faturou": one sentence
                # of three totals over the same rows, not three sentences.
                merged = f"{last[0]}, {text}"
                measures = [*last[2].measures, *plan.measures]
                unique = list({(m.column, m.agg): m for m in measures}.values())
                plan = last[2].model_copy(update={"measures": unique[:MAX_MEASURES]})
                read[-1] = (merged, questions.parse(merged, prof), plan, last[3])
                continue
            read.append((text, asked, plan, source))
        done: list[_Clause] = []
        resolved = 0
        for text, asked, plan, source in read:
            top = _top_segment(done[-1]) if done and _refers_back(text, asked) else None
            if top is not None and plan is None:
                # "e qual foi o ticket médio dele?" names no column: the rules read it with
                # the segment named ("... dele Pinheiros"), then the lead-in's filters.
                named = f"{text} {top[1]}"
                named_req = req.model_copy(update={"question": named})
                parsed = questions.parse(named, prof)
                plan, _ = await self._plan(caller, named_req, prof, parsed, model=False)
                plan = None if plan is None else _carried(plan, before, prof)
            if top is not None and plan is not None:
                plan = _referred_measures(plan, done[-1].plan, text, prof)
            if top is not None and plan is not None:
                # "Qual hotel teve a maior ocupação em março e quanto faturou?": what that
                # hotel billed, not every hotel.
                column, value = top
                own = [f for f in plan.filters if f.column != column]
                filters = [*own, Filter(column=column, op="=", value=value)]
                plan = plan.model_copy(update={"filters": filters})
                resolved += 1
            found, planned = await asyncio.to_thread(
                self._facts, table, prof, plan, most, text, asked
            )
            mine = [f for f in found if f.id in planned]
            if not mine:
                return None
            parts = questions.coverage(asked, found, planned, plan)
            done.append(_Clause(text, asked, plan, source, mine, parts))
        left = sum(not p["covered"] for clause in done for p in clause.parts)
        ids = {f.id for clause in done for f in clause.facts}
        mine = [f for clause in done for f in clause.facts]
        plans = [clause.plan for clause in done]
        references = clauses.references()
        found, planned, whole_plan = whole
        split = (left, len(clauses.unmeasured(plans, mine, ids)), 0, references - resolved)
        if split >= (
            sum(not p["covered"] for p in covered),
            len(clauses.unmeasured([whole_plan], found, planned)),
            clauses.misplaced(whole_plan),
            references,
        ):
            return None
        # Merged, a fact two clauses produced is one; then the data's other notable facts.
        facts: list[Fact] = []
        seen: dict[tuple[Any, ...], Fact] = {}
        for clause in done:
            kept = []
            for fact in clause.facts:
                key = (fact.kind, tuple(fact.columns), fact.sql)
                if key not in seen:
                    seen[key] = fact
                    facts.append(fact)
                kept.append(seen[key])
            clause.facts = kept
        others = [
            f
            for f in found
            if f.id not in planned and (f.kind, tuple(f.columns), f.sql) not in seen
        ]
        facts = (facts + others)[: max(len(facts), 2 * most + 2)]
        for number, fact in enumerate(facts, start=1):
            fact.id = f"f{number}"
        for clause in done:
            clause.parts = questions.coverage(
                clause.asked, facts, {f.id for f in clause.facts}, clause.plan
            )
        return _Split(done, facts)

    @staticmethod
    def _facts(
        table: data.Table,
        prof: Profile,
        plan: Plan | None,
        most: int,
        question: str | None = None,
        asked: questions.Question | None = None,
    ) -> tuple[list[Fact], set[str]]:
        """The facts, numbered f1, f2..., and the ids of those the plan produced; a question
        about drops or spikes gets its anomaly fact first, even when it finds none; one that
        compares periods or asks what drove a change gets the change between them, with each
        segment's part."""
        whole = plan  # the change between periods: not within one clause's period
        if plan is not None and asked is not None and asked.has("compare_periods"):
            dated = {c.name for c in prof.columns if c.kind == "temporal"}
            kept = [f for f in plan.filters if f.column not in dated]
            whole = plan.model_copy(update={"filters": kept})
        planned = facts_for_plan(table, prof, plan) if plan is not None else []
        ranked = questions.rankings(asked, prof, plan) if asked is not None else []
        if ranked:
            # "Qual entregou mais e qual tem o menor atraso médio?": one ranking per part, each
            # by its own measure and order, instead of the plan's one.
            planned = [f for f in planned if f.kind != "breakdown"]
            for ranking in ranked:
                made = facts_for_plan(table, prof, ranking)
                planned += [f for f in made if f.kind == "breakdown"]
        dimension = _named_dimension(question, prof, asked) if question else None
        nps = ratios.nps_fact(table, prof, plan, question, dimension) if question else None
        if nps is not None:
            # "Qual o NPS por canal?": promoters less detractors, not the answers' average.
            planned = [nps, *(f for f in planned if f.kind not in _TOTALS)]
        per = ratios.per_fact(table, prof, plan, question, dimension) if question else None
        if per is None:
            # "O tempo médio de reparo da rede": each row's average, weighted by the orders it
            # is over; the plain mean of the rows (the aggregate's) is dropped below.
            ranked_by = dimension or next(
                (
                    d
                    for d in (plan.dimensions if plan is not None else [])
                    if (c := prof.column(d)) is not None and c.kind != "temporal"
                ),
                None,
            )
            per = ratios.weighted_fact(table, prof, plan, ranked_by)
            if per is not None:
                averaged = per.values.get("numerator")
                planned = [
                    f
                    for f in planned
                    if not (
                        f.kind in ("aggregate", "breakdown")
                        and averaged in f.columns
                        and f"avg_{averaged}" in (f.rows[0] if f.rows else f.values)
                    )
                ]
        if per is None and question:
            # "On average, how many lines does DC Extrema pick per day?": the lines per day,
            # not the average wave's (nor a series of daily averages of waves).
            per = ratios.per_period_fact(table, prof, plan, question)
            if per is not None:
                measure = per.values.get("numerator")
                planned = [
                    f
                    for f in planned
                    if not (f.kind in ("aggregate", "trend") and measure in f.columns)
                ]
        if per is not None:
            # "Google Ads vs Meta Ads: cost per order?": one amount over another. The plan's
            # averages of the same columns ("average receita 54,690.66" beside "receita per
            # locacoes 829.43") are the rows' averages, another question.
            mine = set(per.columns)
            planned = [
                per,
                *(
                    f
                    for f in planned
                    if not (
                        f.kind == "aggregate"
                        and set(f.columns) <= mine
                        and any(str(k).startswith("avg_") for k in f.values)
                    )
                ),
            ]
        ratio = None
        known = ratios.jargon(question, prof) if question else None
        if (
            asked is not None
            and (per is None or per.kind != "per")
            and (_asks_for_rate(asked, prof) or (known and known[0] == "ratio"))
        ):
            # "What labor rate per technician hour?" is answered by the amount per hour above,
            # not also by a share of one column in the other.
            # "What percentage of deliveries were late?": one count over another.
            # "Qual a inadimplência da carteira hoje?": a rate of two levels at the latest date.
            now = bool(asked.windows) and all(w.now for w in asked.windows)
            numbers = [
                n
                for n in named_columns(question or "", prof)
                if (c := prof.column(n)) is not None and c.kind == "numeric"
            ]
            if not numbers and (
                ratios.rated_value(question or "", prof) or ratios.rated_event(question or "", prof)
            ):
                # "What share of listings were sold?" (``vendido`` sim) names a value and no
                # number: the share of the rows holding it, not one column over another.
                ratio = ratios.value_rate_fact(table, prof, plan, dimension, question or "")
            if ratio is None:
                ratio = ratios.ratio_fact(table, prof, plan, dimension, question or "", now=now)
            if ratio is None:
                # "Which segment has the highest cancellation rate?" with a ``status`` column:
                # the share of the rows holding Cancelled.
                ratio = ratios.value_rate_fact(table, prof, plan, dimension, question or "")
            if ratio is not None:
                # A column of rates per row averaged ("average taxa_ocupacao 71.64" beside
                # "the occupancy rate is 73.5%") weighs a quiet row like a busy one: the
                # ratio of the sums answers.
                planned = [ratio, *(f for f in planned if not _averages_rates(f))]
                if not names_a_measure(question or "", prof):
                    # "Qual foi a taxa de ocupação da UTI?" names a rate, no column: the total
                    # of the plan's default measure (the charges) answers nothing asked.
                    planned = [f for f in planned if f is ratio or f.kind != "aggregate"]
                if ratio.values.get("of_rows") and not numbers:
                    # "What share of listings were sold?": the rows' share is the answer; the
                    # default measure's total and ranking (the rooms) are not.
                    planned = [f for f in planned if f is ratio or f.kind not in _TOTALS]
        rated = [f for f in (per, ratio) if f is not None and dimension in f.columns]
        unasked = bool(question) and not names_a_measure(question or "", prof)
        if rated and asked is not None and (asked.has("rank") or unasked):
            # "Which location has the highest churn rate?": the rate ranks them; a ranking of
            # the cancellations alone would answer another question.
            planned = [f for f in planned if f.kind != "breakdown"]
        difference = ratios.difference_fact(table, prof, plan, question) if question else None
        if difference is not None:
            # "Quantas matrículas e cancelamentos? E o saldo?": one total less the other.
            planned = [*planned, difference]
        if asked is not None and (asked.has("compare_periods") or asked.has("drivers")):
            # "Compare our occupancy rate in Q1 vs Q2": the rate in each period, the part's
            # sum over the whole's, not the average of a column of rates.
            rate = None
            if ratio is not None and not ratio.values.get("of_rows"):
                name = ratio.values.get("name") or ratio.values.get("part")
                rate = (str(ratio.values["part"]), str(ratio.values["whole"]), str(name))
            changed = _change_plan(question or "", prof, whole) if rate is None else whole
            change = changes.change_fact(table, prof, changed, asked, rate)
            if change is not None:
                planned = [change, *planned]
        direction = anomalies.asked_direction(question) if question else None
        if direction and question and any(c.measure for c in missing_columns(question, prof)):
            # "a taxa de juros subiu fora do normal?" on data with no rate of interest: a
            # spike of another measure is no answer, and "Sim" about it would be false.
            direction = None
        focus = _anomaly_plan(question, prof, plan) if direction and question else None
        scope = anomalies.plan_scope(table, prof, focus)
        if scope is not None and direction and asked is not None:
            clause = _anomaly_clause(question or "")
            if clause is not None and clause.strip(" ?") != (question or "").strip(" ?"):
                # The periods and segments the anomaly's own clause names, not the others'.
                asked_here = questions.parse(clause, prof)
                scope = _narrowed(scope, asked_here)
            else:
                scope = _narrowed(scope, asked)
        if scope is not None and direction:
            scope = _rate_scope(scope, prof, ratio, per)
            if anomalies.asked_sharp(question or ""):
                scope = replace(scope, min_change_pct=anomalies.SHARP_CHANGE_PCT)
        found = None
        if scope is not None:
            found = anomalies.anomaly_fact(
                table, scope, direction or "both", keep_empty=direction is not None
            )
        if (
            scope is not None
            and direction
            and scope.kept
            and found is not None
            and not found.values.get("count")
            and not _asks_where(question or "", prof, scope.dimension, focus)
        ):
            # "Teve algum mês em que os contratos residenciais despencaram?": no state's
            # series fell, but the segment named, judged whole, may have.
            total = anomalies.anomaly_fact(
                table, replace(scope, dimension=None, only=()), direction, keep_empty=True
            )
            if total is not None and total.values.get("count"):
                found = total
        unnamed = bool(direction and question) and not names_a_measure(question or "", prof)
        if unnamed and direction and found is not None and not found.values.get("count"):
            # "Anything unusual in the hotel numbers?" names no measure: every measure is
            # looked at, and the one with the sharpest case answers.
            found = _sharpest_anomaly(table, prof, focus, direction, asked) or found
        extra = [] if found is None or direction else [found]
        if found is not None and direction:
            planned = [found, *planned]
        salient = salient_facts(table, prof, limit=max(4, 2 * most), exclude=planned, extra=extra)
        seen = {(f.kind, tuple(f.columns), f.sql) for f in planned}
        merged = planned + [f for f in salient if (f.kind, tuple(f.columns), f.sql) not in seen]
        merged = merged[: max(len(planned), 2 * most + 2)]
        for number, fact in enumerate(merged, start=1):
            fact.id = f"f{number}"
        return merged, {f.id for f in planned}

    async def _stream(
        self,
        caller: Principal,
        req: InsightRequest,
        instruction: str,
        schema: dict[str, Any],
        num_predict: int,
        *,
        temperature: float,
    ) -> AsyncIterator[str]:
        entry, _ = await self.inference.resolve(
            req.model or self.settings.insights_model, req.question or "", tenant=caller.tenant
        )
        prepared = self.inference.prepare_messages(
            entry,
            [{"role": "user", "content": instruction}],
            options={"temperature": temperature, "num_predict": num_predict, "seed": 0},
            format=schema,
        )
        async for chunk in self.inference.metered(prepared, caller):
            if chunk.text:
                yield chunk.text

    async def _narrative_on(self, req: InsightRequest, tenant: str) -> bool:
        """Whether the model writes insights: as the request says, else as the
        ``insights_narrative`` setting says; ``auto`` is on when the insights model is served
        by an upstream model server and off for the embedded one, whose 135M-parameter prose
        rarely survives the claim check and costs seconds on a CPU."""
        if req.narrative is not None:
            return req.narrative
        setting = self.settings.insights_narrative
        if setting != "auto":
            return setting == "true"
        model = req.model or self.settings.insights_model
        return await self.inference.upstream(model, req.question or "", tenant=tenant)

    async def _narrate(
        self,
        caller: Principal,
        req: InsightRequest,
        found: list[Fact],
        language: str,
        most: int,
    ) -> AsyncIterator[str]:
        if not found:
            return
        listed = "\n".join(f"[{f.id}] {f.statement}" for f in found)
        question = req.question or "What stands out in this data?"
        instruction = (
            f"Facts computed from the data:\n{listed}\n\n"
            f"Question: {question[:2000]}\n\n"
            f"Write at most {most} insights in {LANGUAGE_NAMES[language]}: each with a short "
            "title, one or two sentences that interpret the facts and suggest an action, and "
            "the ids of the facts it relies on. Use only numbers that appear in the facts. "
            "Then a one-sentence summary. Answer with JSON."
        )
        schema = _narrative_schema([f.id for f in found], most)
        async for piece in self._stream(
            caller, req, instruction, schema, NARRATIVE_TOKENS, temperature=0.2
        ):
            yield piece

    async def _changes(
        self, caller: Principal, record: dict[str, Any]
    ) -> list[dict[str, Any]] | None:
        """What changed since the same question ran on an earlier version of the dataset."""
        dataset = record["dataset"]
        if "id" not in dataset:
            return None
        previous = await self.datasets.earlier(
            caller.tenant,
            dataset_id=dataset["id"],
            question=record["question"],
            before_version=dataset["version"],
        )
        if previous is None:
            return None
        before = {_fact_key(f): f for f in previous.get("facts", [])}
        changes = []
        for fact in record["facts"]:
            old = before.get(_fact_key(fact))
            if old is None:
                changes.append(
                    {"fact": fact["id"], "change": "new", "statement": fact["statement"]}
                )
                continue
            moved = {
                name: {"before": old["values"].get(name), "after": value}
                for name, value in fact["values"].items()
                if old["values"].get(name) != value
            }
            if moved:
                changes.append(
                    {
                        "fact": fact["id"],
                        "change": "changed",
                        "statement": fact["statement"],
                        "previous_statement": old["statement"],
                        "values": moved,
                    }
                )
        return [
            {"compared_with": previous["id"], "previous_version": previous["dataset"]["version"]},
            *changes,
        ]

    # --- reading back --------------------------------------------------------------------------

    async def get(self, caller: Principal, insight_id: str) -> dict[str, Any]:
        return await self.datasets.insight(caller.tenant, insight_id)

    async def chart_svg(self, caller: Principal, insight_id: str, number: int) -> str:
        """Chart ``number`` of the record as SVG: the model's insights' charts first, then
        the answer's (``answer_charts``)."""
        record = await self.get(caller, insight_id)
        specs = [i["chart"] for i in record.get("insights", []) if i.get("chart")]
        specs += record.get("answer_charts") or []
        if not 0 <= number < len(specs):
            raise NotFoundError(f"insight '{insight_id}' has no chart {number}")
        return await asyncio.to_thread(charts.render_svg, specs[number])


def answer_charts(answer: dict[str, Any], found: list[Fact], most: int) -> list[charts.Spec]:
    """Vega-Lite specs of the facts the answer cites, in the order it cites them, at most
    ``most``: the answer has charts even when no model wrote about it."""
    by_id = {fact.id: fact for fact in found}
    specs: list[charts.Spec] = []
    seen: set[str] = set()
    for sentence in answer.get("sentences", []):
        for fact_id in sentence.get("facts", []):
            if fact_id in seen or fact_id not in by_id or len(specs) >= most:
                continue
            seen.add(fact_id)
            spec = charts.chart_for(by_id[fact_id])
            if spec is not None:
                specs.append(spec)
    return specs


_MAX_SCANNED_MEASURES = 8


def _referred_measures(plan: Plan, lead: Plan | None, text: str, prof: Profile) -> Plan:
    """The plan of a clause that refers back to the one before it ("Which DC picked the most
    order lines, and did its volume grow?"): with no measure of its own named, the measures
    of the clause it refers to (its order lines), not the rules' default measure."""
    if lead is None or not lead.measures or names_a_measure(text, prof):
        return plan
    return plan.model_copy(update={"measures": lead.measures})


def _sharpest_anomaly(
    table: data.Table,
    prof: Profile,
    plan: Plan | None,
    direction: anomalies.Direction,
    asked: questions.Question | None,
) -> Fact | None:
    """The anomaly fact of the measure whose sharpest case is the largest (by its size
    against the expected value), among the data's visible measures; None when none has a
    case. Each measure is looked at per period of the series' grain and, when the data are
    recorded finer (daily rows over half a year: weeks), per period of that grain too: a
    one-day event ("31 cancellations against 3 a night") is no week's event, and the
    question names no period to look at."""
    best: tuple[float, Fact] | None = None
    measures = [c for c in prof.columns if c.kind == "numeric" and not c.masked][
        :_MAX_SCANNED_MEASURES
    ]
    base = plan or Plan(measures=[Measure(column="*", agg="count")])
    natural: dict[str, Grain | None] = {}
    for column in measures:
        measured = base.model_copy(
            update={"measures": [Measure(column=column.name, agg=plan_agg(column))]}
        )
        scope = anomalies.plan_scope(table, prof, measured)
        if scope is None:
            continue
        if asked is not None:
            scope = _narrowed(scope, asked)
        if scope.temporal not in natural:
            natural[scope.temporal] = natural_grain(table, scope.temporal)
        finest = natural[scope.temporal]
        scopes = [scope]
        if base.period is None and finest is not None and coarser(finest, scope.grain) != finest:
            scopes.append(replace(scope, grain=finest))
        for each in scopes:
            fact = anomalies.anomaly_fact(table, each, direction, keep_empty=True)
            if fact is None or not fact.values.get("count") or not fact.rows:
                continue
            size = abs(float(fact.rows[0].get("change_pct") or 0.0))
            if best is None or size > best[0]:
                best = (size, fact)
    if best is None:
        return None
    best[1].values["scanned"] = len(measures)  # the answer names the measure it found
    return best[1]


def _rate_scope(
    scope: anomalies.Scope, prof: Profile, ratio: Fact | None, per: Fact | None
) -> anomalies.Scope:
    """The anomaly check of a question about a rate ("Did the cancellation rate jump in any
    city?", "Did the price per MWh jump?"): the rate's own series, not its numerator's."""

    def numeric(name: str) -> bool:
        column = prof.column(name)
        return column is not None and column.kind == "numeric" and not column.masked

    # Only when the check would read one of the rate's own columns: "and did any carrier's
    # delay spike?" beside a late-delivery rate checks the delay.
    if ratio is not None and ratio.kind == "ratio":
        part, whole = str(ratio.values.get("part")), str(ratio.values.get("whole"))
        if numeric(part) and numeric(whole) and scope.measure in (part, whole):
            return replace(scope, measure=part, per=whole, pct=True, agg="avg", dtype="DOUBLE")
    if per is not None and per.kind == "per" and not per.values.get("weighted"):
        # A weighted average's own series is no sum over a sum: the column's check stands.
        top, bottom = str(per.values.get("numerator")), str(per.values.get("denominator"))
        if numeric(top) and numeric(bottom) and scope.measure in (top, bottom):
            return replace(scope, measure=top, per=bottom, agg="avg", dtype="DOUBLE")
    return scope


def _anomaly_plan(question: str, prof: Profile, plan: Plan | None) -> Plan | None:
    """The plan whose measure the anomaly check reads: the one named in the part of the
    question that asks about drops or spikes ("What percentage of deliveries were late, and
    did any carrier's delay spike?" checks the delay, not the deliveries)."""
    if plan is None:
        return None
    clause = _anomaly_clause(question)
    if clause is None:
        return plan
    read = rule_plan(clause, prof)
    if read is None:
        return plan
    update: dict[str, Any] = {}
    if read.measures[0].column != "*" and names_a_measure(clause, prof):
        update["measures"] = read.measures[:1]
    if clause.strip(" ?") != question.strip(" ?"):
        # "Which service sold most in June, and did any city drop in any week?": the check
        # reads its own clause's segments and grain, not the other part's.
        if read.dimensions:
            update["dimensions"] = read.dimensions[:1]
        if read.period is not None:
            update["period"] = read.period
    return plan.model_copy(update=update)


def _change_plan(question: str, prof: Profile, plan: Plan | None) -> Plan | None:
    """The plan whose measure the change between periods reads: the one named in the part of
    the question that asks how something changed ("Which building had the most admissions
    in April, and how did charges change from January to April?": the charges)."""
    if plan is None:
        return plan
    for clause in re.split(r"\s*[,;?]\s*|\s+(?:e|and)\s+", question):
        if clause.strip(" ?") == question.strip(" ?"):
            return plan
        if not questions.parse(clause, prof).has("compare_periods"):
            continue
        read = rule_plan(clause, prof)
        if read is None or read.measures[0].column == "*" or not names_a_measure(clause, prof):
            return plan
        return plan.model_copy(update={"measures": read.measures[:1]})
    return plan


def _clause_period(question: str, prof: Profile, plan: Plan) -> Plan:
    """The plan with the period of the one other clause of a question that compares periods
    ("Which building had the most admissions in April, and how did charges change from
    January to April?": the ranking is April's, the change January's to April's)."""
    temporal = {c.name for c in prof.columns if c.kind == "temporal"}
    if any(f.column in temporal for f in plan.filters):
        return plan
    found = []
    for clause in re.split(r"\s*[,;?]\s*|\s+(?:e|and)\s+", question):
        if not clause.strip(" ?"):
            continue
        if clause.strip(" ?") == question.strip(" ?"):
            return plan
        asked = questions.parse(clause, prof)
        if asked.has("compare_periods"):
            continue
        read = rule_plan(clause, prof)
        if read is not None:
            read = questions.reconcile(read, asked, prof, "rules")  # its months, its year
        dated = [f for f in (read.filters if read is not None else []) if f.column in temporal]
        if dated:
            found.append(dated)
    if len(found) != 1:
        return plan
    return plan.model_copy(update={"filters": [*plan.filters, *found[0]]})


def _anomaly_clause(question: str) -> str | None:
    """The part of ``question`` that asks about drops or spikes, or None."""
    for clause in re.split(r"\s*[,;?]\s*|\s+(?:e|and)\s+", question):
        if anomalies.asked_direction(clause) is not None:
            return clause
    return None


_TOTALS = frozenset({"aggregate", "breakdown"})


def _named_dimension(
    question: str, prof: Profile, asked: questions.Question | None = None
) -> str | None:
    """The segment column the question names ("por transportadora") or whose values it
    compares ("Google Ads vs Meta Ads"), if any."""
    compared = [p for p in (asked.parts if asked else []) if p.kind == "compare_segments"]
    if compared:
        return str(compared[0].detail["column"])
    named = rule_plan(question, prof)
    return named.dimensions[0] if named is not None and named.dimensions else None


_RATE_NAMES = frozenset({"taxa", "rate", "ratio", "pct", "percent", "percentual", "share"})


def _averages_rates(fact: Fact) -> bool:
    """Whether ``fact`` is only a plain average of a column of rates (``taxa_ocupacao``): an
    aggregate that also totals nights or revenue stays."""
    return fact.kind == "aggregate" and all(
        str(k).startswith("avg_") and _RATE_NAMES & set(profile.name_words(str(k)))
        for k in fact.values
    )


def _asks_for_rate(asked: questions.Question, prof: Profile) -> bool:
    """A rate ("taxa de resolução"), or a share of no segment in particular ("what percentage
    of deliveries were late?", not "what share came from Sul")."""
    if ratios.asks_for_rate(asked.text, prof):
        # "the croissants' loss rate": a segment named is a filter of the rate.
        return True
    share = next((p for p in asked.parts if p.kind == "share"), None)
    return share is not None and not share.detail.get("focus") and not asked.segments


_WHERE = frozenset({"anywhere", "where", "onde", "lugar", "lugares", "somewhere", "qual", "which"})


def _asks_where(question: str, prof: Profile, dimension: str | None, plan: Plan | None) -> bool:
    """Whether a question about drops asks where they were: "anywhere", "em algum lugar",
    "qual loja", or the segments' column named or planned."""
    if dimension is None:
        return False
    if plan is not None and dimension in plan.dimensions:
        return True
    return bool(set(name_words(question)) & _WHERE) or dimension in named_columns(question, prof)


def _narrowed(scope: anomalies.Scope, asked: questions.Question) -> anomalies.Scope:
    """The anomaly check narrowed to the periods and segments the question names ("alguma
    loja caiu em maio?", "o Sul teve queda?")."""
    windows = [w for w in asked.windows if w.column == scope.temporal and w.start and w.end]
    start = min(w.start for w in windows if w.start) if windows else None
    end = max(w.end for w in windows if w.end) if windows else None
    only = tuple(asked.segments.get(scope.dimension, [])) if scope.dimension else ()
    kept = tuple(
        (column, values[0])
        for column, values in asked.segments.items()
        if column != scope.dimension and len(values) == 1
    )
    return dataclasses.replace(
        scope,
        start=start.isoformat() if start else None,
        end=end.isoformat() if end else None,
        only=only,
        kept=kept,
    )


class _Clock:
    """Seconds spent in each step of a request (stored with the record, for operators)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 4)
        self._last = now


def _fact_key(fact: dict[str, Any]) -> str:
    blob = orjson.dumps([fact.get("kind"), fact.get("columns"), sorted(fact.get("values", {}))])
    return hashlib.sha256(blob).hexdigest()


class _NarrativeReader:
    """Reads the model's narrative JSON (``{"insights": [...], "summary": "..."}``) as it
    streams, handing out each insight once it is complete, so that it can be checked and sent
    before the model has finished; a narrative cut short (the token budget) keeps the insights
    it completed."""

    def __init__(self) -> None:
        self._text = ""
        self._given = 0
        self.summary = ""
        self.usable = True

    def _items(self, parsed: object) -> list[Any]:
        items = parsed.get("insights") if isinstance(parsed, dict) else None
        return items if isinstance(items, list) else []

    def feed(self, piece: str) -> list[Any]:
        self._text += piece
        try:
            parsed = pydantic_core.from_json(self._text, allow_partial=True)
        except ValueError:
            return []
        items = self._items(parsed)
        # The last item may still be growing until the array is closed (the summary follows).
        done = len(items) if isinstance(parsed, dict) and "summary" in parsed else len(items) - 1
        return self._hand_out(items, done)

    def close(self) -> list[Any]:
        """The insights not yet handed out: all of them for a whole narrative, the complete
        ones for a cut one (its last, unfinished insight and its summary are left out)."""
        if not self._text:
            return []
        try:
            parsed = orjson.loads(self._text)
            whole = True
        except orjson.JSONDecodeError:
            whole = False
            try:
                parsed = pydantic_core.from_json(self._text, allow_partial=True)
            except ValueError:
                parsed = None
        items = self._items(parsed)
        if whole and isinstance(parsed, dict):
            summary = parsed.get("summary")
            self.summary = summary if isinstance(summary, str) else ""
        self.usable = bool(items) and (whole or len(items) > 1)
        return self._hand_out(items, len(items) if whole else len(items) - 1)

    def _hand_out(self, items: list[Any], done: int) -> list[Any]:
        out = items[self._given : max(done, self._given)]
        self._given += len(out)
        return out


class _Review:
    """The claim check of one narrative (:mod:`billumy.insights.checker`), insight by insight:
    a sentence stays only when every claim in it agrees with a fact the insight cites (any fact
    for the summary, which cites none); a sentence with a wrong number is dropped whole rather
    than shown with the number marked, since the words around a wrong number are rarely right.
    A title is checked like a sentence and emptied when it fails; an insight (or a summary)
    with no sentence left, or with nothing checkable left in it, is dropped. The tally counts
    ``sentences``, ``kept``, ``dropped``, ``claims_checked`` (numbers, ranks and directions),
    ``names_checked`` (segments, columns, periods) and ``insights_dropped``; the dropped
    sentences are listed with the claims that failed, for whoever audits the stamp."""

    def __init__(
        self, found: list[Fact], language: str, prof: Profile, most: int, answer: Answer
    ) -> None:
        self.found = found
        self.by_id = {f.id: f for f in found}
        self.checker = checker.ClaimChecker(found, language, prof)
        self.most = most
        self.answer = answer
        self.tally = checker.Tally()
        self.insights: list[dict[str, Any]] = []
        self.dropped: list[dict[str, Any]] = []
        self.summary = ""
        self._seen = 0

    def _note(
        self, checks: list[checker.SentenceCheck], where: str, cited: list[str] | None = None
    ) -> None:
        for c in checks:
            if not c.kept:
                failed = [f.text for f in c.failed]
                self.dropped.append(
                    {"in": where, "text": c.text, "facts": cited or [], "failed": failed}
                )

    def insight(self, item: Any) -> dict[str, Any] | None:
        """The insight as kept (None when it is dropped whole or is past the most asked)."""
        self._seen += 1
        if self._seen > self.most or not isinstance(item, dict):
            return None
        cited = [i for i in item.get("facts") or [] if isinstance(i, str) and i in self.by_id]
        text = str(item.get("text") or "").strip()
        title = str(item.get("title") or "").strip()
        if not text:
            return None
        heading = [self.checker.check_sentence(title, cited)] if title else []
        body = self.checker.check(text, cited)
        title_kept = [h for h in heading if h.kept]
        # Kept only if something in it was checked and agreed: a text of no number, name,
        # period, rank or direction ("Eu estão em toda as dúvidas") survived no check.
        shown = bool(body.kept) and any(c.claims for c in [*title_kept, *body.kept])
        self.tally.add([*heading, *body.sentences], shown=shown)
        where = f"insight {self._seen}"
        self._note(heading, f"{where} title", cited)
        self._note(body.sentences, where, cited)
        if not shown:
            self.tally.insights_dropped += 1
            # Its sentences that agreed (or said nothing checkable) were not shown either.
            self.dropped += [
                {"in": f"{where} title" if c in heading else where, "text": c.text,
                 "facts": cited, "failed": []}
                for c in [*heading, *body.sentences]
                if c.kept
            ]  # fmt: skip
            return None
        fact_ids = cited or sorted({i for c in [*title_kept, *body.kept] for i in c.facts})
        checked_claims = body.checked_claims + sum(h.assertions for h in title_kept)
        chart = None
        for fact_id in fact_ids:
            chart = charts.chart_for(self.by_id[fact_id], title=title or None)
            if chart is not None:
                break
        kept = {
            "title": title if title_kept else "",
            "text": body.text,
            "facts": fact_ids,
            # Every claim of the kept text agreed; "verified" needs at least one of them.
            "verified": checked_claims > 0,
            "checked_claims": checked_claims,
            "dropped_sentences": len(body.dropped) + len(heading) - len(title_kept),
            "chart": chart,
            "source": "model",
        }
        self.insights.append(kept)
        return kept

    def summarise(self, text: str, *, usable: bool) -> None:
        if not usable:
            log.info("narrative unusable; the answer stands alone")
        check = self.checker.check(text)
        shown = any(c.claims for c in check.kept)
        self.tally.add(check.sentences, shown=shown)
        self._note(check.sentences, "summary")
        if not shown:
            self.dropped += [
                {"in": "summary", "text": c.text, "facts": [], "failed": []} for c in check.kept
            ]
        self.summary = check.text if shown else ""

    def result(self) -> tuple[list[dict[str, Any]], str, dict[str, int], list[dict[str, Any]]]:
        if self.tally.dropped:
            log.info("narrative sentences dropped by the claim check", extra=self.tally.as_dict())
        summary = _markdown(self.summary, self.insights, self.found, self.answer)
        return self.insights, summary, self.tally.as_dict(), self.dropped


def _markdown(
    summary: str, insights: list[dict[str, Any]], found: list[Fact], answer: Answer
) -> str:
    lines = []
    if answer.sentences:
        cited = [
            f"{s.text} [{', '.join(s.facts)}]" if s.facts else s.text for s in answer.sentences
        ]
        lines += [" ".join(cited), ""]
    if summary.strip():
        lines += [summary.strip(), ""]
    for insight in insights:
        mark = "" if insight["verified"] else " _(unverified)_"
        cites = ", ".join(insight["facts"])
        title = f"**{insight['title']}**{mark}: " if insight["title"] else f"{mark.strip()} "
        lines.append(f"- {title.lstrip()}{insight['text']} [{cites}]")
    if found:
        lines += ["", "Facts:"]
        lines += [f"- [{f.id}] {f.statement}" for f in found]
    return "\n".join(lines)
