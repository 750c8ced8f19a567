"""A source's table in process (a SQLite file): the facts' queries answered from the
per-question aggregate equal the direct query, and the others still run in the source."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from billumy.insights import salient
from billumy.insights.data import Limits
from billumy.insights.sources import Source, SourceTable, source_profile
from billumy.settings import SourceConfig
from tests.sources_data import build_sqlite


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
