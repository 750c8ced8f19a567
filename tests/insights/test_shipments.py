"""Shipments to Brazilian states, held by their codes (``uf_destino``: SP, BA, PR): a state
named by its name, "UF" naming the column by its first word, and the cheapest carrier as
the lowest freight on average."""

from __future__ import annotations

from typing import Any

import pytest

from billumy.insights.plan import Filter
from tests.insights_data import rules_run

CARRIERS = {"Jadlog": 1.0, "Correios": 0.8, "Braspress": 1.3}
STATES = {"SP": 6, "BA": 2, "PR": 3, "MS": 1, "MT": 1}  # shipments a day to each


def _shipments() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for day in range(1, 29):
        for carrier, price in CARRIERS.items():
            for state, count in STATES.items():
                # Jadlog ships twice as much to Paraná: the most money spent, not the dearest.
                for k in range(count * (2 if carrier == "Jadlog" and state == "PR" else 1)):
                    rows.append(
                        {
                            "cod_envio": f"ENV{len(rows):05d}",
                            "data_coleta": f"2024-06-{day:02d}",
                            "transportadora": carrier,
                            "uf_destino": state,
                            "valor_frete": round((20 + 3 * k) * price, 2),
                            "entregue_no_prazo": "Não"
                            if carrier == "Correios" and k == 0
                            else "Sim",
                        }
                    )
    return rows


@pytest.mark.parametrize(
    ("text", "lang", "state"),
    [
        ("Quanto gastamos com frete para a Bahia?", "pt", "BA"),
        ("How much freight did we pay to ship to Paraná?", "en", "PR"),
        ("Quanto enviamos para o Mato Grosso do Sul?", "pt", "MS"),
        ("Quanto enviamos para o Mato Grosso?", "pt", "MT"),
    ],
)
def test_a_state_named_by_its_name_is_its_code(text: str, lang: str, state: str) -> None:
    run = rules_run(_shipments(), text, lang)
    assert run.plan is not None
    assert Filter(column="uf_destino", op="=", value=state) in run.plan.filters


@pytest.mark.parametrize(
    ("text", "lang"),
    [("Qual UF recebe mais envios?", "pt"), ("Which state gets the most shipments?", "en")],
)
def test_uf_names_the_state_column_by_its_first_word(text: str, lang: str) -> None:
    run = rules_run(_shipments(), text, lang)
    assert run.plan is not None
    assert run.plan.dimensions == ["uf_destino"]
    assert [(m.column, m.agg) for m in run.plan.measures] == [("cod_envio", "count")]


@pytest.mark.parametrize(
    ("text", "lang", "first"),
    [
        ("Qual transportadora é mais barata para o Paraná?", "pt", "Correios"),
        ("Which carrier is the most expensive to Paraná?", "en", "Braspress"),
    ],
)
def test_the_cheapest_carrier_has_the_lowest_average_freight(
    text: str, lang: str, first: str
) -> None:
    """Jadlog spends the most in total on Paraná (twice the shipments): "the cheapest" and
    "the most expensive" are about the price, the average freight."""
    run = rules_run(_shipments(), text, lang)
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [("valor_frete", "avg")]
    assert run.text.split("Ranking: ")[1].startswith(first), run.text


def test_on_time_is_the_column_said_no_prazo() -> None:
    """ "on time" (or "on-time") is one word, said "no prazo" in Portuguese: the share of the
    shipments delivered so, and no "the data has no time column"."""
    rows = _shipments()
    run = rules_run(rows, "What share of shipments arrived on time?", "en")
    on_time = sum(r["entregue_no_prazo"] == "Sim" for r in rows)
    pct = f"{100 * on_time / len(rows):.1f}%"
    assert f"The share of rows with entregue_no_prazo Sim is {pct}" in run.text, run.text
    assert "no time column" not in run.text


def test_an_on_time_rate_is_the_share_delivered_on_time() -> None:
    """ "on-time rate" is the share of ``entregue_no_prazo`` Sim, per carrier, not an average
    of another column "prazo" names (``prazo_dias``)."""
    rows = [{**r, "prazo_dias": 3} for r in _shipments()]
    run = rules_run(rows, "Which carrier had the highest on-time rate?", "en")
    (rate,) = [f for f in run.found if f.kind == "ratio"]
    assert rate.values["part_column"] == "entregue_no_prazo"
    share = {
        c: 100
        * sum(r["entregue_no_prazo"] == "Sim" for r in rows if r["transportadora"] == c)
        / sum(r["transportadora"] == c for r in rows)
        for c in CARRIERS
    }
    assert {r["transportadora"]: r["ratio_pct"] for r in rate.rows} == pytest.approx(share)
    assert "Correios the lowest" in run.text, run.text
