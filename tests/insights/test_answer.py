"""The answer and the fact sentences: each fact kind in pt-BR and English, locale formatting
asserted exactly, unanswerable parts said plainly, every number traced to its fact.

Facts are computed by the real facts module over real DuckDB tables built for round numbers:
``receita`` sums to 6,006.50 (A 4,600.00, B 1,200.50, C 206.00) over four months (1,350.50,
1,450.00, 1,550.00, 1,656.00), so every expected sentence below can be checked by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from billumy.insights import data
from billumy.insights.answer import build_answer, missing_columns
from billumy.insights.formats import Formats, for_language
from billumy.insights.model import Fact, Profile
from billumy.insights.plan import Filter, Measure, Period, Plan
from billumy.insights.planned import facts_for_plan
from billumy.insights.profile import money_of, profile
from billumy.insights.salient import salient_facts
from billumy.insights.statements import Context, describe
from billumy.insights.verify import check
from tests.insights_data import rules_answer

R = "R$\xa0"  # CLDR writes a no-break space between R$ and the amount
LIMITS = data.Limits(max_rows=10_000, max_columns=50, max_bytes=10_000_000)
RECEITA = {"A": [1000.0, 1100.0, 1200.0, 1300.0], "B": [300.5, 300.0, 300.0, 300.0]}
RECEITA["C"] = [50.0, 50.0, 50.0, 56.0]
PRECO = {"A": 20.0, "B": 10.0, "C": 5.0}
ITENS = {"A": [10, 11, 12, 13], "B": [5, 5, 5, 5], "C": [1, 1, 1, 1]}


def _stores() -> list[dict[str, Any]]:
    return [
        {
            "mes": f"2024-{month + 1:02d}-01",
            "loja": loja,
            "receita": RECEITA[loja][month],
            "itens": ITENS[loja][month],
            "preco": PRECO[loja],
        }
        for month in range(4)
        for loja in ("A", "B", "C")
    ]


@pytest.fixture
def stores() -> Iterator[tuple[data.Table, Profile]]:
    table = data.from_records(_stores(), LIMITS)
    with table:
        yield table, profile(table)


def _ctx(lang: str, prof: Profile, plan: Plan | None = None, found: Sequence[Fact] = ()) -> Context:
    return Context(for_language(lang), prof, plan, {f.id for f in found})


def _pick(found: list[Fact], kind: str, *columns: str) -> Fact:
    return next(
        f for f in found if f.kind == kind and list(f.columns[: len(columns)]) == [*columns]
    )


def _traced(sentence: str, cited: list[Fact], lang: str) -> bool:
    """Every number in ``sentence`` is supported by the cited facts' values and rows alone:
    their statements are blanked, so a sentence cannot vouch for itself."""
    bare = [dataclasses.replace(f, statement="") for f in cited]
    return check(sentence, bare, lang).verified


# --- formats -------------------------------------------------------------------------------


def test_formats_follow_the_locale() -> None:
    pt, en = Formats("pt"), Formats("en")
    assert pt.money(6006.5) == f"{R}6.006,50"
    assert en.money(6006.5) == "6,006.50"  # no currency named: no symbol guessed
    assert en.money(6006.5, "USD") == "$6,006.50"
    assert pt.number(6006.5) == "6.006,5" and en.number(6006.5) == "6,006.5"
    assert pt.number(1234567) == "1.234.567" and en.number(0.0034) == "0.0034"
    assert pt.pct(12.345) == "12,3%" and en.pct(12.345) == "12.3%"
    # A change one decimal would write as none (+12,139.78 on 182 million) keeps 2 digits.
    assert pt.pct(0.0067) == "0,0067%" and en.pct(0.05) == "0.050%" and en.pct(0) == "0.0%"
    assert pt.period("2024-03", "month") == "março de 2024"
    assert en.period("2024-03", "month") == "March 2024"
    assert pt.period("2024-Q1", "quarter") == "1º trimestre de 2024"
    assert pt.when("2024-03-11", "week") == "na semana de 11 de mar. de 2024"
    assert en.when("2024-03-11", "day") == "on Mar 11, 2024"
    # A year compared with a half: "in 2024", not "in the 2024".
    assert en.when("2024", "half") == "in 2024" and pt.when("2024", "half") == "em 2024"
    assert en.when("2024-H1", "half") == "in the first half of 2024"


def test_money_columns_by_name() -> None:
    assert money_of("receita") == (True, "BRL")
    assert money_of("revenue") == (True, None)
    assert money_of("vendas_reais") == (True, "BRL")
    assert money_of("Preço Unitário") == (True, "BRL")
    assert money_of("price_usd") == (True, "USD")
    assert money_of("vendas_qtd") == (False, None)
    assert money_of("itens") == (False, None)


# --- every fact kind, in both languages ------------------------------------------------------


PLAN = Plan(
    measures=[Measure(column="receita", agg="sum")],
    dimensions=["loja"],
    period=Period(column="mes", grain="month"),
)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        (
            "pt",
            [
                f"O total de receita é {R}6.006,50.",
                f"Por loja, A tem o maior total de receita. Ranking: A {R}4.600,00 (76,6%); "
                f"B {R}1.200,50 (20,0%); C {R}206,00 (3,4%).",
                f"O total de receita por mês foi de {R}1.350,50 em janeiro de 2024 a "
                f"{R}1.656,00 em abril de 2024, em 4 meses; a tendência é de alta "
                f"(+{R}100,92 por mês). Mês a mês: janeiro de 2024 {R}1.350,50; fevereiro de "
                f"2024 {R}1.450,00; março de 2024 {R}1.550,00; abril de 2024 {R}1.656,00. Em "
                f"abril de 2024, foi {R}1.656,00, alta de 6,8% em relação a {R}1.550,00 em "
                f"março de 2024.",
            ],
        ),
        (
            "en",
            [
                "Total receita is R$6,006.50.",
                "By loja, A has the highest total receita. Ranking: A R$4,600.00 (76.6%); "
                "B R$1,200.50 (20.0%); C R$206.00 (3.4%).",
                "Total receita per month went from R$1,350.50 in January 2024 to R$1,656.00 in "
                "April 2024 over 4 months; the trend is up (+R$100.92 per month). Month by "
                "month: January 2024 R$1,350.50; February 2024 R$1,450.00; March 2024 "
                "R$1,550.00; April 2024 R$1,656.00. In April 2024 it was R$1,656.00, up 6.8% "
                "from R$1,550.00 in March 2024.",
            ],
        ),
    ],
)
def test_plan_facts(stores: tuple[data.Table, Profile], lang: str, expected: list[str]) -> None:
    table, prof = stores
    found = facts_for_plan(table, prof, PLAN)
    ctx = _ctx(lang, prof, PLAN, found)
    sentences = [describe(f, ctx) for f in found]
    assert sentences == expected
    assert all(_traced(s, [f], lang) for s, f in zip(sentences, found, strict=True))


def test_plan_filters_and_averages(stores: tuple[data.Table, Profile]) -> None:
    table, prof = stores
    plan = Plan(
        measures=[Measure(column="preco", agg="avg")],
        dimensions=["loja"],
        filters=[Filter(column="loja", op="!=", value="C")],
    )
    found = facts_for_plan(table, prof, plan)
    pt, en = _ctx("pt", prof, plan, found), _ctx("en", prof, plan, found)
    assert describe(found[0], pt) == f"Onde loja não é C, a média de preco é {R}15,00."
    assert describe(found[0], en) == "Where loja is not C, average preco is R$15.00."
    assert describe(found[1], pt) == (
        "Por loja onde loja não é C, A tem a maior média de preco. "
        f"Ranking: A {R}20,00; B {R}10,00."
    )
    assert describe(found[1], en) == (
        "By loja where loja is not C, A has the highest average preco. Ranking: A R$20.00; "
        "B R$10.00."
    )


def test_a_span_of_days_is_said_as_dates_not_sql(stores: tuple[data.Table, Profile]) -> None:
    """A range of dates that is no month, quarter or year is said from its first to its last
    day ("de 1 de fev. de 2024 a 31 de mar. de 2024"), never as "mes >= '2024-02-01'"."""
    table, prof = stores
    plan = Plan(
        measures=[Measure(column="receita", agg="sum")],
        filters=[
            Filter(column="mes", op=">=", value="2024-02-01"),
            Filter(column="mes", op="<", value="2024-04-01"),
        ],
    )
    found = facts_for_plan(table, prof, plan)
    pt, en = _ctx("pt", prof, plan, found), _ctx("en", prof, plan, found)
    assert describe(found[0], pt).startswith("De 1 de fev. de 2024 a 31 de mar. de 2024, o total")
    assert describe(found[0], en).startswith("From Feb 1, 2024 to Mar 31, 2024, total receita")


def test_a_filter_no_row_meets_is_said_plainly(stores: tuple[data.Table, Profile]) -> None:
    """A sum over no rows is SQL's NULL: the answer says no row matched, not "n/d"."""
    table, prof = stores
    plan = Plan(
        measures=[Measure(column="receita", agg="sum")],
        filters=[Filter(column="loja", op="=", value="Z")],
    )
    found = facts_for_plan(table, prof, plan)
    pt, en = _ctx("pt", prof, plan, found), _ctx("en", prof, plan, found)
    assert describe(found[0], pt) == "Para loja Z, nenhuma linha com receita atende aos filtros."
    assert describe(found[0], en) == "For loja Z, no rows with receita match."


def test_an_aggregate_named_twice_is_said_once(stores: tuple[data.Table, Profile]) -> None:
    table, prof = stores
    twice = Measure(column="receita", agg="max")
    plan = Plan(measures=[twice, twice])
    found = facts_for_plan(table, prof, plan)
    assert (
        describe(found[0], _ctx("pt", prof, plan, found)) == f"O máximo de receita é {R}1.300,00."
    )


SALIENT = {
    "pt": {
        ("row_count",): "Os dados têm 12 linhas.",
        ("summary", "receita"): (
            f"O total de receita é {R}6.006,50 em 12 valores (média de {R}500,54, de {R}50,00 "
            f"a {R}1.300,00)."
        ),
        ("summary", "preco"): f"A média de preco é {R}11,67 (de {R}5,00 a {R}20,00, 12 valores).",
        ("top_segment", "loja", "receita"): f"Loja A tem o maior total de receita: {R}4.600,00, "
        "76,6% do total.",
        ("bottom_segment", "loja", "receita"): f"Loja C tem o menor total de receita: {R}206,00, "
        "3,4% do total.",
        ("top_segment", "loja", "itens"): "Loja A tem o maior total de itens: 46, 65,7% do total.",
    },
    "en": {
        ("row_count",): "The data has 12 rows.",
        ("summary", "receita"): (
            "Total receita is R$6,006.50 over 12 values (mean R$500.54, from R$50.00 to "
            "R$1,300.00)."
        ),
        ("summary", "preco"): "Average preco is R$11.67 (from R$5.00 to R$20.00, 12 values).",
        ("top_segment", "loja", "receita"): "Loja A has the highest total receita: R$4,600.00, "
        "76.6% of the total.",
        ("bottom_segment", "loja", "receita"): "Loja C has the lowest total receita: R$206.00, "
        "3.4% of the total.",
        ("top_segment", "loja", "itens"): "Loja A has the highest total itens: 46, 65.7% of the "
        "total.",
    },
}


@pytest.mark.parametrize("lang", ["pt", "en"])
def test_salient_facts(stores: tuple[data.Table, Profile], lang: str) -> None:
    table, prof = stores
    found = salient_facts(table, prof, limit=50)
    ctx = _ctx(lang, prof)
    for (kind, *columns), expected in SALIENT[lang].items():
        fact = _pick(found, kind, *columns)
        assert describe(fact, ctx) == expected
    for fact in found:  # every kind this table yields, including the ones not spelled out
        assert _traced(describe(fact, ctx), [fact], lang), describe(fact, ctx)


def _orders() -> list[dict[str, Any]]:
    prices = [10.0, 11.0, 12.0, 13.0, 14.0, 100.0]
    return [
        {
            "pedido_id": n + 1,
            "loja": "A" if n < 3 else "B",
            "canal": "online" if n in (1, 4) else "balcao",
            "preco": price,
        }
        for n, price in enumerate(prices)
    ]


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        (
            "pt",
            {
                (
                    "outliers",
                    "preco",
                    "pedido_id",
                ): f"preco tem 1 valor atípico fora do intervalo de {R}7,50 "
                f"a {R}17,50; o mais extremo é {R}100,00 (pedido_id 6).",
                ("top_segment", "loja", "preco"): f"Loja B tem a maior média de preco: {R}42,33, "
                f"contra {R}26,67 no geral.",
                ("share", "canal"): "O valor mais comum de canal é balcao, com 66,7% das linhas "
                "que têm um valor (4).",
                ("correlation", "visitas", "cliques"): "visitas e cliques têm correlação forte e "
                "positiva (r = 1,00 em 6 linhas).",
            },
        ),
        (
            "en",
            {
                (
                    "outliers",
                    "preco",
                    "pedido_id",
                ): "preco has 1 outlier value outside R$7.50 to R$17.50; the most "
                "extreme is R$100.00 (pedido_id 6).",
                ("top_segment", "loja", "preco"): "Loja B has the highest average preco: "
                "R$42.33, against R$26.67 overall.",
                ("share", "canal"): "The most common canal is balcao, with 66.7% of the rows that "
                "have one (4).",
                ("correlation", "visitas", "cliques"): "visitas and cliques are strongly "
                "positively correlated (r = 1.00 over 6 rows).",
            },
        ),
    ],
)
def test_outliers_averages_shares_correlations(lang: str, expected: dict[Any, str]) -> None:
    visits = [{"visitas": 10 * n, "cliques": n} for n in range(1, 7)]
    computed: dict[tuple[str, ...], tuple[Fact, Profile]] = {}
    for rows in (_orders(), visits):
        with data.from_records(rows, LIMITS) as table:
            prof = profile(table)
            for fact in salient_facts(table, prof, limit=50):
                computed[(fact.kind, *fact.columns)] = (fact, prof)
    for key, sentence in expected.items():
        fact, prof = computed[key]
        assert describe(fact, _ctx(lang, prof)) == sentence
        assert _traced(sentence, [fact], lang)


def test_weekly_trends_name_the_week() -> None:
    rows = [{"dia": f"2024-03-{4 + 7 * w:02d}", "vendas": 100 + 10 * w} for w in range(4)]
    with data.from_records(rows, LIMITS) as table:
        prof = profile(table)
        trend = _pick(salient_facts(table, prof, limit=50), "trend", "dia", "vendas")
    text = describe(trend, _ctx("pt", prof))
    assert text.startswith(f"O total de vendas por semana foi de {R}100,00 na semana de 4 de ")
    assert "alta de 8,3% em relação a R$\xa0120,00 na semana de 18 de mar. de 2024." in text
    assert "in the week of Mar 4, 2024" in describe(trend, _ctx("en", prof))


# --- the answer ------------------------------------------------------------------------------


def _answer(
    table: data.Table, prof: Profile, question: str, lang: str, plan: Plan | None
) -> tuple[dict[str, Any], list[Fact]]:
    planned = facts_for_plan(table, prof, plan) if plan is not None else []
    found = planned + salient_facts(table, prof, limit=6, exclude=planned)
    for number, fact in enumerate(found, start=1):
        fact.id = f"f{number}"
    ctx = _ctx(lang, prof, plan, planned)
    return build_answer(question=question, facts=found, ctx=ctx).as_dict(), found


@pytest.mark.parametrize(
    ("lang", "question", "missing"),
    [
        (
            "pt",
            "Qual loja vendeu mais e qual foi o custo?",
            "Os dados não têm uma coluna de custo.",
        ),
        ("en", "Which store sold the most, and what did it cost?", "The data has no cost column."),
    ],
)
def test_the_answer_answers_and_says_what_it_cannot(
    stores: tuple[data.Table, Profile], lang: str, question: str, missing: str
) -> None:
    table, prof = stores
    plan = Plan(measures=[Measure(column="receita", agg="sum")], dimensions=["loja"])
    answer, found = _answer(table, prof, question, lang, plan)
    assert answer["language"] == ("pt-BR" if lang == "pt" else "en")
    sentences = answer["sentences"]
    assert [s["facts"] for s in sentences] == [["f1"], ["f2"], []]
    assert sentences[-1] == {"text": missing, "facts": [], "kind": "missing"}
    assert answer["text"] == " ".join(s["text"] for s in sentences)
    top = "A tem o maior total de receita" if lang == "pt" else "A has the highest total receita"
    assert top in sentences[1]["text"]
    by_id = {f.id: f for f in found}
    for sentence in sentences[:-1]:
        assert _traced(sentence["text"], [by_id[i] for i in sentence["facts"]], lang)


def test_a_column_that_exists_is_not_missing(stores: tuple[data.Table, Profile]) -> None:
    _, prof = stores
    assert missing_columns("Qual loja teve mais receita por mês?", prof) == []
    assert [c.en for c in missing_columns("Which customer bought most each month?", prof)] == [
        "customer"
    ]
    assert [c.pt for c in missing_columns("Qual o lucro e a margem?", prof)] == ["lucro", "margem"]


def test_a_question_without_a_plan_says_so(stores: tuple[data.Table, Profile]) -> None:
    table, prof = stores
    answer, _ = _answer(table, prof, "E aí, tudo bem com isso?", "pt", None)
    first, *rest = answer["sentences"]
    assert first["kind"] == "unmatched" and first["facts"] == []
    assert first["text"].startswith("A pergunta não corresponde a nenhuma coluna dos dados")
    assert len(rest) == 3 and all(s["facts"] for s in rest)


def _months_of_stores(growth: dict[str, float]) -> list[dict[str, object]]:
    """Three months of daily sales per store, each store's March ``growth`` times January."""
    rows: list[dict[str, object]] = []
    for month, factor in ((1, 0.0), (2, 0.5), (3, 1.0)):
        for day in range(1, 29):
            for store, grows in growth.items():
                rows.append(
                    {
                        "data": f"2024-{month:02d}-{day:02d}",
                        "loja": store,
                        "vendas": round(100.0 * (1 + grows * factor), 2),
                    }
                )
    return rows


def test_which_segment_grew_the_most_is_answered_first() -> None:
    """ "Which store grew the most": the largest change in percent (Sul, +50%), though Centro
    added more money; when none grew, the one that fell least, said as such."""
    rows = _months_of_stores({"Centro": 0.25, "Norte": -0.1, "Sul": 0.5})
    rows = [{**r, "vendas": r["vendas"] * (10 if r["loja"] == "Centro" else 1)} for r in rows]
    pt = rules_answer(rows, "Qual loja cresceu mais de janeiro para março?", "pt")
    assert pt.startswith(
        f"Sul foi o que mais cresceu: +50,0% no total de vendas, de {R}2.800,00 em janeiro de "
        f"2024 para {R}4.200,00 em março de 2024."
    ), pt
    # The data ends on 28 March: the comparison says March is not whole.
    assert "Março de 2024 só tem dados até 28 de mar. de 2024." in pt
    en = rules_answer(rows, "Which store grew the most from January to March?", "en")
    assert en.startswith("Sul grew the most: +50.0% in total vendas, from R$2,800.00 in"), en
    assert "The data for March 2024 only runs to Mar 28, 2024." in en
    fell = rules_answer(rows, "Which store fell the most from January to March?", "en")
    assert fell.startswith("Norte fell the most: −10.0% in total vendas"), fell
    shrinking = _months_of_stores({"Centro": -0.25, "Norte": -0.1, "Sul": -0.5})
    none = rules_answer(shrinking, "Qual loja cresceu mais de janeiro para março?", "pt")
    assert none.startswith("Nenhuma loja cresceu; o que menos caiu foi Norte: −10,0%"), none
    # A hundredth of a percent is a growth, written as one: not "+0,0%".
    barely = _months_of_stores({"Centro": 0.0001, "Norte": -0.1, "Sul": -0.2})
    tiny = rules_answer(barely, "Qual loja cresceu mais de janeiro para março?", "pt")
    assert tiny.startswith("Centro foi o que mais cresceu: +0,010% no total de vendas"), tiny


def test_growth_within_one_period_is_against_the_one_before() -> None:
    """ "Qual loja teve o maior crescimento no último trimestre?" on monthly rows (dated the
    first of each month): the last quarter against the one before, per store; the last row,
    1 December, stands for the whole of December, so no quarter is said to be partial."""
    rows = [
        {"mes": f"2024-{m:02d}-01", "loja": loja, "faturamento": base * (1.5 if m >= 10 else 1)}
        for m in range(1, 13)
        for loja, base in (("Centro", 1000.0), ("Sul", 100.0 if m < 10 else 80.0))
    ]
    pt = rules_answer(
        rows, "Qual loja teve o maior crescimento de faturamento no último trimestre?", "pt"
    )
    assert pt.startswith(
        f"Centro foi o que mais cresceu: +50,0% no total de faturamento, de {R}3.000,00 no 3º "
        f"trimestre de 2024 para {R}4.500,00 no 4º trimestre de 2024."
    ), pt
    assert "só tem dados" not in pt
