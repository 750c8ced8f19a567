"""Questions split into parts, plans made to cover them, and changes explained by segment.

The data is issue 14's weekly stores (tests/insights_data.py); every expected number is
computed here by its own DuckDB query over the same rows, never read back from the facts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import duckdb
import pytest

from billumy.errors import BadRequestError
from billumy.insights import data
from billumy.insights import question as questions
from billumy.insights.answer import build_answer
from billumy.insights.changes import change_fact
from billumy.insights.formats import for_language
from billumy.insights.model import Fact, Profile
from billumy.insights.plan import Measure, Period, Plan, validate_plan
from billumy.insights.profile import profile
from billumy.insights.rules import rule_plan
from billumy.insights.service import InsightService
from billumy.insights.statements import Context, describe
from billumy.language import guess_language
from tests.insights_data import service_plan, weekly_stores

LIMITS = data.Limits(max_rows=100_000, max_columns=50, max_bytes=100_000_000)


@pytest.fixture(scope="module")
def stores() -> Iterator[tuple[data.Table, Profile]]:
    table = data.from_records(weekly_stores(), LIMITS)
    with table:
        yield table, profile(table)


def _reference(sql: str) -> list[tuple[Any, ...]]:
    """An independent answer: DuckDB over the same rows, with SQL written here."""
    con = duckdb.connect()
    rows = weekly_stores()
    con.execute(
        "CREATE TABLE t (semana INTEGER, data DATE, loja VARCHAR, vendas_reais DOUBLE, "
        "itens INTEGER)"
    )
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
        [(r["semana"], r["data"], r["loja"], r["vendas_reais"], r["itens"]) for r in rows],
    )
    return con.execute(sql).fetchall()


def _ask(
    stores: tuple[data.Table, Profile], text: str, lang: str | None = None
) -> tuple[questions.Question, Plan | None, list[Fact], set[str], Any]:
    table, prof = stores
    asked = questions.parse(text, prof)
    plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
    if plan is not None:
        validate_plan(plan, prof)
    found, planned = InsightService._facts(table, prof, plan, 3, text, asked)
    parts = questions.coverage(asked, found, planned, plan)
    language = lang or ("pt" if any(c in text for c in "ãçéêíóú") else "en")
    ctx = Context(for_language(language), prof, plan, planned)
    for fact in found:
        fact.statement = describe(fact, ctx)
    answer = build_answer(question=text, facts=found, ctx=ctx, parts=parts)
    return asked, plan, found, planned, answer


def _kinds(asked: questions.Question) -> list[str]:
    return [p.kind for p in asked.parts]


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("Qual loja vendeu mais?", ["rank"]),
        ("Which store sold the least?", ["rank"]),
        ("Qual o total de vendas?", ["total"]),
        ("How much did we sell in all?", ["total"]),
        ("Como as vendas evoluíram ao longo das semanas?", ["trend"]),
        ("How did sales change over time?", ["trend"]),
        ("Alguma loja teve queda forte?", ["anomaly"]),
        ("Was any week abnormal?", ["anomaly"]),
        ("Compare março e abril", ["compare_periods"]),
        ("How did sales in May compare with April?", ["compare_periods"]),
        ("Compare as vendas do Centro e do Norte", ["compare_segments"]),
        ("Qual a participação de cada loja?", ["share"]),
        ("What share of sales came from Sul?", ["share"]),
        ("O que puxou as vendas em abril?", ["drivers"]),
        ("Why did sales fall in week 20?", ["anomaly", "drivers"]),
        ("Quanto a loja Sul vendeu em 2024?", ["total", "filter", "filter"]),
        (
            "Which store sold the most, and how did sales change over the weeks?",
            ["rank", "trend"],
        ),
        ("Qual loja vendeu menos no 2º trimestre?", ["rank", "filter"]),
        # Contributing ranks the parts of a total unless a change is named.
        ("Quanto vendemos e qual loja contribuiu mais?", ["rank", "total"]),
        ("Qual loja mais contribuiu para a queda?", ["anomaly", "drivers", "rank"]),
        # Two segments compared in one year: no comparison of periods.
        ("Compare Centro e Norte em 2024", ["compare_segments", "filter"]),
        ("vendas mai/24 vs abr/24", ["compare_periods"]),
    ],
)
def test_parts(stores: tuple[data.Table, Profile], text: str, kinds: list[str]) -> None:
    asked = questions.parse(text, stores[1])
    assert _kinds(asked) == kinds


def test_a_span_of_periods_is_one_window(stores: tuple[data.Table, Profile]) -> None:
    """ "From March to May", "de março até maio": the rows of those months together; the two
    ends are compared only when the question asks how something moved between them."""
    prof = stores[1]
    for text in ("How much did we sell from March to May?", "Quanto vendemos de março até maio?"):
        asked = questions.parse(text, prof)
        assert [(w.start, w.end) for w in asked.windows] == [
            (date(2024, 3, 1), date(2024, 6, 1))
        ], text
        assert not asked.has("compare_periods")
    for text in (
        "Which store grew the most from March to May?",
        "Qual loja caiu mais de março a maio?",
        "Compare as vendas de março e maio",
    ):
        asked = questions.parse(text, prof)
        assert [w.label for w in asked.windows] == ["2024-03", "2024-05"], text


def test_periods_named(stores: tuple[data.Table, Profile]) -> None:
    prof = stores[1]
    # A month with no year is the data's latest year that has it; a capital "May" is the month.
    assert [w.label for w in questions.parse("vendas em maio", prof).windows] == ["2024-05"]
    assert [w.label for w in questions.parse("sales in May", prof).windows] == ["2024-05"]
    # "may" the verb, "mar" the sea are no months.
    assert questions.parse("which store may sell more?", prof).windows == []
    assert questions.parse("vendas perto do mar", prof).windows == []
    assert [w.label for w in questions.parse("no primeiro trimestre", prof).windows] == ["2024-Q1"]
    assert [w.label for w in questions.parse("Q2 2024 sales", prof).windows] == ["2024-Q2"]
    assert [w.label for w in questions.parse("em 2024", prof).windows] == ["2024"]
    # A year outside the data is no period of it.
    # A year the data lacks, asked for, is kept: its facts find no rows and say so.
    assert [w.label for w in questions.parse("em 2019", prof).windows] == ["2019"]
    assert questions.parse("lojas com mais de 2000 itens", prof).windows == []
    # "semana 20" is the week-number column's value, and the week before is 19.
    (week,) = questions.parse("na semana 20", prof).windows
    assert (week.column, week.value, week.previous().value) == ("semana", 20, 19)
    # Ordinals chained by "e"/"and" before one grain word, halves, and years said in words.
    assert [w.label for w in questions.parse("o primeiro e o segundo semestre", prof).windows] == [
        "2024-H1",
        "2024-H2",
    ]
    assert [w.label for w in questions.parse("first and second quarters", prof).windows] == [
        "2024-Q1",
        "2024-Q2",
    ]
    assert [w.label for w in questions.parse("este ano", prof).windows] == ["2024"]
    march, april = questions.parse("março e abril de 2024", prof).windows
    assert (march.start, march.end) == (april.previous().start, april.start)


def test_reconcile_covers_every_part(stores: tuple[data.Table, Profile]) -> None:
    prof = stores[1]
    text = "Which store sold the most, and how did sales change over the weeks?"
    plan = questions.reconcile(None, questions.parse(text, prof), prof, "rules")
    assert plan is not None
    assert plan.dimensions == ["loja"]
    assert plan.period is not None and plan.period.column == "data"
    assert plan.measures[0].column == "vendas_reais"  # money, never the week number
    compared = questions.reconcile(
        None, questions.parse("Compare Centro e Norte", prof), prof, "rules"
    )
    assert compared is not None
    assert [(f.column, f.op, f.value) for f in compared.filters] == [
        ("loja", "in", ["Centro", "Norte"])
    ]
    # A model's plan keeps a dimension only where a part asks for one.
    model = Plan(
        measures=[Measure(column="itens", agg="sum")],
        dimensions=["loja"],
        period=Period(column="data", grain="week"),
    )
    fixed = questions.reconcile(model, questions.parse("Total de itens", prof), prof, "model")
    assert fixed is not None and fixed.dimensions == [] and fixed.period is None


def test_how_much_sums_and_how_many_counts(stores: tuple[data.Table, Profile]) -> None:
    prof = stores[1]
    how_much = rule_plan("Quanto a loja Sul vendeu?", prof)
    assert how_much is not None and how_much.measures[0].column == "vendas_reais"
    how_many = rule_plan("Quantos registros tem a loja Sul?", prof)
    assert how_many is not None and how_many.measures[0].column == "*"


def test_a_month_filter_is_applied(stores: tuple[data.Table, Profile]) -> None:
    _, _, found, planned, answer = _ask(stores, "Qual loja vendeu mais em maio?", "pt")
    ((loja, total),) = _reference(
        "SELECT loja, round(sum(vendas_reais), 2) FROM t WHERE month(data) = 5 "
        "GROUP BY loja ORDER BY 2 DESC LIMIT 1"
    )
    ranking = next(f for f in found if f.id in planned and f.kind == "breakdown")
    assert ranking.values["top_segment"] == loja
    assert round(float(ranking.values["top_value"] or 0), 2) == total
    assert "em maio de 2024" in answer.text and loja in answer.text
    assert all(p["covered"] for p in answer.parts)


def test_drivers_of_a_drop(stores: tuple[data.Table, Profile]) -> None:
    _, _, found, planned, answer = _ask(stores, "Por que as vendas caíram na semana 20?")
    change = next(f for f in found if f.kind == "change")
    assert change.id in planned
    expected = dict(
        _reference(
            "SELECT semana, round(sum(vendas_reais), 2) FROM t WHERE semana IN (19, 20) "
            "GROUP BY semana"
        )
    )
    assert round(float(change.values["value_a"] or 0), 2) == expected[19]
    assert round(float(change.values["value_b"] or 0), 2) == expected[20]
    by_store = dict(
        _reference(
            "SELECT loja, round(sum(CASE WHEN semana = 20 THEN vendas_reais ELSE 0 END) - "
            "sum(CASE WHEN semana = 19 THEN vendas_reais ELSE 0 END), 2) FROM t "
            "WHERE semana IN (19, 20) GROUP BY loja"
        )
    )
    assert change.values["driver"] == "Norte" == min(by_store, key=lambda k: by_store[k])
    assert {r["segment"]: round(float(r["change"] or 0), 2) for r in change.rows} == by_store
    # The parts add up to the whole, and the shares to 100%.
    assert sum(float(r["change"] or 0) for r in change.rows) == pytest.approx(
        float(change.values["change"] or 0)
    )
    assert sum(float(r["share_of_change_pct"] or 0) for r in change.rows) == pytest.approx(100)
    assert "na semana 19" in answer.text and "na semana 20" in answer.text
    assert "A maior parte veio de Norte" in answer.text
    assert [p["covered"] for p in answer.parts] == [True, True]


@pytest.mark.parametrize(
    ("lang", "text", "words"),
    [
        ("en", "How did sales in May compare with April?", ["April 2024", "May 2024", "down"]),
        ("pt", "Compare as vendas de abril e maio", ["abril de 2024", "maio de 2024", "queda"]),
    ],
)
def test_two_periods_compared(
    stores: tuple[data.Table, Profile], lang: str, text: str, words: list[str]
) -> None:
    _, _, found, _, answer = _ask(stores, text, lang)
    change = next(f for f in found if f.kind == "change")
    (april, may) = (
        v
        for (v,) in _reference(
            "SELECT round(sum(vendas_reais), 2) FROM t WHERE month(data) IN (4, 5) "
            "GROUP BY month(data) ORDER BY month(data)"
        )
    )
    assert (change.values["period_a"], change.values["period_b"]) == ("2024-04", "2024-05")
    assert round(float(change.values["value_a"] or 0), 2) == april
    assert round(float(change.values["value_b"] or 0), 2) == may
    sentence = next(s.text for s in answer.sentences if change.id in s.facts)
    for word in words:
        assert word in sentence


@pytest.mark.parametrize(
    ("lang", "text", "expected"),
    [
        ("en", "What share of sales came from Sul?", "Sul accounts for {pct} of total"),
        ("pt", "Qual a participação da loja Sul nas vendas?", "Sul responde por {pct} do total"),
    ],
)
def test_a_named_segments_share(
    stores: tuple[data.Table, Profile], lang: str, text: str, expected: str
) -> None:
    ((share,),) = _reference(
        "SELECT 100 * sum(vendas_reais) FILTER (WHERE loja = 'Sul') / sum(vendas_reais) FROM t"
    )
    pct = f"{share:.1f}%" if lang == "en" else f"{share:.1f}%".replace(".", ",")
    _, _, _, _, answer = _ask(stores, text, lang)
    assert expected.format(pct=pct) in answer.text
    assert all(p["covered"] for p in answer.parts)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("pt", "Não consegui responder a esta parte: a evolução ao longo do tempo (os dados não"),
        ("en", "I could not answer this part: the change over time (the data has no date"),
    ],
)
def test_a_part_no_fact_answers_is_said(lang: str, expected: str) -> None:
    rows = [{"loja": s, "vendas": v} for s, v in (("A", 10.0), ("B", 20.0), ("C", 5.0))]
    table = data.from_records(rows, LIMITS)
    with table:
        prof = profile(table)
        text = (
            "Qual loja vendeu mais e como evoluiu?"
            if lang == "pt"
            else ("Which store sold most, and how did that change?")
        )
        asked = questions.parse(text, prof)
        plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
        found, planned = InsightService._facts(table, prof, plan, 3, text, asked)
        parts = questions.coverage(asked, found, planned, plan)
        answer = build_answer(
            question=text,
            facts=found,
            ctx=Context(for_language(lang), prof, plan, planned),
            parts=parts,
        )
    assert [(p["kind"], p["covered"]) for p in parts] == [("rank", True), ("trend", False)]
    assert expected in answer.text
    uncovered = [s for s in answer.sentences if s.kind == "uncovered"]
    assert len(uncovered) == 1 and uncovered[0].facts == []


def test_no_period_to_compare_gives_no_change(stores: tuple[data.Table, Profile]) -> None:
    rows = [{"loja": s, "vendas": v} for s, v in (("A", 10.0), ("B", 20.0))]
    table = data.from_records(rows, LIMITS)
    with table:
        prof = profile(table)
        asked = questions.parse("Por que as vendas caíram?", prof)
        assert change_fact(table, prof, None, asked) is None


# --- messy inputs --------------------------------------------------------------------------

MESSY = """pedido_id;data;regiao;receita;itens
1001;05/01/2024;Sul;"R$ 1.234,56";3
1002;17/01/2024;Norte;"R$ 987,10";2
1003;03/02/2024;Sul;"R$ 2.000,00";5
1004;20/02/2024;Sudeste;"R$ 3.500,25";7
1005;11/03/2024;Norte;"-R$ 100,00";2
1006;28/03/2024;Sudeste;"R$ 4.000,00";9
"""


def test_money_as_text_and_brazilian_dates_are_numbers_and_dates() -> None:
    with data.from_csv(MESSY, LIMITS) as table:
        prof = profile(table)
        kinds = {c.name: (c.kind, c.dtype) for c in prof.columns}
        assert kinds["receita"] == ("numeric", "DOUBLE")
        assert kinds["data"] == ("temporal", "DATE")
        assert kinds["pedido_id"][0] == "id"
        ((total,),) = table.query("SELECT sum(receita) FROM data")
        assert total == pytest.approx(1234.56 + 987.10 + 2000 + 3500.25 - 100 + 4000)
    dollars = 'sku,price\na,"$1,234.50"\nb,$10.25\nc,"US$ 2,000"\n'
    with data.from_csv(dollars, LIMITS) as table:
        assert [r[0] for r in table.query("SELECT price FROM data ORDER BY sku")] == [
            1234.5,
            10.25,
            2000.0,
        ]
    # A column where one value is not money stays text: nothing is guessed.
    mixed = "a;b\n1;R$ 10,00\n2;dez reais\n"
    with data.from_csv(mixed, LIMITS) as table:
        assert table.types["b"] == "VARCHAR"


@pytest.mark.parametrize(
    ("text", "measure"),
    [
        ("Qual o total de pedidos?", ("pedido_id", "count")),
        ("How many orders per region?", ("pedido_id", "count")),
        ("Qual região vendeu mais em fevereiro?", ("receita", "sum")),
    ],
)
def test_an_id_column_is_counted_never_summed(text: str, measure: tuple[str, str]) -> None:
    with data.from_csv(MESSY, LIMITS) as table:
        prof = profile(table)
        asked = questions.parse(text, prof)
        plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
        assert plan is not None
        assert (plan.measures[0].column, plan.measures[0].agg) == measure
        found, planned = InsightService._facts(table, prof, plan, 3, text, asked)
        assert all(p["covered"] for p in questions.coverage(asked, found, planned, plan))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Alguma loja teve queda forte em maio?", "Sim: Norte teve queda forte nas semanas de"),
        ("Alguma loja teve queda forte em março?", "Não: nenhuma loja teve queda fora do normal"),
        ("O Sul teve alguma queda forte?", "Não: Sul não teve queda fora do normal"),
        ("Did Norte have any drop?", "Yes: Norte dropped sharply"),
        ("Did Sul have any drop in May?", "No: Sul had no unusual drop in vendas_reais (4 weeks"),
    ],
)
def test_a_drop_is_looked_for_where_the_question_points(
    stores: tuple[data.Table, Profile], text: str, expected: str
) -> None:
    """The series stay whole (the trend is judged on all of it); the cases reported, and the
    periods counted, are those of the month and the store the question names."""
    lang = "en" if text.startswith("Did") else "pt"
    _, _, found, _, answer = _ask(stores, text, lang)
    assert answer.sentences[0].text.startswith(expected), answer.sentences[0].text
    anomaly = next(f for f in found if f.kind == "anomaly")
    assert all(str(r["period"]).startswith("2024-05") for r in anomaly.rows)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Alguma loja teve queda forte em maio?", "pt"),
        ("O Sul teve alguma queda forte?", "pt"),
        ("Qual loja vendeu mais?", "pt"),
        ("Did Norte have any drop?", "en"),
        ("What share of sales came from Sul?", "en"),
        ("Which store sold the most, and how did sales change over the weeks?", "en"),
    ],
)
def test_the_question_s_language(text: str, lang: str) -> None:
    assert guess_language(text) == lang


def test_numbers_babel_cannot_write_are_written_all_the_same() -> None:
    """Sums near 1e308 overflow and Babel cannot quantize such magnitudes: a 500 before."""
    with data.from_records(
        [
            {"loja": "A", "vendas": 1.5e308},
            {"loja": "A", "vendas": 1e308},
            {"loja": "B", "vendas": 1.6e308},
        ],
        LIMITS,
    ) as table:
        prof = profile(table)
        for lang in ("pt", "en"):
            text = "Qual loja vendeu mais?"
            asked = questions.parse(text, prof)
            plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
            found, planned = InsightService._facts(table, prof, plan, 3, text, asked)
            answer = build_answer(
                question=text,
                facts=found,
                ctx=Context(for_language(lang), prof, plan, planned),
                parts=questions.coverage(asked, found, planned, plan),
            )
            assert "1.6e+308" in answer.text
    pt, en = for_language("pt"), for_language("en")
    assert pt.number(float("inf")) == "n/d" and en.money(float("nan")) == "n/a"
    assert en.pct(float("inf")) == "n/a" and pt.money(2e20) == "2e+20"


def test_a_broken_upload_s_error_shows_no_server_path(tmp_path: Any) -> None:
    broken = tmp_path / "upload.parquet"
    broken.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(BadRequestError) as caught:
        data.from_file(broken, "parquet", LIMITS)
    assert str(tmp_path) not in str(caught.value)
    truncated = tmp_path / "upload.json"
    truncated.write_text('[{"a": 1},')
    with pytest.raises(BadRequestError) as caught:
        data.from_file(truncated, "json", LIMITS)
    assert str(tmp_path) not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "planned"),
    [
        ("What was the total cost of sales?", False),
        ("Qual o custo das vendas por loja?", False),
        ("Qual o lucro e quanto a loja Sul vendeu?", True),
        ("Quanto a loja Sul vendeu?", True),
        # A quantity no column names, in the question's own words, or a known one (CSAT).
        ("What is the average customer rating per store?", False),
        ("Qual é a idade média dos clientes por loja?", False),
        ("What's our CSAT by store?", False),
        ("Qual a média de vendas por loja?", True),
    ],
)
def test_a_missing_quantity_of_something_is_not_that_something_s_total(
    stores: tuple[data.Table, Profile], text: str, planned: bool
) -> None:
    """ "The total cost of deliveries" on data with deliveries but no cost: the deliveries'
    total would answer another question; a second part that names its own measure is still
    answered."""
    plan = service_plan(text, stores[1])
    assert (plan is not None) is planned


def test_a_series_leaves_out_a_period_the_data_covers_in_part() -> None:
    """Daily deliveries, Monday to Saturday, ending on Tuesday 30 April: the last week has
    two days of data and would read as a 67% drop."""
    rows = []
    day = date(2024, 1, 1)
    while day <= date(2024, 4, 30):
        if day.weekday() != 6:
            rows += [
                {"data": day.isoformat(), "transportadora": "A", "entregas": 100},
                {"data": day.isoformat(), "transportadora": "B", "entregas": 50},
            ]
        day += timedelta(days=1)
    with data.from_records(rows, LIMITS) as table:
        prof = profile(table)
        text = "Como as entregas evoluíram semana a semana?"
        asked = questions.parse(text, prof)
        plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
        found, _ = InsightService._facts(table, prof, plan, 3, text, asked)
    trend = next(f for f in found if f.kind == "trend")
    assert trend.values["last_period"] == "2024-04-22"
    assert trend.values["change"] == 0 and trend.values["direction"] == "flat"
    assert {r["period"] for r in trend.rows} >= {"2024-01-01", "2024-04-22"}


def test_a_word_of_why_that_names_a_column_is_that_column() -> None:
    """A returns table with a ``motivo`` (reason) column: "por motivo" groups by it."""
    rows = [
        {"data": f"2024-0{m}-01", "motivo": r, "devolucoes": n}
        for m in range(1, 4)
        for r, n in (("Defeito", 10 + m), ("Tamanho errado", 20))
    ]
    with data.from_records(rows, LIMITS) as table:
        prof = profile(table)
        kinds = {
            text: _kinds(questions.parse(text, prof))
            for text in (
                "Qual o total de devoluções por motivo?",
                "Which reason had the most returns?",
                "Por que as devoluções subiram em março?",
            )
        }
    assert kinds == {
        "Qual o total de devoluções por motivo?": ["total"],
        "Which reason had the most returns?": ["rank"],
        "Por que as devoluções subiram em março?": ["drivers"],
    }


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Qual loja vendeu mais e qual teve menos itens?", "pt"),
        ("Which store sold the most, and which had the fewest items?", "en"),
    ],
)
def test_two_rankings_by_two_measures(
    stores: tuple[data.Table, Profile], text: str, lang: str
) -> None:
    _, _, found, planned, answer = _ask(stores, text, lang)
    rankings = [f for f in found if f.id in planned and f.kind == "breakdown"]
    assert [(f.columns[1], f.rows[0]["loja"]) for f in rankings] == [
        ("vendas_reais", "Centro"),
        ("itens", "Sul"),
    ]
    by_sales = _reference("SELECT loja FROM t GROUP BY loja ORDER BY sum(vendas_reais) DESC")
    by_items = _reference("SELECT loja FROM t GROUP BY loja ORDER BY sum(itens)")
    assert [r["loja"] for r in rankings[0].rows] == [r[0] for r in by_sales]
    assert [r["loja"] for r in rankings[1].rows] == [r[0] for r in by_items]
    lowest = "Sul tem o menor total de itens" if lang == "pt" else "Sul has the lowest total itens"
    assert lowest in answer.text


@pytest.mark.parametrize(
    ("text", "dimensions"),
    [
        ("Which product category had the highest sales in 2025?", ["categoria"]),
        ("Qual categoria do produto vendeu mais em 2025?", ["categoria"]),
        ("Which store city sold the most?", ["cidade"]),
        ("Qual cidade da loja vendeu mais?", ["cidade"]),
        # apart, they are two breakdowns
        ("Vendas por produto e categoria em 2025", ["produto", "categoria"]),
        ("Sales by product, category in 2025", ["produto", "categoria"]),
    ],
)
def test_a_compound_groups_by_its_head(text: str, dimensions: list[str]) -> None:
    """'product category' names the category (whose: the product's), not both columns."""
    rows = [
        {
            "data": date(2025, 1, 1) + timedelta(days=i % 200),
            "produto": f"produto {i % 20}",
            "categoria": ("limpeza", "bebidas", "mercearia")[i % 3],
            "loja": f"loja {i % 8}",
            "cidade": ("São Paulo", "Recife")[i % 2],
            "total": float(i % 97),
        }
        for i in range(600)
    ]
    with data.from_records(rows, LIMITS) as table:
        plan = rule_plan(text, profile(table))
    assert plan is not None and plan.dimensions == dimensions


def _wards() -> list[dict[str, Any]]:
    wards = [
        ("Cardiology", "Tower A"),
        ("Orthopedics", "Tower A"),
        ("Medical ICU", "Tower A"),
        ("Pediatrics", "Tower B"),
        ("Maternity", "Tower B"),
    ]
    return [
        {
            "census_date": date(2024, 1, 1) + timedelta(days=day),
            "ward": ward,
            "building": building,
            "staffed_beds": 20 + n,
            "occupied_beds": 10 + (day + n) % 10,
            "admissions": (day * 7 + n) % 13,
        }
        for day in range(120)
        for n, (ward, building) in enumerate(wards)
    ]


@pytest.mark.parametrize(
    ("text", "column", "value"),
    [
        ("Quantas internações na maternidade em março?", "ward", "Maternity"),  # a cognate
        ("Qual a ocupação da ortopedia em abril?", "ward", "Orthopedics"),  # th/ph spelled t/f
        ("Qual a taxa de ocupação da UTI em abril?", "ward", "Medical ICU"),  # its code's synonym
        ("Qual a participação da Torre B nas admissões?", "building", "Tower B"),  # designator
    ],
)
def test_values_named_in_the_other_language(text: str, column: str, value: str) -> None:
    with data.from_records(_wards(), LIMITS) as table:
        asked = questions.parse(text, profile(table))
    assert asked.segments.get(column) == [value], asked.segments


def test_a_designator_is_said_as_it_is() -> None:
    """'Torre C' is no ``Tower B``: a one-letter word of a value must be said as it is."""
    with data.from_records(_wards(), LIMITS) as table:
        asked = questions.parse("Qual a participação da Torre C nas admissões?", profile(table))
    assert "building" not in asked.segments


def test_a_mistyped_word_is_read_as_the_data_names_it() -> None:
    from billumy.insights.ratios import respelled

    with data.from_records(_wards(), LIMITS) as table:
        prof = profile(table)
    assert respelled("Which ward had the lowest ocupancy rate in Q1?", prof) == (
        "Which ward had the lowest occupancy rate in Q1?"
    )
    assert respelled("Quantas admisions na Maternity?", prof) == "Quantas admissions na Maternity?"
    # Known words, plurals and values stay; so does a word close to two.
    same = "Which wards admitted the most in Cardiology and Pediatrics?"
    assert respelled(same, prof) == same


@pytest.mark.parametrize(
    ("text", "periods"),
    [
        ("Compare o valor do 1º trimestre deste ano com o do ano passado", "2024-Q1 / 2023-Q1"),
        (
            "Compare o valor do primeiro semestre deste ano com o do mesmo período do ano passado",
            "2024-H1 / 2023-H1",
        ),
        ("How did March compare with the same month last year?", "2024-03 / 2023-03"),
        # the year itself, when it is said as the year
        ("Compare o valor do 1º trimestre deste ano com o ano passado", "2024-Q1 / 2023"),
    ],
)
def test_the_same_period_last_year(text: str, periods: str) -> None:
    rows = [
        {"mes": date(2023 + m // 12, m % 12 + 1, 1), "loja": ("A", "B")[m % 2], "valor": 10.0 + m}
        for m in range(18)
    ]
    with data.from_records(rows, LIMITS) as table:
        asked = questions.parse(text, profile(table))
    assert [p.words for p in asked.parts if p.kind == "compare_periods"] == [periods]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Qual foi a taxa de ocupação da UTI em abril e qual ala teve mais internações?",
            ["Qual foi a taxa de ocupação da UTI em abril", "qual ala teve mais internações"],
        ),
        (
            "Which store sold the most, and how did sales change over the weeks?",
            ["Which store sold the most", "how did sales change over the weeks"],
        ),
        # A lead-in stays with the clause it opens.
        (
            "Em 2024, quantas matrículas e quantos cancelamentos tivemos? E qual foi o saldo?",
            ["Em 2024, quantas matrículas", "quantos cancelamentos tivemos", "qual foi o saldo"],
        ),
        # One thing asked: one clause, "e"/"and" inside it or not.
        ("Vendas e devoluções por loja", ["Vendas e devoluções por loja"]),
        (
            "Qual unidade vendeu mais e teve algum pico?",
            ["Qual unidade vendeu mais e teve algum pico"],
        ),
        (
            "What was revenue (US$ 1.5M). Which region led?",
            ["What was revenue (US$ 1.5M)", "Which region led"],
        ),
    ],
)
def test_clauses(text: str, expected: list[str]) -> None:
    assert questions.clauses(text) == expected


def test_dates_in_figures_are_days(stores: tuple[data.Table, Profile]) -> None:
    """ "em 16/01/2024" is that day (dd/mm in Portuguese), "on 1/16/2024" too (mm/dd in
    English), "2024-01-16" whatever the language; a day past 12 settles the order; "1/3 das
    vendas" is a fraction."""
    prof = stores[1]

    def days(text: str) -> list[str]:
        return [w.label for w in questions.parse(text, prof).windows]

    assert days("Quanto a loja Sul vendeu em 16/01/2024?") == ["2024-01-16"]
    assert days("How much did Sul sell on 1/16/2024?") == ["2024-01-16"]
    assert days("How much did Sul sell on 2024-01-16?") == ["2024-01-16"]
    assert days("Quanto vendemos em 05/03/24?") == ["2024-03-05"]
    assert days("How much did we sell on 03/05/2024?") == ["2024-03-05"]
    assert days("Quanto vendemos em 03/15/2024?") == ["2024-03-15"]
    assert days("1/3 das vendas veio do Sul?") == []
