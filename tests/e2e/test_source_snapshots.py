"""Snapshots of a source's table as dataset versions (``POST /datasets`` with ``source``),
through a real ``billumy serve``: the Django-like shop in a fresh PostgreSQL database and a
SQLite file, configured as ``[[sources]]``. Row counts and the changes between two snapshots
are compared with direct SQL on the same database; masked columns never leave it; hostile
filters, other tenants' sources, tables off the allow-list, a source that is down and a table
over the row limit are refused cleanly."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import fresh_pg_database
from tests.e2e.server import Server, free_port
from tests.sources_data import (
    ask,
    build_postgres,
    build_sqlite,
    close,
    down_and_dev_sources,
    source_toml,
)

ROWS = 30_000
MAX_ROWS = 5_000  # the server's max_dataset_rows: the whole table is over it
PEDIDO = "public.vendas_pedido"
ALLOWED = ["id", "loja_id", "criado_em", "canal", "status", "valor", "cliente_email"]


@pytest.fixture(scope="module")
def shop_url() -> Iterator[str]:
    with fresh_pg_database("billumy_snapshots") as url:
        build_postgres(url, ROWS)
        yield url


@pytest.fixture(scope="module")
def shop_db(shop_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(shop_url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def sqlite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("snapshot-sqlite") / "dev.sqlite3"
    build_sqlite(path)
    return path


@pytest.fixture(scope="module")
def shop(
    shop_url: str, sqlite_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("snapshots")
    closed = free_port()
    (data_dir / "billumy.toml").write_text(
        source_toml(
            "shop",
            [(PEDIDO, {"columns": ALLOWED, "mask": ["cliente_email"]}), "vendas_detalhe"],
            url_env="SHOP_DATABASE_URL",
            statement_timeout=5,
        )
        + down_and_dev_sources(closed, sqlite_path)
        + source_toml(
            "other", ["vendas_detalhe"], tenant="someone-else", url_env="SHOP_DATABASE_URL"
        )
    )
    env = {"SHOP_DATABASE_URL": shop_url, "BILLUMY_MAX_DATASET_ROWS": str(MAX_ROWS)}
    srv = Server(data_dir=data_dir, env=env).start()
    yield srv
    srv.stop()
    log = srv.log()
    assert "hunter2" not in log and shop_url not in log


def snap(srv: Server, **body: Any) -> httpx.Response:
    return httpx.post(srv.url + "/datasets", json=body, headers=srv.headers, timeout=120)


def direct(engine: sa.Engine, sql: str, params: dict[str, Any] | None = None) -> Any:
    with engine.connect() as conn:
        return conn.exec_driver_sql(sql, params or {}).scalar()


def march_site() -> list[dict[str, Any]]:
    return [
        {"column": "canal", "op": "=", "value": "site"},
        {"column": "criado_em", "op": "between", "value": ["2024-03-01", "2024-03-31"]},
    ]


def test_filtered_snapshot_matches_direct_sql(
    shop: Server, shop_db: sa.Engine, shop_url: str
) -> None:
    got = snap(shop, source="shop", table=PEDIDO, filter=march_site(), name="site, março")
    assert got.status_code == 201, got.text
    made = got.json()
    expected = direct(
        shop_db,
        "SELECT count(*) FROM vendas_pedido WHERE canal = 'site' "
        "AND criado_em BETWEEN '2024-03-01' AND '2024-03-31'",
    )
    assert 0 < expected < MAX_ROWS
    assert made["rows"] == expected and made["version"] == 1 and made["new_version"] is True
    assert made["name"] == "site, março"
    # The masked column is never copied, and the answer says so.
    names = [c["name"] for c in made["columns"]]
    assert names == [c for c in ALLOWED if c != "cliente_email"]
    assert made["masked"] == ["cliente_email"]
    assert "@example.com" not in got.text
    types = {c["name"]: c["type"] for c in made["columns"]}
    assert types["criado_em"] == "DATE" and types["valor"] == "DOUBLE"
    # Where it came from, kept with the version: never the URL.
    origin = {
        "source": "shop",
        "table": PEDIDO,
        "filter": march_site(),
        "columns": names,
        "masked": ["cliente_email"],
    }
    assert made["origin"] == origin
    stored = httpx.get(f"{shop.url}/datasets/{made['id']}", headers=shop.headers, timeout=30)
    assert stored.status_code == 200, stored.text
    assert stored.json()["versions"][0]["origin"] == origin
    assert shop_url not in stored.text and "5432" not in stored.text
    # The rows are the source's: the total of valor, asked of the dataset, is the direct sum.
    total = direct(
        shop_db,
        "SELECT sum(valor) FROM vendas_pedido WHERE canal = 'site' "
        "AND criado_em BETWEEN '2024-03-01' AND '2024-03-31'",
    )
    answer = ask(shop, dataset_id=made["id"], question="Qual o total de valor?")
    assert answer.status_code == 200, answer.text
    assert answer.json()["profile"]["row_count"] == expected
    sums = [
        v
        for f in answer.json()["facts"]
        for k, v in f["values"].items()
        if isinstance(v, int | float) and close(v, total)
    ]
    assert sums, answer.json()["facts"]


# May 2024, sold on the site or the app: the window the changes test writes into.
MAY = [
    {"column": "canal", "op": "in", "value": ["site", "app"]},
    {"column": "criado_em", "op": ">=", "value": "2024-05-01"},
    {"column": "criado_em", "op": "<", "value": "2024-06-01"},
]
MAY_WHERE = (
    "WHERE canal IN ('site', 'app') AND criado_em >= '2024-05-01' AND criado_em < '2024-06-01'"
)
MAY_SQL = f"FROM vendas_pedido {MAY_WHERE}"


def _changed(changes: list[dict[str, Any]], was: float, now: float) -> bool:
    """Whether a changed fact reports a value going from ``was`` to ``now``."""
    for change in changes[1:]:
        for moved in change.get("values", {}).values():
            before, after = moved.get("before"), moved.get("after")
            numbers = all(isinstance(v, int | float) for v in (before, after))
            if numbers and close(before, was) and close(after, now):
                return True
    return False


def test_changes_between_snapshots_match_direct_sql(shop: Server, shop_db: sa.Engine) -> None:
    first = snap(shop, source="shop", table=PEDIDO, filter=MAY)
    assert first.status_code == 201, first.text
    did = first.json()["id"]
    assert first.json()["name"] == f"shop.{PEDIDO}"
    count_before = direct(shop_db, f"SELECT count(*) {MAY_SQL}")
    total_before = direct(shop_db, f"SELECT sum(valor) {MAY_SQL}")
    assert first.json()["rows"] == count_before
    question = "O que mudou desde a última versão no total de valor?"
    before = ask(shop, dataset_id=did, question=question)
    assert before.status_code == 200, before.text
    assert before.json()["dataset"]["version"] == 1

    # The shop goes on selling: new orders in May, and some of May's app orders repriced.
    with shop_db.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO vendas_pedido SELECT i, 1, 1, DATE '2024-05-20', 'site', 'pago', 1, "
            "99.90, 'nova@example.com' FROM generate_series(%(a)s::int, %(b)s::int) AS i",
            {"a": ROWS + 1, "b": ROWS + 25},
        )
        conn.exec_driver_sql(
            "UPDATE vendas_pedido SET valor = valor + 10 WHERE canal = 'app' "
            "AND criado_em BETWEEN '2024-05-01' AND '2024-05-10'"
        )
    count_after = direct(shop_db, f"SELECT count(*) {MAY_SQL}")
    total_after = direct(shop_db, f"SELECT sum(valor) {MAY_SQL}")
    assert count_after == count_before + 25 and total_after != total_before

    second = snap(shop, source="shop", table=PEDIDO, filter=MAY, dataset_id=did)
    assert second.status_code == 201, second.text
    assert second.json()["version"] == 2 and second.json()["new_version"] is True
    assert second.json()["rows"] == count_after
    assert second.json()["hash"] != first.json()["hash"]
    after = ask(shop, dataset_id=did, question=question)
    assert after.status_code == 200, after.text
    changes = after.json()["changes"]
    assert changes and changes[0] == {
        "compared_with": before.json()["id"],
        "previous_version": 1,
    }
    # The change it reports is the change in the source: the total, and the rows.
    assert _changed(changes, total_before, total_after), changes
    assert _changed(changes, count_before, count_after), changes

    # Nothing that is copied changed since (only the masked e-mails): no new version.
    with shop_db.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE vendas_pedido SET cliente_email = 'outra@example.com' {MAY_WHERE}"  # noqa: S608
        )
    same = snap(shop, source="shop", table=PEDIDO, filter=MAY, dataset_id=did)
    assert same.status_code == 200, same.text
    assert same.json()["new_version"] is False and same.json()["version"] == 2
    stored = httpx.get(f"{shop.url}/datasets/{did}", headers=shop.headers, timeout=30).json()
    assert [v["version"] for v in stored["versions"]] == [1, 2]


def test_a_view_without_a_key_snapshots_the_same_rows_the_same(
    shop: Server, shop_db: sa.Engine
) -> None:
    """``vendas_detalhe`` (a join) has no primary key: its rows are ordered by every column,
    so the same rows make the same version."""
    body = {
        "source": "shop",
        "table": "vendas_detalhe",
        "columns": ["loja", "categoria", "criado_em", "valor"],
        "filter": [
            {"column": "loja", "op": "!=", "value": "Centro"},
            {"column": "criado_em", "op": "between", "value": ["2024-02-01", "2024-02-10"]},
        ],
    }
    first = snap(shop, **body)
    assert first.status_code == 201, first.text
    assert [c["name"] for c in first.json()["columns"]] == body["columns"]
    assert first.json()["masked"] == []
    expected = direct(
        shop_db,
        "SELECT count(*) FROM vendas_detalhe WHERE loja <> 'Centro' "
        "AND criado_em BETWEEN '2024-02-01' AND '2024-02-10'",
    )
    assert first.json()["rows"] == expected
    again = snap(shop, **body, dataset_id=first.json()["id"])
    assert again.status_code == 200, again.text
    assert again.json()["new_version"] is False and again.json()["hash"] == first.json()["hash"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"filter": [{"column": "cliente_email", "op": "=", "value": "a@b.c"}]}, "cliente_email"),
        ({"columns": ["canal", "cliente_email"]}, "cliente_email"),
        ({"filter": [{"column": "produto_id", "op": "=", "value": 1}]}, "produto_id"),
        ({"columns": ["nope"]}, "nope"),
        ({"filter": [{"column": "canal", "op": "LIKE", "value": "s%"}]}, "op must be one of"),
        ({"filter": [{"column": "canal", "op": "=", "value": ["site"]}]}, "one value"),
        ({"filter": [{"column": "canal", "op": "in", "value": "site"}]}, "list"),
        ({"filter": [{"column": "valor", "op": "between", "value": [1]}]}, "two values"),
        ({"filter": [{"column": "valor", "op": ">", "value": "cem"}]}, "numbers"),
        ({"filter": [{"column": "criado_em", "op": ">", "value": "ontem"}]}, "ISO date"),
        ({"filter": [{"column": "canal", "op": "=", "value": None}]}, "values are"),
        ({"filter": [{"column": "canal", "op": "="}]}, "column, op and value"),
        ({"filter": ["canal = 'site'"]}, "column, op and value"),
    ],
)
def test_bad_filters_and_columns_are_400(shop: Server, body: dict[str, Any], needle: str) -> None:
    got = snap(shop, source="shop", table=PEDIDO, **body)
    assert got.status_code == 400, got.text
    assert needle in got.json()["error"]
    assert "@example.com" not in got.text


def test_injection_is_a_plain_value_or_refused(shop: Server, shop_db: sa.Engine) -> None:
    drop = "'; DROP TABLE vendas_loja; --"
    # As a value it is only a value: no order has that canal.
    got = snap(
        shop, source="shop", table=PEDIDO, filter=[{"column": "canal", "op": "=", "value": drop}]
    )
    assert got.status_code == 400 and "no rows" in got.json()["error"], got.text
    plain = snap(
        shop,
        source="shop",
        table=PEDIDO,
        filter=[
            {"column": "canal", "op": "in", "value": ["site", drop]},
            {"column": "criado_em", "op": "between", "value": ["2024-04-01", "2024-04-07"]},
        ],
    )
    assert plain.status_code == 201, plain.text
    assert plain.json()["rows"] == direct(
        shop_db,
        "SELECT count(*) FROM vendas_pedido WHERE canal = 'site' "
        "AND criado_em BETWEEN '2024-04-01' AND '2024-04-07'",
    )
    # As a name it is no column, and no table.
    for body in (
        {
            "filter": [
                {"column": 'canal" = canal; DROP TABLE vendas_loja; --', "op": "=", "value": 1}
            ]
        },
        {"columns": ['valor"); DELETE FROM vendas_pedido; --']},
    ):
        refused = snap(shop, source="shop", table=PEDIDO, **body)
        assert refused.status_code == 400, refused.text
    refused = snap(shop, source="shop", table='vendas_pedido"; DROP TABLE vendas_loja; --')
    assert refused.status_code == 404, refused.text
    assert direct(shop_db, "SELECT count(*) FROM vendas_loja") == 8
    assert direct(shop_db, "SELECT count(*) FROM vendas_pedido") >= ROWS


def test_unlisted_tables_and_other_tenants_sources_are_404(shop: Server) -> None:
    for table in ("auth_user", "public.auth_user", "vendas_produto"):
        got = snap(shop, source="shop", table=table)
        assert got.status_code == 404, got.text
        assert "pbkdf2" not in got.text
    for source in ("other", "nope"):
        got = snap(shop, source=source, table="vendas_detalhe")
        assert got.status_code == 404, got.text
        assert got.json() == {"error": f"no source '{source}'"}
    got = snap(
        shop, source="shop", table=PEDIDO, filter=march_site(), dataset_id="ds_0000000000000000"
    )
    assert got.status_code == 404, got.text


def test_over_the_row_limit_is_413(shop: Server) -> None:
    got = snap(shop, source="shop", table=PEDIDO)
    assert got.status_code == 413, got.text
    error = got.json()["error"]
    assert f"more than {MAX_ROWS} rows" in error and "filter" in error


def test_down_source_is_503(shop: Server) -> None:
    got = snap(shop, source="down", table="vendas_pedido")
    assert got.status_code == 503, got.text
    assert got.json() == {"error": "source 'down' is unavailable; retry shortly"}
    assert "hunter2" not in got.text


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"source": "shop", "table": PEDIDO, "data": [{"a": 1}]}, "exactly one of data and source"),
        ({"name": "nothing"}, "exactly one of data and source"),
        ({"data": [{"a": 1}], "table": PEDIDO}, "only with source"),
        ({"data": [{"a": 1}], "filter": []}, "only with source"),
    ],
)
def test_exactly_one_of_data_and_source(shop: Server, body: dict[str, Any], needle: str) -> None:
    got = snap(shop, **body)
    assert got.status_code == 400, got.text
    assert needle in got.json()["error"]


def test_sqlite_snapshot(shop: Server, sqlite_path: Path) -> None:
    body = {
        "source": "dev",
        "filter": [
            {"column": "canal", "op": "=", "value": "site"},
            {"column": "criado_em", "op": "between", "value": ["2024-02-01", "2024-02-29"]},
            {"column": "quantidade", "op": ">=", "value": 2},
        ],
    }
    got = snap(shop, **body)
    assert got.status_code == 201, got.text
    con = sqlite3.connect(sqlite_path)
    try:
        expected = con.execute(
            "SELECT count(*) FROM vendas_pedido WHERE canal = 'site' "
            "AND criado_em BETWEEN '2024-02-01' AND '2024-02-29' AND quantidade >= 2"
        ).fetchone()[0]
    finally:
        con.close()
    assert expected > 0 and got.json()["rows"] == expected
    types = {c["name"]: c["type"] for c in got.json()["columns"]}
    assert types["criado_em"] == "DATE" and types["valor"] == "DOUBLE"
    assert got.json()["origin"]["table"] == "vendas_pedido"
    again = snap(shop, **body, dataset_id=got.json()["id"])
    assert again.status_code == 200 and again.json()["new_version"] is False, again.text
    # A number SQLite cannot bind, and one JSON has not (the parser reads it): 400, not 500.
    for value in ("1" + "0" * 30, "NaN", "1e400"):
        raw = (
            '{"source": "dev", "filter": [{"column": "quantidade", "op": ">", "value": '
            + value
            + "}]}"
        )
        refused = httpx.post(shop.url + "/datasets", content=raw, headers=shop.headers, timeout=60)
        assert refused.status_code == 400, refused.text
        assert "finite" in refused.json()["error"]
