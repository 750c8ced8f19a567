"""Data and questions as people write them: a month of accounts as ``mm/yyyy``, a dot that
groups thousands in a file whose decimals take a comma, a stock recorded per hour beside a
date, and a segment named by a word of its value beside its column's word ("a fila de
vendas"). References are computed here in Python, not by Billumy."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any

import pytest

from billumy.insights import data
from billumy.insights import question as questions
from billumy.insights.formats import for_language
from billumy.insights.profile import profile
from billumy.insights.rules import rule_plan
from billumy.insights.service import InsightService, _clause_period, derive_weekday
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


def test_a_month_by_its_name_as_spreadsheets_write_it_in_portuguese_and_english() -> None:
    # pt-BR Excel shows a month as "jan/23"; others write "fev/2024", "Mar-24", "março/2024".
    written = ["jan/23", "fev/2024", "Mar-24", "abr.24", "março/2024", "Sep 2024", "dez/23"]
    written += ["out/23"]
    csv = "mes;os\n" + "".join(f"{m};{i}\n" for i, m in enumerate(written))
    with data.from_csv(csv) as table:
        assert table.types["mes"] == "DATE"
        months = [r[0] for r in table.query("SELECT mes FROM data ORDER BY rowid")]
    assert months == [
        date(2023, 1, 1), date(2024, 2, 1), date(2024, 3, 1), date(2024, 4, 1),
        date(2024, 3, 1), date(2024, 9, 1), date(2023, 12, 1), date(2023, 10, 1),
    ]  # fmt: skip
    with data.from_csv("mes;taxa\njaneiro de 2023;0,92%\nmarço de 2024;1,65%\n") as table:
        assert table.types["mes"] == "DATE" and table.types["taxa"] == "DOUBLE"
        assert table.query("SELECT mes, taxa FROM data ORDER BY rowid") == [
            (date(2023, 1, 1), 0.92),
            (date(2024, 3, 1), 1.65),
        ]
    # US dates without leading zeros.
    with data.from_csv("day,n\n1/1/2024,1\n1/16/2024,2\n") as table:
        assert table.query("SELECT day FROM data ORDER BY rowid") == [
            (date(2024, 1, 1),),
            (date(2024, 1, 16),),
        ]
    # A word that is no month keeps the column text.
    with data.from_csv("mes;os\njan/23;1\nfoo/23;2\n") as table:
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
        plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
        if plan is not None and asked.has("compare_periods"):
            plan = _clause_period(text, prof, plan)  # as the service does
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
    plan = rule_plan(text, prof)
    assert plan is not None and plan.measures[0].column == "calls_offered"
    asked = questions.parse(text, prof)
    plan = questions.reconcile(plan, asked, prof, "rules")
    assert [(f.column, f.value) for f in plan.filters] == [("queue", "Q01 Vendas")]
    # "the Cobrança queue" asks about one queue: no ranking of all of them.
    text = "What's the average number of calls offered on the Suporte queue?"
    asked = questions.parse(text, prof)
    plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
    assert plan is not None and plan.dimensions == []
    assert [(f.column, f.value) for f in plan.filters] == [("queue", "Q02 Suporte")]


def _projects() -> list[dict[str, Any]]:
    """One row per contract: a status, a yes/no, a capacity in kWp, days to install."""
    rows = []
    for i in range(60):
        segment = ("Residential", "Commercial", "Agribusiness")[i % 3]
        status = "Cancelled" if i % 7 == 0 else "Installed" if i % 2 == 0 else "In Progress"
        rows.append(
            {"project_id": 1000 + i, "state": ("SP", "MG")[i % 2], "segment": segment,
             "system_kwp": 5.0 + i, "financed": "Yes" if i % 3 else "No", "status": status,
             "install_days": 30 + i % 20 if status == "Installed" else None}
        )  # fmt: skip
    return rows


def test_a_value_word_is_a_filter_not_a_column_that_starts_like_it_and_kwp_names_its_column() -> (
    None
):
    with data.from_records(_projects()) as table:
        prof = profile(table)
    plan = rule_plan("Which state has the most installed capacity in kWp?", prof)
    assert plan is not None
    assert [(m.column, m.agg) for m in plan.measures] == [("system_kwp", "sum")]
    assert plan.dimensions == ["state"]
    assert [(f.column, f.value) for f in plan.filters] == [("status", "Installed")]


def test_a_rate_of_rows_is_the_share_holding_a_value_per_segment() -> None:
    rows = _projects()
    found, ctx = _facts(rows, "Which segment has the highest cancellation rate?", "en")
    ratio = next(f for f in found if f.kind == "ratio")
    expected = {
        s: 100
        * sum(1 for r in rows if r["segment"] == s and r["status"] == "Cancelled")
        / sum(1 for r in rows if r["segment"] == s)
        for s in ("Residential", "Commercial", "Agribusiness")
    }
    assert {r["segment"]: r["ratio_pct"] for r in ratio.rows} == expected
    cancelled = sum(1 for r in rows if r["status"] == "Cancelled")
    assert describe(ratio, ctx).startswith(
        "The cancellation rate (rows with status Cancelled over all rows) is "
        f"{100 * cancelled / len(rows):.1f}% ({cancelled} of {len(rows)}). By segment, "
    )
    # A yes/no column named by its participle, in Portuguese: its "Yes" rows.
    found, ctx = _facts(rows, "Qual % dos projetos foi financiada?", "pt")
    ratio = next(f for f in found if f.kind == "ratio")
    financed = sum(1 for r in rows if r["financed"] == "Yes")
    assert ratio.values["part_total"] == financed and ratio.values["whole_total"] == len(rows)
    assert describe(ratio, ctx).startswith("A proporção de registros com financed Yes é de ")


def test_a_cancellation_rate_beside_bookings_is_over_the_bookings_and_a_fleet_is_a_stock() -> None:
    rows = [
        {"mes": f"2024-{m:02d}-01", "agencia": a, "frota": 40 + m, "reservas": 100 * m + k,
         "cancelamentos": m + 3 * k}
        for m in range(1, 4)
        for a, k in (("Centro", 1), ("Aeroporto", 2))
    ]  # fmt: skip
    found, ctx = _facts(rows, "qual agencia tem a maior taxa de cancelamento", "pt")
    ratio = next(f for f in found if f.kind == "ratio")
    assert (ratio.values["part"], ratio.values["whole"]) == ("cancelamentos", "reservas")
    assert describe(ratio, ctx).startswith("A taxa de cancelamento (cancelamentos sobre reservas)")
    found, _ = _facts(rows, "Quantos carros a gente tem na frota hoje?", "pt")
    stock = next(f for f in found if f.as_of is not None)
    assert stock.values["sum_frota"] == sum(r["frota"] for r in rows if r["mes"] == "2024-03-01")


def _rentals() -> list[dict[str, Any]]:
    return [
        {"competencia": f"2024-{m:02d}-01", "agencia": a, "grupo": g, "locacoes": 10 * m + k,
         "receita": 800.0 * (10 * m + k) + 50 * k}
        for m in range(1, 13)
        for a, k in (("Centro", 1), ("Aeroporto", 3))
        for g in ("SUV", "Econômico")
    ]  # fmt: skip


def test_a_compound_names_its_last_word_and_over_the_year_is_read_by_month() -> None:
    with data.from_records(_rentals()) as table:
        prof = profile(table)
    plan = rule_plan("Compare our rental revenue in Q3 vs Q4.", prof)
    assert plan is not None and [m.column for m in plan.measures] == ["receita"]
    plan = rule_plan("How have SUV rentals trended over the year?", prof)
    assert plan is not None and [m.column for m in plan.measures] == ["locacoes"]
    assert plan.period is not None and plan.period.grain == "month"
    # Two quantities joined by "and" are both asked for.
    plan = rule_plan("How many rentals and how much revenue in March?", prof)
    assert plan is not None and {m.column for m in plan.measures} == {"locacoes", "receita"}


def test_an_amount_per_unit_is_not_shown_beside_the_rows_average() -> None:
    rows = _rentals()
    found, _ = _facts(rows, "What's the average revenue per rental at Centro?", "en")
    per = next(f for f in found if f.kind == "per")
    centro = [r for r in rows if r["agencia"] == "Centro"]
    assert per.values["per_value"] == sum(r["receita"] for r in centro) / sum(
        r["locacoes"] for r in centro
    )
    assert not [f for f in found if f.kind == "aggregate" and "avg_receita" in f.values]


def test_how_long_is_the_duration_and_a_share_is_of_the_segment_named_last() -> None:
    rows = _projects()
    with data.from_records(rows) as table:
        prof = profile(table)
    plan = rule_plan("How long does a commercial installation take on average?", prof)
    assert plan is not None and [(m.column, m.agg) for m in plan.measures] == [
        ("install_days", "avg")
    ]
    text = "What share of our installed capacity comes from agribusiness?"
    asked = questions.parse(text, prof)
    plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
    assert plan is not None and plan.dimensions == ["segment"]
    assert [(f.column, f.value) for f in plan.filters] == [("status", "Installed")]


def test_maintenance_and_energy_generated_are_said_missing() -> None:
    from billumy.insights.answer import missing_columns

    with data.from_records(_rentals()) as table:
        prof = profile(table)
    missing = missing_columns("Quanto gastamos com manutenção da frota em cada agência?", prof)
    assert "manutenção" in [c.pt for c in missing]
    with data.from_records(_projects()) as table:
        prof = profile(table)
    missing = missing_columns("How much energy did our installed systems generate?", prof)
    assert "energy generation" in [c.en for c in missing]


def test_excluding_a_value_keeps_every_other_and_a_value_one_letter_off_is_named() -> None:
    rows = _projects()
    with data.from_records(rows) as table:
        prof = profile(table)
    text = "What was the total contract value, excluding cancelled projects?"
    plan = rule_plan(text.replace("contract value", "system kwp"), prof)
    assert plan is not None
    assert [(f.column, f.op, f.value) for f in plan.filters] == [("status", "!=", "Cancelled")]
    found, ctx = _facts(rows, "What is the total system_kwp excluding cancelled projects?", "en")
    total = next(f for f in found if f.kind == "aggregate")
    expected = sum(r["system_kwp"] for r in rows if r["status"] != "Cancelled")
    assert total.values["sum_system_kwp"] == expected
    assert describe(total, ctx).startswith("Where status is not Cancelled, total system_kwp is ")
    # "residenciais" is the Portuguese of Residential, one letter off once singular; "Comercial"
    # of Commercial. Words that name columns or months are never read so.
    for text, value in (
        ("Teve algum mês em que os contratos residenciais despencaram?", "Residential"),
        ("quanto o segmento comercial vendeu?", "Commercial"),
    ):
        assert questions.parse(text, prof).segments == {"segment": [value]}
    assert questions.parse("How many projects in total?", prof).segments == {}


def test_a_time_of_something_the_data_lacks_and_a_segment_it_only_counts_are_said() -> None:
    from billumy.insights.answer import missing_columns

    rows = [{**r, "avg_wait_sec": 30 + r["hour"]} for r in _hourly()]
    with data.from_records(rows) as table:
        prof = profile(table)
    # A time of waiting is no time of handling; a time of waiting is there.
    missing = missing_columns("Qual o tempo médio de atendimento (TMA) de cada fila?", prof)
    assert [c.pt for c in missing] == ["tempo de atendimento"]
    assert missing_columns("Qual o tempo médio de espera da fila?", prof) == []
    # agents_logged counts agents; it does not say which one handled what.
    missing = missing_columns("Which agent handled the most calls?", prof)
    assert [(c.en, list(c.counted)) for c in missing] == [("agent", ["agents_logged"])]
    assert [c.pt for c in missing_columns("qual agente atendeu mais?", prof)] == ["agente"]
    # A segment column under another name is not said missing ("which queue", "qual fila").
    assert missing_columns("Which queue gets the most calls?", prof) == []
    assert missing_columns("Which restaurant sold the most?", prof) == []


def test_a_day_named_by_its_month_and_a_month_word_inside_a_value() -> None:
    rows = [
        {"data": f"2024-{m:02d}-{d:02d}", "hotel": h, "receita": 100.0 * m + d + k}
        for m in (2, 3)
        for d in range(1, 29)
        for h, k in (("Copacabana Mar Hotel", 0), ("Serra Azul", 7))
    ]  # fmt: skip
    with data.from_records(rows) as table:
        prof = profile(table)
    for text in (
        "What was Copacabana Mar Hotel's revenue on Feb 10, 2024?",
        "Qual foi a receita do Copacabana Mar Hotel em 10 de fevereiro de 2024?",
        "Qual foi a receita do Copacabana Mar Hotel em 10 de fevereiro?",
    ):
        asked = questions.parse(text, prof)
        assert [w.label for w in asked.windows] == ["2024-02-10"], text
    found, ctx = _facts(rows, "What was Copacabana Mar Hotel's revenue on Feb 10, 2024?", "en")
    total = next(f for f in found if f.kind == "aggregate")
    assert total.values["sum_receita"] == 210.0
    assert describe(total, ctx) == (
        "For hotel Copacabana Mar Hotel on Feb 10, 2024, total receita is R$210.00."
    )
    # "Mar" alone, capitalised, is still March; "fevereiro 31" is no day.
    assert [w.label for w in questions.parse("Revenue in Mar?", prof).windows] == ["2024-03"]
    assert [w.label for w in questions.parse("receita em 31 de fevereiro", prof).windows] == [
        "2024-02"
    ]


def test_a_rate_compared_across_periods_is_the_ratio_of_sums_in_each() -> None:
    rows = []
    for m in range(1, 7):
        for hotel, rooms, busy in (("Centro", 100, 60 + 5 * m), ("Praia", 20, 19 - m)):
            rows.append(
                {"data": f"2024-{m:02d}-01", "hotel": hotel, "quartos_disponiveis": rooms,
                 "quartos_ocupados": busy, "taxa_ocupacao": round(100 * busy / rooms, 2)}
            )  # fmt: skip
    found, ctx = _facts(rows, "Compare our occupancy rate in Q1 vs Q2.", "en")
    change = next(f for f in found if f.kind == "change")

    def rate(months: range) -> float:
        kept = [r for r in rows if int(r["data"][5:7]) in months]
        return (
            100
            * sum(r["quartos_ocupados"] for r in kept)
            / sum(r["quartos_disponiveis"] for r in kept)
        )

    q1, q2 = rate(range(1, 4)), rate(range(4, 7))
    assert (change.values["value_a"], change.values["value_b"]) == (q1, q2)
    said = describe(change, ctx)
    assert said.startswith(
        f"The occupancy rate (quartos_ocupados over quartos_disponiveis) went from {q1:.1f}% in "
        f"the 1st quarter 2024 to {q2:.1f}% in the 2nd quarter 2024 ("
    )
    # The plain average of the column of rates (each hotel weighed alike) is not shown.
    assert not [f for f in found if f.kind == "aggregate" and "avg_taxa_ocupacao" in f.values]


def test_each_segments_own_growth_is_said_and_halves_chained_by_pro() -> None:
    rows = _rentals()
    text = "Qual grupo cresceu mais em locações do 1º pro 2º semestre?"
    with data.from_records(rows) as table:
        prof = profile(table)
    assert [w.label for w in questions.parse(text, prof).windows] == ["2024-H1", "2024-H2"]
    found, ctx = _facts(rows, text, "pt")
    change = next(f for f in found if f.kind == "change")

    def total(group: str, months: range) -> int:
        return sum(
            r["locacoes"]
            for r in rows
            if r["grupo"] == group and int(r["competencia"][5:7]) in months
        )

    for row in change.rows:
        first, second = (
            total(str(row["segment"]), range(1, 7)),
            total(str(row["segment"]), range(7, 13)),
        )
        assert row["change_pct"] == 100 * (second - first) / first
    suv = next(r for r in change.rows if r["segment"] == "SUV")
    assert f"SUV +{suv['change']}, +{suv['change_pct']:.1f}%".replace(".", ",") in describe(
        change, ctx
    )


def test_deals_are_rows_and_a_clause_may_ask_another_aggregate_of_a_measure() -> None:
    with data.from_records(_projects()) as table:
        prof = profile(table)
    plan = rule_plan("Which segment closed the fewest deals?", prof)
    assert plan is not None and [(m.column, m.agg) for m in plan.measures] == [
        ("project_id", "count")
    ]
    assert plan.order == "asc"
    text = "For SP: how many kWp in total, and what's the average system size?"
    plan = rule_plan(text, prof)
    assert plan is not None
    assert [(m.column, m.agg) for m in plan.measures] == [
        ("system_kwp", "sum"),
        ("system_kwp", "avg"),
    ]


def test_money_by_its_currency_sign_or_kind_and_a_rate_named_by_its_yes_no_column() -> None:
    from billumy.insights.profile import money_of

    assert money_of("Valor Total (R$)") == (True, "BRL")
    assert money_of("Frete") == (True, "BRL")
    assert money_of("Qtde") == (False, None)
    rows = [
        {"cidade": c, "valor": 10.0 * i, "cancelado": "Sim" if i % n == 0 else "Não"}
        for i in range(1, 61)
        for c, n in (("Sorocaba", 4), ("Campinas", 10))
    ]
    found, ctx = _facts(rows, "Qual a taxa de cancelamento por cidade?", "pt")
    ratio = next(f for f in found if f.kind == "ratio")
    assert describe(ratio, ctx).startswith(
        "A taxa de cancelamento (registros com cancelado Sim sobre todos os registros) é de "
    )
    # The rate by city answers; a ranking of another measure nobody asked for does not.
    assert not [f for f in found if f.kind == "breakdown"]


def test_a_yes_no_column_named_by_its_word_keeps_its_yes_or_no_rows() -> None:
    rows = [
        {"cidade": c, "valor": 10.0 * i, "cancelado": "Sim" if i % n == 0 else "Não"}
        for i in range(1, 61)
        for c, n in (("Sorocaba", 4), ("Campinas", 10))
    ]
    with data.from_records(rows) as table:
        prof = profile(table)
    plan = rule_plan("How many orders were cancelled in Sorocaba?", prof)
    assert plan is not None
    assert {(f.column, f.value) for f in plan.filters} == {
        ("cidade", "Sorocaba"),
        ("cancelado", "Sim"),
    }
    plan = rule_plan("quantos pedidos não foram cancelados?", prof)
    assert plan is not None and [(f.column, f.value) for f in plan.filters] == [
        ("cancelado", "Não")
    ]
    # A rate or a share of it: the column is the rate's part, not a restriction.
    for text in ("Qual a taxa de cancelamento por cidade?", "Qual % dos pedidos foi cancelado?"):
        plan = rule_plan(text, prof)
        assert plan is not None and not plan.filters, text
    found, _ = _facts(rows, "Qual % dos pedidos foi cancelado?", "pt")
    ratio = next(f for f in found if f.kind == "ratio")
    cancelled = sum(1 for r in rows if r["cancelado"] == "Sim")
    assert (ratio.values["part_total"], ratio.values["whole_total"]) == (cancelled, len(rows))


def test_us_dates_and_two_digit_years_are_dates() -> None:
    with data.from_csv("date,v\n01/02/2024,1\n03/15/2024,2\n") as table:
        assert table.types["date"] == "DATE"
        assert [r[0] for r in table.query("SELECT date FROM data ORDER BY rowid")] == [
            date(2024, 1, 2),
            date(2024, 3, 15),
        ]
    # Day first while no day is past 12 (the Brazilian reading).
    with data.from_csv("data;v\n01/02/2024;1\n03/04/2024;2\n") as table:
        assert table.query("SELECT data FROM data ORDER BY rowid")[0][0] == date(2024, 2, 1)
    with data.from_csv("data;v\n15/03/24;1,5\n02/01/24;2\n") as table:
        assert [r[0] for r in table.query("SELECT data FROM data ORDER BY rowid")] == [
            date(2024, 3, 15),
            date(2024, 1, 2),
        ]


def _grain() -> list[dict[str, Any]]:
    rows = []
    for m in range(1, 5):
        for producer, city, k in (
            ("Fazenda Santa Rita", "Toledo", 1),
            ("Sítio Boa Vista", "Palotina", 2),
        ):
            for grain in ("Soja", "Milho"):
                sacas = 100 * m * k + (50 if grain == "Soja" else 0)
                rows.append(
                    {"data": f"2024-{m:02d}-05", "produtor": producer, "municipio": city,
                     "grao": grain, "peso_kg": 60.0 * sacas, "sacas": sacas,
                     "valor_total": 120.0 * sacas}
                )  # fmt: skip
    return rows


def test_goods_delivered_are_their_units_and_less_is_no_except() -> None:
    with data.from_records(_grain()) as table:
        prof = profile(table)
    plan = rule_plan("qual municipio entregou menos soja em marco", prof)
    assert plan is not None
    assert [(m.column, m.agg) for m in plan.measures] == [("sacas", "sum")]
    assert [(f.column, f.op, f.value) for f in plan.filters] == [("grao", "=", "Soja")]
    assert plan.order == "asc"
    # English names of the goods and of their units name Portuguese values and columns.
    text = "How many kilos of soybeans did we receive?"
    plan = questions.reconcile(rule_plan(text, prof), questions.parse(text, prof), prof, "")
    assert plan is not None and [(m.column, m.agg) for m in plan.measures] == [("peso_kg", "sum")]
    assert [(f.column, f.value) for f in plan.filters] == [("grao", "Soja")]
    text = "What share of the soy sacks came from Toledo?"
    asked = questions.parse(text, prof)
    assert asked.segments == {"municipio": ["Toledo"], "grao": ["Soja"]}


def test_a_place_named_by_its_first_word_as_a_name_and_a_rate_over_its_dominating_column() -> None:
    rows = [
        {"day": f"2024-01-{d:02d}", "location": loc, "bookings": 40 + d, "no_shows": d % 5,
         "capacity_hours": 600, "booked_hours": 300.5 + d}
        for d in range(1, 29)
        for loc in ("Denver LoDo", "Seattle SLU")
    ]  # fmt: skip
    with data.from_records(rows) as table:
        prof = profile(table)
    assert questions.parse("How have Denver's bookings trended?", prof).segments == {
        "location": ["Denver LoDo"]
    }
    found, _ = _facts(rows, "What's the no-show rate at Seattle?", "en")
    ratio = next(f for f in found if f.kind == "ratio")
    assert (ratio.values["part"], ratio.values["whole"]) == ("no_shows", "bookings")
    seattle = [r for r in rows if r["location"] == "Seattle SLU"]
    assert ratio.values["ratio_pct"] == 100 * sum(r["no_shows"] for r in seattle) / sum(
        r["bookings"] for r in seattle
    )


def test_an_anomaly_check_keeps_the_rows_of_a_segment_named_on_another_column() -> None:
    rows = []
    for d in range(1, 57):
        day = date(2024, 1, 1) + timedelta(days=d)
        for location in ("Austin", "Denver"):
            for space, base in (("Hot Desk", 40), ("Meeting Room", 15)):
                spike = 3 if (location, space, d) == ("Austin", "Meeting Room", 40) else 1
                rows.append(
                    {"date": day.isoformat(), "location": location, "space_type": space,
                     "bookings": base * spike + d % 3}
                )  # fmt: skip
    # The meeting rooms spiked; the hot desks did not: asked about hot desks, the answer is no.
    found, _ = _facts(rows, "Did hot desk bookings spike anywhere on any day?", "en")
    anomaly = next(f for f in found if f.kind == "anomaly")
    assert anomaly.values["count"] == 0
    found, _ = _facts(rows, "Did meeting room bookings spike anywhere on any day?", "en")
    anomaly = next(f for f in found if f.kind == "anomaly")
    assert anomaly.values["count"] == 1 and anomaly.rows[0]["segment"] == "Austin"


def test_a_rate_of_a_yes_no_column_named_in_the_other_language_keeps_its_accents() -> None:
    rows = [
        {"product": p, "revenue_usd": 10.0 * i, "returned": "Yes" if i % n == 0 else "No"}
        for i in range(1, 41)
        for p, n in (("Gizmo", 4), ("Widget", 10))
    ]
    found, ctx = _facts(rows, "Qual produto teve a maior taxa de devolução?", "pt")
    ratio = next(f for f in found if f.kind == "ratio")
    assert {r["product"]: r["ratio_pct"] for r in ratio.rows} == {"Gizmo": 25.0, "Widget": 10.0}
    assert describe(ratio, ctx).startswith(
        "A taxa de devolução (registros com returned Yes sobre todos os registros) é de 17,5% "
    )


def _loads(months: int = 6) -> list[dict[str, Any]]:
    """A cooperative's loads: one row a load (a numeric ticket), six producers over six
    months; Santa Rita delivers 2.8x in March, Palotina's producers 0.3x in May, and Milho
    grows 22% a month (its early months are low because of that growth, not an event)."""
    rows, ticket = [], 1000
    producers = (
        ("Fazenda Santa Rita", "Toledo"),
        ("Sítio Boa Esperança", "Toledo"),
        ("Fazenda São José", "Cascavel"),
        ("Agropecuária Três Irmãos", "Cascavel"),
        ("Sítio Recanto Verde", "Palotina"),
        ("Fazenda Kowalski", "Palotina"),
    )
    for m in range(1, months + 1):
        for i, (producer, city) in enumerate(producers):
            factor = 2.8 if (producer, m) == ("Fazenda Santa Rita", 3) else 1.0
            factor *= 0.3 if (city, m) == ("Palotina", 5) else 1.0
            for grain, base in (("Soja", 400.0 + 7 * i + (m % 2) * 9), ("Milho", 100 * 1.22**m)):
                ticket += 1
                sacas = round(base * factor, 2)
                rows.append(
                    {"romaneio": ticket, "data": f"2024-{m:02d}-{10 + i:02d}",
                     "produtor": producer, "municipio": city, "grao": grain, "sacas": sacas,
                     "preco_saca": 120.0, "valor_total": round(120.0 * sacas, 2)}
                )  # fmt: skip
    return rows


def test_six_months_are_judged_on_large_changes_only() -> None:
    rows = _loads()
    found, ctx = _facts(rows, "Algum produtor entregou muito acima do normal em algum mês?", "pt")
    anomaly = next(f for f in found if f.kind == "anomaly")
    assert [(r["segment"], r["period"]) for r in anomaly.rows] == [
        ("Fazenda Santa Rita", "2024-03")
    ]
    assert describe(anomaly, ctx).startswith("Sim: Fazenda Santa Rita teve pico forte em março")
    found, _ = _facts(rows, "teve queda forte nas entregas de algum municipio em algum mes?", "pt")
    anomaly = next(f for f in found if f.kind == "anomaly")
    assert [(r["segment"], r["period"]) for r in anomaly.rows] == [("Palotina", "2024-05")]
    # Milho's growth is a trend, not a run of anomalies: its January is not a drop.
    found, _ = _facts(rows, "Did any grain drop sharply in any month?", "en")
    anomaly = next(f for f in found if f.kind == "anomaly")
    assert all(r["segment"] != "Milho" for r in anomaly.rows)
    # Four months are still too few to judge.
    found, ctx = _facts(_loads(4), "Algum produtor entregou muito acima do normal?", "pt")
    anomaly = next(f for f in found if f.kind == "anomaly")
    assert "são precisos pelo menos 5" in describe(anomaly, ctx)


def test_loads_counted_beside_other_measures_and_paid_is_the_money_that_adds_up() -> None:
    rows = _loads()
    text = (
        "Em abril: quantas cargas recebemos, quantas sacas foram e quanto pagamos aos produtores?"
    )
    with data.from_records(rows) as table:
        prof = profile(table)
    plan = rule_plan(text, prof)
    assert plan is not None
    assert [(m.column, m.agg) for m in plan.measures] == [
        ("sacas", "sum"),
        ("valor_total", "sum"),
        ("*", "count"),
    ]
    # Counted things that are columns are no rows: "quantas sacas" is the sacks' total.
    plan = rule_plan("quantas sacas de milho recebemos?", prof)
    assert plan is not None and [m.column for m in plan.measures] == ["sacas"]


def test_the_semester_without_its_number_is_the_datas_latest_and_a_grain_is_a_grao() -> None:
    rows = _loads()
    with data.from_records(rows) as table:
        prof = profile(table)
    asked = questions.parse("Qual produtor entregou mais sacas no semestre?", prof)
    assert [w.label for w in asked.windows] == ["2024-H1"]
    plan = rule_plan("Which grain grew the most in sacks from January to June?", prof)
    assert plan is not None and plan.dimensions == ["grao"]
    assert [m.column for m in plan.measures] == ["sacas"]


def test_a_question_in_lower_case_names_a_place_by_its_first_word() -> None:
    rows = [
        {"day": f"2024-01-{d:02d}", "location": loc, "revenue_usd": 100.0 + d}
        for d in range(1, 29)
        for loc in ("Denver LoDo", "Seattle SLU")
    ]
    with data.from_records(rows) as table:
        prof = profile(table)
    assert questions.parse("a receita de denver caiu muito em algum dia?", prof).segments == {
        "location": ["Denver LoDo"]
    }
    # Written with capitals, a lower-case word is an ordinary word, not a name.
    assert questions.parse("A receita de denver caiu?", prof).segments == {}


def test_occupancy_is_booked_hours_over_capacity() -> None:
    rows = [
        {"day": f"2024-02-{d:02d}", "location": loc, "space_type": space,
         "capacity_hours": 100, "booked_hours": float(h + d % 3), "revenue_usd": 10.0 * h}
        for d in range(1, 29)
        for loc, h in (("Austin Downtown", 40), ("Seattle SLU", 25))
        for space in ("Hot Desk", "Meeting Room")
    ]  # fmt: skip
    found, _ = _facts(rows, "Which location has the highest hot desk occupancy?", "en")
    ratio = next(f for f in found if f.kind == "ratio")
    assert (ratio.values["part"], ratio.values["whole"]) == ("booked_hours", "capacity_hours")
    austin = [
        r for r in rows if r["location"] == "Austin Downtown" and r["space_type"] == "Hot Desk"
    ]
    expected = (
        100 * sum(r["booked_hours"] for r in austin) / sum(r["capacity_hours"] for r in austin)
    )
    assert {r["location"]: r["ratio_pct"] for r in ratio.rows}["Austin Downtown"] == expected


def test_an_area_is_said_missing_and_members_only_when_picked_among() -> None:
    from billumy.insights.answer import missing_columns

    with data.from_records(_loads()) as table:
        prof = profile(table)
    missing = missing_columns("What was each producer's yield per hectare?", prof)
    assert "area (hectares)" in [c.en for c in missing]
    assert "member" in [c.en for c in missing_columns("Which members book the most?", prof)]
    # Counting members is a count a column of cancellations answers: nothing is missing.
    rows = [{"mes": f"2024-{m:02d}-01", "cancelamentos": m, "alunos_ativos": 100} for m in (1, 2)]
    with data.from_records(rows) as table:
        prof = profile(table)
    assert missing_columns("How many members cancelled in 2024?", prof) == []


def test_an_average_length_is_hours_over_bookings_and_bookable_hours_are_the_capacity() -> None:
    rows = [
        {"date": f"2024-04-{d:02d}", "location": loc, "capacity_hours": cap, "bookings": 20 + d,
         "booked_hours": 5.0 * (20 + d) + d % 4, "revenue_usd": 30.0 * (20 + d)}
        for d in range(1, 29)
        for loc, cap in (("Austin Downtown", 600), ("Seattle SLU", 500))
    ]  # fmt: skip
    text = "For April: total bookings, total revenue, and the average booking length in hours?"
    found, _ = _facts(rows, text, "en")
    per = next(f for f in found if f.kind == "per")
    assert (per.values["numerator"], per.values["denominator"]) == ("booked_hours", "bookings")
    assert per.values["per_value"] == sum(r["booked_hours"] for r in rows) / sum(
        r["bookings"] for r in rows
    )
    # Not also "the average bookings" (the rows' average of the bookings column).
    assert not any("avg_bookings" in f.values for f in found)
    with data.from_records(rows) as table:
        prof = profile(table)
    plan = rule_plan("How many bookable hours do we have across all locations today?", prof)
    assert plan is not None and [m.column for m in plan.measures] == ["capacity_hours"]


def _bakery() -> list[dict[str, Any]]:
    rows = []
    for m in range(1, 13):
        for store_no, store in ((101, "Pearl District"), (102, "Ballard")):
            for line, base in (("Bread", 400), ("Cakes", 150)):
                sold = base + 3 * m
                rows.append(
                    {"month_end": f"2024-{m:02d}-28", "store_no": store_no, "store": store,
                     "product_line": line, "units_baked": sold + 40, "units_sold": sold,
                     "net_sales_usd": 4.5 * sold, "promo": "Yes" if m % 4 == 0 else "No",
                     "menu_items": 12 if line == "Bread" else 7}
                )  # fmt: skip
    return rows


def test_a_number_column_is_an_id_and_no_is_in_not_a_no() -> None:
    with data.from_records(_bakery()) as table:
        prof = profile(table)
    assert prof.column("store_no") is not None and prof.column("store_no").kind == "id"
    text = "Quantos pães vendemos no ano?"
    asked = questions.parse(text, prof)
    assert asked.segments == {"product_line": ["Bread"]}  # not promo "No"
    plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
    assert plan is not None and [m.column for m in plan.measures] == ["units_sold"]
    # "no ano" is the data's year ("in the year"), and "no" no promo value.
    assert [(f.column, f.value) for f in plan.filters] == [
        ("product_line", "Bread"),
        ("month_end", "2024-01-01"),
        ("month_end", "2025-01-01"),
    ]
    # "linha de produto" names the product lines; "produto" is no synonym of menu_items here.
    plan = rule_plan("Qual linha de produto mais cresceu de janeiro a dezembro?", prof)
    assert plan is not None and plan.dimensions == ["product_line"]
    assert [m.column for m in plan.measures] == ["net_sales_usd"]


def test_today_is_the_latest_date_and_this_month_beside_last_month_is_the_one_before() -> None:
    rows = [
        {"data": f"2024-{m:02d}-{d:02d}", "unidade": u, "consultas": 10 + d, "internados": d % 5}
        for m in (5, 6)
        for d in range(1, 29)
        for u in ("Moema", "Pinheiros")
    ]
    found, _ = _facts(rows, "Quantos animais estão internados hoje?", "pt")
    total = next(f for f in found if f.kind == "aggregate")
    assert list(total.values.values()) == [2 * (28 % 5)]
    with data.from_records(rows) as table:
        prof = profile(table)
    asked = questions.parse("quantas consultas fizemos esse mês vs o mês pasado?", prof)
    assert [w.label for w in asked.windows] == ["2024-06", "2024-05"]
    # Saturdays named: a weekday column is derived to filter on (a clinic's Mon-Sat).
    from billumy.insights.service import derive_weekday

    with data.from_records(rows) as table:
        table = derive_weekday(table, set(), "Quantas consultas aos sábados?", "pt")
        assert "dia_da_semana" in table.columns
    # Appointments are no-shows plus consultations: the no-show rate is over appointments,
    # though consultations are larger than no-shows on every row too.
    rows = [
        {"data": f"2024-06-{d:02d}", "unidade": "Alphaville", "agendamentos": 40 + d % 3,
         "faltas": 4 + d % 2, "consultas": 40 + d % 3 - (4 + d % 2)}
        for d in range(1, 29)
    ]  # fmt: skip
    found, _ = _facts(rows, "What's the no-show rate at Alphaville?", "en")
    ratio = next(f for f in found if f.kind == "ratio")
    assert (ratio.values["part"], ratio.values["whole"]) == ("faltas", "agendamentos")


def test_a_share_of_a_city_is_among_the_cities_and_what_the_data_lacks_is_said() -> None:
    from billumy.insights.answer import missing_columns

    rows = [
        {"data": f"2024-01-{d:02d}", "unidade": u, "cidade": c, "faturamento": 100.0 * d}
        for d in range(1, 29)
        for u, c in (("Moema", "São Paulo"), ("Pinheiros", "São Paulo"), ("Cambuí", "Campinas"))
    ]
    with data.from_records(rows) as table:
        prof = profile(table)
    text = "Quanto % do faturamento vem das unidades de São Paulo?"
    plan = questions.reconcile(rule_plan(text, prof), questions.parse(text, prof), prof, "rules")
    assert plan is not None and plan.dimensions == ["cidade"]
    assert [c.en for c in missing_columns("How many were cats versus dogs?", prof)] == ["species"]
    assert missing_columns("Qual a média mensal de faturamento da Moema?", prof) == []


def test_a_cancellation_rate_is_over_the_trips_requested_not_the_money_nor_the_drivers() -> None:
    rows = [
        {"week": f"2024-01-{1 + 7 * w:02d}", "city": city, "trips_requested": req,
         "trips_completed": req - canc, "trips_cancelled": canc, "active_drivers": 50,
         "gross_bookings_usd": 20.0 * (req - canc)}
        for w in range(4)
        for city, req, canc in (("Phoenix", 1000 + w, 98), ("Tampa", 800 + w, 82))
    ]  # fmt: skip
    found, _ = _facts(rows, "Which city has the lowest cancellation rate?", "en")
    ratio = next(f for f in found if f.kind == "ratio")
    assert (ratio.values["part"], ratio.values["whole"]) == ("trips_cancelled", "trips_requested")


def test_an_anomaly_clause_of_a_multi_part_question_reads_its_own_segments_and_periods() -> None:
    rows = [
        {"week": (date(2024, 5, 6) + timedelta(weeks=w)).isoformat(), "city": city,
         "service": service, "trips_completed": 1000 + 7 * w + (400 if service == "Standard" else 0)
         if (city, w) != ("Tampa", 12) else 300, "total_miles": 5000.0 + w}
        for w in range(16)
        for city in ("Nashville", "Tampa", "Phoenix")
        for service in ("Standard", "XL")
    ]  # fmt: skip
    text = (
        "Which service had more completed trips in Nashville in June, and did any city drop "
        "sharply in any week?"
    )
    found, _ = _facts(rows, text, "en")
    anomaly = next(f for f in found if f.kind == "anomaly")
    assert anomaly.values["dimension"] == "city"
    assert [r["segment"] for r in anomaly.rows] == ["Tampa"]


def test_a_rate_asked_beside_money_is_over_counts_never_over_the_money() -> None:
    rows = [
        {"data": f"2024-01-{d:02d}", "unidade": u, "agendamentos": 40 + d % 3,
         "faltas": 4 + d % 2, "consultas": 36 + d % 3 - d % 2, "faturamento": 9000.0 + d}
        for d in range(1, 29)
        for u in ("Moema", "Pinheiros")
    ]  # fmt: skip
    text = "Which clinic had the highest no-show rate, and how did billing change?"
    found, _ = _facts(rows, text, "en")
    ratio = next(f for f in found if f.kind == "ratio")
    assert (ratio.values["part"], ratio.values["whole"]) == ("faltas", "agendamentos")


def _monthly_grid(last_month: int) -> list[dict[str, Any]]:
    """Monthly rows of a power distributor, January 2023 to ``last_month`` of 2024."""
    rows = []
    months = [(2023, m) for m in range(1, 13)] + [(2024, m) for m in range(1, last_month + 1)]
    for year, month in months:
        for klass, customers in (("Residential", 9000), ("Industrial", 40)):
            rows.append(
                {"month": f"{year}-{month:02d}", "customer_class": klass,
                 "customers": customers + month, "energy_mwh": 100.0 * month + year % 10,
                 "billed_usd": 1000.0 * month}
            )  # fmt: skip
    return rows


def _windows(rows: list[dict[str, Any]], question: str) -> list[str]:
    with data.from_records(rows) as table:
        return [w.label for w in questions.parse(question, profile(table)).windows]


def test_last_quarter_is_the_latest_whole_one_and_this_quarter_the_latest() -> None:
    through_november = _monthly_grid(11)
    assert _windows(through_november, "What did we bill last quarter?") == ["2024-Q3"]
    assert _windows(through_november, "Quanto faturamos no trimestre passado?") == ["2024-Q3"]
    assert _windows(through_november, "last quarter vs the quarter before?") == [
        "2024-Q3",
        "2024-Q2",
    ]
    assert _windows(through_november, "this quarter vs last quarter") == ["2024-Q4", "2024-Q3"]
    assert _windows(through_november, "the latest quarter") == ["2024-Q4"]
    # Monthly rows dated the 1st hold their month whole: last month is the latest.
    assert _windows(through_november, "How much did we bill last month?") == ["2024-11"]
    # Data through December holds Q4 whole.
    assert _windows(_monthly_grid(12), "What did we bill last quarter?") == ["2024-Q4"]


def test_a_month_takes_the_relative_year_said_after_it() -> None:
    rows = _monthly_grid(11)
    assert _windows(rows, "Compare o consumo de julho deste ano com julho do ano passado") == [
        "2024-07",
        "2023-07",
    ]
    assert _windows(rows, "July this year against July last year") == ["2024-07", "2023-07"]
    assert _windows(rows, "A receita deste ano foi maior que a do ano passado?") == [
        "2024",
        "2023",
    ]


def test_a_segment_said_with_its_columns_word_is_no_measure_of_that_word() -> None:
    # "industrial customers" names the Industrial class, not the ``customers`` column; the
    # unit at the end of ``energy_mwh`` need not be said.
    with data.from_records(_monthly_grid(11)) as table:
        prof = profile(table)
    for question in (
        "Quanta energia os clientes industriais consumiram este ano?",
        "How much energy did industrial customers use in 2023?",
    ):
        plan = rule_plan(question, prof)
        assert plan is not None
        assert [m.column for m in plan.measures] == ["energy_mwh"], question
        assert [(f.column, f.value) for f in plan.filters] == [("customer_class", "Industrial")]
    plan = rule_plan("How many customers does the Industrial class have?", prof)
    assert plan is not None and [m.column for m in plan.measures] == ["customers"]


def test_a_verb_names_the_column_of_its_participle() -> None:
    rows = [
        {"filial": f, "os_abertas": a, "os_concluidas": c, "valor_mao_de_obra": v}
        for f, a, c, v in (("Sorriso", 10, 8, 100.0), ("Cascavel", 7, 7, 90.0))
    ]
    with data.from_records(rows) as table:
        prof = profile(table)
    for question, wanted in (
        ("Quantas OS concluímos?", ["os_concluidas"]),
        ("Qual filial abriu mais OS?", ["os_abertas"]),
        ("quantas OS abrimos e quanto faturamos de mão de obra?", ["os_abertas"]),
    ):
        plan = rule_plan(question, prof)
        assert plan is not None
        assert [m.column for m in plan.measures][: len(wanted)] == wanted, question


def test_an_amount_per_a_unit_named_by_two_words_or_paid_per_unit() -> None:
    from billumy.insights.ratios import _per_pair

    rows = [
        {"filial": f, "horas_tecnicas": h, "tecnicos": t, "valor_mao_de_obra": v}
        for f, h, t, v in (("Sorriso", 400.5, 9, 80_000.0), ("Cascavel", 300.0, 7, 61_000.0))
    ]
    with data.from_records(rows) as table:
        prof = profile(table)
    # "per technician hour": the hours, not the technicians.
    assert _per_pair("What labor rate per technician hour do we get?", prof) == (
        "valor_mao_de_obra",
        "horas_tecnicas",
    )
    # Hours of work add up: "how many hours did we log" is their total.
    plan = rule_plan("How many technician hours did we log?", prof)
    assert plan is not None and [(m.column, m.agg) for m in plan.measures] == [
        ("horas_tecnicas", "sum")
    ]
    with data.from_records(_monthly_grid(11)) as table:
        grid = profile(table)
    assert _per_pair("Which customer class pays the least per MWh?", grid) == (
        "billed_usd",
        "energy_mwh",
    )


def test_since_the_datas_first_month_is_the_whole_series() -> None:
    rows = _monthly_grid(11)
    assert _windows(rows, "How have customers changed since January 2023?") == []
    assert _windows(rows, "Como evoluíram os clientes desde janeiro de 2023?") == []


def test_a_value_said_in_the_other_language_word_for_word() -> None:
    from billumy.insights.synonyms import same_word_across_languages

    assert same_word_across_languages("precision", "precisao")
    assert same_word_across_languages("agriculture", "agricultura")
    assert same_word_across_languages("quality", "qualidade")
    assert not same_word_across_languages("preco", "precision")
    rows = [
        {"tipo_servico": t, "valor_pecas": v}
        for t, v in (("Agricultura de Precisão", 10.0), ("Garantia", 5.0), ("Revisão", 1.0))
    ]
    with data.from_records(rows) as table:
        prof = profile(table)
    asked = questions.parse("What share of parts sales came from precision agriculture?", prof)
    assert asked.segments == {"tipo_servico": ["Agricultura de Precisão"]}


def test_farms_and_solar_panels_the_data_does_not_hold_are_said_missing() -> None:
    from billumy.insights.answer import missing_columns

    with data.from_records(_monthly_grid(11)) as table:
        prof = profile(table)
    assert [c.en for c in missing_columns("Which farms used the most energy?", prof)] == ["farm"]
    said = missing_columns("Quanta energia os clientes com painel solar injetaram na rede?", prof)
    assert [c.en for c in said] == ["solar energy"]


def test_weekends_are_saturdays_and_sundays_and_selling_names_the_quantity_sold() -> None:
    rows = [
        {"data": str(date(2024, 1, 1) + timedelta(days=d)), "posto": p,
         "litros_vendidos": 100.0 + d, "faturamento": 590.0 + d}
        for d in range(28)
        for p in ("Centro", "Água Verde")
    ]  # fmt: skip
    question = "On average, how many liters do we sell per day on weekends?"
    with data.from_records(rows) as table:
        table = derive_weekday(table, set(), question, "en")
        prof = profile(table)
        asked = questions.parse(question, prof)
        plan = questions.reconcile(rule_plan(question, prof), asked, prof, "rules")
    assert plan is not None
    assert [(f.column, f.op, f.value) for f in plan.filters] == [
        ("day_of_week", "in", ["Saturday", "Sunday"])
    ]
    assert plan.period is None or plan.period.grain != "week"
    with data.from_records(rows) as table:
        prof = profile(table)
    sold = rule_plan("Which station sold more in January?", prof)
    assert sold is not None and [m.column for m in sold.measures] == ["litros_vendidos"]
    # "Quanto vendemos?" asks for money.
    asked = "Quanto vendemos em janeiro?"
    money = questions.reconcile(rule_plan(asked, prof), questions.parse(asked, prof), prof, "rules")
    assert money is not None and [m.column for m in money.measures] == ["faturamento"]


@pytest.mark.parametrize(
    ("question", "lang", "days"),
    [
        ("Quanto faturamos no fim de semana em janeiro?", "pt", ["sábado", "domingo"]),
        ("Quanto faturamos nos fins de semana?", "pt", ["sábado", "domingo"]),
        ("Quanto vendemos no final de semana?", "pt", ["sábado", "domingo"]),
        ("How much did we bill on the weekend?", "en", ["Saturday", "Sunday"]),
    ],
)
def test_the_weekend_in_the_singular_is_saturday_and_sunday(
    question: str, lang: str, days: list[str]
) -> None:
    """ "No fim de semana", the most common way to say it, was read as nothing (only "fins de
    semana" was): the answer gave the whole month."""
    rows = [
        {"data": str(date(2024, 1, 1) + timedelta(days=d)), "loja": loja, "faturamento": 10.0 + d}
        for d in range(28)
        for loja in ("Centro", "Sul")
    ]
    with data.from_records(rows) as table:
        table = derive_weekday(table, set(), question, lang)
        prof = profile(table)
        asked = questions.parse(question, prof)
        plan = questions.reconcile(rule_plan(question, prof), asked, prof, "rules")
    assert plan is not None
    weekday = "dia_da_semana" if lang == "pt" else "day_of_week"
    assert (weekday, "in", days) in [(f.column, f.op, f.value) for f in plan.filters]


def test_an_anomaly_question_about_a_rate_checks_the_rates_series() -> None:
    from billumy.insights import anomalies

    # Nashville's trips triple in one week (a festival) while its cancellation rate stays at
    # 10%: the trips spike, the rate does not.
    rows = []
    for week in range(20):
        for city, base in (("Nashville", 1000), ("Tampa", 800), ("Phoenix", 900)):
            requested = base * (3 if city == "Nashville" and week == 12 else 1) + 7 * (week % 3)
            rows.append(
                {"week_start": str(date(2024, 1, 1) + timedelta(weeks=week)), "city": city,
                 "trips_requested": requested, "trips_cancelled": requested // 10}
            )  # fmt: skip
    with data.from_records(rows) as table:
        prof = profile(table)
        plan = rule_plan("Did trips_cancelled jump in any city in any week?", prof)
        scope = anomalies.plan_scope(table, prof, plan)
        assert scope is not None
        counted = anomalies.anomaly_fact(table, scope, "spike", keep_empty=True)
        rate = dataclasses.replace(
            scope, per="trips_requested", pct=True, agg="avg", dtype="DOUBLE"
        )
        rated = anomalies.anomaly_fact(table, rate, "spike", keep_empty=True)
    assert counted is not None and counted.values["count"] == 1
    assert counted.values["segment"] == "Nashville"
    assert rated is not None and rated.values["count"] == 0
    assert rated.values["per"] == "trips_requested" and "trips_requested" in rated.columns
    rated.id = "f1"
    ctx = Context(for_language("en"), prof, planned={"f1"})
    assert describe(rated, ctx).startswith(
        "No: no city had an unusual spike in the rate of trips_cancelled in trips_requested"
    )


def test_a_code_kept_as_text_does_not_lead_the_segments() -> None:
    from billumy.insights.roles import main_columns

    rows = [
        {"mes": f"2024-{m:02d}-01", "cod_agencia": code, "agencia": name, "contratos": n + m}
        for m in range(1, 7)
        for code, name, n in (("0101", "Chapecó", 50), ("0102", "Xanxerê", 40))
    ]
    with data.from_records(rows) as table:
        prof = profile(table)
    assert main_columns(prof)[1] == "agencia"


def test_the_change_part_of_a_two_part_question_reads_its_own_measure() -> None:
    rows = [
        {"census_date": f"2024-{m:02d}-01", "building": b, "admissions": a + m,
         "charges_usd": c * (1 + m / 10)}
        for m in range(1, 5)
        for b, a, c in (("Tower A", 100, 5000.0), ("Tower B", 120, 3000.0))
    ]  # fmt: skip
    text = (
        "Which building had the most admissions in April, and how did charges change from "
        "January to April?"
    )
    found, _ = _facts(rows, text, "en")
    change = next(f for f in found if f.kind == "change")
    assert "charges_usd" in change.columns and "admissions" not in change.columns
    january = sum(r["charges_usd"] for r in rows if r["census_date"] == "2024-01-01")
    april = sum(r["charges_usd"] for r in rows if r["census_date"] == "2024-04-01")
    assert (change.values["value_a"], change.values["value_b"]) == (january, april)
    # The ranking is April's, the clause that asks it says so; the change is not cut to April.
    ranking = next(f for f in found if f.kind == "breakdown")
    april_rows = [r for r in rows if r["census_date"] == "2024-04-01"]
    best = max(april_rows, key=lambda r: r["admissions"])
    assert ranking.rows[0]["building"] == best["building"]
    assert ranking.rows[0]["sum_admissions"] == best["admissions"]


def test_a_weekly_series_in_a_month_leaves_out_the_week_the_month_cuts_short() -> None:
    """April 2024 ends on a Tuesday: its last week holds two of its days, not a drop."""
    start = date(2024, 3, 1)
    rows = [
        {"census_date": (start + timedelta(days=d)).isoformat(), "admissions": 30 + d % 3}
        for d in range(90)
    ]
    found, _ = _facts(rows, "How did admissions change week by week in April?", "en")
    trend = next(f for f in found if f.kind == "trend")
    periods = [str(r["period"]) for r in trend.rows]
    assert periods and periods[-1] == "2024-04-22"  # not the week of Apr 29 (two days)
    assert periods[0] == "2024-04-01"
