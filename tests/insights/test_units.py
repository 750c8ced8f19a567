"""Units the data writes beside its numbers, and words that name what is counted or summed.

A column loaded from text such as ``R$ 1.234,56``, ``$1,234.56`` or ``2,35%`` is a number,
and its answers keep the unit the file wrote, whatever the column is called (and after the
dataset is stored as Parquet and read back). Side by side in a ranking, numbers take the
same decimals. Every expected number is computed here from the rows."""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from billumy.insights import data
from billumy.insights.formats import for_language
from billumy.insights.profile import profile
from billumy.insights.service import derive_revenue
from tests.insights_data import rules_run, table_run

CHANNELS = {"Site": 0.5, "App": 0.0, "Marketplace": -0.25}  # conversion points over the base


def _shop_rows() -> list[dict[str, Any]]:
    rng = random.Random(5)
    rows = []
    day = date(2024, 1, 1)
    while day < date(2024, 4, 1):
        for channel, lift in CHANNELS.items():
            orders = rng.randint(20, 60)
            rows.append(
                {
                    "data": day.strftime("%d/%m/%Y"),
                    "canal": channel,
                    "pedidos": orders,
                    # money by its sign only: "liquido" names no money
                    "liquido": round(orders * rng.uniform(80, 120), 2),
                    "taxa_conversao": round(2 + lift + rng.uniform(-0.3, 0.3), 2),
                }
            )
        day += timedelta(days=1)
    return rows


def _brl(x: float) -> str:
    return "R$ " + f"{x:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")


def _shop_csv(rows: list[dict[str, Any]]) -> str:
    lines = ["data;canal;pedidos;liquido;taxa_conversao"]
    for r in rows:
        rate = f"{r['taxa_conversao']:.2f}%".replace(".", ",")
        lines.append(f"{r['data']};{r['canal']};{r['pedidos']};{_brl(r['liquido'])};{rate}")
    return "\n".join(lines) + "\n"


def test_money_and_percentages_written_as_text_keep_their_units() -> None:
    rows = _shop_rows()
    with data.from_csv(_shop_csv(rows)) as table:
        assert table.types["liquido"] == "DOUBLE"
        assert table.units == {"liquido": "BRL", "taxa_conversao": "percent"}
        prof = profile(table)
        liquido, rate = prof.column("liquido"), prof.column("taxa_conversao")
        assert liquido is not None and liquido.money and liquido.currency == "BRL"
        assert rate is not None and rate.percent and not rate.money
        total = sum(r["liquido"] for r in rows)
        pt = table_run(table, "Qual o total de liquido?", "pt").text
        en = table_run(table, "What is the total liquido?", "en").text
        assert for_language("pt").money(total, "BRL") in pt
        assert for_language("en").money(total, "BRL") in en and "R$" in en
        by_channel = table_run(table, "Qual a taxa de conversão média por canal?", "pt").text
    site = [r["taxa_conversao"] for r in rows if r["canal"] == "Site"]
    assert f"Site {for_language('pt').points(sum(site) / len(site), 2)}" in by_channel
    assert "%" in by_channel.split("Ranking:")[1]
    # The column is the conversion rate: nothing is missing to compute it.
    assert "visitas" not in by_channel


def test_dollars_as_text_are_us_dollars() -> None:
    csv = "month,plan,mrr\n" + "".join(
        f'2024-{m:02d},{p},"${1000 * m + (500 if p == "Pro" else 0):,.2f}"\n'
        for m in range(1, 7)
        for p in ("Basic", "Pro")
    )
    with data.from_csv(csv) as table:
        assert table.units == {"mrr": "USD"}
        text = table_run(table, "Which plan has the highest MRR?", "en").text
    assert "Pro $24,000.00" in text  # 21,000 + 6 x 500


def test_units_are_kept_when_the_dataset_is_stored_and_read_back(tmp_path: Path) -> None:
    rows = _shop_rows()
    stored = tmp_path / "data.parquet"
    with data.from_csv(_shop_csv(rows)) as table:
        data.save_parquet(table, stored)
    with data.from_file(stored, "parquet") as table:
        assert table.units == {"liquido": "BRL", "taxa_conversao": "percent"}
        prof = profile(table)
    assert (column := prof.column("liquido")) is not None and column.currency == "BRL"


@pytest.mark.parametrize(
    "kept",
    [b"not json", b'["liquido"]', b'{"liquido": "EUR", "x": "BRL", "pedidos": 3}', b"{}"],
)
def test_units_a_file_from_elsewhere_claims_are_checked(tmp_path: Path, kept: bytes) -> None:
    """Only a known unit of a column the file has is taken; other metadata is no unit."""
    schema = pa.schema([("liquido", pa.float64()), ("pedidos", pa.int64())])
    arrow = pa.table({"liquido": [1.5, 2.5], "pedidos": [1, 2]}, schema=schema)
    path = tmp_path / "x.parquet"
    pq.write_table(arrow.replace_schema_metadata({b"billumy.units": kept}), path)
    with data.from_file(path, "parquet") as table:
        assert table.units == {}


def test_numbers_side_by_side_in_a_ranking_take_the_same_decimals() -> None:
    rows = [
        {"filial": f, "nota": n}
        for f, notes in {"Centro": [1.9, 1.9], "Norte": [1.6, 1.7], "Sul": [1.2, 1.3]}.items()
        for n in notes
    ]
    text = rules_run(rows, "Qual a nota média por filial?", "pt").text
    assert "Ranking: Centro 1,90; Norte 1,65; Sul 1,25." in text
    fmt = for_language("en")
    assert fmt.places([1.9, 1.65, 3.0, 7]) == 2 and fmt.places([0.953, 1.648]) == 2
    assert fmt.places([0.0698, 0.071]) == 3
    assert fmt.number(0.0698) == "0.07" and fmt.number(0.0684) == "0.068"
    assert fmt.number(12.0, 2) == "12.00" and fmt.number(1234.5, 1) == "1,234.5"


def _saas_rows() -> list[dict[str, Any]]:
    prices = {"Basic": 49.0, "Pro": 199.0}
    rows = []
    for m in range(1, 7):
        for plan, price in prices.items():
            active = 100 * m + (50 if plan == "Basic" else 0)
            rows.append(
                {
                    "month": f"2024-{m:02d}",
                    "plan": plan,
                    "new_customers": 30 + m,
                    "churned_customers": 5 + m,
                    "active_customers": active,
                    "mrr": active * price,
                }
            )
    return rows


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("What is the average revenue per customer by plan?", "en"),
        ("Qual a receita média por cliente em cada plano?", "pt"),
    ],
)
def test_revenue_per_customer_is_over_the_customers_on_the_books(text: str, lang: str) -> None:
    """Beside new and churned customers, "per customer" is per active customer (ARPU); MRR
    is revenue, in the currency it is kept in."""
    run = rules_run(_saas_rows(), text, lang)
    assert for_language(lang).money(199.0) in run.text
    per = next(f for f in run.found if f.kind == "per")
    assert (per.values["numerator"], per.values["denominator"]) == ("mrr", "active_customers")
    assert {r["plan"]: round(float(r["per_value"]), 2) for r in per.rows} == {
        "Basic": 49.0,
        "Pro": 199.0,
    }


def _orders() -> list[dict[str, Any]]:
    rng = random.Random(9)
    return [
        {
            "id_pedido": 5000 + i,
            "data": (date(2024, 1, 1) + timedelta(days=i % 90)).isoformat(),
            "loja": ("Centro", "Norte", "Sul")[i % 3],
            "valor_total": round(rng.uniform(30, 300), 2),
            "desconto": float(rng.choice([0, 0, 5, 10, 20])),
            "devolucoes": rng.randint(0, 3) * (2 if i % 3 == 1 else 1),
            "tempo_entrega_min": rng.randint(15, 90),
        }
        for i in range(600)
    ]


@pytest.mark.parametrize(
    ("text", "lang"),
    [("How much did we give away in discounts?", "en"), ("Quanto demos de desconto?", "pt")],
)
def test_what_was_given_away_is_summed(text: str, lang: str) -> None:
    rows = _orders()
    run = rules_run(rows, text, lang)
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [("desconto", "sum")]
    assert for_language(lang).number(sum(r["desconto"] for r in rows)) in run.text


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Which store has most deliveries taking longer than 45 min?", "en"),
        ("Qual loja tem mais entregas acima de 45 minutos?", "pt"),
    ],
)
def test_the_rows_a_bound_keeps_are_counted_when_most_of_them_is_asked(
    text: str, lang: str
) -> None:
    rows = _orders()
    run = rules_run(rows, text, lang)
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [("id_pedido", "count")]
    slow = [r["loja"] for r in rows if r["tempo_entrega_min"] > 45]
    top = max(set(slow), key=slow.count)
    assert f"{top} {for_language(lang).number(slow.count(top))}" in run.text


def test_a_verb_of_returning_names_the_returns() -> None:
    rows = _orders()
    run = rules_run(rows, "Quais lojas devolvem mais?", "pt")
    assert run.plan is not None
    assert [m.column for m in run.plan.measures] == ["devolucoes"]
    returned = {s: sum(r["devolucoes"] for r in rows if r["loja"] == s) for s in ("Norte",)}
    assert f"Norte {for_language('pt').number(returned['Norte'])}" in run.text


@pytest.mark.parametrize(
    ("text", "lang", "polar"),
    [
        ("What was the MRR growth from 2023 to 2024?", "en", False),
        ("Quanto o MRR cresceu de 2023 para 2024?", "pt", False),
        ("Did MRR grow from 2023 to 2024?", "en", True),
        ("O MRR cresceu de 2023 para 2024?", "pt", True),
    ],
)
def test_a_question_of_how_much_it_grew_is_no_yes_or_no(text: str, lang: str, polar: bool) -> None:
    rows = [
        {"month": f"{y}-{m:02d}", "mrr": 1000.0 * (y - 2022) + m}
        for y in (2023, 2024)
        for m in (1, 2)
    ]
    answer = rules_run(rows, text, lang).text
    # 2023: 1,001 + 1,002 = 2,003; 2024: 2,001 + 2,002 = 4,003, up 99.9%
    assert for_language(lang).pct(100 * (4003 - 2003) / 2003) in answer
    opened = answer.startswith(("Yes:", "Sim:"))
    assert opened == polar


def test_a_rate_under_ten_percent_keeps_its_second_decimal() -> None:
    pt, en = for_language("pt"), for_language("en")
    assert pt.rate(1.954) == "1,95%" and en.rate(1.95) == "1.95%" and en.rate(2.0) == "2.0%"
    assert en.rate(14.34) == "14.3%" and en.rate(3.1, 2) == "3.10%"
    assert en.pct(1.954) == "2.0%"  # a share or a change keeps one decimal
    rows = [
        {"mes": f"2024-{m:02d}-01", "saldo_carteira": 1000.0, "saldo_em_atraso_90d": 19.5 + m}
        for m in (1, 2)
    ]
    text = rules_run(rows, "Qual a inadimplência da carteira hoje?", "pt").text
    assert "2,15%" in text  # 21.5 over 1,000 in February


def _appointments() -> list[dict[str, Any]]:
    rng = random.Random(4)
    missed = {"Cardiologia": 0.05, "Pediatria": 0.2, "Ortopedia": 0.08}
    rows = []
    for i in range(900):
        specialty = ("Cardiologia", "Pediatria", "Ortopedia")[i % 3]
        roll = rng.random()
        status = (
            "Faltou" if roll < missed[specialty] else "Cancelada" if roll > 0.93 else "Realizada"
        )
        rows.append(
            {
                "id_consulta": 7000 + i,
                "data_consulta": (date(2024, 1, 1) + timedelta(days=i % 120)).isoformat(),
                "especialidade": specialty,
                "status": status,
                "valor": 250.0,
            }
        )
    return rows


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Qual especialidade tem a maior taxa de faltas?", "pt"),
        ("What is the no-show rate by specialty?", "en"),
    ],
)
def test_missed_appointments_are_the_rows_of_their_status(text: str, lang: str) -> None:
    """A status ``Faltou`` is what "faltas" and "no-show" name: the rate is its share of the
    rows, per specialty; nothing is said missing."""
    rows = _appointments()
    run = rules_run(rows, text, lang)
    rates = {
        s: 100
        * sum(r["status"] == "Faltou" for r in rows if r["especialidade"] == s)
        / sum(r["especialidade"] == s for r in rows)
        for s in ("Cardiologia", "Pediatria", "Ortopedia")
    }
    fmt = for_language(lang)
    assert f"Pediatria {fmt.rate(rates['Pediatria'], 2)}" in run.text or (
        f"Pediatria {fmt.rate(rates['Pediatria'], 1)}" in run.text
    )
    assert "valor" not in run.text
    assert "não têm" not in run.text and "has no" not in run.text
    assert run.text.startswith("A taxa de faltas" if lang == "pt" else "The no-show rate")


@pytest.mark.parametrize(
    ("text", "lang", "said"),
    [
        ("Quantas consultas tivemos por especialidade?", "pt", "o maior número de consultas"),
        ("How many appointments did each specialty have?", "en", "number of appointments"),
    ],
)
def test_an_id_column_counts_the_things_it_is_named_for(text: str, lang: str, said: str) -> None:
    run = rules_run(_appointments(), text, lang)
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [("id_consulta", "count")]
    assert said in run.text and "id_consulta" not in run.text


def _waits() -> list[dict[str, Any]]:
    rng = random.Random(8)
    slow = {"Dr. João Prado": 55, "Dra. Ana Souza": 25, "Dr. Paulo Lima": 24, "Dra. Carla Dias": 26}
    return [
        {
            "id_consulta": 100 + i,
            "medico": doctor,
            "tempo_espera_min": max(0, int(rng.gauss(mean, 6))),
        }
        for i in range(400)
        for doctor, mean in [list(slow.items())[i % 4]]
    ]


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("O tempo de espera do Dr. João Prado é maior que o dos outros?", "pt"),
        ("Is Dr. João Prado's wait longer than the other doctors'?", "en"),
    ],
)
def test_one_segment_against_the_others_ranks_them_all(text: str, lang: str) -> None:
    """One doctor named beside "os outros" is compared with every doctor: no filter to him."""
    rows = _waits()
    run = rules_run(rows, text, lang)
    assert run.plan is not None
    assert run.plan.dimensions == ["medico"]
    assert not [f for f in run.plan.filters if f.column == "medico"]
    fmt = for_language(lang)
    for doctor in ("Dr. João Prado", "Dra. Carla Dias"):
        waits = [r["tempo_espera_min"] for r in rows if r["medico"] == doctor]
        assert doctor in run.text
        assert fmt.number(sum(waits) / len(waits), 2) in run.text


@pytest.mark.parametrize(
    ("text", "lang", "status", "noun"),
    [
        ("Qual especialidade tem mais faltas?", "pt", "Faltou", "o maior número de faltas"),
        (
            "Which specialty has the most cancellations?",
            "en",
            "Cancelada",
            "number of cancellations",
        ),
        ("A Pediatria tem mais faltas que as outras especialidades?", "pt", "Faltou", "faltas"),
        ("Does Pediatria have more no-shows than the other specialties?", "en", "Faltou", ""),
    ],
)
def test_the_rows_of_a_status_named_by_a_plural_noun_are_counted(
    text: str, lang: str, status: str, noun: str
) -> None:
    """ "mais faltas", "the most cancellations": the appointments of that status, counted per
    specialty (every specialty, when one is set against the others), not the money on them;
    said in the question's words."""
    rows = _appointments()
    run = rules_run(rows, text, lang)
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [("id_consulta", "count")]
    assert [(f.column, f.value) for f in run.plan.filters] == [("status", status)]
    assert run.plan.dimensions == ["especialidade"]
    counted = {
        s: sum(r["status"] == status for r in rows if r["especialidade"] == s)
        for s in ("Cardiologia", "Pediatria", "Ortopedia")
    }
    fmt = for_language(lang)
    for specialty, n in counted.items():
        assert f"{specialty} {fmt.number(n)}" in run.text
    assert noun in run.text and "id_consulta" not in run.text


def test_rows_are_not_called_what_the_data_does_not_hold() -> None:
    text = rules_run(_appointments(), "How many teachers work in each specialty?", "en").text
    assert "teachers is" not in text and "number of teachers" not in text


def _contracts(drop: float) -> list[dict[str, Any]]:
    """Solar contracts, one a row: Residential signs 20 a month over three states, but
    ``drop`` of that in July; Commercial 10 a month."""
    rng = random.Random(2)
    rows: list[dict[str, Any]] = []
    for month in range(1, 13):
        for segment, per_month in (("Residential", 20), ("Commercial", 10)):
            n = round(per_month * drop) if (segment, month) == ("Residential", 7) else per_month
            for k in range(n):
                rows.append(
                    {
                        "project_id": 24000 + len(rows),
                        # spread over the month: a month of a few days is partial
                        "signed_date": f"2024-{month:02d}-{1 + k * 28 // n:02d}",
                        "state": ("GO", "MT", "SP")[k % 3],
                        "segment": segment,
                        "contract_value_brl": round(rng.uniform(20_000, 40_000), 2),
                    }
                )
    return rows


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Teve algum mês em que os contratos residenciais despencaram?", "pt"),
        ("Did residential contracts plunge in any month?", "en"),
    ],
)
def test_contracts_that_plunged_are_counted_in_the_segment_named(text: str, lang: str) -> None:
    """ "os contratos" with ``contract_value_brl`` and one key: the contracts are counted, in
    Residential as one series (not split by state), and July's 8 against 20 is a plunge."""
    run = rules_run(_contracts(0.4), text, lang)
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [("project_id", "count")]
    anomaly = next(f for f in run.found if f.kind == "anomaly")
    assert anomaly.values["dimension"] is None and anomaly.values["series_of"] == "Residential"
    assert [(r["period"], r["value"]) for r in anomaly.rows] == [("2024-07", 8)]
    assert run.text.startswith(("Sim:", "Yes:"))
    assert ("julho de 2024" if lang == "pt" else "July 2024") in run.text


def test_a_quarter_off_is_no_sharp_drop_but_is_unusual() -> None:
    """Asked for sharp drops, a case must be 30% off; asked for unusual ones, 20% is."""
    rows = [
        {"dia": (date(2024, 1, 1) + timedelta(days=d)).isoformat(), "fila": "Q1",
         "atendidas": 750 if d == 30 else 1000 + (d % 5)}
        for d in range(60)
    ]  # fmt: skip
    sharp = rules_run(rows, "As chamadas atendidas despencaram em algum dia?", "pt")
    assert sharp.text.startswith("Não:")
    unusual = rules_run(rows, "Alguma queda fora do normal nas chamadas atendidas?", "pt")
    assert unusual.text.startswith("Sim:")


def _order_lines() -> list[dict[str, Any]]:
    rng = random.Random(12)
    prices = {"Electronics": (250, 900), "Books": (20, 80), "Toys": (30, 150)}
    rows = []
    for i in range(900):
        category = list(prices)[i % 3]
        rows.append(
            {
                "order_id": 100000 + i,
                "created_at": (date(2024, 1, 1) + timedelta(days=i % 150)).isoformat(),
                "customer_city": ("Curitiba", "Recife", "Belém")[i % 5 % 3],
                "product_category": category,
                "quantity": rng.randint(1, 4),
                "unit_price": round(rng.uniform(*prices[category]), 2),
                "shipping_cost": round(rng.uniform(10, 40), 2),
            }
        )
    return rows


@pytest.mark.parametrize(
    ("text", "lang", "name"),
    [
        ("What is our total revenue by category?", "en", "gross_revenue"),
        ("Qual a receita por categoria?", "pt", "receita_bruta"),
    ],
)
def test_revenue_of_order_lines_is_units_times_unit_price(text: str, lang: str, name: str) -> None:
    """No revenue column, but a quantity and a unit price: the revenue is their product
    (gross: no discount taken off), ranked by ``product_category`` named by its last word;
    the shipping cost, money going out, is not it."""
    rows = _order_lines()
    with data.from_records(rows) as table:
        derived = derive_revenue(table, set(), text, lang)
        assert name in derived.columns
        run = table_run(derived, text, lang)
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [(name, "sum")]
    assert run.plan.dimensions == ["product_category"]
    books = sum(r["quantity"] * r["unit_price"] for r in rows if r["product_category"] == "Books")
    assert f"Books {for_language(lang).money(books)}" in run.text


def test_revenue_is_not_derived_unasked_or_beside_a_revenue_column() -> None:
    rows = _order_lines()
    with data.from_records(rows) as table:
        assert (
            "gross_revenue"
            not in derive_revenue(table, set(), "Shipping cost by city?", "en").columns
        )
    with data.from_records([{**r, "revenue": 1.0} for r in rows]) as table:
        assert "gross_revenue" not in derive_revenue(table, set(), "Revenue by city?", "en").columns


def test_the_average_order_value_is_the_money_of_a_row_per_order() -> None:
    rows = _order_lines()
    text = "What's the average order value by city?"
    with data.from_records(rows) as table:
        run = table_run(derive_revenue(table, set(), text, "en"), text, "en")
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [("gross_revenue", "avg")]
    recife = [r["quantity"] * r["unit_price"] for r in rows if r["customer_city"] == "Recife"]
    assert f"Recife {for_language('en').money(sum(recife) / len(recife))}" in run.text
    # A row a day is no order: its average is no ticket, and none is planned.
    days = [{"dia": f"2024-01-{d:02d}", "receita": 100.0 * d} for d in range(1, 29)]
    assert rules_run(days, "Qual o ticket médio?", "pt").plan is None


@pytest.mark.parametrize(
    ("text", "lang"),
    [("Which payment method is most used?", "en"), ("Qual forma de pagamento é mais usada?", "pt")],
)
def test_the_most_used_payment_method_counts_the_orders(text: str, lang: str) -> None:
    rows = [
        {**r, "payment_method": ("pix", "boleto", "credit_card", "pix")[i % 4]}
        for i, r in enumerate(_order_lines())
    ]
    run = rules_run(rows, text, lang)
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [("order_id", "count")]
    assert run.plan.dimensions == ["payment_method"]
    assert f"pix {for_language(lang).number(450)}" in run.text


def test_freight_is_the_shipping_cost() -> None:
    text = rules_run(_order_lines(), "Qual cidade tem o maior frete médio?", "pt").text
    assert "média de shipping_cost" in text and "não têm" not in text


@pytest.mark.parametrize(
    ("text", "lang", "said"),
    [
        ("Which month had the most appointments?", "en", "number of records (codigo)"),
        ("Qual mês teve mais consultas?", "pt", "o número de registros (codigo)"),
    ],
)
def test_the_most_of_things_no_column_holds_counts_the_rows(
    text: str, lang: str, said: str
) -> None:
    """A row per appointment keyed by ``codigo``: "the most appointments" counts the rows
    (said as records, the word naming nothing in the data), not the money on them."""
    rows = [{**r, "codigo": f"C{i:05d}"} for i, r in enumerate(_appointments())]
    for r in rows:
        del r["id_consulta"]
    run = rules_run(rows, text, lang)
    assert run.plan is not None
    assert [(m.column, m.agg) for m in run.plan.measures] == [("codigo", "count")]
    assert said in run.text and "R$" not in run.text
    # and money is still asked for by its own words
    money = rules_run(
        rows, text.replace("appointments", "revenue").replace("consultas", "receita"), lang
    )
    assert money.plan is not None and money.plan.measures[0].column == "valor"
