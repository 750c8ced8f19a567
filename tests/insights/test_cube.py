"""The facts' queries over one aggregate of a table: the same results as over its rows, or
not rewritten at all."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import duckdb
import pytest

from billumy.insights import cube

ROWS = """
CREATE TABLE data AS
SELECT i AS id,
       ['Centro', 'Sul', 'Norte', NULL][1 + i % 4] AS loja,
       CASE WHEN i % 3 = 0 THEN 'site' ELSE 'balcao' END AS canal,
       DATE '2024-01-01' + INTERVAL (i % 400) DAY AS criado_em,
       CASE WHEN i % 11 = 0 THEN NULL ELSE round(10 + (i * 37) % 5000 / 100.0, 2) END AS valor,
       CAST(1 + i % 5 AS BIGINT) AS quantidade,
       'c' || (i % 97) || '@example.com' AS email
FROM range(20000) t(i)
"""

COLUMNS = ["id", "loja", "canal", "criado_em", "valor", "quantidade", "email"]
SHAPE = cube.Shape(
    dims=("criado_em", "canal", "loja"),
    measures=(("id", "BIGINT"), ("valor", "DOUBLE"), ("quantidade", "BIGINT")),
    counted=("email",),
)

EXACT = [
    ("SELECT count(*) FROM data", []),
    ("SELECT sum(valor) AS s, avg(valor), min(valor), max(valor), count(valor) FROM data", []),
    ("SELECT sum(CAST(quantidade AS DOUBLE)), avg(CAST(quantidade AS DOUBLE)) FROM data", []),
    ("SELECT fsum(valor) FROM data WHERE loja = ?", ["Sul"]),
    ("SELECT count(email), count(loja) FROM data WHERE canal <> 'site'", []),
    (
        "SELECT loja, sum(valor) AS valor, 100.0 * sum(valor) / nullif(sum(sum(valor)) OVER (), 0)"
        " AS share_pct FROM data GROUP BY ALL ORDER BY valor DESC NULLS LAST, loja LIMIT 3",
        [],
    ),
    (
        "SELECT CAST(date_trunc('month', criado_em) AS DATE) AS p, sum(quantidade) AS q, "
        "count(DISTINCT CAST(criado_em AS DATE)) AS d FROM data WHERE criado_em >= ? "
        "AND criado_em < ? GROUP BY 1 ORDER BY 1",
        ["2024-03-01", "2024-09-01"],
    ),
    (
        "SELECT canal, sum(valor) FILTER (WHERE criado_em < ?) AS a, "
        "sum(valor) FILTER (WHERE criado_em >= ?) AS b FROM data GROUP BY canal ORDER BY canal",
        ["2024-06-01", "2024-06-01"],
    ),
    (
        "WITH m AS (SELECT loja, date_trunc('month', criado_em) AS p, sum(valor) AS v FROM data "
        "WHERE loja IS NOT NULL GROUP BY ALL) SELECT loja, median(v), max(v) FROM m GROUP BY 1 "
        "ORDER BY 1",
        [],
    ),
    ("SELECT DISTINCT canal FROM data ORDER BY 1", []),
    ("SELECT count(*) FROM data WHERE loja IS NULL", []),
    ("SELECT min(loja), max(criado_em), count(DISTINCT loja) FROM data", []),
    ("SELECT avg(valor) FROM data WHERE loja = 'nenhuma'", []),
    ("SELECT count(*) AS n FROM data WHERE loja = 'nenhuma'", []),
]

NOT_EXACT = [
    "SELECT median(valor) FROM data",
    "SELECT quantile_cont(valor, 0.25) FROM data",
    "SELECT corr(valor, quantidade) FROM data",
    "SELECT stddev_samp(valor) FROM data",
    "SELECT count(*) FROM data WHERE valor > 100",
    "SELECT valor FROM data ORDER BY valor DESC LIMIT 5",
    "SELECT canal FROM data",
    "SELECT rowid, valor FROM data",
    "SELECT sum(DISTINCT valor) FROM data",
    "SELECT count(DISTINCT valor) FROM data",
    "SELECT sum(valor * quantidade) FROM data",
    "SELECT loja, row_number() OVER (ORDER BY criado_em) FROM data",
    "SELECT * FROM data",
    "SELECT sum(email) FROM data",
    "SELECT count(*) FROM data USING SAMPLE 10",
    "SELECT avg(valor) FILTER (WHERE canal = ?) FROM data",
    "SELECT a.loja, sum(b.valor) FROM data a JOIN data b ON a.id = b.id GROUP BY 1",
    "DELETE FROM data",
]


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    db = duckdb.connect()
    db.execute(ROWS)
    db.execute(f"CREATE TABLE {cube.TABLE} AS {cube.cube_sql(SHAPE)}")
    yield db
    db.close()


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


@pytest.mark.parametrize(("sql", "params"), EXACT)
def test_rewritten_query_gives_the_rows_result(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]
) -> None:
    rewritten = cube.rewrite(sql, SHAPE, COLUMNS)
    assert rewritten is not None, sql
    assert cube.TABLE in rewritten
    expected = con.execute(sql, params).fetchall()
    got = con.execute(rewritten, params).fetchall()
    assert len(got) == len(expected)
    for row, want in zip(got, expected, strict=True):
        assert all(same(a, b) for a, b in zip(row, want, strict=True)), (row, want)


def test_the_aggregate_is_smaller(con: duckdb.DuckDBPyConnection) -> None:
    (groups,) = con.execute(f"SELECT count(*) FROM {cube.TABLE}").fetchone()  # noqa: S608 or (0,)
    assert 0 < groups < 20000 / 2


@pytest.mark.parametrize("sql", NOT_EXACT)
def test_queries_it_cannot_answer_exactly_are_left_alone(sql: str) -> None:
    assert cube.rewrite(sql, SHAPE, COLUMNS) is None


def test_shape_groups_dates_and_few_valued_text(con: duckdb.DuckDBPyConnection) -> None:
    types = {"id": "BIGINT", "loja": "VARCHAR", "canal": "VARCHAR", "criado_em": "DATE"}
    types |= {"valor": "DOUBLE", "quantidade": "BIGINT", "email": "VARCHAR", "nome": "VARCHAR"}
    con.execute("CREATE OR REPLACE TEMP VIEW named AS SELECT *, 'n' || id AS nome FROM data")

    def distinct(columns: Any) -> int:
        listed = ", ".join(columns)
        found = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {listed} FROM named)")  # noqa: S608
        return int((found.fetchone() or (0,))[0])

    shape = cube.choose(types, ["email"], distinct, rows=20_000_000)
    assert shape is not None
    assert shape.dims[0] == "criado_em"
    assert set(shape.dims) == {"criado_em", "canal", "loja"}  # nome has too many values
    # Keys are never summed: "id" is not a measure.
    assert dict(shape.measures) == {"valor": "DOUBLE", "quantidade": "BIGINT"}
    assert shape.counted == ("email",)
    # A small table: grouping by day would not make it smaller.
    small = cube.choose(types, ["email"], distinct, rows=800)
    assert small is None or "criado_em" not in small.dims


def test_masked_column_is_only_counted_in_the_aggregate() -> None:
    sql = cube.cube_sql(SHAPE)
    assert 'count("email")' in sql
    assert 'sum("email")' not in sql and 'min("email")' not in sql


def test_no_aggregate_when_a_column_looks_like_its_own() -> None:
    types = {"__rows__": "BIGINT", "loja": "VARCHAR", "valor": "DOUBLE"}
    assert cube.choose(types, [], lambda columns: 2, rows=1_000_000) is None


# A Django DateTimeField: orders every 37 minutes, the aggregate grouped by their day.
STAMPED = """
CREATE TABLE data AS
SELECT i AS id,
       CASE WHEN i % 3 = 0 THEN 'site' ELSE 'balcao' END AS canal,
       TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (i * 37) MINUTE AS criado_em,
       round(10 + (i * 37) % 5000 / 100.0, 2) AS valor
FROM range(20000) t(i)
"""
STAMPED_SHAPE = cube.Shape(
    dims=("criado_em", "canal"), measures=(("valor", "DOUBLE"),), days=("criado_em",)
)
STAMPED_COLUMNS = ["id", "canal", "criado_em", "valor"]

DAY_EXACT = [
    (
        "SELECT date_trunc('month', criado_em) AS p, sum(valor) FROM data GROUP BY 1 ORDER BY 1",
        [],
    ),
    (
        "SELECT canal, sum(valor) FILTER (WHERE criado_em >= ? AND criado_em < ?) AS a "
        "FROM data GROUP BY 1 ORDER BY 1",
        ["2024-02-01", "2024-03-01"],
    ),
    ("SELECT sum(valor) FROM data WHERE criado_em >= ?", [datetime(2024, 3, 1)]),
    ("SELECT count(DISTINCT CAST(criado_em AS DATE)) FROM data", []),
    ("SELECT count(*) FROM data WHERE NOT criado_em IS NULL", []),
    ("SELECT year(criado_em) AS y, count(*) FROM data GROUP BY 1 ORDER BY 1", []),
    ("SELECT dayofweek(criado_em) AS d, avg(valor) FROM data GROUP BY 1 ORDER BY 1", []),
    ("SELECT date_trunc('week', criado_em) AS w, count(*) FROM data GROUP BY 1 ORDER BY 1", []),
]

DAY_NOT_EXACT = [
    ("SELECT max(criado_em) FROM data", []),
    ("SELECT date_trunc('hour', criado_em) AS h, count(*) FROM data GROUP BY 1", []),
    ("SELECT sum(valor) FROM data WHERE criado_em >= ?", ["2024-03-01 12:00:00"]),
    ("SELECT sum(valor) FROM data WHERE criado_em >= TIMESTAMP '2024-03-01 06:00'", []),
    ("SELECT criado_em, sum(valor) FROM data GROUP BY 1", []),
    ("SELECT extract(hour FROM criado_em) AS h, count(*) FROM data GROUP BY 1", []),
]


@pytest.fixture(scope="module")
def stamped() -> Iterator[duckdb.DuckDBPyConnection]:
    db = duckdb.connect()
    db.execute(STAMPED)
    db.execute(f"CREATE TABLE {cube.TABLE} AS {cube.cube_sql(STAMPED_SHAPE)}")
    yield db
    db.close()


@pytest.mark.parametrize(("sql", "params"), DAY_EXACT)
def test_a_timestamp_grouped_by_day_answers_what_a_day_determines(
    stamped: duckdb.DuckDBPyConnection, sql: str, params: list[Any]
) -> None:
    rewritten = cube.rewrite(sql, STAMPED_SHAPE, STAMPED_COLUMNS, params)
    assert rewritten is not None, sql
    expected = stamped.execute(sql, params).fetchall()
    got = stamped.execute(rewritten, params).fetchall()
    assert len(got) == len(expected) > 0
    for row, want in zip(got, expected, strict=True):
        assert all(same(a, b) for a, b in zip(row, want, strict=True)), (row, want)


@pytest.mark.parametrize(("sql", "params"), DAY_NOT_EXACT)
def test_a_timestamp_grouped_by_day_is_not_read_finer(sql: str, params: list[Any]) -> None:
    assert cube.rewrite(sql, STAMPED_SHAPE, STAMPED_COLUMNS, params) is None


def test_the_shape_groups_a_timestamp_by_its_day() -> None:
    types = {"id": "BIGINT", "criado_em": "TIMESTAMP", "canal": "VARCHAR", "valor": "DOUBLE"}
    counts = {"day:criado_em": 400, "canal": 2}

    def distinct(columns: Any) -> int:
        return math.prod(counts[c] for c in columns)

    shape = cube.choose(types, [], distinct, rows=1_000_000)
    assert shape is not None and shape.days == ("criado_em",)
    assert "date_trunc('day', \"criado_em\")" in cube.cube_sql(shape)


def test_a_not_null_key_is_counted_from_the_rows(con: duckdb.DuckDBPyConnection) -> None:
    """ "How many orders": ``count(id)`` of a NOT NULL key is the aggregate's rows, though keys
    are neither summed nor counted in it; a nullable column's count is never the rows."""
    keyed = cube.Shape(
        dims=SHAPE.dims,
        measures=(("valor", "DOUBLE"), ("quantidade", "BIGINT")),
        counted=SHAPE.counted,
        required=frozenset({"id"}),
    )
    sql = "SELECT canal, count(id) AS n FROM data WHERE criado_em < ? GROUP BY 1 ORDER BY 1"
    rewritten = cube.rewrite(sql, keyed, COLUMNS)
    assert rewritten is not None and "__rows__" in rewritten
    assert (
        con.execute(rewritten, ["2024-06-01"]).fetchall()
        == con.execute(sql, ["2024-06-01"]).fetchall()
    )
    unkeyed = cube.Shape(dims=SHAPE.dims, measures=keyed.measures, counted=SHAPE.counted)
    assert cube.rewrite(sql, unkeyed, COLUMNS) is None
