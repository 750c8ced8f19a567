"""Scoring of insight answers against evaluation cases (billumy.evaluation.scoring), on
hand-written responses: what counts as stated, wrong, covered and falsely verified."""

from __future__ import annotations

from typing import Any

import pytest

from billumy.evaluation.cases import Case, CaseSet, Expected, fold
from billumy.evaluation.runner import EvalError, percentile, select
from billumy.evaluation.scoring import agrees, label_spans, mask_dates, score
from billumy.insights.verify import extract_numbers

CENTRO = Expected(segment="Centro", value=142625.6)
SUL = Expected(segment="Sul", value=101046.9)


def _case(*expect: Expected, must_not: tuple[str, ...] = (), language: str = "pt-BR") -> Case:
    return Case(
        id="c",
        category="segment_comparison",
        dataset="lojas_semanal.csv",
        question="Compare Centro e Sul",
        language=language,
        expect=expect,
        must_not=must_not,
        reference="SELECT 1",
    )


def _breakdown() -> dict[str, Any]:
    return {
        "id": "f1",
        "kind": "breakdown",
        "values": {"segments": 2, "top_segment": "Centro", "top_value": 142625.6},
        "rows": [
            {"loja": "Centro", "sum_vendas_reais": 142625.6, "share_pct": 58.53},
            {"loja": "Sul", "sum_vendas_reais": 101046.9, "share_pct": 41.47},
            {"loja": "Centro", "itens": 5929},
        ],
    }


def _response(*sentences: str, language: str = "pt-BR", **extra: Any) -> dict[str, Any]:
    return {
        "answer": {
            "language": language,
            "text": " ".join(sentences),
            "sentences": [{"text": s, "facts": ["f1"], "kind": "fact"} for s in sentences],
        },
        "facts": [_breakdown()],
        "insights": [],
        **extra,
    }


def _numbers(text: str, language: str = "pt") -> list[float]:
    return [m.value for m in extract_numbers(mask_dates(text), language)]


def test_dates_years_and_week_numbers_are_not_read_as_amounts() -> None:
    text = "Sim: Norte teve queda forte nas semanas de 22 e 29 de abr. de 2024: R$ 3.555,97."
    assert _numbers(text) == [3555.97]
    assert _numbers("Ranking: 2024-06-24 / Centro R$ 5.710,60 (1,3%)") == [5710.6, 1.3]
    assert _numbers(
        "went from R$16,199.80 in the week of Jan 1, 2024 to R$17,999.80 in the week of Jun 24",
        "en",
    ) == [16199.8, 17999.8]
    assert _numbers("Em março de 2024, na semana 17, foi R$ 2.000,00") == [2000.0]


@pytest.mark.parametrize(
    ("text", "kind", "label", "found"),
    [
        ("nas semanas de 22 e 29 de abr. de 2024", "period", "2024-04-22", True),
        ("nas semanas de 22 e 29 de abr. de 2024", "period", "2024-04-29", True),
        ("in the weeks of Apr 22 and Apr 29, 2024", "period", "2024-04-29", True),
        ("na semana de 1 de jan. de 2024", "period", "2024-01-15", False),
        ("em março de 2024", "period", "2024-03", True),
        ("in March 2024", "period", "2024-03", True),
        ("em abril e maio de 2024", "period", "2024-04", True),
        ("em março de 2023", "period", "2024-03", False),
        ("on 2024-03-11", "period", "2024-03", False),
        ("no primeiro semestre", "period", "2024-H1", True),
        ("de janeiro a junho de 2024", "period", "2024-H1", True),
        ("in the first half", "period", "2024-H2", False),
        ("no 1º trimestre de 2024", "period", "2024-Q1", True),
        ("em 2024", "period", "2024", True),
        ("R$ 2.024,00", "period", "2024", False),
        ("Centro-Oeste vendeu mais", "segment", "Centro", False),
        ("Onde loja = 'Centro', o total", "segment", "Centro", True),
        ("ELETRONICOS lidera", "segment", "Eletrônicos", True),
    ],
)
def test_labels_are_found_as_answers_write_them(
    text: str, kind: str, label: str, found: bool
) -> None:
    assert bool(label_spans(fold(text), kind, label)) is found


def test_numbers_agree_within_their_rounding() -> None:
    def first(text: str, language: str) -> Any:
        return extract_numbers(text, language)[0]

    assert agrees(first("R$ 142.625,60", "pt"), 142625.6, pct=False)
    assert agrees(first("142,626", "en"), 142625.6, pct=False)
    assert agrees(first("R$ 1,2 mi", "pt"), 1196858.93, pct=False)
    assert agrees(first("12,5%", "pt"), 12.46, pct=True)
    assert not agrees(first("13%", "en"), 12.46, pct=True)
    assert not agrees(first("12.5", "en"), 12.46, pct=True)  # a percentage needs its sign
    assert agrees(first("143,000", "en"), 142625.6, pct=False)  # within 0.5%
    assert not agrees(first("144,000", "en"), 142625.6, pct=False)


def test_a_right_answer_passes() -> None:
    result = score(
        _case(CENTRO, SUL),
        _response(
            "Por loja, Centro tem o maior total. Ranking: Centro R$ 142.625,60 (58,5%); "
            "Sul R$ 101.046,90 (41,5%)."
        ),
    )
    assert result.passed, result.problems
    assert (result.covered, result.stated, result.wrong_numbers) == (2, 2, 0)


def test_a_number_said_of_a_label_that_is_not_its_value_is_wrong() -> None:
    result = score(
        _case(CENTRO, SUL),
        _response("Ranking: Centro R$ 142.625,60; Sul R$ 142.625,60."),
    )
    assert result.wrong_numbers == 1 and not result.passed
    assert any(p.startswith("wrong: R$") and "Sul" in p for p in result.problems)
    assert result.stated == 1


def test_a_number_inside_a_label_is_its_name_not_a_value() -> None:
    road = Expected(segment="Rodovia BR-277", value=734421.56)
    said = (
        "Por posto, Rodovia BR-277 tem o maior total de litros. Ranking: Rodovia BR-277 734.421,56."
    )
    result = score(_case(road), _response(said))
    assert result.wrong_numbers == 0 and result.stated == 1, result.problems
    # A number beside the name that is not its value is still wrong.
    result = score(_case(road), _response("Rodovia BR-277 vendeu 277 litros."))
    assert result.wrong_numbers == 1


def test_a_true_number_about_the_label_that_answers_something_else_is_not_wrong() -> None:
    """Centro's item count is true (a fact holds it) but not the sales asked for: the value
    is missing from the answer, and nothing said is false."""
    result = score(_case(CENTRO), _response("Centro vendeu 5.929 itens."))
    assert result.wrong_numbers == 0
    assert not result.answer_complete and result.plan_covers
    assert "a sentence names it with 5.929" in " ".join(result.problems)


def test_the_plan_misses_what_no_fact_holds() -> None:
    result = score(
        _case(Expected(segment="Centro", period="2024-04", value=27653.0)),
        _response("Onde loja = 'Centro', o total é R$ 142.625,60."),
    )
    assert not result.plan_covers and not result.answer_complete
    assert result.wrong_numbers == 0  # April is not named: nothing was said of Centro in April


def test_language_text_any_and_must_not() -> None:
    case = _case(
        Expected(text_any=(r"n[ãa]o (t[êe]m|tem)[^.]*\bcusto",)),
        must_not=(r"\bcusto\b[^.;]*\d",),
    )
    good = score(case, _response("Os dados não têm uma coluna de custo."))
    assert good.passed, good.problems
    english = score(case, _response("The data has no cost column.", language="en"))
    assert not english.language_ok and not english.answer_complete
    invented = score(case, _response("Os dados não têm uma coluna de custo; o custo foi 12."))
    assert invented.must_not_hits == 1 and not invented.passed


def test_only_insights_marked_verified_can_be_falsely_verified() -> None:
    insights = [
        {"title": "Sul", "text": "Sul vendeu R$ 99.000,00.", "verified": True},
        {"title": "Sul", "text": "Sul vendeu R$ 98.000,00.", "verified": False},
        {"title": "Centro", "text": "Centro vendeu R$ 142.625,60.", "verified": True},
    ]
    result = score(
        _case(CENTRO, SUL),
        _response("Ranking: Centro R$ 142.625,60; Sul R$ 101.046,90.", insights=insights),
    )
    assert result.false_verified == 1 and result.wrong_numbers == 0


def test_percentiles_are_measured_values() -> None:
    assert percentile([], 50) is None
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([float(n) for n in range(1, 21)], 95) == 19.0
    assert percentile([0.3], 95) == 0.3


def test_selecting_an_unknown_case_is_an_error(tmp_path: Any) -> None:
    cases = CaseSet(tmp_path, {}, [_case(CENTRO)])
    assert [c.id for c in select(cases, ["c"])] == ["c"]
    assert [c.id for c in select(cases, None)] == ["c"]
    with pytest.raises(EvalError, match="no such case: x, y"):
        select(cases, ["x,y"])


def test_a_grand_total_beside_a_label_is_not_wrong_but_another_segments_number_is() -> None:
    total = {"id": "f2", "kind": "aggregate", "values": {"sum": 243672.5}, "rows": []}
    trend = {
        "id": "f3",
        "kind": "trend",
        "values": {"first_period": "2024-01-01", "first": 673, "last": 748},
        "rows": [{"period": "2024-01-01", "itens": 673}],
    }
    insights = [
        {"title": "Centro", "text": "Centro lidera; o total foi R$ 243.672,50.", "verified": True},
        {"title": "Centro", "text": "Centro está entre 673 e 748 itens.", "verified": True},
    ]
    response = _response("Ranking: Centro R$ 142.625,60; Sul R$ 101.046,90.", insights=insights)
    response["facts"] += [total, trend]
    result = score(_case(CENTRO, SUL), response)
    assert result.false_verified == 1, result.problems
    assert "673 for Centro" in " ".join(result.problems)


def test_a_verified_insight_that_gives_a_segment_another_segments_number_is_false() -> None:
    """The verifier found 97 in the facts, but 97 is Livros' quantity, not Moda's: marked
    verified, it is a false claim even though Moda is no expected label of the case."""
    quantities = {
        "id": "f2",
        "kind": "top_segment",
        "values": {"segment": "Moda", "value": 196},
        "rows": [{"loja": "Moda", "itens": 196}, {"loja": "Livros", "itens": 97}],
    }
    profile = {"columns": [{"name": "loja", "kind": "categorical", "top": [
        {"value": "Moda", "count": 81}, {"value": "Livros", "count": 34}]}]}  # fmt: skip
    insights = [
        {"title": "Moda", "text": "Moda tem o maior total de itens: 97.", "verified": True},
        {"title": "Moda", "text": "Moda (196) supera Livros (97).", "verified": True},
        {"title": "Moda", "text": "Moda lidera entre as 2 lojas.", "verified": True},
    ]
    response = _response("Ranking: Centro R$ 142.625,60.", insights=insights, profile=profile)
    response["facts"].append(quantities)
    result = score(_case(CENTRO), response)
    assert result.false_verified == 1, result.problems
    assert "97 for Moda" in " ".join(result.problems)


def test_a_quarter_filter_holds_the_quarter() -> None:
    # The aggregate of a question about Q2: its filter params are the quarter's bounds.
    total = {
        "id": "f1",
        "kind": "aggregate",
        "values": {"sum_vendas_reais": 6184.0},
        "rows": [{"sum_vendas_reais": 6184.0}],
        "params": ["2024-04-01", "2024-07-01"],
    }
    said = "No 2º trimestre de 2024, o total de vendas_reais é R$ 6.184,00."
    result = score(_case(Expected(period="2024-Q2", value=6184.0)), _response(said, facts=[total]))
    assert result.plan_covers and result.answer_complete
    # Another quarter's bounds do not hold it.
    total["params"] = ["2024-01-01", "2024-04-01"]
    result = score(_case(Expected(period="2024-Q2", value=6184.0)), _response(said, facts=[total]))
    assert not result.plan_covers
