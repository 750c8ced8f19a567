"""A source's table in process (a SQLite file): the facts' queries answered from the
per-question aggregate equal the direct query, and the others still run in the source."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from billumy.errors import BadRequestError
from billumy.insights import cube, pushdown, salient
from billumy.insights.data import Limits
from billumy.insights.sources import Source, SourceTable, source_profile
from billumy.settings import SourceConfig
from tests.sources_data import build_sqlite, build_sqlite_django


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[SourceTable, Path]]:
    path = tmp_path / "shop.sqlite3"
    build_sqlite(path, rows=20_000)
    config = SourceConfig.model_validate(
        {"name": "dev", "url": f"sqlite:///{path}", "tables": [{"name": "vendas_pedido"}]}
    )
    source = Source(config)
    table = SourceTable(source, config.tables[0], Limits())
    yield table, path
    table.close()
    source.dispose()


def direct(path: Path, sql: str) -> list[tuple[object, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_sums_by_segment_come_from_one_aggregate(shop: tuple[SourceTable, Path]) -> None:
    table, path = shop
    sql = "SELECT canal, sum(valor) AS v, count(*) AS n FROM data GROUP BY 1 ORDER BY 1"
    got = table.query(sql)
    expected = direct(path, "SELECT canal, sum(valor), count(*) FROM vendas_pedido GROUP BY 1")
    assert [(c, n) for c, _, n in got] == [(c, n) for c, _, n in sorted(expected)]
    for (_, v, _), (_, want, _) in zip(got, sorted(expected), strict=True):
        assert math.isclose(v, want, rel_tol=1e-9)
    assert "once for this question" in table.shown[sql]
    assert "vendas_pedido" in table.shown[sql]
    monthly = "SELECT date_trunc('month', criado_em) AS p, avg(valor) FROM data GROUP BY 1"
    table.query(monthly)
    assert table.shown[monthly].startswith("-- in the source, once")


def test_a_median_still_runs_in_the_source(shop: tuple[SourceTable, Path]) -> None:
    table, path = shop
    sql = "SELECT quantile_cont(valor, 0.5) FROM data"
    (got,) = table.query(sql)[0]
    values = sorted(v for (v,) in direct(path, "SELECT valor FROM vendas_pedido"))
    middle = len(values) // 2
    assert math.isclose(got, (values[middle - 1] + values[middle]) / 2, rel_tol=1e-9)
    assert "once for this question" not in table.shown[sql]


def test_salient_facts_of_a_source_skip_row_scans(shop: tuple[SourceTable, Path]) -> None:
    table, _ = shop
    facts = salient.salient_facts(table, source_profile(table), limit=20)
    kinds = {f.kind for f in facts}
    assert "outliers" not in kinds and "correlation" not in kinds
    assert "summary" in kinds


def django_source(path: Path, joins: list[dict[str, object]]) -> Source:
    build_sqlite_django(path)
    config = SourceConfig.model_validate(
        {
            "name": "django",
            "url": f"sqlite:///{path}",
            "tables": [
                {"name": "vendas_pedido"},
                {"name": "vendas_loja"},
                {"name": "vendas_cidade"},
            ],
            "joins": joins,
        }
    )
    return Source(config)


def test_a_declared_join_reads_the_stores_names(tmp_path: Path) -> None:
    path = tmp_path / "django.sqlite3"
    source = django_source(path, [{"from": "vendas_pedido.loja_id", "to": "vendas_loja.id"}])
    table = SourceTable(source, source.table_config("vendas_pedido"), Limits())
    try:
        # The store's name is read as "loja" (the join's name), its city as "cidade".
        assert {"loja", "cidade", "valor", "loja_id"} <= set(table.columns)
        assert table.row_count == 5_000  # a many-to-one join adds no rows
        sql = "SELECT loja, sum(valor) AS v FROM data GROUP BY 1 ORDER BY 2 DESC"
        got = table.query(sql)
        expected = direct(
            path,
            "SELECT l.nome, sum(p.valor) FROM vendas_pedido p JOIN vendas_loja l "
            "ON l.id = p.loja_id GROUP BY 1 ORDER BY 2 DESC",
        )
        assert [r[0] for r in got] == [r[0] for r in expected]
        for (_, v), (_, want) in zip(got, expected, strict=True):
            assert math.isclose(v, want, rel_tol=1e-9)
        assert "LEFT JOIN" in table.shown[sql] and "vendas_loja" in table.shown[sql]
        # Filters on a joined column run in the source too.
        city = table.query("SELECT count(*) FROM data WHERE cidade = ?", ["Recife"])[0][0]
        want_city = direct(
            path,
            "SELECT count(*) FROM vendas_pedido p JOIN vendas_loja l ON l.id = p.loja_id "
            "WHERE l.cidade = 'Recife'",
        )[0][0]
        assert city == want_city > 0
    finally:
        table.close()
        source.dispose()


def test_a_join_on_a_key_that_is_not_unique_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "django.sqlite3"
    source = django_source(path, [{"from": "vendas_pedido.uf", "to": "vendas_cidade.uf"}])
    try:
        with pytest.raises(BadRequestError, match="neither the primary key nor unique"):
            SourceTable(source, source.table_config("vendas_pedido"), Limits())
    finally:
        source.dispose()


def test_the_question_picks_the_table(tmp_path: Path) -> None:
    path = tmp_path / "django.sqlite3"
    source = django_source(path, [{"from": "vendas_pedido.loja_id", "to": "vendas_loja.id"}])
    try:
        # "loja" is a column of the orders (through the join) and the stores' table: the
        # orders, which read both, win the tie; "valor" is only the orders'.
        assert source.table_config(None, "Qual loja vendeu mais?").name == "vendas_pedido"
        assert source.table_config(None, "What was the total valor?").name == "vendas_pedido"
        assert source.table_config(None, "How many stores?").name == "vendas_pedido"
        with pytest.raises(BadRequestError, match="send table"):
            source.table_config(None, "Hello there")
    finally:
        source.dispose()


def test_join_configuration_is_checked() -> None:
    base = {"name": "x", "url": "sqlite:///x.db", "tables": [{"name": "a"}, {"name": "b"}]}
    with pytest.raises(ValueError, match="not in its tables"):
        SourceConfig.model_validate({**base, "joins": [{"from": "a.b_id", "to": "c.id"}]})
    with pytest.raises(ValueError, match=r"table\.column"):
        SourceConfig.model_validate({**base, "joins": [{"from": "a", "to": "b.id"}]})
    with pytest.raises(ValueError, match="cannot join itself"):
        SourceConfig.model_validate({**base, "joins": [{"from": "a.x", "to": "a.id"}]})
    ok = SourceConfig.model_validate({**base, "joins": [{"from": "a.b_id", "to": "b.id"}]})
    assert ok.joins[0].name() == "b"


def test_the_aggregate_is_reused_until_the_source_is_written(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite3"
    build_sqlite(path, rows=20_000)
    config = SourceConfig.model_validate(
        {"name": "dev", "url": f"sqlite:///{path}", "tables": [{"name": "vendas_pedido"}]}
    )
    source = Source(config)
    sql = "SELECT canal, sum(valor) AS v FROM data GROUP BY 1 ORDER BY 1"
    try:
        first = SourceTable(source, config.tables[0], Limits())
        before = first.query(sql)
        assert "read at" not in first.shown[sql]
        first.close()
        again = SourceTable(source, config.tables[0], Limits())
        assert again.query(sql) == before
        assert "by an earlier question" in again.shown[sql]  # said, in the fact's SQL
        again.close()
        con = sqlite3.connect(path)
        con.execute("UPDATE vendas_pedido SET valor = valor + 1000 WHERE canal = 'site'")
        con.commit()
        con.close()
        after = SourceTable(source, config.tables[0], Limits())
        got = dict(after.query(sql))
        assert "read at" not in after.shown[sql]
        expected = dict(direct(path, "SELECT canal, sum(valor) FROM vendas_pedido GROUP BY 1"))
        assert got.keys() == expected.keys()
        for canal, total in expected.items():
            assert math.isclose(got[canal], total, rel_tol=1e-9)
        assert got["site"] > dict(before)["site"]
        after.close()
    finally:
        source.dispose()


def test_the_aggregate_of_a_joined_table_groups_before_it_joins(tmp_path: Path) -> None:
    """The grouped-first aggregate has the rows of the plain one over the joined data."""
    path = tmp_path / "django.sqlite3"
    source = django_source(path, [{"from": "vendas_pedido.loja_id", "to": "vendas_loja.id"}])
    try:
        scope, _ = source.scope(source.table_config("vendas_pedido"))
        shape = cube.Shape(
            dims=("criado_em", "canal", "loja", "cidade"),
            measures=(("valor", "DOUBLE"),),
            counted=("uf",),
        )
        grouped_first = cube.joined_cube_sql(shape, scope, "sqlite")
        assert grouped_first is not None and "LEFT JOIN" in grouped_first
        plain = pushdown.compile_query(scope, cube.cube_sql(shape), [], "sqlite")
        _, got = source.fetch(grouped_first)
        _, expected = source.fetch(plain.sql, plain.params)
        assert len(got) == len(expected) > 100
        for a, b in zip(sorted(got), sorted(expected), strict=True):
            assert a[:5] == b[:5] and a[6:] == b[6:]
            assert math.isclose(a[5], b[5], rel_tol=1e-9)
        # Nothing joined is read: the plain aggregate is as fast.
        assert (
            cube.joined_cube_sql(cube.Shape(("canal",), (("valor", "DOUBLE"),)), scope, "sqlite")
            is None
        )
    finally:
        source.dispose()
