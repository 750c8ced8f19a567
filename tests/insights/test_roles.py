"""Column roles: a week or month number is an ordinal key, never a measure to sum."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billumy.errors import BadRequestError
from billumy.insights import data
from billumy.insights.data import Table
from billumy.insights.formats import for_language
from billumy.insights.plan import Measure, Period, Plan, validate_plan
from billumy.insights.planned import facts_for_plan
from billumy.insights.profile import is_ordinal_name, profile
from billumy.insights.roles import is_stock
from billumy.insights.rules import rule_plan
from billumy.insights.salient import salient_facts
from billumy.insights.statements import Context, describe
from tests.insights_data import weekly_stores


@pytest.fixture
def weekly() -> Iterator[Table]:
    with data.from_records(weekly_stores()) as table:
        yield table


@pytest.mark.parametrize(
    ("name", "ordinal"),
    [
        ("semana", True),
        ("Semana do Ano", True),
        ("week_number", True),
        ("num_semana", True),
        ("mes", True),
        ("mês", True),
        ("ano", True),
        ("fiscal_year", True),
        ("trimestre", True),
        ("vendas_semana", False),
        ("weekly_sales", False),
        ("itens", False),
        ("dias_em_atraso", False),
    ],
)
def test_ordinal_names(name: str, ordinal: bool) -> None:
    assert is_ordinal_name(name) is ordinal


def test_a_week_number_is_ordinal_and_never_summed(weekly: Table) -> None:
    prof = profile(weekly)
    semana = prof.column("semana")
    assert semana is not None and semana.kind == "ordinal"
    assert (semana.min, semana.max) == (1, 26)
    vendas = prof.column("vendas_reais")
    assert vendas is not None and vendas.kind == "numeric" and vendas.money
    facts = salient_facts(weekly, prof, limit=12)
    assert facts
    for fact in facts:
        assert "semana" not in fact.columns[:1], fact.statement
        assert "semana" not in fact.sql.split("FROM")[0] or fact.kind == "row_count", fact.sql


def test_a_question_about_weeks_measures_sales_not_the_week_number(weekly: Table) -> None:
    prof = profile(weekly)
    for question in (
        "Which store sold the most, and how did sales change over the weeks?",
        "Qual loja vendeu mais e como as vendas mudaram ao longo das semanas?",
    ):
        plan = rule_plan(question, prof)
        assert plan is not None, question
        assert [m.column for m in plan.measures] == ["vendas_reais"], (question, plan)
        assert "loja" in plan.dimensions


def test_a_model_plan_that_sums_the_week_number_is_refused(weekly: Table) -> None:
    prof = profile(weekly)
    plan = Plan(measures=[Measure(column="semana", agg="sum")], dimensions=["loja"])
    with pytest.raises(BadRequestError, match="ordinal, not numeric"):
        validate_plan(plan, prof)


# --- stocks: levels at a moment, taken on the latest date -----------------------------------


def _headcount() -> list[dict[str, object]]:
    """12 months of two departments' headcount (a stock) and hires (a flow)."""
    rows: list[dict[str, object]] = []
    for month in range(1, 13):
        day = f"2024-{month:02d}-01"
        rows.append({"month": day, "department": "Eng", "headcount": 100 + month, "hires": 3})
        rows.append({"month": day, "department": "Ops", "headcount": 50 - month, "hires": 1})
    return rows


@pytest.mark.parametrize(
    ("question", "lang"),
    [("How many employees do we have by department?", "en"), ("Quantos funcionários temos?", "pt")],
)
def test_a_stock_is_counted_on_the_latest_date_never_summed_over_dates(
    question: str, lang: str
) -> None:
    with data.from_records(_headcount()) as table:
        prof = profile(table)
        assert is_stock(prof.column("headcount")) and not is_stock(prof.column("hires"))  # type: ignore[arg-type]
        plan = rule_plan(question, prof)
        assert plan is not None and plan.measures[0].column == "headcount"
        found = facts_for_plan(table, prof, plan)
        total = next(f for f in found if f.kind == "aggregate")
        # December's 112 + 38, not twelve months of them added up.
        assert total.values == {"sum_headcount": 150}
        assert total.as_of == {"column": "month", "period": "2024-12", "grain": "month"}
        if plan.dimensions:
            ranking = next(f for f in found if f.kind == "breakdown")
            assert [(r["department"], r["sum_headcount"]) for r in ranking.rows] == [
                ("Eng", 112),
                ("Ops", 38),
            ]
        ctx = Context(for_language(lang), prof, plan, {f.id for f in found})
        said = describe(total, ctx)
    expected = {
        "en": "In December 2024, total headcount is 150.",
        "pt": "Em dezembro de 2024, o total de headcount é 150.",
    }
    assert said == expected[lang]


def test_a_stock_per_period_is_its_level_on_the_period_s_last_date() -> None:
    with data.from_records(_headcount()) as table:
        prof = profile(table)
        plan = Plan(
            measures=[Measure(column="headcount", agg="sum")],
            period=Period(column="month", grain="quarter"),
        )
        trend = next(f for f in facts_for_plan(table, prof, plan) if f.kind == "trend")
    # Each quarter's last month (March, June, September, December), both departments.
    assert [r["sum_headcount"] for r in trend.rows] == [150, 150, 150, 150]
    assert [r["period"] for r in trend.rows] == ["2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"]


@pytest.mark.parametrize(
    ("question", "grain", "last"),
    [
        ("How has headcount evolved over the past two years?", "month", 24),
        ("Como evoluiu o headcount nos últimos 2 anos?", "month", 24),
        ("Vendas nos últimos 3 meses", "month", 3),
        ("sales in the last 2 weeks", "day", 14),
    ],
)
def test_a_short_span_is_a_window_read_at_a_finer_grain(
    question: str, grain: str, last: int
) -> None:
    with data.from_records(_headcount()) as table:
        prof = profile(table)
    plan = rule_plan(question, prof)
    assert plan is not None and plan.period is not None
    assert (plan.period.grain, plan.period.last) == (grain, last)


def _desk() -> list[dict[str, object]]:
    """Two teams' tickets per week, and two stores with a store code and money."""
    return [
        {"week": f"2024-0{m}-0{d}", "loja": loja, "cod_loja": code, "preco": 9.9 + d,
         "faturamento": 10.0 * code,
         "tickets_opened": 5 * code, "tickets_resolved": 4 * code, "estoque_final": code,
         "avg_resolution_hours": 3.0 * code, "entregas": 10 * code + d, "atrasadas": code,
         "ad_spend_usd": 2.5 * code}
        for m in (1, 2) for d in (1, 8) for loja, code in (("Centro", 1), ("Sul", 2))
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("question", "measure", "dims"),
    [
        # A word naming the store column names the stores, not a count of their codes; the
        # verb of earning names the money that adds up, not the price.
        ("Qual loja faturou mais?", "faturamento", ["loja"]),
        ("Which store has the most stock?", "estoque_final", ["loja"]),
        # A two-word name split by the sentence, through synonyms ("closed" for resolved).
        ("How many tickets were closed?", "tickets_resolved", []),
        ("Qual loja resolveu menos chamados?", "tickets_resolved", ["loja"]),
        # A whole named beside its part names the part: the late deliveries, not all of them.
        ("Qual loja teve mais entregas atrasadas?", "atrasadas", ["loja"]),
        ("Which store had the most late deliveries?", "atrasadas", ["loja"]),
        # A currency in a column's name only says what it is counted in.
        ("How much did we spend on ads?", "ad_spend_usd", []),
    ],
)
def test_the_measure_a_question_names(question: str, measure: str, dims: list[str]) -> None:
    with data.from_records(_desk()) as table:
        prof = profile(table)
    plan = rule_plan(question, prof)
    assert plan is not None
    assert [m.column for m in plan.measures] == [measure] and plan.dimensions == dims


@pytest.mark.parametrize(
    ("question", "dims"),
    [
        # "itens" names the products (item, produto): after "quantos" with a verb of selling it
        # is what is counted (the units sold), not a ranking of the products.
        ("Quantos itens vendemos por categoria?", ["categoria"]),
        ("How many items did we sell per category?", ["categoria"]),
        ("Quantos itens vendemos?", []),
        ("Qual item vendeu mais?", ["produto"]),
    ],
)
def test_items_sold_are_units_not_a_breakdown(question: str, dims: list[str]) -> None:
    rows = [
        {"produto": f"p{i % 6}", "categoria": ("bebidas", "padaria")[i % 2],
         "quantidade": 1 + i % 4, "valor": 10.0 + i}
        for i in range(48)
    ]  # fmt: skip
    with data.from_records(rows) as table:
        prof = profile(table)
    plan = rule_plan(question, prof)
    assert plan is not None
    assert plan.dimensions == dims
    if question.startswith(("Quantos", "How many")):
        assert [m.column for m in plan.measures] == ["quantidade"]


@pytest.mark.parametrize(
    ("question", "order"),
    [
        ("Which store resolves tickets faster?", "asc"),
        ("Qual loja é a mais lenta para resolver chamados?", "desc"),
    ],
)
def test_faster_is_the_shortest_average_time(question: str, order: str) -> None:
    with data.from_records(_desk()) as table:
        prof = profile(table)
    plan = rule_plan(question, prof)
    assert plan is not None and plan.order == order
    assert [(m.column, m.agg) for m in plan.measures] == [("avg_resolution_hours", "avg")]


@pytest.mark.parametrize(
    "question", ["Which department has the largest team?", "Qual departamento tem a maior equipe?"]
)
def test_a_team_s_size_is_its_people(question: str) -> None:
    with data.from_records(_headcount()) as table:
        prof = profile(table)
    plan = rule_plan(question, prof)
    assert plan is not None and [m.column for m in plan.measures] == ["headcount"]
    assert plan.dimensions == ["department"]
