"""A Django-like shop schema, made in a real PostgreSQL database (or a SQLite file) for the
source tests: ``vendas_loja``, ``vendas_produto``, ``vendas_pedido`` (foreign keys ``loja_id``
and ``produto_id``, rows from ``generate_series``), the view ``vendas_detalhe`` that joins them,
a table nobody allows (``auth_user``) and a view that sleeps (``vendas_lenta``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

LOJAS = [
    ("Centro", "São Paulo"),
    ("Paulista", "São Paulo"),
    ("Moema", "São Paulo"),
    ("Savassi", "Belo Horizonte"),
    ("Pampulha", "Belo Horizonte"),
    ("Boa Viagem", "Recife"),
    ("Copacabana", "Rio de Janeiro"),
    ("Barra", "Rio de Janeiro"),
]
CATEGORIAS = ["bebidas", "mercearia", "limpeza", "padaria"]

SCHEMA = """
CREATE TABLE vendas_loja (id integer PRIMARY KEY, nome text NOT NULL, cidade text NOT NULL);
CREATE TABLE vendas_produto (
    id integer PRIMARY KEY, nome text NOT NULL, categoria text NOT NULL, preco numeric(10, 2)
);
CREATE TABLE vendas_pedido (
    id bigint PRIMARY KEY,
    loja_id integer NOT NULL REFERENCES vendas_loja (id),
    produto_id integer NOT NULL REFERENCES vendas_produto (id),
    criado_em date NOT NULL,
    canal text NOT NULL,
    status text NOT NULL,
    quantidade integer NOT NULL,
    valor numeric(12, 2) NOT NULL,
    cliente_email text NOT NULL
);
CREATE TABLE auth_user (id integer PRIMARY KEY, username text, password text);
CREATE TABLE vendas_pagamento (
    id integer PRIMARY KEY, metodo text NOT NULL, pago_em timestamp with time zone NOT NULL,
    valor numeric(12, 2) NOT NULL
);
"""

# Payments with a Django DateTimeField (timestamptz): one every 13 minutes from 2024-01-01.
PAGAMENTOS = """
INSERT INTO vendas_pagamento
SELECT i, (ARRAY['pix', 'cartao', 'boleto'])[1 + mod(i, 3)],
       TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL '13 minutes',
       round((5 + mod(i * 31, 90000) / 100.0)::numeric, 2)
FROM generate_series(1, 50000) AS i
"""

VIEW = """
CREATE VIEW vendas_detalhe AS
SELECT p.id, l.nome AS loja, l.cidade, pr.categoria, p.canal, p.status, p.criado_em,
       p.quantidade, p.valor
FROM vendas_pedido p JOIN vendas_loja l ON l.id = p.loja_id
JOIN vendas_produto pr ON pr.id = p.produto_id
"""


def _pedidos_sql(first: int, last: int) -> str:
    return f"""
INSERT INTO vendas_pedido
SELECT i,
       1 + mod(i * 7, 8),
       1 + mod(i * 13, 20),
       DATE '2024-01-01' + mod(i, 540),
       CASE WHEN mod(i, 10) < 5 THEN 'balcao' WHEN mod(i, 10) < 8 THEN 'site' ELSE 'app' END,
       CASE WHEN mod(i, 17) = 0 THEN 'cancelado' ELSE 'pago' END,
       1 + mod(i, 5),
       round((10 + mod(i * 37, 50000) / 100.0 + (1 + mod(i * 7, 8)) * 3)::numeric, 2),
       'cliente' || mod(i, 5000) || '@example.com'
FROM generate_series({first}, {last}) AS i
"""  # noqa: S608 - numbers, no input


def build_postgres(
    url: str,
    rows: int = 300_000,
    *,
    chunk: int = 1_000_000,
    progress: Callable[[int], None] | None = None,
) -> None:
    """The schema, ``rows`` orders and the views, in the (empty) database at ``url``; the
    orders go in ``chunk`` rows at a time, ``progress`` told the rows written after each."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.exec_driver_sql(statement)
            for i, (nome, cidade) in enumerate(LOJAS, start=1):
                conn.exec_driver_sql(
                    "INSERT INTO vendas_loja VALUES (%s, %s, %s)", (i, nome, cidade)
                )
            for i in range(1, 21):
                categoria = CATEGORIAS[i % len(CATEGORIAS)]
                conn.exec_driver_sql(
                    "INSERT INTO vendas_produto VALUES (%s, %s, %s, %s)",
                    (i, f"produto {i}", categoria, 5 + i),
                )
            for first in range(1, rows + 1, chunk):
                last = min(rows, first + chunk - 1)
                conn.exec_driver_sql(_pedidos_sql(first, last))
                if progress is not None:
                    progress(last)
            conn.exec_driver_sql("INSERT INTO auth_user VALUES (1, 'admin', 'pbkdf2$secret')")
            conn.exec_driver_sql(PAGAMENTOS)
            conn.exec_driver_sql(VIEW)
            conn.exec_driver_sql(
                "CREATE VIEW vendas_lenta AS SELECT canal, valor FROM vendas_pedido "
                "WHERE pg_sleep(0.01) IS NOT NULL"
            )
            conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()


def build_sqlite(path: Path, rows: int = 5_000) -> None:
    """A small copy of the shop in a SQLite file (orders only, with the store's name)."""
    con = sqlite3.connect(path)
    try:
        con.execute(
            "CREATE TABLE vendas_pedido (id INTEGER PRIMARY KEY, loja TEXT NOT NULL, "
            "canal TEXT NOT NULL, criado_em DATE NOT NULL, quantidade INTEGER NOT NULL, "
            "valor REAL NOT NULL)"
        )
        con.execute("CREATE TABLE auth_user (id INTEGER PRIMARY KEY, password TEXT)")
        con.executemany(
            "INSERT INTO vendas_pedido VALUES (?, ?, ?, date('2024-01-01', ?), ?, ?)",
            [
                (
                    i,
                    LOJAS[(i * 7) % 8][0],
                    "site" if i % 3 else "balcao",
                    f"+{i % 365} days",
                    1 + i % 5,
                    round(10 + ((i * 37) % 5000) / 100.0, 2),
                )
                for i in range(1, rows + 1)
            ],
        )
        con.commit()
    finally:
        con.close()


def build_sqlite_django(path: Path, rows: int = 5_000) -> None:
    """The shop as Django makes it in SQLite: stores (``vendas_loja``) and orders
    (``vendas_pedido``) with a foreign key ``loja_id``, and ``vendas_cidade``, whose ``uf``
    is not unique (a join on it would count orders twice)."""
    con = sqlite3.connect(path)
    try:
        con.execute(
            "CREATE TABLE vendas_loja (id INTEGER PRIMARY KEY, nome TEXT NOT NULL, "
            "cidade TEXT NOT NULL)"
        )
        con.execute("CREATE TABLE vendas_cidade (nome TEXT, uf TEXT)")
        con.execute(
            "CREATE TABLE vendas_pedido (id INTEGER PRIMARY KEY, "
            "loja_id INTEGER NOT NULL REFERENCES vendas_loja (id), canal TEXT NOT NULL, "
            "criado_em DATE NOT NULL, valor REAL NOT NULL, uf TEXT)"
        )
        con.executemany(
            "INSERT INTO vendas_loja VALUES (?, ?, ?)",
            [(i, nome, cidade) for i, (nome, cidade) in enumerate(LOJAS, start=1)],
        )
        con.executemany(
            "INSERT INTO vendas_cidade VALUES (?, ?)",
            [("São Paulo", "SP"), ("Campinas", "SP"), ("Recife", "PE")],
        )
        con.executemany(
            "INSERT INTO vendas_pedido VALUES (?, ?, ?, date('2024-01-01', ?), ?, ?)",
            [
                (
                    i,
                    1 + (i * 7) % 8,
                    "site" if i % 3 else "balcao",
                    f"+{i % 365} days",
                    round(10 + ((i * 37) % 5000) / 100.0, 2),
                    "SP" if i % 2 else "PE",
                )
                for i in range(1, rows + 1)
            ],
        )
        con.commit()
    finally:
        con.close()


MYSQL_SCHEMA = """
CREATE TABLE vendas_loja (
    id integer PRIMARY KEY, nome varchar(100) NOT NULL, cidade varchar(100) NOT NULL
);
CREATE TABLE vendas_produto (
    id integer PRIMARY KEY, nome varchar(100) NOT NULL, categoria varchar(50) NOT NULL,
    preco decimal(10, 2)
);
CREATE TABLE vendas_pedido (
    id bigint PRIMARY KEY,
    loja_id integer NOT NULL,
    produto_id integer NOT NULL,
    criado_em date NOT NULL,
    canal varchar(20) NOT NULL,
    status varchar(20) NOT NULL,
    pago tinyint(1) NOT NULL,
    quantidade integer NOT NULL,
    valor decimal(12, 2) NOT NULL,
    cliente_email varchar(254) NOT NULL,
    CONSTRAINT pedido_loja FOREIGN KEY (loja_id) REFERENCES vendas_loja (id),
    CONSTRAINT pedido_produto FOREIGN KEY (produto_id) REFERENCES vendas_produto (id)
);
CREATE TABLE auth_user (id integer PRIMARY KEY, username text, password text);
CREATE TABLE vendas_pagamento (
    id integer PRIMARY KEY, metodo varchar(20) NOT NULL, pago_em datetime(6) NOT NULL,
    valor decimal(12, 2) NOT NULL
);
CREATE TABLE digits (d integer PRIMARY KEY)
"""

# 1..100,000 from five copies of the digits (MySQL has no generate_series).
_MYSQL_NUMBERS = (
    "SELECT 1 + a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d AS i "
    "FROM digits a, digits b, digits c, digits e, digits f"
)


def build_mysql(url: str, rows: int = 50_000) -> None:
    """The shop of :func:`build_postgres` in the (empty) MySQL/MariaDB database at ``url``:
    the same stores, products and order formulas (at most 100,000 orders), a Django
    BooleanField ``pago`` (TINYINT(1)), payments every 13 minutes (DATETIME(6)), the view
    ``vendas_detalhe`` and a view that sleeps 10 ms a row (``vendas_lenta``)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in MYSQL_SCHEMA.split(";"):
                conn.exec_driver_sql(statement)
            conn.exec_driver_sql("INSERT INTO digits VALUES (%s)", [(d,) for d in range(10)])
            conn.exec_driver_sql(
                "INSERT INTO vendas_loja VALUES (%s, %s, %s)",
                [(i, nome, cidade) for i, (nome, cidade) in enumerate(LOJAS, start=1)],
            )
            conn.exec_driver_sql(
                "INSERT INTO vendas_produto VALUES (%s, %s, %s, %s)",
                [(i, f"produto {i}", CATEGORIAS[i % 4], 5 + i) for i in range(1, 21)],
            )
            conn.exec_driver_sql(
                f"""
INSERT INTO vendas_pedido
SELECT i, 1 + MOD(i * 7, 8), 1 + MOD(i * 13, 20),
       DATE '2024-01-01' + INTERVAL MOD(i, 540) DAY,
       CASE WHEN MOD(i, 10) < 5 THEN 'balcao' WHEN MOD(i, 10) < 8 THEN 'site' ELSE 'app' END,
       CASE WHEN MOD(i, 17) = 0 THEN 'cancelado' ELSE 'pago' END,
       MOD(i, 17) <> 0,
       1 + MOD(i, 5),
       ROUND(10 + MOD(i * 37, 50000) / 100.0 + (1 + MOD(i * 7, 8)) * 3, 2),
       CONCAT('cliente', MOD(i, 5000), '@example.com')
FROM ({_MYSQL_NUMBERS}) AS n WHERE i <= {int(rows)}
"""  # noqa: S608 - numbers, no input
            )
            conn.exec_driver_sql(
                f"""
INSERT INTO vendas_pagamento
SELECT i, ELT(1 + MOD(i, 3), 'pix', 'cartao', 'boleto'),
       TIMESTAMP '2024-01-01 00:00:00' + INTERVAL i * 13 MINUTE,
       ROUND(5 + MOD(i * 31, 90000) / 100.0, 2)
FROM ({_MYSQL_NUMBERS}) AS n WHERE i <= 20000
"""  # noqa: S608 - numbers, no input
            )
            conn.exec_driver_sql("INSERT INTO auth_user VALUES (1, 'admin', 'pbkdf2$secret')")
            conn.exec_driver_sql(
                "CREATE VIEW vendas_detalhe AS SELECT p.id, l.nome AS loja, l.cidade, "
                "pr.categoria, p.canal, p.status, p.criado_em, p.quantidade, p.valor "
                "FROM vendas_pedido p JOIN vendas_loja l ON l.id = p.loja_id "
                "JOIN vendas_produto pr ON pr.id = p.produto_id"
            )
            conn.exec_driver_sql(
                "CREATE VIEW vendas_lenta AS SELECT canal, valor FROM vendas_pedido "
                "WHERE SLEEP(0.01) = 0"
            )
            conn.exec_driver_sql("ANALYZE TABLE vendas_pedido, vendas_loja, vendas_produto")
    finally:
        engine.dispose()


# --- configuration and checks shared by the source tests and the benchmark ---------------------

Table = str | tuple[str, dict[str, object]]  # a name, or a name and its options


def source_toml(
    name: str,
    tables: Sequence[Table],
    joins: Sequence[tuple[str, str]] = (),
    **options: object,
) -> str:
    """One ``[[sources]]`` entry of billumy.toml: ``options`` (``url_env``, ``url``,
    ``statement_timeout``...), its ``tables`` (a name, or a name and its ``columns``/``mask``)
    and its declared ``joins`` (``("vendas_pedido.loja_id", "vendas_loja.id")``)."""
    lines = ["[[sources]]", f"name = {_toml(name)}"]
    lines += [f"{key} = {_toml(value)}" for key, value in options.items()]
    for table in tables:
        table_name, table_options = (table, {}) if isinstance(table, str) else table
        lines += ["", "[[sources.tables]]", f"name = {_toml(table_name)}"]
        lines += [f"{key} = {_toml(value)}" for key, value in table_options.items()]
    for start, end in joins:
        lines += ["", "[[sources.joins]]", f"from = {_toml(start)}", f"to = {_toml(end)}"]
    return "\n".join(lines) + "\n\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def down_and_dev_sources(closed: int, sqlite_path: Path) -> str:
    """Two more entries: ``down``, a PostgreSQL at a ``closed`` port (its password must never
    show), and ``dev``, the shop's SQLite file."""
    return source_toml(
        "down",
        ["vendas_pedido"],
        url=f"postgresql://postgres:hunter2@127.0.0.1:{closed}/nothing",
        connect_timeout=2,
    ) + source_toml("dev", ["vendas_pedido"], url=f"sqlite:///{sqlite_path}")


# The shop's declared foreign keys, as a Django app has them.
SHOP_JOINS = (
    ("vendas_pedido.loja_id", "vendas_loja.id"),
    ("vendas_pedido.produto_id", "vendas_produto.id"),
)


def ask(srv: Any, **body: Any) -> httpx.Response:
    """``POST /api/insights`` without narrative on a test server (``tests.e2e.server``)."""
    return httpx.post(
        srv.url + "/api/insights",
        json={"narrative": False, **body},
        headers=srv.headers,
        timeout=120,
    )


def direct(engine: sa.Engine, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` run on the source database itself."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql).fetchall()]


def close(a: Any, b: Any) -> bool:
    return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))
