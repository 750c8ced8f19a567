"""Datasets the insights tests share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta

from billumy.insights import question as questions
from billumy.insights.model import Profile
from billumy.insights.plan import Plan
from billumy.insights.service import InsightService
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
