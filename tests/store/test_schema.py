"""The SQL schema under Alembic (billumy.store.schema), on SQLite and the real PostgreSQL.

A fresh database gets the whole schema; the metadata and the revisions agree (the compare that
``alembic check`` runs); a database made by the previous release, with its hand-written
migrations (frozen in tests/legacy_migrations.py) and rows in every table, is taken over
with no row lost and no table recreated; concurrent starts, in one process and in several,
upgrade once.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from billumy.errors import BillumyError
from billumy.store import schema
from billumy.store.base import SHARED, Chat, ModelRecord, UsageRecord
from billumy.store.sql import SQLStore, open_engine, writer_of
from tests import legacy_migrations
from tests.e2e.test_cli import BIN, cli_env
from tests.store.test_contract import (
    BASE_TIME,
    TENANT,
    _pg_database,
    answer,
    key_record,
    new_chat,
    pg_user,  # noqa: F401 (the fixture sql_url asks for)
    user,
    with_sql_stores,
)

T = TypeVar("T")
DAY = date(2026, 3, 4)
HEAD = schema.head()


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, or a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield "sqlite+aiosqlite:///" + str(tmp_path / "store.db")
    else:
        yield from _pg_database(request.getfixturevalue("pg_user"))


def on_engine(url: str, body: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``body`` with the writer of a fresh engine on ``url``, then dispose of it."""

    async def main() -> T:
        engine = open_engine(url)
        try:
            return await body(writer_of(engine))
        finally:
            await engine.dispose()

    return asyncio.run(main())


async def sync(engine: AsyncEngine, work: Callable[[Connection], T]) -> T:
    async with engine.connect() as conn:
        return await conn.run_sync(work)


def tables(conn: Connection) -> list[str]:
    return sorted(inspect(conn).get_table_names())


def shape(conn: Connection) -> dict[str, Any]:
    """Every schema object by name, with the columns of each table: for comparing databases."""
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("SELECT type, name, tbl_name FROM sqlite_master").all()
        objects = sorted((r[0], r[1], r[2]) for r in rows if not r[1].startswith("sqlite_"))
    else:
        rows = conn.exec_driver_sql(
            "SELECT c.relkind::text, c.relname, coalesce(t.relname, c.relname)"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_index i ON i.indexrelid = c.oid"
            " LEFT JOIN pg_class t ON t.oid = i.indrelid"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')"
        ).all()
        # Unnamed constraints' indexes are named by PostgreSQL the same way in both databases.
        objects = sorted((r[0], r[1], r[2]) for r in rows)
    inspector = inspect(conn)
    columns = {
        t: sorted(c["name"] for c in inspector.get_columns(t)) for t in inspector.get_table_names()
    }
    return {"objects": objects, "columns": columns}


def identities(conn: Connection) -> dict[str, int]:
    """A number per table that a recreated or copied table would not keep."""
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(
            "SELECT name, rootpage FROM sqlite_master WHERE type = 'table'"
        ).all()
    else:
        rows = conn.exec_driver_sql(
            "SELECT relname, oid::bigint FROM pg_class WHERE relkind = 'r'"
            " AND relnamespace = 'public'::regnamespace"
        ).all()
    return {r[0]: int(r[1]) for r in rows}


# A fresh database


def test_a_fresh_database_gets_the_whole_schema(sql_url: str) -> None:
    async def body(store: SQLStore) -> None:
        await store.ainit()
        found = await schema.state(store.engine)
        assert (found.current, found.legacy, found.up_to_date) == ((HEAD,), None, True)
        assert await sync(store.engine, schema.differences) == []
        assert await schema.check(store.engine) == []
        assert await sync(store.engine, _primary_key) == ["owner", "name"]
        names = await sync(store.engine, shape)
        if store.engine.dialect.name == "sqlite":
            triggers = {o[1] for o in names["objects"] if o[0] == "trigger"}
            assert triggers == {
                f"{t}_fts_{event}"
                for t in ("chats", "messages")
                for event in ("insert", "delete", "update")
            }
        else:
            assert "title_search" in names["columns"]["chats"]
            assert "search" in names["columns"]["messages"]
            indexes = {o[1] for o in names["objects"] if o[0] == "i"}
            assert indexes >= schema.UNMODELLED_INDEXES
        assert {"chats_tenant_created", "chats_tenant_user_created", "usage_day"} <= {
            o[1] for o in names["objects"]
        }
        # The hand-written search works on the fresh schema.
        await store.create_chat(new_chat("c", title="Quarterly"), [user("revenue by region")])
        assert [c.id for c in await store.list_chats(TENANT, q="region")] == ["c"]
        assert [c.id for c in await store.list_chats(TENANT, q="quarterly")] == ["c"]
        # A second start finds nothing to do.
        await store.ainit()
        assert await schema.upgrade(store.writer) == schema.Upgrade((HEAD,), (HEAD,), False)

    with_sql_stores(sql_url, 1, body)


def test_check_finds_what_differs(sql_url: str) -> None:
    # The compare is not blind: a column the metadata lacks and an index it has that the
    # database lost are both reported.
    async def body(writer: AsyncEngine) -> None:
        await schema.upgrade(writer)
        async with writer.begin() as conn:
            await conn.execute(text("ALTER TABLE api_keys ADD COLUMN stray INTEGER"))
            await conn.execute(text("DROP INDEX usage_day"))
        found = await schema.check(writer)
        assert sorted(found) == ["add_index usage_day on usage", "remove_column api_keys.stray"]

    on_engine(sql_url, body)


def test_check_needs_the_newest_revision(sql_url: str) -> None:
    async def body(writer: AsyncEngine) -> None:
        with pytest.raises(BillumyError, match="billumy db upgrade"):
            await schema.check(writer)

    on_engine(sql_url, body)


# The previous release's databases


async def _insert_legacy_rows(conn: AsyncConnection, sqlite: bool) -> None:
    """Rows in every table, written with the previous release's columns."""
    record = KEY
    await conn.execute(
        text(
            "INSERT INTO api_keys (id, name, prefix, key_hash, tenant, scopes, created_at,"
            " requests_per_minute, tokens_per_day, parallel)"
            " VALUES (:id, :name, :prefix, :hash, :tenant, '[\"inference\"]', :at, 9, NULL, 2)"
        ),
        {
            "id": record.id,
            "name": record.name,
            "prefix": record.prefix,
            "hash": record.key_hash,
            "tenant": record.tenant,
            "at": BASE_TIME,
        },
    )
    await conn.execute(
        text(
            "INSERT INTO models (name, definition, created_at, modified_at)"
            " VALUES ('old:latest', '{\"base\": \"x\"}', :at, :at)"
        ),
        {"at": BASE_TIME},
    )
    await conn.execute(
        text(
            "INSERT INTO usage (key_id, day, model, requests, prompt_tokens, completion_tokens)"
            " VALUES (:id, :day, 'billumy:latest', 3, 30, 40)"
        ),
        {"id": record.id, "day": DAY},
    )
    await conn.execute(
        text(
            "INSERT INTO chats (id, tenant, user_id, title, model, tags, metadata, archived,"
            " message_count, created_at, updated_at, summary, summary_upto) VALUES ('c',"
            " :tenant, 'ana', 'Inventário', 'billumy', :tags, '{\"k\": 1}', false, 2, :at,"
            " :at, 'they said hello', 1)"
        ),
        {"tenant": TENANT, "tags": '["ops"]' if sqlite else ["ops"], "at": BASE_TIME},
    )
    for seq, role, content in ((1, "user", "hello warehouse"), (2, "assistant", "stock ok")):
        await conn.execute(
            text(
                "INSERT INTO messages (id, chat_id, seq, role, content, model, incomplete,"
                " done_reason, stats, created_at) VALUES (:id, 'c', :seq, :role, :content,"
                " NULL, false, NULL, '{}', :at)"
            ),
            {"id": f"m{seq}", "seq": seq, "role": role, "content": content, "at": BASE_TIME},
        )


KEY = key_record("legacy")


def _make_legacy(url: str, migrations: tuple[legacy_migrations.Migration, ...]) -> None:
    async def body(writer: AsyncEngine) -> None:
        assert await legacy_migrations.migrate(writer, migrations) == [
            m.version for m in migrations
        ]
        if len(migrations) == len(legacy_migrations.MIGRATIONS):
            async with writer.begin() as conn:
                await _insert_legacy_rows(conn, writer.dialect.name == "sqlite")

    on_engine(url, body)


def test_the_previous_release_database_is_taken_over(sql_url: str, tmp_path: Path) -> None:
    _make_legacy(sql_url, legacy_migrations.MIGRATIONS)
    before = on_engine(sql_url, lambda e: sync(e, identities))
    assert "schema_migrations" in before
    fresh_url = "sqlite+aiosqlite:///" + str(tmp_path / "fresh.db") if "sqlite" in sql_url else None

    found = on_engine(sql_url, schema.state)
    assert (found.current, found.legacy) == ((), [1, 2, 3, 4])

    async def body(store: SQLStore) -> dict[str, Any]:
        await store.ainit()
        found = await schema.state(store.engine)
        assert (found.current, found.legacy) == ((HEAD,), None)
        # No table recreated: each keeps its identity; the version table went, and the later
        # revisions' tables came.
        after = await sync(store.engine, identities)
        added = {k: after[k] for k in ("alembic_version", *schema.AFTER_BASELINE_TABLES)}
        assert after == {k: v for k, v in before.items() if k != "schema_migrations"} | added
        assert await sync(store.engine, schema.differences) == []
        # Every row is there, every field as written.
        key = await store.key_by_hash(KEY.key_hash)
        assert key is not None
        assert (key.id, key.name, key.scopes, key.created_at) == (
            KEY.id,
            KEY.name,
            ["inference"],
            BASE_TIME,
        )
        assert (key.requests_per_minute, key.tokens_per_day, key.parallel) == (9, None, 2)
        assert await store.list_models() == [
            ModelRecord("old:latest", {"base": "x"}, BASE_TIME, BASE_TIME)
        ]
        assert await store.usage() == [UsageRecord(KEY.id, DAY, "billumy:latest", 3, 30, 40)]
        chat = await store.get_chat(TENANT, "c")
        assert chat is not None
        assert isinstance(chat, Chat)
        assert (chat.title, chat.tags, chat.metadata, chat.message_count) == (
            "Inventário",
            ["ops"],
            {"k": 1},
            2,
        )
        assert (chat.summary, chat.summary_upto) == ("they said hello", 1)
        assert [(m.seq, m.content) for m in chat.messages] == [
            (1, "hello warehouse"),
            (2, "stock ok"),
        ]
        # The search indexes of the old rows carried over, and new rows are indexed too.
        assert [c.id for c in await store.list_chats(TENANT, q="warehouse")] == ["c"]
        assert [c.id for c in await store.list_chats(TENANT, q="inventário")] == ["c"]
        await store.create_chat(new_chat("d", at=1), [user("fresh words")])
        await store.append_messages(TENANT, "c", [answer("more stock")])
        assert [c.id for c in await store.list_chats(TENANT, q="stock")] == ["c"]
        await store.record_usage(KEY.id, "billumy:latest", 1, 2, day=DAY)
        assert await store.usage() == [UsageRecord(KEY.id, DAY, "billumy:latest", 4, 31, 42)]
        return await sync(store.engine, shape)

    upgraded = with_sql_stores(sql_url, 1, body)
    # The same schema objects and columns as a database made fresh by this release.
    if fresh_url is None:
        fresh_url = _other_pg_database(sql_url)
    try:
        on_engine(fresh_url, schema.upgrade)
        assert on_engine(fresh_url, lambda e: sync(e, shape)) == upgraded
    finally:
        if "postgresql" in fresh_url:
            _drop_pg_database(fresh_url)


def _other_pg_database(url: str) -> str:
    name = url.rsplit("/", 1)[1] + "_fresh"

    async def create(engine: AsyncEngine) -> None:
        conn = await engine.connect()
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await conn.close()

    on_engine(url, create)
    return url.rsplit("/", 1)[0] + "/" + name


def _drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]

    async def drop(engine: AsyncEngine) -> None:
        conn = await engine.connect()
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.close()

    on_engine(url.rsplit("/", 1)[0] + "/test", drop)


@pytest.mark.parametrize("versions", [1, 2, 3])
def test_older_hand_written_versions_are_refused_untouched(sql_url: str, versions: int) -> None:
    _make_legacy(sql_url, legacy_migrations.MIGRATIONS[:versions])
    before = on_engine(sql_url, lambda e: sync(e, shape))

    async def body(store: SQLStore) -> None:
        with pytest.raises(BillumyError, match=r"version\(s\) \[1.*previous release"):
            await store.ainit()
        assert await store.ping() is False  # left closed

    with_sql_stores(sql_url, 1, body)
    assert on_engine(sql_url, lambda e: sync(e, shape)) == before


def test_tables_without_any_version_are_refused(sql_url: str) -> None:
    # What SQLStore made before versioned schemas: migration 1's tables, no version table.
    async def legacy(writer: AsyncEngine) -> None:
        async with writer.begin() as conn:
            for statement in legacy_migrations.MIGRATIONS[0].statements(writer.dialect.name):
                await conn.exec_driver_sql(statement)

    on_engine(sql_url, legacy)

    async def body(store: SQLStore) -> None:
        with pytest.raises(BillumyError, match=r"\['api_keys', 'models'\] but no schema"):
            await store.ainit()

    with_sql_stores(sql_url, 1, body)
    assert on_engine(sql_url, lambda e: sync(e, tables)) == ["api_keys", "models"]


def test_a_newer_revision_is_refused(sql_url: str) -> None:
    async def body(first: SQLStore, second: SQLStore) -> None:
        await first.ainit()
        async with first.writer.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = 'from-the-future'"))
        with pytest.raises(BillumyError, match=r"'from-the-future'.*upgrade Billumy"):
            await second.ainit()
        assert await second.ping() is False

    with_sql_stores(sql_url, 2, body)


BROKEN = """
from alembic import op

revision = "broken"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE half (a INTEGER)")
    op.execute("ALTER TABLE api_keys ADD COLUMN half INTEGER")
    op.execute("CREATE TABLE broken (")


def downgrade() -> None:
    pass
"""


def test_a_failed_revision_leaves_no_trace(
    sql_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A later revision that fails half-way: the whole upgrade rolls back, DDL included.
    async def body(store: SQLStore) -> None:
        await store.ainit()
        script = tmp_path / "alembic"
        shutil.copytree(
            Path(schema.__file__).parent / "alembic",
            script,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        (script / "versions" / "v9999_broken.py").write_text(BROKEN.format(head=HEAD))
        monkeypatch.setattr(schema, "SCRIPT_LOCATION", str(script))
        with pytest.raises(Exception, match="broken"):
            await schema.upgrade(store.writer)
        found = await schema.state(store.engine)
        assert (found.current, found.head) == ((HEAD,), "broken")
        assert "half" not in await sync(store.engine, tables)
        assert await sync(store.engine, schema.differences) == []

    with_sql_stores(sql_url, 1, body)


# Concurrent starts


@pytest.mark.parametrize("legacy", [False, True], ids=["fresh", "previous-release"])
def test_concurrent_starts_in_one_process_upgrade_once(sql_url: str, legacy: bool) -> None:
    if legacy:
        _make_legacy(sql_url, legacy_migrations.MIGRATIONS)

    async def body(*stores: SQLStore) -> None:
        await asyncio.gather(*(store.ainit() for store in stores))
        assert await schema.check(stores[0].engine) == []
        await stores[0].create_chat(new_chat("n"), [user("hello")])
        chat = await stores[-1].get_chat(TENANT, "n")
        assert chat is not None
        assert chat.message_count == 1
        await stores[1].record_usage("k", "m", 1, 2, day=DAY)
        assert UsageRecord("k", DAY, "m", 1, 1, 2) in await stores[-1].usage()

    with_sql_stores(sql_url, 6, body)


@pytest.mark.parametrize("legacy", [False, True], ids=["fresh", "previous-release"])
def test_concurrent_upgrade_processes_upgrade_once(
    sql_url: str, legacy: bool, tmp_path: Path
) -> None:
    # Separate processes, all started before any has finished: the lock lets exactly one
    # create (or take over) the schema; the others wait and find it at the newest revision.
    if legacy:
        _make_legacy(sql_url, legacy_migrations.MIGRATIONS)
    env = cli_env(tmp_path / "data") | {"BILLUMY_DATABASE_URL": sql_url}
    procs = [
        subprocess.Popen(
            [str(BIN), "db", "upgrade"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    upgraded = [o for o in outputs if "schema upgraded from" in o]
    assert len(upgraded) == 1, outputs
    assert ("took over" in upgraded[0]) is legacy
    assert sum("already at the newest revision" in o for o in outputs) == 3, outputs
    assert on_engine(sql_url, schema.check) == []
    if legacy:
        key = with_sql_stores(sql_url, 1, _started_key)
        assert key == (KEY.id, 9)


async def _started_key(store: SQLStore) -> tuple[str, int | None]:
    await store.ainit()
    key = await store.key_by_hash(KEY.key_hash)
    assert key is not None
    return key.id, key.requests_per_minute


# The command line


def test_db_commands(sql_url: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data") | {"BILLUMY_DATABASE_URL": sql_url}

    def db(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN), "db", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    current = db("current")
    assert (current.returncode, current.stdout.split()[:3]) == (0, ["no", "schema", "yet"])
    assert db("check").returncode == 1
    upgrade = db("upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"schema upgraded from nothing to {HEAD}" in upgrade.stderr
    assert f"revision {HEAD} (newest: {HEAD}; up to date)" in db("current").stdout
    ok = db("check")
    assert (ok.returncode, ok.stderr.strip()) == (
        0,
        "the schema agrees with the tables this Billumy defines",
    )

    async def stray(writer: AsyncEngine) -> None:
        async with writer.begin() as conn:
            await conn.execute(text("ALTER TABLE models ADD COLUMN stray INTEGER"))

    on_engine(sql_url, stray)
    differs = db("check")
    assert differs.returncode == 1
    assert "differs: remove_column models.stray" in differs.stderr


def test_db_help_explains_itself(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data")
    for args, expected in [
        (("db", "--help"), ["upgrade", "current", "check", "Alembic", "MongoDB"]),
        (("db", "upgrade", "--help"), ["newest revision", "lock", "schema_migrations"]),
        (("db", "check", "--help"), ["alembic check", "Exit status 0"]),
    ]:
        shown = subprocess.run(
            [str(BIN), *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )
        assert shown.returncode == 0, shown.stderr
        text_ = " ".join(shown.stdout.split())
        for word in expected:
            assert word in text_, (args, word)


def test_a_mongodb_url_has_no_revisions(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data") | {"BILLUMY_DATABASE_URL": "mongodb://127.0.0.1:1/x"}
    shown = subprocess.run(
        [str(BIN), "db", "current"], capture_output=True, text=True, env=env, check=False
    )
    assert shown.returncode == 0
    assert "MongoDB has no schema revisions" in shown.stderr


# Revision 0003: models keyed by owner and name


def _at_revision(url: str, revision: str) -> None:
    async def body(writer: AsyncEngine) -> None:
        async with writer.begin() as conn:
            await schema.lock(conn)
            await conn.run_sync(lambda c: command.upgrade(schema.alembic_config(c), revision))

    on_engine(url, body)


def _primary_key(conn: Connection) -> list[str]:
    return list(inspect(conn).get_pk_constraint("models")["constrained_columns"])


def test_models_of_revision_0001_keep_their_owner_or_become_shared(sql_url: str) -> None:
    # A database at the baseline, as the previous release left it: one row per name, the
    # owner (if any) inside the definition.
    _at_revision(sql_url, schema.BASELINE)
    rows = {
        "old:latest": {"base": "x"},
        "acme-bot:latest": {"base": "x", "system": "Acme.", "owner": "acme"},
        "blank:latest": {"base": "x", "owner": None},
    }

    async def fill(writer: AsyncEngine) -> None:
        async with writer.begin() as conn:
            for name, definition in rows.items():
                await conn.execute(
                    text(
                        "INSERT INTO models (name, definition, created_at, modified_at)"
                        " VALUES (:name, :definition, :at, :at)"
                    ),
                    {"name": name, "definition": json.dumps(definition), "at": BASE_TIME},
                )

    on_engine(sql_url, fill)
    assert on_engine(sql_url, lambda e: sync(e, _primary_key)) == ["name"]

    assert on_engine(sql_url, schema.state).current == (schema.BASELINE,)

    async def body(store: SQLStore) -> None:
        await store.ainit()
        assert (await schema.state(store.engine)).current == (HEAD,)
        assert await sync(store.engine, schema.differences) == []
        assert await sync(store.engine, _primary_key) == ["owner", "name"]
        # Rows without an owner are shared, as they were served; the owner left the definition.
        assert [(m.owner, m.name, m.definition) for m in await store.list_models()] == [
            (SHARED, "blank:latest", {"base": "x"}),
            (SHARED, "old:latest", {"base": "x"}),
            ("acme", "acme-bot:latest", {"base": "x", "system": "Acme."}),
        ]
        # The new key: another owner may now hold a name that was taken.
        await store.put_model(ModelRecord(owner="globex", name="old:latest"))
        assert len(await store.list_models()) == 4

    with_sql_stores(sql_url, 1, body)


def test_the_model_owner_revision_downgrades(sql_url: str) -> None:
    async def body(store: SQLStore) -> None:
        await store.ainit()
        await store.put_model(ModelRecord(name="house:latest", definition={"base": "x"}))
        await store.put_model(ModelRecord(owner="acme", name="bot:latest", definition={}))
        await store.put_model(ModelRecord(owner="globex", name="bot:latest", definition={}))

    with_sql_stores(sql_url, 1, body)

    def downgrade(conn: Connection) -> None:
        command.downgrade(schema.alembic_config(conn), schema.BASELINE)

    async def refused(writer: AsyncEngine) -> None:
        # Two owners of one name do not fit the previous schema: refused, nothing changed.
        with pytest.raises(RuntimeError, match=r"several owners have models named \['bot"):
            async with writer.begin() as conn:
                await conn.run_sync(downgrade)
        assert (await schema.state(writer)).current == (HEAD,)

        async with writer.begin() as conn:
            await conn.execute(text("DELETE FROM models WHERE owner = 'globex'"))
        async with writer.begin() as conn:
            await conn.run_sync(downgrade)
        assert (await schema.state(writer)).current == (schema.BASELINE,)
        assert await sync(writer, _primary_key) == ["name"]
        async with writer.connect() as conn:
            found = (await conn.execute(text("SELECT name, definition FROM models"))).all()
        definitions = {name: d if isinstance(d, dict) else json.loads(d) for name, d in found}
        assert definitions == {"house:latest": {"base": "x"}, "bot:latest": {"owner": "acme"}}

    on_engine(sql_url, refused)
