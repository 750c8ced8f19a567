"""Questions about a database the backend already has, through a real ``billumy serve``: a
Django-like shop in a fresh PostgreSQL database (300,000 orders from ``generate_series``) and a
SQLite file, configured as ``[[sources]]`` in billumy.toml. Every fact's numbers are compared
with the same aggregate computed by a direct SQL query; writes, tables off the allow-list, a
slow view and a source that is down are refused cleanly while the rest keeps working."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import fresh_pg_database
from tests.e2e.server import Server, free_port
from tests.sources_data import (
    SHOP_JOINS,
    ask,
    build_postgres,
    build_sqlite,
    close,
    direct,
    down_and_dev_sources,
    source_toml,
)

ROWS = 1_000_000  # the issue: "a million rows from generate_series"


@pytest.fixture(scope="module")
def shop_url() -> Iterator[str]:
    with fresh_pg_database("billumy_sources") as url:
        build_postgres(url, ROWS)
        yield url


@pytest.fixture(scope="module")
def shop_db(shop_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(shop_url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def shop(shop_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("sources")
    sqlite_path = data_dir / "dev.sqlite3"
    build_sqlite(sqlite_path)
    closed = free_port()
    pedido = {"mask": ["cliente_email"]}
    columns = ["id", "loja_id", "criado_em", "canal", "status", "valor", "cliente_email"]
    (data_dir / "billumy.toml").write_text(
        source_toml(
            "shop",
            [
                "vendas_detalhe",
                ("public.vendas_pedido", {"columns": columns, **pedido}),
                "vendas_lenta",
            ],
            url_env="SHOP_DATABASE_URL",
            statement_timeout=2,
        )
        + down_and_dev_sources(closed, sqlite_path)
        + source_toml(
            "django",
            [("vendas_pedido", pedido), "vendas_loja", "vendas_produto", "vendas_pagamento"],
            SHOP_JOINS,
            url_env="SHOP_DATABASE_URL",
        )
        + source_toml(
            "other", ["vendas_detalhe"], tenant="someone-else", url_env="SHOP_DATABASE_URL"
        )
    )
    srv = Server(data_dir=data_dir, env={"SHOP_DATABASE_URL": shop_url}).start()
    yield srv
    srv.stop()
    log = srv.log()
    assert "hunter2" not in log and shop_url not in log


def test_sources_are_listed_without_urls(shop: Server, shop_url: str) -> None:
    got = httpx.get(shop.url + "/api/sources", headers=shop.headers, timeout=30)
    assert got.status_code == 200, got.text
    listed = {s["name"]: s for s in got.json()["sources"]}
    assert set(listed) == {"shop", "down", "dev", "django"}  # not another tenant's
    assert listed["down"]["available"] is False
    tables = {t["name"]: t for t in listed["shop"]["tables"]}
    pedido = {c["name"]: c for c in tables["public.vendas_pedido"]["columns"]}
    assert pedido["cliente_email"]["masked"] is True
    assert "produto_id" not in pedido  # out of the column scope
    assert {c["name"] for c in tables["vendas_detalhe"]["columns"]} >= {"loja", "valor"}
    assert "hunter2" not in got.text and shop_url not in got.text and "5432" not in got.text
    # A declared join's columns are listed with the table.column they come from.
    django = {t["name"]: t for t in listed["django"]["tables"]}
    joined = {c["name"]: c.get("from") for c in django["vendas_pedido"]["columns"]}
    assert (
        joined["loja"] == "vendas_loja.nome" and joined["categoria"] == "vendas_produto.categoria"
    )
    assert joined["valor"] is None and "cliente_email" in joined


def test_store_ranking_in_portuguese_matches_direct_sql(shop: Server, shop_db: sa.Engine) -> None:
    got = ask(shop, source="shop", table="vendas_detalhe", question="Qual loja vendeu mais?")
    assert got.status_code == 200, got.text
    result = got.json()
    facts = result["facts"]
    expected = direct(
        shop_db,
        "SELECT loja, sum(valor) FROM vendas_detalhe GROUP BY loja ORDER BY 2 DESC",
    )
    ranking = next(f for f in facts if f["columns"][:1] == ["loja"] and f["rows"])
    for row, (loja, total) in zip(ranking["rows"], expected, strict=False):
        assert row["loja"] == loja
        assert close(next(v for k, v in row.items() if k != "loja"), total)
    assert expected[0][0] in result["answer"]["text"]
    # The SQL shown is what ran in PostgreSQL: the allow-listed view, quoted.
    assert 'FROM "vendas_detalhe"' in ranking["sql"] and "GROUP BY" in ranking["sql"]
    assert result["profile"]["row_count"] == ROWS  # the exact count(*), not the sample's


def test_every_fact_of_english_questions_is_the_direct_query(
    shop: Server, shop_db: sa.Engine
) -> None:
    totals = dict(direct(shop_db, "SELECT canal, sum(valor) FROM vendas_detalhe GROUP BY 1"))
    monthly = dict(
        direct(
            shop_db,
            "SELECT to_char(criado_em, 'YYYY-MM'), sum(valor) FROM vendas_detalhe GROUP BY 1",
        )
    )
    question = "What is the total valor by canal?"
    got = ask(shop, source="shop", table="vendas_detalhe", question=question)
    assert got.status_code == 200, got.text
    by_canal = [f for f in got.json()["facts"] if f["columns"][:1] == ["canal"]]
    assert by_canal, got.json()["facts"]
    for row in by_canal[0]["rows"]:
        value = next(v for k, v in row.items() if k.startswith("sum") or k == "valor")
        assert close(value, totals[row["canal"]])
    question = "How did valor change month by month?"
    got = ask(shop, source="shop", table="vendas_detalhe", question=question)
    assert got.status_code == 200, got.text
    series = [f for f in got.json()["facts"] if f["kind"] == "trend" and "valor" in f["columns"]]
    assert series, got.json()["facts"]
    for row in series[0]["rows"]:
        value = next(v for k, v in row.items() if k != "period")
        assert close(value, monthly[row["period"]])


def test_masked_column_and_unlisted_tables_are_unreachable(
    shop: Server, shop_db: sa.Engine
) -> None:
    got = ask(
        shop,
        source="shop",
        table="public.vendas_pedido",
        question="Qual o total de valor por canal?",
    )
    assert got.status_code == 200, got.text
    assert "@example.com" not in got.text  # the masked e-mails never leave the database
    # The table's own columns are counted by PostgreSQL's statistics (pg_stats), not by the
    # sample of a few pages: every id distinct, the 540 days, the 5,000 masked e-mails.
    profiled = {c["name"]: c for c in got.json()["profile"]["columns"]}
    stats = dict(
        direct(
            shop_db,
            "SELECT attname, n_distinct FROM pg_stats WHERE tablename = 'vendas_pedido' "
            "AND attname IN ('id', 'criado_em', 'cliente_email')",
        )
    )
    assert stats["id"] == -1 and profiled["id"]["distinct"] == ROWS
    assert profiled["criado_em"]["distinct"] == stats["criado_em"] == 540
    assert profiled["cliente_email"]["distinct"] == round(stats["cliente_email"])
    assert profiled["cliente_email"]["masked"] and not profiled["cliente_email"].get("top")
    for table in ("auth_user", "vendas_produto", "public.auth_user", 'vendas_pedido"; DROP'):
        refused = ask(shop, source="shop", table=table, question="How many rows?")
        assert refused.status_code == 404, refused.text
        assert "pbkdf2" not in refused.text
    nobody = ask(shop, source="other", question="Qual loja vendeu mais?")
    assert nobody.status_code == 404  # another tenant's source looks like none


def test_write_smuggled_through_question_or_column_fails_harmlessly(
    shop: Server, shop_db: sa.Engine
) -> None:
    for question in (
        "'; DELETE FROM vendas_pedido; --",
        'Qual o total de "valor"); DROP TABLE vendas_loja; --?',
    ):
        got = ask(shop, source="shop", table="vendas_detalhe", question=question)
        assert got.status_code < 500, got.text
    got = ask(
        shop,
        source="shop",
        table="vendas_detalhe",
        columns=['valor"); DELETE FROM vendas_pedido; --'],
        question="total?",
    )
    assert got.status_code == 400, got.text
    assert direct(shop_db, "SELECT count(*) FROM vendas_pedido") == [(ROWS,)]
    assert direct(shop_db, "SELECT count(*) FROM vendas_loja") == [(8,)]


def test_slow_query_is_stopped_by_the_timeout(shop: Server) -> None:
    got = ask(shop, source="shop", table="vendas_lenta", question="Total valor por canal?")
    assert got.status_code == 503, got.text
    assert "source 'shop'" in got.json()["error"] and "2 s" in got.json()["error"]


def test_down_source_is_503_and_chat_still_works(shop: Server) -> None:
    got = ask(shop, source="down", question="Qual loja vendeu mais?")
    assert got.status_code == 503, got.text
    assert got.json() == {"error": "source 'down' is unavailable; retry shortly"}
    assert "hunter2" not in got.text
    chat = httpx.post(
        shop.url + "/api/chat",
        json={
            "model": "smollm2-135m",
            "messages": [{"role": "user", "content": "Oi"}],
            "stream": False,
            "options": {"num_predict": 4},
        },
        headers=shop.headers,
        timeout=120,
    )
    assert chat.status_code == 200, chat.text


def test_sqlite_source(shop: Server, tmp_path: Path) -> None:
    got = ask(shop, source="dev", question="Qual loja vendeu mais?")
    assert got.status_code == 200, got.text
    facts = got.json()["facts"]
    assert any("vendas_pedido" in f["sql"] for f in facts)
    ranking = next(f for f in facts if f["kind"] == "breakdown")
    assert ranking["rows"][0]["loja"] in got.json()["answer"]["text"]


def test_exactly_one_of_data_dataset_and_source(shop: Server) -> None:
    got = ask(shop, source="shop", data=[{"a": 1}], question="total?")
    assert got.status_code == 400
    got = ask(shop, source="nope", question="total?")
    assert got.status_code == 404
    got = ask(shop, source="shop", question="total?")  # several tables: name one
    assert got.status_code == 400 and "vendas_detalhe" in got.text


def test_declared_joins_answer_about_the_django_models(shop: Server, shop_db: sa.Engine) -> None:
    """No table named: the question points at the orders, which read the stores' and the
    products' names through the declared foreign keys; every number is the direct join's."""
    got = ask(shop, source="django", question="Qual loja vendeu mais em 2024?")
    assert got.status_code == 200, got.text
    result = got.json()
    assert result["dataset"] == {"source": "django", "table": "vendas_pedido"}
    expected = direct(
        shop_db,
        "SELECT l.nome, sum(p.valor) FROM vendas_pedido p JOIN vendas_loja l ON l.id = p.loja_id "
        "WHERE p.criado_em >= '2024-01-01' AND p.criado_em < '2025-01-01' "
        "GROUP BY 1 ORDER BY 2 DESC",
    )
    ranking = next(f for f in result["facts"] if f["columns"][:1] == ["loja"] and f["rows"])
    for row, (loja, total) in zip(ranking["rows"], expected, strict=False):
        assert row["loja"] == loja
        assert close(next(v for k, v in row.items() if k != "loja"), total)
    assert expected[0][0] in result["answer"]["text"]
    assert "LEFT JOIN" in ranking["sql"] and '"vendas_loja"' in ranking["sql"]

    got = ask(shop, source="django", question="Which categoria had the highest valor?")
    assert got.status_code == 200, got.text
    result = got.json()
    expected = direct(
        shop_db,
        "SELECT pr.categoria, sum(p.valor) FROM vendas_pedido p "
        "JOIN vendas_produto pr ON pr.id = p.produto_id GROUP BY 1 ORDER BY 2 DESC",
    )
    ranking = next(f for f in result["facts"] if f["columns"][:1] == ["categoria"] and f["rows"])
    assert ranking["rows"][0]["categoria"] == expected[0][0]
    assert close(next(v for k, v in ranking["rows"][0].items() if k != "categoria"), expected[0][1])
    # The masked e-mail of the orders is never read, joins or not.
    assert "example.com" not in got.text


@pytest.mark.parametrize(
    ("question", "noun", "none"),
    [
        (
            "Qual cidade teve mais pedidos cancelados em 2024?",
            "número de pedidos",
            "Quanto a categoria bebidas vendeu em Recife em 2023?",
        ),
        (
            "Which city had the most cancelled orders in 2024?",
            "number of orders",
            "How much did the bebidas category sell in Recife in 2023?",
        ),
    ],
)
def test_orders_are_the_rows_of_the_orders_table(
    shop: Server, shop_db: sa.Engine, question: str, noun: str, none: str
) -> None:
    """ "Pedidos"/"orders" count the rows of ``vendas_pedido`` (its key, named by its table),
    "cancelled" is the status ``cancelado``; the count comes from the one aggregate (the key is
    NOT NULL), and a filter no order meets is said so, not "n/d"."""
    got = ask(shop, source="django", question=question)
    assert got.status_code == 200, got.text
    result = got.json()
    expected = direct(
        shop_db,
        "SELECT l.cidade, count(*) FROM vendas_pedido p JOIN vendas_loja l ON l.id = p.loja_id "
        "WHERE p.status = 'cancelado' AND p.criado_em >= '2024-01-01' "
        "AND p.criado_em < '2025-01-01' GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    ranking = next(f for f in result["facts"] if f["columns"][:1] == ["cidade"] and f["rows"])
    assert [(r["cidade"], r["count_id"]) for r in ranking["rows"]] == expected
    assert "then in Billumy over its rows" in ranking["sql"]  # no scan of its own
    text = result["answer"]["text"]
    assert noun in text and f"{expected[0][0]} " in text

    got = ask(shop, source="django", question=none)
    assert got.status_code == 200, got.text
    text = got.json()["answer"]["text"]
    assert "n/d" not in text and "n/a" not in text
    assert "nenhuma linha com valor atende" in text or "no rows with valor match" in text


def test_a_question_that_names_no_table_asks_for_one(shop: Server) -> None:
    got = ask(shop, source="django", question="Olá, tudo bem?")
    assert got.status_code == 400
    assert "vendas_pedido" in got.json()["error"]


def test_a_later_question_reuses_the_aggregate_until_the_orders_change(
    shop: Server, shop_db: sa.Engine
) -> None:
    """The second question reads nothing of the table again (its facts say so); a write to
    the orders is seen by the next question (PostgreSQL's statistics trail a commit by about
    a second), and its numbers are the direct query's again."""
    question = "Qual loja vendeu mais?"

    def ranking() -> tuple[dict[str, Any], dict[str, float]]:
        got = ask(shop, source="django", table="vendas_pedido", question=question)
        assert got.status_code == 200, got.text
        fact = next(f for f in got.json()["facts"] if f["columns"][:1] == ["loja"] and f["rows"])
        totals = {r["loja"]: next(v for k, v in r.items() if k != "loja") for r in fact["rows"]}
        return fact, totals

    def expected() -> dict[str, float]:
        sql = (
            "SELECT l.nome, sum(p.valor) FROM vendas_pedido p "
            "JOIN vendas_loja l ON l.id = p.loja_id GROUP BY 1"
        )
        return {k: float(v) for k, v in direct(shop_db, sql)}

    ranking()
    fact, before = ranking()
    assert "by an earlier question" in fact["sql"]
    # One new order of Paulista (loja_id 2), large enough to make it the top store.
    totals = expected()
    amount = round(max(totals.values()) - totals["Paulista"] + 987654.32, 2)
    with shop_db.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO vendas_pedido SELECT max(id) + 1, 2, 1, DATE '2024-03-01', 'site', "
            "'pago', 1, %s, 'novo@example.com' FROM vendas_pedido",
            (amount,),
        )
    want = expected()
    deadline = time.monotonic() + 15
    while True:
        fact, after = ranking()
        if "by an earlier question" not in fact["sql"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "by an earlier question" not in fact["sql"]
    for loja, total in after.items():
        assert close(total, want[loja])
    # The new order makes Paulista the top store: its total is the direct query's.
    assert next(iter(after)) == "Paulista" != next(iter(before))
    assert close(after["Paulista"], want["Paulista"])


def test_a_datetime_column_is_read_by_day_from_the_aggregate(
    shop: Server, shop_db: sa.Engine
) -> None:
    """A Django DateTimeField (timestamptz): month by month and within a period, the facts
    come from the one aggregate (grouped by day) and equal the direct query."""
    got = ask(
        shop,
        source="django",
        table="vendas_pagamento",
        question="Como o valor dos pagamentos evoluiu mês a mês em 2024?",
    )
    assert got.status_code == 200, got.text
    facts = got.json()["facts"]
    trend = next(f for f in facts if f["kind"] == "trend")
    assert trend["sql"].startswith("-- in the source, once for this question")
    assert (
        "date_trunc('day'" in trend["sql"].lower().replace('"', "'") or "DATE_TRUNC" in trend["sql"]
    )
    monthly = dict(
        direct(
            shop_db,
            "SELECT to_char(date_trunc('month', pago_em AT TIME ZONE 'UTC'), 'YYYY-MM'), "
            "sum(valor) FROM vendas_pagamento WHERE pago_em >= '2024-01-01 00:00+00' "
            "AND pago_em < '2025-01-01 00:00+00' GROUP BY 1",
        )
    )
    measure = next(k for k in trend["rows"][0] if k.startswith("sum_"))
    assert len(trend["rows"]) == len(monthly) == 12
    for row in trend["rows"]:
        assert close(row[measure], monthly[str(row["period"])[:7]])
