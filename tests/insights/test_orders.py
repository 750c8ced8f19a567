"""Orders counted by their id, a neighbourhood by its word in either language, and names that
keep their own capitals (``iFood``), on one order per row.

The data: an order per row with ``id_pedido`` and ``valor_pedido`` (the word "pedido" is in
both), a platform and a neighbourhood, over two months. Every expected number is counted here
from the rows."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from billumy.insights.plan import Filter
from billumy.insights.rules import threshold_filters
from billumy.insights.statements import cap
from tests.insights_data import rules_run

PLATFORMS = {"iFood": 6, "Rappi": 3, "Pedido Próprio": 2}  # orders a day in Pinheiros
SLOWER = {"Pinheiros": 0, "Tatuapé": 9}  # minutes added to the delivery


def _orders() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for month in (1, 2):
        for day in range(1, 29):
            for hood, slower in SLOWER.items():
                for platform, count in PLATFORMS.items():
                    for k in range(count + month):  # February has one more order of each
                        rows.append(
                            {
                                "id_pedido": 1000 + len(rows),
                                "data_pedido": f"2024-{month:02d}-{day:02d}",
                                "plataforma": platform,
                                "bairro": hood,
                                "valor_pedido": 40.0 + 7 * k + day,
                                "tempo_entrega_min": 30 + slower + k,
                                "taxa_entrega": 0.0 if platform == "Pedido Próprio" else 5.99,
                                "avaliacao": 5 if k < 3 else 4 if slower == 0 else 2,
                            }
                        )
    return rows


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Quantos pedidos tivemos por plataforma?", "pt"),
        ("How many orders did each platform get?", "en"),
    ],
)
def test_orders_are_counted_not_their_value_summed(text: str, lang: str) -> None:
    """ "pedidos" names ``id_pedido`` (the orders) and only qualifies ``valor_pedido`` (the
    value of an order): the orders are counted, and no total of money is said."""
    rows = _orders()
    run = rules_run(rows, text, lang)
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [("id_pedido", "count")]
    counted = Counter(r["plataforma"] for r in rows)
    sep = "." if lang == "pt" else ","
    assert f"iFood {counted['iFood']:,}".replace(",", sep) in run.text, run.text
    assert "R$" not in run.text, run.text


def test_the_value_of_the_orders_is_still_their_value() -> None:
    run = rules_run(_orders(), "Qual o valor total dos pedidos por plataforma?", "pt")
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [("valor_pedido", "sum")]


def test_orders_month_by_month_are_counts() -> None:
    rows = _orders()
    run = rules_run(rows, "How did the number of orders change month by month?", "en")
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [("id_pedido", "count")]
    months = Counter(r["data_pedido"][:7] for r in rows)
    assert (
        f"from {months['2024-01']:,} in January 2024 to {months['2024-02']:,} in February 2024"
        in run.text
    ), run.text


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Which neighborhood has the longest average delivery time?", "en"),
        ("Qual bairro tem o maior tempo médio de entrega?", "pt"),
    ],
)
def test_a_neighbourhood_is_the_bairro(text: str, lang: str) -> None:
    run = rules_run(_orders(), text, lang)
    assert run.plan is not None and run.plan.dimensions == ["bairro"]
    assert "Tatuapé" in run.text.split("Ranking:")[1].split(";")[0], run.text


def test_a_name_with_its_own_capitals_keeps_them() -> None:
    assert cap("iFood teve queda forte") == "iFood teve queda forte"
    assert cap("eBay") == "eBay"
    assert cap("rappi cresceu") == "Rappi cresceu"
    assert cap("ifood") == "Ifood"


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Quanto arrecadamos de taxa de entrega no Tatuapé em fevereiro?", "pt"),
        ("How much did we collect in delivery fees in Tatuapé in February?", "en"),
    ],
)
def test_a_delivery_fee_collected_is_summed_not_a_rate(text: str, lang: str) -> None:
    """ "taxa de entrega" is the column ``taxa_entrega`` said whole (a fee), not a rate of
    Tatuapé's rows among all; what was collected adds up."""
    rows = _orders()
    run = rules_run(rows, text, lang)
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [("taxa_entrega", "sum")]
    expected = sum(
        r["taxa_entrega"]
        for r in rows
        if r["bairro"] == "Tatuapé" and r["data_pedido"].startswith("2024-02")
    )
    shown = f"{expected:,.2f}"
    if lang == "pt":
        shown = shown.replace(",", "X").replace(".", ",").replace("X", ".")
    assert shown in run.text, run.text
    assert not [f for f in run.found if f.kind == "ratio"], run.text


# --- a bound on a number column ("mais de 50 minutos", "over R$ 100") --------------------------


@pytest.mark.parametrize(
    ("text", "lang", "said"),
    [
        (
            "Qual a avaliação média dos pedidos que demoraram mais de 35 minutos?",
            "pt",
            "Onde tempo_entrega_min é maior que 35, a média de avaliacao é {}.",
        ),
        (
            "What is the average rating of orders that took more than 35 minutes?",
            "en",
            "Where tempo_entrega_min is over 35, average avaliacao is {}.",
        ),
    ],
)
def test_a_bound_keeps_the_rows_and_mais_ranks_nothing(text: str, lang: str, said: str) -> None:
    rows = _orders()
    run = rules_run(rows, text, lang)
    assert run.plan is not None
    assert run.plan.filters == [Filter(column="tempo_entrega_min", op=">", value=35.0)]
    assert [(m.column, m.agg) for m in run.plan.measures] == [("avaliacao", "avg")]
    assert run.plan.dimensions == []  # "mais de" is no "which has the most"
    kept = [r["avaliacao"] for r in rows if r["tempo_entrega_min"] > 35]
    mean = f"{sum(kept) / len(kept):.2f}"
    assert said.format(mean.replace(".", ",") if lang == "pt" else mean) in run.text, run.text


def test_orders_over_an_amount_counted_by_platform() -> None:
    rows = _orders()
    run = rules_run(rows, "Which platform had the most orders over R$ 100?", "en")
    assert run.plan is not None
    assert run.plan.filters == [Filter(column="valor_pedido", op=">", value=100.0)]
    assert [(m.column, m.agg) for m in run.plan.measures] == [("id_pedido", "count")]
    assert run.plan.dimensions == ["plataforma"]
    over = Counter(r["plataforma"] for r in rows if r["valor_pedido"] > 100)
    top, count = over.most_common(1)[0]
    assert f"{top} has the highest" in run.text and f"{top} {count:,}" in run.text, run.text


def test_what_is_no_bound() -> None:
    """A period ("mais de 2 meses"), a percentage and a column named by no word near the
    bound set no filter; "at least 4 stars" is the rating's."""
    columns = rules_run(_orders(), "Quantos pedidos?", "pt").ctx.profile.columns
    assert threshold_filters("pedidos de mais de 2 meses atrás", columns) == []
    assert threshold_filters("lojas com mais de 10% de queda", columns) == []
    assert threshold_filters("avaliação abaixo de 3", columns) == [
        Filter(column="avaliacao", op="<", value=3.0)
    ]
    assert threshold_filters("orders rated at least 4 stars", columns) == [
        Filter(column="avaliacao", op=">=", value=4.0)
    ]


# --- an order's number under a plain name ("pedido": 1001, 1002...) ----------------------------


def _numbered() -> list[dict[str, Any]]:
    """300 orders numbered 5001..5300 in a column called just ``pedido``; a coupon on some."""
    return [
        {
            "pedido": 5001 + n,
            "data": f"2024-03-{1 + n % 28:02d}",
            "categoria": ("Moda", "Casa", "Beleza")[n % 3],
            "quantidade": 1 + n % 3 + (1 if n % 3 == 0 else 0),
            "receita_bruta": 100.0 + n % 7,
            "cupom": "BEMVINDO10" if n % 5 == 0 else "BLACK20" if n % 11 == 0 else "",
        }
        for n in range(300)
    ]


def test_a_column_that_numbers_the_rows_is_an_id_never_summed() -> None:
    """``pedido`` holds no amount: its values fill 5001..5300, one a row. The ticket is the
    revenue per order, never the revenue over the sum of the order numbers (R$ 0,05)."""
    rows = _numbered()
    run = rules_run(rows, "Qual categoria tem o maior ticket médio?", "pt")
    pedido = run.ctx.profile.column("pedido")
    assert pedido is not None and pedido.kind == "id"
    assert "0,0" not in run.text, run.text
    moda = [r["receita_bruta"] for r in rows if r["categoria"] == "Moda"]
    assert f"{sum(moda) / len(moda):.2f}".replace(".", ",") in run.text, run.text
    # 199 rows of such numbers are too few to tell an id from a measure.
    few = rules_run(rows[:199], "Quantos?", "pt").ctx.profile.column("pedido")
    assert few is not None and few.kind == "numeric"


def test_units_per_order_are_each_order_s_on_average() -> None:
    rows = _numbered()
    run = rules_run(rows, "Qual categoria vende mais unidades por pedido?", "pt")
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [("quantidade", "avg")]
    assert run.text.split("Ranking: ")[1].startswith("Beleza 3;"), run.text


@pytest.mark.parametrize(
    ("text", "lang"),
    [("Which coupon was used the most?", "en"), ("Qual cupom foi mais usado?", "pt")],
)
def test_the_coupon_used_most_is_counted(text: str, lang: str) -> None:
    rows = _numbered()
    run = rules_run(rows, text, lang)
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [("pedido", "count")]
    assert run.plan.dimensions == ["cupom"]
    used = Counter(r["cupom"] for r in rows if r["cupom"])
    assert f"BEMVINDO10 {used['BEMVINDO10']}" in run.text, run.text


def test_days_bound_a_column_of_days_only() -> None:
    columns = rules_run(_orders(), "Quantos pedidos?", "pt").ctx.profile.columns
    # No column holds days here: "há mais de 5 dias" binds nothing.
    assert threshold_filters("pedidos de mais de 5 dias atrás", columns) == []
    days = rules_run(
        [{"envio": f"E{n}", "prazo_dias": n % 9, "valor": 10.0 + n} for n in range(30)],
        "Quantos envios?",
        "pt",
    ).ctx.profile.columns
    assert threshold_filters("envios com prazo de mais de 5 dias", days) == [
        Filter(column="prazo_dias", op=">", value=5.0)
    ]
