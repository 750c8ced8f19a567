"""Baseline: keys, models, usage, chats and messages, with full-text search.

Revision ID: 0001
Revises:
Create Date: 2026-12-06

Made by autogenerate from the metadata, then the hand-written steps that the metadata cannot
describe (named in billumy.store.schema: FTS_TABLES, UNMODELLED_*): the full-text search
indexes, and the default of chats.tags, which differs per dialect. This is the schema that
version 4 of the former hand-written migrations made, so a database of that release is stamped
here as it is.

Full-text search (see sql_chats.py for the queries):
SQLite: two external-content FTS5 tables over chats.title and messages.content, keyed by the
  rowid of those tables and kept in sync by triggers (FK cascades fire them too); unicode61
  folds case and keeps accents, like PostgreSQL's 'simple' configuration. Should rowids ever
  change (a VACUUM may renumber tables without an INTEGER PRIMARY KEY),
  INSERT INTO messages_fts(messages_fts) VALUES('rebuild') (and chats_fts) repairs them.
PostgreSQL: stored generated tsvector columns with GIN indexes. to_tsvector fails past 1 MB of
  lexemes, so only the first 100,000 characters of a text are indexed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

_FTS_SQLITE = (
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

_FTS_POSTGRESQL = (
    """ALTER TABLE chats ADD COLUMN title_search TSVECTOR GENERATED ALWAYS AS
        (to_tsvector('simple', left(coalesce(title, ''), 100000))) STORED""",
    "CREATE INDEX chats_title_search ON chats USING GIN (title_search)",
    """ALTER TABLE messages ADD COLUMN search TSVECTOR GENERATED ALWAYS AS
        (to_tsvector('simple', left(content, 100000))) STORED""",
    "CREATE INDEX messages_search ON messages USING GIN (search)",
    "CREATE INDEX chats_tags ON chats USING GIN (tags)",
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("tokens_per_day", _BIG, nullable=True),
        sa.Column("parallel", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_table(
        "models",
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "usage",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("requests", _BIG, server_default="0", nullable=False),
        sa.Column("prompt_tokens", _BIG, server_default="0", nullable=False),
        sa.Column("completion_tokens", _BIG, server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("key_id", "day", "model"),
    )
    op.create_index("usage_day", "usage", ["day"], unique=False)
    op.create_table(
        "chats",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql"),
            # Hand-written: an empty JSON list (SQLite), an empty text[] (PostgreSQL).
            server_default="[]" if sqlite else "{}",
            nullable=False,
        ),
        sa.Column("metadata", _JSON, server_default="{}", nullable=False),
        sa.Column("archived", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("message_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("summary_upto", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "chats_tenant_created",
        "chats",
        ["tenant", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index(
        "chats_tenant_user_created",
        "chats",
        [
            "tenant",
            "user_id",
            sa.literal_column("created_at DESC"),
            sa.literal_column("id DESC"),
        ],
        unique=False,
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("chat_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("incomplete", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("done_reason", sa.Text(), nullable=True),
        sa.Column("stats", _JSON, server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["chat_id"], ["chats.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chat_id", "seq"),
    )
    # Hand-written: the full-text search indexes (see the module docstring).
    for statement in _FTS_SQLITE if sqlite else _FTS_POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE messages_fts")  # the triggers go with their tables
        op.execute("DROP TABLE chats_fts")
    op.drop_table("messages")
    op.drop_table("chats")
    op.drop_table("usage")
    op.drop_table("models")
    op.drop_table("api_keys")
