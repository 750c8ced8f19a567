"""Ratios: one count as a percentage of another ("what percentage of deliveries were late?",
"our resolution rate"), over real DuckDB tables, said in pt-BR and English."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from billumy.insights import data
from billumy.insights import question as questions
from billumy.insights.answer import missing_columns
from billumy.insights.formats import for_language
from billumy.insights.plan import Measure, Plan
from billumy.insights.profile import profile
from billumy.insights.ratios import per_fact, ratio_fact
from billumy.insights.rules import rule_plan
from billumy.insights.service import InsightService
from billumy.insights.statements import Context, describe

CARRIERS = {"Correios": (120, 17), "Loggi": (90, 6), "Jadlog": (60, 6)}


def _deliveries() -> list[dict[str, Any]]:
    """Ten days of three carriers: deliveries, late ones, and an average delay (minutes)."""
    return [
        {"data": f"2024-03-{day:02d}", "transportadora": name, "entregas": total + day,
         "atrasadas": late + day % 3, "atraso_medio_min": 40.0 + day}
        for day in range(1, 11)
        for name, (total, late) in CARRIERS.items()
    ]  # fmt: skip


def _reference(sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (transportadora VARCHAR, entregas INTEGER, atrasadas INTEGER)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?)",
        [(r["transportadora"], r["entregas"], r["atrasadas"]) for r in _deliveries()],
    )
    return con.execute(sql).fetchall()


def _ask(text: str) -> tuple[list[Any], set[str], Context]:
    with data.from_records(_deliveries()) as table:
        prof = profile(table)
        asked = questions.parse(text, prof)
        plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
        found, planned = InsightService._facts(table, prof, plan, 3, text, asked)
    lang = "pt" if any(c in text for c in "ãçéêíóú") or "Qual" in text else "en"
    return found, planned, Context(for_language(lang), prof, plan, planned)


def test_a_percentage_of_a_count_is_the_part_over_the_whole() -> None:
    found, planned, ctx = _ask("What percentage of deliveries were late?")
    ratio = found[0]
    assert ratio.kind == "ratio" and ratio.id in planned
    ((late, total),) = _reference("SELECT sum(atrasadas), sum(entregas) FROM t")
    assert ratio.values["part"] == "atrasadas" and ratio.values["whole"] == "entregas"
    assert (ratio.values["part_total"], ratio.values["whole_total"]) == (late, total)
    assert ratio.values["ratio_pct"] == pytest.approx(100 * late / total)
    pct = f"{100 * late / total:.1f}%"
    assert describe(ratio, ctx) == (
        f"The share of atrasadas in entregas is {pct} ({late:,} of {total:,})."
    )
    pt = Context(for_language("pt"), ctx.profile, ctx.plan, ctx.planned)
    shown = f"{late:,} de {total:,}".replace(",", ".")
    assert describe(ratio, pt) == (
        f"A proporção de atrasadas em entregas é de {pct.replace('.', ',')} ({shown})."
    )
    parts = questions.coverage(
        questions.parse("What percentage of deliveries were late?", ctx.profile),
        found,
        planned,
        ctx.plan,
    )
    assert [(p["kind"], p["covered"], p["facts"]) for p in parts] == [("share", True, [ratio.id])]


def test_a_rate_per_segment_in_portuguese() -> None:
    found, _, ctx = _ask("Qual a taxa de entregas atrasadas por transportadora?")
    ratio = found[0]
    assert ratio.kind == "ratio"
    by = _reference(
        "SELECT transportadora, 100.0 * sum(atrasadas) / sum(entregas) AS r FROM t "
        "GROUP BY 1 ORDER BY r DESC"
    )
    assert [(r["transportadora"], r["ratio_pct"]) for r in ratio.rows] == [
        (name, pytest.approx(value)) for name, value in by
    ]
    said = describe(ratio, ctx)
    assert said.startswith("A proporção de atrasadas em entregas é de ")
    listed = "; ".join(f"{name} {value:.1f}%".replace(".", ",") for name, value in by)
    top, low = by[0], by[-1]
    led = (
        f"Por transportadora, a maior é a de {top[0]} ({top[1]:.1f}%) e a menor a de "
        f"{low[0]} ({low[1]:.1f}%)"
    ).replace(".", ",")
    assert said.endswith(f"{led}: {listed}.")


@pytest.mark.parametrize(
    "text",
    [
        "Qual transportadora atrasou mais entregas proporcionalmente?",
        "Which carrier had proportionally the most late deliveries?",
    ],
)
def test_proportionally_the_most_is_a_rate(text: str) -> None:
    """ "Proportionally" ranks the rate (late over all deliveries), not the counts: Jadlog is
    late as often as Loggi out of fewer deliveries, so it ranks above Loggi."""
    found, planned, _ = _ask(text)
    ratio = next(f for f in found if f.kind == "ratio")
    assert ratio.id in planned
    by = _reference(
        "SELECT transportadora, 100.0 * sum(atrasadas) / sum(entregas) AS r FROM t "
        "GROUP BY 1 ORDER BY r DESC"
    )
    assert [(r["transportadora"], r["ratio_pct"]) for r in ratio.rows] == [
        (name, pytest.approx(value)) for name, value in by
    ]


def test_a_share_of_segments_is_no_ratio() -> None:
    # Each carrier's part of the deliveries: the breakdown's shares, not late over total.
    found, _, _ = _ask("Qual a participação de cada transportadora nas entregas?")
    assert not any(f.kind == "ratio" for f in found)


def test_a_part_larger_than_the_whole_is_no_ratio() -> None:
    rows = [{"a": 10, "b": 5}, {"a": 20, "b": 7}]
    with data.from_records(rows) as table:
        prof = profile(table)
        plan = Plan(measures=[Measure(column="a", agg="sum")])
        fact = ratio_fact(table, prof, plan, question="what share of a is b")
    # b is 12 of a's 30: b over a, never a over b.
    assert fact is not None and (fact.values["part"], fact.values["whole"]) == ("b", "a")


def _funnel() -> list[dict[str, Any]]:
    return [
        {"day": f"2024-01-{d:02d}", "channel": ch, "sessions": s * d, "orders": o * d}
        for d in range(1, 6)
        for ch, s, o in (("TikTok Ads", 100, 1), ("Email", 50, 3))
    ]


@pytest.mark.parametrize("text", ["What's our conversion rate?", "Qual a taxa de conversão?"])
def test_a_conversion_rate_is_orders_over_sessions(text: str) -> None:
    with data.from_records(_funnel()) as table:
        prof = profile(table)
        fact = ratio_fact(table, prof, None, question=text)
    assert fact is not None and (fact.values["part"], fact.values["whole"]) == (
        "orders",
        "sessions",
    )
    assert fact.values["ratio_pct"] == pytest.approx(100 * (1 + 3) * 15 / ((100 + 50) * 15))


def test_a_rate_of_something_no_column_holds_is_said_missing() -> None:
    with data.from_records(_funnel()) as table:
        prof = profile(table)
    missing = missing_columns("Qual a taxa de rejeição por canal?", prof)
    assert [(c.pt, c.measure) for c in missing] == [("rejeição", True)]
    assert missing_columns("What's our conversion rate by channel?", prof) == []


@pytest.mark.parametrize(
    "text", ["Qual canal tem a melhor taxa de conversão?", "Which channel converts best?"]
)
def test_a_conversion_rate_without_visits_is_said_missing(text: str) -> None:
    """Orders and revenue but no visits: the conversion cannot be told, and ranking the
    revenue instead would answer another question."""
    rows = [{k: v for k, v in r.items() if k != "sessions"} for r in _funnel()]
    with data.from_records(rows) as table:
        prof = profile(table)
    missing = missing_columns(text, prof)
    assert [(c.pt, c.en, c.measure) for c in missing] == [
        ("visitas ou sessões", "visits or sessions", True)
    ]


def test_a_value_is_named_as_people_type_it() -> None:
    # "tiktok" for "TikTok Ads": lower case, and by its first word when no other value shares it.
    with data.from_records(_funnel()) as table:
        prof = profile(table)
    asked = questions.parse("tiktok sessions in january", prof)
    assert asked.segments == {"channel": ["TikTok Ads"]}
    plan = questions.reconcile(rule_plan("tiktok sessions", prof), asked, prof, "rules")
    assert plan is not None
    assert [(f.column, f.value) for f in plan.filters if f.column == "channel"] == [
        ("channel", "TikTok Ads")
    ]


def test_a_first_word_alone_names_a_value_only_when_the_rest_says_its_kind() -> None:
    rows = [
        {"mes": "2024-01-01", "especialidade": e, "transportadora": t, "consultas": 10}
        for e in ("Clínica Geral", "Cardiologia")
        for t in ("Total Express", "Correios")
    ]
    with data.from_records(rows) as table:
        prof = profile(table)
    # "a clínica" is the business, "no total" a total: neither is a value.
    assert questions.parse("Quantas consultas a clinica realizou?", prof).segments == {}
    assert questions.parse("Qual a fatia dos Correios no total?", prof).segments == {
        "transportadora": ["Correios"]
    }
    # Typed whole, in any case, they are.
    assert questions.parse("consultas da clínica geral via total express", prof).segments == {
        "especialidade": ["Clínica Geral"],
        "transportadora": ["Total Express"],
    }


def _spend() -> list[dict[str, Any]]:
    return [
        {"day": f"2024-01-{d:02d}", "channel": ch, "orders": o + d, "ad_spend_usd": s * d,
         "receita": 10.0 * o * d}
        for d in range(1, 6)
        for ch, o, s in (("Google Ads", 10, 100.0), ("Meta Ads", 4, 90.0))
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Google Ads vs Meta Ads - which one has the cheaper cost per order?", "en"),
        ("Qual o custo por pedido de cada canal?", "pt"),
    ],
)
def test_an_amount_per_unit_of_another(text: str, lang: str) -> None:
    rows = _spend()
    with data.from_records(rows) as table:
        prof = profile(table)
        fact = per_fact(table, prof, None, text, "channel")
    assert fact is not None and fact.kind == "per"
    assert (fact.values["numerator"], fact.values["denominator"]) == ("ad_spend_usd", "orders")
    expected = {
        ch: sum(r["ad_spend_usd"] for r in rows if r["channel"] == ch)
        / sum(r["orders"] for r in rows if r["channel"] == ch)
        for ch in ("Google Ads", "Meta Ads")
    }
    assert {r["channel"]: r["per_value"] for r in fact.rows} == pytest.approx(expected)
    said = describe(fact, Context(for_language(lang), prof, None, {fact.id}))
    first = min(expected, key=lambda ch: expected[ch])
    if lang == "pt":
        assert said.startswith("Ad_spend_usd por orders é US$") and f"Por channel: {first}" in said
    else:
        assert said.startswith("Ad_spend_usd per orders is $") and f"By channel: {first}" in said


def test_per_a_segment_is_a_grouping_not_a_division() -> None:
    with data.from_records(_spend()) as table:
        prof = profile(table)
        assert per_fact(table, prof, None, "Qual a receita por canal?") is None
        # A ticket is money per unit of what follows it.
        ticket = per_fact(table, prof, None, "Qual o ticket médio por pedido?")
    assert ticket is not None
    assert (ticket.values["numerator"], ticket.values["denominator"]) == ("receita", "orders")


def test_the_anomaly_check_reads_the_measure_its_part_of_the_question_names() -> None:
    text = "What percentage of deliveries were late, and did any carrier's delay spike?"
    with data.from_records(_deliveries()) as table:
        prof = profile(table)
        asked = questions.parse(text, prof)
        plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
        found, planned = InsightService._facts(table, prof, plan, 3, text, asked)
    assert plan is not None and plan.measures[0].column == "entregas"
    anomaly = next(f for f in found if f.kind == "anomaly")
    assert anomaly.id in planned and anomaly.values["measure"] == "atraso_medio_min"
    assert any(f.kind == "ratio" for f in found if f.id in planned)


def _per_pair_of(rows: list[dict[str, Any]], text: str) -> tuple[str, str] | None:
    from billumy.insights.ratios import _per_pair

    with data.from_records(rows) as table:
        return _per_pair(text, profile(table))


def test_per_trip_is_per_trip_completed() -> None:
    """'distância média por corrida' with trips requested, completed and cancelled: the miles
    over the trips made, never over the cancelled ones."""
    rows = [
        {
            "city": ("Phoenix", "Austin")[i % 2],
            "trips_requested": 100 + i,
            "trips_completed": 90 + i,
            "trips_cancelled": 10,
            "total_miles": 600.0 + i,
        }
        for i in range(40)
    ]
    for text in ("Qual a distância média por corrida em Phoenix?", "Miles per trip in Austin?"):
        assert _per_pair_of(rows, text) == ("total_miles", "trips_completed")


def test_the_price_per_item_is_per_unit_sold() -> None:
    rows = [
        {
            "store": ("Pearl District", "Alberta")[i % 2],
            "product_line": ("Bread", "Pastries")[i // 2 % 2],
            "units_baked": 120 + i,
            "units_sold": 100 + i,
            "net_sales_usd": 400.0 + i,
        }
        for i in range(40)
    ]
    text = "What's the average price we get per pastry at Pearl District?"
    assert _per_pair_of(rows, text) == ("net_sales_usd", "units_sold")
    # no price word, no unit sold: "per pastry" names a product line, it divides by nothing
    assert _per_pair_of(rows, "Sales per pastry at Pearl District?") is None


def test_the_quantity_per_unit_may_be_named_further_back() -> None:
    rows = [
        {"posto": ("Centro", "Norte")[i % 2], "litros_vendidos": 5000.0 + i, "abastecimentos": 160}
        for i in range(40)
    ]
    text = "Quantos litros cada caminhão coloca em média por abastecimento?"
    assert _per_pair_of(rows, text) == ("litros_vendidos", "abastecimentos")


@pytest.mark.parametrize(
    "text",
    ["Qual a inadimplência da carteira hoje?", "What's our delinquency this month?"],
)
def test_delinquency_is_the_balance_past_due_over_the_balance(text: str) -> None:
    from billumy.insights.ratios import jargon

    rows = [
        {
            "mes": f"2024-0{m}-01",
            "agencia": ("Centro", "Norte")[i],
            "contratos": 10 + m,
            "saldo_carteira": 1000.0 * (m + i + 1),
            "saldo_em_atraso_90d": 20.0 * (m + 1),
        }
        for m in range(1, 9)
        for i in range(2)
    ]
    with data.from_records(rows) as table:
        found = jargon(text, profile(table))
    assert found is not None and found[:3] == ("ratio", "saldo_em_atraso_90d", "saldo_carteira")


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Qual foi o ticket médio da unidade Moema?", "pt"),
        ("What was the average ticket at Moema?", "en"),
        ("What's Moema's average order value?", "en"),
    ],
)
def test_the_average_ticket_is_the_money_per_order(text: str, lang: str) -> None:
    """ "Ticket médio" is the money taken per order, not the rows' average of the money
    (a busy day and a quiet one weigh as their orders do)."""
    rows = [
        {"data": f"2024-03-{day:02d}", "unidade": unit, "faturamento": 70.0 * orders + day,
         "pedidos": orders}
        for day in range(1, 11)
        for unit, orders in (("Moema", 90 + 9 * day), ("Pinheiros", 120))
    ]  # fmt: skip
    moema = [r for r in rows if r["unidade"] == "Moema"]
    expected = sum(float(r["faturamento"]) for r in moema) / sum(int(r["pedidos"]) for r in moema)  # type: ignore[call-overload]
    with data.from_records(rows) as table:
        prof = profile(table)
        asked = questions.parse(text, prof)
        plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
        found, planned = InsightService._facts(table, prof, plan, 3, text, asked)
    (per,) = [f for f in found if f.kind == "per" and f.id in planned]
    assert (per.values["numerator"], per.values["denominator"]) == ("faturamento", "pedidos")
    assert per.values["per_value"] == pytest.approx(expected)
    # Not also the rows' average of the money, another number.
    assert not [f for f in found if f.id in planned and f.kind == "aggregate"]
    ctx = Context(for_language(lang), prof, plan, planned)
    assert ("ticket médio" if lang == "pt" else "average") in describe(per, ctx)


@pytest.mark.parametrize(
    "text",
    ["Which warehouse has the lowest short-pick rate?", "Qual foi a taxa de short pick da rede?"],
)
def test_a_word_of_one_columns_name_does_not_name_another(text: str) -> None:
    """ "short-pick rate" names ``short_picks`` whole: its "pick" is no naming of
    ``units_picked`` too, so the rate is over the lines (the smallest column that holds the
    short picks on every row), not over the units."""
    rows = [
        {"warehouse": ("DC Norte", "DC Sul")[i % 2], "pickers": 8 + i % 3,
         "order_lines": 400 + 7 * i, "units_picked": 900 + 11 * i, "short_picks": 4 + i % 9}
        for i in range(30)
    ]  # fmt: skip
    with data.from_records(rows) as table:
        prof = profile(table)
        asked = questions.parse(text, prof)
        plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
        found, planned = InsightService._facts(table, prof, plan, 3, text, asked)
    (ratio,) = [f for f in found if f.kind == "ratio" and f.id in planned]
    assert (ratio.values["part"], ratio.values["whole"]) == ("short_picks", "order_lines")
    lines = sum(int(r["order_lines"]) for r in rows)  # type: ignore[call-overload]
    short = sum(int(r["short_picks"]) for r in rows)  # type: ignore[call-overload]
    assert ratio.values["ratio_pct"] == pytest.approx(100 * short / lines)
