"""Measures an operations analyst derives from the columns, in both languages: a hospital's
average daily census and nursing hours per patient day, a loan book's delinquency and its
parts read at the latest date (not summed over months), goods sold by the litre, whose sales
and growth are the litres, and what the data cannot tell (how a sale was paid, the members on
the books). References are computed here in Python, not by Billumy."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from billumy.insights import data
from billumy.insights import question as questions
from billumy.insights.answer import _missing_sentence, missing_columns
from billumy.insights.plan import Measure, Plan
from billumy.insights.profile import profile
from billumy.insights.ratios import per_period_fact, weighted_fact
from billumy.insights.rules import rule_plan
from billumy.insights.statements import Context, describe
from tests.insights_data import rules_run


def _facts(
    rows: list[dict[str, Any]], text: str, lang: str
) -> tuple[list[Any], set[str], Context, list[dict[str, Any]]]:
    run = rules_run(rows, text, lang)
    return run.found, run.planned, run.ctx, run.parts


def _wards() -> list[dict[str, Any]]:
    """Two wards, one row a day, January-February 2024: beds staffed and occupied (levels),
    admissions and nursing hours (flows)."""
    rows = []
    day = date(2024, 1, 1)
    while day < date(2024, 3, 1):
        for ward, staffed, base in (("Medical ICU", 12, 9), ("Maternity", 30, 18)):
            occupied = base + day.day % 4
            rows.append(
                {"census_date": day.isoformat(), "ward": ward, "staffed_beds": staffed,
                 "occupied_beds": occupied, "admissions": 2 + day.day % 3,
                 "nursing_hours": 20.5 * occupied + day.day % 5}
            )  # fmt: skip
        day += timedelta(days=1)
    return rows


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("What was our average daily census in February?", "en"),
        ("Qual foi o censo diário médio em fevereiro?", "pt"),
    ],
)
def test_the_average_daily_census_is_the_beds_occupied_each_day_averaged(
    text: str, lang: str
) -> None:
    rows = _wards()
    found, planned, ctx, _ = _facts(rows, text, lang)
    per = next(f for f in found if f.kind == "per" and f.id in planned)
    february = [r for r in rows if r["census_date"].startswith("2024-02")]
    days = {r["census_date"] for r in february}
    expected = sum(r["occupied_beds"] for r in february) / len(days)
    assert per.values["numerator"] == "occupied_beds"
    assert per.values["per_value"] == pytest.approx(expected)
    assert per.values["denominator_total"] == len(days) == 29
    said = describe(per, ctx)
    assert ctx.formats.number(round(expected, 2)) in said
    assert ("29 dias" if lang == "pt" else "29 days") in said
    assert said.startswith(
        "Occupied_beds num dia médio em fevereiro de 2024 é"
        if lang == "pt"
        else "Occupied_beds on an average day in February 2024 is"
    )
    # Not the average ward row, which is the level of one ward on one day.
    assert not any(f.kind == "aggregate" for f in found if f.id in planned)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("How many nursing hours per patient day did the ICU use in February?", "en"),
        ("Quantas horas de enfermagem por paciente-dia a UTI usou em fevereiro?", "pt"),
    ],
)
def test_nursing_hours_per_patient_day_are_over_the_beds_occupied(text: str, lang: str) -> None:
    rows = _wards()
    found, planned, _, _ = _facts(rows, text, lang)
    per = next(f for f in found if f.kind == "per" and f.id in planned)
    mine = [
        r for r in rows if r["ward"] == "Medical ICU" and r["census_date"].startswith("2024-02")
    ]
    expected = sum(r["nursing_hours"] for r in mine) / sum(r["occupied_beds"] for r in mine)
    assert (per.values["numerator"], per.values["denominator"]) == (
        "nursing_hours",
        "occupied_beds",
    )
    assert per.values["per_value"] == pytest.approx(expected)


def _loans() -> list[dict[str, Any]]:
    """Six months of two branches and two products: contracts lent (flows), the loan book
    and its part 90 days past due (levels at the month's end)."""
    rows = []
    for month in range(1, 7):
        for branch, size in (("Centro", 1.0), ("Norte", 0.6)):
            for product, book, late in (("Consignado", 900.0, 9.0), ("Rural", 600.0, 30.0)):
                rows.append(
                    {"mes": f"2024-{month:02d}-01", "agencia": branch, "produto": product,
                     "valor_contratado": 50.0 * size * month,
                     "saldo_carteira": size * (book + 40 * month),
                     "saldo_em_atraso_90d": size * (late + 3 * month * (product == "Rural"))}
                )  # fmt: skip
    return rows


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Qual a inadimplência da carteira hoje?", "pt"),
        ("What's our delinquency rate right now?", "en"),
    ],
)
def test_a_rate_of_two_levels_today_is_read_at_the_latest_date(text: str, lang: str) -> None:
    rows = _loans()
    found, planned, ctx, parts = _facts(rows, text, lang)
    ratio = next(f for f in found if f.kind == "ratio" and f.id in planned)
    june = [r for r in rows if r["mes"] == "2024-06-01"]
    expected = (
        100 * sum(r["saldo_em_atraso_90d"] for r in june) / sum(r["saldo_carteira"] for r in june)
    )
    assert (ratio.values["part"], ratio.values["whole"]) == (
        "saldo_em_atraso_90d",
        "saldo_carteira",
    )
    assert ratio.values["ratio_pct"] == pytest.approx(expected)
    assert ratio.as_of is not None and ratio.as_of["period"] == "2024-06"
    said = describe(ratio, ctx)
    assert ("junho de 2024" if lang == "pt" else "June 2024") in said
    assert ctx.formats.rate(expected) in said
    # "hoje" is answered by the facts read at the latest date: no part said missing.
    assert all(p["covered"] for p in parts)


def test_a_share_of_the_loan_book_now_is_of_the_latest_balance() -> None:
    rows = _loans()
    text = "What share of our loan book is payroll loans right now?"
    found, planned, _, _ = _facts(rows, text, "en")
    ranked = next(f for f in found if f.kind == "breakdown" and f.id in planned)
    assert "saldo_carteira" in ranked.columns and "valor_contratado" not in ranked.columns
    june = [r for r in rows if r["mes"] == "2024-06-01"]
    payroll = sum(r["saldo_carteira"] for r in june if r["produto"] == "Consignado")
    share = {r["produto"]: r["share_pct"] for r in ranked.rows}
    assert share["Consignado"] == pytest.approx(
        100 * payroll / sum(r["saldo_carteira"] for r in june)
    )
    # "payroll" is no word of earning: the money lent is not asked for.
    assert not any("valor_contratado" in f.columns for f in found if f.id in planned)


def _fuel() -> list[dict[str, Any]]:
    """Three months of two fuels at one station: litres sold, revenue (the price moves)."""
    rows = []
    for month in range(1, 4):
        for fuel, litres, price, growth in (
            ("Etanol", 1000.0, 3.8, 0.2),
            ("Diesel", 3000.0, 6.0, 0.0),
        ):
            sold = litres * (1 + growth * (month - 1))
            price_now = price * (1 + (0.3 if fuel == "Diesel" else -0.1) * (month - 1))
            rows.append(
                {"data": f"2024-{month:02d}-01", "posto": "Centro", "combustivel": fuel,
                 "litros_vendidos": sold, "faturamento": round(sold * price_now, 2)}
            )  # fmt: skip
    return rows


def _measures(text: str) -> list[str]:
    with data.from_records(_fuel()) as table:
        prof = profile(table)
        asked = questions.parse(text, prof)
        plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
    assert plan is not None
    return [m.column for m in plan.measures]


@pytest.mark.parametrize(
    "text",
    [
        "Como evoluíram as vendas de etanol mês a mês?",
        "How have ethanol sales trended month over month?",
        "Which fuel grew the most from January to March?",
        "Qual combustível mais cresceu de janeiro a março?",
    ],
)
def test_goods_sold_by_the_litre_sell_and_grow_in_litres(text: str) -> None:
    assert _measures(text) == ["litros_vendidos"]


@pytest.mark.parametrize(
    "text",
    ["Quanto vendemos em março?", "Which fuel brought in the most revenue?", "Qual o faturamento?"],
)
def test_money_is_still_asked_for_by_its_own_words(text: str) -> None:
    assert _measures(text) == ["faturamento"]


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("What was the ICU occupancy rate in February?", "en"),
        ("Qual foi a taxa de ocupação da UTI em fevereiro?", "pt"),
    ],
)
def test_an_occupancy_over_a_month_is_its_bed_days_not_one_days(text: str, lang: str) -> None:
    rows = _wards()
    found, planned, _, _ = _facts(rows, text, lang)
    ratio = next(f for f in found if f.kind == "ratio" and f.id in planned)
    mine = [
        r for r in rows if r["ward"] == "Medical ICU" and r["census_date"].startswith("2024-02")
    ]
    expected = 100 * sum(r["occupied_beds"] for r in mine) / sum(r["staffed_beds"] for r in mine)
    assert ratio.values["ratio_pct"] == pytest.approx(expected)
    assert ratio.as_of is None


@pytest.mark.parametrize(
    ("text", "lang", "said"),
    [
        ("How many of the fill-ups were paid by credit card?", "en", "payment method"),
        ("Quantos abastecimentos foram pagos no cartão?", "pt", "forma de pagamento"),
        ("Qual agência tem mais cooperados ativos?", "pt", "cooperados"),
        ("Which branch has the most active members?", "en", "members"),
    ],
)
def test_a_payment_method_and_members_on_the_books_are_said_missing(
    text: str, lang: str, said: str
) -> None:
    rows = (
        [{**r, "abastecimentos": 10 + i} for i, r in enumerate(_fuel())]
        if "fill" in text or "abastec" in text
        else _loans()
    )
    with data.from_records(rows) as table:
        prof = profile(table)
    missing = missing_columns(text, prof)
    assert [c.pt if lang == "pt" else c.en for c in missing] == [said]
    sentence = _missing_sentence(missing[0], lang == "pt").text
    assert sentence == (
        f"Os dados não têm uma coluna de {said}."
        if lang == "pt"
        else f"The data has no {said} column."
    )


def test_members_a_column_holds_or_that_an_event_counts_are_not_missing() -> None:
    rows = [
        {"mes": f"2024-0{m}-01", "unidade": u, "assinantes_ativos": 100 + m, "cancelamentos": m}
        for m in range(1, 4)
        for u in ("Centro", "Sul")
    ]
    with data.from_records(rows) as table:
        prof = profile(table)
    assert missing_columns("Which unit has the most active subscribers?", prof) == []
    assert missing_columns("Quantos membros cancelaram em março?", prof) == []


def _workshops() -> list[dict[str, Any]]:
    """Four months of two branches and two services: orders completed and each row's mean
    repair days over them (a few slow warranty orders beside many quick revisions)."""
    rows = []
    for month in range(1, 5):
        for branch, slow in (("Sorriso", 1.0), ("Cascavel", 0.5)):
            for service, done, days in (("Garantia", 3 + month, 9.0), ("Revisao", 60, 2.0)):
                rows.append(
                    {"mes": f"2024-0{month}-01", "filial": branch, "tipo_servico": service,
                     "os_abertas": done + 2, "os_concluidas": done,
                     "tempo_medio_reparo_dias": days + slow * month / 4}
                )  # fmt: skip
    return rows


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Qual o tempo médio de reparo da rede?", "pt"),
        ("What's the average repair time across the network?", "en"),
    ],
)
def test_an_average_of_row_averages_is_weighted_by_the_orders_completed(
    text: str, lang: str
) -> None:
    rows = _workshops()
    found, planned, ctx, _ = _facts(rows, text, lang)
    per = next(f for f in found if f.kind == "per" and f.id in planned)
    expected = sum(r["tempo_medio_reparo_dias"] * r["os_concluidas"] for r in rows) / sum(
        r["os_concluidas"] for r in rows
    )
    plain_mean = sum(r["tempo_medio_reparo_dias"] for r in rows) / len(rows)
    assert per.values["weighted"] is True and per.values["denominator"] == "os_concluidas"
    assert per.values["per_value"] == pytest.approx(expected)
    said = describe(per, ctx)
    assert ctx.formats.number(round(expected, 2)) in said
    assert ("ponderada por os_concluidas" if lang == "pt" else "weighted by os_concluidas") in said
    # The mean of the rows is not stated beside it.
    assert not any(
        ctx.formats.number(round(plain_mean, 2)) in describe(f, ctx)
        for f in found
        if f.id in planned
    )


def test_the_weighted_average_ranks_the_segments_asked_for() -> None:
    rows = _workshops()
    found, planned, ctx, _ = _facts(rows, "Qual filial tem o maior tempo médio de reparo?", "pt")
    per = next(f for f in found if f.kind == "per" and f.id in planned)

    def weighted(branch: str) -> float:
        mine = [r for r in rows if r["filial"] == branch]
        return sum(r["tempo_medio_reparo_dias"] * r["os_concluidas"] for r in mine) / sum(
            r["os_concluidas"] for r in mine
        )

    assert {r["filial"]: r["per_value"] for r in per.rows} == pytest.approx(
        {b: weighted(b) for b in ("Sorriso", "Cascavel")}
    )
    top = ctx.formats.number(round(weighted("Sorriso"), 2))
    assert describe(per, ctx).endswith(
        f"Por filial: Cascavel {ctx.formats.number(round(weighted('Cascavel'), 2))}; Sorriso {top}."
    )


def test_an_average_asked_beside_totals_stays_in_their_aggregate() -> None:
    # "How many tickets came in, how many did we resolve, and the resolution rate?": the plan
    # sums two columns beside the average; the aggregate holds every part, no weighted fact.
    plan = Plan(
        measures=[
            Measure(column="os_abertas", agg="sum"),
            Measure(column="os_concluidas", agg="sum"),
            Measure(column="tempo_medio_reparo_dias", agg="avg"),
        ]
    )
    with data.from_records(_workshops()) as table:
        prof = profile(table)
        assert weighted_fact(table, prof, plan) is None
        alone = Plan(measures=[Measure(column="tempo_medio_reparo_dias", agg="avg")])
        assert weighted_fact(table, prof, alone) is not None


def test_a_level_per_week_on_monthly_rows_is_no_average_week() -> None:
    # Monthly rows are no weeks: "alunos ativos por semana" has no average week to give
    # (24 months are not "24 weeks").
    rows = [
        {"competencia": f"{2023 + m // 12}-{m % 12 + 1:02d}-01", "unidade": u,
         "alunos_ativos": 500 + m}
        for m in range(24)
        for u in ("Centro", "Sul")
    ]  # fmt: skip
    text = "Qual a média de alunos ativos por semana em cada unidade?"
    with data.from_records(rows) as table:
        prof = profile(table)
        plan = rule_plan(text, prof)
        assert per_period_fact(table, prof, plan, text) is None


# --- a kind of segment said by a word its values share -----------------------------------------


def _credit_lines() -> list[dict[str, Any]]:
    """Two branches lending three credit products a month; each row's rate is its average."""
    rates = {"Crédito Rural": 0.9, "Crédito Pessoal": 3.4, "Consignado": 1.6}
    return [
        {
            "mes": f"2024-{month:02d}-01",
            "agencia": branch,
            "produto": product,
            "valor_contratado": 1000.0 * month + (500.0 if branch == "Centro" else 0.0),
            "taxa_media_mensal": rate + (0.05 if branch == "Centro" else 0.0),
        }
        for month in range(1, 7)
        for branch in ("Centro", "Oeste")
        for product, rate in rates.items()
    ]


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("qual linha de credito tem a menor taxa media?", "pt"),
        ("Qual linha de crédito tem a menor taxa média?", "pt"),
        ("Which credit line has the lowest average rate?", "en"),
    ],
)
def test_a_credit_line_is_the_product_and_its_rate_the_rate_column(text: str, lang: str) -> None:
    """ "linha de crédito" names no column, but "crédito" is in two of ``produto``'s values:
    the products are ranked, not the branches (the data's main breakdown); "taxa média" and
    "average rate" are the rate column, not a missing column "média"."""
    run = rules_run(_credit_lines(), text, lang)
    assert run.plan is not None
    assert run.plan.dimensions == ["produto"]
    assert [m.column for m in run.plan.measures] == ["taxa_media_mensal"]
    assert "Crédito Rural tem a menor" in run.text or "Crédito Rural has the lowest" in run.text
    assert "coluna de" not in run.text and "has no" not in run.text, run.text
