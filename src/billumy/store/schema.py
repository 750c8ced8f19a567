"""The SQL store's schema, versioned with Alembic (SQLite and PostgreSQL).

The tables are written once, as SQLAlchemy metadata (:mod:`billumy.store.sql_tables`,
:mod:`billumy.store.sql_chats`, :mod:`billumy.store.sql_datasets`). The revisions under
``store/alembic/versions`` are made from it by autogenerate, plus hand-written steps for what
the metadata cannot describe: the full-text indexes (SQLite FTS5 tables and their triggers,
PostgreSQL tsvector columns and GIN indexes). Those are named here (``FTS_TABLES``,
``UNMODELLED_*``) so that the compare of metadata and database (:func:`differences`, what
``alembic check`` does) leaves them out.

:func:`upgrade` runs at start-up and by ``billumy db upgrade``, in one transaction that holds a
database-wide lock, so several processes starting at once are safe: one upgrades, the others
wait and then find nothing left to do.

* PostgreSQL: ``pg_advisory_xact_lock`` is the first statement of the transaction; the lock
  ends with it. The key is the one the hand-written migrations took, so a process of the
  previous release starting beside one of this release waits for it too.
* SQLite: the transaction starts with ``BEGIN IMMEDIATE`` (the store's writer engine does that,
  see :mod:`billumy.store.sql`), so the write lock is taken before anything is read; the others
  wait on ``busy_timeout``. DDL is transactional in both databases, so a failed upgrade leaves
  no trace.

A database made by the previous release carries ``schema_migrations`` (the hand-written
migrations' versions 1 to 4) instead of ``alembic_version``: its schema is the baseline
revision's, so it is checked against the metadata, stamped at the baseline and its
``schema_migrations`` dropped, all in the upgrade's transaction; no table is recreated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, MetaData, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from billumy.errors import BillumyError
from billumy.store.sql_chats import chat_metadata
from billumy.store.sql_datasets import dataset_metadata
from billumy.store.sql_tables import metadata

log = logging.getLogger(__name__)

# Any fixed number, the same in every process of every release (the previous one's too).
ADVISORY_LOCK_KEY = 7306518947

SCRIPT_LOCATION = "billumy.store:alembic"
# The first Alembic revision: the schema the hand-written migrations' version 4 had.
BASELINE = "0001"
LEGACY_TABLE = "schema_migrations"
LEGACY_VERSIONS = [1, 2, 3, 4]

# Made by hand in the revisions, not described by the metadata (see the module docstring).
# SQLite's FTS5 tables come with shadow tables named after them (chats_fts_data, ...).
FTS_TABLES = ("chats_fts", "messages_fts")
UNMODELLED_COLUMNS = frozenset({("chats", "title_search"), ("messages", "search")})
UNMODELLED_INDEXES = frozenset({"chats_tags", "chats_title_search", "messages_search"})
# Tables of later revisions: a database of the previous release lacks them before its upgrade.
AFTER_BASELINE_TABLES = frozenset(
    {"datasets", "dataset_versions", "dataset_chunks", "dataset_storage", "insights"}
)
# Server defaults that differ per dialect ('[]' on SQLite, '{}' on PostgreSQL).
UNMODELLED_DEFAULTS = frozenset({("chats", "tags")})


def target_metadata() -> list[MetaData]:
    """The tables the schema is made from."""
    return [metadata, chat_metadata, dataset_metadata]


def _fts_table(name: str) -> bool:
    return any(name == t or name.startswith(t + "_") for t in FTS_TABLES)


def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """Alembic's filter of reflected names: leave out what the revisions make by hand."""
    if name is None:
        return True
    if type_ == "table":
        return not _fts_table(name) and name != LEGACY_TABLE
    if type_ == "column":
        return (parent_names.get("table_name"), name) not in UNMODELLED_COLUMNS
    if type_ == "index":
        return name not in UNMODELLED_INDEXES
    return True


def _compare_server_default(
    _context: MigrationContext,
    inspected: Any,
    modelled: Any,
    *_defaults: Any,
) -> bool | None:
    """False (agreed) for the defaults set per dialect by hand; None: Alembic's compare."""
    if (modelled.table.name, modelled.name) in UNMODELLED_DEFAULTS:
        return False
    return None


def context_options(dialect: str) -> dict[str, Any]:
    """The options of every migration context: env.py's, and the compare's."""
    return {
        "target_metadata": target_metadata(),
        "include_name": include_name,
        "compare_type": True,
        "compare_server_default": _compare_server_default,
        # SQLite alters most of a table only by copying it: revisions use batch operations.
        "render_as_batch": dialect == "sqlite",
    }


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, with no ini file; env.py runs on ``connection``."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The newest revision this Billumy knows."""
    found = _script().get_current_head()
    assert found is not None
    return found


def _revisions(conn: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(conn).get_current_heads())


def _refuse_unknown(script: ScriptDirectory, revisions: tuple[str, ...]) -> None:
    for revision in revisions:
        try:
            script.get_revision(revision)
        except CommandError:
            raise BillumyError(
                f"the database schema is at revision {revision!r}, which this Billumy does not "
                f"know (it knows up to {script.get_current_head()!r}): upgrade Billumy"
            ) from None


def differences(conn: Connection) -> list[Any]:
    """What autogenerate would change to bring the database to the metadata (empty: agreed)."""
    context = MigrationContext.configure(conn, opts=context_options(conn.dialect.name))
    # Alembic takes a list of MetaData where its signature says one.
    found = list(compare_metadata(context, context.opts["target_metadata"]))
    if conn.dialect.name == "sqlite":
        found = _without_inline_fk_options(conn, found)
    return found


def _fk_key(fk: Any) -> tuple[str, tuple[str, ...], str, tuple[str, ...]]:
    return (
        fk.parent.name,
        tuple(c.name for c in fk.columns),
        fk.referred_table.name,
        tuple(e.column.name for e in fk.elements),
    )


def _without_inline_fk_options(conn: Connection, found: list[Any]) -> list[Any]:
    """Drop the false difference SQLite's reflection makes of an inline foreign key.

    SQLAlchemy reads ON DELETE / ON UPDATE only from a table-level ``FOREIGN KEY (...)``
    clause; the hand-written migrations wrote ``chat_id TEXT REFERENCES chats (id) ON DELETE
    CASCADE``, so the reflected key has no options and autogenerate pairs a remove_fk with an
    add_fk. ``PRAGMA foreign_key_list`` has the options: where they match the metadata's, the
    pair is no difference.
    """
    removed = {_fk_key(d[1]): d for d in found if isinstance(d, tuple) and d[0] == "remove_fk"}
    same = []
    for diff in found:
        if not (isinstance(diff, tuple) and diff[0] == "add_fk"):
            continue
        key = _fk_key(diff[1])
        if key not in removed:
            continue
        table, columns, referred, referred_columns = key
        rows = conn.exec_driver_sql(f"PRAGMA foreign_key_list('{table}')").all()
        actual = {
            (r[2], (r[3],), (r[4],), r[5].upper(), r[6].upper())
            for r in rows
            if (r[3],) == columns[:1]
        }
        wanted = (
            referred,
            columns,
            referred_columns,
            (diff[1].onupdate or "NO ACTION").upper(),
            (diff[1].ondelete or "NO ACTION").upper(),
        )
        if len(columns) == 1 and wanted in actual:
            same += [diff, removed[key]]
    return [d for d in found if not any(d is s for s in same)]


def _legacy_versions(conn: Connection) -> list[int] | None:
    """The hand-written migrations' versions, or None where their table does not exist."""
    if LEGACY_TABLE not in inspect(conn).get_table_names():
        return None
    rows = conn.execute(text(f"SELECT version FROM {LEGACY_TABLE} ORDER BY version"))  # noqa: S608
    return [int(v) for v in rows.scalars()]


def _adopt_legacy(conn: Connection, script: ScriptDirectory, versions: list[int]) -> None:
    """Stamp a database of the previous release at the baseline, after checking its schema."""
    if versions != LEGACY_VERSIONS:
        raise BillumyError(
            f"the database schema is at version(s) {versions} of Billumy's former hand-written "
            f"migrations; this Billumy takes over only a schema at version "
            f"{LEGACY_VERSIONS[-1]}: start the previous release of Billumy on it once first"
        )
    # Its schema is checked against the metadata once the revisions after the baseline have
    # run (see _upgrade_quietly): the metadata is the newest revision's, not the baseline's.
    MigrationContext.configure(conn).stamp(script, BASELINE)
    conn.execute(text(f"DROP TABLE {LEGACY_TABLE}"))
    log.info("schema: took over the hand-written migrations' version 4, stamped %s", BASELINE)


@dataclass(frozen=True)
class Upgrade:
    """What :func:`upgrade` found and left."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    adopted_legacy: bool

    @property
    def changed(self) -> bool:
        return self.before != self.after


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic logs a few INFO lines each time a context is made (three per start); the
    outcome is logged here instead, once."""
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic_log.setLevel(level)


def _upgrade(conn: Connection) -> Upgrade:
    with _quiet_alembic():
        return _upgrade_quietly(conn)


def _upgrade_quietly(conn: Connection) -> Upgrade:
    script = _script()
    before = _revisions(conn)
    _refuse_unknown(script, before)
    adopted = False
    if not before:
        legacy = _legacy_versions(conn)
        if legacy is not None:
            _adopt_legacy(conn, script, legacy)
            adopted = True
        else:
            ours = {t.name for m in target_metadata() for t in m.tables.values()}
            if found := sorted(ours & set(inspect(conn).get_table_names())):
                raise BillumyError(
                    f"the database has Billumy's tables {found} but no schema version: it "
                    f"predates versioned schemas; start the previous release of Billumy on it "
                    f"once first"
                )
    command.upgrade(alembic_config(conn), "head")
    if adopted and (found := differences(conn)):
        raise BillumyError(  # the transaction rolls back: the database is left as it was
            f"the database schema (version {LEGACY_VERSIONS[-1]} of the hand-written "
            f"migrations) differs from the tables this Billumy expects: {found}"
        )
    after = _revisions(conn)
    if after != before:
        log.info("schema: upgraded from %s to %s", before or "nothing", after)
    return Upgrade(before=before, after=after, adopted_legacy=adopted)


async def lock(conn: AsyncConnection) -> None:
    """Take the schema lock for the rest of ``conn``'s transaction (PostgreSQL; on SQLite the
    writer's ``BEGIN IMMEDIATE`` is the lock)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})


async def upgrade(writer: AsyncEngine) -> Upgrade:
    """Bring the schema to the newest revision, all-or-nothing, under the schema lock.

    ``writer`` must start SQLite transactions with ``BEGIN IMMEDIATE`` (SQLStore's writer
    engine does). Raises BillumyError when the database was upgraded by a newer release, or is
    one this release cannot take over.
    """
    async with writer.begin() as conn:
        await lock(conn)
        return await conn.run_sync(_upgrade)


@dataclass(frozen=True)
class State:
    """Where a database's schema stands: its revisions, the newest known, any legacy versions."""

    current: tuple[str, ...]
    head: str
    legacy: list[int] | None

    @property
    def up_to_date(self) -> bool:
        return self.current == (self.head,)


async def state(engine: AsyncEngine) -> State:
    """The schema's state, read without changing anything."""

    def read(conn: Connection) -> State:
        current = _revisions(conn)
        return State(current, head(), None if current else _legacy_versions(conn))

    async with engine.connect() as conn:
        return await conn.run_sync(read)


def describe(difference: Any) -> str:
    """One line for a difference of :func:`differences` (autogenerate's tuples)."""
    if isinstance(difference, list):  # the changes to one column
        return "; ".join(describe(d) for d in difference)
    kind, *rest = difference
    if kind in ("add_table", "remove_table"):
        return f"{kind} {rest[0].name}"
    if kind in ("add_column", "remove_column"):
        return f"{kind} {rest[1]}.{rest[2].name}"
    if kind in ("add_index", "remove_index"):
        return f"{kind} {rest[0].name} on {rest[0].table.name}"
    if kind.startswith(("add_", "remove_")):  # constraints and foreign keys
        columns = ", ".join(c.name for c in rest[0].columns)
        return f"{kind} {rest[0].name or ''} on {rest[0].table.name} ({columns})"
    if kind.startswith("modify_"):
        return f"{kind} {rest[1]}.{rest[2]}: {rest[4]!r} -> {rest[5]!r}"
    return repr(difference)


async def check(engine: AsyncEngine) -> list[str]:
    """``alembic check``: the differences between the metadata and an up-to-date database,
    one line each (empty: they agree).

    Raises BillumyError when the database is not at the newest revision.
    """
    found = await state(engine)
    if not found.up_to_date:
        raise BillumyError(
            f"the database schema is at {list(found.current)}, not at the newest revision "
            f"{found.head!r}: run `billumy db upgrade` first"
        )
    async with engine.connect() as conn:
        differing = await conn.run_sync(differences)
    return [describe(d) for d in differing]
