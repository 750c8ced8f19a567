"""A MySQL/MariaDB source (the real server of BILLUMY_TEST_MYSQL_URL): the facts' DuckDB SQL
written for MySQL gives DuckDB's own results over the same rows; the catalog's types; writes,
other tables and slow queries refused; a server that is down is a 503."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa

from billumy.errors import (
    BadRequestError,
    NotFoundError,
    QueryTimeoutError,
    SourceUnavailableError,
)
from billumy.insights import pushdown, salient, snapshots
from billumy.insights.data import Limits
from billumy.insights.sources import Source, SourceTable, source_profile
from billumy.settings import SourceConfig
from tests.conftest import fresh_mysql_database
from tests.e2e.server import free_port

ROWS = 2_000
LOJAS = ["Centro", "Moema", "Savassi", "Recife"]
CANAIS = ["site", "app", "balcao", None]

TABLE = """
CREATE TABLE fatos (
    id integer PRIMARY KEY,
    loja varchar(40) NOT NULL,
    canal varchar(20),
    dia date NOT NULL,
    momento datetime(6) NOT NULL,
    valor decimal(10, 2),
    qtd integer NOT NULL,
    preco double NOT NULL,
    pago tinyint(1) NOT NULL,
    nivel tinyint NOT NULL,
    grande bigint NOT NULL,
    nota text,
    tipo enum('a', 'b') NOT NULL,
    criado timestamp NOT NULL DEFAULT '2024-01-01 00:00:00',
    codigo varchar(20) NOT NULL,
    CONSTRAINT fatos_codigo UNIQUE (codigo)
)
"""


def _rows() -> list[tuple[Any, ...]]:
    rng = random.Random(7)
    found = []
    for i in range(1, ROWS + 1):
        canal = CANAIS[i % 4]
        dia = date(2023, 12, 25) + timedelta(days=rng.randrange(500))
        moment = datetime(2024, 1, 1) + timedelta(seconds=rng.randrange(40_000_000))
        # A channel whose amounts are all unknown: its sum is NULL, which sorts by rule.
        valor = None if canal is None else Decimal(rng.randrange(100, 500_000)) / 100
        found.append(
            (
                i,
                LOJAS[rng.randrange(4)],
                canal,
                dia,
                moment.replace(microsecond=rng.randrange(1_000_000)),
                valor,
                rng.randrange(1, 12),
                rng.random() * 1000,
                i % 3 != 0,
                i % 5,
                i * 1_000_003,
                None if i % 7 else f"nota {i}",
                "a" if i % 2 else "b",
                datetime(2024, 1, 1) + timedelta(hours=i),
                f"c{i}",
            )
        )
    return found


@pytest.fixture(scope="module")
def mysql_url() -> Iterator[str]:
    with fresh_mysql_database() as url:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(TABLE)
            conn.exec_driver_sql(
                "INSERT INTO fatos VALUES (" + ", ".join(["%s"] * 15) + ")",  # noqa: S608
                _rows(),
            )
            conn.exec_driver_sql("CREATE TABLE auth_user (id integer PRIMARY KEY, password text)")
            conn.exec_driver_sql("INSERT INTO auth_user VALUES (1, 'pbkdf2$secret')")
        engine.dispose()
        yield url


def config(url: str, **extra: Any) -> SourceConfig:
    return SourceConfig.model_validate(
        {"name": "loja", "url": url, "tables": [{"name": "fatos"}], **extra}
    )


@pytest.fixture(scope="module")
def source(mysql_url: str) -> Iterator[Source]:
    found = Source(config(mysql_url))
    yield found
    found.dispose()


@pytest.fixture(scope="module")
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    """The same rows in DuckDB, typed as the catalog reads them."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE data (id BIGINT, loja VARCHAR, canal VARCHAR, dia DATE, momento TIMESTAMP, "
        "valor DOUBLE, qtd BIGINT, preco DOUBLE, pago BOOLEAN, nivel BIGINT, grande BIGINT, "
        "nota VARCHAR, tipo VARCHAR, criado TIMESTAMP, codigo VARCHAR)"
    )
    con.executemany(
        "INSERT INTO data VALUES (" + ", ".join(["?"] * 15) + ")",  # noqa: S608
        [tuple(float(v) if isinstance(v, Decimal) else v for v in r) for r in _rows()],
    )
    yield con
    con.close()


def in_mysql(source: Source, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    scope, found = source.scope(source.table_config("fatos"))
    scope.dates = frozenset(c.name for c in found if c.type == "DATE")
    compiled = pushdown.compile_query(scope, sql, params, "mysql")
    return source.fetch(compiled.sql, compiled.params)[1]


def same(a: Any, b: Any) -> bool:
    """DuckDB's value and MySQL's: numbers within rounding, a midnight timestamp its date."""
    if isinstance(a, datetime) and isinstance(b, date) and not isinstance(b, datetime):
        return a == datetime(b.year, b.month, b.day)
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int | float | Decimal) and isinstance(b, int | float | Decimal):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


FACT_QUERIES = [
    "SELECT date_trunc('month', dia) AS p, sum(valor) AS v, count(*) AS n FROM data "
    "GROUP BY 1 ORDER BY 1",
    "SELECT date_trunc('week', dia) AS p, avg(valor) AS v FROM data GROUP BY 1 ORDER BY 1",
    "SELECT date_trunc('quarter', dia), date_trunc('year', dia), count(*) FROM data "
    "GROUP BY ALL ORDER BY 1, 2",
    "SELECT date_trunc('day', momento) AS d, date_trunc('week', momento) AS w, "
    "date_trunc('month', momento) AS m, date_trunc('hour', momento) AS h FROM data ORDER BY id",
    "SELECT extract(dow FROM dia), extract(isodow FROM dia), extract(week FROM dia), "
    "extract(quarter FROM dia), extract(doy FROM dia), dayofweek(momento), year(dia), "
    "quarter(momento), month(dia) FROM data ORDER BY id",
    "SELECT dayofweek(dia) AS w, sum(valor) FROM data GROUP BY 1 ORDER BY 1",
    "SELECT qtd // 2 AS h, qtd / 3 AS t, 7 / 2 AS s, count(*) FROM data GROUP BY 1, 2, 3 "
    "ORDER BY 1, 2",
    "SELECT loja, count(*) FILTER (WHERE canal = 'site') AS s, "
    "sum(valor) FILTER (WHERE qtd > ?) AS v, count(DISTINCT canal) FILTER (WHERE pago) AS c, "
    "avg(preco) FILTER (WHERE canal IS NULL) AS a FROM data GROUP BY ALL ORDER BY loja",
    "SELECT canal, sum(valor) AS v FROM data GROUP BY 1 ORDER BY 1 NULLS FIRST",
    "SELECT canal, sum(valor) AS v FROM data GROUP BY 1 ORDER BY v ASC NULLS LAST, 1",
    "SELECT canal, sum(valor) AS v FROM data GROUP BY 1 ORDER BY 2 DESC NULLS FIRST, 1",
    "SELECT canal, count(*) FROM data GROUP BY 1 ORDER BY 1",
    "SELECT canal FROM data GROUP BY 1 ORDER BY canal DESC",
    "SELECT count(*) FROM data WHERE pago = TRUE AND NOT (canal = 'app')",
    "SELECT pago, tipo, count(*), sum(CASE WHEN pago THEN valor ELSE 0 END) FROM data "
    "GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT loja || '-' || canal AS k, count(*) FROM data GROUP BY 1 ORDER BY 1",
    "SELECT strftime(momento, '%Y-%m-%d %H:%M') AS k, strftime(dia, '%Y-%m') FROM data ORDER BY id",
    "SELECT loja, avg(qtd), avg(valor), avg(CAST(valor AS DOUBLE)), sum(qtd), "
    "sum(valor) / nullif(sum(qtd), 0) FROM data GROUP BY 1 ORDER BY 1",
    "SELECT date_diff('day', DATE '2024-01-01', dia), date_diff('month', DATE '2024-01-31', dia), "
    "date_diff('year', DATE '2023-12-31', dia), "
    "date_diff('second', TIMESTAMP '2024-01-01 00:00:00', momento) FROM data ORDER BY id",
    "SELECT count(*), sum(valor) FROM data WHERE loja IN (?, ?) AND dia BETWEEN ? AND ?",
    "SELECT loja, sum(valor) AS v, rank() OVER (ORDER BY sum(valor) DESC) AS r FROM data "
    "GROUP BY 1 ORDER BY 3, 1",
    "SELECT make_date(year(dia), month(dia), 1) AS m, count(*) FROM data GROUP BY 1 ORDER BY 1",
    "SELECT count(DISTINCT loja), min(dia), max(momento), stddev_samp(preco), min(nota), "
    "max(grande), sum(nivel) FROM data",
    "SELECT canal, 100.0 * count(*) / sum(count(*)) OVER () AS share FROM data GROUP BY 1 "
    "ORDER BY 1",
    "SELECT loja, canal, sum(valor) AS v FROM data WHERE dia >= ? GROUP BY ALL "
    "ORDER BY v DESC NULLS LAST, loja, canal LIMIT 5",
    "SELECT CAST(momento AS DATE) AS d, count(*) FROM data WHERE momento < ? GROUP BY 1 ORDER BY 1",
    # Medians and quantiles: MariaDB's PERCENTILE_CONT window, NULLs left out.
    "SELECT loja, median(valor) AS m, quantile_cont(preco, 0.25) AS q FROM data "
    "WHERE dia >= ? GROUP BY 1 ORDER BY 1",
    "SELECT median(valor), count(*), quantile_cont(qtd, 0.9) FROM data",
    "SELECT sum(preco) FILTER (WHERE qtd > ?), quantile_cont(valor, 0.5) FILTER (WHERE loja = ?), "
    "count(*) FILTER (WHERE canal = ?) FROM data WHERE dia < ?",
    # What natural_grain asks of a timestamp column: the median gap between its values.
    "WITH d AS (SELECT DISTINCT CAST(momento AS TIMESTAMP) AS t FROM data "
    "WHERE momento IS NOT NULL), g AS (SELECT t, date_diff('second', lag(t) OVER (ORDER BY t), "
    "t) / 86400.0 AS gap FROM d) SELECT count(*), bool_and(t = date_trunc('year', t)), "
    "bool_and(t = date_trunc('month', t)), quantile_cont(gap, 0.5) FROM g",
    # A value's hole in a projection that the NULL order repeats.
    "SELECT canal, sum(valor) FILTER (WHERE qtd > ?) AS v FROM data GROUP BY 1 "
    "ORDER BY 2 NULLS LAST, 1",
]
PARAMS = {
    7: [5],
    19: ["Centro", "Recife", date(2024, 2, 1), date(2024, 9, 30)],
    24: [date(2024, 6, 1)],
    25: [datetime(2024, 2, 1, 12)],
    26: [date(2024, 5, 1)],
    28: [5, "Moema", "site", date(2024, 11, 1)],
    30: [10],
}


@pytest.mark.parametrize("number", range(len(FACT_QUERIES)))
def test_fact_queries_give_duckdbs_results(
    number: int, source: Source, duck: duckdb.DuckDBPyConnection
) -> None:
    sql, params = FACT_QUERIES[number], PARAMS.get(number, [])
    expected = duck.execute(sql, params).fetchall()
    got = in_mysql(source, sql, list(params))
    assert len(got) == len(expected) > 0
    for mine, theirs in zip(got, expected, strict=True):
        assert len(mine) == len(theirs)
        assert all(same(b, a) for a, b in zip(mine, theirs, strict=True)), (mine, theirs)


def test_catalog_types_keys_and_booleans(source: Source) -> None:
    types = {c.name: c.type for c in source.columns(source.table_config("fatos"))}
    assert types == {
        "id": "BIGINT",
        "loja": "VARCHAR",
        "canal": "VARCHAR",
        "dia": "DATE",
        "momento": "TIMESTAMP",
        "valor": "DOUBLE",
        "qtd": "BIGINT",
        "preco": "DOUBLE",
        "pago": "BOOLEAN",  # TINYINT(1), a Django BooleanField
        "nivel": "BIGINT",  # any other TINYINT is a number
        "grande": "BIGINT",
        "nota": "VARCHAR",
        "tipo": "VARCHAR",
        "criado": "TIMESTAMP",
        "codigo": "VARCHAR",
    }
    spec = source.table_config("fatos")
    assert source._unique_keys(spec) == {"primary": ["id"], "unique0": ["codigo"]}
    _, rows = source.fetch("SELECT pago, nivel FROM fatos WHERE id IN (3, 4) ORDER BY id")
    assert rows == [(False, 3), (True, 4)]


def test_a_source_table_answers_from_the_aggregate_and_the_source(
    source: Source, duck: duckdb.DuckDBPyConnection
) -> None:
    table = SourceTable(source, source.table_config("fatos"), Limits())
    try:
        assert table.row_count == ROWS  # exact, not InnoDB's estimate
        assert table.sample.row_count == ROWS  # fewer rows than sample_rows: all of them
        # By month: from the aggregate (grouped by day); by store: in MySQL (too many groups).
        monthly = (
            "SELECT date_trunc('month', dia) AS p, sum(valor) AS v, count(*) AS n, "
            "avg(qtd) AS q FROM data WHERE dia >= ? GROUP BY 1 ORDER BY 1"
        )
        by_store = "SELECT loja, sum(valor) AS v, count(*) AS n FROM data GROUP BY 1 ORDER BY 1"
        for sql, params in ((monthly, [date(2024, 3, 1)]), (by_store, [])):
            got = table.query(sql, params)
            expected = duck.execute(sql, params).fetchall()
            assert len(got) == len(expected) > 3
            for r, e in zip(got, expected, strict=True):
                assert all(same(a, b) for a, b in zip(r, e, strict=True)), (r, e)
        assert table.shown[monthly].startswith("-- in the source, once for this question")
        assert "`fatos`" in table.shown[by_store] and "once" not in table.shown[by_store]
        # What MySQL lacks (corr): the grouping runs in MySQL, the rest in DuckDB.
        split = (
            "WITH s AS (SELECT dia, sum(valor) AS v, sum(qtd) AS n FROM data GROUP BY 1) "
            "SELECT corr(v, n), median(v) FROM s"
        )
        got_split = table.query(split)[0]
        assert all(
            same(a, b) for a, b in zip(got_split, duck.execute(split).fetchall()[0], strict=True)
        )
        assert "then in Billumy" in table.shown[split]
        facts = salient.salient_facts(table, source_profile(table), limit=20)
        assert "summary" in {f.kind for f in facts}
    finally:
        table.close()


def test_a_table_not_listed_is_unreachable(source: Source) -> None:
    with pytest.raises(NotFoundError):
        source.table_config("auth_user")
    scope, _ = source.scope(source.table_config("fatos"))
    for sql in (
        "SELECT * FROM auth_user",
        "SELECT count(*) FROM data, auth_user",
        "SELECT sleep(5) FROM data",
        "DELETE FROM data",
    ):
        with pytest.raises(pushdown.RefusedQuery):
            pushdown.compile_query(scope, sql, [], "mysql")


def test_writes_fail_whatever_they_come_through(source: Source, mysql_url: str) -> None:
    for sql in (
        "INSERT INTO fatos (id, loja, dia, momento, qtd, preco, pago, nivel, grande, tipo, "
        "codigo) VALUES (9999, 'x', '2024-01-01', '2024-01-01', 1, 1, 1, 1, 1, 'a', 'x')",
        "UPDATE fatos SET valor = 0",
        "CREATE TABLE intruso (a integer)",
    ):
        with pytest.raises(BadRequestError, match="read-only"):
            source.fetch(sql)
    scope, _ = source.scope(source.table_config("fatos"))
    smuggled = 'SELECT sum("valor`); DELETE FROM fatos; --") FROM data'
    compiled = pushdown.compile_query(scope, smuggled, [], "mysql")
    with pytest.raises(BadRequestError):  # one statement naming a column that is not there
        source.fetch(compiled.sql, compiled.params)
    question = "'; DELETE FROM fatos; --"
    rows = in_mysql(source, "SELECT count(*) FROM data WHERE loja = ?", [question])
    assert rows == [(0,)]
    engine = sa.create_engine(mysql_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM fatos").scalar() == ROWS
        tables = {r[0] for r in conn.exec_driver_sql("SHOW TABLES")}
    engine.dispose()
    assert tables == {"fatos", "auth_user"}


def test_a_slow_query_is_stopped_by_the_time_limit(mysql_url: str) -> None:
    slow = Source(config(mysql_url, statement_timeout=0.3))
    try:
        with pytest.raises(QueryTimeoutError, match=r"0\.3 s"):
            in_mysql(slow, "SELECT count(*) FROM data AS a, data AS b, data AS c", [])
        assert in_mysql(slow, "SELECT count(*) FROM data", []) == [(ROWS,)]  # still usable
    finally:
        slow.dispose()


def test_a_server_that_is_down_is_a_503_without_credentials() -> None:
    url = f"mysql://billumy:hunter2@127.0.0.1:{free_port()}/shop"
    down = Source(config(url, connect_timeout=1))
    try:
        with pytest.raises(SourceUnavailableError) as raised:
            down.columns(down.table_config("fatos"))
        assert "hunter2" not in str(raised.value) and "127.0.0.1" not in str(raised.value)
        assert down.describe()["available"] is False
    finally:
        down.dispose()


def test_mysql_urls_are_read_through_pymysql() -> None:
    for url in ("mysql://u@h/db", "mysql+pymysql://u@h/db", "mariadb+pymysql://u@h/db"):
        assert Source(config(url)).dialect == "mysql"
    with pytest.raises(ValueError, match="mysql://"):
        config("oracle://u@h/db")


def test_a_snapshot_copies_the_filtered_rows(
    source: Source, duck: duckdb.DuckDBPyConnection
) -> None:
    """Values bound as MySQL reads them (dates, times, booleans), rows in the key's order."""
    taken = snapshots.take(
        source,
        source.table_config("fatos"),
        conditions=[
            {"column": "canal", "op": "in", "value": ["site", "app"]},
            {"column": "dia", "op": "between", "value": ["2024-03-01", "2024-08-31"]},
            {"column": "momento", "op": ">=", "value": "2024-02-01T12:00:00"},
            {"column": "pago", "op": "=", "value": True},
        ],
        columns=["id", "loja", "dia", "momento", "valor", "pago"],
        limits=Limits(),
    )
    expected = duck.execute(
        "SELECT id, loja, dia, momento, valor, pago FROM data WHERE canal IN ('site', 'app') "
        "AND dia BETWEEN DATE '2024-03-01' AND DATE '2024-08-31' "
        "AND momento >= TIMESTAMP '2024-02-01 12:00:00' AND pago ORDER BY id"
    ).fetchall()
    got = taken.table.query("SELECT * FROM data")
    assert len(got) == len(expected) > 50
    for mine, theirs in zip(got, expected, strict=True):
        assert all(same(a, b) for a, b in zip(mine, theirs, strict=True)), (mine, theirs)


def test_nothing_is_reused_so_a_write_is_seen_at_once(mysql_url: str) -> None:
    """MySQL gives no reliable write signal (UPDATE_TIME counts whole seconds): each question
    reads its aggregate again, and sees a write made a moment before."""
    engine = sa.create_engine(mysql_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE reuso (id integer PRIMARY KEY, canal varchar(10), dia date, valor double)"
        )
        conn.exec_driver_sql(
            "INSERT INTO reuso VALUES (%s, %s, %s, %s)",
            [(i, CANAIS[i % 3], date(2024, 1, 1) + timedelta(days=i % 90), i) for i in range(3000)],
        )
    reuse = Source(
        SourceConfig.model_validate(
            {"name": "reuso", "url": mysql_url, "tables": [{"name": "reuso"}]}
        )
    )
    sql = "SELECT canal, sum(valor) FROM data GROUP BY 1 ORDER BY 1"
    try:
        assert reuse.stamp(["`reuso`"]) is None
        first = SourceTable(reuse, reuse.table_config("reuso"), Limits())
        before = dict(first.query(sql))
        assert table_read_now(first, sql)
        first.close()
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE reuso SET valor = valor + 1000 WHERE canal = 'site'")
        again = SourceTable(reuse, reuse.table_config("reuso"), Limits())
        after = dict(again.query(sql))
        assert table_read_now(again, sql)
        assert after["site"] == before["site"] + 1000 * 1000 and after["app"] == before["app"]
        again.close()
    finally:
        reuse.dispose()
        engine.dispose()


def table_read_now(table: SourceTable, sql: str) -> bool:
    shown = table.shown[sql]
    return "by an earlier question" not in shown and "once for this question" in shown
