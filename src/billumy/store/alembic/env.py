"""Alembic's environment for the SQL store.

Billumy runs Alembic on a connection it has already opened, in a transaction that holds the
schema lock (:func:`billumy.store.schema.upgrade`); the migrations run inside that transaction.
Run by the ``alembic`` command itself (``alembic.ini`` at the repository root, for writing new
revisions with ``alembic revision --autogenerate``), it opens the database that
``billumy serve`` would use and takes the same lock.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from billumy.store import schema


def run(connection: Connection) -> None:
    context.configure(connection=connection, **schema.context_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone() -> None:
    from billumy.settings import Settings
    from billumy.store.sql import open_engine, writer_of

    engine = open_engine(Settings().resolved_database_url)
    try:
        async with writer_of(engine).begin() as conn:
            await schema.lock(conn)
            await conn.run_sync(run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Billumy's schema revisions run online only (no --sql)")
shared = context.config.attributes.get("connection")
if shared is not None:
    run(shared)
else:
    asyncio.run(run_standalone())
