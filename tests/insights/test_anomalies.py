"""Anomaly facts over real DuckDB tables: drops and spikes per store per week, a trend that is
not an anomaly, the sentences in pt-BR and English, and the question words that ask for them.

The data are issue 14's: 26 weeks (Mondays from 2024-01-01) of three stores, each on a gentle
upward line; Norte's sales fall to 40% in weeks 20 and 21 (the weeks of 13 and 20 May 2024).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import date, timedelta

import pytest

from billumy.insights import data
from billumy.insights.anomalies import (
    Direction,
    Scope,
    anomaly_fact,
    asked_direction,
    plan_scope,
)
from billumy.insights.answer import build_answer
from billumy.insights.formats import for_language
from billumy.insights.model import Fact
from billumy.insights.planned import facts_for_plan
from billumy.insights.profile import profile
from billumy.insights.rules import rule_plan
from billumy.insights.salient import salient_facts
from billumy.insights.statements import Context, describe
from billumy.insights.verify import check

BASES = {"Centro": 5000.0, "Norte": 4000.0, "Sul": 3000.0}
Shape = Callable[[str, int], float]


def _line(store: str, week: int) -> float:
    return BASES[store] + 20 * week


def _wobbly(store: str, week: int) -> float:
    # A small deterministic wobble (up to 1.5%) around the line, different per store.
    return _line(store, week) + ((week * 7 + len(store)) % 5 - 2) * 0.0075 * BASES[store]


def _norte_drops(shape: Shape) -> Shape:
    def sales(store: str, week: int) -> float:
        value = shape(store, week)
        return value * 0.4 if store == "Norte" and week in (20, 21) else value

    return sales


def _rows(sales: Shape, weeks: int = 26) -> list[dict[str, object]]:
    monday = date(2024, 1, 1)
    return [
        {
            "semana": week,
            "data": (monday + timedelta(weeks=week - 1)).isoformat(),
            "loja": store,
            "vendas_reais": round(sales(store, week), 2),
            "itens": int(sales(store, week) // 25),
        }
        for week in range(1, weeks + 1)
        for store in BASES
    ]


def _fact(sales: Shape, direction: Direction = "both", **scope: object) -> Fact:
    with data.from_records(_rows(sales)) as table:
        prof = profile(table)
        found = plan_scope(table, prof, None)
        assert found is not None
        fact = anomaly_fact(table, dataclasses.replace(found, **scope), direction, keep_empty=True)  # type: ignore[arg-type]
    assert fact is not None and fact.kind == "anomaly"
    return fact


def _ctx(lang: str, asked: Fact | None = None) -> Context:
    """The context of a sentence; ``asked``: the fact answers the question (a yes/no)."""
    with data.from_records(_rows(_line)) as table:
        return Context(for_language(lang), profile(table), planned={asked.id} if asked else set())


def test_the_issue_s_weekly_data_finds_norte_s_two_weeks_as_drops() -> None:
    sales = _norte_drops(_wobbly)
    fact = _fact(sales)
    found = sorted((r["segment"], r["period"], r["direction"]) for r in fact.rows)
    assert found == [("Norte", "2024-05-13", "drop"), ("Norte", "2024-05-20", "drop")]
    severity = [abs(r["change_pct"]) for r in fact.rows]  # type: ignore[arg-type]
    assert severity == sorted(severity, reverse=True)
    for row in fact.rows:
        week = 20 if row["period"] == "2024-05-13" else 21
        assert row["value"] == round(sales("Norte", week), 2)
        expected = row["expected"]
        assert isinstance(expected, float)
        # The trend line, not the drop: within the wobble of the line the data were built on.
        assert abs(expected - _line("Norte", week)) <= 0.02 * BASES["Norte"]
        assert row["change"] == pytest.approx(row["value"] - expected)
        assert row["change_pct"] == pytest.approx(100 * (row["value"] - expected) / expected)
        assert row["change_pct"] < -50  # type: ignore[operator]
    v = fact.values
    assert (v["count"], v["segment"], v["direction"], v["group_cases"]) == (2, "Norte", "drop", 2)
    assert (v["segments"], v["periods"], v["measure"], v["dimension"]) == (
        3,
        26,
        "vendas_reais",
        "loja",
    )
    assert v["group_value"] == pytest.approx(sum(r["value"] for r in fact.rows))  # type: ignore[misc]
    assert fact.sql.lstrip().startswith("WITH")


def test_a_strong_linear_trend_is_not_an_anomaly() -> None:
    def steep(store: str, week: int) -> float:
        # From about 500 to 10,500 a week: a least-squares-free median check would call the
        # ends drops and spikes.
        return (100 + 400 * week) * (1 + ((week * 3 + len(store)) % 5 - 2) * 0.01)

    fact = _fact(steep)
    assert fact.values["count"] == 0 and fact.rows == []
    assert fact.values["segments"] == 3 and fact.values["periods"] == 26

    def halved(store: str, week: int) -> float:
        # Week 20 of Norte halved: about week 10's level, ordinary for the series as a whole,
        # a drop only against the trend.
        return steep(store, week) * (0.5 if (store, week) == ("Norte", 20) else 1.0)

    dropped = _fact(halved)
    assert [(r["segment"], r["period"]) for r in dropped.rows] == [("Norte", "2024-05-13")]


def test_in_a_noisy_series_a_swing_of_its_usual_size_is_not_a_drop() -> None:
    # Swings of up to 24% every few weeks are this data's normal: the robust threshold
    # (3.5 scaled MADs) is what tells them from a drop, not the minimum size.
    def noisy(store: str, week: int) -> float:
        return _line(store, week) + ((week * 7 + len(store)) % 5 - 2) * 0.12 * BASES[store]

    assert _fact(noisy).values["count"] == 0
    assert _fact(_norte_drops(noisy)).values["count"] == 2


def test_a_small_dip_in_a_very_regular_series_is_not_a_drop() -> None:
    # On an exact line the MAD is 0, so any dip passes the robust threshold: the minimum size
    # (20% of the expected value) is what keeps a 10% dip from being called a drop.
    def dip(store: str, week: int) -> float:
        return _line(store, week) * (0.9 if (store, week) == ("Sul", 8) else 1.0)

    assert _fact(dip).values["count"] == 0
    deeper = _fact(lambda store, week: dip(store, week) * (0.7 if week == 8 else 1.0))
    assert {(r["segment"], r["period"]) for r in deeper.rows} >= {("Sul", "2024-02-19")}


def test_a_spike_is_a_spike_and_the_direction_filter_holds() -> None:
    def sul_spike(store: str, week: int) -> float:
        value = _wobbly(store, week)
        return value * 2.5 if store == "Sul" and week == 10 else value

    both = _fact(sul_spike)
    assert [(r["segment"], r["period"], r["direction"]) for r in both.rows] == [
        ("Sul", "2024-03-04", "spike")
    ]
    assert both.rows[0]["change_pct"] > 100  # type: ignore[operator]
    assert _fact(sul_spike, "spike").values["count"] == 1
    assert _fact(sul_spike, "drop").values["count"] == 0


def test_too_few_periods_are_not_judged() -> None:
    rows = [r for r in _rows(_norte_drops(_line)) if r["semana"] in range(15, 19)]  # 4 weeks
    with data.from_records(rows) as table:
        scope = plan_scope(table, profile(table), None)
        assert scope is not None
        assert anomaly_fact(table, scope) is None
        empty = anomaly_fact(table, scope, keep_empty=True)
    assert empty is not None and empty.values["count"] == 0 and empty.values["segments"] == 0
    # Nothing was judged, so the sentence must not say "no".
    assert describe(empty, _ctx("pt")) == (
        "Não dá para dizer se vendas_reais teve queda ou pico fora do normal: há só 4 semanas "
        "de dados, e são precisos pelo menos 5."
    )
    assert describe(empty, _ctx("en")) == (
        "Cannot tell whether vendas_reais had an unusual drop or spike: there are only 4 weeks "
        "of data, and at least 5 are needed."
    )
    assert "Cannot tell" in empty.statement


def test_the_total_is_checked_when_there_is_no_dimension() -> None:
    fact = _fact(_norte_drops(_line), "drop", dimension=None)
    assert fact.values["dimension"] is None and fact.values["segments"] == 1
    assert {r["segment"] for r in fact.rows} == {None}
    assert {r["period"] for r in fact.rows} <= {"2024-05-13", "2024-05-20"}


def test_the_yes_sentences_in_both_languages() -> None:
    # On the exact line, the expected values are the line's: 4,400 and 4,420.
    fact = _fact(_norte_drops(_line), "drop")
    assert describe(fact, _ctx("pt", fact)) == (
        "Sim: Norte teve queda forte nas semanas de 13 e 20 de mai. de 2024: "
        "R$\xa03.528,00 contra R$\xa08.820,00 esperados (−60,0%)."
    )
    assert describe(fact, _ctx("en", fact)) == (
        "Yes: Norte dropped sharply in the weeks of May 13 and May 20, 2024: "
        "R$3,528.00 against an expected R$8,820.00 (−60.0%)."
    )
    # Among the notable facts of an answer to another question, it states the case, no "yes".
    assert describe(fact, _ctx("pt")).startswith("Norte teve queda forte")
    assert describe(fact, _ctx("en")).startswith("Norte dropped sharply")


def test_the_no_sentences_say_what_was_checked() -> None:
    fact = _fact(_wobbly, "drop")
    assert describe(fact, _ctx("pt")) == (
        "Não: nenhuma loja teve queda fora do normal em vendas_reais "
        "(3 lojas, 26 semanas verificadas)."
    )
    assert describe(fact, _ctx("en")) == (
        "No: no loja had an unusual drop in vendas_reais (3 segments, 26 weeks checked)."
    )


def test_a_series_kept_to_some_rows_says_whose_it_is() -> None:
    """ "Houve algum mês anormal nas vendas do Norte?": the series are the Norte's rows, and
    the answer, yes or no, says so."""
    fact = _fact(_norte_drops(_line), "drop", dimension=None, kept=(("loja", "Norte"),))
    assert describe(fact, _ctx("pt", fact)).startswith(
        "Sim: para loja Norte, vendas_reais teve queda forte nas semanas de 13 e 20 de mai."
    )
    assert describe(fact, _ctx("en", fact)).startswith(
        "Yes: for loja Norte, vendas_reais dropped sharply in the weeks of May 13 and May 20"
    )
    assert describe(fact, _ctx("pt")).startswith("Para loja Norte, vendas_reais teve queda")
    calm = _fact(_wobbly, "drop", dimension=None, kept=(("loja", "Sul"),))
    assert describe(calm, _ctx("pt")) == (
        "Não: para loja Sul, vendas_reais não teve queda fora do normal (26 semanas verificadas)."
    )
    assert describe(calm, _ctx("en")) == (
        "No: for loja Sul, vendas_reais had no unusual drop (26 weeks checked)."
    )


def test_other_cases_follow_the_largest_one() -> None:
    def two_stores(store: str, week: int) -> float:
        value = _norte_drops(_line)(store, week)
        return value * 1.5 if store == "Centro" and week == 5 else value

    fact = _fact(two_stores)
    assert describe(fact, _ctx("pt")).endswith(
        "Outros casos: Centro na semana de 29 de jan. de 2024 (+50,0%)."
    )
    assert describe(fact, _ctx("en")).endswith(
        "Other cases: Centro in the week of Jan 29, 2024 (+50.0%)."
    )


@pytest.mark.parametrize("lang", ["pt", "en"])
def test_the_verifier_traces_every_number_of_the_sentences(lang: str) -> None:
    for sales in (_norte_drops(_wobbly), _wobbly):
        fact = _fact(sales, "drop")
        fact.id = "f1"
        fact.statement = describe(fact, _ctx(lang))
        assert check(fact.statement, [fact], lang).verified, fact.statement
        # The amounts, percentages and counts come from the values, not from the sentence
        # itself: without it only the days of the month stay unsupported.
        bare = dataclasses.replace(fact, statement="")
        result = check(fact.statement, [bare], lang)
        assert {m.text for m in result.unsupported} <= {"13", "20"}, result.unsupported


def test_the_answer_puts_the_anomaly_first() -> None:
    rows = _rows(_norte_drops(_line))
    with data.from_records(rows) as table:
        prof = profile(table)
        plan = rule_plan("Alguma loja teve queda forte nas vendas? Qual e quando?", prof)
        assert plan is not None
        planned = facts_for_plan(table, prof, plan)
        scope = plan_scope(table, prof, plan)
        assert isinstance(scope, Scope)
        anomaly = anomaly_fact(table, scope, "drop", keep_empty=True)
    assert anomaly is not None
    anomaly.id = "f9"
    ctx = Context(for_language("pt"), prof, plan, {f.id for f in [*planned, anomaly]})
    answer = build_answer(question="Alguma loja teve queda?", facts=[*planned, anomaly], ctx=ctx)
    assert answer.sentences[0].facts == ["f9"]
    assert answer.sentences[0].text.startswith("Sim: Norte teve queda forte nas semanas de 13 e 20")


def test_a_found_anomaly_ranks_among_the_salient_facts() -> None:
    fact = _fact(_norte_drops(_line))
    with data.from_records(_rows(_norte_drops(_line))) as table:
        salient = salient_facts(table, profile(table), limit=4, extra=[fact])
    assert "anomaly" in [f.kind for f in salient]


@pytest.mark.parametrize(
    ("question", "direction"),
    [
        ("Alguma loja teve queda forte nas vendas? Qual e quando?", "drop"),
        ("Em que semana as vendas caíram?", "drop"),
        ("As vendas despencou em maio?", "drop"),
        ("Houve quedas nas vendas?", "drop"),
        ("Teve algum pico de vendas?", "spike"),
        ("Quais foram os saltos?", "spike"),
        ("Algum mês foi anômalo?", "both"),
        ("Houve alguma anomalia?", "both"),
        ("Algum valor fora do normal?", "both"),
        ("Vendas atípicas por loja", "both"),
        ("Picos e quedas por loja", "both"),
        ("Did any store's sales drop?", "drop"),
        ("When did sales fall?", "drop"),
        ("Which week had a spike?", "spike"),
        ("Any unusual weeks?", "both"),
        ("Show me the outliers", "both"),
        ("Was any month abnormal?", "both"),
        ("Qual loja vendeu mais?", None),
        ("Which store sold the most, and how did sales change over the weeks?", None),
    ],
)
def test_the_question_reader(question: str, direction: str | None) -> None:
    assert asked_direction(question) == direction


def _hires(spike: int) -> list[dict[str, object]]:
    """24 months of hires for two departments: small counts (2 to 6) on a steady level, with
    Sales' July 2024 at ``spike``."""
    rows: list[dict[str, object]] = []
    for month in range(24):
        day = date(2023 + month // 12, month % 12 + 1, 1).isoformat()
        for dept, base in (("Sales", 4), ("Support", 3)):
            hires = base + (0, 1, -1, 0, 1, 0, -1)[(month + len(dept)) % 7]
            if dept == "Sales" and month == 18:
                hires = spike
            rows.append({"month": day, "department": dept, "hires": hires})
    return rows


@pytest.mark.parametrize(("spike", "flagged"), [(10, False), (22, True)])
def test_small_counts_need_more_than_their_poisson_noise(spike: int, flagged: bool) -> None:
    # Months of 3 to 5 hires sit within 1 of their line (MAD 1): by the MAD alone a 10 is a
    # spike (6 over 4, more than 3.5 · 1.4826 = 5.2; the 20% floor is no help at these sizes).
    # Counts that small swing by √4 = 2 for no reason: 10 is within 3.5 · 2, 22 is news.
    with data.from_records(_hires(spike)) as table:
        prof = profile(table)
        scope = plan_scope(table, prof, None)
        assert scope is not None and scope.measure == "hires" and scope.grain == "month"
        fact = anomaly_fact(table, scope, "spike", keep_empty=True)
        without = anomaly_fact(
            table, dataclasses.replace(scope, dtype="DOUBLE"), "spike", keep_empty=True
        )
    assert fact is not None and without is not None
    cases = [(r["segment"], r["period"]) for r in fact.rows]
    assert cases == ([("Sales", "2024-07")] if flagged else [])
    # The same series read as money (no Poisson floor) does call the 10 a spike.
    assert ("Sales", "2024-07") in [(r["segment"], r["period"]) for r in without.rows]


@pytest.mark.parametrize(
    ("question", "direction"),
    [
        ("Teve algum pico anormal de vendas?", "spike"),
        ("Any unusual drop?", "drop"),
        ("Algo anormal nas vendas?", "both"),
        ("O atraso fugiu do padrão?", "both"),
        ("Was there a week where some team got way more tickets than usual?", "spike"),
        ("Teve semana com bem menos pedidos que o normal?", "drop"),
        ("Did resolution times blow up in some week?", "spike"),
        ("Which store sold more than Sul?", None),
        ("Did orders crash on any day?", "drop"),
    ],
)
def test_a_word_of_anomaly_keeps_the_direction_asked(question: str, direction: str | None) -> None:
    assert asked_direction(question) == direction


def _loans() -> list[dict[str, object]]:
    """Monthly loan book per product: what was lent (one month of Rural lending triples) and
    the month's average rate of interest (steady)."""
    return [
        {"mes": date(2023 + (m - 1) // 12, (m - 1) % 12 + 1, 1), "produto": product,
         "valor_contratado": base * (3.0 if (product, m) == ("Rural", 9) else 1.0) + 100 * m,
         "taxa_media_mensal": rate + 0.01 * (m % 3)}
        for m in range(1, 19)
        for product, base, rate in (("Rural", 50_000.0, 0.95), ("Pessoal", 20_000.0, 3.4))
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("question", "lang", "opening"),
    [
        # The rate of interest is the book's rate column: steady, so no.
        ("A taxa de juros de algum produto subiu fora do normal em algum mês?", "pt", "Não"),
        ("Did the interest rate of any product spike in any month?", "en", "No"),
        # No column of cost: Rural's lending spike is no answer to it, and no "yes".
        ("O custo de captação de algum produto subiu fora do normal?", "pt", "Os dados não"),
        ("Did our funding cost spike in any month?", "en", "The data has no"),
    ],
)
def test_an_anomaly_is_judged_on_the_measure_asked_or_not_at_all(
    question: str, lang: str, opening: str
) -> None:
    from billumy.insights import question as questions
    from billumy.insights.service import InsightService
    from tests.insights_data import service_plan

    with data.from_records(_loans()) as table:
        prof = profile(table)
        asked = questions.parse(question, prof)
        plan = service_plan(question, prof)
        found, planned = InsightService._facts(table, prof, plan, 3, question, asked)
    ctx = Context(for_language(lang), prof, plan, planned)
    for fact in found:
        fact.statement = describe(fact, ctx)
    answer = build_answer(question=question, facts=found, ctx=ctx, most=3)
    assert answer.text.startswith(opening), answer.text
    anomaly = next(f for f in found if f.kind == "anomaly")
    if opening in ("Não", "No"):
        assert anomaly.id in planned and anomaly.values["measure"] == "taxa_media_mensal"
        assert anomaly.values["dimension"] == "produto"
    else:
        # Rural's spike may be told as a notable fact, never as the answer.
        assert anomaly.id not in planned
        assert not re.match(r"(Sim|Yes)\b", answer.text)
