"""Every number in a text must be traced to a fact: extraction and support."""

from __future__ import annotations

import math

import pytest

from billumy.insights.model import Fact
from billumy.insights.verify import (
    NumberMention,
    check,
    extract_numbers,
    supported_by,
)

TREND = Fact(
    id="f1",
    kind="period_change",
    statement="Revenue grew 12.5% from 2024-01 to 2024-03.",
    values={"change_pct": 12.47, "start": 1000.0, "end": 1124.7, "total": 1_234_567},
    columns=["month", "revenue"],
    sql="SELECT ...",
    rows=[
        {"month": "2024-01", "revenue": 1000.0},
        {"month": "2024-02", "revenue": 1050.25},
        {"month": "2024-03", "revenue": 1124.7},
    ],
)
SHARE = Fact(
    id="f2",
    kind="share",
    statement="Sul accounts for 45.2% of revenue.",
    values={"segment": "Sul", "share": 0.4523},
    columns=["region", "revenue"],
    sql="SELECT ...",
    rows=[
        {"region": "Sul", "revenue": 5000, "share": 0.4523},
        {"region": "Norte", "revenue": 3000, "share": 0.2714},
        {"region": "Loja 77", "revenue": 3054, "share": 0.2763},
    ],
)
DROP = Fact(
    id="f3",
    kind="period_change",
    statement="Orders fell 3.2% between the last two months.",
    values={"change_pct": -3.21, "orders": 968},
    columns=["orders"],
    sql="SELECT ...",
)
FACTS = [TREND, SHARE, DROP]


def _read(text: str, language: str | None = None) -> list[tuple[float, bool]]:
    return [(m.value, m.percent) for m in extract_numbers(text, language)]


# --- extraction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "percent"),
    [
        ("sales of 1,234.5 units", 1234.5, False),
        ("sales of 1234.5 units", 1234.5, False),
        ("revenue grew 12.5% this year", 12.5, True),
        ("the margin moved -3.2 points", -3.2, False),
        ("it made $1.2M", 1_200_000, False),
        ("it made 1.2 million dollars", 1_200_000, False),
        ("it made 3.4 millions", 3_400_000, False),
        ("about 3k orders", 3000, False),
        ("2 billion users", 2_000_000_000, False),
        ("a 1.5bn deal", 1_500_000_000, False),
        ("10 percent of orders", 10, True),
        ("up +5 pp", 5, True),
        ("down −4% (unicode minus)", -4, True),
        ("1,234,567 rows", 1_234_567, False),
        ("0.45 of the total", 0.45, False),
    ],
)
def test_extracts_english_numbers(text: str, value: float, percent: bool) -> None:
    ((read, is_percent),) = _read(text, "en")
    assert read == pytest.approx(value) and is_percent is percent


@pytest.mark.parametrize(
    ("text", "value", "percent"),
    [
        ("vendas de 1.234,5 unidades", 1234.5, False),
        ("vendas de 1234,5 unidades", 1234.5, False),
        ("a receita cresceu 12,5%", 12.5, True),
        ("a receita cresceu 12,5 %", 12.5, True),
        ("a receita foi de R$ 1.234,56", 1234.56, False),
        ("a receita foi de R$1.234,56", 1234.56, False),
        ("prejuízo de R$ -1.234,56", -1234.56, False),
        ("chegou a 1,2 milhão", 1_200_000, False),
        ("chegou a 3,4 milhões", 3_400_000, False),
        ("cerca de 3 mil pedidos", 3000, False),
        ("2 bilhões de reais", 2_000_000_000, False),
        ("R$ 5 mi em vendas", 5_000_000, False),
        ("caiu −4,5%", -4.5, True),
        ("12,5 por cento", 12.5, True),
        ("alta de 2 pontos percentuais", 2, True),
        ("1.234.567 linhas", 1_234_567, False),
    ],
)
def test_extracts_portuguese_numbers(text: str, value: float, percent: bool) -> None:
    ((read, is_percent),) = _read(text, "pt-BR")
    assert read == pytest.approx(value) and is_percent is percent


@pytest.mark.parametrize(
    ("text", "language", "value", "alternatives"),
    [
        ("1.234", "pt", 1234, []),
        ("1.234", "pt-BR", 1234, []),
        ("1.234", "en", 1.234, []),
        ("1,234", "pt", 1.234, []),
        ("1,234", "en", 1234, []),
        ("Total: 1.234", None, 1.234, [1234]),  # unknown language: both, English first
        ("Total: 1,234", None, 1234, [1.234]),
        ("Cresceu 12,5% e somou 1.234", None, 1234, []),  # a decimal comma means Portuguese
        ("Grew 12.5% and reached 1,234", None, 1234, []),  # a decimal point means English
        ("Total de R$ 1.234", None, 1234, []),  # R$ means Portuguese
        ("A receita da região foi 1.234", None, 1234, []),  # Portuguese words
        ("The total for the year was 1.234", None, 1.234, []),  # English words
        ("0.123", None, 0.123, []),  # a leading zero is never a thousands group
        ("1234.567", None, 1234.567, []),  # nor is a head of four digits
        ("12.34", "pt", 12.34, []),  # two decimals are never a thousands group
    ],
)
def test_ambiguous_separators(
    text: str, language: str | None, value: float, alternatives: list[float]
) -> None:
    mention = extract_numbers(text, language)[-1]
    assert mention.value == pytest.approx(value)
    assert mention.alternatives == pytest.approx(alternatives)


@pytest.mark.parametrize(
    "text",
    [
        "Revenue grew [f3].",
        "See [f1, f2] and f3, (F4).",
        "See [f1-3] and [f2–f4].",
        "On 2024-01-31 and 2024-03 and 2024-Q1.",
        "At 2024-01-31T10:30:00Z it peaked.",
        "Em 31/01/2024 e em 03/2024.",
        "At 10:30 the queue peaked.",
        "1. First item\n2. Second item\n3) third",
        "## 3. Results\n### 12. More",
        "The 3rd region, #1 overall, 1º lugar, 2ª posição.",
        "Sales rose strongly, as two regions and três lojas show.",  # words are not extracted
    ],
)
def test_ignores_citations_dates_numbering_and_words(text: str) -> None:
    assert extract_numbers(text) == []


def test_bare_years_list_items_and_bullets_are_numbers() -> None:
    text = "1. In 2024 revenue grew 12%\n- 5 regions grew\n## 2025 outlook"
    assert _read(text, "en") == [(2024, False), (12, True), (5, False), (2025, False)]


def test_numbers_inside_markdown_emphasis_are_found() -> None:
    assert _read("Growth was _12%_, **5%** and *7*.", "en") == [(12, True), (5, True), (7, False)]


def test_a_bullet_dash_is_not_a_minus_sign() -> None:
    (mention,) = extract_numbers("- 5 regions", "en")
    assert mention.value == 5 and not mention.signed


def test_mentions_know_their_span_and_precision() -> None:
    text = "Revenue reached R$ 1.234,56 (up 12,5%) and 1,2 milhão de pedidos."
    mentions = extract_numbers(text, "pt")
    assert [text[m.start : m.end] for m in mentions] == [m.text for m in mentions]
    assert [m.text for m in mentions] == ["R$ 1.234,56", "12,5%", "1,2 milhão"]
    assert [m.unit for m in mentions] == pytest.approx([0.01, 0.1, 100_000])


def test_a_malformed_number_is_kept_and_never_supported() -> None:
    (mention,) = extract_numbers("the total was 1.2.3 units", "en")
    assert mention.text == "1.2.3" and math.isnan(mention.value)
    assert supported_by(mention, FACTS) is None


# --- support ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language", "fact_id"),
    [
        ("Revenue grew 12.5%.", "en", "f1"),  # 12.47 rounded to one decimal
        ("Revenue grew 12%.", "en", "f1"),  # 12.47 rounded to a whole percent
        ("Revenue grew 12.47%.", "en", "f1"),
        ("A receita cresceu 12,5%.", "pt", "f1"),
        ("A total of 1.2 million.", "en", "f1"),  # 1,234,567 at the written precision
        ("A total of 1.23 million.", "en", "f1"),
        ("A total of $1.2M.", "en", "f1"),
        ("A total of 1,234,567.", "en", "f1"),
        ("Um total de 1,2 milhão.", "pt", "f1"),
        ("Um total de 1.234.567.", "pt", "f1"),
        ("Revenue reached 1,124.7.", "en", "f1"),
        ("A receita chegou a R$ 1.124,70.", "pt", "f1"),
        ("February had 1,050.25.", "en", "f1"),  # a row cell
        ("Back in 2024 sales grew.", "en", "f1"),  # the year of a period label
        ("Sul holds 45% of revenue.", "en", "f2"),  # a share of 0.4523 shown as a percentage
        ("Sul holds 45.2% of revenue.", "en", "f2"),
        ("Sul detém 45,2% da receita.", "pt", "f2"),
        ("Sul: a share of 0.4523.", "en", "f2"),
        ("Sul sold R$ 5 mil.", "pt", "f2"),  # 5000 to the nearest thousand
        ("Loja 77 sold R$ 3.054.", "pt", "f2"),  # the label's number and a cell
        ("Orders fell 3.2%.", "en", "f3"),  # no sign written: the magnitude
        ("Orders changed by -3.2%.", "en", "f3"),  # a written sign must agree
        ("Orders changed by −3%.", "en", "f3"),
        ("Pedidos caíram 3,2%.", "pt", "f3"),
        ("There were 968 orders.", "en", "f3"),
        ("Total: 1.234", None, None),  # neither reading is a fact number (see below)
    ],
)
def test_supported_numbers(text: str, language: str | None, fact_id: str | None) -> None:
    result = check(text, FACTS, language)
    assert result.verified is (fact_id is not None)
    if fact_id is not None:
        assert set(result.support.values()) == {fact_id}


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Revenue grew 15%.", "en"),  # the fact says 12.47%
        ("Revenue grew 12.6%.", "en"),  # 12.47 rounds to 12.5, not 12.6
        ("Revenue grew 13%.", "en"),  # 12.47 rounds to 12, not 13
        ("Revenue grew -12.5%.", "en"),  # a written sign must agree
        ("Orders changed by +3.2%.", "en"),
        ("A total of 1.3 million.", "en"),
        ("A total of 1,234,568.", "en"),  # full precision written: must be exact
        ("A total of 1.24 million.", "en"),
        ("Sul holds 45.3% of revenue.", "en"),
        ("Sul holds 46%.", "en"),
        ("Sul scored 45.", "en"),  # a fraction supports a percentage only
        ("Revenue started at 1000%.", "en"),  # a plain value never supports a percentage
        ("Sales will grow in 2025.", "en"),
        ("A receita cresceu 15,5%.", "pt"),
        ("A receita chegou a R$ 1.124,80.", "pt"),
        ("Cerca de 7 mil pedidos.", "pt"),
    ],
)
def test_wrong_numbers_are_unsupported(text: str, language: str) -> None:
    result = check(text, FACTS, language)
    assert not result.verified
    assert len(result.unsupported) == 1


def test_period_labels_support_the_year_only() -> None:
    fact = Fact(
        id="f9",
        kind="trend",
        statement="Visits rose.",
        values={},
        columns=["visits"],
        sql="",
        rows=[{"month": "2024-07", "visits": 120}, {"month": "2024-08", "visits": 150}],
    )
    assert check("Visits grew in 2024 from 120 to 150.", [fact], "en").verified
    assert not check("Visits grew in month 7.", [fact], "en").verified
    assert not check("In 2024 the 31 days", [fact], "en").verified
    assert not check("In 2.0k", [fact], "en").verified  # a year label is not a quantity


def test_row_count_supports_a_count_of_items() -> None:
    assert check("All 3 regions grew.", [SHARE], "en").verified
    assert not check("All 4 regions grew.", [SHARE], "en").verified


def test_ambiguous_numbers_accept_either_reading() -> None:
    thousands = Fact("f1", "summary", "Units.", {"units": 1234}, ["units"], "")
    decimal = Fact("f1", "summary", "Mean.", {"mean": 1.234}, ["mean"], "")
    for fact in (thousands, decimal):
        assert check("Total: 1.234", [fact]).verified
        assert check("Total: 1,234", [fact]).verified
    assert not check("Total: 1.234", [thousands], "en").verified
    assert not check("Total: 1.234", [decimal], "pt").verified


def test_percent_named_values_support_percentages() -> None:
    fact = Fact("f1", "summary", "Rates.", {"churnRate": 7.4, "count": 40}, ["x"], "")
    assert check("Churn was 7.4%.", [fact], "en").verified
    assert not check("Churn was 40%.", [fact], "en").verified
    assert check("Churn was 7.4 and 40 customers left.", [fact], "en").verified


def test_supported_by_returns_the_first_fact_that_fits() -> None:
    (mention,) = extract_numbers("12%", "en")
    assert supported_by(mention, FACTS) == "f1"
    assert supported_by(mention, [SHARE, DROP]) is None
    assert isinstance(mention, NumberMention)


# --- check ------------------------------------------------------------------------------------


def test_check_maps_mentions_to_facts() -> None:
    text = "Revenue grew 12.5% [f1] and Sul holds 45% [f2]; orders fell 3.2% [f3]."
    result = check(text, FACTS, "en")
    assert result.verified and result.unsupported == []
    assert [m.text for m in result.mentions] == ["12.5%", "45%", "3.2%"]
    assert result.support == {0: "f1", 1: "f2", 2: "f3"}


def test_cited_facts_are_preferred_but_any_fact_may_support() -> None:
    other = Fact("f4", "summary", "Margin.", {"margin_pct": 12.0}, ["margin"], "")
    facts = [TREND, other]
    assert check("Up 12%.", facts, "en").support == {0: "f1"}
    assert check("Up 12%.", facts, "en", cited=["f4"]).support == {0: "f4"}
    result = check("Up 12% and 968 orders.", [*facts, DROP], "en", cited=["f4", "f9"])
    assert result.verified and result.support == {0: "f4", 1: "f3"}


def test_a_text_without_numbers_is_not_verified() -> None:
    # Nothing was checked, so nothing may be stamped: "verified" means checked and agreed.
    result = check("Revenue grew steadily [f1].", FACTS, "en")
    assert not result.verified and result.mentions == [] and result.support == {}
    assert result.checked_claims == 0 and result.unsupported == []
    assert not check("A loja teve queda forte nas vendas.", FACTS, "pt").verified


def test_a_true_sentence_is_verified_and_a_false_one_is_not() -> None:
    true = check("Revenue grew 12.5% [f1].", FACTS, "en")
    assert true.verified and true.checked_claims == 1 and true.support == {0: "f1"}
    false = check("Revenue grew 15% [f1].", FACTS, "en")
    assert not false.verified and false.checked_claims == 1
    assert [m.text for m in false.unsupported] == ["15%"]
    # One wrong number among right ones is enough to withhold the stamp.
    mixed = check("Revenue grew 12.5% and Sul has 45.2%, then 99%.", FACTS, "en")
    assert not mixed.verified and mixed.checked_claims == 3 and len(mixed.unsupported) == 1


def test_statements_are_read_in_the_language_checked() -> None:
    # A Portuguese statement's "1.234" is 1234, not 1.234 read the English way.
    fact = Fact(
        id="f1",
        kind="aggregate",
        statement="O total é R$ 6.006,50 em 1.234 lojas.",
        values={},
        columns=["receita"],
        sql="SELECT 1",
    )
    assert check("A receita foi de R$ 6.006,50.", [fact], "pt").verified
    assert not check("A receita foi de R$ 6.006,51.", [fact], "pt").verified
    assert not check("A receita foi de 6,01.", [fact], "pt").verified
    assert check("São 1.234 lojas.", [fact], "pt").verified
    assert not check("São 1,2 lojas.", [fact], "pt").verified


def test_no_facts_support_nothing() -> None:
    assert not check("Revenue grew 12%.", [], "en").verified
