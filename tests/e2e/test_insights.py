"""Grounded insights end to end: a real server, the real model, real DuckDB and chart renders."""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from billumy.insights.checker import ClaimChecker
from billumy.insights.model import ColumnProfile, Fact, Profile
from billumy.insights.verify import check
from tests.e2e.server import Server
from tests.insights_data import weekly_stores

REGIONS = ["Norte", "Sul", "Sudeste", "Nordeste"]


def _sales() -> list[dict[str, object]]:
    rows = []
    for month in range(1, 7):
        for i, region in enumerate(REGIONS):
            revenue = 1000 + 250 * i + 40 * month * (i + 1)
            rows.append(
                {
                    "month": f"2024-{month:02d}-01",
                    "region": region,
                    "units": 10 + i + month,
                    "revenue": float(revenue),
                    "customer": f"Cliente Secreto {i}{month} Ltda",
                }
            )
    return rows


def _csv(rows: list[dict[str, object]]) -> str:
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(str(r[h]) for h in header) for r in rows]
    return "\n".join(lines) + "\n"


def _post(srv: Server, body: dict[str, object], key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or srv.api_key}"}
    return httpx.post(srv.url + "/api/insights", json=body, headers=headers, timeout=300)


def _numbers(fact: dict[str, object]) -> list[float]:
    values = fact["values"]
    assert isinstance(values, dict)
    return [float(v) for v in values.values() if isinstance(v, int | float)]


def test_insights_from_inline_records(server: Server) -> None:
    rows = _sales()
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[str(row["region"])] += float(row["revenue"])  # type: ignore[arg-type]
    best = max(totals, key=lambda r: totals[r])
    response = _post(
        server,
        {
            "question": "Qual região teve a maior receita (revenue)?",
            "data": rows,
            "user_id": "ana",
            "max_insights": 2,
            "columns": ["month", "region", "units", "revenue"],
            "narrative": True,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["language"] == "pt"
    facts = {f["id"]: f for f in body["facts"]}
    assert facts and all(
        f["sql"].lstrip().upper().startswith(("SELECT", "WITH")) for f in facts.values()
    )
    # Whatever the model wrote, the facts are exact: the best region's revenue is among them.
    by_region = [
        f
        for f in facts.values()
        if "region" in f["columns"] and any(r.get("region") == best for r in f["rows"])
    ]
    assert by_region, body["facts"]
    assert any(abs(n - totals[best]) < 1e-6 for f in by_region for n in _numbers(f)) or any(
        abs(float(r.get("revenue", 0) or 0) - totals[best]) < 1e-6
        for f in by_region
        for r in f["rows"]
        if r.get("region") == best and isinstance(r.get("revenue"), int | float)
    )
    # Only the allowed columns were analysed: the customer names are nowhere.
    assert "Cliente Secreto" not in response.text
    # The answer is always there; the model's insights only when its narrative was usable.
    assert body["answer"]["sentences"] and body["answer"]["language"] == "pt-BR"
    assert len(body["insights"]) <= 2 and body["narrative"] is True
    for insight in body["insights"]:
        assert set(insight["facts"]) <= set(facts)
        assert insight["verified"] is (insight["checked_claims"] >= 1)
        assert "[unverified" not in insight["text"] + insight["title"]  # dropped, not marked
    assert "[f" in body["summary"]
    charts = [i for i in body["insights"] if i["chart"]]
    headers = server.headers
    stored = httpx.get(f"{server.url}/api/insights/{body['id']}", headers=headers).json()
    assert stored["facts"] == body["facts"]
    if charts:
        svg = httpx.get(f"{server.url}/api/insights/{body['id']}/charts/0.svg", headers=headers)
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg")
        assert svg.text.lstrip().startswith("<svg") or "<svg" in svg.text[:200]
    # The answer has charts of its own (the facts it cites), numbered after the insights'.
    drawn = body["answer_charts"]
    assert drawn and all(spec["$schema"].startswith("https://vega.github.io") for spec in drawn)
    assert stored["answer_charts"] == drawn
    last = len(charts) + len(drawn) - 1
    svg = httpx.get(f"{server.url}/api/insights/{body['id']}/charts/{last}.svg", headers=headers)
    assert svg.status_code == 200 and "<svg" in svg.text[:200]
    after = httpx.get(
        f"{server.url}/api/insights/{body['id']}/charts/{last + 1}.svg", headers=headers
    )
    assert after.status_code == 404
    missing = httpx.get(f"{server.url}/api/insights/{body['id']}/charts/99.svg", headers=headers)
    assert missing.status_code == 404
    history = httpx.get(
        f"{server.url}/api/insights", params={"user_id": "ana"}, headers=headers
    ).json()["insights"]
    assert history[0]["id"] == body["id"]


def test_streaming_insights_send_facts_first(server: Server) -> None:
    with httpx.stream(
        "POST",
        server.url + "/api/insights",
        json={
            "data": _csv(_sales()),
            "stream": True,
            "max_insights": 1,
            "mask": ["customer"],
            "narrative": True,
        },
        headers=server.headers,
        timeout=300,
    ) as response:
        assert response.status_code == 200
        lines = [json.loads(x) for x in response.iter_lines() if x.strip()]
    kinds = [e["type"] for e in lines]
    # The answer, written by our code, goes out before any word of the model's narrative,
    # and of the narrative only the insights that passed the check, each once.
    assert kinds[:2] == ["facts", "answer"] and kinds[-1] == "insights"
    assert set(kinds[2:-1]) <= {"insight"}
    assert [e["insight"] for e in lines[2:-1]] == lines[-1]["insights"]
    assert lines[-1]["facts"] == lines[0]["facts"]
    assert lines[-1]["answer"] == lines[1]["answer"] and lines[1]["answer"]["sentences"]
    # The masked column is profiled for counts only; its values are nowhere.
    text = json.dumps(lines)
    assert "Cliente Secreto" not in text
    masked = next(c for c in lines[0]["profile"]["columns"] if c["name"] == "customer")
    assert masked["masked"] is True and not masked.get("top")
    assert not any(k in masked for k in ("min", "max", "mean"))


def _traced(sentence: dict[str, object], facts: dict[str, dict[str, object]], lang: str) -> bool:
    """Every number in an answer sentence equals a value (or a row cell) of a fact it cites;
    the facts' statements are left out, so the answer cannot vouch for itself."""
    cited = [
        Fact(
            id=str(f["id"]),
            kind=str(f["kind"]),
            statement="",
            values=f["values"],  # type: ignore[arg-type]
            columns=f["columns"],  # type: ignore[arg-type]
            sql=str(f["sql"]),
            rows=f["rows"],  # type: ignore[arg-type]
        )
        for f in (facts[i] for i in sentence["facts"])  # type: ignore[attr-defined]
    ]
    return check(str(sentence["text"]), cited, lang).verified


@pytest.mark.parametrize(
    ("question", "lang", "narrative"),
    [
        ("Qual região teve a maior receita (revenue) e qual foi o custo?", "pt", True),
        ("Which region had the highest revenue, and what was the cost?", "en", False),
    ],
)
def test_the_answer_comes_in_the_questions_language(
    server: Server, question: str, lang: str, narrative: bool
) -> None:
    response = _post(
        server,
        {
            "question": question,
            "data": _sales(),
            "columns": ["month", "region", "units", "revenue"],
            "narrative": narrative,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    answer = body["answer"]
    assert answer["language"] == ("pt-BR" if lang == "pt" else "en")
    facts = {f["id"]: f for f in body["facts"]}
    stated = [s for s in answer["sentences"] if s["kind"] == "fact"]
    assert stated and all(s["facts"] and set(s["facts"]) <= set(facts) for s in stated)
    for sentence in stated:
        assert _traced(sentence, facts, lang), sentence
    missing = (
        "Os dados não têm uma coluna de custo." if lang == "pt" else "The data has no cost column."
    )
    assert answer["sentences"][-1] == {"text": missing, "facts": [], "kind": "missing"}
    text = answer["text"]
    # Locale formatting: pt-BR writes 1.234,50 and R$ for money; English 1,234.50, no R$.
    if lang == "pt":
        assert not re.search(r"\d,\d{3}\.\d", text) and " de " in text
        assert all(" de " in f["statement"] or " têm " in f["statement"] for f in facts.values())
    else:
        assert not re.search(r"\d\.\d{3},\d", text) and "R$" not in text
    # Money columns are money in the answer: the revenue totals carry R$ in Portuguese.
    revenue = [s["text"] for s in stated if "total de revenue" in s["text"]]
    assert all("R$\xa0" in t for t in revenue)
    if not narrative:
        assert body["insights"] == []
    for insight in body["insights"]:
        assert insight["source"] == "model"
        assert not insight["verified"] or insight["checked_claims"] >= 1


def test_datasets_versions_and_changes(server: Server, tmp_path: Path) -> None:
    headers = server.headers
    first = _sales()
    upload = httpx.post(
        server.url + "/datasets",
        files={"file": ("vendas.csv", _csv(first).encode(), "text/csv")},
        data={"name": "vendas"},
        headers=headers,
        timeout=60,
    )
    assert upload.status_code == 201, upload.text
    dataset = upload.json()
    assert dataset["version"] == 1 and dataset["rows"] == len(first)
    assert {c["name"] for c in dataset["columns"]} == set(first[0])
    did = dataset["id"]
    same = httpx.post(
        server.url + "/datasets",
        files={"file": ("vendas.csv", _csv(first).encode(), "text/csv")},
        data={"dataset_id": did},
        headers=headers,
    )
    assert same.status_code == 200 and same.json()["version"] == 1
    assert same.json()["new_version"] is False
    question = {"dataset_id": did, "question": "Total revenue by region", "max_insights": 1}
    before = _post(server, question)
    assert before.status_code == 200, before.text
    assert before.json()["dataset"] == {"id": did, "version": 1, "hash": dataset["hash"]}
    changed = [dict(r) for r in first]
    for row in changed:
        if row["region"] == "Norte":
            row["revenue"] = float(row["revenue"]) * 3  # type: ignore[arg-type]
    second = httpx.post(
        server.url + "/datasets",
        json={"data": changed, "dataset_id": did},
        headers=headers,
    )
    assert second.status_code == 201 and second.json()["version"] == 2
    assert second.json()["hash"] != dataset["hash"]
    after = _post(server, question)
    assert after.status_code == 200, after.text
    changes = after.json()["changes"]
    assert changes and changes[0]["previous_version"] == 1
    assert any(c.get("change") == "changed" for c in changes[1:]), changes
    assert httpx.get(f"{server.url}/datasets/{did}", headers=headers).json()["version"] == 2
    # Another tenant sees none of it.
    other = server.create_key("insights-other", tenant="other-co")
    assert _post(server, question, key=other).status_code == 404
    other_headers = {"Authorization": f"Bearer {other}"}
    assert httpx.get(f"{server.url}/datasets/{did}", headers=other_headers).status_code == 404
    record = after.json()["id"]
    assert (
        httpx.get(f"{server.url}/api/insights/{record}", headers=other_headers).status_code == 404
    )
    assert httpx.delete(f"{server.url}/datasets/{did}", headers=headers).status_code == 204
    assert _post(server, question).status_code == 404


@pytest.mark.parametrize(
    ("data", "status", "needle"),
    [
        ("a,b\n1,2\n3,4,5\n", 400, "line 3"),
        ([], 400, "empty"),
        ("", 400, "empty"),
        (42, 400, "data must be"),
        ([{"a": {"nested": 1}}], 400, "nested"),
    ],
)
def test_bad_data_gets_clear_errors(server: Server, data: object, status: int, needle: str) -> None:
    response = _post(server, {"data": data})
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]


def test_unknown_things_are_404_or_400(server: Server) -> None:
    assert _post(server, {"dataset_id": "ds_0123456789abcdef"}).status_code == 404
    assert _post(server, {"dataset_id": "../../etc"}).status_code == 404
    both = _post(server, {"data": [{"a": 1}], "dataset_id": "ds_0123456789abcdef"})
    assert both.status_code == 400
    unknown = _post(server, {"data": [{"a": 1, "b": 2}], "mask": ["zzz"]})
    assert unknown.status_code == 400 and "zzz" in unknown.json()["error"]
    assert (
        httpx.get(
            f"{server.url}/api/insights/in_0000000000000000", headers=server.headers
        ).status_code
        == 404
    )


def test_masked_values_never_reach_the_model(make_server: type[Server], tmp_path: Path) -> None:
    srv = make_server(
        data_dir=tmp_path / "masked",
        env={"BILLUMY_LOG_PROMPTS": "true", "BILLUMY_MAX_DATASET_ROWS": "100"},
    ).start()
    rows = _sales()
    response = _post(
        srv,
        {
            "question": "Which region sold most?",
            "data": rows,
            "mask": ["customer"],
            "max_insights": 1,
            "narrative": True,
        },
    )
    assert response.status_code == 200, response.text
    log = srv.log()
    # The prompts were logged (so the scan means something), and no masked value is in them.
    assert "Facts computed from the data" in log
    assert "Cliente Secreto" not in log and "Cliente Secreto" not in response.text
    too_many = _post(srv, {"data": [{"a": i} for i in range(101)]})
    assert too_many.status_code == 413


def test_json_and_parquet_uploads(server: Server, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _sales()
    parquet = tmp_path / "vendas.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    uploads = {
        "vendas.parquet": (parquet.read_bytes(), "application/octet-stream"),
        "vendas.json": (json.dumps(rows).encode(), "application/json"),
        "vendas.ndjson": ("\n".join(json.dumps(r) for r in rows).encode(), "application/x-ndjson"),
    }
    for name, (content, kind) in uploads.items():
        response = httpx.post(
            server.url + "/datasets",
            files={"file": (name, content, kind)},
            headers=server.headers,
            timeout=60,
        )
        assert response.status_code == 201, (name, response.text)
        dataset = response.json()
        assert dataset["rows"] == len(rows) and dataset["name"] == name
        assert [c["name"] for c in dataset["columns"]] == list(rows[0])
    unknown = httpx.post(
        server.url + "/datasets",
        files={"file": ("vendas.xlsx", b"PK\x03\x04", "application/octet-stream")},
        headers=server.headers,
    )
    assert unknown.status_code == 400 and "format" in unknown.json()["error"]


def _weekly() -> list[dict[str, object]]:
    return weekly_stores()


def test_the_plan_comes_from_the_question_s_words_and_never_sums_the_week(server: Server) -> None:
    rows = _weekly()
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[str(row["loja"])] += float(row["vendas_reais"])  # type: ignore[arg-type]
    body = {"data": rows, "stream": False, "narrative": False}
    pt = _post(server, {**body, "question": "Qual loja vendeu mais?"}).json()
    assert pt["plan_source"] == "rules"
    assert pt["plan"]["dimensions"] == ["loja"]
    assert [m["column"] for m in pt["plan"]["measures"]] == ["vendas_reais"]
    best = f"{totals['Centro']:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
    assert "Centro" in pt["answer"]["text"] and f"R$\xa0{best}" in pt["answer"]["text"]
    en = _post(
        server,
        {**body, "question": "Which store sold the most, and how did sales change over the weeks?"},
    ).json()
    assert en["plan_source"] == "rules"
    assert [m["column"] for m in en["plan"]["measures"]] == ["vendas_reais"]
    assert en["plan"]["period"]["grain"] == "week"
    for answer in (pt, en):
        assert "semana" not in json.dumps(answer["plan"]["measures"])
        assert not any(f["columns"][:1] == ["semana"] for f in answer["facts"])


def test_a_question_about_a_column_the_data_lacks_is_not_guessed(server: Server) -> None:
    body = {"data": _weekly(), "stream": False, "narrative": False}
    r = _post(server, {**body, "question": "Qual foi o custo total?"}).json()
    assert r["plan_source"] == "none" and r["plan"] is None
    assert "Os dados não têm uma coluna de custo." in r["answer"]["text"]
    assert r["answer"]["language"] == "pt-BR"


def test_a_question_about_a_drop_is_answered_yes_with_the_store_and_the_weeks(
    server: Server,
) -> None:
    body = {"data": _weekly(), "stream": False, "narrative": False}
    r = _post(
        server, {**body, "question": "Alguma loja teve queda forte nas vendas? Qual e quando?"}
    )
    assert r.status_code == 200, r.text
    answer = r.json()["answer"]
    first = answer["sentences"][0]
    assert first["text"].startswith("Sim: Norte teve queda forte nas semanas de 13 e 20 de mai.")
    facts = {f["id"]: f for f in r.json()["facts"]}
    anomaly = facts[first["facts"][0]]
    assert anomaly["kind"] == "anomaly" and anomaly["values"]["count"] == 2
    assert {row["period"] for row in anomaly["rows"]} == {"2024-05-13", "2024-05-20"}
    assert check(first["text"], [Fact(**anomaly)], "pt").verified
    # Without Norte there is no drop: a "no" that says what was checked.
    others = [row for row in _weekly() if row["loja"] != "Norte"]
    no = _post(server, {**body, "data": others, "question": "Did any store's sales drop sharply?"})
    assert no.status_code == 200, no.text
    assert no.json()["answer"]["sentences"][0]["text"].startswith(
        "No: no loja had an unusual drop in vendas_reais (2 segments, "
    )


def test_every_part_of_a_question_is_answered_or_said_unanswered(server: Server) -> None:
    """Multi-part questions, a month filter, what drove a drop and a named segment's share,
    through the real server with narrative off: every part covered by a cited fact."""
    rows = _weekly()
    body = {"data": rows, "stream": False, "narrative": False}
    may = defaultdict(float)
    week = {19: defaultdict(float), 20: defaultdict(float)}
    for row in rows:
        if str(row["data"]).startswith("2024-05"):
            may[str(row["loja"])] += float(row["vendas_reais"])  # type: ignore[arg-type]
        if row["semana"] in week:
            week[row["semana"]][str(row["loja"])] += float(row["vendas_reais"])  # type: ignore[arg-type, index]
    cases = [
        ("Qual loja vendeu mais em maio?", ["rank", "filter"], "em maio de 2024"),
        (
            "Por que as vendas caíram na semana 20?",
            ["anomaly", "drivers"],
            "A maior parte veio de Norte",
        ),
        ("What share of sales came from Sul?", ["share"], "Sul accounts for"),
        (
            "Which store sold the most, and how did sales change over the weeks?",
            ["rank", "trend"],
            "has the highest",
        ),
    ]
    for question, kinds, words in cases:
        r = _post(server, {**body, "question": question})
        assert r.status_code == 200, r.text
        answer = r.json()["answer"]
        assert [p["kind"] for p in answer["parts"]] == kinds, question
        assert all(p["covered"] and p["facts"] for p in answer["parts"]), answer["parts"]
        assert words in answer["text"], answer["text"]
        cited = {f for s in answer["sentences"] for f in s["facts"]}
        assert {f for p in answer["parts"] for f in p["facts"]} <= cited | {
            f["id"] for f in r.json()["facts"]
        }
    best = max(may, key=lambda k: may[k])
    r = _post(server, {**body, "question": "Qual loja vendeu mais em maio?"}).json()
    ranking = next(f for f in r["facts"] if f["kind"] == "breakdown")
    assert ranking["values"]["top_segment"] == best
    assert ranking["values"]["top_value"] == pytest.approx(may[best])
    r = _post(server, {**body, "question": "Por que as vendas caíram na semana 20?"}).json()
    change = next(f for f in r["facts"] if f["kind"] == "change")
    drops = {k: week[20][k] - week[19][k] for k in week[20]}
    assert change["values"]["driver"] == min(drops, key=lambda k: drops[k])
    assert change["values"]["change"] == pytest.approx(sum(drops.values()))


WARDS = {"Medical ICU": 12, "Cardiology": 28, "Maternity": 30}  # ward -> staffed beds


def _census() -> list[dict[str, object]]:
    """A hospital's daily census, March and April 2024, in English columns and labels (as
    the eval set's ward census), asked about in Portuguese."""
    rng = random.Random(14)
    rows = []
    day = date(2024, 3, 1)
    while day <= date(2024, 4, 30):
        for ward, beds in WARDS.items():
            occupied = rng.randint(beds // 2, beds)
            rows.append(
                {
                    "census_date": day.strftime("%m/%d/%Y"),
                    "ward": ward,
                    "staffed_beds": beds,
                    "occupied_beds": occupied,
                    "admissions": rng.randint(1, 4 if ward == "Medical ICU" else 14),
                    "charges_usd": round(rng.uniform(20_000, 90_000), 2),
                }
            )
        day += timedelta(days=1)
    return rows


def _pt(value: float, decimals: int = 1) -> str:
    return f"{value:,.{decimals}f}".replace(",", "x").replace(".", ",").replace("x", ".")


def test_each_clause_of_a_question_is_answered_in_its_own_scope(server: Server) -> None:
    """ "Qual foi a taxa de ocupação da UTI em abril e qual ala teve mais internações?": the
    UTI restricts the rate, not the ranking of the wards (which a whole-question plan had
    dropped, answering "não consegui responder: o recorte Medical ICU"); a lead-in ("Na
    Cardiology, em 16/04/2024:") holds for every clause, and a restriction inside a later
    clause ("the ICU's occupied beds") for that clause alone. Numbers from Python sums."""
    rows = _census()
    april = [r for r in rows if str(r["census_date"]).startswith("04/")]
    icu = [r for r in april if r["ward"] == "Medical ICU"]
    rate = (
        100
        * sum(int(r["occupied_beds"]) for r in icu)
        / sum(  # type: ignore[call-overload]
            int(r["staffed_beds"])
            for r in icu  # type: ignore[call-overload]
        )
    )
    admitted: dict[str, int] = defaultdict(int)
    for r in april:
        admitted[str(r["ward"])] += int(r["admissions"])  # type: ignore[call-overload]
    top = max(admitted, key=lambda w: admitted[w])
    body = {"data": rows, "stream": False, "narrative": False}
    for question, rate_text, top_text in [
        (
            "Qual foi a taxa de ocupação da UTI em abril e qual ala teve mais internações?",
            f"{_pt(rate)}%",
            f"{top} {admitted[top]:,}".replace(",", "."),
        ),
        (
            "What was the ICU occupancy rate in April, and which ward had the most admissions?",
            f"{rate:.1f}%",
            f"{top} {admitted[top]:,}",
        ),
    ]:
        r = _post(server, {**body, "question": question})
        assert r.status_code == 200, r.text
        record = r.json()
        answer = record["answer"]
        assert rate_text in answer["text"], answer["text"]
        assert top_text in answer["text"], answer["text"]
        assert all(p["covered"] for p in answer["parts"]), answer["parts"]
        assert not [s for s in answer["sentences"] if s["kind"] != "fact"], answer["text"]
        assert [c["question"] for c in record["clauses"]] == re.split(
            r"\s*,?\s*(?:e|and) (?=qual|which)", question.rstrip("?")
        )
        # The rate is the UTI's; the ranking is every ward's, in April.
        ratio = next(f for f in record["facts"] if f["kind"] == "ratio")
        assert ratio["values"]["ratio_pct"] == pytest.approx(rate, abs=0.01)
        ranking = next(f for f in record["facts"] if f["kind"] == "breakdown")
        assert ranking["values"]["top_segment"] == top
        assert ranking["values"]["top_value"] == admitted[top]

    # A later clause about what the ranking picked: that ward's charges, in April.
    billed: dict[str, float] = defaultdict(float)
    rates: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in april:
        billed[str(r["ward"])] += float(r["charges_usd"])  # type: ignore[arg-type]
        rates[str(r["ward"])][0] += int(r["occupied_beds"])  # type: ignore[call-overload]
        rates[str(r["ward"])][1] += int(r["staffed_beds"])  # type: ignore[call-overload]
    lowest = min(rates, key=lambda w: rates[w][0] / rates[w][1])
    for question, ward, amount in [
        (
            "Qual ala teve mais internações em abril e quanto faturou?",
            top,
            _pt(billed[top], 2),
        ),
        (
            "Which ward had the lowest occupancy in April, and how much did it bill?",
            lowest,
            f"{billed[lowest]:,.2f}",
        ),
    ]:
        record = _post(server, {**body, "question": question}).json()
        text = record["answer"]["text"]
        assert re.search(rf"{ward} (?:in|em) (?:April|abril)[^.]*{re.escape(amount)}", text), text
        assert f"{sum(billed.values()):,.2f}" not in text  # not every ward's
        assert f"{_pt(sum(billed.values()), 2)}" not in text

    day = [r for r in rows if r["census_date"] == "04/16/2024"]
    cardiology = next(r for r in day if r["ward"] == "Cardiology")
    icu_day = next(r for r in day if r["ward"] == "Medical ICU")
    r = _post(
        server,
        {
            **body,
            "question": "Na Cardiology, em 16/04/2024: quantas internações, quantos leitos "
            "ocupados e quanto faturamos?",
        },
    )
    text = r.json()["answer"]["text"]
    assert "16 de abr. de 2024" in text, text
    for value in (cardiology["admissions"], cardiology["occupied_beds"]):
        assert re.search(rf"\b{value}\b", text), (value, text)
    assert _pt(float(cardiology["charges_usd"]), 2) in text, text  # type: ignore[arg-type]
    r = _post(
        server,
        {
            **body,
            "question": "On 4/16/2024: how many admissions did we have, how many beds were "
            "occupied in the ICU, and how much did we bill?",
        },
    )
    record = r.json()
    text = record["answer"]["text"]
    admissions = sum(int(x["admissions"]) for x in day)  # type: ignore[call-overload]
    billed = sum(float(x["charges_usd"]) for x in day)  # type: ignore[arg-type]
    assert f"{admissions:,}" in text, text
    assert f"{billed:,.2f}" in text, text  # every ward's bill, not the ICU's alone
    assert re.search(rf"ICU[^.]*\b{icu_day['occupied_beds']}\b", text), text


def _stream(srv: Server, body: dict[str, object]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The model insights streamed, and the stored record."""
    with httpx.stream(
        "POST",
        srv.url + "/api/insights",
        json={**body, "stream": True},
        headers=srv.headers,
        timeout=300,
    ) as response:
        assert response.status_code == 200, response.read()
        events = [json.loads(x) for x in response.iter_lines() if x.strip()]
    assert events[-1]["type"] == "insights", events[-1]
    assert [e["type"] for e in events[:2]] == ["facts", "answer"]
    streamed = [e["insight"] for e in events[2:-1] if e["type"] == "insight"]
    assert len(streamed) == len(events) - 3  # nothing else between the answer and the record
    return streamed, events[-1]


def _profile(record: dict[str, object]) -> Profile:
    shown = record["profile"]
    assert isinstance(shown, dict)
    columns = [
        ColumnProfile(**{**c, "top": [(t["value"], t["count"]) for t in c.get("top", [])]})
        for c in shown["columns"]
    ]
    return Profile(shown["row_count"], columns, shown["sampled"])


@pytest.mark.parametrize(
    ("question", "lang"),
    [
        ("Qual loja vendeu mais e alguma loja teve queda forte nas vendas?", "pt"),
        ("Which store sold the most, and did any store's sales drop sharply?", "en"),
    ],
)
def test_the_narrative_keeps_only_sentences_whose_claims_agree(
    server: Server, question: str, lang: str
) -> None:
    streamed, record = _stream(
        server, {"question": question, "data": _weekly(), "narrative": True, "max_insights": 2}
    )
    assert record["narrative"] is True and record["language"] == lang
    tally = record["narrative_check"]
    assert tally["sentences"] == tally["kept"] + tally["dropped"]
    insights = record["insights"]
    # What streamed is what was kept: the checked insights, nothing of the raw narrative.
    assert streamed == insights
    assert len(insights) + tally["insights_dropped"] <= 2
    assert sum(i["dropped_sentences"] for i in insights) <= tally["dropped"]
    dropped = record["narrative_dropped"]
    assert len(dropped) == tally["dropped"]
    facts = [Fact(**f) for f in record["facts"]]
    checker = ClaimChecker(facts, lang, _profile(record))
    for sentence in dropped:
        # A sentence dropped for its claims fails when checked again here against the facts
        # its insight cited; one dropped with its insight agreed but was not shown.
        again = checker.check_sentence(sentence["text"], sentence["facts"])
        assert again.kept is not bool(sentence["failed"]), sentence
        assert not any(sentence["text"] in i["text"] for i in insights if sentence["failed"])
    for insight in insights:
        # Verified means something was checked, and only then.
        assert insight["verified"] is (insight["checked_claims"] >= 1), insight
        assert insight["source"] == "model" and insight["text"]
        # Every kept sentence agrees when checked again here, with the same claim count.
        result = checker.check(insight["text"], insight["facts"])
        title = (
            checker.check_sentence(insight["title"], insight["facts"]).assertions
            if insight["title"]
            else 0
        )
        assert not result.dropped and result.checked_claims + title == insight["checked_claims"]


def test_the_embedded_model_narrates_only_when_asked(
    server: Server, make_server: type[Server], tmp_path: Path
) -> None:
    body = {"question": "Qual loja vendeu mais?", "data": _weekly(), "max_insights": 1}
    # The default model is the embedded one: no narrative unless the request asks.
    streamed, record = _stream(server, body)
    assert streamed == [] and record["narrative"] is False and record["insights"] == []
    assert record["narrative_check"] == {
        "sentences": 0, "kept": 0, "dropped": 0, "claims_checked": 0, "names_checked": 0,
        "insights_dropped": 0,
    }  # fmt: skip
    assert record["answer"]["sentences"]  # type: ignore[index]
    # insights_narrative = true in billumy.toml turns it on; a request still turns it off.
    data_dir = tmp_path / "narrative-on"
    data_dir.mkdir()
    (data_dir / "billumy.toml").write_text("insights_narrative = true\n")
    srv = make_server(data_dir=data_dir).start()
    streamed, record = _stream(srv, body)
    assert record["narrative"] is True and record["narrative_check"]["sentences"] > 0
    assert streamed == record["insights"]
    streamed, record = _stream(srv, {**body, "narrative": False})
    assert streamed == [] and record["narrative"] is False and record["insights"] == []
