"""The deterministic half of insights: loading, profiling and facts.

Expected numbers are computed here in plain Python from the golden CSV files in
``tests/data/insights`` (read with the :mod:`csv` module), never with DuckDB, so a fact is
checked against an independent computation. Float totals are compared with a relative
tolerance of 1e-12 (summation order), everything else exactly.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from billumy.errors import BadRequestError, PayloadTooLargeError
from billumy.insights import data
from billumy.insights.data import Limits, Table
from billumy.insights.grains import choose_grain, natural_grain
from billumy.insights.model import Fact, Profile
from billumy.insights.plan import Filter, Measure, Period, Plan, plan_schema, validate_plan
from billumy.insights.planned import facts_for_plan
from billumy.insights.profile import profile
from billumy.insights.rules import rule_plan
from billumy.insights.salient import salient_facts
from billumy.insights.verify import check
from billumy.insights.wording import fmt_number

DATA = Path(__file__).resolve().parents[1] / "data" / "insights"
REGIONS = ["Norte", "Sul", "Sudeste", "Nordeste"]


def approx(value: float) -> Any:
    return pytest.approx(value, rel=1e-12, abs=1e-9)


def golden(name: str) -> list[dict[str, str]]:
    with (DATA / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def sales() -> Iterator[Table]:
    with data.from_file(DATA / "sales.csv", "csv") as table:
        yield table


@pytest.fixture
def tickets() -> Iterator[Table]:
    with data.from_file(DATA / "tickets.csv", "csv") as table:
        yield table


@pytest.fixture
def monthly() -> Iterator[Table]:
    """24 rows: the first day of each month 2024-01..2024-06 by four regions."""
    with data.from_file(DATA / "monthly.csv", "csv") as table:
        yield table


@pytest.fixture
def traffic() -> Iterator[Table]:
    with data.from_file(DATA / "traffic.csv", "csv") as table:
        yield table


def all_facts(table: Table, prof: Profile | None = None) -> list[Fact]:
    return salient_facts(table, prof or profile(table), limit=100)


def only(facts: list[Fact], kind: str, *columns: str) -> Fact:
    found = [f for f in facts if f.kind == kind and list(f.columns) == list(columns)]
    assert len(found) == 1, [(f.kind, f.columns) for f in facts]
    return found[0]


def sums_by(rows: list[dict[str, str]], key: str, value: str) -> dict[str, float]:
    out: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        out[row[key]].append(float(row[value]))
    return {k: math.fsum(v) for k, v in out.items()}


def slope(values: list[float]) -> float:
    return statistics.linear_regression(list(range(len(values))), values).slope


# --- loading and profiling -----------------------------------------------------------------


def test_sales_loads_typed_and_profiles(sales: Table) -> None:
    rows = golden("sales")
    assert sales.columns == ["month", "region", "product", "units", "revenue"]
    assert sales.types == {
        "month": "DATE",
        "region": "VARCHAR",
        "product": "VARCHAR",
        "units": "BIGINT",
        "revenue": "DOUBLE",
    }
    assert sales.row_count == len(rows) == 48
    prof = profile(sales)
    kinds = {c.name: c.kind for c in prof.columns}
    assert kinds == {
        "month": "temporal",
        "region": "categorical",
        "product": "categorical",
        "units": "numeric",
        "revenue": "numeric",
    }
    revenue = [float(r["revenue"]) for r in rows]
    col = prof.column("revenue")
    assert col is not None
    assert col.sum == approx(math.fsum(revenue))
    assert (col.min, col.max, col.count, col.nulls) == (min(revenue), max(revenue), 48, 0)
    assert col.median == approx(statistics.median(revenue))
    q1, _, q3 = statistics.quantiles(revenue, n=4, method="inclusive")
    assert (col.q1, col.q3) == (approx(q1), approx(q3))
    month = prof.column("month")
    assert month is not None and (month.min, month.max) == ("2024-01-01", "2024-12-01")
    region = prof.column("region")
    assert region is not None and sorted(region.top) == sorted((r, 12) for r in REGIONS)
    assert not prof.sampled


def test_id_and_text_columns_are_not_measures(tickets: Table) -> None:
    prof = profile(tickets)
    ident = prof.column("id")
    assert ident is not None and ident.kind == "id"
    facts = all_facts(tickets, prof)
    assert all(f.columns[:1] != ["id"] for f in facts)  # never a measure or a dimension
    assert not [f for f in facts if f.kind == "summary" and f.columns == ["id"]]
    with data.from_records([{"note": f"free text number {i} here"} for i in range(60)]) as t:
        assert profile(t).columns[0].kind == "text"
    with data.from_records([{"token": f"TK-{i:05d}", "v": i} for i in range(60)]) as t:
        assert profile(t).columns[0].kind == "id"


def test_large_tables_are_profiled_on_a_sample() -> None:
    records = [{"v": i % 97, "c": f"k{i % 7}"} for i in range(3000)]
    with data.from_records(records) as table:
        prof = profile(table, sample_rows=500)
        exact = profile(table)
    assert prof.sampled and not exact.sampled
    v = prof.column("v")
    assert v is not None and v.sum == math.fsum(r["v"] for r in records)  # sums stay exact
    assert v.median is not None and abs(v.median - 48) <= 3


# --- salient facts -------------------------------------------------------------------------


def test_sales_totals_and_row_count(sales: Table) -> None:
    rows = golden("sales")
    facts = all_facts(sales)
    assert only(facts, "row_count").values == {"rows": 48}
    revenue = only(facts, "summary", "revenue").values
    assert revenue["total"] == approx(math.fsum(float(r["revenue"]) for r in rows))
    assert revenue["mean"] == approx(math.fsum(float(r["revenue"]) for r in rows) / 48)
    units = only(facts, "summary", "units").values
    assert units["total"] == sum(int(r["units"]) for r in rows)
    assert isinstance(units["total"], int)


def test_sales_monthly_trend(sales: Table) -> None:
    by_month = sums_by(golden("sales"), "month", "revenue")
    months = sorted(by_month)
    series = [by_month[m] for m in months]
    fact = only(all_facts(sales), "trend", "month", "revenue")
    assert [r["period"] for r in fact.rows] == months == [f"2024-{m:02d}" for m in range(1, 13)]
    assert [r["revenue"] for r in fact.rows] == [approx(v) for v in series]
    v = fact.values
    assert (v["first_period"], v["last_period"], v["previous_period"]) == (
        "2024-01",
        "2024-12",
        "2024-11",
    )
    assert v["last"] == approx(series[-1]) and v["previous"] == approx(series[-2])
    assert v["change"] == approx(series[-1] - series[-2])
    assert v["change_pct"] == approx(100 * (series[-1] - series[-2]) / series[-2])
    assert v["slope"] == approx(slope(series))
    assert v["direction"] == "up"
    assert "2024-12" in fact.statement and "up" in fact.statement


def test_sales_top_and_bottom_segments(sales: Table) -> None:
    rows = golden("sales")
    by_region = sums_by(rows, "region", "revenue")
    total = math.fsum(by_region.values())
    top = max(by_region, key=by_region.__getitem__)
    bottom = min(by_region, key=by_region.__getitem__)
    assert (top, bottom) == ("Sudeste", "Nordeste")
    facts = all_facts(sales)
    best = only(facts, "top_segment", "region", "revenue").values
    assert best == {
        "segment": "Sudeste",
        "value": approx(by_region["Sudeste"]),
        "share_pct": approx(100 * by_region["Sudeste"] / total),
    }
    worst = only(facts, "bottom_segment", "region", "revenue").values
    assert worst["segment"] == "Nordeste"
    assert worst["value"] == approx(by_region["Nordeste"])
    assert worst["share_pct"] == approx(100 * by_region["Nordeste"] / total)


def test_outliers_use_tukey_fences(sales: Table, tickets: Table) -> None:
    revenue = [float(r["revenue"]) for r in golden("sales")]
    q1, _, q3 = statistics.quantiles(revenue, n=4, method="inclusive")
    low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    expected = [v for v in revenue if v < low or v > high]
    fact = only(all_facts(sales), "outliers", "revenue")
    assert fact.values["count"] == len(expected) == 1
    assert fact.values["most_extreme"] == 1500.0
    assert fact.values["lower_fence"] == approx(low)
    assert fact.values["upper_fence"] == approx(high)
    hours = only(all_facts(tickets), "outliers", "resolution_hours", "id")
    assert hours.rows[0] == {
        "id": 1017,
        "resolution_hours": 240.0,
        "outliers": 1,
        "lower_fence": hours.values["lower_fence"],
        "upper_fence": hours.values["upper_fence"],
    }


def test_correlation_sign(tickets: Table, traffic: Table) -> None:
    rows = golden("tickets")
    hours = [float(r["resolution_hours"]) for r in rows]
    satisfaction = [float(r["satisfaction"]) for r in rows]
    fact = only(all_facts(tickets), "correlation", "resolution_hours", "satisfaction")
    r = fact.values["r"]
    assert isinstance(r, float) and r < 0
    assert r == pytest.approx(statistics.correlation(hours, satisfaction), rel=1e-9)
    visits = only(all_facts(traffic), "correlation", "visits", "signups")
    assert isinstance(visits.values["r"], float) and visits.values["r"] > 0.9


def test_daily_grain_and_average_measures(traffic: Table, tickets: Table) -> None:
    by_day = sums_by(golden("traffic"), "date", "visits")
    fact = only(all_facts(traffic), "trend", "date", "visits")
    assert fact.values["periods"] == len(by_day) == 60
    assert fact.values["last"] == by_day["2024-06-29"] and fact.values["direction"] == "up"
    # resolution_hours and satisfaction are averaged, not summed
    rows = golden("tickets")
    groups: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        groups[row["channel"]].append(float(row["resolution_hours"]))
    means = {k: statistics.fmean(v) for k, v in groups.items()}
    slowest = max(means, key=means.__getitem__)
    fact = only(all_facts(tickets), "top_segment", "channel", "resolution_hours")
    assert fact.values["segment"] == slowest == "phone"
    assert fact.values["value"] == approx(means["phone"])
    overall = statistics.fmean(float(r["resolution_hours"]) for r in rows)
    assert fact.values["overall"] == approx(overall)
    assert "Average resolution_hours" in fact.statement


def test_fact_contract(sales: Table, tickets: Table) -> None:
    """Ids in salience order, plain values, and SQL that reproduces the rows."""
    for table in (sales, tickets):
        facts = salient_facts(table, profile(table))
        assert 0 < len(facts) <= 8
        assert [f.id for f in facts] == [f"f{i}" for i in range(1, len(facts) + 1)]
        assert [f.score for f in facts] == sorted((f.score for f in facts), reverse=True)
        for fact in facts:
            assert fact.statement and fact.sql.lstrip().upper().startswith(("SELECT", "WITH"))
            json.dumps(fact.as_dict())  # plain JSON types only
            rerun = table.records(fact.sql, fact.params)
            assert [{k: _plain(v) for k, v in r.items()} for r in rerun] == fact.rows


def _plain(value: Any) -> Any:
    from billumy.insights.profile import plain

    return plain(value)


# --- plans ---------------------------------------------------------------------------------


def test_plan_overall_by_dimension_and_quarter(sales: Table) -> None:
    rows = [r for r in golden("sales") if r["product"] == "Café"]
    plan = Plan(
        measures=[Measure(column="revenue", agg="sum"), Measure(column="*", agg="count")],
        dimensions=["region"],
        filters=[Filter(column="product", op="=", value="Café")],
        period=Period(column="month", grain="quarter"),
    )
    overall, segments, trend = facts_for_plan(sales, profile(sales), plan)
    total = math.fsum(float(r["revenue"]) for r in rows)
    assert (overall.id, segments.id, trend.id) == ("f1", "f2", "f3")
    assert overall.values == {"sum_revenue": approx(total), "count": len(rows)}
    assert overall.params == ["Café"] and "product = 'Café'" in overall.statement
    by_region = sums_by(rows, "region", "revenue")
    assert [r["region"] for r in segments.rows] == ["Sudeste", "Norte"]
    assert segments.rows[0]["sum_revenue"] == approx(by_region["Sudeste"])
    assert segments.rows[0]["share_pct"] == approx(100 * by_region["Sudeste"] / total)
    quarters = sums_by(
        [{**r, "quarter": f"2024-Q{(int(r['month'][5:]) - 1) // 3 + 1}"} for r in rows],
        "quarter",
        "revenue",
    )
    assert [r["period"] for r in trend.rows] == ["2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"]
    q3, q4 = quarters["2024-Q3"], quarters["2024-Q4"]
    assert trend.values["change"] == approx(q4 - q3)
    assert trend.values["change_pct"] == approx(100 * (q4 - q3) / q3)


def test_plan_filters_are_parameters(sales: Table) -> None:
    prof = profile(sales)
    evil = "x'; DROP TABLE data; --"
    plan = Plan(
        measures=[Measure(column="revenue", agg="sum"), Measure(column="*", agg="count")],
        filters=[Filter(column="region", op="=", value=evil)],
    )
    (fact,) = facts_for_plan(sales, prof, plan)
    assert fact.values == {"sum_revenue": None, "count": 0}
    assert evil not in fact.sql and fact.params == [evil]
    assert sales.query("SELECT count(*) FROM data") == [(48,)]
    rows = golden("sales")
    plan = Plan(
        measures=[Measure(column="units", agg="max"), Measure(column="revenue", agg="avg")],
        filters=[
            Filter(column="region", op="in", value=["Sul", "Norte", evil]),
            Filter(column="units", op=">=", value=20),
        ],
    )
    (fact,) = facts_for_plan(sales, prof, plan)
    kept = [r for r in rows if r["region"] in ("Sul", "Norte") and int(r["units"]) >= 20]
    assert fact.values["max_units"] == max(int(r["units"]) for r in kept)
    assert fact.values["avg_revenue"] == approx(statistics.fmean(float(r["revenue"]) for r in kept))


def test_plan_last_periods_and_ascending_order(sales: Table) -> None:
    plan = Plan(
        measures=[Measure(column="units", agg="sum")],
        dimensions=["region"],
        period=Period(column="month", grain="month", last=3),
        order="asc",
        top_n=2,
    )
    _, segments, trend = facts_for_plan(sales, profile(sales), plan)
    assert [r["period"] for r in trend.rows] == ["2024-10", "2024-11", "2024-12"]
    rows = [r for r in golden("sales") if r["month"] >= "2024-10"]
    units: dict[str, int] = defaultdict(int)
    for row in rows:
        units[row["region"]] += int(row["units"])
    expected = sorted(units.items(), key=lambda kv: (kv[1], kv[0]))[:2]
    assert [(r["region"], r["sum_units"]) for r in segments.rows] == expected


def test_validate_plan_names_the_column(sales: Table) -> None:
    prof = profile(sales, masked={"product"})
    bad = [
        (Plan(measures=[Measure(column="nope", agg="sum")]), "nope"),
        (Plan(measures=[Measure(column="product", agg="count")]), "product"),
        (Plan(measures=[Measure(column="region", agg="avg")]), "region"),
        (Plan(measures=[Measure(column="*", agg="sum")]), r"'\*'"),
        (Plan(measures=[Measure(column="*", agg="count")], dimensions=["units"]), "units"),
        (Plan(measures=[Measure(column="*", agg="count")], dimensions=["product"]), "product"),
        (
            Plan(
                measures=[Measure(column="*", agg="count")],
                period=Period(column="region", grain="month"),
            ),
            "region",
        ),
        (
            Plan(
                measures=[Measure(column="*", agg="count")],
                filters=[Filter(column="units", op=">", value="many")],
            ),
            "units",
        ),
        (
            Plan(
                measures=[Measure(column="*", agg="count")],
                filters=[Filter(column="region", op="in", value="Sul")],
            ),
            "region",
        ),
    ]
    for plan, name in bad:
        with pytest.raises(BadRequestError, match=name):
            validate_plan(plan, prof)
        with pytest.raises(BadRequestError):
            facts_for_plan(sales, prof, plan)


def test_plan_schema_is_simple_and_matches_plans(sales: Table) -> None:
    prof = profile(sales, masked={"product"})
    schema = plan_schema(prof)
    text = json.dumps(schema)
    assert "$ref" not in text and "oneOf" not in text and "product" not in text
    props = schema["properties"]
    assert props["measures"]["items"]["properties"]["column"]["enum"] == [
        "units",
        "revenue",
        "*",
    ]
    assert props["dimensions"]["items"]["enum"] == ["month", "region"]
    assert props["period"]["properties"]["column"]["enum"] == ["month"]
    plan = {
        "measures": [{"column": "revenue", "agg": "sum"}],
        "dimensions": ["region"],
        "filters": [{"column": "region", "op": "in", "value": ["Sul", "Norte"]}],
        "period": {"column": "month", "grain": "month", "last": 3},
    }
    jsonschema.validate(plan, schema)
    validate_plan(Plan.model_validate(plan), prof)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**plan, "dimensions": ["product"]}, schema)


def test_rule_plan_from_keywords(sales: Table, tickets: Table) -> None:
    prof = profile(sales)
    plan = rule_plan("What was the total revenue by region per quarter?", prof)
    assert plan is not None
    assert plan.measures == [Measure(column="revenue", agg="sum")]
    assert plan.dimensions == ["region"]
    assert plan.period == Period(column="month", grain="quarter")
    plan = rule_plan("Média de units no Sul nos últimos 3 meses", prof)
    assert plan is not None
    assert plan.measures == [Measure(column="units", agg="avg")]
    assert plan.filters == [Filter(column="region", op="=", value="Sul")]
    assert plan.period == Period(column="month", grain="month", last=3)
    plan = rule_plan("Which regions had the lowest revenue?", prof)
    assert plan is not None and plan.dimensions == ["region"] and plan.order == "asc"
    assert rule_plan("hello there", prof) is None
    plan = rule_plan("How many tickets per priority and channel?", profile(tickets))
    assert plan is not None
    assert plan.measures == [Measure(column="*", agg="count")]
    assert plan.dimensions == ["channel", "priority"]


def test_rule_plan_with_accents_and_plurals() -> None:
    records = [
        {"Mês": f"2024-{m:02d}", "Região": r, "Receita Líquida": 10.0 * m + i}
        for m in range(1, 7)
        for i, r in enumerate(["Sul", "Norte"])
    ]
    with data.from_records(records) as table:
        prof = profile(table)
        plan = rule_plan("qual a soma das receitas liquidas por regiões a cada mes?", prof)
        assert plan is not None
        assert plan.measures == [Measure(column="Receita Líquida", agg="sum")]
        assert plan.dimensions == ["Região"]
        assert plan.period == Period(column="Mês", grain="month")
        overall, by_region, _ = facts_for_plan(table, prof, plan)
        expected = sum(10.0 * m for m in range(1, 7)) * 2 + 6
        assert overall.values == {"sum_Receita Líquida": approx(expected)}
        assert by_region.rows[0]["Região"] == "Norte"


def test_odd_column_names(sales: Table) -> None:
    odd = 'Região "norte"'
    records = [
        {odd: r, "valor total": float(i), "it's": i % 3, "mês": f"2024-0{1 + i % 3}-01"}
        for i, r in enumerate(REGIONS * 5)
    ]
    with data.from_records(records) as table:
        prof = profile(table)
        facts = all_facts(table, prof)
        assert any(f.kind == "top_segment" and f.columns[0] == odd for f in facts)
        assert '"Região ""norte"""' in only(facts, "top_segment", odd, "valor total").sql
        plan = Plan(
            measures=[Measure(column="valor total", agg="sum")],
            dimensions=[odd],
            filters=[Filter(column=odd, op="!=", value="Sul")],
            period=Period(column="mês", grain="month"),
        )
        overall, _, _ = facts_for_plan(table, prof, plan)
        expected = sum(float(i) for i, r in enumerate(REGIONS * 5) if r != "Sul")
        assert overall.values == {"sum_valor total": expected}


# --- bad input -----------------------------------------------------------------------------


def test_malformed_csv_names_the_line() -> None:
    text = "a,b,c\n1,2,3\n4,5,6\n7,8,9\n1,2,3\n4,5,6\n9,10,11,12\n1,2,3\n"
    with pytest.raises(BadRequestError, match="CSV line 7 has 4 fields, expected 3"):
        data.from_csv(text)
    with pytest.raises(BadRequestError, match="CSV line 3 has 3 fields, expected 2"):
        data.from_csv("a,b\n1,2\n3,4,5\n")  # DuckDB's own sniffer returns no rows here
    with pytest.raises(BadRequestError, match="CSV line 4 has 1 field, expected 2"):
        data.from_csv('a,b\n"multi\nline",2\n3\n')
    big = "a,b\n" + "".join(f"{i},{i}\n" for i in range(30_000)) + "1,2,3\n"
    with pytest.raises(BadRequestError, match="CSV line 30002 has 3 fields, expected 2"):
        data.from_csv(big)


def test_empty_and_degenerate_data() -> None:
    for empty in ("", "   \n", "a,b\n"):
        with pytest.raises(BadRequestError, match="the data is empty"):
            data.from_csv(empty)
    for call in (
        lambda: data.from_records([]),
        lambda: data.from_records([{}, {}]),
        lambda: data.from_columns({}),
    ):
        with pytest.raises(BadRequestError, match="the data is empty"):
            call()
    with data.from_csv("value\n1\n2\n3\n") as one:
        facts = all_facts(one)
        assert only(facts, "summary", "value").values["total"] == 6
    with data.from_records([{"x": None, "y": None}, {"x": None, "y": None}]) as nulls:
        prof = profile(nulls)
        assert [c.kind for c in prof.columns] == ["empty", "empty"]
        assert [f.kind for f in salient_facts(nulls, prof)] == ["row_count"]


def test_names_must_be_unique_and_non_empty() -> None:
    with pytest.raises(BadRequestError, match="duplicate column name"):
        data.from_csv("a,A\n1,2\n")
    with pytest.raises(BadRequestError, match="column 2 has an empty name"):
        data.from_csv("a,,c\n1,2,3\n")
    with pytest.raises(BadRequestError, match="'a' has 2, 'b' has 1"):
        data.from_columns({"a": [1, 2], "b": [1]})
    with pytest.raises(BadRequestError, match="record 2 is not an object"):
        data.from_records([{"a": 1}, [1]])  # type: ignore[list-item]


def test_mixed_types_fall_back_to_text() -> None:
    with data.from_records([{"x": 1}, {"x": "2"}, {"x": 3.5}]) as numbers:
        assert numbers.types == {"x": "DOUBLE"}
        assert numbers.query("SELECT sum(x) FROM data") == [(6.5,)]
    with data.from_records([{"x": 1}, {"x": "abc"}, {"x": True}, {"y": 2}]) as mixed:
        assert mixed.types == {"x": "VARCHAR", "y": "BIGINT"}
        assert mixed.query("SELECT x FROM data") == [("1",), ("abc",), ("true",), (None,)]
        all_facts(mixed)


def test_limits_give_413() -> None:
    with pytest.raises(PayloadTooLargeError, match="column 'a'"):
        data.from_records([{"a": "x" * 10_001}])
    with pytest.raises(PayloadTooLargeError, match="column 'b'"):
        data.from_csv("a,b\n1," + "y" * 10_001 + "\n")
    wide = {f"c{i}": 1 for i in range(101)}
    with pytest.raises(PayloadTooLargeError, match="101 columns"):
        data.from_records([wide])
    with pytest.raises(PayloadTooLargeError, match="101 columns"):
        data.from_csv(",".join(wide) + "\n" + ",".join("1" for _ in wide) + "\n")
    small = Limits(max_rows=10)
    with pytest.raises(PayloadTooLargeError, match="more than 10 rows"):
        data.from_csv("a\n" + "1\n" * 11, small)
    with pytest.raises(PayloadTooLargeError, match="more than 10 rows"):
        data.from_records([{"a": 1}] * 11, small)
    with pytest.raises(PayloadTooLargeError, match="more than 10 rows"):
        data.from_columns({"a": list(range(11))}, small)
    with data.from_csv("a\n" + "1\n" * 10, small) as exactly:
        assert exactly.row_count == 10
    with pytest.raises(PayloadTooLargeError, match="bytes"):
        data.from_csv("a\n" + "1\n" * 100, Limits(max_bytes=100))


def test_nested_values_are_refused(tmp_path: Path) -> None:
    for value in ({"b": 1}, [1, 2]):
        with pytest.raises(BadRequestError, match="column 'a' holds nested values"):
            data.from_records([{"a": 1}, {"a": value}])
    path = tmp_path / "nested.json"
    path.write_text('[{"a": {"b": 1}}]')
    with pytest.raises(BadRequestError, match="column 'a' holds nested values"):
        data.from_file(path, "json")


def test_semicolon_csv_with_decimal_commas() -> None:
    text = "mês;região;valor\n2024-01;Sul;1.234,56\n2024-02;Norte;99,5\n2024-03;Sul;-7,25\n"
    with data.from_csv(text.encode("cp1252")) as table:
        assert table.types == {"mês": "DATE", "região": "VARCHAR", "valor": "DOUBLE"}
        assert table.query("SELECT valor FROM data") == [(1234.56,), (99.5,), (-7.25,)]
    with data.from_csv("a\tb\n1\t2,5\n3\t4\n") as tabs:
        assert tabs.query("SELECT * FROM data") == [(1, 2.5), (3, 4.0)]
    with data.from_csv("zip,when\n01234,31/01/2024\n12345,29/02/2024\n") as kept:
        assert kept.types == {"zip": "VARCHAR", "when": "DATE"}


def test_later_rows_that_disagree_with_the_first_ones(tmp_path: Path) -> None:
    head = "".join(f"{i},{i},2024-01-01\n" for i in range(20_000))  # past the sniffed part
    with data.from_csv("a,b,c\n" + head + "2.5,x,2024-02-01 10:00:00\n") as table:
        assert table.types == {"a": "DOUBLE", "b": "VARCHAR", "c": "TIMESTAMP"}
        assert table.query("SELECT sum(a), max(c) FROM data")[0][0] == sum(range(20_000)) + 2.5
    with pytest.raises(BadRequestError, match="no such file"):
        data.from_file(tmp_path / "missing.csv", "csv")


def test_files_hash_and_parquet_roundtrip(tmp_path: Path, sales: Table) -> None:
    records = [{"a": i, "b": f"x{i}"} for i in range(5)]
    (tmp_path / "rows.json").write_text(json.dumps(records))
    (tmp_path / "rows.ndjson").write_text("\n".join(json.dumps(r) for r in records))
    with (
        data.from_file(tmp_path / "rows.json", "json") as array,
        data.from_file(tmp_path / "rows.ndjson", "json") as lines,
        data.from_records(records) as direct,
    ):
        expected = data.dataset_hash(direct)
        assert data.dataset_hash(array) == data.dataset_hash(lines) == expected
    digest = data.dataset_hash(sales)
    assert digest == data.dataset_hash(sales) and len(digest) == 64
    data.save_parquet(sales, tmp_path / "sales.parquet")
    with data.from_file(tmp_path / "sales.parquet", "parquet") as again:
        assert again.types == sales.types and data.dataset_hash(again) == digest
    with data.from_records(records[::-1]) as reversed_rows:
        assert data.dataset_hash(reversed_rows) != expected
    changed = [*records[:-1], {"a": 4, "b": "x5"}]
    with data.from_records(changed) as other:
        assert data.dataset_hash(other) != expected


# --- masking -------------------------------------------------------------------------------


def test_masked_columns_leak_no_values(sales: Table) -> None:
    prof = profile(sales, masked={"region", "revenue"})
    region = prof.column("region")
    assert region is not None and region.masked and region.kind == "categorical"
    assert region.distinct == 4 and region.count == 48
    assert region.top == [] and region.min is None
    revenue = prof.column("revenue")
    assert revenue is not None and revenue.sum is None and revenue.mean is None
    assert revenue.min is None and revenue.max is None and revenue.median is None
    facts = all_facts(sales, prof)
    assert facts
    text = json.dumps([f.as_dict() for f in facts], ensure_ascii=False)
    for value in (*REGIONS, "revenue", "region", "1500"):
        assert value not in text
    for plan in (
        Plan(measures=[Measure(column="revenue", agg="sum")]),
        Plan(measures=[Measure(column="*", agg="count")], dimensions=["region"]),
        Plan(
            measures=[Measure(column="*", agg="count")],
            filters=[Filter(column="region", op="=", value="Sul")],
        ),
    ):
        with pytest.raises(BadRequestError, match="masked"):
            facts_for_plan(sales, prof, plan)
    assert rule_plan("total revenue by region", prof) is None


def test_number_formatting() -> None:
    assert fmt_number(1234.5) == "1,234.5"
    assert fmt_number(12.0) == "12"
    assert fmt_number(1_000_000) == "1,000,000"
    assert fmt_number(0.001234) == "0.0012"
    assert fmt_number(-3.14159) == "-3.14"
    assert fmt_number(None) == "n/a"


# --- grain from the data's own regularity ----------------------------------------------------


def test_monthly_snapshots_are_monthly_not_weekly(monthly: Table) -> None:
    """The bug: 6 months of first-of-month dates were bucketed by week ("over 6 weeks",
    "2024-05-27")."""
    by_month = sums_by(golden("monthly"), "month", "revenue")
    series = [by_month[m] for m in sorted(by_month)]
    assert natural_grain(monthly, "month") == "month"
    fact = only(all_facts(monthly), "trend", "month", "revenue")
    assert [r["period"] for r in fact.rows] == [f"2024-{m:02d}" for m in range(1, 7)]
    assert [r["revenue"] for r in fact.rows] == [approx(v) for v in series]
    assert fact.values["periods"] == 6 and fact.values["slope"] == approx(slope(series))
    assert fact.statement.startswith(
        f"Monthly total revenue went from {fmt_number(series[0])} in 2024-01 to "
        f"{fmt_number(series[-1])} in 2024-06 over 6 months; the trend is up"
    )
    assert "week" not in fact.statement and "2024-06 was" in fact.statement
    # the verifier reads the period labels as dates and accepts the numbers stated
    text = (
        f"Revenue went from {fmt_number(series[0])} in 2024-01 to {fmt_number(series[-1])} "
        "in 2024-06 over 6 months."
    )
    assert check(text, [fact], "en").verified
    assert check(fact.statement, [fact], "en").verified


def test_a_plan_never_buckets_finer_than_the_data(monthly: Table) -> None:
    plan = Plan(
        measures=[Measure(column="revenue", agg="sum")],
        period=Period(column="month", grain="week"),
    )
    _, trend = facts_for_plan(monthly, profile(monthly), plan)
    assert [r["period"] for r in trend.rows][:2] == ["2024-01", "2024-02"]
    assert (
        trend.statement.startswith("Monthly total revenue") and "over 6 months" in trend.statement
    )
    plan = Plan(
        measures=[Measure(column="revenue", agg="sum")],
        period=Period(column="month", grain="quarter"),
    )
    _, trend = facts_for_plan(monthly, profile(monthly), plan)  # coarser asked: kept
    assert [r["period"] for r in trend.rows] == ["2024-Q1", "2024-Q2"]


def test_quarterly_and_yearly_snapshots() -> None:
    quarters = [
        {"quarter": f"{y}-{m:02d}-01", "revenue": 100.0 * i + 10}
        for i, (y, m) in enumerate((y, m) for y in (2022, 2023) for m in (1, 4, 7, 10))
    ]
    with data.from_records(quarters) as table:
        assert natural_grain(table, "quarter") == "quarter"
        fact = only(all_facts(table), "trend", "quarter", "revenue")
        labels = [f"{y}-Q{q}" for y in (2022, 2023) for q in range(1, 5)]
        assert [r["period"] for r in fact.rows] == labels
        assert "Quarterly total revenue" in fact.statement and "over 8 quarters" in fact.statement
        assert "in 2022-Q1 to" in fact.statement and "2023-Q4 was" in fact.statement
        assert check(fact.statement, [fact], "en").verified
    years = [{"year": f"{y}-01-01", "revenue": float(y - 2000)} for y in range(2019, 2025)]
    with data.from_records(years) as table:
        assert natural_grain(table, "year") == "year"
        fact = only(all_facts(table), "trend", "year", "revenue")
        assert [r["period"] for r in fact.rows] == [str(y) for y in range(2019, 2025)]
        assert "Yearly total revenue" in fact.statement and "over 6 years" in fact.statement


def test_grain_from_the_gaps_between_dates() -> None:
    month_ends = [f"2024-{m:02d}-{d}" for m, d in ((1, 31), (2, 29), (3, 31), (4, 30), (5, 31))]
    weekly = [f"2024-01-{d:02d}" for d in (1, 8, 15, 22, 29)]
    for dates, grain in ((month_ends, "month"), (weekly, "week")):
        with data.from_records([{"d": d, "v": i} for i, d in enumerate(dates)]) as table:
            assert natural_grain(table, "d") == grain
    with data.from_records([{"d": "2024-01-01", "v": 1}]) as table:
        assert natural_grain(table, "d") is None
    assert choose_grain("2024-01-01", "2024-06-01") == "week"  # the span alone
    assert choose_grain("2024-01-01", "2024-06-01", "month") == "month"
    assert choose_grain("2010-01-01", "2024-06-01", "month") == "year"  # long spans stay coarse


def test_daily_data_over_months_is_weekly_by_week_start(traffic: Table) -> None:
    days = [f"2024-{m:02d}-{d:02d}" for m in range(1, 6) for d in range(1, 29)]
    with data.from_records([{"day": d, "visits": i % 7 + i} for i, d in enumerate(days)]) as t:
        assert natural_grain(t, "day") == "day"
        fact = only(all_facts(t), "trend", "day", "visits")
        labels = [str(r["period"]) for r in fact.rows]
        assert labels[0] == "2024-01-01"  # a Monday: weeks are labelled by their start
        assert all(date.fromisoformat(label).weekday() == 0 for label in labels)
        assert "Weekly total visits went from" in fact.statement
        assert "in the week of 2024-01-01" in fact.statement
        assert f"over {len(labels)} weeks" in fact.statement
        assert check(fact.statement, [fact], "en").verified
    # daily data over two months stay daily (the span decides)
    assert only(all_facts(traffic), "trend", "date", "visits").values["periods"] == 60


# --- salience ----------------------------------------------------------------------------------


def test_segments_rank_above_secondary_summaries(monthly: Table) -> None:
    facts = salient_facts(monthly, profile(monthly), limit=8)
    kinds = [(f.kind, tuple(f.columns)) for f in facts]
    top = kinds.index(("top_segment", ("region", "revenue")))
    assert top <= 2
    assert kinds.index(("trend", ("month", "revenue"))) <= 3
    if ("summary", ("units",)) in kinds:
        secondary = kinds.index(("summary", ("units",)))
        assert secondary > top and secondary > kinds.index(("trend", ("month", "units")))
    if ("row_count", ()) in kinds:
        assert kinds.index(("row_count", ())) > top


def test_salient_facts_skip_what_the_plan_already_says(monthly: Table) -> None:
    """The bug: "Total revenue is 41,400" (aggregate) and "Total revenue is 41,400 over 24
    values" (summary) were both listed."""
    prof = profile(monthly)
    plan = rule_plan("Qual região teve a maior receita (revenue)?", prof)
    assert plan is not None
    planned = facts_for_plan(monthly, prof, plan)
    assert [f.kind for f in planned] == ["aggregate", "breakdown"]
    salient = salient_facts(monthly, prof, limit=8, exclude=planned)
    assert len(salient) == 8
    kinds = [(f.kind, tuple(f.columns)) for f in salient]
    assert ("summary", ("revenue",)) not in kinds  # same total as the aggregate
    assert ("top_segment", ("region", "revenue")) not in kinds  # the breakdown's top
    assert ("bottom_segment", ("region", "revenue")) in kinds  # a new number
    assert ("trend", ("month", "revenue")) in kinds
    total = planned[0].values["sum_revenue"]
    assert not any(total in f.values.values() for f in salient)
    # without the plan, the summary is the headline
    assert salient_facts(monthly, prof, limit=8)[0].kind == "summary"
    # a filtered aggregate states another total: the summary stays
    filtered = Plan(
        measures=[Measure(column="revenue", agg="sum")],
        filters=[Filter(column="region", op="=", value="Sul")],
    )
    kept = salient_facts(monthly, prof, limit=100, exclude=facts_for_plan(monthly, prof, filtered))
    assert ("summary", ["revenue"]) in [(f.kind, f.columns) for f in kept]


# --- rule plans with synonyms ------------------------------------------------------------------


def test_rule_plan_portuguese_question_on_english_columns(monthly: Table) -> None:
    """The bug: only "(revenue)" was found; "região" and "maior" were ignored."""
    prof = profile(monthly)
    plan = rule_plan("Qual região teve a maior receita (revenue)?", prof)
    assert plan == Plan(
        measures=[Measure(column="revenue", agg="sum")], dimensions=["region"], order="desc"
    )
    plan = rule_plan("Qual região teve a maior receita?", prof)
    assert plan is not None and plan.measures == [Measure(column="revenue", agg="sum")]
    assert plan.dimensions == ["region"] and plan.order == "desc"
    plan = rule_plan("Quais regiões venderam menos unidades por mês?", prof)
    assert plan is not None
    assert plan.measures == [Measure(column="units", agg="sum")]
    assert plan.dimensions == ["region"] and plan.order == "asc"
    assert plan.period is not None and plan.period.column == "month"
    plan = rule_plan("Qual o faturamento da região Sul?", prof)  # a value: a filter
    assert plan is not None and plan.dimensions == []
    assert plan.measures == [Measure(column="revenue", agg="sum")]
    assert plan.filters == [Filter(column="region", op="=", value="Sul")]
    plan = rule_plan("Faturamento por região no Sul e no Norte", prof)  # "por": a dimension
    assert plan is not None and plan.dimensions == ["region"]


def test_rule_plan_english_question_on_portuguese_columns() -> None:
    records = [
        {
            "data": f"2024-{m:02d}-01",
            "cliente": c,
            "loja": f"Loja {m % 2}",
            "custo": 10.0 * m + i,
            "lucro": 5.0 * m - i,
            "quantidade": m + i,
        }
        for m in range(1, 7)
        for i, c in enumerate(["Ana", "Bia", "Caio"])
    ]
    with data.from_records(records) as table:
        prof = profile(table)
        plan = rule_plan("Which customer had the lowest cost?", prof)
        assert plan is not None
        assert plan.measures == [Measure(column="custo", agg="sum")]
        assert plan.dimensions == ["cliente"] and plan.order == "asc"
        plan = rule_plan("Top 2 stores by profit per month", prof)
        assert plan is not None
        assert plan.measures == [Measure(column="lucro", agg="sum")]
        assert plan.dimensions == ["loja"] and plan.top_n == 2 and plan.order == "desc"
        assert plan.period == Period(column="data", grain="month")
        plan = rule_plan("best clients by quantity", prof)  # prefix: client/cliente
        assert plan is not None and plan.dimensions == ["cliente"]
        assert plan.measures == [Measure(column="quantidade", agg="sum")]
        plan = rule_plan("Customers with at least 3 units", prof)  # "at least" is no order
        assert plan is not None and plan.order == "desc"
        plan = rule_plan("What does the data say about profit?", prof)  # English "the data"
        assert plan is not None and plan.period is None
        plan = rule_plan("lucro por data", prof)  # Portuguese "data" is the date
        assert plan is not None and plan.period is not None and plan.period.column == "data"


def test_rule_plan_prefers_a_column_named_by_its_own_words() -> None:
    records = [
        {"sales": i, "revenue": 2.5 * i, "region": "Sul" if i % 2 else "Norte"} for i in range(8)
    ]
    with data.from_records(records) as table:
        prof = profile(table)
        plan = rule_plan("total sales by region", prof)
        assert plan is not None and plan.measures == [Measure(column="sales", agg="sum")]
        plan = rule_plan("receita por regiao", prof)  # both are "receita": both kept
        assert plan is not None
        assert {m.column for m in plan.measures} == {"sales", "revenue"}
