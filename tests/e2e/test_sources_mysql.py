"""Questions about a MySQL/MariaDB database, through a real ``billumy serve``: the Django-like
shop of ``tests/sources_data.py`` (50,000 orders) in a fresh database on the server of
BILLUMY_TEST_MYSQL_URL, configured as ``[[sources]]`` with the orders' foreign key to the
stores declared. Every number of the ranking and trend facts is compared with a direct query
on MariaDB; tables off the allow-list, writes and a source that is down are refused cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import fresh_mysql_database
from tests.e2e.server import Server, free_port
from tests.sources_data import SHOP_JOINS, ask, build_mysql, close, direct, source_toml

ROWS = 50_000
JOINED = "FROM vendas_pedido p JOIN vendas_loja l ON l.id = p.loja_id"


@pytest.fixture(scope="module")
def shop_url() -> Iterator[str]:
    with fresh_mysql_database("billumy_sources") as url:
        build_mysql(url, ROWS)
        yield url


@pytest.fixture(scope="module")
def shop_db(shop_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(shop_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def shop(shop_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("sources_mysql")
    closed = free_port()
    (data_dir / "billumy.toml").write_text(
        source_toml(
            "loja",
            [
                ("vendas_pedido", {"mask": ["cliente_email"]}),
                "vendas_loja",
                "vendas_detalhe",
                "vendas_lenta",
            ],
            SHOP_JOINS[:1],
            url_env="SHOP_MYSQL_URL",
            statement_timeout=3,
        )
        + source_toml(
            "fora",
            ["vendas_pedido"],
            url=f"mysql://billumy:hunter2@127.0.0.1:{closed}/nada",
            connect_timeout=2,
        )
    )
    srv = Server(data_dir=data_dir, env={"SHOP_MYSQL_URL": shop_url}).start()
    yield srv
    srv.stop()
    log = srv.log()
    assert "hunter2" not in log and shop_url not in log


# The direct query's expression for each column a fact reads.
COLUMNS = {
    "loja": "l.nome",
    "cidade": "l.cidade",
    "canal": "p.canal",
    "status": "p.status",
    "valor": "p.valor",
    "quantidade": "p.quantidade",
}


def within(year: int | None, columns: list[str]) -> str:
    """The question's year as a condition, when the fact is filtered by the order date."""
    if year is None or "criado_em" not in columns:
        return ""
    return f" WHERE p.criado_em >= '{year}-01-01' AND p.criado_em < '{year + 1}-01-01'"


def check_every_fact(db: sa.Engine, facts: list[dict[str, Any]], year: int | None) -> int:
    """Each fact's numbers against the direct query on MariaDB; the facts checked."""
    checked = 0
    for fact in facts:
        kind, columns, rows = fact["kind"], fact["columns"], fact["rows"]
        where = within(year, columns)
        if kind in ("aggregate", "summary"):
            measure = COLUMNS[columns[0]]
            total, mean, low, high, count = direct(
                db,
                f"SELECT sum({measure}), avg({measure}), min({measure}), max({measure}), "
                f"count({measure}) {JOINED}{where}",
            )[0]
            found = rows[0]
            if kind == "aggregate":
                assert close(next(iter(found.values())), total), fact
            else:
                assert close(found["total"], total) and close(found["mean"], mean), fact
                assert close(found["min"], low) and close(found["max"], high), fact
                assert found["count"] == count, fact
        elif kind in ("breakdown", "top_segment", "bottom_segment"):
            dim, measure = columns[0], COLUMNS[columns[1]]
            expected = dict(
                direct(db, f"SELECT {COLUMNS[dim]}, sum({measure}) {JOINED}{where} GROUP BY 1")
            )
            whole = sum(float(v) for v in expected.values())
            ranked = sorted(expected.items(), key=lambda kv: -float(kv[1]))
            order = [r[dim] for r in rows]
            want = [k for k, _ in (ranked[::-1] if kind == "bottom_segment" else ranked)]
            assert order == want[: len(order)], fact
            for row in rows:
                value = next(v for k, v in row.items() if k not in (dim, "share_pct"))
                assert close(value, expected[row[dim]]), fact
                assert close(row["share_pct"], 100 * float(expected[row[dim]]) / whole), fact
        elif kind == "trend":
            measure = COLUMNS[columns[1]]
            monthly = dict(
                direct(
                    db,
                    f"SELECT DATE_FORMAT(p.criado_em, '%%Y-%%m'), sum({measure}) {JOINED} "
                    "GROUP BY 1",
                )
            )
            # The last month, cut short by the data's end (June 2025), may be left out.
            periods = [r["period"] for r in rows]
            assert periods == sorted(monthly)[: len(periods)] and len(periods) >= 17, fact
            for row in rows:
                value = next(v for k, v in row.items() if k != "period")
                assert close(value, monthly[row["period"]]), fact
        else:
            raise AssertionError(f"a fact of a kind this test does not check: {kind}")
        checked += 1
    return checked


@pytest.mark.parametrize(
    ("question", "year", "dim"),
    [
        ("Qual cidade vendeu mais em 2024?", 2024, "cidade"),
        ("Which store had the highest sales in 2025?", 2025, "loja"),
        ("Como o valor evoluiu mês a mês?", None, None),
    ],
)
def test_every_fact_is_the_direct_query(
    shop: Server, shop_db: sa.Engine, question: str, year: int | None, dim: str | None
) -> None:
    """No table named: the question picks the orders, which read the stores' names and
    cities through the declared foreign key; every fact's numbers are MariaDB's own."""
    got = ask(shop, source="loja", question=question)
    assert got.status_code == 200, got.text
    result = got.json()
    assert result["dataset"] == {"source": "loja", "table": "vendas_pedido"}
    facts = result["facts"]
    assert check_every_fact(shop_db, facts, year) == len(facts) >= 3
    assert result["profile"]["row_count"] == ROWS
    if dim is not None:
        ranking = next(f for f in facts if f["kind"] == "breakdown" and f["columns"][0] == dim)
        assert ranking["rows"][0][dim] in result["answer"]["text"]
        # What ran in MariaDB: the allow-listed tables, backquoted, joined in the source.
        assert "LEFT JOIN `vendas_loja`" in ranking["sql"]
    else:
        trend = next(f for f in facts if f["kind"] == "trend")
        assert trend["rows"][0]["period"] == "2024-01"
        assert trend["sql"].startswith("-- in the source, once for this question")
    assert "example.com" not in got.text  # the masked e-mails never leave the database


def test_the_source_is_listed_without_its_url(shop: Server, shop_url: str) -> None:
    got = httpx.get(shop.url + "/api/sources", headers=shop.headers, timeout=30)
    assert got.status_code == 200, got.text
    listed = {s["name"]: s for s in got.json()["sources"]}
    assert listed["loja"]["kind"] == "mysql" and listed["loja"]["available"] is True
    assert listed["fora"]["available"] is False
    tables = {t["name"]: t for t in listed["loja"]["tables"]}
    pedido = {c["name"]: c for c in tables["vendas_pedido"]["columns"]}
    assert pedido["cliente_email"]["masked"] is True
    assert pedido["pago"]["type"] == "BOOLEAN" and pedido["valor"]["type"] == "DOUBLE"
    assert pedido["loja"]["from"] == "vendas_loja.nome"
    assert "hunter2" not in got.text and shop_url not in got.text and "3306" not in got.text


def test_tables_not_listed_and_writes_are_refused(shop: Server, shop_db: sa.Engine) -> None:
    for table in ("auth_user", "vendas_produto", "test.auth_user", "vendas_pedido`; DROP"):
        refused = ask(shop, source="loja", table=table, question="How many rows?")
        assert 400 <= refused.status_code < 500, refused.text
        assert "pbkdf2" not in refused.text
    for question in (
        "'; DELETE FROM vendas_pedido; --",
        "Qual o total de `valor`); DROP TABLE vendas_loja; --?",
    ):
        got = ask(shop, source="loja", table="vendas_detalhe", question=question)
        assert got.status_code < 500, got.text
    got = ask(
        shop,
        source="loja",
        table="vendas_detalhe",
        columns=["valor`); DELETE FROM vendas_pedido; --"],
        question="total?",
    )
    assert got.status_code == 400, got.text
    assert direct(shop_db, "SELECT count(*) FROM vendas_pedido") == [(ROWS,)]
    assert direct(shop_db, "SELECT count(*) FROM vendas_loja") == [(8,)]


def test_a_slow_view_is_stopped_and_a_down_source_is_503(shop: Server) -> None:
    got = ask(shop, source="loja", table="vendas_lenta", question="Total valor por canal?")
    assert got.status_code == 503, got.text
    assert "source 'loja'" in got.json()["error"] and "3 s" in got.json()["error"]
    got = ask(shop, source="fora", question="Qual loja vendeu mais?")
    assert got.status_code == 503, got.text
    assert got.json() == {"error": "source 'fora' is unavailable; retry shortly"}
