"""FROZEN: the hand-written schema migrations of the release before Alembic, kept verbatim
(once src/billumy/store/migrations.py) so that tests/store/test_schema.py can make the databases
that release made and check that this one takes them over. Never edit; nothing in the package
imports it.

Versioned schema migrations for the SQL store (SQLite and PostgreSQL).

Each :class:`Migration` has a version, a description and its DDL per dialect; the versions
applied are recorded in ``schema_migrations``. :func:`migrate` applies the missing ones, in
order, in one transaction that holds a database-wide lock, so several processes starting at
once are safe: one migrates, the others wait and then find nothing left to do.

* PostgreSQL: ``pg_advisory_xact_lock`` is the first statement of the transaction (concurrent
  ``CREATE TABLE IF NOT EXISTS`` is not safe there without it); the lock ends with it.
* SQLite: the transaction starts with ``BEGIN IMMEDIATE`` (the store's engine does that for
  its writer, see :mod:`billumy.store.sql`), so the write lock is taken before anything is
  read; the others wait on ``busy_timeout``. DDL is transactional in both databases.

Migrations are never edited once released: a change to the schema is a new migration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from billumy.errors import BillumyError

# Any fixed number, the same in every process of every release.
ADVISORY_LOCK_KEY = 7306518947


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]

    def statements(self, dialect: str) -> tuple[str, ...]:
        if dialect == "sqlite":
            return self.sqlite
        if dialect == "postgresql":
            return self.postgresql
        raise BillumyError(f"no migrations for the {dialect!r} dialect")


schema_migrations = Table(
    "schema_migrations",
    MetaData(),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

_CREATE_SCHEMA_MIGRATIONS = {
    "sqlite": """CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER NOT NULL PRIMARY KEY,
        description TEXT NOT NULL,
        applied_at DATETIME NOT NULL
    )""",
    "postgresql": """CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER NOT NULL PRIMARY KEY,
        description TEXT NOT NULL,
        applied_at TIMESTAMP WITH TIME ZONE NOT NULL
    )""",
}


def _keys_and_models(timestamp: str) -> tuple[str, ...]:
    # Exactly what metadata.create_all made before migrations existed, so that databases
    # created back then (tables present, no schema_migrations) upgrade as a no-op.
    return (
        f"""CREATE TABLE IF NOT EXISTS api_keys (
            id VARCHAR(32) NOT NULL,
            name VARCHAR(200) NOT NULL,
            prefix VARCHAR(16) NOT NULL,
            key_hash VARCHAR(64) NOT NULL,
            tenant VARCHAR(200) NOT NULL,
            scopes TEXT NOT NULL,
            created_at {timestamp} NOT NULL,
            last_used_at {timestamp},
            revoked_at {timestamp},
            PRIMARY KEY (id),
            UNIQUE (key_hash)
        )""",
        f"""CREATE TABLE IF NOT EXISTS models (
            name VARCHAR(300) NOT NULL,
            definition JSON NOT NULL,
            created_at {timestamp} NOT NULL,
            modified_at {timestamp} NOT NULL,
            PRIMARY KEY (name)
        )""",
    )


# Chats and messages. Full-text search (see sql_chats.py for the queries):
# SQLite: two external-content FTS5 tables over chats.title and messages.content, keyed by
#   the rowid of those tables and kept in sync by triggers (FK cascades fire them too);
#   unicode61 folds case and keeps accents, like PostgreSQL's 'simple' configuration.
#   Should rowids ever change (a VACUUM may renumber tables without an INTEGER PRIMARY KEY),
#   INSERT INTO messages_fts(messages_fts) VALUES('rebuild') (and chats_fts) repairs them.
# PostgreSQL: stored generated tsvector columns with GIN indexes. to_tsvector fails past
#   1 MB of lexemes, so only the first 100,000 characters of a text are indexed.
_CHATS_SQLITE = (
    """CREATE TABLE chats (
        id TEXT NOT NULL PRIMARY KEY,
        tenant TEXT NOT NULL,
        user_id TEXT NOT NULL,
        title TEXT,
        model TEXT NOT NULL,
        tags JSON NOT NULL DEFAULT '[]',
        metadata JSON NOT NULL DEFAULT '{}',
        archived BOOLEAN NOT NULL DEFAULT 0,
        message_count INTEGER NOT NULL DEFAULT 0,
        created_at DATETIME NOT NULL,
        updated_at DATETIME NOT NULL
    )""",
    "CREATE INDEX chats_tenant_user_created ON chats (tenant, user_id, created_at DESC, id DESC)",
    "CREATE INDEX chats_tenant_created ON chats (tenant, created_at DESC, id DESC)",
    """CREATE TABLE messages (
        id TEXT NOT NULL PRIMARY KEY,
        chat_id TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        model TEXT,
        incomplete BOOLEAN NOT NULL DEFAULT 0,
        done_reason TEXT,
        stats JSON NOT NULL DEFAULT '{}',
        created_at DATETIME NOT NULL,
        UNIQUE (chat_id, seq)
    )""",
    """CREATE VIRTUAL TABLE chats_fts USING fts5(
        title, content='chats', content_rowid='rowid', tokenize='unicode61 remove_diacritics 0'
    )""",
    """CREATE TRIGGER chats_fts_insert AFTER INSERT ON chats BEGIN
        INSERT INTO chats_fts (rowid, title) VALUES (new.rowid, new.title);
    END""",
    """CREATE TRIGGER chats_fts_delete AFTER DELETE ON chats BEGIN
        INSERT INTO chats_fts (chats_fts, rowid, title) VALUES ('delete', old.rowid, old.title);
    END""",
    # One trigger, not two: SQLite gives no order between triggers on the same event.
    """CREATE TRIGGER chats_fts_update AFTER UPDATE OF title ON chats BEGIN
        INSERT INTO chats_fts (chats_fts, rowid, title) VALUES ('delete', old.rowid, old.title);
        INSERT INTO chats_fts (rowid, title) VALUES (new.rowid, new.title);
    END""",
    """CREATE VIRTUAL TABLE messages_fts USING fts5(
        content, content='messages', content_rowid='rowid',
        tokenize='unicode61 remove_diacritics 0'
    )""",
    """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
    END""",
    """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content)
        VALUES ('delete', old.rowid, old.content);
    END""",
    """CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content)
        VALUES ('delete', old.rowid, old.content);
        INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
    END""",
)

_CHATS_POSTGRESQL = (
    """CREATE TABLE chats (
        id TEXT NOT NULL PRIMARY KEY,
        tenant TEXT NOT NULL,
        user_id TEXT NOT NULL,
        title TEXT,
        model TEXT NOT NULL,
        tags TEXT[] NOT NULL DEFAULT '{}',
        metadata JSONB NOT NULL DEFAULT '{}',
        archived BOOLEAN NOT NULL DEFAULT false,
        message_count INTEGER NOT NULL DEFAULT 0,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
        title_search TSVECTOR GENERATED ALWAYS AS
            (to_tsvector('simple', left(coalesce(title, ''), 100000))) STORED
    )""",
    "CREATE INDEX chats_tenant_user_created ON chats (tenant, user_id, created_at DESC, id DESC)",
    "CREATE INDEX chats_tenant_created ON chats (tenant, created_at DESC, id DESC)",
    "CREATE INDEX chats_tags ON chats USING GIN (tags)",
    "CREATE INDEX chats_title_search ON chats USING GIN (title_search)",
    """CREATE TABLE messages (
        id TEXT NOT NULL PRIMARY KEY,
        chat_id TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        model TEXT,
        incomplete BOOLEAN NOT NULL DEFAULT false,
        done_reason TEXT,
        stats JSONB NOT NULL DEFAULT '{}',
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        search TSVECTOR GENERATED ALWAYS AS
            (to_tsvector('simple', left(content, 100000))) STORED,
        UNIQUE (chat_id, seq)
    )""",
    "CREATE INDEX messages_search ON messages USING GIN (search)",
)


def _limits_and_usage(big: str) -> tuple[str, ...]:
    # Limits: NULL is the server default, 0 unlimited. Usage: one row per key, UTC day and
    # model, grown by INSERT ... ON CONFLICT DO UPDATE (see SQLStore.record_usage). No foreign
    # key to api_keys: keys are never deleted, and usage must be kept even if one were.
    return (
        "ALTER TABLE api_keys ADD COLUMN requests_per_minute INTEGER",
        f"ALTER TABLE api_keys ADD COLUMN tokens_per_day {big}",
        "ALTER TABLE api_keys ADD COLUMN parallel INTEGER",
        f"""CREATE TABLE usage (
            key_id VARCHAR(32) NOT NULL,
            day DATE NOT NULL,
            model VARCHAR(300) NOT NULL,
            requests {big} NOT NULL DEFAULT 0,
            prompt_tokens {big} NOT NULL DEFAULT 0,
            completion_tokens {big} NOT NULL DEFAULT 0,
            PRIMARY KEY (key_id, day, model)
        )""",
        # Listing every key's usage since a day walks this rather than the whole table.
        "CREATE INDEX usage_day ON usage (day)",
    )


# The summary folds in every non-system message up to seq summary_upto (0: no summary yet).
_SUMMARY = (
    "ALTER TABLE chats ADD COLUMN summary TEXT",
    "ALTER TABLE chats ADD COLUMN summary_upto INTEGER NOT NULL DEFAULT 0",
)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "API keys and created models",
        sqlite=_keys_and_models("DATETIME"),
        postgresql=_keys_and_models("TIMESTAMP WITH TIME ZONE"),
    ),
    Migration(
        2,
        "chats and messages, with full-text search",
        sqlite=_CHATS_SQLITE,
        postgresql=_CHATS_POSTGRESQL,
    ),
    Migration(
        3,
        "limits per API key and usage per key, day and model",
        sqlite=_limits_and_usage("INTEGER"),
        postgresql=_limits_and_usage("BIGINT"),
    ),
    Migration(
        4,
        "running summary of each chat's older turns",
        sqlite=_SUMMARY,
        postgresql=_SUMMARY,
    ),
)


async def applied_versions(conn: AsyncConnection) -> list[int]:
    """The versions recorded in ``schema_migrations`` (the table must exist)."""
    query = select(schema_migrations.c.version).order_by(schema_migrations.c.version)
    return list((await conn.execute(query)).scalars())


async def migrate(writer: AsyncEngine, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the migrations missing from the database, in order and all-or-nothing.

    ``writer`` must start SQLite transactions with ``BEGIN IMMEDIATE`` (SQLStore's writer
    engine does). Returns the versions applied by this call (empty when up to date). Raises
    BillumyError when the database was migrated by a newer release.
    """
    dialect = writer.dialect.name
    async with writer.begin() as conn:
        if dialect == "postgresql":
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
        await conn.exec_driver_sql(_CREATE_SCHEMA_MIGRATIONS[dialect])
        done = set(await applied_versions(conn))
        known = {m.version for m in migrations}
        if newer := sorted(done - known):
            raise BillumyError(
                f"the database schema has migration(s) {newer} that this Billumy does not "
                f"know (it knows up to {max(known)}): upgrade Billumy"
            )
        applied = []
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            for statement in migration.statements(dialect):
                await conn.exec_driver_sql(statement)
            await conn.execute(
                insert(schema_migrations).values(
                    version=migration.version,
                    description=migration.description,
                    applied_at=datetime.now(UTC),
                )
            )
            applied.append(migration.version)
    return applied
