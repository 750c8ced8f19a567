"""Questions from five businesses the rules had not met: a marketing team's campaigns, a
truck fleet's trips, a college's courses, an HR file of employees and a restaurant's shifts.

Each dataset is built here from seeded random rows, and every expected number is computed
from those rows: the questions are the ones their owners ask (cost per conversion, km per
litre, dropout rate, the pay gap, the average ticket), in Portuguese and in English."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from billumy.insights.formats import for_language
from tests.insights_data import rules_run

PT, EN = for_language("pt-BR"), for_language("en")


def _campaigns() -> list[dict[str, Any]]:
    rng = random.Random(3)
    rows = []
    day = date(2025, 1, 1)
    channels = {"Summer Sale": "Google Ads", "Retargeting": "Meta", "Newsletter": "Email"}
    while day < date(2025, 4, 1):
        for campaign, channel in channels.items():
            impressions = rng.randint(8000, 12000)
            clicks = int(impressions * rng.uniform(0.01, 0.05))
            rows.append(
                {
                    "date": day,
                    "campaign": campaign,
                    "channel": channel,
                    "impressions": impressions,
                    "clicks": clicks,
                    "spend": round(clicks * rng.uniform(0.2, 2.0), 2),
                    "conversions": int(clicks * rng.uniform(0.01, 0.06)),
                    "revenue": round(clicks * rng.uniform(1, 5), 2),
                }
            )
        day += timedelta(days=1)
    return rows


def _by(rows: list[dict[str, Any]], key: str, top: str, bottom: str) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for r in rows:
        acc = sums.setdefault(r[key], [0.0, 0.0])
        acc[0] += r[top]
        acc[1] += r[bottom]
    return {k: a / b for k, (a, b) in sums.items()}


@pytest.mark.parametrize(
    ("text", "lang", "top", "bottom", "low"),
    [
        ("Qual campanha tem o menor custo por conversão?", "pt-BR", "spend", "conversions", True),
        ("Which campaign has the lowest cost per conversion?", "en", "spend", "conversions", True),
        ("Qual campanha teve o maior ROAS?", "pt-BR", "revenue", "spend", False),
        ("Which campaign has the highest ROAS?", "en", "revenue", "spend", False),
    ],
)
def test_a_campaign_s_ratio_is_ranked_per_campaign(
    text: str, lang: str, top: str, bottom: str, low: bool
) -> None:
    rows = _campaigns()
    per = _by(rows, "campaign", top, bottom)
    best = (min if low else max)(per, key=per.__getitem__)
    fmt = PT if lang == "pt-BR" else EN
    out = rules_run(rows, text, lang).text
    assert best in out
    assert fmt.number(round(per[best], 2), 2) in out
    assert "Ranking" not in out.split(best)[0]  # the ratio leads, not a ranking of totals


@pytest.mark.parametrize(
    ("text", "lang"),
    [("Qual a taxa de cliques por canal?", "pt-BR"), ("What was the CTR by channel?", "en")],
)
def test_clicks_over_impressions_per_channel(text: str, lang: str) -> None:
    rows = _campaigns()
    per = _by(rows, "channel", "clicks", "impressions")
    fmt = PT if lang == "pt-BR" else EN
    out = rules_run(rows, text, lang).text
    assert "não têm" not in out and "has no" not in out
    for channel, rate in per.items():
        assert f"{channel} {fmt.number(round(100 * rate, 2), 2)}%" in out


def test_conversions_said_in_portuguese_name_the_conversions_column() -> None:
    rows = _campaigns()
    out = rules_run(rows, "Qual canal trouxe mais conversões?", "pt-BR").text
    total = sum(r["conversions"] for r in rows)
    assert f"o total de conversions é {PT.number(total, 0)}" in out.lower()


def _trips() -> list[dict[str, Any]]:
    rng = random.Random(11)
    plates = {"ABC1D23": 3.4, "FGH4I56": 2.6, "JKL7M89": 3.0}
    routes = ["SP-RJ", "SP-BH", "RJ-BH"]
    rows = []
    day = date(2025, 3, 1)
    n = 0
    while day < date(2025, 6, 1):
        for _ in range(3):
            n += 1
            plate, route = rng.choice(list(plates)), rng.choice(routes)
            km = round(rng.uniform(400, 600), 1)
            late = rng.random() < 0.2
            rows.append(
                {
                    "viagem_id": f"V{n:05d}",
                    "data_saida": day,
                    "placa": plate,
                    "rota": route,
                    "km_rodados": km,
                    "litros_diesel": round(km / (plates[plate] * rng.uniform(0.95, 1.05)), 1),
                    "custo_combustivel": round(km / plates[plate] * 6.19, 2),
                    "atraso_min": rng.randint(20, 300) if late else 0,
                    "status": "Em atraso" if late else "Concluída",
                }
            )
        day += timedelta(days=1)
    return rows


def test_km_per_litre_is_ranked_per_truck() -> None:
    rows = _trips()
    per = _by(rows, "placa", "km_rodados", "litros_diesel")
    best = max(per, key=per.__getitem__)
    out = rules_run(rows, "Qual caminhão tem o melhor consumo de km por litro?", "pt-BR").text
    assert f"a maior é a de {best} ({PT.number(round(per[best], 2), 2)})" in out


def test_a_route_is_named_in_english_and_its_cost_per_km_ranked() -> None:
    rows = _trips()
    per = _by(rows, "rota", "custo_combustivel", "km_rodados")
    out = rules_run(rows, "Which route has the highest fuel cost per km?", "en").text
    assert "By rota" in out and "By placa" not in out
    best = max(per, key=per.__getitem__)
    assert f"{best} {EN.money(per[best], 'BRL')}" in out


def test_trips_of_a_status_of_two_words_are_counted() -> None:
    rows = _trips()
    late: dict[str, int] = {}
    for r in rows:
        if r["status"] == "Em atraso":
            late[r["rota"]] = late.get(r["rota"], 0) + 1
    best = max(late, key=late.__getitem__)
    out = rules_run(rows, "Qual rota tem mais viagens em atraso?", "pt-BR").text
    assert "atraso_min" not in out
    assert f"{best} {PT.number(late[best], 0)}" in out


def _courses() -> list[dict[str, Any]]:
    rng = random.Random(2)
    rows = []
    fees = {"Direito": 1350.0, "Enfermagem": 1120.0, "Engenharia": 1480.0}
    for month in range(1, 13):
        for course, fee in fees.items():
            active = rng.randint(300, 500)
            rows.append(
                {
                    "mes": date(2024, month, 1),
                    "curso": course,
                    "matriculas_novas": rng.randint(5, 80),
                    "alunos_ativos": active,
                    "evasoes": int(active * (0.04 if course == "Engenharia" else 0.015)),
                    "mensalidade_media": round(fee * rng.uniform(0.95, 1.05), 2),
                }
            )
    return rows


def test_the_dropout_rate_is_dropouts_over_the_students_on_the_books() -> None:
    rows = _courses()
    per = _by(rows, "curso", "evasoes", "alunos_ativos")
    out = rules_run(rows, "Qual curso tem a maior taxa de evasão?", "pt-BR").text
    assert out.startswith("A taxa de evasão (evasoes sobre alunos_ativos")
    assert f"Engenharia {PT.number(round(100 * per['Engenharia'], 2), 2)}%" in out


def test_a_fee_is_averaged_over_the_students_paying_it() -> None:
    rows = _courses()
    weighted: dict[str, list[float]] = {}
    for r in rows:
        acc = weighted.setdefault(r["curso"], [0.0, 0.0])
        acc[0] += r["mensalidade_media"] * r["alunos_ativos"]
        acc[1] += r["alunos_ativos"]
    out = rules_run(rows, "Qual a mensalidade média por curso?", "pt-BR").text
    assert "ponderada por alunos_ativos" in out
    for course, (money, students) in weighted.items():
        assert f"{course} {PT.money(money / students, 'BRL')}" in out


def _staff() -> list[dict[str, Any]]:
    rng = random.Random(9)
    rows = []
    base = {"Vendas": 4200.0, "TI": 8900.0, "RH": 5200.0}
    for n in range(1, 121):
        dept, sex = rng.choice(list(base)), rng.choice(["F", "M"])
        hired = date(2019, 1, 1) + timedelta(days=rng.randint(0, 1800))
        left = None
        if rng.random() < (0.4 if dept == "Vendas" else 0.1):
            left = hired + timedelta(days=rng.randint(60, 700))
        rows.append(
            {
                "matricula": 1000 + n,
                "departamento": dept,
                "genero": sex,
                "salario": round(
                    base[dept] * rng.uniform(0.8, 1.4) * (0.9 if sex == "F" else 1), 2
                ),
                "data_admissao": hired,
                "data_desligamento": left,
            }
        )
    return rows


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


@pytest.mark.parametrize(
    ("text", "lang", "lead"),
    [
        ("Existe diferença salarial entre homens e mulheres?", "pt-BR", "Sim: na média de salario"),
        ("Qual a diferença salarial entre homens e mulheres?", "pt-BR", "Na média de salario"),
        ("Do women earn less than men?", "en", "Yes: in average salario"),
    ],
)
def test_men_and_women_are_the_values_of_a_sex_column(text: str, lang: str, lead: str) -> None:
    rows = _staff()
    f = _mean([r["salario"] for r in rows if r["genero"] == "F"])
    m = _mean([r["salario"] for r in rows if r["genero"] == "M"])
    fmt = PT if lang == "pt-BR" else EN
    out = rules_run(rows, text, lang).text
    assert out.startswith(lead)
    assert fmt.money(f, "BRL") in out and fmt.money(m, "BRL") in out


def test_a_size_column_s_m_is_no_man() -> None:
    rows = [{"tamanho": s, "vendas": float(i)} for i, s in enumerate(["P", "M", "G"] * 10)]
    out = rules_run(rows, "Quanto vendemos para homens?", "pt-BR").text
    assert "Para tamanho M" not in out


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Qual departamento tem mais desligamentos?", "pt-BR"),
        ("How many exits per department?", "en"),
    ],
)
def test_exits_are_the_rows_with_an_exit_date(text: str, lang: str) -> None:
    rows = _staff()
    exits: dict[str, int] = {}
    for r in rows:
        if r["data_desligamento"] is not None:
            exits[r["departamento"]] = exits.get(r["departamento"], 0) + 1
    fmt = PT if lang == "pt-BR" else EN
    out = rules_run(rows, text, lang).text
    assert "data_desligamento" in out
    for dept, count in exits.items():
        assert f"{dept} {fmt.number(count, 0)}" in out


def test_exits_in_a_year_are_counted_by_their_own_date() -> None:
    rows = _staff()
    exits = sum(1 for r in rows if r["data_desligamento"] and r["data_desligamento"].year == 2021)
    out = rules_run(rows, "Quantos desligamentos tivemos em 2021?", "pt-BR").text
    assert f"o número de registros com data_desligamento é {PT.number(exits, 0)}" in out


def test_a_year_between_two_others_is_never_left_out_of_a_series() -> None:
    # Few exits in a year are few, not a part of that year.
    rows = [
        {"data_desligamento": date(year, month, 1 + k), "pessoa": f"{year}{month}{k}"}
        for year, months in ((2020, 12), (2021, 1), (2022, 12), (2023, 12))
        for month in range(1, months + 1)
        for k in range(2)
    ]
    out = rules_run(rows, "Quantos desligamentos por ano?", "pt-BR").text
    assert "2021 2" in out


def _shifts() -> list[dict[str, Any]]:
    rng = random.Random(4)
    rows = []
    day = date(2025, 6, 1)
    while day < date(2025, 8, 1):
        for unit, size in {"Pinheiros": 1.2, "Moema": 0.8}.items():
            for shift, ticket in {"Almoço": 68.0, "Jantar": 112.0}.items():
                customers = int(120 * size * rng.uniform(0.85, 1.15))
                rows.append(
                    {
                        "data": day,
                        "unidade": unit,
                        "turno": shift,
                        "clientes": customers,
                        "faturamento": round(customers * ticket * rng.uniform(0.9, 1.1), 2),
                    }
                )
        day += timedelta(days=1)
    return rows


def test_the_average_ticket_is_the_money_per_customer() -> None:
    rows = _shifts()
    per = _by(rows, "unidade", "faturamento", "clientes")
    out = rules_run(rows, "Qual o ticket médio por unidade?", "pt-BR").text
    assert out.startswith("O ticket médio (faturamento por clientes)")
    for unit, value in per.items():
        assert f"{unit} {PT.money(value, 'BRL')}" in out


@pytest.mark.parametrize(
    ("text", "lang", "lead"),
    [
        ("O jantar fatura mais que o almoço?", "pt-BR", "Sim: no total de faturamento, Jantar"),
        ("O almoço fatura mais do que o jantar?", "pt-BR", "Não: no total de faturamento"),
        ("Does Moema have more customers than Pinheiros?", "en", "No: in total clientes, Moema"),
        ("Compare Pinheiros e Moema", "pt-BR", "No total de faturamento, Pinheiros"),
    ],
)
def test_two_values_compared_say_which_is_above_and_by_how_much(
    text: str, lang: str, lead: str
) -> None:
    rows = _shifts()
    out = rules_run(rows, text, lang).text
    assert out.startswith(lead)
    dinner = sum(r["faturamento"] for r in rows if r["turno"] == "Jantar")
    lunch = sum(r["faturamento"] for r in rows if r["turno"] == "Almoço")
    if "jantar" in text.lower() and "mais que" in text:
        assert f"({PT.pct(round(100 * (dinner - lunch) / lunch, 1))} a mais)" in out


def _members() -> list[dict[str, Any]]:
    rng = random.Random(6)
    rows = []
    churn = {"Mensal": 0.45, "Trimestral": 0.3, "Anual": 0.15}
    for n in range(1, 401):
        plan = rng.choice(list(churn))
        start = date(2023, 1, 1) + timedelta(days=rng.randint(0, 900))
        end = start + timedelta(days=rng.randint(30, 400)) if rng.random() < churn[plan] else None
        rows.append({"id_aluno": n, "plano": plan, "data_inicio": start, "data_cancelamento": end})
    return rows


@pytest.mark.parametrize(
    ("text", "lang", "said"),
    [
        ("Qual a taxa de cancelamento por plano?", "pt-BR", "A taxa de cancelamento"),
        ("What is the cancellation rate by plan?", "en", "The cancellation rate"),
    ],
)
def test_a_rate_of_an_event_is_the_share_of_rows_with_its_date(
    text: str, lang: str, said: str
) -> None:
    rows = _members()
    fmt = PT if lang == "pt-BR" else EN
    out = rules_run(rows, text, lang).text
    assert out.startswith(said)
    for plan in ("Mensal", "Trimestral", "Anual"):
        mine = [r for r in rows if r["plano"] == plan]
        rate = 100 * sum(r["data_cancelamento"] is not None for r in mine) / len(mine)
        assert f"{plan} {fmt.number(round(rate, 1), 1)}%" in out


def test_members_who_cancelled_in_a_year_are_counted_by_that_date() -> None:
    rows = _members()
    gone = sum(1 for r in rows if r["data_cancelamento"] and r["data_cancelamento"].year == 2024)
    out = rules_run(rows, "Quantos alunos cancelaram em 2024?", "pt-BR").text
    assert out == f"Em 2024, o número de registros com data_cancelamento é {PT.number(gone, 0)}."


def test_the_months_of_a_year_named_are_a_series() -> None:
    rows = _members()
    months = [0] * 12
    for r in rows:
        if r["data_inicio"].year == 2024:
            months[r["data_inicio"].month - 1] += 1
    out = rules_run(rows, "Quantos alunos entraram por mês em 2024?", "pt-BR").text
    assert "Mês a mês:" in out
    assert f"março de 2024 {PT.number(months[2], 0)};" in out
    # a month named is one number, no series of one month's days
    out = rules_run(rows, "Quantos alunos entraram em março de 2024?", "pt-BR").text
    assert "Mês a mês" not in out and "Dia a dia" not in out


def test_a_quoted_decimal_comma_in_a_comma_separated_file_is_a_number() -> None:
    from billumy.insights import data

    text = 'plano,mensalidade,codigo\nMensal,"129,9","1,234"\nAnual,"89,90","2,500"\n'
    with data.from_csv(text) as table:
        assert table.types["mensalidade"] == "DOUBLE"
        assert table.types["codigo"] == "VARCHAR"  # three digits after a comma: thousands
        assert table.records("SELECT sum(mensalidade) AS s FROM data")[0]["s"] == 219.8


def _tickets() -> list[dict[str, Any]]:
    rng = random.Random(8)
    hours = {"High": 4.0, "Medium": 12.0, "Low": 30.0}
    rows = []
    start = datetime(2025, 7, 1, 8)
    for n in range(1, 301):
        opened = start + timedelta(minutes=rng.randint(0, 60 * 24 * 60))
        priority = rng.choice(list(hours))
        closed = opened + timedelta(hours=rng.expovariate(1 / hours[priority]))
        rows.append(
            {
                "ticket": f"T-{n:04d}",
                "opened_at": opened,
                "closed_at": None if n % 17 == 0 else closed,
                "priority": priority,
                "agent": rng.choice(["Ana", "Bruno"]),
                "csat": rng.choice([None, 1, 3, 4, 5, 5]),
            }
        )
    return rows


@pytest.mark.parametrize(
    ("text", "lang", "column"),
    [
        ("What is the average resolution time by priority?", "en", "duration_hours"),
        ("Qual prioridade demora mais para fechar?", "pt-BR", "duracao_horas"),
        ("Qual o tempo médio de atendimento por prioridade?", "pt-BR", "duracao_horas"),
    ],
)
def test_the_time_from_opened_to_closed_is_derived_in_hours(
    text: str, lang: str, column: str
) -> None:
    from billumy.insights.service import derive_duration

    rows = _tickets()
    fmt = PT if lang == "pt-BR" else EN
    out = _derived(rows, text, lang, derive_duration)
    assert column in out and "csat" not in out
    assert "não têm" not in out  # the time asked for is there
    for priority in ("High", "Medium", "Low"):
        spans = [
            (r["closed_at"] - r["opened_at"]).total_seconds() / 3600
            for r in rows
            if r["priority"] == priority and r["closed_at"] is not None
        ]
        assert f"{priority} {fmt.number(round(_mean(spans), 2), 2)}" in out


def test_no_duration_is_made_unasked() -> None:
    from billumy.insights import data
    from billumy.insights.service import derive_duration

    with data.from_records(_tickets()) as table:
        kept = derive_duration(table, set(), "Which agent closed the most tickets?", "en")
        assert "duration_hours" not in kept.columns


def test_a_satisfaction_score_is_averaged() -> None:
    rows = _tickets()
    out = rules_run(rows, "Which agent has the best CSAT?", "en").text
    scores = [r["csat"] for r in rows if r["agent"] == "Bruno" and r["csat"] is not None]
    assert f"Bruno {EN.number(round(_mean(scores), 2), 2)}" in out


def _listings() -> list[dict[str, Any]]:
    rng = random.Random(12)
    per_m2 = {"Pinheiros": 14500.0, "Santana": 8100.0, "Itaim Bibi": 17800.0}
    rows = []
    for n in range(1, 201):
        area = rng.randint(30, 150)
        hood = rng.choice(list(per_m2))
        rows.append(
            {
                "codigo": f"IM{n:04d}",
                "bairro": hood,
                "tipo": rng.choice(["Apartamento", "Casa"]),
                "quartos": rng.randint(1, 4),
                "area_m2": area,
                "preco": round(area * per_m2[hood] * rng.uniform(0.9, 1.1), -3),
                "vendido": rng.choice(["sim", "não", "não"]),
            }
        )
    return rows


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Qual bairro tem o metro quadrado mais caro?", "pt-BR"),
        ("Which neighborhood has the most expensive price per square meter?", "en"),
    ],
)
def test_the_price_of_a_square_metre_is_the_price_over_the_area(text: str, lang: str) -> None:
    rows = _listings()
    per = _by(rows, "bairro", "preco", "area_m2")
    fmt = PT if lang == "pt-BR" else EN
    out = rules_run(rows, text, lang).text
    assert "(preco " in out and " area_m2)" in out
    assert f"Itaim Bibi {fmt.money(per['Itaim Bibi'], 'BRL')}" in out
    assert "quartos" not in out.split(".")[0]


def test_the_share_of_rows_holding_a_value_named_is_all_that_is_said() -> None:
    rows = _listings()
    sold = sum(r["vendido"] == "sim" for r in rows)
    out = rules_run(rows, "What share of listings were sold?", "en").text
    share = EN.number(round(100 * sold / len(rows), 1), 1)
    assert out == f"The share of rows with vendido sim is {share}% ({sold} of {len(rows)})."


def test_a_plural_value_after_a_price_is_no_missing_column() -> None:
    rows = _listings()
    out = rules_run(rows, "Qual o preço médio de apartamentos em Pinheiros?", "pt-BR").text
    assert "não têm" not in out


def _survey() -> list[dict[str, Any]]:
    rng = random.Random(21)
    mean = {"Loja": 8.3, "Site": 7.4, "App": 6.6}
    return [
        {
            "data_resposta": date(2025, 1, 1) + timedelta(days=rng.randint(0, 200)),
            "canal": (channel := rng.choice(list(mean))),
            "nota": max(0, min(10, round(rng.gauss(mean[channel], 2)))),
        }
        for _ in range(600)
    ]


def _nps(rows: list[dict[str, Any]]) -> tuple[float, int, int]:
    promoters = sum(r["nota"] >= 9 for r in rows)
    detractors = sum(r["nota"] <= 6 for r in rows)
    return 100 * (promoters - detractors) / len(rows), promoters, detractors


@pytest.mark.parametrize(
    ("text", "lang"), [("Qual o NPS por canal?", "pt-BR"), ("What is our NPS by channel?", "en")]
)
def test_the_nps_is_promoters_less_detractors_per_segment(text: str, lang: str) -> None:
    rows = _survey()
    fmt = PT if lang == "pt-BR" else EN
    out = rules_run(rows, text, lang).text
    nps, promoters, detractors = _nps(rows)
    assert out.startswith("O NPS de nota" if lang == "pt-BR" else "The NPS of nota")
    assert f" {fmt.number(nps, 1)}: " in out
    assert f"({fmt.number(promoters, 0)})" in out and f"({fmt.number(detractors, 0)})" in out
    for channel in ("Loja", "Site", "App"):
        value = _nps([r for r in rows if r["canal"] == channel])[0]
        assert f"{channel} {fmt.number(value, 1)}" in out
    assert "média de nota" not in out and "average nota" not in out


def test_the_nps_of_a_segment_in_a_year_keeps_those_answers() -> None:
    rows = _survey()
    kept = [r for r in rows if r["canal"] == "App" and r["data_resposta"].month <= 3]
    out = rules_run(rows, "Qual o NPS do App no primeiro trimestre de 2025?", "pt-BR").text
    assert f"é {PT.number(_nps(kept)[0], 1)}: " in out
    assert f"em {PT.number(len(kept), 0)} respostas" in out


def test_no_nps_without_answers_from_0_to_10() -> None:
    rows = [{"loja": "A", "nota": 50 + i} for i in range(20)]
    assert "NPS" not in rules_run(rows, "Qual o NPS?", "pt-BR").text


def _orders_of_service() -> list[dict[str, Any]]:
    rng = random.Random(14)
    return [
        {
            "mes": date(2024, month, 1),
            "filial": branch,
            "valor_pecas": round(rng.uniform(50_000, 90_000), 2),
            "valor_mao_de_obra": round(rng.uniform(20_000, 40_000), 2),
            "os_concluidas": rng.randint(40, 80),
        }
        for month in range(1, 7)
        for branch in ("Sorriso", "Cascavel")
    ]


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Qual filial faturou mais em peças + mão de obra?", "pt-BR"),
        ("Which branch billed the most in parts + labor?", "en"),
    ],
)
def test_two_columns_written_added_are_summed_together(text: str, lang: str) -> None:
    from billumy.insights import data
    from billumy.insights.service import derive_sum
    from tests.insights_data import table_run

    rows = _orders_of_service()
    fmt = PT if lang == "pt-BR" else EN
    with data.from_records(rows) as table:
        derived = derive_sum(table, set(), text, "pt" if lang == "pt-BR" else "en")
        out = table_run(derived, text, lang).text
    both = sum(r["valor_pecas"] + r["valor_mao_de_obra"] for r in rows if r["filial"] == "Sorriso")
    assert "valor_pecas + valor_mao_de_obra" in out
    assert f"Sorriso {fmt.money(both, 'BRL')}" in out


def test_no_sum_is_made_unless_both_sides_name_a_column() -> None:
    from billumy.insights import data
    from billumy.insights.service import derive_sum

    with data.from_records(_orders_of_service()) as table:
        for text in ("Qual filial faturou mais?", "Quanto é peças + frete?", "peças + 2"):
            assert table.columns == derive_sum(table, set(), text, "pt").columns


def _customers() -> list[dict[str, Any]]:
    rng = random.Random(17)
    churn = {"Starter": 0.4, "Growth": 0.2, "Enterprise": 0.08}
    rows = []
    for n in range(1, 401):
        plan = rng.choice(list(churn))
        signup = date(2023, 1, 1) + timedelta(days=rng.randint(0, 700))
        left = signup + timedelta(days=rng.randint(20, 300)) if rng.random() < churn[plan] else None
        rows.append(
            {
                "customer_id": f"C{n:04d}",
                "signup_date": signup,
                "plan": plan,
                "mrr": float(rng.randint(10, 400)),
                "churn_date": left,
            }
        )
    return rows


def _derived(rows: list[dict[str, Any]], text: str, lang: str, *steps: Any) -> str:
    from billumy.insights import data
    from tests.insights_data import table_run

    with data.from_records(rows) as table:
        for step in steps:
            table = step(table, set(), text, "pt" if lang == "pt-BR" else "en")
        return table_run(table, text, lang).text


def test_active_customers_are_those_with_no_churn_date() -> None:
    from billumy.insights.service import derive_active

    rows = _customers()
    active = [r for r in rows if r["churn_date"] is None]
    out = _derived(rows, "How many active customers do we have?", "en", derive_active)
    assert out == f"For active yes, number of customers is {EN.number(len(active), 0)}."
    out = _derived(rows, "Qual o MRR dos clientes ativos por plano?", "pt-BR", derive_active)
    starter = sum(r["mrr"] for r in active if r["plan"] == "Starter")
    assert f"Starter {PT.money(starter, 'BRL')}" in out


def test_tickets_still_open_have_no_closing_time() -> None:
    from billumy.insights.service import derive_active

    rows = _tickets()
    still = sum(r["closed_at"] is None for r in rows)
    out = _derived(rows, "How many tickets are still open?", "en", derive_active)
    assert out == f"For open yes, number of tickets is {still}."
    out = _derived(rows, "Quantos chamados estão em aberto?", "pt-BR", derive_active)
    assert out == f"Para em_aberto sim, o número de chamados é {still}."


def test_a_churn_rate_counts_the_churn_dates_per_plan() -> None:
    rows = _customers()
    out = rules_run(rows, "Which plan has the highest churn rate?", "en").text
    assert out.startswith("The churn rate (rows with churn_date over all rows)")
    mine = [r for r in rows if r["plan"] == "Starter"]
    rate = 100 * sum(r["churn_date"] is not None for r in mine) / len(mine)
    assert f"Starter {EN.number(round(rate, 1), 1)}%" in out


def _visits() -> list[dict[str, Any]]:
    rng = random.Random(23)
    start = datetime(2025, 9, 1)
    return [
        {
            "visit_id": n,
            "arrival": start + timedelta(minutes=rng.randint(0, 60 * 24 * 30)),
            "wait_minutes": rng.randint(0, 200),
        }
        for n in range(1, 801)
    ]


@pytest.mark.parametrize(
    ("text", "lang", "lead"),
    [
        ("Which hour of the day has the most arrivals?", "en", "By hour, "),
        ("Qual hora do dia tem mais chegadas?", "pt-BR", "Por hora, "),
    ],
)
def test_the_hour_of_the_day_ranks_the_rows_counted(text: str, lang: str, lead: str) -> None:
    from billumy.insights.service import derive_hour

    rows = _visits()
    counts: dict[int, int] = {}
    for r in rows:
        counts[r["arrival"].hour] = counts.get(r["arrival"].hour, 0) + 1
    busiest = max(sorted(counts), key=counts.__getitem__)
    out = _derived(rows, text, lang, derive_hour)
    label = f"{busiest:02d}:00" if lang == "en" else f"{busiest:02d}h"
    assert f"{lead}{label}" in out
    assert "per day" not in out and "por dia" not in out


def test_rush_hours_are_no_spike() -> None:
    from billumy.insights.anomalies import asked_direction

    assert asked_direction("Qual o horário de pico de chegadas?") is None
    assert asked_direction("What are our peak hours?") is None
    assert asked_direction("Houve algum pico de chegadas?") == "spike"


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Qual depósito teve mais rupturas?", "pt-BR"),
        ("Which warehouse had the most stockouts?", "en"),
    ],
)
def test_the_most_of_a_yes_no_column_named_counts_its_yes_rows(text: str, lang: str) -> None:
    rng = random.Random(31)
    rows = [
        {
            "data": date(2025, 8, 1) + timedelta(days=d),
            "deposito": dep,
            "unidades_vendidas": rng.randint(0, 30),
            "ruptura": "Sim" if rng.random() < (0.2 if dep == "Cajamar" else 0.05) else "Não",
        }
        for d in range(60)
        for dep in ("Cajamar", "Extrema")
    ]
    fmt = PT if lang == "pt-BR" else EN
    out = rules_run(rows, text, lang).text
    outs = sum(r["ruptura"] == "Sim" and r["deposito"] == "Cajamar" for r in rows)
    assert "unidades_vendidas" not in out
    assert f"Cajamar {fmt.number(outs, 0)}" in out


def test_a_time_asked_by_its_end_s_verb_has_no_series_of_that_end() -> None:
    from billumy.insights.service import derive_duration

    rows = _tickets()
    out = _derived(rows, "Which agent closes tickets fastest?", "en", derive_duration)
    assert "By agent" in out and "per week" not in out
    out = _derived(rows, "How did the resolution time change week by week?", "en", derive_duration)
    assert "duration_hours per week" in out
