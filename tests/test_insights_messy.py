"""Data and questions as people write them: a month of accounts as ``mm/yyyy``, a dot that
groups thousands in a file whose decimals take a comma, a stock recorded per hour beside a
date, and a segment named by a word of its value beside its column's word ("a fila de
vendas"). References are computed here in Python, not by Billumy."""

from __future__ import annotations

from datetime import date
from typing import Any

from billumy.insights import data, facts
from billumy.insights import question as questions
from billumy.insights.formats import for_language
from billumy.insights.profile import profile
from billumy.insights.service import InsightService
from billumy.insights.statements import Context, describe

RENTALS = (
    "competencia;agencia;frota;km_rodados;receita\n"
    "01/2024;Guarulhos;57;219.498;R$ 156.441,64\n"
    "01/2024;Confins;40;1.021.002;R$ 98.100,00\n"
    "02/2024;Guarulhos;58;201.100;R$ 150.000,50\n"
    "02/2024;Confins;41;9.870;R$ 99.000,00\n"
)


def test_a_month_of_accounts_and_thousands_grouped_by_dots_in_a_comma_decimal_file() -> None:
    with data.from_csv(RENTALS) as table:
        assert table.types["competencia"] == "DATE"
        assert table.types["km_rodados"] == "DOUBLE"
        rows = table.query("SELECT competencia, km_rodados, receita FROM data ORDER BY rowid")
    assert rows[0] == (date(2024, 1, 1), 219_498, 156_441.64)
    assert rows[1][1] == 1_021_002 and rows[3][1] == 9_870
    assert rows[2][0] == date(2024, 2, 1)


def test_a_dot_is_a_decimal_point_where_the_file_has_no_decimal_comma() -> None:
    with data.from_csv("mes;peso\n01/2024;219.498\n02/2024;3.5\n") as table:
        assert [r[0] for r in table.query("SELECT peso FROM data ORDER BY rowid")] == [
            219.498,
            3.5,
        ]
    # "13/2024" is no month: the column stays text.
    with data.from_csv("mes;valor\n01/2024;1\n13/2024;2\n") as table:
        assert table.types["mes"] == "VARCHAR"


def _hourly() -> list[dict[str, Any]]:
    rows = []
    for day in (1, 2):
        for hour in (8, 9, 10):
            for queue, agents in (("Q01 Vendas", 5), ("Q02 Suporte", 8)):
                rows.append(
                    {"date": f"2024-09-0{day}", "hour": hour, "queue": queue,
                     "calls_offered": 10 * hour + day, "agents_logged": agents + hour - day}
                )  # fmt: skip
    return rows


def _facts(rows: list[dict[str, Any]], text: str, lang: str) -> tuple[list[Any], Context]:
    with data.from_records(rows) as table:
        prof = profile(table)
        asked = questions.parse(text, prof)
        plan = questions.reconcile(facts.rule_plan(text, prof), asked, prof, "rules")
        found, planned = InsightService._facts(table, prof, plan, 3, text, asked)
    return [f for f in found if f.id in planned], Context(for_language(lang), prof, plan, planned)


def test_a_stock_recorded_per_hour_is_the_latest_hour_of_the_latest_day() -> None:
    rows = _hourly()
    found, ctx = _facts(rows, "How many agents are logged in right now?", "en")
    stock = next(f for f in found if f.as_of is not None)
    latest = [r for r in rows if r["date"] == "2024-09-02" and r["hour"] == 10]
    expected = sum(r["agents_logged"] for r in latest)
    assert stock.values["sum_agents_logged"] == expected
    assert stock.as_of["hour"] == 10
    assert describe(stock, ctx) == f"On Sep 2, 2024 at 10:00, total agents_logged is {expected}."


def test_a_segment_named_beside_its_columns_word_is_a_filter_not_a_measure() -> None:
    rows = [{**r, "sales_brl": 100.0 * r["hour"]} for r in _hourly()]
    with data.from_records(rows) as table:
        prof = profile(table)
    text = "em media quantas ligacoes por dia a fila de vendas recebe"
    plan = facts.rule_plan(text, prof)
    assert plan is not None and plan.measures[0].column == "calls_offered"
    asked = questions.parse(text, prof)
    plan = questions.reconcile(plan, asked, prof, "rules")
    assert [(f.column, f.value) for f in plan.filters] == [("queue", "Q01 Vendas")]
    # "the Cobrança queue" asks about one queue: no ranking of all of them.
    text = "What's the average number of calls offered on the Suporte queue?"
    asked = questions.parse(text, prof)
    plan = questions.reconcile(facts.rule_plan(text, prof), asked, prof, "rules")
    assert plan is not None and plan.dimensions == []
    assert [(f.column, f.value) for f in plan.filters] == [("queue", "Q02 Suporte")]
