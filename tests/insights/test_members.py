"""A gym chain's months asked about in Portuguese over English column names: "membros
ativos" is ``active_members`` (a level read at the latest month), "academia" is ``gym``, and
a churn rate is the cancellations over the members on the books."""

from __future__ import annotations

from typing import Any

import pytest

from tests.insights_data import rules_run

GYMS = {"Downtown": 3, "Riverside": 2}
PLANS = {"Basic": 30.0, "Premium": 80.0}


def _months() -> list[dict[str, Any]]:
    rows = []
    for month in range(1, 7):
        for gym, size in GYMS.items():
            for plan, price in PLANS.items():
                active = 100 * size + 10 * month
                rows.append(
                    {
                        "month": f"2024-{month:02d}",
                        "gym": gym,
                        "plan": plan,
                        "new_members": 20 * size,
                        "cancellations": 5 * size + (30 if gym == "Riverside" else 0),
                        "active_members": active,
                        "revenue_usd": active * price,
                    }
                )
    return rows


def test_active_members_today_are_the_latest_month_s() -> None:
    rows = _months()
    run = rules_run(rows, "Quantos membros ativos temos hoje?", "pt")
    assert run.plan is not None
    assert [m.column for m in run.plan.measures] == ["active_members"]
    june = sum(r["active_members"] for r in rows if r["month"] == "2024-06")
    shown = f"{june:,}".replace(",", ".")
    assert f"Em junho de 2024, o total de active_members é {shown}." in run.text, run.text


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Qual a taxa de cancelamento por academia?", "pt"),
        ("What's our churn rate by gym?", "en"),
    ],
)
def test_a_churn_rate_by_gym(text: str, lang: str) -> None:
    rows = _months()
    run = rules_run(rows, text, lang)
    (ratio,) = [f for f in run.found if f.kind == "ratio"]
    assert (ratio.values["part"], ratio.values["whole"]) == ("cancellations", "active_members")
    by_gym = {
        gym: 100
        * sum(r["cancellations"] for r in rows if r["gym"] == gym)
        / sum(r["active_members"] for r in rows if r["gym"] == gym)
        for gym in GYMS
    }
    assert {r["gym"]: r["ratio_pct"] for r in ratio.rows} == pytest.approx(by_gym)
    assert max(by_gym, key=by_gym.__getitem__) == "Riverside"


def test_revenue_per_active_member_by_plan_is_the_price() -> None:
    run = rules_run(_months(), "Qual plano gera mais receita por membro ativo?", "pt")
    (per,) = [f for f in run.found if f.kind == "per"]
    assert per.values["denominator"] == "active_members"
    assert {r["plan"]: r["per_value"] for r in per.rows} == pytest.approx(PLANS)


@pytest.mark.parametrize(
    ("text", "lang", "gym"),
    [
        ("Qual academia teve o pior resultado em cancelamentos?", "pt", "Riverside"),
        ("Which gym had the worst cancellations?", "en", "Riverside"),
        ("Which gym had the best cancellations?", "en", "Downtown"),
        ("Qual academia teve menos cancelamentos?", "pt", "Downtown"),
    ],
)
def test_the_worst_of_something_bad_is_its_most(text: str, lang: str, gym: str) -> None:
    """More cancellations is worse: "the worst" ranks them from the most, "the best" from
    the fewest; "menos" is a size and keeps its own order."""
    run = rules_run(_months(), text, lang)
    assert run.plan is not None and run.plan.dimensions == ["gym"]
    first = run.text.split("Ranking: ")[1]
    assert first.startswith(gym), run.text


def test_the_worst_month_of_cancellations_is_the_highest() -> None:
    rows = _months()
    rows[-1] = {**rows[-1], "cancellations": 500}  # June, Riverside, Premium
    run = rules_run(rows, "Qual foi o pior mês de cancelamentos?", "pt")
    assert "O maior valor do total de cancellations foi em junho de 2024" in run.text, run.text
