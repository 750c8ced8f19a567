"""Write the evaluation datasets of ``evals/insights/data/`` (run it again to check they match).

Why a generator: the expected answers in ``cases.toml`` come from DuckDB queries over these
files, so anyone must be able to see how each file was made and what was planted in it (a
drop, a spike, nothing at all). Every value is a formula of its position plus a small
wobble from SHA-256 of a seed string, not ``random``: the files are the same on every
machine and every Python version.

What each file holds (all amounts in reais unless the column says otherwise):

* ``lojas_semanal.csv``: 26 weeks of 2024 (``semana`` 1..26 beside the Monday ``data``) for
  four stores; Centro sells most and Leste least; Norte's sales fall to 38% of normal in
  weeks 17 and 18 (the weeks of 22 and 29 April), a drop of more than half;
* ``receita_mensal_regiao.csv``: 24 months (``mes`` ``2023-01``..``2024-12``) of revenue and
  orders for five regions, growing about 1.2% a month with a wobble of a few percent and no
  anomaly;
* ``pedidos_br.csv``: 300 orders of 2024 as a Brazilian spreadsheet exports them: ``;``
  separated, decimal commas with thousands dots (``1.234,56``), ``dd/mm/yyyy`` dates and a
  numeric ``pedido_id`` that must never be summed;
* ``faturamento_filiais.csv``: six months of billing of four branches, five customers each,
  with the money written as text (``R$ 12.345,67``), months as ``01/mm/2024`` and a numeric
  ``customer_id`` that must never be summed;
* ``web_orders_monthly.csv``: 24 months of orders and revenue of four sales channels, English
  column names; the web channel's November 2024 is 2.6 times its normal level (a spike);
* ``site_visits_weekly.csv``: 26 weeks of visits and signups by traffic source, with a
  ``week_number`` column beside ``week_start``; steady growth, no anomaly.

The held-out set (``holdout.toml``) has four more:

* ``clinica_consultas.csv``: 24 months (``competencia`` ``2023-01``..``2024-12``) of a
  clinic's appointments (``consultas``, a count in a column: not one row per appointment),
  no-shows (``faltas``) and billing for five specialties; Pediatria rises up to 15% in the
  winter months; no anomaly;
* ``saas_mrr.csv``: 18 months (``2023-07``..``2024-12``) of MRR in USD by plan with active,
  new and churned accounts, English names; Pro's MRR falls to 55% in May 2024 (a reseller's
  accounts churn) and is back the month after;
* ``vendas_restaurantes.csv``: every day of January to June 2024 for four restaurants, ``;``
  separated, ``dd/mm/yyyy`` dates and decimal commas; a strong weekday pattern (Saturday is
  1.45 times Thursday, Monday 0.75) and one spike: Moema on 12/06/2024 (Dia dos Namorados),
  3.2 times its normal day; no drop;
* ``catalogo_vendas.csv``: 24 months of sales of twelve products with ``sku`` codes
  (``CAF-101``), three categories, the month as two integer columns ``ano`` and ``mes``
  (ordinal keys, never measures), and ``preco_unitario`` and ``valor_total`` as text
  (``R$ 1.899,00``); December sells 15% more.

The second held-out set (``holdout2.toml``) has three more:

* ``devolucoes_ecommerce.csv``: 26 weeks of 2024 of an online shop's returns, one row per
  week (``semana``, the Monday as an ISO date), channel (``canal``: Site, App, Marketplace)
  and reason (``motivo``); ``;`` separated, ``valor_reembolsado`` with a decimal comma and no
  thousands separator (``1234,56``); App's returns grow 2% a week; Marketplace's Defeito
  returns are ten times normal in the week of 18 March 2024 (a defective batch); no drop;
* ``entregas_transportadoras.csv``: every Monday to Saturday of January to April 2024 (no
  Sundays) for four carriers: ``entregas``, ``atrasadas`` (late deliveries) and
  ``atraso_medio_min``, the day's average delay in minutes (an average: never summed);
  Saturdays carry 0.8 of a weekday's volume; Loggi's delay is 4.5 times normal on 12 March
  2024 (an outage); no volume drop;
* ``hr_headcount.csv``: 24 months (``month`` ``2023-01``..``2024-12``) of five departments,
  English names: ``headcount`` (a stock at the month's end, never summed over months),
  ``hires``, ``exits`` and ``payroll_usd``; Sales' exits jump to 22 in July 2024 (a region
  closed; its median month is 3); hires are steady.

The third held-out set (``holdout3.toml``) has two more:

* ``farmacias_mensal.csv``: 18 months (``mes_referencia`` ``01/07/2023``..``01/12/2024``) of
  a pharmacy chain's four stores (``loja``, with a numeric ``cod_loja`` that must never be
  summed) by category (Medicamentos, Perfumaria, Higiene Pessoal); ``;`` separated,
  ``faturamento`` as text (``R$ 12.345,67``), ``unidades_vendidas`` (a flow) and
  ``estoque_final`` (units in stock at the month's end: a stock, never summed over months);
  revenue grows 0.8% a month, Perfumaria sells 35% more in May and 45% more in December;
  Sorocaba's revenue falls to 45% of normal in September 2024 (closed 16 days for
  renovation), a drop; no spike;
* ``support_tickets_weekly.csv``: 26 weeks of 2024 (``week_start``, the Monday, ISO) of a
  support desk's tickets by team (with a numeric ``team_id``) and channel (Email, Chat,
  Phone), English names: ``tickets_opened``, ``tickets_resolved`` and
  ``avg_resolution_hours`` (an average: never summed); Technical grows 1% a week and
  Onboarding shrinks 1.5% a week; Technical's opened tickets are three times normal in the
  week of 15 April 2024 (a failed release); resolution times have no anomaly.

The fourth held-out set (``holdout4.toml``) has two more:

* ``academias_mensal.csv``: 24 months (``competencia`` ``01/01/2023``..``01/12/2024``) of a
  gym chain's five units (``unidade``, each in one ``cidade``) by plan (``plano``: Mensal,
  Trimestral, Anual); ``;`` separated, ``receita`` with a decimal comma and thousands dots;
  ``alunos_ativos`` (members at the month's end: a stock, never summed over months) moves by
  ``matriculas`` (sign-ups, 1.5 times normal in January) minus ``cancelamentos``; Batel's
  cancellations are four times normal in March 2024 (a low-cost gym opened across the
  street), a spike; revenue has no anomaly;
* ``marketing_funnel_daily.csv``: every day of Q1 2024 of an online shop's funnel by channel
  (with a numeric ``channel_id``), English names: ``sessions``, ``add_to_carts``, ``orders``,
  ``revenue_usd`` and ``ad_spend_usd`` as money text (``"$1,406.14"``, quoted for its
  thousands comma; Organic spends ``$0.00``); Meta Ads' spend is 3.5 times normal on
  14 February 2024 (a budget typed with an extra digit); orders have no anomaly.

The fifth held-out set (``holdout5.toml``) has two more:

* ``mensalidades_escolas.csv``: 24 months of a school network's four units (``unidade``, with
  a numeric ``cod_unidade`` that must never be summed) by segment (``segmento``: Educação
  Infantil .. Ensino Médio), dated by the boletos' due date (``vencimento``, ``10/mm/yyyy``:
  the 10th, not the 1st); ``;`` separated, ``alunos_matriculados`` (a stock, never summed over
  months; one boleto a student), ``novas_matriculas`` (January and February: the school year
  starts), ``boletos_em_atraso`` (up about 1.5 times every January: seasonal) and
  ``valor_faturado``/``valor_recebido`` with a decimal comma and thousands dots; Campo Grande's
  late boletos are 3.6 times normal in August 2024 (the bank failed to register them), a
  spike; billing has no anomaly;
* ``picking_waves.csv``: one row per picking wave of a 3PL's three DCs, 1 October to 30
  November 2024, Monday to Saturday, English names: ISO timestamps ``started_at`` and
  ``finished_at`` (night waves end the next day), a numeric ``wave_id``, ``shift``, counts
  per wave (``pickers``, ``order_lines``, ``units_picked``, ``short_picks``) and
  ``backlog_lines`` (open lines at the wave's end: a stock); Saturdays run the day shift only
  and Black Friday week carries 1.45 times the volume (seasonal); DC Extrema's short picks are
  5.5 times normal on 12 November 2024 (an inbound put away into the wrong bins); order lines
  have no anomaly.

The sixth held-out set (``holdout6.toml``) has two more:

* ``ocupacao_hoteis.csv``: every night of January to June 2024 (``data``, ``dd/mm/yyyy``) of a
  hotel group's four properties (``hotel``, with a numeric ``cod_hotel`` that must never be
  summed, ``cidade`` and ``segmento``: Lazer or Corporativo); ``;`` separated,
  ``quartos_disponiveis`` (rooms sellable that night: a stock, never summed over nights),
  ``quartos_ocupados`` (room nights sold), ``taxa_ocupacao`` (a percentage with a decimal
  comma), ``receita_hospedagem`` with a decimal comma and thousands dots, ``hospedes`` and
  ``cancelamentos``; the business hotel empties at weekends, the leisure ones fill on Fridays
  and Saturdays, January is high season and Carnaval fills Copacabana (all seasonal); Resort
  Praia do Forte's cancellations are ten times normal on 19/03/2024 (a tour operator cancelled
  its Easter block), a spike; occupancy and revenue have no anomaly;
* ``calls_hourly.csv``: one row per hour (``date`` ISO and ``hour`` 8..18 in separate columns)
  and queue of a call center, 2 September to 12 October 2024, Monday to Saturday (Saturday
  mornings only), English names: a numeric ``queue_id``, ``queue`` with a code and accents
  (``Q03 Cobrança``), ``calls_offered`` = ``calls_answered`` + ``calls_abandoned``,
  ``avg_wait_sec`` (an average of the answered calls), ``service_level_pct`` (a percentage),
  ``agents_logged`` (a stock) and ``sales_brl`` in plain numbers; Mondays carry 1.3 times a
  Wednesday and calls peak at 10h and 15h (the weekly and daily shape); Q03 Cobrança's
  abandoned calls are 5.5 times normal on 18 September 2024 (a login failure kept half its
  agents out), a spike; answered calls have no drop.

The seventh held-out set (``holdout7.toml``) has two more:

* ``locadora_frota.csv``: twelve months of 2024 (``competencia`` as ``mm/yyyy``, no day) of a
  car rental company's four agencies (``agencia``, with its ``uf``) by car group (``grupo``:
  Econômico, Intermediário, SUV, Executivo); ``;`` separated, ``frota`` (the group's cars at
  the agency: a stock, never summed over months), ``reservas`` = ``cancelamentos`` +
  ``locacoes``, ``diarias`` (rental days), ``km_rodados`` (an integer with a thousands dot)
  and ``receita`` as ``R$ 1.234,56`` text; Florianópolis rents more in the summer (seasonal)
  and SUV rentals grow 5% a month (1.7 times by December); Curitiba Centro's rentals fall to
  0.44 of normal in May 2024 (closed half the month for works), a drop, and Confins
  Aeroporto's cancellations are 4.3 times normal in August 2024 (a block booking cancelled),
  a spike; revenue has no spike;
* ``solar_projects.csv``: one row per contract a solar installer signed in 2024, English
  names: a numeric ``project_id``, ``signed_date`` (ISO), ``state``, ``segment``
  (Residential, Commercial, Agribusiness), ``system_kwp``, ``modules``,
  ``contract_value_brl`` (plain numbers), ``financed`` (Yes/No), ``status`` (Installed, In
  Progress, Cancelled) and ``install_days`` (empty unless installed); Agribusiness signs 3.4
  times its normal month in April (a rural credit line opened), a spike; Residential 0.41 of
  its normal month in July (the partner bank suspended its financing), a drop; Commercial
  grows from 6 projects a month to 11.

The eighth held-out set (``holdout8.toml``) has two more:

* ``cooperativa_graos.csv``: one row per truckload (``romaneio``, a numeric ticket id that
  must never be summed) delivered to a grain cooperative in western Paraná, January to June
  2024 (no Sundays, not 1 January); ``;`` separated, accented column names (``município``,
  ``grão``, ``peso_líquido_kg``, ``umidade_%``, ``preço_saca``), ``data_entrega`` as
  ``dd/mm/aa`` (a two-digit year), six producers in three towns, grains Soja, Milho and
  Feijão, ``peso_líquido_kg`` an integer with a thousands dot, ``sacas`` (60 kg), moisture
  (a percentage, averaged, never summed) and money with a decimal comma and thousands dots,
  ``venda_antecipada`` as ``Sim``/``Não``; Milho grows 22% a month (the second crop coming
  in); Fazenda Santa Rita delivers 3.5 times its normal loads in March 2024 (a newly leased
  area), a spike; Palotina's producers 0.35 of theirs in May 2024 (a bridge closed), a drop;
  prices have no anomaly;
* ``coworking_daily.csv``: one row per weekday (``date`` as US ``MM/DD/YYYY``), location
  (with a numeric ``location_id``) and space type (Hot Desk, Meeting Room) of a coworking
  operator, 2 January to 30 April 2024, English names: ``capacity_hours`` (a stock, never
  summed over days; Denver adds fifteen desks on 1 March), ``bookings``, ``booked_hours``,
  ``no_shows`` and ``revenue_usd`` in plain numbers; Fridays are quieter (the weekly shape)
  and Denver LoDo's hot desks grow 2% a week; Austin Downtown's meeting room bookings are 3
  times normal on 12 March 2024 (SXSW), a spike; Seattle SLU's bookings 0.18 of normal on 21
  February 2024 (a power outage), a drop; hot desks have no spike.

The ninth held-out set (``holdout9.toml``) has two more:

* ``veterinaria_diaria.csv``: one row per day and unit of a veterinary chain, Monday to
  Saturday, 2 January to 29 June 2024; ``;`` separated, ``data`` as ``dd/mm/yyyy``, accented
  column names (``cód_unidade``, a numeric id that must never be summed, and
  ``vacinações``), four units in three cities, ``agendamentos`` = ``faltas`` (no-shows) +
  ``consultas``, ``cirurgias`` (weekdays only), ``internados`` (animals hospitalized at the
  day's close: a stock, never summed over days), ``feriado`` (``Sim``/``Não``: on call only,
  0.6 of a day) and ``faturamento`` as text (``R$ 14.521,70``); Saturdays carry 0.6 of a
  weekday; Alphaville (opened in December 2023) grows 8% a month; Moema's vaccinations are 4
  times normal on 20/04/2024 (the rabies vaccination Dia D), a spike; Campinas Cambuí's
  consultations and surgeries 0.4 of normal in March 2024 (half the rooms closed for
  renovation), a drop; no-show rates have no anomaly;
* ``bakery_monthly.csv``: one row per month, store (with a numeric ``store_no``) and product
  line of a bakery chain in 2024, English names: ``month_end`` as an ISO month-end date
  (``2024-02-29``), ``units_baked`` = ``units_sold`` + ``units_wasted``, ``net_sales_usd``
  (plain numbers), ``promo`` (Yes/No: 10% off, 1.1 times the units) and ``menu_items`` (a
  stock, never summed over months); cakes sell more in February and December, bread and
  pastries in November and December (seasonal); Sandwiches grow 7% a month; Boise Downtown's
  cakes are 3.2 times normal in May 2024 (graduation catering orders), a spike; Ballard's
  sales 0.35 of normal in August 2024 (the avenue closed for a water main), a drop; waste
  rates and bread have no spike.

The tenth held-out set (``holdout10.toml``) has two more:

* ``postos_combustivel.csv``: one row per day, fuel station (with a numeric ``cód_posto``)
  and fuel (``combustível``: Gasolina Comum, Etanol; Diesel S10 only at the highway
  station) of a fuel-station network, every day of 1 January to 14 April 2024 (15 whole
  weeks); ``;`` separated, ``data`` as ``dd/mm/yyyy``, ``litros_vendidos`` with a decimal
  comma and thousands dots (``5.210,37``), ``preço_litro`` and ``faturamento`` as text
  (``R$ 5,89``, ``R$ 30.689,08``), ``abastecimentos`` (fill-ups), ``estoque_tanque_l`` (litres
  in the tank at the day's close: a stock, never summed over days) and ``promoção``
  (``Sim``/``Não``: an app discount of 20 centavos a litre, 1.1 times the litres); Fridays
  and Saturdays sell more petrol, trucks buy less diesel at weekends; Etanol grows 3% a week
  (its price against petrol); Rodovia BR-277's Diesel S10 litres are 3.2 times normal on
  20/03/2024 (a harvest convoy of trucks), a spike; Centro's litres are 0.3 of normal in the
  week of 19 February 2024 (the street dug up for a sewer main), a drop; prices and the
  Água Verde station have no anomaly;
* ``rides_weekly.csv``: one row per week (``week_start``, the Monday, ISO), city (with a
  numeric ``city_id``) and service (Standard, XL) of a ride-hailing app, the 39 weeks from 1
  January to 23 September 2024, English names: ``trips_requested`` = ``trips_completed`` +
  ``trips_cancelled``, ``gross_bookings_usd`` (plain numbers), ``total_miles`` (one
  decimal), ``active_drivers`` (drivers who drove that week: never summed over weeks) and
  ``surge`` (Yes/No: surge pricing ran that week, 1.15 times the fares); Phoenix carries 0.92
  in July and August (the heat); Salt Lake City (launched in December 2023) grows 2.2% a
  week; Nashville's trips are 2.8 times normal in the week of 3 June 2024 (CMA Fest), a
  spike; Tampa's 0.3 of normal in the week of 5 August 2024 (Hurricane Debby), a drop;
  cancellation rates and Charlotte have no anomaly.

The eleventh held-out set (``holdout11.toml``) has two more:

* ``os_concessionaria_agricola.csv``: one row per month, branch (``filial``, with a numeric
  ``cód_filial``) and service type (``tipo_serviço``: Revisão Preventiva, Manutenção
  Corretiva, Garantia, Agricultura de Precisão) of an agricultural-machinery dealer's
  workshops, jan/23 to abr/24; ``;`` separated, ``competência`` as Excel's pt-BR ``mmm/aa``
  (``jan/23``: a month abbreviation and a two-digit year), accented column names,
  ``os_abertas`` and ``os_concluídas``, ``horas_técnicas`` with a decimal comma and thousands
  dots (``1.234,5``), ``valor_peças`` and ``valor_mão_de_obra`` as text (``R$ 123.456,78``),
  ``técnicos`` (technicians on the line at the month's end: a stock, never summed over
  months) and ``tempo_médio_reparo_dias`` (the month's average repair time, decimal comma:
  weighted by the orders completed, never summed); corrective work rises at the harvests and
  revisions before planting (seasonal); Agricultura de Precisão grows 6% a month; Sorriso's
  Garantia orders are 3.6 times normal in fev/24 (a factory recall of harvester bearings), a
  spike; Luís Eduardo Magalhães' orders 0.4 of normal in out/23 (the workshop closed after a
  fire), a drop; repair times and Cascavel's revenue have no anomaly;
* ``substation_energy_monthly.csv``: one row per month (``YYYY-MM`` text), substation (with a
  numeric ``substation_id``, and its ``county``) and customer class (Residential, Commercial,
  Industrial) of a Texas electricity distributor, January 2023 to November 2024, English
  names: ``customers`` (accounts at the month's end: a stock, never summed over months),
  ``energy_mwh``, ``peak_mw`` (the month's peak: a maximum, never summed), ``billed_usd``
  (plain numbers: energy plus a fixed charge a customer) and ``outage_events``; residential
  load is 1.4 times in July and August (air conditioning); Cedar Park grows 2.5% a month (new
  subdivisions); Bastrop East's industrial energy is 2.8 times normal in March 2024 (the sand
  plant's own generator overhauled), a spike; San Marcos South's energy 0.35 of normal in
  April 2024 (a transformer fire), a drop, with six times its outage events; prices a MWh
  and North Hills have no anomaly.

The twelfth held-out set (``holdout12.toml``) has two more:

* ``carteira_credito_cooperativa.csv``: one row per month, branch (``agência``, with a numeric
  ``cód_agência`` written with a leading zero, ``0101``) and loan product (``produto``: Crédito
  Rural, Consignado, Crédito Pessoal, Capital de Giro) of a credit union in western Santa
  Catarina, janeiro de 2023 to agosto de 2024; ``;`` separated, ``mês`` as the month's full
  pt-BR name and the year (``janeiro de 2023``, ``março de 2024``), accented column names,
  ``contratos`` (new contracts), ``valor_contratado``, ``saldo_carteira`` and
  ``saldo_em_atraso_90d`` as text (``R$ 1.234.567,89``; the two balances are stocks at the
  month's end, never summed over months) and ``taxa_média_mensal`` as text (``1,65%``: the
  month's average rate, weighted by the amount lent, never summed); Crédito Rural is 1.5 times
  in July and August (the Plano Safra) and personal loans 1.25 times in December (seasonal);
  Consignado grows 5% a month (an agreement with the state's civil servants); Joaçaba's
  Capital de Giro contracts are 3.5 times normal in março de 2024 (a Pronampe line), a spike;
  Xanxerê's contracts 0.35 of normal in julho de 2023 (a core-banking migration), a drop;
  rates and São Miguel do Oeste have no anomaly;
* ``ward_census_daily.csv``: one row per day (``census_date``, US ``M/D/YYYY`` without leading
  zeros) and ward (with a numeric ``ward_id`` and its ``building``) of a hospital, Monday 1
  January to Sunday 19 May 2024, English names: ``staffed_beds`` and ``occupied_beds`` (the
  midnight census: stocks, never summed over days to count beds; summed, patient days),
  ``admissions``, ``discharges``, ``nursing_hours`` and ``charges_usd`` as quoted money text
  (``"$100,458.22"``); Cardiology and Orthopedics admit half as many at weekends and Pediatrics
  fades with the RSV season; Maternity grows 2% a week (a rival maternity closed) and staffs
  28 beds instead of 24 from 1 March; Orthopedics' admissions are 3.4 times normal on 16
  January 2024 (an ice storm), a spike; Cardiology's 0.3 of normal in the week of 11 March 2024
  (the cath lab closed), a drop; the ICU's occupancy and Pediatrics' charges have no anomaly.

Run from the repository root::

    .venv/bin/python evals/insights/make_data.py           # (re)write the files
    .venv/bin/python evals/insights/make_data.py --check   # exit 1 if a file differs
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import sys
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def wobble(*key: object) -> float:
    """A fixed number in [0, 1) for ``key``: the same on every machine and Python version."""
    digest = hashlib.sha256("|".join(map(str, key)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def br_number(value: float, digits: int = 2) -> str:
    """``1234.5`` as a Brazilian spreadsheet writes it: ``1.234,50`` (``1.234,5`` with
    ``digits=1``)."""
    return f"{value:,.{digits}f}".replace(",", "_").replace(".", ",").replace("_", ".")


def to_csv(header: list[str], rows: list[list[object]], delimiter: str = ",") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def lojas_semanal() -> str:
    stores = {"Centro": 5200.0, "Norte": 4300.0, "Sul": 3600.0, "Leste": 2900.0}
    rows: list[list[object]] = []
    for week in range(1, 27):
        monday = date(2024, 1, 1) + timedelta(weeks=week - 1)
        for i, (store, base) in enumerate(stores.items()):
            sales = base + 18 * week + 21.3 * ((week * 7 + i * 3) % 5)
            if store == "Norte" and week in (17, 18):
                sales *= 0.38  # the planted drop: weeks of 22 and 29 April
            sales = round(sales, 2)
            rows.append([week, monday.isoformat(), store, f"{sales:.2f}", int(sales // 24)])
    return to_csv(["semana", "data", "loja", "vendas_reais", "itens"], rows)


def receita_mensal_regiao() -> str:
    regions = {
        "Sudeste": (82000.0, 210.0),
        "Sul": (41000.0, 180.0),
        "Nordeste": (36000.0, 160.0),
        "Centro-Oeste": (24000.0, 190.0),
        "Norte": (15000.0, 150.0),
    }
    season = [0.0, -0.5, 0.2, 0.4, 0.1, -0.2, -0.4, 0.3, 0.5, 0.0, 0.6, 1.0]
    rows: list[list[object]] = []
    for m in range(24):
        year, month = 2023 + m // 12, m % 12 + 1
        for region, (base, ticket) in regions.items():
            noise = 0.02 * (wobble("receita", region, m) - 0.5)
            revenue = round(base * (1 + 0.012 * m) * (1 + 0.03 * season[month - 1] + noise), 2)
            rows.append([f"{year}-{month:02d}", region, f"{revenue:.2f}", int(revenue // ticket)])
    return to_csv(["mes", "regiao", "receita", "pedidos"], rows)


def pedidos_br() -> str:
    categories = [  # (name, share of orders, unit price range)
        ("Moda", 0.30, (60.0, 260.0)),
        ("Casa", 0.22, (120.0, 700.0)),
        ("Eletrônicos", 0.20, (700.0, 2600.0)),
        ("Esporte", 0.16, (90.0, 600.0)),
        ("Livros", 0.12, (25.0, 120.0)),
    ]
    orders = []
    for n in range(300):
        month = n // 25 + 1
        day = 1 + int(wobble("dia", n) * 28)
        pick, acc = wobble("categoria", n), 0.0
        name, low, high = categories[-1][0], *categories[-1][2]
        for cat, share, (lo, hi) in categories:
            acc += share
            if pick < acc:
                name, low, high = cat, lo, hi
                break
        quantity = 1 + int(wobble("quantidade", n) * 4)
        unit = low + (high - low) * wobble("preco", n)
        orders.append((date(2024, month, day), name, quantity, round(quantity * unit, 2)))
    orders.sort(key=lambda o: (o[0], o[1], o[3]))
    rows: list[list[object]] = [
        [200001 + i, when.strftime("%d/%m/%Y"), name, qty, br_number(total)]
        for i, (when, name, qty, total) in enumerate(orders)
    ]
    return to_csv(["pedido_id", "data_pedido", "categoria", "quantidade", "valor_total"], rows, ";")


def faturamento_filiais() -> str:
    branches = {"São Paulo": 18000.0, "Rio de Janeiro": 13500.0, "Belo Horizonte": 9000.0}
    branches["Curitiba"] = 7600.0
    rows: list[list[object]] = []
    for month in range(1, 7):
        for b, (branch, base) in enumerate(branches.items()):
            for c in range(5):
                customer = 5001 + 5 * b + c
                value = base * (0.6 + 0.8 * wobble("fat", branch, c, month)) * (1 + 0.02 * month)
                when = date(2024, month, 1).strftime("%d/%m/%Y")
                rows.append([customer, when, branch, f"R$ {br_number(round(value, 2))}"])
    return to_csv(["customer_id", "mes", "filial", "faturamento"], rows, ";")


def web_orders_monthly() -> str:
    channels = {"web": (30000.0, 85.0), "app": (22000.0, 70.0)}
    channels |= {"marketplace": (12000.0, 95.0), "phone": (5000.0, 120.0)}
    rows: list[list[object]] = []
    for m in range(24):
        year, month = 2023 + m // 12, m % 12 + 1
        for channel, (base, ticket) in channels.items():
            revenue = base * (1 + 0.015 * m) * (1 + 0.04 * (wobble("web", channel, m) - 0.5))
            if channel == "web" and (year, month) == (2024, 11):
                revenue *= 2.6  # the planted spike
            revenue = round(revenue, 2)
            first = date(year, month, 1).isoformat()
            rows.append([first, channel, int(revenue // ticket), f"{revenue:.2f}"])
    return to_csv(["month", "channel", "orders", "revenue"], rows)


def site_visits_weekly() -> str:
    sources = {"google": (4200, 0.031), "direct": (2100, 0.045), "social": (1500, 0.022)}
    sources["email"] = (800, 0.06)
    rows: list[list[object]] = []
    for week in range(1, 27):
        start = date(2024, 1, 1) + timedelta(weeks=week - 1)
        for source, (base, rate) in sources.items():
            visits = int(base * (1 + 0.006 * week) * (1 + 0.06 * (wobble("v", source, week) - 0.5)))
            signups = int(visits * rate)
            rows.append([week, start.isoformat(), source, visits, signups])
    return to_csv(["week_number", "week_start", "source", "visits", "signups"], rows)


# --- the held-out set's datasets (holdout.toml) -----------------------------------------------


def clinica_consultas() -> str:
    specialties = {  # (appointments a month, average ticket)
        "Clínica Geral": (520, 180.0),
        "Pediatria": (360, 210.0),
        "Cardiologia": (310, 320.0),
        "Ortopedia": (280, 290.0),
        "Dermatologia": (240, 260.0),
    }
    winter = [0.0, 0.0, 0.0, 0.05, 0.12, 0.15, 0.12, 0.05, 0.0, 0.0, 0.0, 0.0]
    rows: list[list[object]] = []
    for m in range(24):
        year, month = 2023 + m // 12, m % 12 + 1
        for name, (base, ticket) in specialties.items():
            bump = winter[month - 1] if name == "Pediatria" else 0.0
            noise = 0.08 * (wobble("consultas", name, m) - 0.5)
            count = int(base * (1 + 0.008 * m) * (1 + bump + noise))
            no_shows = int(count * (0.08 + 0.06 * wobble("faltas", name, m)))
            billed = round(count * ticket * (1 + 0.03 * (wobble("ticket", name, m) - 0.5)), 2)
            rows.append([f"{year}-{month:02d}", name, count, no_shows, f"{billed:.2f}"])
    return to_csv(["competencia", "especialidade", "consultas", "faltas", "faturamento"], rows)


def saas_mrr() -> str:
    plans = {  # (MRR in July 2023, monthly growth, price per account)
        "Starter": (8200.0, 0.030, 29.0),
        "Pro": (21500.0, 0.020, 99.0),
        "Business": (33800.0, 0.015, 299.0),
        "Enterprise": (28600.0, 0.010, 1450.0),
    }
    rows: list[list[object]] = []
    for m in range(18):
        year, month = 2023 + (m + 6) // 12, (m + 6) % 12 + 1
        for plan, (base, growth, price) in plans.items():
            mrr = base * (1 + growth) ** m * (1 + 0.03 * (wobble("mrr", plan, m) - 0.5))
            churned = int(mrr / price * (0.02 + 0.015 * wobble("churn", plan, m)))
            if plan == "Pro" and (year, month) == (2024, 5):
                mrr *= 0.55  # the planted churn drop: a reseller's accounts left for a month
                churned += int(mrr / price * 0.8)
            accounts = int(mrr / price)
            new = int(accounts * (0.03 + growth + 0.02 * wobble("new", plan, m)))
            rows.append([f"{year}-{month:02d}", plan, f"{mrr:.2f}", accounts, new, churned])
    header = ["month", "plan", "mrr_usd", "active_accounts", "new_accounts", "churned_accounts"]
    return to_csv(header, rows)


def vendas_restaurantes() -> str:
    units = {"Pinheiros": 9800.0, "Moema": 8200.0, "Vila Madalena": 7100.0, "Savassi": 5400.0}
    weekday = [0.75, 0.85, 0.9, 1.0, 1.3, 1.45, 1.2]  # Monday..Sunday
    rows: list[list[object]] = []
    day = date(2024, 1, 1)
    n = 0
    while day < date(2024, 7, 1):
        for unit, base in units.items():
            sales = base * (1 + 0.001 * n) * weekday[day.weekday()]
            sales *= 1 + 0.1 * (wobble("rest", unit, n) - 0.5)
            if unit == "Moema" and day == date(2024, 6, 12):
                sales *= 3.2  # the planted spike: Dia dos Namorados
            sales = round(sales, 2)
            orders = int(sales / (68 + 8 * wobble("ticket", unit, n)))
            rows.append([day.strftime("%d/%m/%Y"), unit, br_number(sales), orders])
        day += timedelta(days=1)
        n += 1
    return to_csv(["data", "unidade", "faturamento", "pedidos"], rows, ";")


def catalogo_vendas() -> str:
    products = [  # (sku, product, category, unit price, units a month)
        ("CAF-101", "Café Especial Bourbon 250g", "Cafés", 42.90, 310),
        ("CAF-102", "Café Gourmet Moído 500g", "Cafés", 36.50, 420),
        ("CAF-103", "Café em Cápsulas (10 un.)", "Cafés", 24.90, 640),
        ("CAF-104", "Café Descafeinado 250g", "Cafés", 39.90, 95),
        ("ACE-201", "Moedor Manual", "Acessórios", 189.00, 38),
        ("ACE-202", "Prensa Francesa 600ml", "Acessórios", 129.90, 52),
        ("ACE-203", "Filtro de Papel 103 (100 un.)", "Acessórios", 14.90, 380),
        ("ACE-204", "Chaleira Bico de Ganso", "Acessórios", 249.00, 21),
        ("MAQ-301", "Cafeteira Elétrica", "Máquinas", 349.00, 27),
        ("MAQ-302", "Máquina de Espresso", "Máquinas", 1899.00, 9),
        ("MAQ-303", "Máquina de Cápsulas", "Máquinas", 599.00, 18),
        ("MAQ-304", "Moedor Elétrico", "Máquinas", 429.90, 12),
    ]
    rows: list[list[object]] = []
    for m in range(24):
        year, month = 2023 + m // 12, m % 12 + 1
        for sku, name, category, price, units in products:
            season = 1.15 if month == 12 else 1.0
            wob = 1 + 0.16 * (wobble("cat", sku, m) - 0.5)
            quantity = max(1, round(units * (1 + 0.01 * m) * season * wob))
            total = round(price * quantity, 2)
            rows.append(
                [year, month, sku, name, category, f"R$ {br_number(price)}", quantity,
                 f"R$ {br_number(total)}"]
            )  # fmt: skip
    header = ["ano", "mes", "sku", "produto", "categoria", "preco_unitario", "quantidade"]
    return to_csv([*header, "valor_total"], rows, ";")


# --- the second held-out set's datasets (holdout2.toml) ---------------------------------------


def devolucoes_ecommerce() -> str:
    channels = {"Site": (1.0, 0.0, 185.0), "App": (0.7, 0.02, 150.0)}  # (size, growth, ticket)
    channels["Marketplace"] = (0.9, 0.0, 120.0)
    reasons = {  # (returns a week on the site, ticket factor)
        "Tamanho errado": (34.0, 0.9),
        "Defeito": (11.0, 1.3),
        "Arrependimento": (20.0, 1.0),
        "Avaria no transporte": (7.0, 1.2),
    }
    rows: list[list[object]] = []
    for week in range(26):
        monday = date(2024, 1, 1) + timedelta(weeks=week)
        for channel, (size, growth, ticket) in channels.items():
            for reason, (base, factor) in reasons.items():
                count = base * size * (1 + growth * week)
                count *= 1 + 0.16 * (wobble("devol", channel, reason, week) - 0.5)
                if channel == "Marketplace" and reason == "Defeito" and monday == date(2024, 3, 18):
                    count *= 10  # the planted spike: a seller's defective batch
                returns = max(1, round(count))
                refund = returns * ticket * factor
                refund *= 1 + 0.1 * (wobble("reemb", channel, reason, week) - 0.5)
                refund_text = f"{refund:.2f}".replace(".", ",")  # 1234,56: no thousands dot
                rows.append([monday.isoformat(), channel, reason, returns, refund_text])
    return to_csv(["semana", "canal", "motivo", "devolucoes", "valor_reembolsado"], rows, ";")


def entregas_transportadoras() -> str:
    carriers = {  # (deliveries a weekday, delay of the late ones in minutes, share late)
        "Correios": (420.0, 96.0, 0.14),
        "Jadlog": (260.0, 118.0, 0.11),
        "Loggi": (310.0, 42.0, 0.07),
        "Total Express": (150.0, 64.0, 0.09),
    }
    weekday = [1.1, 1.05, 1.0, 1.0, 1.05, 0.8]  # Monday..Saturday; no deliveries on Sundays
    rows: list[list[object]] = []
    day = date(2024, 1, 1)
    n = 0
    while day < date(2024, 5, 1):
        if day.weekday() < 6:
            for carrier, (volume, delay, late) in carriers.items():
                count = volume * (1 + 0.002 * n) * weekday[day.weekday()]
                count = round(count * (1 + 0.12 * (wobble("entregas", carrier, n) - 0.5)))
                share = late * (1 + 0.4 * (wobble("atrasadas", carrier, n) - 0.5))
                minutes = delay * (1 + 0.3 * (wobble("atraso", carrier, n) - 0.5))
                if carrier == "Loggi" and day == date(2024, 3, 12):
                    share, minutes = share * 3, minutes * 4.5  # the planted spike: an outage
                late_count = round(count * share)
                rows.append([day.isoformat(), carrier, count, late_count, f"{minutes:.1f}"])
            n += 1
        day += timedelta(days=1)
    header = ["data", "transportadora", "entregas", "atrasadas", "atraso_medio_min"]
    return to_csv(header, rows)


def hr_headcount() -> str:
    departments = {  # (headcount in Dec 2022, hires, exits, monthly cost of a head in USD)
        "Engineering": (118, 5, 3, 12400.0),
        "Sales": (84, 4, 3, 7900.0),
        "Customer Support": (63, 3, 2, 4800.0),
        "Finance": (27, 2, 2, 8600.0),
        "Marketing": (38, 3, 2, 7200.0),
    }
    rows: list[list[object]] = []
    heads = {name: spec[0] for name, spec in departments.items()}
    for m in range(24):
        year, month = 2023 + m // 12, m % 12 + 1
        for name, (_, hires_base, exits_base, cost) in departments.items():
            hires = hires_base + (wobble("hires", name, m) > 0.55)
            exits = exits_base + (wobble("exits", name, m) > 0.6)
            if name == "Sales" and (year, month) == (2024, 7):
                exits = 22  # the planted spike: a sales region closed
            heads[name] += hires - exits
            payroll = heads[name] * cost * (1 + 0.003 * m)
            payroll *= 1 + 0.02 * (wobble("pay", name, m) - 0.5)
            rows.append([f"{year}-{month:02d}", name, heads[name], hires, exits, f"{payroll:.2f}"])
    header = ["month", "department", "headcount", "hires", "exits", "payroll_usd"]
    return to_csv(header, rows)


# --- the third held-out set's datasets (holdout3.toml) ----------------------------------------


def farmacias_mensal() -> str:
    stores = {  # (store code, revenue a month in July 2023)
        "Campinas": (1012, 185000.0),
        "Santos": (1027, 142000.0),
        "Ribeirão Preto": (1033, 121000.0),
        "Sorocaba": (1048, 96000.0),
    }
    categories = {  # (share of a store's revenue, average price of a unit)
        "Medicamentos": (0.62, 38.0),
        "Perfumaria": (0.16, 64.0),
        "Higiene Pessoal": (0.22, 21.0),
    }
    rows: list[list[object]] = []
    for m in range(18):
        year, month = 2023 + (m + 6) // 12, (m + 6) % 12 + 1
        for store, (code, base) in stores.items():
            for category, (share, price) in categories.items():
                season = 1.0
                if category == "Perfumaria":
                    season = {5: 1.35, 12: 1.45}.get(month, 1.0)  # Dia das Mães, Natal
                revenue = base * share * (1 + 0.008 * m) * season
                revenue *= 1 + 0.12 * (wobble("farm", store, category, m) - 0.5)
                if store == "Sorocaba" and (year, month) == (2024, 9):
                    revenue *= 0.45  # the planted drop: the store closed 16 days for renovation
                revenue = round(revenue, 2)
                units = int(revenue / price * (1 + 0.1 * (wobble("un", store, category, m) - 0.5)))
                stock = int(units * (1.2 + 0.5 * wobble("estoque", store, category, m)))
                when = date(year, month, 1).strftime("%d/%m/%Y")
                rows.append([when, code, store, category, f"R$ {br_number(revenue)}", units, stock])
    header = ["mes_referencia", "cod_loja", "loja", "categoria", "faturamento"]
    return to_csv([*header, "unidades_vendidas", "estoque_final"], rows, ";")


def support_tickets_weekly() -> str:
    teams = {  # (team id, tickets a week, hours to resolve, growth a week)
        "Billing": (101, 120.0, 6.0, 0.0),
        "Technical": (102, 180.0, 14.0, 0.01),
        "Onboarding": (103, 90.0, 9.0, -0.015),
        "Enterprise": (104, 60.0, 22.0, 0.005),
    }
    channels = {"Email": 0.5, "Chat": 0.35, "Phone": 0.15}
    rows: list[list[object]] = []
    for week in range(26):
        monday = date(2024, 1, 1) + timedelta(weeks=week)
        for team, (team_id, volume, hours, growth) in teams.items():
            for channel, share in channels.items():
                opened = volume * share * (1 + growth * week)
                opened *= 1 + 0.2 * (wobble("opened", team, channel, week) - 0.5)
                if team == "Technical" and monday == date(2024, 4, 15):
                    opened *= 3  # the planted spike: a failed release flooded the queue
                opened = max(1, round(opened))
                resolved = round(opened * (0.9 + 0.12 * wobble("resolved", team, channel, week)))
                mean = hours * (1 + 0.3 * (wobble("hours", team, channel, week) - 0.5))
                rows.append(
                    [monday.isoformat(), team_id, team, channel, opened, resolved, f"{mean:.1f}"]
                )
    header = ["week_start", "team_id", "team", "channel", "tickets_opened", "tickets_resolved"]
    return to_csv([*header, "avg_resolution_hours"], rows)


# --- the fourth held-out set's datasets (holdout4.toml) ---------------------------------------


def academias_mensal() -> str:
    units = {  # (city, active members in December 2022)
        "Moinhos de Vento": ("Porto Alegre", 2400),
        "Boa Viagem": ("Recife", 2100),
        "Barra da Tijuca": ("Rio de Janeiro", 3100),
        "Asa Sul": ("Brasília", 1700),
        "Batel": ("Curitiba", 1500),
    }
    plans = {  # (share of members, sign-ups a month, cancellations a month, monthly fee)
        "Mensal": (0.5, 0.068, 0.060, 139.90),
        "Trimestral": (0.2, 0.042, 0.035, 119.90),
        "Anual": (0.3, 0.021, 0.015, 99.90),
    }
    signup_season = [1.5, 1.2, 1.1, 1.0, 0.95, 0.9, 0.9, 0.95, 1.0, 1.0, 0.9, 0.7]  # Jan..Dec
    rows: list[list[object]] = []
    active = {(u, p): base * spec[0] for u, (_, base) in units.items() for p, spec in plans.items()}
    for m in range(24):
        year, month = 2023 + m // 12, m % 12 + 1
        for unit, (city, _) in units.items():
            for plan, (_, join, leave, fee) in plans.items():
                before = active[unit, plan]
                joins = before * join * signup_season[month - 1]
                joins = round(joins * (1 + 0.2 * (wobble("matr", unit, plan, m) - 0.5)))
                leaves = before * leave * (1 + 0.2 * (wobble("canc", unit, plan, m) - 0.5))
                if unit == "Batel" and (year, month) == (2024, 3):
                    leaves *= 4  # the planted spike: a low-cost gym opened across the street
                leaves = round(leaves)
                active[unit, plan] = before + joins - leaves
                members = round(active[unit, plan])
                revenue = members * fee * (1 + 0.04 * (wobble("rec", unit, plan, m) - 0.5))
                when = date(year, month, 1).strftime("%d/%m/%Y")
                rows.append(
                    [when, city, unit, plan, members, joins, leaves, br_number(round(revenue, 2))]
                )
    header = ["competencia", "cidade", "unidade", "plano", "alunos_ativos", "matriculas"]
    return to_csv([*header, "cancelamentos", "receita"], rows, ";")


def marketing_funnel_daily() -> str:
    channels = {  # (channel id, sessions a day, add-to-cart rate, order rate of carts, spend)
        "Google Ads": (11, 5200.0, 0.082, 0.31, 1450.0),
        "Meta Ads": (12, 4100.0, 0.064, 0.27, 1180.0),
        "TikTok Ads": (13, 2600.0, 0.041, 0.22, 640.0),
        "Email": (14, 1300.0, 0.118, 0.38, 85.0),
        "Organic": (15, 3400.0, 0.071, 0.33, 0.0),
    }
    weekday = [1.0, 1.02, 1.0, 0.98, 0.95, 1.08, 1.12]  # Monday..Sunday
    order_value = 64.0
    rows: list[list[object]] = []
    for n in range(91):  # 2024-01-01..2024-03-31
        day = date(2024, 1, 1) + timedelta(days=n)
        for channel, (cid, volume, cart, conv, spend) in channels.items():
            sessions = volume * (1 + 0.003 * n) * weekday[day.weekday()]
            sessions = round(sessions * (1 + 0.12 * (wobble("sess", channel, n) - 0.5)))
            carts = round(sessions * cart * (1 + 0.16 * (wobble("cart", channel, n) - 0.5)))
            orders = round(carts * conv * (1 + 0.2 * (wobble("ord", channel, n) - 0.5)))
            revenue = orders * order_value * (1 + 0.1 * (wobble("aov", channel, n) - 0.5))
            cost = spend * (1 + 0.002 * n) * (1 + 0.1 * (wobble("spend", channel, n) - 0.5))
            if channel == "Meta Ads" and day == date(2024, 2, 14):
                cost *= 3.5  # the planted spike: a Valentine's budget typed with an extra digit
            rows.append(
                [day.isoformat(), cid, channel, sessions, carts, orders, f"{revenue:.2f}",
                 f"${cost:,.2f}"]
            )  # fmt: skip
    header = ["date", "channel_id", "channel", "sessions", "add_to_carts", "orders"]
    return to_csv([*header, "revenue_usd", "ad_spend_usd"], rows)


# --- the fifth held-out set's datasets (holdout5.toml) ----------------------------------------


def mensalidades_escolas() -> str:
    units = {  # (unit code, size, tuition factor, share of boletos paid late)
        "Tijuca": (301, 1.0, 1.0, 0.045),
        "Niterói": (302, 0.88, 1.05, 0.05),
        "Campo Grande": (303, 0.78, 0.78, 0.085),
        "Méier": (304, 0.6, 0.82, 0.07),
    }
    segments = {  # (students in Tijuca in 2023, monthly tuition in 2023)
        "Educação Infantil": (180, 1890.0),
        "Fundamental I": (320, 2150.0),
        "Fundamental II": (290, 2380.0),
        "Ensino Médio": (240, 2760.0),
    }
    joins = [0.09, 0.04, 0.006, 0.005, 0.004, 0.004, 0.015, 0.005, 0.004, 0.003, 0.002, 0.002]
    late_season = [1.5, 1.35, 1.1, 1.0, 1.0, 0.95, 1.0, 0.95, 0.95, 0.95, 1.0, 0.9]  # IPVA, IPTU
    rows: list[list[object]] = []
    for m in range(24):
        year, month = 2023 + m // 12, m % 12 + 1
        raise_ = 1.08 if year == 2024 else 1.0  # the yearly tuition readjustment in January
        for unit, (code, size, price, late) in units.items():
            for segment, (base, fee) in segments.items():
                students = base * size * (1.03 if year == 2024 else 1.0)
                students *= (1 - 0.003 * max(0, month - 2)) * (
                    1 + 0.04 * (wobble("al", unit, segment, m) - 0.5)
                )
                students = round(students)
                new = round(
                    students * joins[month - 1] * (0.8 + 0.4 * wobble("nm", unit, segment, m))
                )
                share = (
                    late
                    * late_season[month - 1]
                    * (1 + 0.3 * (wobble("atr", unit, segment, m) - 0.5))
                )
                if unit == "Campo Grande" and (year, month) == (2024, 8):
                    share *= 3.6  # the planted spike: the bank failed to register August's boletos
                overdue = round(students * share)
                tuition = fee * price * raise_
                billed = students * tuition * (1 - 0.06 * wobble("desc", unit, segment, m))
                received = billed - overdue * tuition * (
                    0.9 + 0.2 * wobble("rec", unit, segment, m)
                )
                when = date(year, month, 10).strftime("%d/%m/%Y")  # boletos are due on the 10th
                rows.append(
                    [when, code, unit, segment, students, new, students, overdue,
                     br_number(round(billed, 2)), br_number(round(received, 2))]
                )  # fmt: skip
    header = ["vencimento", "cod_unidade", "unidade", "segmento", "alunos_matriculados"]
    header += ["novas_matriculas", "boletos_emitidos", "boletos_em_atraso", "valor_faturado"]
    return to_csv([*header, "valor_recebido"], rows, ";")


def picking_waves() -> str:
    warehouses = {  # (order lines a day-shift wave, units per line, share of lines short)
        "DC Cajamar": (420.0, 2.3, 0.012),
        "DC Extrema": (300.0, 1.9, 0.009),
        "DC Jaboatão": (160.0, 2.6, 0.018),
    }
    weekday = [1.15, 1.05, 1.0, 1.0, 0.95, 1.25]  # Monday..Saturday (Saturday: day shift only)
    waves = {  # (shift, start hour, volume factor)
        "Day Shift": ((6, 1.0), (10, 1.0)),
        "Night Shift": ((18, 0.8), (22, 0.8)),
    }
    rows: list[list[object]] = []
    wave_id = 880001
    day, n = date(2024, 10, 1), 0
    while day < date(2024, 12, 1):
        if day.weekday() < 6:
            black_friday = 1.45 if date(2024, 11, 25) <= day <= date(2024, 11, 30) else 1.0
            for warehouse, (volume, per_line, short) in warehouses.items():
                for shift, starts in waves.items():
                    if shift == "Night Shift" and day.weekday() == 5:
                        continue
                    for hour, factor in starts:
                        key = (warehouse, day.isoformat(), hour)
                        lines = volume * factor * (1 + 0.003 * n) * weekday[day.weekday()]
                        lines = round(
                            lines * black_friday * (1 + 0.16 * (wobble("ln", *key) - 0.5))
                        )
                        units = round(lines * per_line * (1 + 0.1 * (wobble("un", *key) - 0.5)))
                        pickers = max(2, round(lines / 38))
                        rate = short * (1 + 0.5 * (wobble("sp", *key) - 0.5))
                        if warehouse == "DC Extrema" and day == date(2024, 11, 12):
                            rate *= 5.5  # the planted spike: an inbound put away in the wrong bins
                        shorts = round(lines * rate)
                        minutes = lines / pickers * (4.1 + 0.8 * wobble("min", *key))
                        started = datetime(day.year, day.month, day.day, hour, 0)
                        started += timedelta(minutes=round(15 * wobble("st", *key)))
                        finished = started + timedelta(minutes=round(minutes))
                        backlog = round(lines * black_friday * (0.2 + 0.25 * wobble("bk", *key)))
                        rows.append(
                            [wave_id, started.isoformat(), finished.isoformat(), warehouse, shift,
                             pickers, lines, units, shorts, backlog]
                        )  # fmt: skip
                        wave_id += 1
            n += 1
        day += timedelta(days=1)
    header = ["wave_id", "started_at", "finished_at", "warehouse", "shift", "pickers"]
    return to_csv([*header, "order_lines", "units_picked", "short_picks", "backlog_lines"], rows)


# --- the sixth held-out set's datasets (holdout6.toml) ----------------------------------------


def ocupacao_hoteis() -> str:
    hotels = {  # (code, city, segment, rooms, occupancy, daily rate, weekday factors Mon..Sun)
        "Copacabana Mar Hotel": (2101, "Rio de Janeiro", "Lazer", 120, 0.74, 520.0,
                                 (0.9, 0.88, 0.9, 0.95, 1.12, 1.2, 1.0)),
        "Paulista Business": (2102, "São Paulo", "Corporativo", 160, 0.78, 410.0,
                              (1.12, 1.18, 1.18, 1.12, 0.95, 0.66, 0.64)),
        "Resort Praia do Forte": (2103, "Mata de São João", "Lazer", 90, 0.7, 980.0,
                                  (0.88, 0.86, 0.9, 0.96, 1.12, 1.22, 1.02)),
        "Pousada Serra Azul": (2104, "Gramado", "Lazer", 28, 0.66, 690.0,
                               (0.8, 0.78, 0.82, 0.92, 1.2, 1.32, 1.0)),
    }  # fmt: skip
    # leisure high season: January (summer holidays) and July; June is Gramado's winter
    leisure = [1.18, 1.05, 0.95, 0.97, 0.9, 0.96]  # Jan..Jun
    rows: list[list[object]] = []
    day = date(2024, 1, 1)
    while day <= date(2024, 6, 30):
        for hotel, (code, city, segment, rooms, occ, rate, week) in hotels.items():
            key = (hotel, day.isoformat())
            season = leisure[day.month - 1] if segment == "Lazer" else 1.0
            if hotel == "Pousada Serra Azul" and day.month == 6:
                season = 1.12  # Gramado's winter festival season
            price = rate * (1.08 if season > 1.1 else 1.0)
            if hotel == "Copacabana Mar Hotel" and date(2024, 2, 9) <= day <= date(2024, 2, 13):
                season, price = 1.3, rate * 1.22  # Carnaval: full house and a higher rate
            available = rooms - (2 if wobble("ooo", *key) < 0.1 else 0)  # rooms out of order
            share = occ * week[day.weekday()] * season * (1 + 0.12 * (wobble("occ", *key) - 0.5))
            sold = min(available, round(available * share))
            revenue = sold * price * (1 + 0.1 * (wobble("adr", *key) - 0.5))
            guests = round(sold * (1.6 + 0.5 * wobble("hosp", *key)))
            cancelled = round(sold * (0.03 + 0.04 * wobble("canc", *key)))
            if hotel == "Resort Praia do Forte" and day == date(2024, 3, 19):
                cancelled = 31  # the planted spike: a tour operator cancelled its Easter block
            rows.append(
                [day.strftime("%d/%m/%Y"), code, hotel, city, segment, available, sold,
                 br_number(100 * sold / available), br_number(round(revenue, 2)), guests,
                 cancelled]
            )  # fmt: skip
        day += timedelta(days=1)
    header = ["data", "cod_hotel", "hotel", "cidade", "segmento", "quartos_disponiveis"]
    header += ["quartos_ocupados", "taxa_ocupacao", "receita_hospedagem", "hospedes"]
    return to_csv([*header, "cancelamentos"], rows, ";")


def calls_hourly() -> str:
    queues = {  # (queue id, calls an hour, share abandoned, seconds to answer, sales a call)
        "Q01 Vendas": (401, 34.0, 0.05, 38.0, 61.0),
        "Q02 Suporte Técnico": (402, 46.0, 0.07, 64.0, 0.0),
        "Q03 Cobrança": (403, 28.0, 0.06, 52.0, 0.0),
        "Q04 Retenção": (404, 15.0, 0.04, 29.0, 18.0),
    }
    weekday = [1.3, 1.08, 1.0, 0.98, 0.92, 0.8]  # Monday..Saturday
    hourly = {8: 0.7, 9: 1.05, 10: 1.25, 11: 1.2, 12: 0.8, 13: 0.85, 14: 1.15, 15: 1.2}
    hourly |= {16: 1.05, 17: 0.9, 18: 0.65}
    rows: list[list[object]] = []
    day = date(2024, 9, 2)
    while day <= date(2024, 10, 12):
        if day.weekday() < 6:
            hours = range(8, 19) if day.weekday() < 5 else range(8, 14)  # Saturday: mornings
            for hour in hours:
                for queue, (qid, volume, abandon, wait, sales) in queues.items():
                    key = (queue, day.isoformat(), hour)
                    offered = volume * weekday[day.weekday()] * hourly[hour]
                    offered = round(offered * (1 + 0.2 * (wobble("off", *key) - 0.5)))
                    agents = max(2, round(offered / 5.5 * (1 + 0.1 * (wobble("ag", *key) - 0.5))))
                    share = abandon * (1 + 0.4 * (wobble("ab", *key) - 0.5))
                    seconds = wait * (1 + 0.3 * (wobble("wt", *key) - 0.5))
                    if queue == "Q03 Cobrança" and day == date(2024, 9, 18):
                        # the planted spike: a login failure kept half the agents out all day
                        agents, share, seconds = max(2, agents // 2), share * 5, seconds * 4.2
                    abandoned = round(offered * share)
                    answered = offered - abandoned
                    level = min(99.0, 100 * (0.95 - seconds / 400))
                    level *= 1 + 0.04 * (wobble("sl", *key) - 0.5)
                    revenue = answered * sales * (1 + 0.3 * (wobble("rv", *key) - 0.5))
                    rows.append(
                        [day.isoformat(), hour, qid, queue, offered, answered, abandoned,
                         round(seconds), f"{level:.1f}", agents, f"{revenue:.2f}"]
                    )  # fmt: skip
        day += timedelta(days=1)
    header = ["date", "hour", "queue_id", "queue", "calls_offered", "calls_answered"]
    header += ["calls_abandoned", "avg_wait_sec", "service_level_pct", "agents_logged"]
    return to_csv([*header, "sales_brl"], rows)


# --- the seventh held-out set's datasets (holdout7.toml) --------------------------------------


def locadora_frota() -> str:
    agencies = {  # (UF, size, km a rental day, season by month Jan..Dec)
        "Guarulhos Aeroporto": ("SP", 1.6, 175.0, (1.0,) * 12),
        "Confins Aeroporto": ("MG", 1.0, 190.0, (1.0,) * 12),
        "Curitiba Centro": ("PR", 0.7, 150.0, (1.0,) * 12),
        "Florianópolis Aeroporto": ("SC", 0.9, 160.0, (1.3, 1.2, 0.95, 0.9, 0.88, 0.9, 1.05,
                                                       0.95, 0.9, 0.92, 0.98, 1.22)),
    }  # fmt: skip
    groups = {  # (rentals a month at size 1, rental days a rental, daily rate, cancellation share)
        "Econômico": (180.0, 4.2, 129.0, 0.08),
        "Intermediário": (110.0, 4.5, 169.0, 0.07),
        "SUV": (60.0, 5.5, 259.0, 0.06),
        "Executivo": (25.0, 3.2, 389.0, 0.1),
    }
    rows: list[list[object]] = []
    for month in range(1, 13):
        days = (date(2024 + month // 12, month % 12 + 1, 1) - date(2024, month, 1)).days
        for agency, (uf, size, km, season) in agencies.items():
            for group, (volume, length, rate, cancel) in groups.items():
                key = (agency, group, month)
                growth = 1.05 ** (month - 1) if group == "SUV" else 1.0  # SUV grows every month
                base = volume * size * growth
                rentals = base * season[month - 1] * (1 + 0.1 * (wobble("loc", *key) - 0.5))
                if agency == "Curitiba Centro" and month == 5:
                    rentals *= 0.45  # the planted drop: the agency closed half of May for works
                rentals = round(rentals)
                stay = length * (1.25 if agency.startswith("Florian") else 1.0)
                rental_days = round(rentals * stay * (1 + 0.08 * (wobble("dia", *key) - 0.5)))
                # the fleet is sized for the group's normal month (a stock, never summed)
                fleet = round(base * stay / (30 * 0.72) * (1 + 0.06 * (wobble("frt", *key) - 0.5)))
                fleet = max(fleet, -(-rental_days // days) + 1)
                cancelled = round(rentals * cancel * (1 + 0.3 * (wobble("cnc", *key) - 0.5)))
                if agency == "Confins Aeroporto" and month == 8:
                    cancelled *= 4  # the planted spike: a mining company cancelled its block
                revenue = rental_days * rate * (1 + 0.06 * (wobble("rec", *key) - 0.5))
                driven = round(rental_days * km * (1 + 0.1 * (wobble("km", *key) - 0.5)))
                rows.append(
                    [f"{month:02d}/2024", agency, uf, group, fleet, rentals + cancelled,
                     cancelled, rentals, rental_days, f"{driven:,}".replace(",", "."),
                     "R$ " + br_number(round(revenue, 2))]
                )  # fmt: skip
    header = ["competencia", "agencia", "uf", "grupo", "frota", "reservas", "cancelamentos"]
    return to_csv([*header, "locacoes", "diarias", "km_rodados", "receita"], rows, ";")


def solar_projects() -> str:
    states = {"SP": 0.34, "MG": 0.24, "GO": 0.16, "BA": 0.14, "PR": 0.12}
    segments = {  # (projects a month, kWp, price per Wp, financed share, install days)
        "Residential": (20.0, 6.5, 4.1, 0.7, 38.0),
        "Commercial": (6.0, 42.0, 3.4, 0.45, 62.0),
        "Agribusiness": (5.0, 95.0, 3.1, 0.8, 75.0),
    }
    rows: list[list[object]] = []
    project = 24001
    for month in range(1, 13):
        days = (date(2024 + month // 12, month % 12 + 1, 1) - date(2024, month, 1)).days
        for segment, (volume, kwp, price, financed, install) in segments.items():
            count = volume * (1 + 0.16 * (wobble("n", segment, month) - 0.5))
            if segment == "Commercial":
                count *= 1 + 0.06 * (month - 1)  # the segment that grew: 1.66 times by December
            if segment == "Agribusiness" and month == 4:
                count *= 3.6  # the planted spike: a rural credit line (Pronaf) opened in April
            if segment == "Residential" and month == 7:
                count *= 0.4  # the planted drop: the partner bank suspended its solar financing
            for i in range(round(count)):
                key = (segment, month, i)
                signed = date(2024, month, 1 + int(wobble("day", *key) * days))
                pick = wobble("st", *key)
                state = next(s for s, c in _cumulative(states) if pick < c)
                size = round(kwp * (0.6 + 0.8 * wobble("kwp", *key)), 2)
                modules = -(-round(size * 1000) // 545)  # 545 W modules
                value = round(size * 1000 * price * (1 + 0.12 * (wobble("val", *key) - 0.5)), 2)
                is_financed = "Yes" if wobble("fin", *key) < financed else "No"
                left = (date(2024, 12, 31) - signed).days
                takes = round(install * (0.6 + 0.8 * wobble("ins", *key)))
                if wobble("cnc", *key) < (0.18 if (segment, month) == ("Residential", 7) else 0.06):
                    status, took = "Cancelled", ""
                elif takes > left:
                    status, took = "In Progress", ""
                else:
                    status, took = "Installed", str(takes)
                rows.append(
                    [project, signed.isoformat(), state, segment, f"{size:.2f}", modules,
                     f"{value:.2f}", is_financed, status, took]
                )  # fmt: skip
                project += 1
    rows.sort(key=lambda r: (str(r[1]), int(str(r[0]))))
    header = ["project_id", "signed_date", "state", "segment", "system_kwp", "modules"]
    return to_csv([*header, "contract_value_brl", "financed", "status", "install_days"], rows)


# --- the eighth held-out set's datasets (holdout8.toml) ---------------------------------------


def cooperativa_graos() -> str:
    producers = {  # (município, size)
        "Fazenda Santa Rita": ("Toledo", 1.3),
        "Sítio Boa Esperança": ("Toledo", 0.7),
        "Agropecuária Três Irmãos": ("Cascavel", 1.5),
        "Fazenda São José": ("Cascavel", 1.0),
        "Sítio Recanto Verde": ("Palotina", 0.8),
        "Fazenda Kowalski": ("Palotina", 1.2),
    }
    grains = {  # (loads a month, growth a month, sack prices by month, moisture, sold ahead)
        "Soja": (5.0, 1.0, (126.0, 122.0, 119.0, 121.0, 124.0, 127.0), 14.0, 0.35),
        "Milho": (1.5, 1.22, (58.0, 56.5, 55.0, 56.0, 57.5, 59.0), 16.0, 0.2),
        "Feijão": (0.8, 1.0, (242.0, 248.0, 251.0, 246.0, 240.0, 244.0), 13.5, 0.1),
    }
    rows: list[list[object]] = []
    for month in range(1, 7):
        days = (date(2024, month + 1, 1) - date(2024, month, 1)).days
        open_days = [
            d
            for d in range(1, days + 1)
            if date(2024, month, d).weekday() != 6 and (month, d) != (1, 1)  # Sundays, 1 Jan
        ]
        for producer, (town, size) in producers.items():
            for grain, (volume, growth, prices, moisture, forward) in grains.items():
                key = (producer, grain, month)
                loads = volume * size * growth ** (month - 1)
                loads *= 1 + 0.3 * (wobble("n", *key) - 0.5)
                if producer == "Fazenda Santa Rita" and month == 3:
                    loads *= 3.5  # the planted spike: the farm's newly leased area was harvested
                if town == "Palotina" and month == 5:
                    loads *= 0.35  # the planted drop: the PR-182 bridge closed for three weeks
                for i in range(round(loads)):
                    load = (*key, i)
                    day = date(2024, month, open_days[int(wobble("d", *load) * len(open_days))])
                    kg = round(27000 + 10000 * wobble("kg", *load))
                    sacks = round(kg / 60, 2)
                    wet = round(moisture + 3 * (wobble("u", *load) - 0.5), 1)
                    price = round(prices[month - 1] * (1 + 0.02 * (wobble("p", *load) - 0.5)), 2)
                    sold = "Sim" if wobble("f", *load) < forward else "Não"
                    rows.append(
                        [day, producer, town, grain, f"{kg:,}".replace(",", "."),
                         br_number(sacks), f"{wet:.1f}".replace(".", ","), br_number(price),
                         br_number(round(sacks * price, 2)), sold]
                    )  # fmt: skip
    rows.sort(key=lambda r: (r[0], str(r[1]), str(r[3]), str(r[4])))
    out = [
        [10001 + n, row[0].strftime("%d/%m/%y"), *row[1:]]  # type: ignore[attr-defined]
        for n, row in enumerate(rows)
    ]
    header = ["romaneio", "data_entrega", "produtor", "município", "grão", "peso_líquido_kg"]
    return to_csv([*header, "sacas", "umidade_%", "preço_saca", "valor_total", "venda_antecipada"],
                  out, ";")  # fmt: skip


def coworking_daily() -> str:
    locations = {  # (id, hot desks, meeting rooms, hot desk use, day pass price)
        "Austin Downtown": (301, 60, 8, 0.75, 29.0),
        "Brooklyn Navy Yard": (302, 80, 10, 0.7, 35.0),
        "Denver LoDo": (303, 40, 5, 0.5, 25.0),
        "Seattle SLU": (304, 50, 6, 0.65, 32.0),
    }
    week = (0.95, 1.1, 1.15, 1.05, 0.78)  # Mon..Fri
    rows: list[list[object]] = []
    day = date(2024, 1, 2)
    while day <= date(2024, 4, 30):
        if day.weekday() < 5:
            for location, (code, desks, rooms, use, price) in locations.items():
                for space in ("Hot Desk", "Meeting Room"):
                    key = (location, space, day.isoformat())
                    if space == "Hot Desk":
                        if location == "Denver LoDo" and day >= date(2024, 3, 1):
                            desks = 55  # fifteen desks added in March (a stock: capacity)
                        units = desks
                        demand = 40 * use if location == "Denver LoDo" else desks * use
                        if location == "Denver LoDo":
                            demand *= 1.02 ** ((day - date(2024, 1, 1)).days // 7)  # ramping up
                        length = 6.5
                    else:
                        units, demand, length = rooms, rooms * 1.8, 1.5
                    demand *= week[day.weekday()] * (1 + 0.16 * (wobble("b", *key) - 0.5))
                    spike = (location, space, day) == (
                        "Austin Downtown",
                        "Meeting Room",
                        date(2024, 3, 12),
                    )
                    if spike:
                        demand *= 3.0  # the planted spike: SXSW week's meetings
                    if location == "Seattle SLU" and day == date(2024, 2, 21):
                        demand *= 0.18  # the planted drop: a power outage closed the building
                    bookings = round(demand)
                    capacity = units * 10  # open 8h to 18h
                    hours = min(capacity, bookings * length * (1 + 0.1 * (wobble("h", *key) - 0.5)))
                    no_shows = round(bookings * 0.07 * (0.7 + 0.6 * wobble("ns", *key)))
                    if space == "Hot Desk":
                        revenue = bookings * price * (1 + 0.06 * (wobble("r", *key) - 0.5))
                    else:
                        revenue = hours * 45.0 * (1 + 0.06 * (wobble("r", *key) - 0.5))
                    rows.append(
                        [day.strftime("%m/%d/%Y"), code, location, space, capacity, bookings,
                         f"{hours:.1f}", no_shows, f"{revenue:.2f}"]
                    )  # fmt: skip
        day += timedelta(days=1)
    header = ["date", "location_id", "location", "space_type", "capacity_hours", "bookings"]
    return to_csv([*header, "booked_hours", "no_shows", "revenue_usd"], rows)


# --- the ninth held-out set's datasets (holdout9.toml) ----------------------------------------


def veterinaria_diaria() -> str:
    units = {  # cód_unidade: (unidade, cidade, size, ticket of a consultation)
        11: ("Moema", "São Paulo", 1.3, 210.0),
        12: ("Pinheiros", "São Paulo", 1.1, 195.0),
        21: ("Campinas Cambuí", "Campinas", 1.0, 170.0),
        31: ("Alphaville", "Barueri", 0.55, 230.0),
    }
    week = (1.1, 1.0, 1.0, 0.95, 1.05, 0.6)  # Mon..Sat (Saturday mornings only)
    holidays = {date(2024, 2, 12), date(2024, 2, 13), date(2024, 3, 29), date(2024, 5, 1),
                date(2024, 5, 30)}  # fmt: skip
    rows: list[list[object]] = []
    day = date(2024, 1, 2)
    while day <= date(2024, 6, 29):
        if day.weekday() < 6:
            for code, (unit, city, size, ticket) in units.items():
                key = (code, day.isoformat())
                if unit == "Alphaville":
                    size *= 1.08 ** (day.month - 1)  # opened in December: filling up
                demand = 30 * size * week[day.weekday()] * (1 + 0.2 * (wobble("c", *key) - 0.5))
                holiday = day in holidays
                if holiday:
                    demand *= 0.6  # on call only
                if unit == "Campinas Cambuí" and day.month == 3:
                    demand *= 0.4  # the planted drop: half the rooms closed for renovation
                booked = round(demand * 1.12)
                missed = round(booked * (0.08 + 0.06 * wobble("f", *key)))
                seen = booked - missed
                vaccines = round(seen * (0.25 + 0.2 * wobble("v", *key)))
                if (unit, day) == ("Moema", date(2024, 4, 20)):
                    vaccines *= 4  # the planted spike: the rabies vaccination Dia D
                surgeries = round(2.5 * size * (day.weekday() < 5) * (0.5 + wobble("s", *key)))
                if unit == "Campinas Cambuí" and day.month == 3:
                    surgeries = round(surgeries * 0.4)
                inpatients = round(4 * size + 3 * wobble("i", *key))
                billed = seen * ticket + vaccines * 95.0 + surgeries * 1250.0
                billed *= 1 + 0.06 * (wobble("r", *key) - 0.5)
                rows.append(
                    [day.strftime("%d/%m/%Y"), code, unit, city, booked, missed, seen, vaccines,
                     surgeries, inpatients, "Sim" if holiday else "Não", f"R$ {br_number(billed)}"]
                )  # fmt: skip
        day += timedelta(days=1)
    header = ["data", "cód_unidade", "unidade", "cidade", "agendamentos", "faltas", "consultas"]
    return to_csv([*header, "vacinações", "cirurgias", "internados", "feriado", "faturamento"],
                  rows, ";")  # fmt: skip


def bakery_monthly() -> str:
    stores = {  # store_no: (store, state, size)
        101: ("Pearl District", "OR", 1.2),
        102: ("Ballard", "WA", 1.0),
        103: ("Capitol Hill", "WA", 1.1),
        104: ("Boise Downtown", "ID", 0.8),
        105: ("Spokane South Hill", "WA", 0.7),
    }
    lines = {  # (units a month, price, waste over units sold, menu items, season by month)
        "Bread": (4200.0, 5.5, 0.08, 12, (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1.1, 1.12)),
        "Pastries": (3600.0, 4.25, 0.12, 18, (1, 1, 1, 1, 1, 1, 0.95, 0.95, 1, 1, 1.05, 1.15)),
        "Cakes": (450.0, 38.0, 0.05, 9, (0.95, 1.15, 1, 1, 1.05, 1, 0.9, 0.9, 1, 1, 1.1, 1.4)),
        "Sandwiches": (900.0, 9.5, 0.1, 6, (1,) * 12),
    }
    rows: list[list[object]] = []
    for month in range(1, 13):
        end = (date(2024, month + 1, 1) if month < 12 else date(2025, 1, 1)) - timedelta(days=1)
        for code, (store, state, size) in stores.items():
            for line, (volume, price, waste, items, season) in lines.items():
                key = (code, line, month)
                units = volume * size * season[month - 1] * (1 + 0.12 * (wobble("u", *key) - 0.5))
                if line == "Sandwiches":
                    units *= 1.07 ** (month - 1)  # the lunch menu catching on: 2.1x by December
                promo = wobble("p", *key) < 0.25
                if promo:
                    units *= 1.1
                if (store, line, month) == ("Boise Downtown", "Cakes", 5):
                    units *= 3.2  # the planted spike: graduation-season catering orders
                if store == "Ballard" and month == 8:
                    units *= 0.35  # the planted drop: the avenue closed for a water main
                sold = round(units)
                baked = round(sold * (1 + waste * (0.7 + 0.6 * wobble("w", *key))))
                sales = (
                    sold * price * (0.9 if promo else 1.0) * (1 + 0.04 * (wobble("s", *key) - 0.5))
                )
                menu = items + round(2 * wobble("m", *key)) - 1
                rows.append(
                    [end.isoformat(), code, store, state, line, baked, sold, baked - sold,
                     f"{sales:.2f}", "Yes" if promo else "No", menu]
                )  # fmt: skip
    header = ["month_end", "store_no", "store", "state", "product_line", "units_baked"]
    return to_csv([*header, "units_sold", "units_wasted", "net_sales_usd", "promo", "menu_items"],
                  rows)  # fmt: skip


# --- the tenth held-out set's datasets (holdout10.toml) ---------------------------------------


def postos_combustivel() -> str:
    stations = {  # cód_posto: (posto, cidade, size)
        4101: ("Centro", "Curitiba", 1.0),
        4102: ("Água Verde", "Curitiba", 0.8),
        4103: ("Rodovia BR-277", "Campo Largo", 1.3),
    }
    fuels = {  # combustível: (litres a day, price a litre, litres a fill-up, tank, week Mon..Sun)
        "Gasolina Comum": (5200.0, 5.89, 32.0, 30000, (0.95, 0.95, 1.0, 1.0, 1.2, 1.1, 0.8)),
        "Etanol": (2600.0, 3.99, 30.0, 20000, (0.95, 0.95, 1.0, 1.0, 1.2, 1.1, 0.8)),
        "Diesel S10": (9000.0, 5.99, 180.0, 60000, (1.05, 1.05, 1.05, 1.05, 1.05, 0.8, 0.6)),
    }
    rows: list[list[object]] = []
    day = date(2024, 1, 1)
    while day <= date(2024, 4, 14):
        for code, (station, city, size) in stations.items():
            for fuel, (volume, price, fill, tank, week) in fuels.items():
                if fuel == "Diesel S10" and station != "Rodovia BR-277":
                    continue
                key = (code, fuel, day.isoformat())
                litres = (
                    volume * size * week[day.weekday()] * (1 + 0.16 * (wobble("l", *key) - 0.5))
                )
                if fuel == "Etanol":
                    litres *= 1.03 ** ((day - date(2024, 1, 1)).days / 7)  # cheaper than petrol
                promo = wobble("p", *key) < 0.15
                unit_price = round(price * (1 + 0.02 * (wobble("pr", *key) - 0.5)), 2)
                if promo:
                    litres *= 1.1
                    unit_price = round(unit_price - 0.2, 2)
                if (station, fuel, day) == ("Rodovia BR-277", "Diesel S10", date(2024, 3, 20)):
                    litres *= 3.2  # the planted spike: a harvest convoy of trucks
                if station == "Centro" and date(2024, 2, 19) <= day <= date(2024, 2, 25):
                    litres *= 0.3  # the planted drop: the street dug up for a sewer main
                fills = max(1, round(litres / (fill * (0.9 + 0.2 * wobble("f", *key)))))
                stock = round(tank * (0.25 + 0.6 * wobble("e", *key)))
                revenue = round(litres, 2) * unit_price
                rows.append(
                    [day.strftime("%d/%m/%Y"), code, station, city, fuel, br_number(litres),
                     f"R$ {br_number(unit_price)}", f"R$ {br_number(revenue)}",
                     fills, stock, "Sim" if promo else "Não"]
                )  # fmt: skip
        day += timedelta(days=1)
    header = ["data", "cód_posto", "posto", "cidade", "combustível", "litros_vendidos"]
    return to_csv([*header, "preço_litro", "faturamento", "abastecimentos", "estoque_tanque_l",
                   "promoção"], rows, ";")  # fmt: skip


def rides_weekly() -> str:
    cities = {  # city_id: (city, state, size)
        201: ("Nashville", "TN", 1.0),
        202: ("Phoenix", "AZ", 1.3),
        203: ("Charlotte", "NC", 0.9),
        204: ("Salt Lake City", "UT", 0.5),
        205: ("Tampa", "FL", 0.85),
    }
    services = {  # service: (trips requested a week, fare, miles a trip, trips a driver)
        "Standard": (9000.0, 16.5, 6.2, 42.0),
        "XL": (1400.0, 27.0, 7.5, 30.0),
    }
    rows: list[list[object]] = []
    for index in range(39):
        start = date(2024, 1, 1) + timedelta(weeks=index)
        for code, (city, state, size) in cities.items():
            for service, (volume, fare, miles, per_driver) in services.items():
                key = (code, service, start.isoformat())
                requested = volume * size * (1 + 0.1 * (wobble("t", *key) - 0.5))
                if city == "Salt Lake City":
                    requested *= 1.022**index  # launched in December 2023: filling up
                if city == "Phoenix" and start.month in (7, 8):
                    requested *= 0.92  # the heat
                surge = wobble("s", *key) < 0.3
                if (city, start) == ("Nashville", date(2024, 6, 3)):
                    requested *= 2.8  # the planted spike: CMA Fest
                    surge = True
                if (city, start) == ("Tampa", date(2024, 8, 5)):
                    requested *= 0.3  # the planted drop: Hurricane Debby
                booked = round(requested)
                cancelled = round(booked * (0.08 + 0.04 * wobble("c", *key)))
                completed = booked - cancelled
                gross = completed * fare * (1 + 0.08 * (wobble("g", *key) - 0.5))
                gross *= 1.15 if surge else 1.0
                distance = completed * miles * (1 + 0.1 * (wobble("m", *key) - 0.5))
                drivers = round(booked / per_driver * (0.9 + 0.2 * wobble("d", *key)))
                rows.append(
                    [start.isoformat(), code, city, state, service, booked, completed, cancelled,
                     f"{gross:.2f}", f"{distance:.1f}", drivers, "Yes" if surge else "No"]
                )  # fmt: skip
    header = ["week_start", "city_id", "city", "state", "service", "trips_requested"]
    return to_csv([*header, "trips_completed", "trips_cancelled", "gross_bookings_usd",
                   "total_miles", "active_drivers", "surge"], rows)  # fmt: skip


# --- the eleventh held-out set's datasets (holdout11.toml) -------------------------------------

MESES = ("jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez")


def os_concessionaria_agricola() -> str:
    branches = {  # cód_filial: (filial, uf, size)
        510: ("Rio Verde", "GO", 1.2),
        520: ("Sorriso", "MT", 1.4),
        530: ("Luís Eduardo Magalhães", "BA", 1.0),
        540: ("Cascavel", "PR", 0.8),
    }
    services = {  # (orders a month, hours an order, parts an order, R$ an hour, days, technicians)
        "Revisão Preventiva": (60.0, 6.0, 1800.0, 185.0, 2.0, 6),
        "Manutenção Corretiva": (45.0, 14.0, 6500.0, 210.0, 5.5, 8),
        "Garantia": (15.0, 10.0, 4000.0, 160.0, 7.0, 2),
        "Agricultura de Precisão": (8.0, 5.0, 9000.0, 240.0, 1.5, 2),
    }
    season = {  # by month: corrective work at the soy and corn harvests, revisions before planting
        "Manutenção Corretiva": (1.0, 1.2, 1.2, 1.0, 1.0, 1.15, 1.15, 0.95, 0.9, 0.95, 1.0, 0.9),
        "Revisão Preventiva": (0.95, 0.9, 0.9, 1.0, 1.05, 1.0, 1.05, 1.25, 1.25, 1.0, 0.95, 0.85),
    }
    rows: list[list[object]] = []
    for index in range(16):  # jan/23 .. abr/24
        year, month = 2023 + index // 12, index % 12 + 1
        for code, (branch, state, size) in branches.items():
            for service, (volume, hours, parts, rate, days, techs) in services.items():
                key = (code, service, year, month)
                opened = volume * size * season.get(service, (1.0,) * 12)[month - 1]
                opened *= 1 + 0.16 * (wobble("a", *key) - 0.5)
                if service == "Agricultura de Precisão":
                    opened *= 1.06**index  # autopilots and yield monitors catching on
                    techs += index // 5
                if (branch, service, year, month) == ("Sorriso", "Garantia", 2024, 2):
                    opened *= 3.6  # the planted spike: a factory recall of harvester bearings
                if (branch, year, month) == ("Luís Eduardo Magalhães", 2023, 10):
                    opened *= 0.4  # the planted drop: the workshop closed after a fire
                done = round(round(opened) * (0.88 + 0.14 * wobble("c", *key)))
                worked = done * hours * (1 + 0.2 * (wobble("h", *key) - 0.5))
                labour = worked * rate * (1 + 0.04 * (wobble("r", *key) - 0.5))
                spare = done * parts * (1 + 0.3 * (wobble("p", *key) - 0.5))
                staff = round(techs * size + wobble("t", *key) - 0.3)
                repair = round(days * (1 + 0.2 * (wobble("d", *key) - 0.5)), 1)
                rows.append(
                    [f"{MESES[month - 1]}/{year % 100}", code, branch, state, service,
                     round(opened), done, br_number(worked, 1), f"R$ {br_number(spare)}",
                     f"R$ {br_number(labour)}", staff, f"{repair:.1f}".replace(".", ",")]
                )  # fmt: skip
    header = ["competência", "cód_filial", "filial", "uf", "tipo_serviço", "os_abertas"]
    return to_csv([*header, "os_concluídas", "horas_técnicas", "valor_peças", "valor_mão_de_obra",
                   "técnicos", "tempo_médio_reparo_dias"], rows, ";")  # fmt: skip


def substation_energy_monthly() -> str:
    substations = {  # substation_id: (substation, county, size)
        7101: ("Riverside", "Travis", 1.2),
        7102: ("North Hills", "Williamson", 1.0),
        7103: ("Cedar Park", "Williamson", 0.6),
        7104: ("Bastrop East", "Bastrop", 0.8),
        7105: ("San Marcos South", "Hays", 0.9),
    }
    classes = {  # (customers, MWh a customer a month, $ a kWh, $ a customer, load factor)
        "Residential": (9000, 0.9, 0.14, 10.0, 0.45),
        "Commercial": (1100, 6.5, 0.115, 35.0, 0.6),
        "Industrial": (40, 180.0, 0.085, 400.0, 0.8),
    }
    season = {  # by month: air conditioning in the Texas summer, heating in January
        "Residential": (1.15, 1.05, 0.95, 0.9, 1.0, 1.2, 1.38, 1.4, 1.2, 0.95, 0.9, 1.05),
        "Commercial": (1.0, 1.0, 0.95, 0.95, 1.0, 1.1, 1.15, 1.15, 1.1, 1.0, 0.95, 1.0),
    }
    rows: list[list[object]] = []
    for index in range(23):  # 2023-01 .. 2024-11
        year, month = 2023 + index // 12, index % 12 + 1
        for code, (substation, county, size) in substations.items():
            for name, (count, usage, price, fixed, load) in classes.items():
                key = (code, name, year, month)
                customers = count * size * (1 + 0.002 * index)
                if substation == "Cedar Park":
                    customers *= 1.025**index  # new subdivisions: the substation that grew
                customers = round(customers * (1 + 0.01 * (wobble("n", *key) - 0.5)))
                energy = customers * usage * season.get(name, (1.0,) * 12)[month - 1]
                energy *= 1 + 0.1 * (wobble("e", *key) - 0.5)
                events = round(4 * size * wobble("o", *key) + 0.3)
                if (substation, name, year, month) == ("Bastrop East", "Industrial", 2024, 3):
                    energy *= 2.8  # the planted spike: the sand plant's own generator overhauled
                if (substation, year, month) == ("San Marcos South", 2024, 4):
                    energy *= 0.35  # the planted drop: a transformer fire, load shed for weeks
                    events *= 6
                peak = energy / (730 * load) * (1 + 0.1 * (wobble("k", *key) - 0.5))
                billed = energy * 1000 * price * (1 + 0.02 * (wobble("b", *key) - 0.5))
                billed += customers * fixed
                rows.append(
                    [f"{year}-{month:02d}", code, substation, county, name, customers,
                     f"{energy:.1f}", f"{peak:.2f}", f"{billed:.2f}", events]
                )  # fmt: skip
    header = ["month", "substation_id", "substation", "county", "customer_class", "customers"]
    return to_csv([*header, "energy_mwh", "peak_mw", "billed_usd", "outage_events"], rows)


# --- the twelfth held-out set's datasets (holdout12.toml) --------------------------------------

MESES_EXTENSO = ("janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto",
                 "setembro", "outubro", "novembro", "dezembro")  # fmt: skip


def carteira_credito_cooperativa() -> str:
    branches = {  # cód_agência (text, a leading zero): (agência, size)
        "0101": ("Chapecó Centro", 1.4),
        "0102": ("Xanxerê", 0.9),
        "0103": ("Concórdia", 1.1),
        "0104": ("Joaçaba", 0.8),
        "0105": ("São Miguel do Oeste", 0.7),
    }
    products = {  # (contracts a month, R$ a contract, % a month, amortised a month, % overdue)
        "Crédito Rural": (14.0, 85000.0, 0.95, 0.035, 1.5),
        "Consignado": (40.0, 18000.0, 1.65, 0.025, 0.8),
        "Crédito Pessoal": (90.0, 7500.0, 3.4, 0.06, 4.5),
        "Capital de Giro": (18.0, 60000.0, 1.9, 0.05, 3.0),
    }
    season = {  # by month: the Plano Safra opens in July; personal loans before Christmas
        "Crédito Rural": (0.85, 0.85, 0.9, 0.95, 1.0, 1.0, 1.5, 1.5, 1.4, 1.1, 0.95, 0.9),
        "Crédito Pessoal": (1.1, 0.95, 0.95, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 1.25),
    }
    books = {
        (code, product): volume * size * ticket / (amortised * 1.05)
        for code, (_, size) in branches.items()
        for product, (volume, ticket, _, amortised, _) in products.items()
    }
    rows: list[list[object]] = []
    for index in range(20):  # janeiro de 2023 .. agosto de 2024
        year, month = 2023 + index // 12, index % 12 + 1
        for code, (branch, size) in branches.items():
            for product, (volume, ticket, rate, amortised, overdue) in products.items():
                key = (code, product, year, month)
                signed = volume * size * season.get(product, (1.0,) * 12)[month - 1]
                signed *= (1.003**index) * (1 + 0.16 * (wobble("n", *key) - 0.5))
                if product == "Consignado":
                    signed *= 1.05**index  # an agreement with the state's civil servants
                if (branch, product, year, month) == ("Joaçaba", "Capital de Giro", 2024, 3):
                    signed *= 3.5  # the planted spike: a Pronampe line released to the branch
                if (branch, year, month) == ("Xanxerê", 2023, 7):
                    signed *= 0.35  # the planted drop: the core-banking migration froze contracts
                contracts = max(1, round(signed))
                lent = contracts * ticket * (1 + 0.2 * (wobble("v", *key) - 0.5))
                books[code, product] = books[code, product] * (1 - amortised) + lent
                book = books[code, product]
                late = book * overdue / 100 * (1 + 0.3 * (wobble("a", *key) - 0.5))
                charged = rate * (1 + 0.06 * (wobble("t", *key) - 0.5))
                rows.append(
                    [f"{MESES_EXTENSO[month - 1]} de {year}", code, branch, product, contracts,
                     f"R$ {br_number(lent)}", f"R$ {br_number(book)}",
                     f"{br_number(charged)}%", f"R$ {br_number(late)}"]
                )  # fmt: skip
    header = ["mês", "cód_agência", "agência", "produto", "contratos", "valor_contratado"]
    return to_csv([*header, "saldo_carteira", "taxa_média_mensal", "saldo_em_atraso_90d"], rows,
                  ";")  # fmt: skip


def ward_census_daily() -> str:
    wards = {  # ward_id: (ward, building, staffed beds, admissions a day, occupancy, $ a day)
        3101: ("Cardiology", "Tower A", 28, 7.0, 0.85, 4200.0),
        3102: ("Orthopedics", "Tower A", 24, 6.0, 0.8, 3800.0),
        3103: ("Pediatrics", "Tower B", 20, 5.0, 0.7, 2900.0),
        3104: ("Medical ICU", "Tower A", 12, 2.5, 0.88, 9500.0),
        3105: ("Maternity", "Tower B", 24, 8.0, 0.7, 2400.0),
    }
    elective = ("Cardiology", "Orthopedics")  # scheduled admissions: few at weekends
    rows: list[list[object]] = []
    for index in range(140):  # Monday 1 January .. Sunday 19 May 2024
        day = date(2024, 1, 1) + timedelta(days=index)
        for code, (ward, building, beds, admitted, occupancy, price) in wards.items():
            key = (code, day.isoformat())
            flow = admitted * (0.5 if ward in elective and day.weekday() >= 5 else 1.0)
            load = occupancy * (1 + 0.12 * (wobble("o", *key) - 0.5))
            if ward == "Pediatrics":
                flow *= 1.3 - 0.004 * index  # the RSV season fading
                load *= 1.2 - 0.003 * index
            if ward == "Maternity":
                flow *= 1.02 ** (index / 7)  # a rival maternity closed in December: it grows
                load *= 1.02 ** (index / 7)
                beds = 28 if day >= date(2024, 3, 1) else beds
            if ward == "Orthopedics" and date(2024, 1, 16) <= day <= date(2024, 1, 20):
                load *= 1.15  # the fractures of the ice storm stay a few days
            if ward == "Cardiology" and date(2024, 3, 11) <= day <= date(2024, 3, 17):
                flow *= 0.3  # the planted drop: the cath lab closed to replace its imaging
                load *= 0.7
            discharges = round(flow * (0.8 + 0.4 * wobble("d", *key)))
            if (ward, day) == ("Orthopedics", date(2024, 1, 16)):
                flow *= 3.4  # the planted spike: an ice storm, falls and fractures
            admissions = round(flow * (0.8 + 0.4 * wobble("a", *key)))
            occupied = min(beds, round(beds * load))
            nursing = occupied * (24.0 if ward == "Medical ICU" else 8.5)
            nursing *= 1 + 0.1 * (wobble("h", *key) - 0.5)
            charges = occupied * price * (1 + 0.1 * (wobble("c", *key) - 0.5))
            rows.append(
                [f"{day.month}/{day.day}/{day.year}", code, ward, building, beds, occupied,
                 admissions, discharges, f"{nursing:.1f}", f"${charges:,.2f}"]
            )  # fmt: skip
    header = ["census_date", "ward_id", "ward", "building", "staffed_beds", "occupied_beds"]
    return to_csv([*header, "admissions", "discharges", "nursing_hours", "charges_usd"], rows)


def _cumulative(shares: dict[str, float]) -> list[tuple[str, float]]:
    """(name, running total of the shares): the bands a number in [0, 1) falls into."""
    out, total = [], 0.0
    for name, share in shares.items():
        total += share
        out.append((name, total))
    out[-1] = (out[-1][0], 1.0)
    return out


FILES: dict[str, Callable[[], str]] = {
    "lojas_semanal.csv": lojas_semanal,
    "receita_mensal_regiao.csv": receita_mensal_regiao,
    "pedidos_br.csv": pedidos_br,
    "faturamento_filiais.csv": faturamento_filiais,
    "web_orders_monthly.csv": web_orders_monthly,
    "site_visits_weekly.csv": site_visits_weekly,
    "clinica_consultas.csv": clinica_consultas,
    "saas_mrr.csv": saas_mrr,
    "vendas_restaurantes.csv": vendas_restaurantes,
    "catalogo_vendas.csv": catalogo_vendas,
    "devolucoes_ecommerce.csv": devolucoes_ecommerce,
    "entregas_transportadoras.csv": entregas_transportadoras,
    "hr_headcount.csv": hr_headcount,
    "farmacias_mensal.csv": farmacias_mensal,
    "support_tickets_weekly.csv": support_tickets_weekly,
    "academias_mensal.csv": academias_mensal,
    "marketing_funnel_daily.csv": marketing_funnel_daily,
    "mensalidades_escolas.csv": mensalidades_escolas,
    "picking_waves.csv": picking_waves,
    "ocupacao_hoteis.csv": ocupacao_hoteis,
    "calls_hourly.csv": calls_hourly,
    "locadora_frota.csv": locadora_frota,
    "solar_projects.csv": solar_projects,
    "cooperativa_graos.csv": cooperativa_graos,
    "coworking_daily.csv": coworking_daily,
    "veterinaria_diaria.csv": veterinaria_diaria,
    "bakery_monthly.csv": bakery_monthly,
    "postos_combustivel.csv": postos_combustivel,
    "rides_weekly.csv": rides_weekly,
    "os_concessionaria_agricola.csv": os_concessionaria_agricola,
    "substation_energy_monthly.csv": substation_energy_monthly,
    "carteira_credito_cooperativa.csv": carteira_credito_cooperativa,
    "ward_census_daily.csv": ward_census_daily,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    DATA.mkdir(exist_ok=True)
    differs = []
    for name, make in FILES.items():
        text = make()
        path = DATA / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                differs.append(name)
            continue
        path.write_text(text, encoding="utf-8")
        print(f"{path} ({len(text.encode()):,} bytes)")
    if differs:
        print(f"differ from the generator: {', '.join(differs)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
