"""The insights evaluation sets (evals/insights/): their shape, their data and their expected
numbers.

There are thirteen case files: ``cases.toml``, the main set, and twelve held-out sets,
``holdout.toml``, ``holdout2.toml``, ``holdout3.toml``, ``holdout4.toml``, ``holdout5.toml``,
``holdout6.toml``, ``holdout7.toml``, ``holdout8.toml``, ``holdout9.toml``, ``holdout10.toml``,
``holdout11.toml`` and ``holdout12.toml``, questions written
without reading the planner about datasets its author had not seen. The expected values in all
of them are literals a person can read; here each is checked against the case's reference query,
run by DuckDB on the committed CSV through the case file's own typed view (not Billumy's
loader), so a wrong literal or a changed dataset fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from billumy.evaluation.cases import (
    CATEGORIES,
    CaseFileError,
    CaseSet,
    load_cases,
    reference_problems,
)

ROOT = Path(__file__).resolve().parents[2]
EVALS = ROOT / "evals" / "insights"
CASES = load_cases(EVALS / "cases.toml")
HOLDOUT = load_cases(EVALS / "holdout.toml")
HOLDOUT2 = load_cases(EVALS / "holdout2.toml")
HOLDOUT3 = load_cases(EVALS / "holdout3.toml")
HOLDOUT4 = load_cases(EVALS / "holdout4.toml")
HOLDOUT5 = load_cases(EVALS / "holdout5.toml")
HOLDOUT6 = load_cases(EVALS / "holdout6.toml")
HOLDOUT7 = load_cases(EVALS / "holdout7.toml")
HOLDOUT8 = load_cases(EVALS / "holdout8.toml")
HOLDOUT9 = load_cases(EVALS / "holdout9.toml")
HOLDOUT10 = load_cases(EVALS / "holdout10.toml")
HOLDOUT11 = load_cases(EVALS / "holdout11.toml")
HOLDOUT12 = load_cases(EVALS / "holdout12.toml")
SETS = {
    "cases.toml": CASES,
    "holdout.toml": HOLDOUT,
    "holdout2.toml": HOLDOUT2,
    "holdout3.toml": HOLDOUT3,
    "holdout4.toml": HOLDOUT4,
    "holdout5.toml": HOLDOUT5,
    "holdout6.toml": HOLDOUT6,
    "holdout7.toml": HOLDOUT7,
    "holdout8.toml": HOLDOUT8,
    "holdout9.toml": HOLDOUT9,
    "holdout10.toml": HOLDOUT10,
    "holdout11.toml": HOLDOUT11,
    "holdout12.toml": HOLDOUT12,
}
# The main set keeps at least 40 cases; each held-out set at least 30.
MINIMUM = {
    "cases.toml": 40,
    "holdout.toml": 30,
    "holdout2.toml": 30,
    "holdout3.toml": 30,
    "holdout4.toml": 30,
    "holdout5.toml": 30,
    "holdout6.toml": 30,
    "holdout7.toml": 30,
    "holdout8.toml": 30,
    "holdout9.toml": 30,
    "holdout10.toml": 30,
    "holdout11.toml": 30,
    "holdout12.toml": 30,
}


@pytest.mark.parametrize("name", list(SETS))
def test_the_set_is_large_and_covers_every_category_and_both_languages(name: str) -> None:
    cases = SETS[name]
    assert len(cases.cases) >= MINIMUM[name]
    assert set(Counter(c.category for c in cases.cases)) == set(CATEGORIES)
    languages = Counter(c.language for c in cases.cases)
    assert set(languages) == {"pt-BR", "en"}
    # Roughly half each: neither language has fewer than a third of the cases.
    assert min(languages.values()) >= len(cases.cases) / 3
    pt = [c.question for c in cases.cases if c.language == "pt-BR"]
    assert any(q.isascii() for q in pt) and any(not q.isascii() for q in pt)


@pytest.mark.parametrize("name", list(SETS))
def test_every_case_names_a_committed_dataset_and_says_what_it_expects(name: str) -> None:
    cases = SETS[name]
    for case in cases.cases:
        spec = cases.datasets[case.dataset]
        assert spec.path.is_file(), case.id
        assert case.expect, case.id
        if case.category == "unanswerable":
            assert any(i.text_any for i in case.expect), case.id
            assert case.must_not, f"{case.id}: an unanswerable case forbids invented numbers"
        if case.category in ("anomaly_yes", "anomaly_no"):
            assert any(i.text_any for i in case.expect), f"{case.id}: says yes or no"
        if case.category == "anomaly_yes":
            assert any(i.kind == "anomaly" for i in case.expect), case.id


@pytest.mark.parametrize(
    ("name", "case_id"), [(name, c.id) for name, cases in SETS.items() for c in cases.cases]
)
def test_expected_values_equal_the_reference_query(name: str, case_id: str) -> None:
    cases = SETS[name]
    assert reference_problems(cases, cases.case(case_id)) == []


@pytest.mark.parametrize("name", [name for name in SETS if name.startswith("holdout")])
def test_the_holdout_set_is_held_out(name: str) -> None:
    """New datasets and new case ids: nothing of any other set is reused."""
    held_out = SETS[name]
    for other_name, other in SETS.items():
        if other_name == name:
            continue
        assert not set(held_out.datasets) & set(other.datasets), other_name
        assert not {c.id for c in held_out.cases} & {c.id for c in other.cases}, other_name


def test_the_messy_datasets_are_messy() -> None:
    """What the set claims to test is in the files: a change to the generator that cleans
    them up fails here."""
    text = {name: spec.path.read_text(encoding="utf-8") for name, spec in CASES.datasets.items()}
    assert re.search(r";\d{1,3}\.\d{3},\d{2}\n", text["pedidos_br.csv"])  # 1.234,56
    assert re.search(r";\d{2}/\d{2}/2024;", text["pedidos_br.csv"])  # dd/mm/yyyy
    assert text["pedidos_br.csv"].startswith("pedido_id;")
    assert re.search(r";R\$ \d{1,3}(\.\d{3})*,\d{2}\n", text["faturamento_filiais.csv"])
    assert text["faturamento_filiais.csv"].startswith("customer_id;")
    assert text["lojas_semanal.csv"].startswith("semana,")
    assert text["site_visits_weekly.csv"].startswith("week_number,")
    for name, body in text.items():
        assert len(body.encode()) < 50_000, name


def test_the_holdout_datasets_are_messy() -> None:
    text = {name: spec.path.read_text(encoding="utf-8") for name, spec in HOLDOUT.datasets.items()}
    restaurants = text["vendas_restaurantes.csv"]
    assert re.search(r"^\d{2}/\d{2}/2024;[^;]+;\d{1,3}\.\d{3},\d{2};\d+$", restaurants, re.M)
    catalogue = text["catalogo_vendas.csv"]
    assert catalogue.startswith("ano;mes;sku;")  # the month as two integer columns
    assert ";R$ 1.899,00;" in catalogue  # a price with a thousands dot
    assert re.search(r";[A-Z]{3}-\d{3};", catalogue)  # sku codes
    assert text["clinica_consultas.csv"].startswith("competencia,especialidade,consultas,")
    for name, body in text.items():
        assert len(body.encode()) < 50_000, name


def test_the_second_holdout_datasets_are_what_it_claims() -> None:
    text = {name: spec.path.read_text(encoding="utf-8") for name, spec in HOLDOUT2.datasets.items()}
    returns = text["devolucoes_ecommerce.csv"]
    assert returns.startswith("semana;canal;motivo;devolucoes;valor_reembolsado\n")
    # weeks as the Monday's ISO date, a decimal comma without a thousands dot
    assert re.search(r"^2024-03-18;Marketplace;Defeito;\d+;\d{4,},\d{2}$", returns, re.M)
    deliveries = text["entregas_transportadoras.csv"]
    assert deliveries.startswith("data,transportadora,entregas,atrasadas,atraso_medio_min\n")
    assert "2024-01-07," not in deliveries  # no Sundays
    assert re.search(r"^2024-03-12,Loggi,\d+,\d+,\d+\.\d$", deliveries, re.M)
    hr = text["hr_headcount.csv"]
    assert hr.startswith("month,department,headcount,hires,exits,payroll_usd\n")
    assert re.search(r"^2024-07,Sales,\d+,\d+,22,", hr, re.M)  # the planted spike
    for name, body in text.items():
        assert len(body.encode()) < 40_000, name


def test_the_third_holdout_datasets_are_what_it_claims() -> None:
    text = {name: spec.path.read_text(encoding="utf-8") for name, spec in HOLDOUT3.datasets.items()}
    pharmacy = text["farmacias_mensal.csv"]
    assert pharmacy.startswith("mes_referencia;cod_loja;loja;categoria;faturamento;")
    # dd/mm/yyyy months, a numeric store code, money as R$ text with a thousands dot
    assert re.search(
        r"^01/09/2024;1048;Sorocaba;Medicamentos;R\$ \d{2}\.\d{3},\d{2};", pharmacy, re.M
    )
    assert "Ribeirão Preto" in pharmacy
    tickets = text["support_tickets_weekly.csv"]
    assert tickets.startswith("week_start,team_id,team,channel,tickets_opened,")
    assert re.search(r"^2024-04-15,102,Technical,Email,\d{3},\d{3},\d+\.\d$", tickets, re.M)
    for name, body in text.items():
        assert len(body.encode()) < 40_000, name


def test_the_fourth_holdout_datasets_are_what_it_claims() -> None:
    text = {name: spec.path.read_text(encoding="utf-8") for name, spec in HOLDOUT4.datasets.items()}
    gyms = text["academias_mensal.csv"]
    assert gyms.startswith("competencia;cidade;unidade;plano;alunos_ativos;matriculas;")
    # dd/mm/yyyy months, accents, revenue with a decimal comma and a thousands dot
    assert re.search(
        r"^01/03/2024;Curitiba;Batel;Mensal;\d+;\d+;\d+;\d{2,3}\.\d{3},\d{2}$", gyms, re.M
    )
    assert ";Brasília;Asa Sul;" in gyms
    funnel = text["marketing_funnel_daily.csv"]
    assert funnel.startswith("date,channel_id,channel,sessions,add_to_carts,orders,")
    # money as quoted text with a thousands comma; Organic spends nothing
    assert re.search(
        r'^2024-02-14,12,Meta Ads,\d+,\d+,\d+,\d+\.\d{2},"\$\d,\d{3}\.\d{2}"$', funnel, re.M
    )
    assert re.search(r"^2024-03-31,15,Organic,\d+,\d+,\d+,\d+\.\d{2},\$0\.00$", funnel, re.M)
    for name, body in text.items():
        assert len(body.encode()) < 40_000, name


def test_the_fifth_holdout_datasets_are_what_it_claims() -> None:
    text = {name: spec.path.read_text(encoding="utf-8") for name, spec in HOLDOUT5.datasets.items()}
    schools = text["mensalidades_escolas.csv"]
    assert schools.startswith("vencimento;cod_unidade;unidade;segmento;alunos_matriculados;")
    # due dates on the 10th (dd/mm/yyyy), accents, money with a decimal comma and thousands dots
    assert re.search(
        r"^10/08/2024;303;Campo Grande;Ensino Médio;\d+;\d+;\d+;\d+;\d{3}\.\d{3},\d{2};"
        r"\d{3}\.\d{3},\d{2}$",
        schools,
        re.M,
    )
    assert ";Niterói;Educação Infantil;" in schools
    waves = text["picking_waves.csv"]
    assert waves.startswith("wave_id,started_at,finished_at,warehouse,shift,pickers,order_lines,")
    # ISO timestamps, a night wave that ends the next day, an accent in a DC's name
    assert re.search(r"^\d{6},2024-10-01T22:\d{2}:00,2024-10-02T0\d:\d{2}:00,DC ", waves, re.M)
    assert re.search(r"^\d{6},2024-11-12T\d{2}:\d{2}:00,[^,]+,DC Extrema,Day Shift,", waves, re.M)
    assert ",DC Jaboatão,Night Shift," in waves
    assert "2024-10-06T" not in waves  # no Sundays
    for name, body in text.items():
        assert len(body.encode()) < 60_000, name


def test_the_sixth_holdout_datasets_are_what_it_claims() -> None:
    text = {name: spec.path.read_text(encoding="utf-8") for name, spec in HOLDOUT6.datasets.items()}
    hotels = text["ocupacao_hoteis.csv"]
    assert hotels.startswith("data;cod_hotel;hotel;cidade;segmento;quartos_disponiveis;")
    # dd/mm/yyyy nights, a percentage and money with decimal commas (money with thousands dots)
    assert re.search(
        r"^19/03/2024;2103;Resort Praia do Forte;Mata de São João;Lazer;\d+;\d+;\d{2},\d{2};"
        r"\d{2,3}\.\d{3},\d{2};\d+;31$",
        hotels,
        re.M,
    )  # the planted spike
    assert ";Paulista Business;São Paulo;Corporativo;" in hotels
    calls = text["calls_hourly.csv"]
    assert calls.startswith("date,hour,queue_id,queue,calls_offered,calls_answered,")
    # ISO dates and the hour in its own column, queue names with codes and accents, plain money
    assert re.search(
        r"^2024-09-18,10,403,Q03 Cobrança,\d+,\d+,\d+,\d+,\d+\.\d,\d+,0\.00$", calls, re.M
    )
    assert re.search(
        r"^2024-10-12,13,401,Q01 Vendas,\d+,\d+,\d+,\d+,\d+\.\d,\d+,\d+\.\d{2}$", calls, re.M
    )
    assert "2024-10-12,14," not in calls  # Saturdays close at 14h
    assert "2024-09-08," not in calls  # no Sundays
    for row in calls.splitlines()[1:]:
        offered, answered, abandoned = map(int, row.split(",")[4:7])
        assert offered == answered + abandoned, row
    for name, body in text.items():
        assert len(body.encode()) < 90_000, name


def test_the_seventh_holdout_datasets_are_what_it_claims() -> None:
    text = {name: spec.path.read_text(encoding="utf-8") for name, spec in HOLDOUT7.datasets.items()}
    rental = text["locadora_frota.csv"]
    assert rental.startswith("competencia;agencia;uf;grupo;frota;reservas;cancelamentos;")
    # mm/yyyy months, accents, km with a thousands dot, money as R$ text with a thousands dot
    assert re.search(
        r"^08/2024;Confins Aeroporto;MG;Econômico;\d+;\d+;\d+;\d+;\d+;\d{2,3}\.\d{3};"
        r"R\$ \d{2,3}\.\d{3},\d{2}$",
        rental,
        re.M,
    )
    assert ";Florianópolis Aeroporto;SC;Intermediário;" in rental
    for row in rental.splitlines()[1:]:
        booked, cancelled, rented = map(int, row.split(";")[5:8])
        assert booked == cancelled + rented, row
    solar = text["solar_projects.csv"]
    assert solar.startswith("project_id,signed_date,state,segment,system_kwp,modules,")
    # ISO dates, plain money, an install time only for installed projects
    assert re.search(
        r"^\d{5},2024-04-\d{2},[A-Z]{2},Agribusiness,\d+\.\d{2},\d+,\d+\.\d{2},", solar, re.M
    )
    for row in solar.splitlines()[1:]:
        status, days = row.split(",")[8:10]
        assert (status == "Installed") == (days != ""), row
    for name, body in text.items():
        assert len(body.encode()) < 40_000, name


def test_the_eighth_holdout_datasets_are_what_it_claims() -> None:
    text = {name: spec.path.read_text(encoding="utf-8") for name, spec in HOLDOUT8.datasets.items()}
    grain = text["cooperativa_graos.csv"]
    assert grain.startswith("romaneio;data_entrega;produtor;município;grão;peso_líquido_kg;")
    # dd/mm/aa dates, accents, kg with a thousands dot, decimal commas, a Sim/Não column
    assert re.search(
        r"^\d{5};\d{2}/03/24;Fazenda Santa Rita;Toledo;Soja;\d{2}\.\d{3};\d{3},\d{2};\d{2},\d;"
        r"\d{3},\d{2};\d{2}\.\d{3},\d{2};(Sim|Não)$",
        grain,
        re.M,
    )
    assert ";Sítio Boa Esperança;Toledo;Feijão;" in grain
    assert ";Não\n" in grain and ";Sim\n" in grain
    cowork = text["coworking_daily.csv"]
    assert cowork.startswith("date,location_id,location,space_type,capacity_hours,bookings,")
    # US MM/DD/YYYY dates, weekdays only, the planted spike row
    assert re.search(r"^03/12/2024,301,Austin Downtown,Meeting Room,80,\d{2},", cowork, re.M)
    assert "01/06/2024," not in cowork  # a Saturday
    assert re.search(r"^04/30/2024,303,Denver LoDo,Hot Desk,550,", cowork, re.M)
    for name, body in text.items():
        assert len(body.encode()) < 50_000, name


def test_the_ninth_holdout_datasets_are_what_it_claims() -> None:
    text = {name: spec.path.read_text(encoding="utf-8") for name, spec in HOLDOUT9.datasets.items()}
    vet = text["veterinaria_diaria.csv"]
    assert vet.startswith("data;cód_unidade;unidade;cidade;agendamentos;faltas;consultas;")
    # dd/mm/yyyy dates, a numeric unit id, a Sim/Não column, money as R$ text; the planted spike
    assert re.search(
        r"^20/04/2024;11;Moema;São Paulo;\d+;\d+;\d+;\d{2};0;\d+;Não;R\$ \d{1,2}\.\d{3},\d{2}$",
        vet,
        re.M,
    )
    assert "\n31/03/2024;" not in vet  # a Sunday
    assert re.search(r"^29/03/2024;21;Campinas Cambuí;Campinas;.*;Sim;R\$ ", vet, re.M)
    for row in vet.splitlines()[1:]:
        booked, missed, seen = map(int, row.split(";")[4:7])
        assert booked == missed + seen, row
    bakery = text["bakery_monthly.csv"]
    assert bakery.startswith("month_end,store_no,store,state,product_line,units_baked,")
    # ISO month-end dates (a leap February), plain money, a Yes/No column
    assert re.search(
        r"^2024-02-29,104,Boise Downtown,ID,Cakes,\d+,\d+,\d+,\d+\.\d{2},(Yes|No),\d+$",
        bakery,
        re.M,
    )
    assert ",Yes," in bakery and ",No," in bakery
    for row in bakery.splitlines()[1:]:
        baked, sold, wasted = map(int, row.split(",")[5:8])
        assert baked == sold + wasted, row
    for name, body in text.items():
        assert len(body.encode()) < 50_000, name


def test_the_tenth_holdout_datasets_are_what_it_claims() -> None:
    text = {
        name: spec.path.read_text(encoding="utf-8") for name, spec in HOLDOUT10.datasets.items()
    }
    fuel = text["postos_combustivel.csv"]
    assert fuel.startswith("data;cód_posto;posto;cidade;combustível;litros_vendidos;preço_litro;")
    # dd/mm/yyyy dates, litres with a decimal comma and thousands dots, money as R$ text, a
    # Sim/Não column; the planted spike
    assert re.search(
        r"^20/03/2024;4103;Rodovia BR-277;Campo Largo;Diesel S10;\d{2}\.\d{3},\d{2};"
        r"R\$ \d,\d{2};R\$ \d{3}\.\d{3},\d{2};\d+;\d+;(Sim|Não)$",
        fuel,
        re.M,
    )
    assert ";Água Verde;Curitiba;Etanol;" in fuel and ";Sim\n" in fuel and ";Não\n" in fuel
    assert "Água Verde;Curitiba;Diesel S10" not in fuel  # diesel at the highway only
    assert "\n14/04/2024;" in fuel and "\n15/04/2024;" not in fuel  # ends on a Sunday
    rides = text["rides_weekly.csv"]
    assert rides.startswith("week_start,city_id,city,state,service,trips_requested,")
    # ISO Mondays, plain money, a Yes/No column
    assert re.search(
        r"^2024-06-03,201,Nashville,TN,Standard,\d{5},\d{5},\d+,\d+\.\d{2},\d+\.\d,\d+,Yes$",
        rides,
        re.M,
    )
    assert ",Salt Lake City,UT,XL," in rides and ",No\n" in rides
    for row in rides.splitlines()[1:]:
        requested, completed, cancelled = map(int, row.split(",")[5:8])
        assert requested == completed + cancelled, row
    assert len(fuel.encode()) < 80_000
    assert len(rides.encode()) < 40_000


def test_the_eleventh_holdout_datasets_are_what_it_claims() -> None:
    text = {
        name: spec.path.read_text(encoding="utf-8") for name, spec in HOLDOUT11.datasets.items()
    }
    dealer = text["os_concessionaria_agricola.csv"]
    assert dealer.startswith("competência;cód_filial;filial;uf;tipo_serviço;os_abertas;")
    # pt-BR "mmm/aa" months, hours with a decimal comma and thousands dots, money as R$ text, an
    # average with a decimal comma; the planted spike
    assert re.search(
        r"^fev/24;520;Sorriso;MT;Garantia;\d{2,3};\d{2,3};\d{3},\d;R\$ \d{3}\.\d{3},\d{2};"
        r"R\$ \d{2,3}\.\d{3},\d{2};\d+;\d,\d$",
        dealer,
        re.M,
    )
    assert re.search(r";\d\.\d{3},\d;R\$ ", dealer)  # hours with a thousands dot
    assert ";Luís Eduardo Magalhães;BA;Agricultura de Precisão;" in dealer
    assert "\njan/23;" in dealer and "\nabr/24;" in dealer and "\nmai/24;" not in dealer
    grid = text["substation_energy_monthly.csv"]
    assert grid.startswith("month,substation_id,substation,county,customer_class,customers,")
    # YYYY-MM months, plain numbers; the planted spike
    assert re.search(
        r"^2024-03,7104,Bastrop East,Bastrop,Industrial,\d{2},\d{5}\.\d,\d+\.\d{2},\d+\.\d{2},\d+$",
        grid,
        re.M,
    )
    assert "\n2024-11,7103,Cedar Park," in grid and "\n2024-12," not in grid
    assert len(dealer.encode()) < 40_000
    assert len(grid.encode()) < 40_000


def test_the_twelfth_holdout_datasets_are_what_it_claims() -> None:
    text = {
        name: spec.path.read_text(encoding="utf-8") for name, spec in HOLDOUT12.datasets.items()
    }
    loans = text["carteira_credito_cooperativa.csv"]
    assert loans.startswith("mês;cód_agência;agência;produto;contratos;valor_contratado;")
    # full pt-BR month names, a code with a leading zero, money as R$ text with thousands dots,
    # a rate with a decimal comma and a percent sign; the planted spike
    assert re.search(
        r"^março de 2024;0104;Joaçaba;Capital de Giro;\d{2};R\$ \d\.\d{3}\.\d{3},\d{2};"
        r"R\$ \d{2}\.\d{3}\.\d{3},\d{2};\d,\d{2}%;R\$ \d{3}\.\d{3},\d{2}$",
        loans,
        re.M,
    )
    assert ";São Miguel do Oeste;Crédito Rural;" in loans
    assert "\njaneiro de 2023;" in loans and "\nagosto de 2024;" in loans
    assert "\nsetembro de 2024;" not in loans
    census = text["ward_census_daily.csv"]
    assert census.startswith("census_date,ward_id,ward,building,staffed_beds,occupied_beds,")
    # US M/D/YYYY dates without leading zeros, money as quoted text with thousands commas; the
    # planted spike
    assert re.search(
        r'^1/16/2024,3102,Orthopedics,Tower A,24,\d{2},19,\d+,\d+\.\d,"\$\d{2},\d{3}\.\d{2}"$',
        census,
        re.M,
    )
    assert "\n5/19/2024,3105,Maternity,Tower B,28," in census and "\n5/20/2024," not in census
    assert len(loans.encode()) < 50_000
    assert len(census.encode()) < 50_000


def test_the_committed_data_is_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(EVALS / "make_data.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_a_wrong_literal_is_caught(tmp_path: Path) -> None:
    """The check above can fail: one value off by a cent is a problem, and so is a missing
    item or a claimed-absent word that a column has."""
    case = CASES.case("lojas-top-pt")
    item = case.expect[0]
    assert item.value is not None
    off = type(item)(segment=item.segment, value=item.value + 0.01)
    wrong = CaseSet(CASES.path, CASES.datasets, [type(case)(**{**vars(case), "expect": (off,)})])
    assert reference_problems(wrong, wrong.cases[0])
    unanswerable = CASES.case("lojas-unanswerable-custo-pt")
    claims = type(unanswerable)(**{**vars(unanswerable), "absent": ("vendas",)})
    assert reference_problems(CaseSet(CASES.path, CASES.datasets, [claims]), claims)


def test_malformed_case_files_are_refused_with_every_problem(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("a,b\n1,2\n")
    path = tmp_path / "cases.toml"
    path.write_text(
        '[datasets."x.csv"]\nview = "SELECT * FROM raw"\n'
        '[[cases]]\nid = "a"\ncategory = "nonsense"\ndataset = "x.csv"\nquestion = "q"\n'
        'language = "fr"\nexpect = [{value = "7"}]\nmust_not = ["(unclosed"]\n'
        '[[cases]]\nid = "a"\ncategory = "top"\ndataset = "y.csv"\nquestion = "q"\n'
        'language = "en"\nexpect = []\n'
    )
    with pytest.raises(CaseFileError) as caught:
        load_cases(path)
    text = "\n".join(caught.value.problems)
    for needle in (
        "category 'nonsense'",
        "language 'fr'",
        "value must be a number",
        "does not compile",
        "dataset 'y.csv' is not declared",
        "'expect' must be a non-empty list",
        "'reference'",
        "used twice",
    ):
        assert needle in text, needle
