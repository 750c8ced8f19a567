"""Periods named in prose (pt-BR and English) and periods facts cover, as spans of days."""

from __future__ import annotations

from datetime import date

import pytest

from billumy.insights.periods import Span, When, find_periods, label_span


def _days(text: str, language: str | None = None) -> list[list[tuple[int | None, int, int]]]:
    return [[(w.year, w.month, w.day) for w in m.whens] for m in find_periods(text, language)]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("nas semanas de 13 e 20 de mai. de 2024", [[(2024, 5, 13), (2024, 5, 20)]]),
        ("em 13 de maio", [[(None, 5, 13)]]),
        ("in the weeks of May 13 and May 20, 2024", [[(None, 5, 13)], [(2024, 5, 20)]]),
        ("on Mar 11, 2024", [[(2024, 3, 11)]]),
        ("em 2024-05-13 e 13/05/2024", [[(2024, 5, 13)], [(2024, 5, 13)]]),
        ("5th of May 2024", [[(2024, 5, 5)]]),
    ],
)
def test_days(text: str, found: list[list[tuple[int | None, int, int]]]) -> None:
    assert _days(text) == found


@pytest.mark.parametrize(
    ("text", "when"),
    [
        ("em março de 2024", When("month", 2024, 3)),
        ("em marco", When("month", None, 3)),
        ("in March 2024", When("month", 2024, 3)),
        ("in May", When("month", None, 5)),
        ("em mai. de 2024", When("month", 2024, 5)),
        ("em 2024-03", When("month", 2024, 3)),
        ("em 03/2024", When("month", 2024, 3)),
        ("na semana 20", When("week", None, number=20)),
        ("in week 20 of 2024", When("week", 2024, number=20)),
        ("em 2024-W20", When("week", 2024, number=20)),
        ("no 1º trimestre de 2024", When("quarter", 2024, number=1)),
        ("no primeiro trimestre", When("quarter", None, number=1)),
        ("in Q3 2024", When("quarter", 2024, number=3)),
        ("in 2024-Q2", When("quarter", 2024, number=2)),
        ("in the fourth quarter", When("quarter", None, number=4)),
    ],
)
def test_months_weeks_and_quarters(text: str, when: When) -> None:
    (mention,) = find_periods(text)
    assert mention.whens == (when,)
    assert text[mention.start : mention.end] == mention.text


@pytest.mark.parametrize(
    "text",
    [
        "7 out of 10 stores grew",  # "out" is October only next to a day or a year
        "sales may grow",
        "dez lojas cresceram",  # "dez" is ten
        "2 weeks ago",
        "a última semana foi boa",  # relative periods are not read
        "the top 3 stores",
        "R$ 2.024,00",
        "it grew 2024%",
    ],
)
def test_words_that_are_not_periods(text: str) -> None:
    assert find_periods(text) == []


def test_day_and_month_order_follows_the_language() -> None:
    assert _days("03/04/2024", "pt") == [[(2024, 4, 3)]]
    assert _days("03/04/2024", "en") == [[(2024, 3, 4)]]
    assert _days("13/04/2024", "en") == [[(2024, 4, 13)]]


def test_spans() -> None:
    assert When("week", 2024, number=20).span() == Span(date(2024, 5, 13), date(2024, 5, 20))
    assert When("month", None, 2).span(2024) == Span(date(2024, 2, 1), date(2024, 3, 1))
    assert When("quarter", 2024, number=4).span() == Span(date(2024, 10, 1), date(2025, 1, 1))
    assert When("day", 2023, 2, 29).span() is None
    assert When("week", 2021, number=53).span() is None
    assert When("month", None, 5).span() is None  # no year known


def test_fact_labels() -> None:
    assert label_span("2024-05-13") == Span(date(2024, 5, 13), date(2024, 5, 14))
    assert label_span("2024-05-13", "week") == Span(date(2024, 5, 13), date(2024, 5, 20))
    assert label_span("2024-05-13 00:00:00") == Span(date(2024, 5, 13), date(2024, 5, 14))
    assert label_span("2024-03") == Span(date(2024, 3, 1), date(2024, 4, 1))
    assert label_span("2024-Q1") == Span(date(2024, 1, 1), date(2024, 4, 1))
    assert label_span("2024") is None and label_span(2024) is None
    assert label_span("2024", bare_year=True) == Span(date(2024, 1, 1), date(2025, 1, 1))
    assert label_span("Norte") is None and label_span(None) is None and label_span(3.5) is None
