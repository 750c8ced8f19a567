"""Periods and times of day read from questions: a comparison of a period the data holds only
in part, spans of days in one month, last weekend, and hours beside a day.

Every expected number is computed here by its own DuckDB query over the same rows, never read
back from the facts; each answer is read whole, in both languages."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any

import duckdb

from billumy.insights import data
from billumy.insights import question as questions
from billumy.insights.checker import ClaimChecker
from billumy.insights.evidence import read_fact
from billumy.insights.model import Fact
from billumy.insights.periods import Span, label_span
from billumy.insights.plan import Plan
from billumy.insights.profile import profile
from billumy.insights.verify import check
from tests.insights_data import rules_run

R = "R$\xa0"  # CLDR writes a no-break space between R$ and the amount


def _reference(rows: list[dict[str, Any]], sql: str, params: list[Any] | None = None) -> Any:
    """An independent answer: DuckDB over the same rows (table ``t``), with SQL written here."""
    names = list(rows[0])
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({', '.join(_ddl(n, rows[0][n]) for n in names)})")
    con.executemany(
        f"INSERT INTO t VALUES ({', '.join('?' for _ in names)})",  # noqa: S608
        [[r[n] for n in names] for r in rows],
    )
    return con.execute(sql, params or []).fetchall()[0][0]


def _ddl(name: str, value: Any) -> str:
    if isinstance(value, date):
        return f"{name} DATE"
    if isinstance(value, float):
        return f"{name} DOUBLE"
    return f"{name} {'BIGINT' if isinstance(value, int) else 'VARCHAR'}"


def _ask(rows: list[dict[str, Any]], text: str, lang: str) -> tuple[str, list[Fact], Plan | None]:
    """The answer to ``text`` (narrative off), the facts behind it and the plan."""
    run = rules_run(rows, text, lang)
    return run.text, run.found, run.plan


def _windows(rows: list[dict[str, Any]], text: str) -> list[tuple[str, date, date]]:
    with data.from_records(rows) as table:
        asked = questions.parse(text, profile(table))
    return [(w.label, w.start, w.end) for w in asked.windows if w.start and w.end]


def _money(value: float) -> str:
    """``R$ 1.234,50``, as the Portuguese answer writes money."""
    whole = f"{value:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
    return f"{R}{whole}"


# --- a period the data holds only in part, compared like with like -----------------------------


def _pharmacies() -> list[dict[str, Any]]:
    """Monthly rows (dated the 1st) from July 2023 to December 2024: 2023 is half a year. Each
    store sells a round amount that grows by a step a month, Norte faster than Sul."""
    rows = []
    for n in range(18):
        month = date(2023 + (6 + n) // 12, (6 + n) % 12 + 1, 1)
        rows.append({"mes": month, "loja": "Norte", "faturamento": 1000.0 + 20.0 * n})
        rows.append({"mes": month, "loja": "Sul", "faturamento": 3000.0 + 10.0 * n})
    return rows


def test_a_year_held_in_part_is_compared_on_the_same_months() -> None:
    """2023 holds July to December only: "de 2023 para 2024" compares July-December of each
    year (never half a year against a whole one, +100% and more), says so, and every number
    comes from those months' rows."""
    rows = _pharmacies()

    def total(loja: str, year: int) -> float:
        where = f"year(mes) = {year} AND month(mes) >= 7" + (
            f" AND loja = '{loja}'" if loja else ""
        )
        return float(_reference(rows, f"SELECT sum(faturamento) FROM t WHERE {where}"))  # noqa: S608

    norte = (total("Norte", 2023), total("Norte", 2024))
    pct = 100 * (norte[1] - norte[0]) / norte[0]
    pt, found, _ = _ask(rows, "Qual loja cresceu mais em faturamento de 2023 para 2024?", "pt")
    shown = f"{pct:.1f}".replace(".", ",")
    assert pt.startswith(
        f"Norte foi o que mais cresceu: +{shown}% no total de faturamento, de "
        f"{_money(norte[0])} de jul. a dez. de 2023 para {_money(norte[1])} de jul. a dez. de "
        "2024."
    ), pt
    chain = (total("", 2023), total("", 2024))
    assert (
        f"O total de faturamento foi de {_money(chain[0])} de jul. a dez. de 2023 para "
        f"{_money(chain[1])} de jul. a dez. de 2024" in pt
    ), pt
    assert (
        "2023 só tem dados a partir de 1 de jul. de 2023; por isso a comparação é de jul. a "
        "dez. de 2023 contra jul. a dez. de 2024." in pt
    ), pt
    en, _, _ = _ask(rows, "Which store grew the most in revenue from 2023 to 2024?", "en")
    assert en.startswith(
        f"Norte grew the most: +{pct:.1f}% in total faturamento, from R${norte[0]:,.2f} in "
        f"July–December 2023 to R${norte[1]:,.2f} in July–December 2024."
    ), en
    assert (
        "The data for 2023 only starts on Jul 1, 2023, so July–December 2023 is compared "
        "against July–December 2024." in en
    ), en
    # The fact keeps the years asked about and says which months it measured; its numbers
    # and those months are what a verifier checks a sentence against.
    (change,) = [f for f in found if f.kind == "change"]
    assert (change.values["period_a"], change.values["period_b"]) == ("2023", "2024")
    assert (change.values["span_a"], change.values["span_b"]) == (
        "2023-07-01/2023-12-31",
        "2024-07-01/2024-12-31",
    )
    assert Span(date(2024, 7, 1), date(2025, 1, 1)) in read_fact(change, "en").spans
    sentence = next(s for s in en.split(". ") if s.startswith("Total faturamento went"))
    bare = dataclasses.replace(change, statement="", id="f1")
    assert check(sentence, [bare], "en").verified, sentence
    # A narrative's claims are checked against those months: the numbers said of July to
    # December agree, the same numbers said of January to June do not.
    with data.from_records(rows) as table:
        checker = ClaimChecker([bare], "pt", profile(table))
    said = f"O faturamento foi de {_money(chain[0])} de jul. a dez. de 2023 para {_money(chain[1])}"
    assert checker.check_sentence(f"{said} de jul. a dez. de 2024.").kept
    wrong = checker.check_sentence(f"{said} de jan. a jun. de 2024.")
    assert [c.kind for c in wrong.failed] == ["period"], wrong


def test_a_year_still_running_is_compared_with_the_same_days_of_the_year_before() -> None:
    """Daily rows up to 23 June 2025: 2025 against 2024 is 1 January to 23 June of each year
    (year to date against the same days of the year before)."""
    first = date(2024, 1, 1)
    rows = [
        {"dia": first + timedelta(days=n), "vendas": 10.0 + (n % 7)}
        for n in range((date(2025, 6, 23) - first).days + 1)
    ]
    between = "SELECT sum(vendas) FROM t WHERE dia BETWEEN ? AND ?"
    ytd = [float(_reference(rows, between, [f"{y}-01-01", f"{y}-06-23"])) for y in (2024, 2025)]
    pt, _, _ = _ask(rows, "Compare as vendas de 2024 com as de 2025", "pt")
    assert pt.startswith(
        f"O total de vendas foi de {_money(ytd[0])} de 1 de jan. a 23 de jun. de 2024 "
        f"para {_money(ytd[1])} de 1 de jan. a 23 de jun. de 2025"
    ), pt
    assert "2025 só tem dados até 23 de jun. de 2025; por isso a comparação é" in pt, pt
    en, _, _ = _ask(rows, "Compare sales in 2024 with 2025", "en")
    assert en.startswith(
        f"Total vendas went from R${ytd[0]:,.2f} in Jan 1–Jun 23, 2024 to R${ytd[1]:,.2f} in "
        "Jan 1–Jun 23, 2025"
    ), en
    # Two whole years are compared whole, as before.
    whole, _, _ = _ask(
        [r for r in rows if r["dia"] < date(2025, 1, 1)],
        "Compare as vendas do 1º e do 2º semestre",
        "pt",
    )
    assert "só tem dados" not in whole and "1º semestre de 2024" in whole, whole
    # Deliveries on working days, 2 January to Friday 28 June: both quarters are whole (a
    # holiday and a closing weekend are no part missing).
    working = [r for r in rows if r["dia"].weekday() < 5 and date(2024, 1, 2) <= r["dia"]]
    working = [r for r in working if r["dia"] <= date(2024, 6, 28)]
    quarters, found, _ = _ask(working, "Compare sales in Q1 vs Q2", "en")
    (change,) = [f for f in found if f.kind == "change"]
    assert "span_a" not in change.values, quarters
    assert quarters.startswith("Total vendas went from"), quarters
    assert "in the 1st quarter 2024 to" in quarters, quarters


def test_a_span_of_days_label_covers_its_days() -> None:
    assert label_span("2023-07-01/2023-12-31") == Span(date(2023, 7, 1), date(2024, 1, 1))
    assert label_span("2023-12-31/2023-07-01") is None


# --- spans of days in one month, and last weekend ----------------------------------------------


def _days(last: date, first: date = date(2024, 5, 1)) -> list[dict[str, Any]]:
    """Daily rows of two stores from ``first`` to ``last``: the day of the month in sales, so a
    sum over days can be checked by hand."""
    return [
        {"dia": day, "loja": loja, "vendas": float(day.day) * factor}
        for n in range((last - first).days + 1)
        for day in [first + timedelta(days=n)]
        for loja, factor in (("Centro", 1), ("Sul", 10))
    ]


def test_a_span_of_days_names_its_month_once() -> None:
    """ "entre 3 e 12 de junho", "de 3 a 12 de junho", "between June 3 and 12", "June 3-12",
    "from 3 to 12 June": the day without a month takes the other end's; "3 e 12 de junho"
    without "entre" stays two days."""
    rows = _days(date(2024, 6, 30))
    span = [("2024-06-03/2024-06-12", date(2024, 6, 3), date(2024, 6, 13))]
    for text in (
        "Quanto vendemos entre 3 e 12 de junho?",
        "Quanto vendemos de 3 a 12 de junho?",
        "Quanto vendemos do dia 3 ao dia 12 de junho?",
        "How much did we sell between June 3 and 12?",
        "How much did we sell June 3-12?",
        "How much did we sell from 3 to 12 June?",
        "How much did we sell between 3 and 12 June 2024?",
    ):
        assert _windows(rows, text) == span, text
    assert [w[0] for w in _windows(rows, "Compare as vendas de 3 e 12 de junho")] == [
        "2024-06-03",
        "2024-06-12",
    ]
    expected = _reference(
        rows, "SELECT sum(vendas) FROM t WHERE dia BETWEEN '2024-06-03' AND '2024-06-12'"
    )
    assert expected == 11 * (3 + 12) * 10 / 2
    pt, _, _ = _ask(rows, "Quanto vendemos entre 3 e 12 de junho?", "pt")
    assert pt == (
        f"De 3 de jun. de 2024 a 12 de jun. de 2024, o total de vendas é {_money(expected)}."
    ), pt
    en, _, _ = _ask(rows, "How much did we sell between June 3 and 12?", "en")
    assert en == f"From Jun 3, 2024 to Jun 12, 2024, total vendas is R${expected:,.2f}.", en


def test_last_weekend_is_the_data_s_latest_whole_weekend() -> None:
    """ "o fim de semana passado", "last weekend": the Saturday and Sunday of the data's latest
    whole weekend; "este fim de semana", "this weekend": the latest it reaches."""
    sat, sun = date(2024, 6, 8), date(2024, 6, 9)
    weekend = [(f"{sat}/{sun}", sat, sun + timedelta(days=1))]
    wednesday = _days(date(2024, 6, 12))  # the data ends on a Wednesday
    for text in (
        "Quanto vendemos no fim de semana passado?",
        "Quanto vendemos no último fim de semana?",
        "Quanto vendemos neste fim de semana?",
        "How much did we sell last weekend?",
        "How much did we sell this weekend?",
    ):
        assert _windows(wednesday, text) == weekend, text
    saturday = _days(date(2024, 6, 15))  # on a Saturday: that weekend is not whole yet
    assert _windows(saturday, "How much did we sell last weekend?") == weekend
    next_one = [("2024-06-15/2024-06-16", date(2024, 6, 15), date(2024, 6, 17))]
    assert _windows(saturday, "Quanto vendemos neste fim de semana?") == next_one
    assert _windows(_days(date(2024, 6, 16)), "How much did we sell last weekend?") == next_one
    expected = _reference(
        wednesday, "SELECT sum(vendas) FROM t WHERE dia IN ('2024-06-08', '2024-06-09')"
    )
    pt, _, _ = _ask(wednesday, "Quanto vendemos no fim de semana passado?", "pt")
    assert (
        pt == f"De 8 de jun. de 2024 a 9 de jun. de 2024, o total de vendas é {_money(expected)}."
    )
    en, _, _ = _ask(wednesday, "How much did we sell last weekend?", "en")
    assert en == f"From Jun 8, 2024 to Jun 9, 2024, total vendas is R${expected:,.2f}.", en


# --- hours beside a day ------------------------------------------------------------------------


def _hours() -> list[dict[str, Any]]:
    """Hourly rows (a date and the hour each interval starts, 8 to 18) of two queues over ten
    days of March 2024: calls are the hour plus the day of the month; agents on the queue
    that hour (a stock) depend on the hour."""
    return [
        {
            "date": date(2024, 3, d),
            "hour": h,
            "queue": q,
            "calls_answered": h + d + k,
            "agents_logged": h % 5 + k // 50,
        }
        for d in range(4, 14)
        for h in range(8, 19)
        for q, k in (("Sales", 0), ("Support", 100))
    ]


def test_hours_of_a_day_are_read_beside_the_day() -> None:
    """ "em 12 de março entre 9h e 12h", "on March 12 between 9am and noon": that day's
    intervals of 9, 10 and 11; "às 10h", "at 10am" the one of 10; a day the data lacks is
    said as such, never answered with every day's calls."""
    rows = _hours()
    morning = _reference(
        rows,
        "SELECT sum(calls_answered) FROM t WHERE date = '2024-03-12' AND hour BETWEEN 9 AND 11",
    )
    assert morning == 2 * (9 + 10 + 11 + 3 * 12) + 3 * 100
    pt, _, plan = _ask(rows, "Quantas chamadas atendemos em 12 de março entre 9h e 12h?", "pt")
    assert pt == f"Em 12 de mar. de 2024 das 9h às 12h, o total de calls_answered é {morning}.", pt
    assert plan is not None and {(f.column, f.op, f.value) for f in plan.filters} >= {
        ("hour", ">=", 9),
        ("hour", "<", 12),
    }
    en, _, _ = _ask(rows, "How many calls did we answer on March 12 between 9am and noon?", "en")
    assert en == f"On Mar 12, 2024 from 9:00 to 12:00, total calls_answered is {morning}.", en
    ten = _reference(
        rows, "SELECT sum(calls_answered) FROM t WHERE date = '2024-03-12' AND hour = 10"
    )
    pt, _, _ = _ask(rows, "Quantas chamadas atendemos em 12 de março às 10h?", "pt")
    assert pt == f"Em 12 de mar. de 2024 às 10h, o total de calls_answered é {ten}.", pt
    en, _, _ = _ask(rows, "How many calls did we answer on March 12 at 10am?", "en")
    assert en == f"On Mar 12, 2024 at 10:00, total calls_answered is {ten}.", en
    # A level is read at the hour asked, said once.
    agents = _reference(
        rows, "SELECT sum(agents_logged) FROM t WHERE date = '2024-03-12' AND hour = 10"
    )
    pt, _, _ = _ask(rows, "Quantos agentes estavam logados em 12 de março às 10h?", "pt")
    assert pt == f"Em 12 de mar. de 2024 às 10h, o total de agents_logged é {agents}.", pt
    # 12 February is before the data: no rows, and where the data is.
    en, _, _ = _ask(rows, "How many calls did we answer on February 12 between 9am and noon?", "en")
    assert en.startswith("On Feb 12, 2024 from 9:00 to 12:00, no rows"), en
    assert "runs from Mar 4, 2024 to Mar 13, 2024" in en, en


def test_times_of_day_as_people_write_them() -> None:
    hours = questions.hours_asked
    assert hours("entre 9h e 12h") == (9, 12, "entre 9h e 12h")
    assert hours("das 9 às 12h30")[:2] == (9, 13)  # type: ignore[index]
    assert hours("de 14h a 18h")[:2] == (14, 18)  # type: ignore[index]
    assert hours("between 9am and noon")[:2] == (9, 12)  # type: ignore[index]
    assert hours("from 2 to 5pm")[:2] == (14, 17)  # type: ignore[index]
    assert hours("between 9:00 and 11:00")[:2] == (9, 11)  # type: ignore[index]
    assert hours("at 10am")[:2] == (10, 11)  # type: ignore[index]
    # Numbers that are no time of day.
    assert hours("entre 3 e 12 de junho") is None
    assert hours("between 9 and 12 stores") is None
    assert hours("top 10 at 3 stores") is None
