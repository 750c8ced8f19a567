"""The SQL store's tables of keys, models and usage, as SQLAlchemy metadata.

:mod:`billumy.store.sql` reads and writes them; :mod:`billumy.store.schema` makes the schema
from them, beside the tables of :mod:`billumy.store.sql_chats` and
:mod:`billumy.store.sql_datasets`. They live apart from the store so that the schema can
import them without importing the store, which upgrades the schema at start-up.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = ["api_keys", "key_usage", "metadata", "models"]

metadata = MetaData()

# SQLite's INTEGER is 64-bit already, and what its tables have always used.
_big = BigInteger().with_variant(Integer(), "sqlite")

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("tenant", String(200), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("requests_per_minute", Integer),
    Column("tokens_per_day", _big),
    Column("parallel", Integer),
)

# Keyed by owner and name: a tenant's id, or '' (base.SHARED) for a shared model.
models = Table(
    "models",
    metadata,
    Column("owner", String(200), primary_key=True),
    Column("name", String(300), primary_key=True),
    Column("definition", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("modified_at", DateTime(timezone=True), nullable=False),
)

# Limits: NULL is the server default, 0 unlimited. Usage: one row per key, UTC day and model,
# grown by INSERT ... ON CONFLICT DO UPDATE (see SQLStore.record_usage). No foreign key to
# api_keys: keys are never deleted, and usage must be kept even if one were.
key_usage = Table(
    "usage",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("model", String(300), primary_key=True),
    Column("requests", _big, nullable=False, server_default="0"),
    Column("prompt_tokens", _big, nullable=False, server_default="0"),
    Column("completion_tokens", _big, nullable=False, server_default="0"),
    # Listing every key's usage since a day walks this rather than the whole table.
    Index("usage_day", "day"),
)
