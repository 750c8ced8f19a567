"""The claim checker: sentences of the model's prose are kept only when every claim in them
agrees with a cited fact. True, false and empty sentences in pt-BR and English for each kind of
claim (number, segment, column, period, rank, direction), against facts computed by the real
facts code over real DuckDB tables.

The weekly stores dataset (tests/insights_data.py) gives: total ``vendas_reais`` R$ 330.600,90;
by ``loja`` Centro R$ 137.978,50 > Norte R$ 106.643,90 > Sul R$ 85.978,50; most ``itens``
Centro, fewest Sul; a weekly series from the week of 1 Jan 2024 (the lowest but for Norte's
drop) to the week of 24 Jun 2024 (the highest), trending up, the last week up 1,2%; and Norte's
drops in the weeks of 13 and 20 May 2024 (ISO weeks 20 and 21), found by the anomaly fact.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from billumy.insights import anomalies, data
from billumy.insights.answer import write_answer
from billumy.insights.checker import ClaimChecker, Tally
from billumy.insights.formats import for_language
from billumy.insights.model import Fact, Profile
from billumy.insights.planned import facts_for_plan
from billumy.insights.profile import profile
from billumy.insights.rules import rule_plan
from billumy.insights.salient import salient_facts
from billumy.insights.sentences import fold, split_sentences
from billumy.insights.service import _NarrativeReader, _Review
from billumy.insights.statements import Context
from tests.insights_data import weekly_stores

LIMITS = data.Limits(max_rows=10_000, max_columns=50, max_bytes=10_000_000)
QUESTIONS = {
    "pt": "Qual loja vendeu mais e como as vendas evoluíram por semana?",
    "en": "Which store sold the most, and how did sales change over the weeks?",
}


def _facts(
    rows: list[dict[str, Any]], question: str | None, lang: str
) -> tuple[list[Fact], Profile]:
    """The facts a request gets (planned, the anomaly, then salient), with statements in
    ``lang``, as the service builds them."""
    table = data.from_records(rows, LIMITS)
    with table:
        prof = profile(table)
        plan = rule_plan(question, prof) if question else None
        planned = facts_for_plan(table, prof, plan) if plan else []
        scope = anomalies.plan_scope(table, prof, None)
        found = anomalies.anomaly_fact(table, scope, "both") if scope else None
        salient = salient_facts(
            table, prof, limit=8, exclude=planned, extra=[found] if found else []
        )
    seen = {(f.kind, tuple(f.columns), f.sql) for f in planned}
    merged = planned + [f for f in salient if (f.kind, tuple(f.columns), f.sql) not in seen]
    for number, fact in enumerate(merged, start=1):
        fact.id = f"f{number}"
    ctx = Context(for_language(lang), prof, plan, {f.id for f in planned})
    write_answer(question=question, facts=merged, ctx=ctx, most=3)
    return merged, prof


@pytest.fixture(scope="module")
def weekly() -> dict[str, tuple[list[Fact], Profile]]:
    return {lang: _facts(weekly_stores(), QUESTIONS[lang], lang) for lang in ("pt", "en")}


def _cite(found: list[Fact], key: str) -> list[str]:
    """Fact ids by ``kind`` or ``kind:column`` ("trend:itens"); "" cites nothing."""
    if not key:
        return []
    kind, _, column = key.partition(":")
    ids = [f.id for f in found if f.kind == kind and (not column or column in f.columns)]
    assert ids, f"no {key} fact"
    return ids[:1]


def _checked(
    weekly: dict[str, tuple[list[Fact], Profile]], lang: str, text: str, cite: str
) -> tuple[bool, list[str], int]:
    found, prof = weekly[lang]
    result = ClaimChecker(found, lang, prof).check_sentence(text, _cite(found, cite))
    return result.kept, [c.kind for c in result.claims], result.assertions


# --- each kind of claim: true, false, in both languages ----------------------------------------

CASES = [
    # numbers (and a number bound to the segment named with it)
    ("pt", "O total de vendas_reais foi de R$ 330.600,90.", "aggregate", True),
    ("pt", "O total de vendas_reais foi de R$ 340.600,90.", "aggregate", False),
    ("en", "Total vendas_reais reached R$330,600.90.", "aggregate", True),
    ("en", "Total vendas_reais reached R$330,000.", "aggregate", False),
    ("pt", "Centro vendeu R$ 137.978,50.", "breakdown", True),
    ("pt", "Norte vendeu R$ 137.978,50.", "breakdown", False),  # Centro's number
    ("en", "Sul sold R$85,978.50, 26.0% of the total.", "breakdown", True),
    ("en", "Norte sold R$85,978.50, 26.0% of the total.", "breakdown", False),
    # segments: named by a cited fact, or not
    ("pt", "A loja Sul merece atenção.", "anomaly", True),  # the anomaly checked every loja
    ("pt", "A loja Sul merece atenção.", "trend:vendas_reais", False),
    ("en", "Keep an eye on Centro.", "breakdown", True),
    ("en", "Keep an eye on Centro.", "aggregate", False),
    # columns, by name or by their words
    ("pt", "As vendas reais merecem atenção.", "aggregate", True),
    ("pt", "Os itens merecem atenção.", "aggregate", False),
    ("en", "Watch the itens closely.", "top_segment:itens", True),
    ("en", "Watch the vendas_reais closely.", "top_segment:itens", False),
    # periods: month names, days, ISO weeks, labels
    ("pt", "Em maio de 2024 a loja Norte preocupa.", "anomaly", True),
    ("pt", "Em março de 2024 a loja Norte preocupa.", "anomaly", False),
    ("pt", "Nas semanas 20 e 21 a loja Norte preocupa.", "anomaly", True),
    ("pt", "Na semana 30 a loja Norte preocupa.", "anomaly", False),
    ("en", "Norte worried us in the weeks of May 13 and May 20, 2024.", "anomaly", True),
    ("en", "Norte worried us in the week of Jun 3, 2024.", "anomaly", False),
    ("en", "In 2024-06 weekly sales kept coming.", "trend:vendas_reais", True),
    ("en", "In 2023 weekly sales kept coming.", "trend:vendas_reais", False),
    # ranks: the segment named must be at that end of a cited ranking over that measure
    ("pt", "Centro foi a loja que mais vendeu.", "breakdown", True),
    ("pt", "Norte lidera as vendas.", "breakdown", False),
    ("pt", "Sul teve o menor total de vendas_reais.", "bottom_segment:vendas_reais", True),
    ("pt", "Norte teve o menor total de vendas_reais.", "bottom_segment:vendas_reais", False),
    ("pt", "Centro vendeu mais que Norte.", "breakdown", True),
    ("pt", "Sul vendeu mais que Centro.", "breakdown", False),
    (
        "pt",
        "As vendas foram as mais altas na semana de 24 de jun. de 2024.",
        "trend:vendas_reais",
        True,
    ),
    (
        "pt",
        "As vendas foram as mais altas na semana de 1 de jan. de 2024.",
        "trend:vendas_reais",
        False,
    ),
    ("en", "Centro has the highest total vendas_reais.", "breakdown", True),
    ("en", "Sul has the highest total vendas_reais.", "breakdown", False),
    ("en", "Sul sold the least itens.", "bottom_segment:itens", True),
    ("en", "Centro sold the least itens.", "bottom_segment:itens", False),
    ("en", "Centro sold more than Sul.", "breakdown", True),
    ("en", "Sul sold more than Norte.", "breakdown", False),
    ("en", "Norte had the biggest drop.", "anomaly", True),
    ("en", "Sales peaked in the week of Jun 24, 2024.", "trend:vendas_reais", True),
    ("en", "Sales peaked in the week of Jan 1, 2024.", "trend:vendas_reais", False),
    # directions: a cited trend (overall, last change, into a period) or anomaly case
    ("pt", "As vendas cresceram 1,2% na semana de 24 de jun. de 2024.", "trend:vendas_reais", True),
    ("pt", "As vendas caíram 1,2% na semana de 24 de jun. de 2024.", "trend:vendas_reais", False),
    ("pt", "Norte teve queda forte em maio.", "anomaly", True),
    ("pt", "Sul teve queda forte em maio.", "anomaly", False),
    ("pt", "Centro não teve queda.", "anomaly", True),
    ("pt", "Norte não teve queda.", "anomaly", False),
    ("en", "Weekly vendas_reais are trending up.", "trend:vendas_reais", True),
    ("en", "Weekly vendas_reais are declining.", "trend:vendas_reais", False),
    ("en", "Norte dropped sharply in May 2024.", "anomaly", True),
    ("en", "Norte dropped sharply in March 2024.", "anomaly", False),
    ("en", "Centro grew steadily.", "trend:vendas_reais", False),  # no fact follows Centro
]


@pytest.mark.parametrize(("lang", "text", "cite", "kept"), CASES)
def test_true_and_false_claims(
    weekly: dict[str, tuple[list[Fact], Profile]], lang: str, text: str, cite: str, kept: bool
) -> None:
    was_kept, kinds, _ = _checked(weekly, lang, text, cite)
    assert kinds, "the sentence makes no claim"
    assert was_kept is kept, kinds


@pytest.mark.parametrize(
    ("lang", "text", "kinds"),
    [
        ("pt", "O total de vendas_reais foi de R$ 330.600,90.", {"column", "number"}),
        ("pt", "Norte teve queda forte nas semanas de 13 e 20 de mai. de 2024.",
         {"segment", "direction", "period"}),
        ("pt", "Centro foi a loja que mais vendeu.", {"segment", "column", "rank"}),
        ("en", "Sul has the lowest total itens in 2024.", {"segment", "rank", "column", "period"}),
        ("en", "Norte dropped 60.0% in week 20.", {"segment", "direction", "number", "period"}),
    ],
)  # fmt: skip
def test_claims_are_read_by_kind(
    weekly: dict[str, tuple[list[Fact], Profile]], lang: str, text: str, kinds: set[str]
) -> None:
    found, prof = weekly[lang]
    claims = ClaimChecker(found, lang, prof).reader.read(text)
    assert {c.claim.kind for c in claims} == kinds


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("pt", "Invista em campanhas de marketing."),
        ("pt", "É importante acompanhar de perto e agir rápido."),
        ("pt", "Vale investir mais em treinamento."),  # "mais" counts here, it ranks nothing
        ("en", "Consider a promotion to increase sales."),  # advice, not a rise
        ("en", "The first week of the year matters less."),
        ("en", "Act on this soon."),
    ],
)
def test_sentences_without_claims_are_kept_but_check_nothing(
    weekly: dict[str, tuple[list[Fact], Profile]], lang: str, text: str
) -> None:
    found, prof = weekly[lang]
    result = ClaimChecker(found, lang, prof).check(text)
    assert result.text == text and not result.dropped
    assert result.checked_claims == 0 and not result.verified


def test_names_alone_are_checked_but_verify_nothing(
    weekly: dict[str, tuple[list[Fact], Profile]],
) -> None:
    found, prof = weekly["pt"]
    checker = ClaimChecker(found, "pt", prof)
    named = checker.check("Foque na loja Centro.")
    assert named.text == "Foque na loja Centro." and not named.verified
    assert named.checked_claims == 0 and named.sentences[0].claims
    wrong = checker.check("Foque na loja Centro.", _cite(found, "aggregate"))
    assert wrong.text == "" and len(wrong.dropped) == 1


# --- whole texts ---------------------------------------------------------------------------


def test_a_text_keeps_its_true_sentences_and_counts_the_dropped(
    weekly: dict[str, tuple[list[Fact], Profile]],
) -> None:
    found, prof = weekly["pt"]
    text = (
        "Centro lidera com R$ 137.978,50 [f2]. Norte vendeu R$ 137.978,50. "
        "Norte teve queda forte em maio de 2024. Sul também caiu. Vale agir rápido."
    )
    result = ClaimChecker(found, "pt", prof).check(text)
    assert [s.kept for s in result.sentences] == [True, False, True, False, True]
    assert result.text == (
        "Centro lidera com R$ 137.978,50 [f2]. Norte teve queda forte em maio de 2024. "
        "Vale agir rápido."
    )
    assert len(result.dropped) == 2 and result.verified
    assert result.checked_claims == 3  # lidera, R$ 137.978,50, queda
    assert result.facts and set(result.facts) <= {f.id for f in found}


def test_a_text_with_every_sentence_wrong_keeps_nothing(
    weekly: dict[str, tuple[list[Fact], Profile]],
) -> None:
    found, prof = weekly["en"]
    result = ClaimChecker(found, "en", prof).check(
        "Sul leads all stores. Sales fell in the week of Jun 24, 2024."
    )
    assert result.text == "" and len(result.dropped) == 2 and not result.verified


def test_the_sudeste_stamp_is_gone() -> None:
    # Sul sells the most units, Sudeste the most revenue: "Sudeste has the highest total
    # units" has no number, and used to come out verified.
    rows = []
    for month in (1, 2, 3):
        for region, units, revenue in (
            ("Norte", 10, 1000.0),
            ("Sul", 40, 2000.0),
            ("Sudeste", 30, 5000.0),
            ("Nordeste", 20, 1500.0),
        ):
            rows.append(
                {"month": f"2024-0{month}-01", "region": region, "units": units + month,
                 "revenue": revenue + 10 * month}
            )  # fmt: skip
    for lang, false, true in (
        ("en", "Sudeste has the highest total units.", "Sul has the highest total units."),
        ("pt", "Sudeste tem o maior total de units.", "Sul tem o maior total de units."),
    ):
        found, prof = _facts(rows, None, lang)
        checker = ClaimChecker(found, lang, prof)
        assert not checker.check(false).verified and checker.check(false).text == ""
        assert checker.check(true).verified
        # Sudeste does lead in revenue: the measure named decides.
        assert checker.check("Sudeste has the highest revenue." if lang == "en" else
                             "Sudeste tem a maior revenue.").verified  # fmt: skip


# --- sentences -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        (
            "Centro vendeu R$ 137.978,50 (41,7%). Norte caiu 60,0% p.ex. em maio. Sul? Sim!",
            ["Centro vendeu R$ 137.978,50 (41,7%).", "Norte caiu 60,0% p.ex. em maio.",
             "Sul?", "Sim!"],
        ),
        (
            "Norte teve queda nas semanas de 13 e 20 de mai. de 2024. Centro lidera.",
            ["Norte teve queda nas semanas de 13 e 20 de mai. de 2024.", "Centro lidera."],
        ),
        (
            "Sales grew 12.5% vs. Jan. 2024, e.g. Centro. Sul fell to 1,234.5 units.",
            ["Sales grew 12.5% vs. Jan. 2024, e.g. Centro.", "Sul fell to 1,234.5 units."],
        ),
        (
            "Centro leads. [f2] Norte dropped [f4].\n- Sul is last\n",
            ["Centro leads. [f2]", "Norte dropped [f4].", "- Sul is last"],
        ),
        ("", []),
        ("   ", []),
        ("no full stop", ["no full stop"]),
    ],
)  # fmt: skip
def test_split_sentences(text: str, sentences: list[str]) -> None:
    split = split_sentences(text)
    assert [s.text for s in split] == sentences
    assert all(text[s.start : s.end] == s.text for s in split)


def test_fold_keeps_the_length() -> None:
    text = "Março, 1º trimestre, ÚLTIMO lugar, R$ 3.556,40 −60%"
    assert fold(text) == "marco, 1o trimestre, ultimo lugar, r$ 3.556,40 −60%"
    assert len(fold(text)) == len(text)


@pytest.mark.parametrize(
    ("lang", "text", "ranks", "directions"),
    [
        ("pt", "Centro vendeu mais de R$ 5.000 por semana.", 0, 0),  # a quantity
        ("pt", "Centro é a loja que mais vende.", 1, 0),
        ("pt", "Centro vendeu mais que Norte.", 1, 0),  # a comparison of two segments
        ("pt", "Centro vendeu mais do que o esperado.", 0, 0),  # compared with no segment
        ("pt", "Sul ficou em último lugar.", 1, 0),
        ("pt", "Na última semana Sul vendeu bem.", 0, 0),  # a period, not a rank
        ("pt", "A tendência é de alta.", 0, 1),
        ("pt", "Sul teve a venda mais alta em 2024.", 1, 0),  # "mais alta" ranks
        ("pt", "Nenhuma loja teve queda.", 0, 1),
        ("en", "Centro is among the top 3 stores.", 0, 0),
        ("en", "Centro came first, Sul last place.", 2, 0),
        ("en", "The first week was slow.", 0, 0),
        ("en", "Run a promotion to increase sales.", 0, 0),  # advice
        ("en", "Sul saw an increase.", 0, 1),
        ("en", "Sales were up 1.2% last week.", 0, 1),
        ("en", "Set up a review of Sul.", 0, 0),
        ("en", "Most of the stores grew.", 0, 1),  # "most of" is a share
        ("en", "The most recent week of Sul was good.", 0, 0),
        ("en", "Centro sold the most.", 1, 0),
        ("en", "Centro sold the most of any store.", 1, 0),
        ("en", "Sul trails the other stores.", 1, 0),
    ],
)
def test_words_that_rank_or_move_in_context(
    weekly: dict[str, tuple[list[Fact], Profile]],
    lang: str,
    text: str,
    ranks: int,
    directions: int,
) -> None:
    found, prof = weekly[lang]
    kinds = [c.claim.kind for c in ClaimChecker(found, lang, prof).reader.read(text)]
    assert (kinds.count("rank"), kinds.count("direction")) == (ranks, directions), kinds


def test_the_kept_text_splits_into_the_kept_sentences(
    weekly: dict[str, tuple[list[Fact], Profile]],
) -> None:
    found, prof = weekly["en"]
    text = "- Centro leads vendas_reais\n- Sul leads vendas_reais\n- Norte dropped in May 2024"
    result = ClaimChecker(found, "en", prof).check(text)
    assert result.text == "- Centro leads vendas_reais\n- Norte dropped in May 2024"
    assert [s.text for s in split_sentences(result.text)] == [s.text for s in result.kept]


def test_the_days_in_a_statement_are_not_numbers_it_vouches_for(
    weekly: dict[str, tuple[list[Fact], Profile]],
) -> None:
    # The trend's statement says "na semana de 17 de jun. de 2024": 17 is a day.
    found, prof = weekly["pt"]
    checker = ClaimChecker(found, "pt", prof)
    assert not checker.check("A iteração está em 17 anos.", _cite(found, "trend:vendas_reais")).text
    assert checker.check("Na semana de 17 de jun. de 2024 houve alta.").verified


def test_the_tally_counts_what_is_shown(weekly: dict[str, tuple[list[Fact], Profile]]) -> None:
    found, prof = weekly["en"]
    checker = ClaimChecker(found, "en", prof)
    tally = Tally()
    tally.add(
        checker.check("Centro leads vendas_reais. Sul leads vendas_reais. Act now.").sentences
    )
    # A title that passed, in an insight whose every sentence failed: nothing of it is shown.
    tally.add(
        [checker.check_sentence("Centro leads"), checker.check_sentence("Sul leads")], shown=False
    )
    assert tally.as_dict() == {
        "sentences": 5, "kept": 2, "dropped": 3, "claims_checked": 4, "names_checked": 6,
        "insights_dropped": 0,
    }  # fmt: skip


# --- the narrative as it streams (service._NarrativeReader and service._Review) ---------------


def _narrative(*insights: dict[str, Any], summary: str = "") -> str:
    return orjson.dumps({"insights": list(insights), "summary": summary}).decode()


def _fed(reader: _NarrativeReader, text: str, size: int) -> list[list[Any]]:
    """What ``reader`` handed out after each piece of ``size`` characters."""
    return [reader.feed(text[i : i + size]) for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_the_reader_hands_out_each_insight_once_when_it_is_complete(size: int) -> None:
    first = {"title": "A", "text": "Centro leads.", "facts": ["f1"]}
    second = {"title": "B", "text": r'Sul fell "a lot", {ok}.', "facts": ["f2"]}
    text = _narrative(first, second, summary="Done.")
    reader = _NarrativeReader()
    handed = _fed(reader, text, size)
    handed.append(reader.close())
    out = [item for batch in handed for item in batch]
    assert out == [first, second] and reader.summary == "Done." and reader.usable
    # The first insight went out before the model had finished the second.
    if size < 100:
        when = next(n for n, batch in enumerate(handed) if batch)
        assert when * size < text.index('"B"')


def test_a_cut_narrative_keeps_the_insights_it_finished() -> None:
    first = {"title": "A", "text": "Centro leads.", "facts": ["f1"]}
    text = _narrative(first, {"title": "B", "text": "Sul fell a lot.", "facts": ["f2"]})
    cut = text[: text.index("a lot")]
    reader = _NarrativeReader()
    out = [item for batch in _fed(reader, cut, 5) for item in batch] + reader.close()
    assert out == [first] and reader.summary == "" and reader.usable
    # Cut inside the first insight: nothing to show, and said unusable.
    reader = _NarrativeReader()
    out = [item for batch in _fed(reader, text[:30], 5) for item in batch] + reader.close()
    assert out == [] and not reader.usable
    # Not JSON at all.
    reader = _NarrativeReader()
    assert reader.feed("Here are the insights") == [] and reader.close() == []
    assert not reader.usable


def _review(
    weekly: dict[str, tuple[list[Fact], Profile]], lang: str, most: int
) -> tuple[_Review, list[str]]:
    """A review of a narrative about the weekly facts in ``lang``, and the ranking's id."""
    found, prof = weekly[lang]
    answer = write_answer(
        question=QUESTIONS[lang], facts=found, ctx=Context(for_language(lang), prof), most=3
    )
    return _Review(found, lang, prof, most=most, answer=answer), _cite(found, "breakdown")


def test_the_review_keeps_checked_insights_and_lists_what_it_dropped(
    weekly: dict[str, tuple[list[Fact], Profile]],
) -> None:
    review, ranking = _review(weekly, "en", most=2)
    kept = review.insight(
        {"title": "Sul leads", "text": "Centro leads vendas_reais. Act now.", "facts": ranking}
    )
    assert kept is not None and kept["title"] == "" and kept["verified"]
    assert kept["text"] == "Centro leads vendas_reais. Act now." and kept["dropped_sentences"] == 1
    # Every sentence wrong: dropped whole, and its sentences listed with the claims that failed.
    wrong = {"title": "Centro leads", "text": "Sul leads vendas_reais.", "facts": ranking}
    assert review.insight(wrong) is None
    # Past the most asked for: not even checked.
    assert review.insight({"title": "", "text": "Centro leads.", "facts": ranking}) is None
    review.summarise("Norte leads vendas_reais.", usable=True)
    insights, summary, tally, dropped = review.result()
    assert insights == [kept] and "Norte leads" not in summary
    assert tally["insights_dropped"] == 1 and tally["dropped"] == len(dropped) == 4
    where = ["insight 1 title", "insight 2", "insight 2 title", "summary"]
    assert [d["in"] for d in dropped] == where and dropped[0]["facts"] == ranking
    # The title of the insight dropped whole agreed, but was not shown either.
    assert [bool(d["failed"]) for d in dropped] == [True, True, False, True]


def test_an_insight_with_nothing_checkable_is_dropped_advice_about_a_segment_is_kept(
    weekly: dict[str, tuple[list[Fact], Profile]],
) -> None:
    review, ranking = _review(weekly, "pt", most=3)
    text = "Eu estão em toda as dúvidas."
    gibberish = {"title": "O que é o que tá", "text": text, "facts": ranking}
    assert review.insight(gibberish) is None
    advice = review.insight({"title": "", "text": "Foque no Sul.", "facts": ranking})
    assert advice is not None and advice["verified"] is False and advice["checked_claims"] == 0
    review.summarise("{", usable=True)
    insights, summary, tally, dropped = review.result()
    assert insights == [advice] and "{" not in summary
    assert tally["insights_dropped"] == 1 and tally["kept"] == 1
    assert [d["text"] for d in dropped] == ["O que é o que tá", text, "{"]


@pytest.mark.parametrize(
    ("lang", "text", "cite"),
    [
        ("pt", "Por que as vendas de Norte caíram em maio de 2024?", "anomaly"),
        ("pt", "Centro lidera com R$ 137.978,50?", "breakdown"),  # a true number, asked
        ("en", "Will Centro keep leading vendas_reais?", "breakdown"),
        ("en", "What drove the drop at Norte in May 2024?)", "anomaly"),
        ("pt", "¿Centro lidera.", "breakdown"),
    ],
)
def test_a_sentence_that_asks_is_dropped(
    weekly: dict[str, tuple[list[Fact], Profile]], lang: str, text: str, cite: str
) -> None:
    found, prof = weekly[lang]
    checker = ClaimChecker(found, lang, prof)
    stated = {"pt": "Centro foi a loja que mais vendeu.", "en": "Centro leads vendas_reais."}[lang]
    result = checker.check(f"{stated} {text}", _cite(found, "breakdown"))
    assert [s.kept for s in result.sentences] == [True, False]
    assert "question" in [c.kind for c in result.dropped[0].failed]
    assert result.text == stated
    # Asked on its own, the insight has nothing left and is dropped whole by the review.
    review, _ = _review(weekly, lang, most=3)
    assert review.insight({"title": "", "text": text, "facts": _cite(found, cite)}) is None
    _, _, tally, dropped = review.result()
    assert text in dropped[0]["failed"] and tally["insights_dropped"] == 1
