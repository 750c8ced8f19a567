"""Quantities derived from two columns or from the calendar, in both languages: rates by
their jargon (ROAS, churn), a net of two totals, an amount per day; and the question reading
they rest on (relative weeks, a value named by its distinct word, a count named beside its
state, a noun over a participle). References are computed here in Python, not by Billumy."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from billumy.insights import anomalies, data
from billumy.insights import question as questions
from billumy.insights.formats import for_language
from billumy.insights.profile import profile
from billumy.insights.ratios import difference_fact, jargon, per_period_fact
from billumy.insights.roles import is_stock
from billumy.insights.rules import rule_plan
from billumy.insights.service import InsightService, _language, _without_data_words
from billumy.insights.statements import Context, describe


def _gym() -> list[dict[str, Any]]:
    """Six months of three units: members on the books (a stock), sign-ups, cancellations."""
    rows = []
    for month in range(1, 7):
        for unit, members, cancels in (("Centro", 400, 12), ("Batel", 300, 21), ("Sul", 200, 6)):
            rows.append(
                {"competencia": f"2024-{month:02d}-01", "unidade": unit,
                 "alunos_ativos": members + month, "matriculas": 20 + month,
                 "cancelamentos": cancels + month % 2}
            )  # fmt: skip
    return rows


def _facts(rows: list[dict[str, Any]], text: str) -> tuple[list[Any], set[str], Context]:
    with data.from_records(rows) as table:
        prof = profile(table)
        asked = questions.parse(text, prof)
        plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
        found, planned = InsightService._facts(table, prof, plan, 3, text, asked)
    lang = "pt" if any(c in text for c in "ãçéêíóú") or text.startswith(("Qual", "Em")) else "en"
    return found, planned, Context(for_language(lang), prof, plan, planned)


def test_churn_rate_is_cancellations_over_the_members_on_the_books() -> None:
    rows = _gym()
    found, planned, ctx = _facts(rows, "Which unit has the highest churn rate?")
    ratio = next(f for f in found if f.kind == "ratio")
    assert ratio.id in planned and ratio.values["name"] == "churn"
    assert (ratio.values["part"], ratio.values["whole"]) == ("cancelamentos", "alunos_ativos")
    expected = {
        u: 100
        * sum(r["cancelamentos"] for r in rows if r["unidade"] == u)
        / sum(r["alunos_ativos"] for r in rows if r["unidade"] == u)
        for u in ("Centro", "Batel", "Sul")
    }
    assert {r["unidade"]: r["ratio_pct"] for r in ratio.rows} == pytest.approx(expected)
    # The ranking of cancellations alone would answer another question: it is not planned.
    assert not any(f.kind == "breakdown" for f in found if f.id in planned)
    said = describe(ratio, ctx)
    top, low = max(expected, key=expected.__getitem__), min(expected, key=expected.__getitem__)
    assert said.startswith("The churn rate (cancelamentos over alunos_ativos summed over the")
    assert f"{top} has the highest ({expected[top]:.2f}%) and {low} the lowest (" in said


def test_roas_is_revenue_over_ad_spend_and_reads_as_a_multiple() -> None:
    rows = [
        {"day": f"2024-01-{d:02d}", "channel": ch, "orders": 5 + d, "revenue_usd": f"${r * d}.00",
         "ad_spend_usd": f"${s * d}.00"}
        for d in range(1, 6)
        for ch, r, s in (("Google Ads", 600, 100), ("Meta Ads", 300, 90))
    ]  # fmt: skip
    text = "Qual foi o ROAS do Google Ads?"
    with data.from_records(rows) as table:
        prof = profile(table)
        assert jargon(text, prof) == ("per", "revenue_usd", "ad_spend_usd", "ROAS")
    found, _, ctx = _facts(rows, text)
    per = next(f for f in found if f.kind == "per")
    assert per.values["per_value"] == pytest.approx(6.0)
    assert describe(per, ctx).startswith("O ROAS (revenue_usd por ad_spend_usd)")
    assert "6,00" in describe(per, ctx) and "US$" not in describe(per, ctx).split(".")[0]


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Em 2024, quantas matrículas e quantos cancelamentos tivemos? E qual foi o saldo?", "pt"),
        ("How many cancelamentos and matriculas did we have, and what's the net?", "en"),
    ],
)
def test_a_net_of_two_totals_takes_what_goes_out_from_what_comes_in(text: str, lang: str) -> None:
    rows = _gym()
    found, planned, ctx = _facts(rows, text)
    net = next(f for f in found if f.kind == "difference")
    assert net.id in planned
    ins = sum(r["matriculas"] for r in rows)
    outs = sum(r["cancelamentos"] for r in rows)
    assert (net.values["minuend"], net.values["subtrahend"]) == ("matriculas", "cancelamentos")
    assert net.values["difference"] == ins - outs
    said = describe(net, Context(for_language(lang), ctx.profile, ctx.plan, planned))
    pt = "o saldo de matriculas menos cancelamentos"
    assert (pt if lang == "pt" else "Matriculas less cancelamentos is") in said


def test_no_net_without_a_word_for_it_or_with_a_balance_column() -> None:
    rows = _gym()
    with data.from_records(rows) as table:
        prof = profile(table)
        text = "Quantas matrículas e cancelamentos tivemos?"
        assert difference_fact(table, prof, rule_plan(text, prof), text) is None
    with data.from_records([{**r, "saldo": 1} for r in rows]) as table:
        prof = profile(table)
        text = "Quantas matrículas e cancelamentos? E o saldo?"
        assert difference_fact(table, prof, rule_plan(text, prof), text) is None


def _waves() -> list[dict[str, Any]]:
    """Three picking waves a day (two on Saturdays) at two DCs for four weeks, no Sundays."""
    rows = []
    start = date(2024, 11, 4)  # a Monday
    for day in range(28):
        when = start + timedelta(days=day)
        if when.weekday() == 6:
            continue
        for dc, lines in (("DC Cajamar", 300), ("DC Extrema", 200)):
            for wave in range(2 if when.weekday() == 5 else 3):
                rows.append(
                    {"started_at": f"{when.isoformat()}T{6 + 5 * wave:02d}:00:00",
                     "warehouse": dc, "order_lines": lines + day + wave,
                     "units_picked": 2 * lines, "backlog_lines": 50 + wave}
                )  # fmt: skip
    return rows


def test_an_amount_per_day_is_the_total_over_the_days_not_the_average_wave() -> None:
    rows = _waves()
    text = "On average, how many order lines does Extrema pick per day?"
    found, planned, ctx = _facts(rows, text)
    per = next(f for f in found if f.kind == "per")
    mine = [r for r in rows if r["warehouse"] == "DC Extrema"]
    days = {r["started_at"][:10] for r in mine}
    assert per.values["per_period"] == "day" and per.values["denominator_total"] == len(days)
    assert per.values["per_value"] == pytest.approx(sum(r["order_lines"] for r in mine) / len(days))
    # The average wave is not stated beside it.
    assert not any(f.kind in ("aggregate", "trend") for f in found if f.id in planned)
    assert "per day" in describe(per, ctx) and f"over {len(days)} days" in describe(per, ctx)
    with data.from_records(rows) as table:
        prof = profile(table)
        plan = rule_plan("How many order lines did we pick?", prof)
        assert per_period_fact(table, prof, plan, "How many order lines did we pick?") is None


def test_a_value_is_named_by_its_distinct_word_beside_a_code_but_never_by_a_month() -> None:
    with data.from_records(_waves()) as table:
        prof = profile(table)
    assert questions.parse("Média de unidades por onda no CD Cajamar?", prof).segments == {
        "warehouse": ["DC Cajamar"]
    }
    rows = [
        {"mes": f"2024-0{m}-01", "filial": f, "faturamento": 10.0 * m}
        for m in range(1, 7)
        for f in ("Rio de Janeiro", "São Paulo")
    ]
    with data.from_records(rows) as table:
        prof = profile(table)
    assert questions.parse("Como o faturamento mudou de janeiro a junho?", prof).segments == {}


def test_last_week_and_the_week_before_are_the_datas_latest_weeks() -> None:
    with data.from_records(_waves()) as table:
        prof = profile(table)
    asked = questions.parse("Order lines: last week vs the week before?", prof)
    assert [w.label for w in asked.windows] == ["2024-11-25", "2024-11-18"]
    asked = questions.parse("linhas separadas: semana passada contra a semana anterior", prof)
    assert [w.label for w in asked.windows] == ["2024-11-25", "2024-11-18"]


def test_a_count_beside_its_state_and_a_noun_before_a_participle() -> None:
    rows = [
        {"vencimento": f"2024-{m:02d}-10", "unidade": u, "boletos_emitidos": 100 + m,
         "boletos_em_atraso": 5 + m, "alunos_matriculados": 100}
        for m in range(1, 13)
        for u in ("Tijuca", "Méier")
    ]  # fmt: skip
    with data.from_records(rows) as table:
        prof = profile(table)
    plan = rule_plan("Which campus had the fewest late boletos?", prof)
    assert plan is not None and [(m.column, m.agg) for m in plan.measures] == [
        ("boletos_em_atraso", "sum")
    ]
    plan = rule_plan("Alguma unidade teve inadimplência acima do normal?", prof)
    assert plan is not None and plan.measures[0].column == "boletos_em_atraso"
    column = prof.column("alunos_matriculados")
    assert column is not None and is_stock(column)
    with data.from_records(_waves()) as table:
        prof = profile(table)
    plan = rule_plan("Como evoluiu o volume de linhas separadas mês a mês?", prof)
    assert plan is not None and [m.column for m in plan.measures] == ["order_lines"]


def test_a_weekday_pattern_is_no_anomaly_but_a_real_spike_is() -> None:
    rows = _waves()
    with data.from_records(rows) as table:
        prof = profile(table)
        plan = rule_plan("Did order lines collapse on any day at any DC?", prof)
        scope = anomalies.plan_scope(table, prof, plan)
        assert scope is not None and scope.grain == "day"
        quiet = anomalies.anomaly_fact(table, scope, "drop", keep_empty=True)
    # Saturdays carry two waves of three: a third less every week, which is their normal.
    assert quiet is not None and quiet.values["count"] == 0
    spiked = [
        {**r, "order_lines": r["order_lines"] * 4}
        if r["warehouse"] == "DC Extrema" and r["started_at"].startswith("2024-11-20")
        else r
        for r in rows
    ]
    with data.from_records(spiked) as table:
        prof = profile(table)
        scope = anomalies.plan_scope(table, prof, plan)
        assert scope is not None
        found = anomalies.anomaly_fact(table, scope, "spike", keep_empty=True)
    assert found is not None and found.values["count"] >= 1
    assert found.rows[0]["segment"] == "DC Extrema" and str(found.rows[0]["period"]) == "2024-11-20"


def test_a_stock_recorded_per_event_is_each_segments_latest_level_summed() -> None:
    # DC Extrema's last waves are on Friday, Cajamar's on Saturday.
    rows = [
        r
        for r in _waves()
        if not (r["warehouse"] == "DC Extrema" and r["started_at"].startswith("2024-11-30"))
    ]
    found, planned, ctx = _facts(rows, "What's our backlog right now?")
    total = next(f for f in found if f.kind == "aggregate" and f.id in planned)
    latest = {}
    for r in rows:  # each warehouse's last wave, by its own time
        if r["warehouse"] not in latest or r["started_at"] > latest[r["warehouse"]]["started_at"]:
            latest[r["warehouse"]] = r
    assert len(latest) == 2
    (value,) = total.values.values()
    assert value == sum(r["backlog_lines"] for r in latest.values())
    assert total.as_of is not None and total.as_of["per"] == "warehouse"
    assert describe(total, ctx).startswith("At each warehouse's latest record, total backlog")
    # Where every segment has rows on the latest date, the level is that date's.
    gym = _gym()
    found, planned, _ = _facts(gym, "How many members do we have right now?")
    total = next(f for f in found if f.kind == "aggregate" and f.id in planned)
    assert total.as_of is not None and "per" not in total.as_of
    assert list(total.values.values()) == [
        sum(r["alunos_ativos"] for r in gym if r["competencia"] == "2024-06-01")
    ]


def test_a_period_with_no_rows_is_no_zero_to_compare_with() -> None:
    # Monthly rows have no "last week": no change from an empty week is claimed.
    found, planned, _ = _facts(_gym(), "Last week vs the week before: how did sign-ups change?")
    assert not any(f.kind == "change" for f in found)
    found, planned, _ = _facts(_gym(), "Sign-ups: this month vs last month?")
    change = next(f for f in found if f.kind == "change")
    assert (change.values["period_a"], change.values["period_b"]) == ("2024-05", "2024-06")
    assert change.id in planned


def _hotels() -> list[dict[str, Any]]:
    return [
        {"data": f"2024-0{m}-{d:02d}", "hotel": h, "quartos_disponiveis": rooms,
         "quartos_ocupados": rooms - d - m, "receita_hospedagem": 300.0 * (rooms - d - m)}
        for m in (1, 2)
        for d in range(1, 11)
        for h, rooms in (("Copacabana Mar Hotel", 120), ("Pousada Serra Azul", 40),
                         ("Resort Praia do Forte", 200))
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("Qual hotel tem a maior taxa de ocupação?", "ratio", "ocupação"),
        ("What was our occupancy in January?", "ratio", "occupancy"),
        ("Qual hotel tem a diária média mais alta?", "per", "diária média"),
        ("What was the RevPAR of each hotel?", "per", "RevPAR"),
    ],
)
def test_hotel_rates_by_their_names(text: str, kind: str, name: str) -> None:
    rows = _hotels()
    found, planned, _ = _facts(rows, text)
    fact = next(f for f in found if f.kind == kind)
    assert fact.id in planned and fact.values["name"] == name
    january = [r for r in rows if "January" not in text or r["data"].startswith("2024-01")]
    sold = sum(r["quartos_ocupados"] for r in january)
    if name in ("ocupação", "occupancy"):
        assert fact.values["ratio_pct"] == pytest.approx(
            100 * sold / sum(r["quartos_disponiveis"] for r in january)
        )
    elif name == "RevPAR":
        revenue = sum(r["receita_hospedagem"] for r in rows)
        assert fact.values["per_value"] == pytest.approx(
            revenue / sum(r["quartos_disponiveis"] for r in rows)
        )
    else:
        assert fact.values["per_value"] == pytest.approx(300.0)


def test_a_value_named_by_a_distinct_part_and_a_month_typed_with_a_typo() -> None:
    with data.from_records(_hotels()) as table:
        prof = profile(table)
    asked = questions.parse("Copacabana ou Praia do Forte: quem vendeu mais em fevreiro?", prof)
    assert asked.segments == {"hotel": ["Copacabana Mar Hotel", "Resort Praia do Forte"]}
    assert [w.label for w in asked.windows] == ["2024-02"]
    asked = questions.parse("quantas diarias a serra azul vendeu em janero", prof)
    assert asked.segments == {"hotel": ["Pousada Serra Azul"]}
    assert [w.label for w in asked.windows] == ["2024-01"]


def test_anything_unusual_with_no_measure_named_looks_at_every_measure() -> None:
    rows = [
        {**r, "cancelamentos": 30 if (r["hotel"], r["data"]) == ("Pousada Serra Azul", d) else 2}
        for r in _hotels()
        for d in ["2024-02-05"]
    ]
    found, planned, ctx = _facts(rows, "Anything unusual in the hotel numbers?")
    anomaly = next(f for f in found if f.kind == "anomaly")
    assert anomaly.id in planned and anomaly.values["measure"] == "cancelamentos"
    assert anomaly.values["segment"] == "Pousada Serra Azul"
    said = describe(anomaly, ctx)
    assert said.startswith("Yes: Pousada Serra Azul spiked sharply in cancelamentos")
    # A question that names its measure is answered for it alone.
    found, _, _ = _facts(rows, "Anything unusual in room revenue?")
    named = next(f for f in found if f.kind == "anomaly")
    assert named.values["measure"] == "receita_hospedagem" and not named.values["count"]


def test_the_rate_a_clause_asks_for_and_the_language_beside_portuguese_names() -> None:
    rows = [
        {"date": f"2024-09-{d:02d}", "queue": q, "calls_offered": 100 + d, "calls_answered": 90,
         "calls_abandoned": 10 + d % 3}
        for d in range(1, 21)
        for q in ("Q01 Vendas", "Q04 Retenção")
    ]  # fmt: skip
    text = "For September, give me calls offered, calls answered and the abandonment rate."
    found, _, _ = _facts(rows, text)
    ratio = next(f for f in found if f.kind == "ratio")
    assert (ratio.values["part"], ratio.values["whole"]) == ("calls_abandoned", "calls_offered")
    with data.from_records(rows) as table:
        prof = profile(table)
    question = "Vendas vs Retenção: which queue sold more in October?"
    kept = _without_data_words(question, prof)
    assert "Retenção" not in kept and "Vendas" not in kept and "which queue sold" not in kept
    assert _language(None, _without_data_words(question, prof)) == "en"
    assert _language(None, "Qual fila vendeu mais em outubro?") == "pt"


def _bakery() -> list[dict[str, Any]]:
    return [
        {"dia": f"2024-10-{d:02d}", "produto": p, "unidades": u + d, "faturamento": price * (u + d),
         "perdas_unidades": d % 4}
        for d in range(1, 29)
        for p, u, price in (("Pão francês", 400, 0.9), ("Croissant", 80, 6.5))
    ]  # fmt: skip


def test_how_many_we_sold_is_the_units_and_a_loss_rate_of_a_segment() -> None:
    rows = _bakery()
    found, planned, _ = _facts(rows, "How many croissants did we sell, and what's our loss rate?")
    mine = [r for r in rows if r["produto"] == "Croissant"]
    total = next(f for f in found if f.kind == "aggregate" and f.id in planned)
    assert total.values["sum_unidades"] == sum(r["unidades"] for r in mine)
    ratio = next(f for f in found if f.kind == "ratio")
    assert ratio.id in planned
    assert (ratio.values["part"], ratio.values["whole"]) == ("perdas_unidades", "unidades")
    assert ratio.values["ratio_pct"] == pytest.approx(
        100 * sum(r["perdas_unidades"] for r in mine) / sum(r["unidades"] for r in mine)
    )
    with data.from_records(rows) as table:
        prof = profile(table)
    asked = questions.parse("Quantos pães franceses vendemos?", prof)
    assert asked.segments == {"produto": ["Pão francês"]}


def test_anything_unusual_is_looked_at_on_the_days_the_data_are_recorded() -> None:
    """Half a year of nights reads as weeks, but a one-night event (a tour operator's block
    cancelled: 30 against 3 a night) is that night's, not its week's: with no period asked,
    the days are looked at too, and the sharper case answers."""
    start = date(2024, 1, 1)
    hotels = (("Copacabana Mar Hotel", 120), ("Resort Praia do Forte", 200))
    rows = [
        {"data": (start + timedelta(days=n)).isoformat(), "hotel": h, "quartos_disponiveis": rooms,
         "quartos_ocupados": rooms - 10 - n % 7, "receita_hospedagem": 300.0 * (rooms - n % 7),
         "cancelamentos": 30 if (h, n) == ("Resort Praia do Forte", 78) else 2 + (n + i) % 3}
        for n in range(182)
        for i, (h, rooms) in enumerate(hotels)
    ]  # fmt: skip
    for text, said in (
        ("Anything unusual in the hotel numbers?", "Yes: Resort Praia do Forte spiked sharply"),
        ("Algo fora do normal nos números dos hotéis?", "Sim: Resort Praia do Forte teve pico"),
    ):
        found, planned, ctx = _facts(rows, text)
        anomaly = next(f for f in found if f.kind == "anomaly")
        assert anomaly.id in planned and anomaly.values["measure"] == "cancelamentos"
        assert anomaly.values["grain"] == "day"
        assert (anomaly.rows[0]["segment"], anomaly.rows[0]["period"]) == (
            "Resort Praia do Forte",
            "2024-03-19",
        )
        assert describe(anomaly, ctx).startswith(said)


def _queues() -> list[dict[str, Any]]:
    """Hours of two queues: a busy hour waits longer, and its calls weigh more."""
    return [
        {"date": f"2024-09-{d:02d}", "hour": h, "queue": q, "calls_offered": calls + 4,
         "calls_answered": calls, "calls_abandoned": 4, "avg_wait_sec": 10 + calls // 4}
        for d in range(2, 8)
        for h in range(8, 12)
        for q, calls in (("Q01 Vendas", 20 + 30 * (h == 10)), ("Q03 Cobrança", 12 + 60 * (h == 11)))
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "weighted"),
    [
        ("What's the average wait time on the Cobranca queue?", "average avg_wait_sec weighted"),
        ("Qual o tempo médio de espera na fila de Cobrança?", "a média de avg_wait_sec ponderada"),
    ],
)
def test_an_average_column_weighs_its_rows_by_the_things_they_average(
    text: str, weighted: str
) -> None:
    """``avg_wait_sec`` is each hour's average over its answered calls: the queue's average
    wait is each hour's times its calls over the calls, not the mean of the hours."""
    rows = _queues()
    mine = [r for r in rows if r["queue"] == "Q03 Cobrança"]
    expected = sum(r["avg_wait_sec"] * r["calls_answered"] for r in mine) / sum(
        r["calls_answered"] for r in mine
    )
    plain_mean = sum(r["avg_wait_sec"] for r in mine) / len(mine)
    assert abs(expected - plain_mean) > 1  # the two differ: the test tells them apart
    found, planned, ctx = _facts(rows, text)
    total = next(f for f in found if f.kind == "aggregate" and f.id in planned)
    assert total.values["avg_avg_wait_sec"] == pytest.approx(expected)
    assert "calls_answered" in total.columns
    by = " por " if ctx.pt else " by "
    assert f"{weighted}{by}calls_answered" in describe(total, ctx)


def test_a_rate_column_weighs_its_rows_by_the_money_it_applies_to() -> None:
    from billumy.insights.roles import average_weight

    rows = [
        {"mes": f"2024-0{m}-01", "produto": p, "contratos": 10 + m, "valor_contratado": 1000.0 * m,
         "taxa_media_mensal": 1.5 + m / 10, "saldo_carteira": 5000.0 * m}
        for m in range(1, 9)
        for p in ("Consignado", "Capital de Giro")
    ]  # fmt: skip
    with data.from_records(rows) as table:
        prof = profile(table)
    assert average_weight(prof, "taxa_media_mensal") == "valor_contratado"
    assert average_weight(prof, "valor_contratado") is None  # a flow is summed


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("Qual o preço médio por Wp nos projetos residenciais?", "por Wp (system_kwp × 1.000)"),
        ("What's the average price per watt of residential projects?", "per watt (system_kwp"),
    ],
)
def test_a_price_per_unit_converts_the_unit_the_data_counts_in(text: str, said: str) -> None:
    """ "Preço por Wp" over capacity in kWp: the money over the kWp times a thousand."""
    rows = [
        {"project_id": 700 + i, "segment": ("Residential", "Commercial")[i % 2],
         "system_kwp": 5.0 + i % 4 if i % 2 == 0 else 60.0 + i,
         "contract_value_brl": 4200.0 * (5 + i % 4) + 90 * i}
        for i in range(40)
    ]  # fmt: skip
    mine = [r for r in rows if r["segment"] == "Residential"]
    expected = sum(r["contract_value_brl"] for r in mine) / (
        1000 * sum(r["system_kwp"] for r in mine)
    )
    found, planned, ctx = _facts(rows, text)
    per = next(f for f in found if f.kind == "per" and f.id in planned)
    assert (per.values["numerator"], per.values["denominator"]) == (
        "contract_value_brl",
        "system_kwp",
    )
    assert per.values["per_value"] == pytest.approx(expected)
    assert said in describe(per, ctx)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("What was fleet utilization at Guarulhos in March?", "frota × the days of each month"),
        (
            "Qual foi a taxa de utilização da frota em Guarulhos em março?",
            "frota × os dias de cada mês",
        ),
    ],
)
def test_fleet_utilization_is_the_days_sold_over_the_cars_times_the_days(
    text: str, said: str
) -> None:
    """Monthly rows of cars on the books (a stock) and rental days sold: the utilization is
    the days sold over the car days there were, the cars times the month's days (31 in
    March), not over the cars themselves."""
    rows = [
        {"competencia": f"2024-{m:02d}-01", "agencia": a, "frota": cars + m, "diarias": 20 * cars,
         "locacoes": 5 * cars}
        for m in range(1, 7)
        for a, cars in (("Guarulhos Aeroporto", 50), ("Curitiba Centro", 30))
    ]  # fmt: skip
    found, planned, ctx = _facts(rows, text)
    ratio = next(f for f in found if f.kind == "ratio" and f.id in planned)
    assert (ratio.values["part"], ratio.values["whole"]) == ("diarias", "frota")
    assert ratio.values["ratio_pct"] == pytest.approx(100 * 20 * 50 / (31 * (50 + 3)))
    assert said in describe(ratio, ctx)


def _two_dcs() -> list[dict[str, Any]]:
    """Picking waves of two DCs over October and November: more lines in November."""
    return [
        {"started_at": f"2024-{m:02d}-{d:02d}T08:00:00", "warehouse": w, "pickers": 10 + d % 3,
         "order_lines": lines + 10 * m + d, "units_picked": 2 * lines, "short_picks": d % 4}
        for m in (10, 11)
        for d in range(1, 29)
        for w, lines in (("DC Cajamar", 400), ("DC Extrema", 300))
    ]  # fmt: skip


def test_a_verb_does_not_name_the_people_who_do_it() -> None:
    """ "Which DC picked the most order lines?": "picked" says what was done to the lines; it
    does not name ``pickers``, the people on the wave, as a second measure."""
    text = "Which DC picked the most order lines?"
    with data.from_records(_two_dcs()) as table:
        prof = profile(table)
    plan = rule_plan(text, prof)
    assert plan is not None and [m.column for m in plan.measures] == ["order_lines"]


def test_a_clause_referring_back_keeps_the_measure_it_refers_to() -> None:
    from billumy.insights.plan import Filter, Measure, Plan
    from billumy.insights.service import _referred_measures

    with data.from_records(_two_dcs()) as table:
        prof = profile(table)
    lead = Plan(measures=[Measure(column="order_lines", agg="sum")], dimensions=["warehouse"])
    own = Plan(
        measures=[Measure(column="pickers", agg="sum")],
        filters=[Filter(column="warehouse", op="=", value="DC Cajamar")],
    )
    text = "did its volume grow from October to November?"
    kept = _referred_measures(own, lead, text, prof)
    assert [m.column for m in kept.measures] == ["order_lines"] and kept.filters == own.filters
    # A clause that names its own measure keeps it.
    text = "and how many pickers did it have?"
    assert _referred_measures(own, lead, text, prof).measures == own.measures


@pytest.mark.parametrize(
    ("text", "lead"),
    [
        ("Did order lines grow from October to November?", "Yes: it grew "),
        ("As linhas de pedido cresceram de outubro até novembro?", "Sim: cresceu "),
    ],
)
def test_did_it_grow_is_answered_yes_or_no_first(text: str, lead: str) -> None:
    from billumy.insights.answer import build_answer

    rows = _two_dcs()
    october = sum(int(r["order_lines"]) for r in rows if r["started_at"][5:7] == "10")  # type: ignore[index]
    november = sum(int(r["order_lines"]) for r in rows if r["started_at"][5:7] == "11")  # type: ignore[index]
    found, planned, ctx = _facts(rows, text)
    with data.from_records(rows) as table:
        asked = questions.parse(text, profile(table))
    parts = questions.coverage(asked, found, planned, ctx.plan)
    answer = build_answer(question=text, facts=found, ctx=ctx, parts=parts)
    first = answer.sentences[0].text
    pct = 100 * (november - october) / october
    shown = f"{pct:.1f}%".replace(".", "," if ctx.pt else ".")
    assert first == f"{lead}{shown}."
