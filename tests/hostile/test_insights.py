"""Insights: dataset column names become grammar literals in the model's plan; a chart's name
comes from the URL. Neither may crash the engine process or answer a 500."""

from __future__ import annotations

import json

from billumy.insights import data
from billumy.insights.plan import plan_schema
from billumy.insights.profile import profile
from tests.hostile.conftest import Hostile, refused

HOSTILE = 'a"; DROP TABLE data; --'
ODD = "ticket\\médio]} \u0007"
RECORDS = [
    {"loja": store, HOSTILE: units, ODD: units * 2.5}
    for store, units in [("Sul", 1), ("Norte", 5), ("Leste", 3), ("Oeste", 2)]
]


def test_column_names_with_quotes_reach_the_models_plan_safely(hostile: Hostile) -> None:
    # "hmm?" names no column: the rules read no plan, so the model writes one under a schema
    # whose enums are these column names.
    body = {"question": "hmm?", "data": RECORDS, "narrative": False}
    r = hostile.attacker.post("/api/insights", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["plan_source"] in ("model", "none")
    columns = {c["name"] for c in r.json()["profile"]["columns"]}
    assert {HOSTILE, ODD} <= columns


def test_the_plan_schema_of_hostile_columns_constrains_a_generation(hostile: Hostile) -> None:
    with data.from_records(RECORDS) as table:
        schema = plan_schema(profile(table))
    assert HOSTILE in json.dumps(schema, ensure_ascii=False) or HOSTILE in str(schema)
    body = {
        "model": "billumy",
        "prompt": f"Plan: total of {HOSTILE} by loja.",
        "stream": False,
        "format": schema,
        "options": {"num_predict": 48, "temperature": 0},
    }
    r = hostile.attacker.post("/api/generate", json=body)
    assert r.status_code == 200, r.text


def test_a_chart_name_that_is_not_ascii_digits_is_a_400(hostile: Hostile) -> None:
    for name in ("%C2%B2.svg", "%D9%A3.svg", "9" * 5000 + ".svg", "1.png", "-1.svg"):
        r = hostile.attacker.get(f"/api/insights/in_0123456789abcdef/charts/{name}")
        refused(r, "charts are served as /charts/{n}.svg")


def test_malformed_uploads_are_400s_that_say_what_is_wrong(hostile: Hostile) -> None:
    post = hostile.attacker.post
    multipart = {"content-type": "multipart/form-data; boundary=zz"}
    cases = [
        (
            post("/datasets", content=b"abc", headers={"content-type": "multipart/form-data"}),
            "boundary",
        ),
        (post("/datasets", content=b"garbage", headers=multipart), "multipart"),
        (
            post(
                "/datasets",
                files=[("file", ("a.csv", b"a\n1\n", "text/csv"))] * 2,
            ),
            "Too many files",
        ),
        (
            post("/datasets", files={"file": ("a.csv", b'a,b\n"1,2\n3,"4\n', "text/csv")}),
            "CSV line 2",
        ),
        (post("/datasets", files={"file": ("a.parquet", b"PAR1garbagePAR1", "x/y")}), "Parquet"),
        (post("/datasets", files={"file": ("a.json", b"[" * 5000 + b"]" * 5000, "x/y")}), "JSON"),
        (post("/datasets", files={"file": ("a.xlsx", b"PK\x03\x04", "x/y")}), "data format"),
        (post("/datasets", files={"file": ("a.csv", b"", "text/csv")}), "empty"),
    ]
    for response, words in cases:
        refused(response, words, status=(400, 413, 422))
