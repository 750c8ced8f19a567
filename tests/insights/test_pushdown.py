"""The facts' DuckDB SQL written for a source: the allow-list, masks, binds and dialect gaps."""

from __future__ import annotations

import pytest
import sqlglot

from billumy.insights import pushdown


def scope(masked: frozenset[str] = frozenset()) -> pushdown.Scope:
    base, table = pushdown.base_select("public", "vendas_pedido", ["loja", "valor", "email"])
    return pushdown.Scope(base=base, table=table, masked=masked, dates=frozenset({"dia"}))


def test_query_reads_the_allowed_table_through_its_columns() -> None:
    sql = (
        'SELECT "loja", fsum(CAST("valor" AS DOUBLE)) AS v FROM data WHERE "loja" = ? GROUP BY ALL'
    )
    out = pushdown.compile_query(scope(), sql, ["Centro"], "postgres")
    assert out.sql.startswith(
        'WITH data AS (SELECT "loja", "valor", "email" FROM "public"."vendas_pedido")'
    )
    assert "SUM(" in out.sql and "GROUP BY 1" in out.sql and "%(p1)s" in out.sql
    assert out.params == {"p1": "Centro"} and "Centro" not in out.sql


@pytest.mark.parametrize("dialect", ["postgres", "sqlite"])
def test_values_are_bound_in_the_order_they_are_written(dialect: str) -> None:
    """Three conditions nest as ``(a AND b) AND c``: a breadth-first walk meets ``c``'s hole
    first. Each value must still go to its own hole."""
    sql = (
        'SELECT "loja" FROM data WHERE "loja" IN (?, ?) AND "valor" >= ? AND "valor" < ? '
        'AND "email" BETWEEN ? AND ?'
    )
    values = ["Centro", "Moema", 10, 20, "a", "m"]
    out = pushdown.compile_query(scope(), sql, list(values), dialect)
    bind = "%({})s" if dialect == "postgres" else ":{}"
    where = out.sql[out.sql.index("WHERE") :]
    order = sorted(out.params, key=lambda name: where.index(bind.format(name)))
    assert [out.params[name] for name in order] == values


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM auth_user",
        "SELECT count(*) FROM public.auth_user",
        "SELECT count(*) FROM data, auth_user",
        "DELETE FROM data",
        "SELECT 1; DROP TABLE data",
        "SELECT pg_sleep(10) FROM data",
        "SELECT dblink('x', 'y') FROM data",
    ],
)
def test_anything_else_is_refused(sql: str) -> None:
    with pytest.raises(pushdown.RefusedQuery):
        pushdown.compile_query(scope(), sql, [], "postgres")


def test_masked_columns_are_only_counted() -> None:
    masked = scope(frozenset({"email"}))
    pushdown.compile_query(masked, 'SELECT count(DISTINCT "email") FROM data', [], "postgres")
    for sql in ('SELECT "email" FROM data', "SELECT * FROM data", 'SELECT max("email") FROM data'):
        with pytest.raises(pushdown.RefusedQuery):
            pushdown.compile_query(masked, sql, [], "postgres")


def test_a_quoted_name_cannot_break_out() -> None:
    sql = 'SELECT sum("valor""); DELETE FROM vendas_pedido; --") FROM data'
    out = pushdown.compile_query(scope(), sql, [], "postgres")
    assert len(sqlglot.parse(out.sql, read="postgres")) == 1  # one statement, one identifier
    assert '"valor""); DELETE FROM vendas_pedido; --"' in out.sql


def test_derived_columns_compose_and_dates_stay_dates() -> None:
    derived = pushdown.derived(
        scope(), "CREATE OR REPLACE TABLE data AS SELECT *, CAST(NULL AS DATE) AS dia FROM data"
    )
    assert derived is not None
    out = pushdown.compile_query(
        derived,
        "SELECT date_trunc('month', dia) AS p, count(*) FROM data GROUP BY 1",
        [],
        "postgres",
    )
    assert "CAST(DATE_TRUNC('MONTH', dia) AS DATE)" in out.sql
    assert '"public"."vendas_pedido"' in out.sql


def test_split_pushes_the_ctes_that_read_data() -> None:
    sql = (
        'WITH s AS (SELECT "loja", sum("valor") AS v FROM data WHERE "valor" > ? GROUP BY 1) '
        "SELECT loja, median(v) OVER () FROM s WHERE v > ?"
    )
    split = pushdown.split_query(scope(), sql, [1, 2], "postgres")
    assert set(split.pushed) == {"s"} and split.pushed["s"].params == {"p1": 1}
    assert split.params == [2] and "data" not in split.local.lower().replace("data", "", 0)
