"""A store named as people name it, a ranking within it, and a short series read out.

The data: three bookstores whose names all start with "Livraria" (Centro, Aeroporto, Shopping
Norte), two genres, six months; the genres' February is three times the other months (back to
school). Every expected number is computed here by its own DuckDB query over the same rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from billumy.insights import data
from billumy.insights import question as questions
from billumy.insights.answer import build_answer
from billumy.insights.formats import for_language
from billumy.insights.model import Profile
from billumy.insights.plan import Filter, Plan
from billumy.insights.profile import profile
from billumy.insights.service import InsightService
from billumy.insights.statements import Context, describe
from billumy.insights.trends import _direction, _slope
from tests.insights_data import rules_run, service_plan

LIMITS = data.Limits(max_rows=10_000, max_columns=20, max_bytes=10_000_000)
STORES = {"Livraria Centro": 1.0, "Livraria Aeroporto": 0.5, "Livraria Shopping Norte": 1.5}
GENRES = {"Ficção": 100.0, "Didáticos": 60.0}


def _rows() -> list[dict[str, Any]]:
    rows = []
    for month in range(1, 7):
        for store, size in STORES.items():
            for genre, base in GENRES.items():
                # Didáticos sell most at the airport (travellers' guides), Ficção elsewhere.
                lean = 3.0 if store == "Livraria Aeroporto" and genre == "Didáticos" else 1.0
                copies = round(base * size * lean * (3 if month == 2 else 1) + month)
                rows.append(
                    {
                        "data": f"2024-{month:02d}-01",
                        "loja": store,
                        "genero": genre,
                        "exemplares": copies,
                        "receita_rs": round(copies * 49.9, 2),
                    }
                )
    return rows


@pytest.fixture(scope="module")
def shops() -> Iterator[tuple[data.Table, Profile]]:
    table = data.from_records(_rows(), LIMITS)
    with table:
        yield table, profile(table)


def _reference(sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t (data DATE, loja VARCHAR, genero VARCHAR, exemplares INTEGER, "
        "receita_rs DOUBLE)"
    )
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [tuple(r.values()) for r in _rows()])
    return con.execute(sql).fetchall()


def _answer(shops: tuple[data.Table, Profile], text: str, lang: str) -> tuple[Plan, str]:
    table, prof = shops
    asked = questions.parse(text, prof)
    plan = service_plan(text, prof)
    assert plan is not None
    found, planned = InsightService._facts(table, prof, plan, 3, text, asked)
    ctx = Context(for_language(lang), prof, plan, planned)
    for fact in found:
        fact.statement = describe(fact, ctx)
    parts = questions.coverage(asked, found, planned, plan)
    return plan, build_answer(question=text, facts=found, ctx=ctx, parts=parts).text


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Qual gênero vende mais na loja do aeroporto?", "pt"),
        ("Which genre sells the most at the airport store?", "en"),
        ("Which genre sells the most at Livraria Aeroporto?", "en"),
    ],
)
def test_a_ranking_within_one_named_store(
    shops: tuple[data.Table, Profile], text: str, lang: str
) -> None:
    plan, answer = _answer(shops, text, lang)
    assert plan.dimensions == ["genero"]
    assert Filter(column="loja", op="=", value="Livraria Aeroporto") in plan.filters
    ((top, total),) = _reference(
        "SELECT genero, sum(receita_rs) FROM t WHERE loja = 'Livraria Aeroporto' "
        "GROUP BY genero ORDER BY 2 DESC LIMIT 1"
    )
    assert top == "Didáticos"
    shown = f"{total:,.2f}"
    assert (
        shown.replace(",", "X").replace(".", ",").replace("X", ".") if lang == "pt" else shown
    ) in answer
    assert "100,0%" not in answer and "100.0%" not in answer
    assert "Não consegui" not in answer and "could not" not in answer.lower()


@pytest.mark.parametrize(
    ("text", "store"),
    [
        ("Quanto vendeu a loja Centro?", "Livraria Centro"),
        ("Quanto vendeu a loja do centro?", "Livraria Centro"),
        ("How much did the downtown store sell?", "Livraria Centro"),
        ("How much did the airport store sell?", "Livraria Aeroporto"),
        ("Quanto vendeu a loja do shopping?", "Livraria Shopping Norte"),
        # Both words left without "Livraria", said in English and in either order.
        ("How much did the north mall store sell?", "Livraria Shopping Norte"),
        ("Quanto vendeu a loja Shopping Norte?", "Livraria Shopping Norte"),
    ],
)
def test_a_store_named_by_the_word_its_name_does_not_share(
    shops: tuple[data.Table, Profile], text: str, store: str
) -> None:
    """ "Livraria" is in every store's name: the other word names the store, as it is or in
    the other language."""
    plan = service_plan(text, shops[1])
    assert plan is not None
    assert Filter(column="loja", op="=", value=store) in plan.filters


def test_a_word_every_value_shares_names_no_store(shops: tuple[data.Table, Profile]) -> None:
    plan = service_plan("Quanto vendeu cada livraria?", shops[1])
    assert plan is not None
    assert not [f for f in plan.filters if f.column == "loja"]


def test_one_outlying_period_makes_no_trend() -> None:
    """A least-squares line through a flat series with one high second month tilts down; the
    median slope does not, so the series is flat."""
    values = [100.0, 300.0, 100.0, 100.0, 100.0, 100.0]
    slope = _slope(values)
    assert slope is not None and slope < 0
    assert _direction(slope, values) == "flat"
    assert _direction(_slope([1.0, 2.0, 3.0, 4.0]), [1.0, 2.0, 3.0, 4.0]) == "up"
    assert _direction(_slope([9.0, 7.0, 8.0, 5.0]), [9.0, 7.0, 8.0, 5.0]) == "down"


@pytest.mark.parametrize(
    ("text", "lang", "heading", "peak"),
    [
        (
            "Como os exemplares vendidos evoluíram mês a mês?",
            "pt",
            "Mês a mês: janeiro de 2024 {}; fevereiro de 2024 {};",
            "O pico foi em fevereiro de 2024.",
        ),
        (
            "How did copies sold change month by month?",
            "en",
            "Month by month: January 2024 {}; February 2024 {};",
            "The peak was in February 2024.",
        ),
    ],
)
def test_a_short_series_asked_for_is_read_month_by_month(
    shops: tuple[data.Table, Profile], text: str, lang: str, heading: str, peak: str
) -> None:
    plan, answer = _answer(shops, text, lang)
    assert plan.period is not None and plan.period.grain == "month"
    months = _reference("SELECT month(data), sum(exemplares) FROM t GROUP BY 1 ORDER BY 1")
    sep = "." if lang == "pt" else ","
    shown = [f"{total:,}".replace(",", sep) for _, total in months]
    assert heading.format(shown[0], shown[1]) in answer
    assert all(s in answer for s in shown)
    assert peak in answer
    assert "tendência é estável" in answer or "trend is flat" in answer


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("How many books did each store sell?", "en"),
        ("Quantos livros cada loja vendeu?", "pt"),
        ("How many copies did each store sell?", "en"),
    ],
)
def test_how_many_sold_adds_up_the_copies_not_the_rows(
    shops: tuple[data.Table, Profile], text: str, lang: str
) -> None:
    """The books sold are the ``exemplares`` column's sum: every store has 12 rows, which is
    no answer to "how many books"."""
    plan, answer = _answer(shops, text, lang)
    assert [(m.column, m.agg) for m in plan.measures] == [("exemplares", "sum")]
    assert plan.dimensions == ["loja"]
    ranking = _reference("SELECT loja, sum(exemplares) FROM t GROUP BY 1 ORDER BY 2 DESC")
    sep = "." if lang == "pt" else ","
    for store, copies in ranking:
        assert f"{store} {copies:,}".replace(",", sep) in answer, answer


def test_a_trend_is_stated_at_its_median_rate() -> None:
    """A series rising by 10 a month with one month at 400: the least-squares rate is tilted
    by that month (+17.71), the stated rate is the median slope (+10)."""
    values = [100.0, 110.0, 120.0, 400.0, 140.0, 150.0]
    rows = [{"mes": f"2024-{i + 1:02d}-01", "vendas": v} for i, v in enumerate(values)]
    slope = _slope(values)
    assert slope is not None and round(slope, 2) == 17.71
    run = rules_run(rows, "Como as vendas evoluíram mês a mês?", "pt")
    (trend,) = [f for f in run.found if f.kind == "trend" and "vendas" in f.columns]
    assert trend.values["median_slope"] == 10.0
    assert "a tendência é de alta (+R$\xa010,00 por mês)" in run.text, run.text
    en = rules_run(rows, "How did sales change month by month?", "en").text
    assert "the trend is up (+R$10.00 per month)" in en, en
