"""Column roles: a week or month number is an ordinal key, never a measure to sum."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billumy.errors import BadRequestError
from billumy.insights import data
from billumy.insights.data import Table
from billumy.insights.facts import Measure, Plan, rule_plan, salient_facts, validate_plan
from billumy.insights.profile import is_ordinal_name, profile
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
