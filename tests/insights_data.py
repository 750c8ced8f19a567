"""Datasets the insights tests share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from billumy.insights import data
from billumy.insights import question as questions
from billumy.insights.answer import build_answer
from billumy.insights.formats import for_language
from billumy.insights.model import Fact, Profile
from billumy.insights.plan import Plan
from billumy.insights.profile import profile
from billumy.insights.rules import rule_plan
from billumy.insights.service import InsightService
from billumy.insights.statements import Context
from billumy.schemas.insights import InsightRequest

STORES = {"Centro": 5000.0, "Norte": 4000.0, "Sul": 3000.0}


def weekly_stores() -> list[dict[str, object]]:
    """Issue 14's dataset: 26 weeks of three stores, a week-number column beside the date
    (week N starts on the Monday N - 1 weeks after 1 January 2024), a gentle upward trend and
    a small wobble; Norte's sales fall by 60% in weeks 20 and 21 (the weeks of 13 and 20 May)."""
    rows: list[dict[str, object]] = []
    for week in range(1, 27):
        for store, base in STORES.items():
            sales = base + 20 * week + (week % 3) * 35.5
            if store == "Norte" and week in (20, 21):
                sales *= 0.4
            rows.append(
                {
                    "semana": week,
                    "data": (date(2024, 1, 1) + timedelta(weeks=week - 1)).isoformat(),
                    "loja": store,
                    "vendas_reais": round(sales, 2),
                    "itens": int(sales // 25),
                }
            )
    return rows


def service_plan(question: str, prof: Profile) -> Plan | None:
    """The plan :class:`InsightService` makes of ``question`` (its rules, their correction
    and its refusals when a column is missing), with no model: a test fails if it is asked."""
    service = InsightService.__new__(InsightService)

    async def no_model(*args: object, **kwargs: object) -> AsyncIterator[str]:
        raise AssertionError("the model was asked")
        yield ""

    service._stream = no_model  # type: ignore[method-assign,assignment]
    request = InsightRequest(question=question)
    asked = questions.parse(question, prof)
    plan, _ = asyncio.run(service._plan(None, request, prof, asked))  # type: ignore[arg-type]
    return plan


@dataclass
class RulesRun:
    """What the service computes for a question with no model (narrative off): the plan its
    rules make, the facts, the questions' parts they cover and the answer's context."""

    question: str
    plan: Plan | None
    found: list[Fact]
    planned: set[str]
    parts: list[dict[str, Any]]
    ctx: Context

    @property
    def text(self) -> str:
        """The answer, as ``/api/insights`` writes it with ``narrative: false``."""
        return build_answer(
            question=self.question, facts=self.found, ctx=self.ctx, parts=self.parts
        ).text


def rules_run(rows: Sequence[dict[str, Any]], text: str, lang: str) -> RulesRun:
    """Plan ``text`` over ``rows`` by the rules, compute its facts and say them in ``lang``."""
    with data.from_records(list(rows)) as table:
        return table_run(table, text, lang)


def table_run(table: data.Table, text: str, lang: str) -> RulesRun:
    """:func:`rules_run` over a loaded table (a CSV's, with its text typed)."""
    prof = profile(table)
    asked = questions.parse(text, prof)
    plan = questions.reconcile(rule_plan(text, prof), asked, prof, "rules")
    found, planned = InsightService._facts(table, prof, plan, 3, text, asked)
    parts = questions.coverage(asked, found, planned, plan)
    ctx = Context(for_language(lang), prof, plan, planned)
    return RulesRun(text, plan, found, planned, parts, ctx)


def rules_answer(rows: Sequence[dict[str, Any]], text: str, lang: str) -> str:
    """The answer to ``text`` over ``rows`` with no model (narrative off), in ``lang``."""
    return rules_run(rows, text, lang).text
