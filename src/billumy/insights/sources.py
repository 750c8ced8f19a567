"""Sources: a tenant's own database, read in place, read-only, with the facts' queries run there.

A source is configured in ``billumy.toml`` (``[[sources]]``, see
:class:`~billumy.settings.SourceConfig`): its URL never comes from a request and never leaves
this module (errors name the source, never its host, user or password). Each query:

* runs in its own **read-only** transaction (PostgreSQL: ``SET TRANSACTION READ ONLY`` on a
  session opened with ``default_transaction_read_only``; MySQL/MariaDB: the same on a session
  made ``READ ONLY``, see :mod:`billumy.insights.mysql`; SQLite: the file opened with
  ``mode=ro``), under the source's **time limit** (PostgreSQL ``statement_timeout``; MariaDB
  ``max_statement_time``, MySQL ``max_execution_time``; SQLite a progress handler that
  interrupts it), and reads back at most ``max_result_rows + 1`` rows;
* reaches only the allow-listed table through the allowed columns (see
  :mod:`billumy.insights.pushdown`, which writes and checks every statement), with values as
  bound parameters.

A source that cannot be reached is a :class:`~billumy.errors.SourceUnavailableError` (503);
the rest of the service does not depend on it. :class:`SourceTable` gives the facts engine the
interface of :class:`~billumy.insights.data.Table` over a source.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sqlite3
import statistics
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects.mysql import TINYINT
from sqlalchemy.engine import Engine, make_url
from sqlglot import exp

from billumy.errors import (
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    QueryTimeoutError,
    SourceUnavailableError,
)
from billumy.insights import cube, mysql, profile, pushdown, sandbox, synonyms
from billumy.insights.data import Limits, Table
from billumy.insights.model import Profile
from billumy.settings import SourceConfig, SourceTableConfig

log = logging.getLogger(__name__)

CATALOG_TTL_S = 60.0
_BLOCK_ROWS = 10_000  # rows read from a source at a time into Arrow

# SQLAlchemy's generic types -> the DuckDB type the profiler classifies by.
_TYPES: list[tuple[type[sa.types.TypeEngine[Any]], str]] = [
    (sa.Boolean, "BOOLEAN"),
    (sa.Integer, "BIGINT"),
    (sa.Numeric, "DOUBLE"),
    (sa.Float, "DOUBLE"),
    (sa.DateTime, "TIMESTAMP"),
    (sa.Date, "DATE"),
    (sa.String, "VARCHAR"),
    (sa.Enum, "VARCHAR"),
]
_ARROW = {
    "BOOLEAN": pa.bool_(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "TIMESTAMP": pa.timestamp("us"),
    "DATE": pa.date32(),
    "VARCHAR": pa.string(),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB's name for it
    masked: bool
    required: bool = False  # NOT NULL in the catalog (a joined column never is: LEFT JOIN)


class Source:
    """One configured database: its engine (made on first use), catalog and queries."""

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.name = config.name
        self.dialect = dialect_of(config.resolved_url())
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._catalog: dict[str, tuple[float, list[Column]]] = {}
        self._keys: dict[str, tuple[float, dict[str, list[str]]]] = {}
        self._kept: OrderedDict[tuple[Any, ...], Kept] = OrderedDict()
        self._kept_lock = threading.Lock()

    # --- connections ---------------------------------------------------------------------

    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = _make_engine(self.config, self.dialect)
            return self._engine

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def fetch(
        self, sql: str, params: dict[str, Any] | None = None, *, max_rows: int | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one statement read-only under the time limit; names and rows (plain Python
        values: Decimal becomes int or float). More than ``max_rows`` rows is a 413."""
        with self._reading() as conn:
            result = conn.exec_driver_sql(sql, params or {})
            names = list(result.keys())
            flags = _mysql_flags(result.cursor) if self.dialect == "mysql" else []
            rows = result.fetchall() if max_rows is None else result.fetchmany(max_rows + 1)
        if max_rows is not None and len(rows) > max_rows:
            raise self._too_many(max_rows)
        if self.dialect == "sqlite":
            return names, [tuple(_sqlite_value(v) for v in row) for row in rows]
        if self.dialect == "mysql":
            return names, [_mysql_row(row, flags) for row in rows]
        return names, [tuple(_plain(v) for v in row) for row in rows]

    def fetch_arrow(
        self,
        sql: str,
        params: dict[str, Any],
        schema: pa.Schema,
        *,
        max_rows: int,
        work_mem_mb: int | None = None,
    ) -> pa.Table:
        """Like :meth:`fetch`, as an Arrow table of ``schema`` (its columns in the statement's
        order), read a block at a time so that only one block is ever held as Python values.
        A value that is not of its column's type is a :class:`pyarrow.ArrowException`.
        ``work_mem_mb``: PostgreSQL's ``work_mem`` for this statement (a grouping that would
        otherwise sort on disk)."""
        batches: list[pa.RecordBatch] = []
        seen = 0
        with contextlib.closing(self.arrow_blocks(sql, params, schema, work_mem_mb)) as blocks:
            for batch in blocks:
                seen += batch.num_rows
                if seen > max_rows:
                    raise self._too_many(max_rows)
                batches.append(batch)
        return pa.Table.from_batches(batches, schema=schema)

    def arrow_blocks(
        self,
        sql: str,
        params: dict[str, Any],
        schema: pa.Schema,
        work_mem_mb: int | None = None,
        *,
        stream: bool = False,
    ) -> Generator[pa.RecordBatch]:
        """The statement's rows as record batches of ``schema``, a block at a time, in one
        read-only transaction under the time limit that ends when the iterator is exhausted
        or closed (close it: ``contextlib.closing``). ``stream``: PostgreSQL sends the rows
        through a server-side cursor as they are read, so that neither side holds the whole
        result (its planner then favours plans that start fast, such as an index's order)."""
        options = {"stream_results": True} if stream and self.dialect != "sqlite" else {}
        with self._reading(work_mem_mb) as conn:
            result = conn.exec_driver_sql(sql, params, execution_options=options)
            while block := result.fetchmany(_BLOCK_ROWS):
                yield _batch(block, schema, self.dialect)

    @contextlib.contextmanager
    def _reading(self, work_mem_mb: int | None = None) -> Iterator[sa.Connection]:
        """A connection in a read-only transaction under the time limit, rolled back after."""
        timeout = self.config.statement_timeout
        try:
            with self.engine().connect() as conn, conn.begin():
                if self.dialect == "postgres":
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout * 1000)}")
                    # JIT compiles an aggregate over millions of rows for seconds (4 s of 28 on
                    # the benchmark's ten million orders) to save less than that.
                    conn.exec_driver_sql("SET LOCAL jit = off")
                    if work_mem_mb:
                        # A grouping whose groups are known to be few (the aggregate's): the
                        # planner, multiplying each column's distinct values, expects hundreds
                        # of thousands and sorts ten million rows on disk instead of hashing.
                        conn.exec_driver_sql(f"SET LOCAL work_mem = '{int(work_mem_mb)}MB'")
                        conn.exec_driver_sql("SET LOCAL enable_sort = off")
                elif self.dialect == "mysql":
                    # The next transaction's (the session is read-only as well; the time
                    # limit is the session's, set when it connected).
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                else:
                    _deadline(conn, timeout)
                yield conn
                conn.rollback()
        except sa.exc.DBAPIError as exc:
            raise self._translated(exc) from None

    def _too_many(self, max_rows: int) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"a query on source '{self.name}' returned more than {max_rows} rows; ask for "
            "a coarser period or fewer segments"
        )

    def _translated(self, exc: sa.exc.DBAPIError) -> Exception:
        """A driver error as a client error that names the source and nothing of its URL."""
        code = getattr(exc.orig, "sqlstate", None) or ""
        text = str(exc.orig).lower()
        if self.dialect == "mysql":
            return self._mysql_translated(exc)
        if code == "57014" or "interrupted" in text:
            return QueryTimeoutError(
                f"a query on source '{self.name}' ran longer than "
                f"{self.config.statement_timeout:g} s and was stopped; ask a narrower question"
            )
        sqlite_down = self.dialect == "sqlite" and "unable to open" in text
        # SQLite says what it lacks (a function, a window) only in words.
        sqlite_lacks = self.dialect == "sqlite" and not sqlite_down and "readonly" not in text
        if code[:2] in ("42", "0A") or sqlite_lacks:
            return Unsupported(f"source '{self.name}' cannot run this query")
        pg_down = self.dialect == "postgres" and code[:2] in ("", "08", "57", "53")
        if exc.connection_invalidated or sqlite_down or pg_down:
            log.warning("source unavailable", extra={"source": self.name, "error": _kind(exc)})
            return SourceUnavailableError(f"source '{self.name}' is unavailable; retry shortly")
        if code == "25006" or "readonly" in text or "read-only" in text:
            return BadRequestError(f"source '{self.name}' is read-only")
        log.warning("source query failed", extra={"source": self.name, "error": _kind(exc)})
        return BadRequestError(f"a query on source '{self.name}' failed ({_kind(exc)})")

    def _mysql_translated(self, exc: sa.exc.DBAPIError) -> Exception:
        kind = mysql.failure(exc)
        if kind == "timeout":
            return QueryTimeoutError(
                f"a query on source '{self.name}' ran longer than "
                f"{self.config.statement_timeout:g} s and was stopped; ask a narrower question"
            )
        if kind == "lacks":
            return Unsupported(f"source '{self.name}' cannot run this query")
        if kind == "down":
            log.warning("source unavailable", extra={"source": self.name, "error": _kind(exc)})
            return SourceUnavailableError(f"source '{self.name}' is unavailable; retry shortly")
        if kind == "read-only":
            return BadRequestError(f"source '{self.name}' is read-only")
        log.warning("source query failed", extra={"source": self.name, "error": _kind(exc)})
        return BadRequestError(f"a query on source '{self.name}' failed ({_kind(exc)})")

    # --- what a question read, for the next ----------------------------------------------

    def stamp(self, tables: Sequence[str]) -> tuple[Any, ...] | None:
        """What changes when ``tables`` (and the tables the views among them read) are
        written: PostgreSQL's file node and write counters of each (``pg_stat_all_tables``,
        which trail a commit by about a second); a SQLite file's size and time. None when
        it cannot be told (a foreign or partitioned table), and then nothing is reused.

        MySQL/MariaDB: always None. ``information_schema.TABLES.UPDATE_TIME`` counts whole
        seconds (a write in the second an aggregate was read leaves it unchanged), is NULL
        after a restart until the next write, and ``TABLE_ROWS`` is InnoDB's estimate; a
        stamp from them could reuse an aggregate the source has since changed."""
        if self.config.reuse_seconds <= 0 or self.dialect == "mysql":
            return None
        if self.dialect == "sqlite":
            path = make_url(self.config.resolved_url()).database or ""
            found = []
            for name in (path, path + "-wal"):
                with contextlib.suppress(OSError):
                    info = os.stat(name)
                    found.append((info.st_size, info.st_mtime_ns))
            return tuple(found) or None
        binds = {f"t{i}": name for i, name in enumerate(tables)}
        listed = " UNION ".join(f"SELECT to_regclass(%({b})s)::oid" for b in binds)
        sql = _STAMP_SQL.format(listed=listed)
        try:
            _, rows = self.fetch(sql, binds)
        except BadRequestError:
            return None
        if not rows or any(row[1] not in ("r", "v", "m") for row in rows):
            return None
        return tuple(rows)

    def kept(self, key: tuple[Any, ...], stamp: tuple[Any, ...] | None) -> Kept | None:
        """What :meth:`keep` kept under ``key``, if its stamp is ``stamp`` and it is young."""
        if stamp is None:
            return None
        with self._kept_lock:
            found = self._kept.get(key)
            if found is None:
                return None
            young = time.monotonic() - found.at < self.config.reuse_seconds
            if found.stamp != stamp or not young:
                del self._kept[key]
                return None
            self._kept.move_to_end(key)
            return found

    def keep(self, key: tuple[Any, ...], stamp: tuple[Any, ...] | None, kept: Kept) -> None:
        """Keep ``kept`` for the next question while ``stamp`` holds (least recently used
        dropped beyond :data:`KEPT_BYTES`)."""
        if stamp is None or kept.arrow.nbytes > KEPT_BYTES:
            return
        kept.stamp = stamp
        with self._kept_lock:
            self._kept[key] = kept
            self._kept.move_to_end(key)
            while sum(k.arrow.nbytes for k in self._kept.values()) > KEPT_BYTES:
                self._kept.popitem(last=False)

    # --- catalog -------------------------------------------------------------------------

    def table_config(self, name: str | None, question: str = "") -> SourceTableConfig:
        """The allow-listed table ``name``; when None, the only one, or the one ``question``
        points at (:meth:`pick`); 404 for a table not on the list."""
        tables = self.config.tables
        if name is None:
            if len(tables) == 1:
                return tables[0]
            picked = self.pick(question) if question else None
            if picked is not None:
                return picked
            listed = ", ".join(t.name for t in tables)
            raise BadRequestError(
                f"source '{self.name}' has several tables and the question names none of "
                f"them; send table, one of: {listed}"
            )
        for spec in tables:
            if spec.name.casefold() == name.casefold():
                return spec
        raise NotFoundError(f"source '{self.name}' has no table '{name}'")

    def pick(self, question: str) -> SourceTableConfig | None:
        """The table whose name and columns (its joins' included) the question names most
        (:func:`~billumy.insights.synonyms.overlap`); on a tie, a table with joins (it reads
        its targets' columns as well), then the first listed. None when it names none."""
        best: tuple[int, int, int] | None = None
        chosen = None
        joined_from = {j.ends()[0][0].casefold() for j in self.config.joins}
        for position, spec in enumerate(self.config.tables):
            words = re.split(r"[._]", spec.name)
            for column in self.columns(spec):
                words += column.name.split("_")
            for join in self.config.joins:
                (table, _), (target, _) = join.ends()
                if table.casefold() == spec.name.casefold():
                    words += [join.name(), *re.split(r"[._]", target)]
                    words += [c.name for c in self.columns(self.table_config(target))]
            score = synonyms.overlap(question, words)
            rank = (score, int(spec.name.casefold() in joined_from), -position)
            if score > 0 and (best is None or rank > best):
                best, chosen = rank, spec
        return chosen

    def columns(self, spec: SourceTableConfig) -> list[Column]:
        """The readable columns of ``spec``, typed from the catalog (cached a minute)."""
        cached = self._catalog.get(spec.name)
        if cached is not None and time.monotonic() - cached[0] < CATALOG_TTL_S:
            return cached[1]
        schema, table = _split_name(spec.name)
        try:
            with self.engine().connect() as conn:
                if self.dialect == "sqlite":
                    _deadline(conn, self.config.statement_timeout)
                described = sa.inspect(conn).get_columns(table, schema=schema)
        except sa.exc.NoSuchTableError:
            raise NotFoundError(f"source '{self.name}' has no table '{spec.name}'") from None
        except sa.exc.DBAPIError as exc:
            raise self._translated(exc) from None
        kinds = {str(c["name"]): _duckdb_type(c["type"]) for c in described}
        required = {str(c["name"]) for c in described if c.get("nullable") is False}
        if not kinds:
            raise NotFoundError(f"source '{self.name}' has no table '{spec.name}'")
        wanted = spec.columns or [n for n, k in kinds.items() if k is not None]
        found: list[Column] = []
        for name in wanted:
            kind = kinds.get(name)
            if kind is None:
                raise BadRequestError(
                    f"source '{self.name}': table '{spec.name}' has no readable column '{name}'"
                )
            found.append(Column(name, kind, name in spec.mask, name in required))
        self._catalog[spec.name] = (time.monotonic(), found)
        return found

    def row_key(self, spec: SourceTableConfig, *, qualified: bool = False) -> exp.Expr:
        """What numbers a row: SQLite's ``rowid``, a PostgreSQL table's one-column primary
        key, else ``row_number() OVER ()`` (computed only by the queries that read it).
        ``qualified``: the table is read as ``t0`` (it has joins)."""
        table = "t0" if qualified else None
        if self.dialect == "sqlite":
            return exp.column("rowid", table=table)
        found = self._unique_keys(spec).get("primary") or []
        if len(found) == 1:
            return exp.column(found[0], table=table, quoted=True)
        return exp.Window(this=exp.RowNumber())

    def _unique_keys(self, spec: SourceTableConfig) -> dict[str, list[str]]:
        """The table's primary key ("primary") and its one-column unique constraints (cached
        a minute, as the columns are: each question of a table with joins looks them up)."""
        cached = self._keys.get(spec.name)
        if cached is not None and time.monotonic() - cached[0] < CATALOG_TTL_S:
            return cached[1]
        schema, table = _split_name(spec.name)
        try:
            with self.engine().connect() as conn:
                inspector = sa.inspect(conn)
                primary = inspector.get_pk_constraint(table, schema=schema)
                try:
                    unique = inspector.get_unique_constraints(table, schema=schema)
                except NotImplementedError:
                    unique = []
        except sa.exc.NoSuchTableError:
            raise NotFoundError(f"source '{self.name}' has no table '{spec.name}'") from None
        except sa.exc.DBAPIError as exc:
            raise self._translated(exc) from None
        found = {"primary": list(primary.get("constrained_columns") or [])}
        for number, constraint in enumerate(unique):
            found[f"unique{number}"] = list(constraint.get("column_names") or [])
        self._keys[spec.name] = (time.monotonic(), found)
        return found

    def column_stats(self, spec: SourceTableConfig) -> dict[str, tuple[float, float]]:
        """PostgreSQL's statistics of the table's columns, from its last ``ANALYZE``: column
        -> (``null_frac``, ``n_distinct``; negative: a fraction of the rows). Empty for a view,
        a table never analyzed and the other dialects (the sample's counts are used then)."""
        if self.dialect != "postgres":
            return {}
        schema, table = _split_name(spec.name)
        sql = (
            "SELECT attname, null_frac, n_distinct FROM pg_stats WHERE tablename = %(t)s "
            "AND schemaname = coalesce(%(s)s, current_schema()) AND NOT inherited"
        )
        try:
            _, rows = self.fetch(sql, {"t": table, "s": schema})
        except BadRequestError:  # no right to read pg_stats: the sample's counts
            return {}
        return {str(name): (float(nulls), float(distinct)) for name, nulls, distinct in rows}

    def joins(self, spec: SourceTableConfig, taken: Collection[str]) -> list[Joined]:
        """The declared joins from ``spec``, resolved against the catalog: each target's key
        must be its primary key or unique (else a join would count rows twice), and each
        joined column gets a name that ``taken`` (the table's own columns) does not hold."""
        found: list[Joined] = []
        used = {n.casefold() for n in taken}
        for join in self.config.joins:
            (table, column), (target, key) = join.ends()
            if table.casefold() != spec.name.casefold():
                continue
            target_spec = self.table_config(target)
            keys = self._unique_keys(target_spec).values()
            if [key] not in keys:
                raise BadRequestError(
                    f"source '{self.name}': join {join.from_} -> {join.to}: {join.to} is "
                    "neither the primary key nor unique, so the join could count rows twice"
                )
            readable = {c.name: c for c in self.columns(target_spec)}
            wanted = join.columns or [n for n, c in readable.items() if not c.masked and n != key]
            columns: list[tuple[str, str, str]] = []
            label = join.name()
            named = False
            for name in wanted:
                col = readable.get(name)
                if col is None or col.masked:
                    raise BadRequestError(
                        f"source '{self.name}': join {join.from_} -> {join.to}: column "
                        f"'{name}' is not readable in {target}"
                    )
                if not named and name.casefold() in NAME_LIKE and label.casefold() not in used:
                    alias, named = label, True
                elif name.casefold() not in used:
                    alias = name
                else:
                    alias = f"{label}_{name}"
                    if alias.casefold() in used:
                        continue  # a third column of that name: left out, never confused
                used.add(alias.casefold())
                columns.append((name, alias, col.type))
            schema, bare = _split_name(target_spec.name)
            found.append(
                Joined(
                    join=pushdown.Join(
                        table=pushdown.quoted_table(schema, bare),
                        key=key,
                        column=column,
                        columns=tuple((c, a) for c, a, _ in columns),
                    ),
                    columns=[Column(a, t, False) for _, a, t in columns],
                )
            )
        return found

    def scope(self, spec: SourceTableConfig) -> tuple[pushdown.Scope, list[Column]]:
        """What ``data`` is for ``spec``: the base select over its readable columns and its
        declared joins' columns, checked and bound by :mod:`billumy.insights.pushdown`; and
        those columns."""
        found = self.columns(spec)
        joined = self.joins(spec, [c.name for c in found])
        schema, name = _split_name(spec.name)
        base, table = pushdown.base_select(
            schema, name, [c.name for c in found], [j.join for j in joined]
        )
        scope = pushdown.Scope(
            base=base,
            table=table,
            masked=frozenset(c.name for c in found if c.masked),
            rowid=self.row_key(spec, qualified=bool(joined)),
            joined=tuple(j.join.table for j in joined),
            joins=tuple(j.join for j in joined),
        )
        return scope, found + [c for j in joined for c in j.columns]

    def describe(self) -> dict[str, Any]:
        """What ``GET /api/sources`` shows: names, tables, columns and types; no URL."""
        tables = []
        available = True
        for spec in self.config.tables:
            columns: list[dict[str, Any]] = []
            try:
                columns = [
                    {"name": c.name, "type": c.type, "masked": c.masked} for c in self.columns(spec)
                ]
                for joined in self.joins(spec, [c["name"] for c in columns]):
                    target = joined.join.table.name
                    columns += [
                        {"name": c.name, "type": c.type, "masked": False, "from": f"{target}.{o}"}
                        for c, (o, _) in zip(joined.columns, joined.join.columns, strict=True)
                    ]
            except SourceUnavailableError:
                available, columns = False, []
            except (NotFoundError, BadRequestError):
                pass  # a table gone, or a join that no longer holds: listed without columns
            tables.append({"name": spec.name, "columns": columns})
        kind = {"sqlite": "sqlite", "mysql": "mysql"}.get(self.dialect, "postgresql")
        return {"name": self.name, "kind": kind, "available": available, "tables": tables}


# The column of a joined table that names its row (read under the join's own name: loja).
NAME_LIKE = frozenset(
    {"nome", "name", "titulo", "title", "descricao", "description", "label", "razao_social"}
)


# The most bytes of samples and aggregates a source keeps for later questions.
KEPT_BYTES = 64 * 2**20

# The relations a question reads, the tables under the views among them, and what changes when
# one is written. relkind: r table, v view, m materialized view (anything else: not reused).
_STAMP_SQL = """
WITH RECURSIVE rels(oid) AS (
    {listed}
    UNION
    SELECT d.refobjid FROM rels
    JOIN pg_rewrite r ON r.ev_class = rels.oid
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
        AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> rels.oid
)
SELECT c.oid::bigint, c.relkind::text, c.relfilenode::bigint,
       coalesce(s.n_tup_ins, 0), coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_del, 0),
       coalesce(s.n_live_tup, 0)
FROM rels JOIN pg_class c ON c.oid = rels.oid
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
ORDER BY 1
"""


@dataclass
class Kept:
    """A sample or an aggregate read for one question, reused by the next while ``stamp``
    (what :meth:`Source.stamp` said before it was read) still holds."""

    arrow: pa.Table
    sql: str
    read_at: datetime
    at: float = field(default_factory=time.monotonic)
    stamp: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Joined:
    join: pushdown.Join
    columns: list[Column]


class Unsupported(BadRequestError):
    """The source cannot run a statement as written (a function or construct it lacks)."""


class Sources:
    """The configured sources, by tenant and name."""

    def __init__(self, configs: Sequence[SourceConfig]) -> None:
        self._by_key = {(c.tenant, c.name.casefold()): Source(c) for c in configs}

    def of(self, tenant: str) -> list[Source]:
        return [s for (t, _), s in self._by_key.items() if t == tenant]

    def get(self, tenant: str, name: str) -> Source:
        """The tenant's source ``name``; 404 for any other (another tenant's looks the same)."""
        source = self._by_key.get((tenant, name.casefold()))
        if source is None:
            raise NotFoundError(f"no source '{name}'")
        return source

    def close(self) -> None:
        for source in self._by_key.values():
            source.dispose()


class SourceTable(Table):
    """A source's allow-listed table behind :class:`~billumy.insights.data.Table`'s interface.

    ``columns``, ``types`` come from the catalog, ``row_count`` is exact (the sum of the
    aggregate's rows below, or a ``count(*)``; the sample goes by the planner's estimate);
    ``sample`` is a DuckDB table of at most ``sample_rows`` rows (PostgreSQL ``TABLESAMPLE
    SYSTEM``, SQLite the first rows) for the profile. :meth:`query` and :meth:`records` run in
    the source (:mod:`billumy.insights.pushdown`); ``shown`` maps each query asked to the SQL
    that ran, which the facts then show. A redefinition of ``data`` (a derived column) is
    applied to the sample and composed into the statement that every later query reads.

    A query that :mod:`billumy.insights.cube` can answer exactly from one aggregate of the
    table (grouped by its dates and low-cardinality text columns) runs in DuckDB over that
    aggregate, read from the source once on first need; any other query runs in the source.
    The salient facts that would scan the rows themselves (outliers, correlations) are not
    computed (``reads_rows``); a question that asks for a median still gets it, in the source.
    """

    reads_rows = False

    def __init__(self, source: Source, spec: SourceTableConfig, limits: Limits) -> None:
        self.source = source
        self.limits = limits
        self.units: dict[str, str] = {}  # a database's columns are typed by the database
        self.scope, found = source.scope(spec)
        table = self.scope.table
        self.masked = set(self.scope.masked)
        self.required = frozenset(c.name for c in found if c.required)
        read = (table, *self.scope.joined)
        self._stamp = source.stamp([t.sql(dialect=source.dialect) for t in read])
        self.shown: dict[str, str] = {}
        self._cube: cube.Shape | None = None
        self._cube_state = "unknown"  # "loaded", or "off" when the facts run in the source
        self._cube_sql = ""
        self._cube_rows: int | None = None
        self.row_count = self._estimated_rows(table)  # what the sample and the cube go by
        own = {c.name for c in source.columns(spec)}  # not the joined tables' columns
        self.stats = {k: v for k, v in source.column_stats(spec).items() if k in own}
        self.sample = self._sample(found)
        self.con = self.sample.con
        self._described()
        self.row_count = self._counted()

    def _estimated_rows(self, table: exp.Table) -> int:
        """PostgreSQL's planner's guess of the rows (no scan); MySQL's
        (:meth:`_mysql_estimate`); SQLite's exact count."""
        if self.source.dialect == "mysql":
            found = self._mysql_estimate(table)
            if found is not None:
                return found
        if self.source.dialect == "postgres":
            sql = f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {table.sql(dialect='postgres')}"  # noqa: S608
            try:
                _, rows = self.source.fetch(sql)
                plan = rows[0][0]
                plan = json.loads(plan) if isinstance(plan, str) else plan
                return max(0, int(plan[0]["Plan"]["Plan Rows"]))
            except (BadRequestError, LookupError, TypeError, ValueError):
                pass
        return self._exact_rows()

    def _mysql_estimate(self, table: exp.Table) -> int | None:
        """A table's rows as InnoDB's statistics hold them (``information_schema.TABLES``),
        a view's as ``EXPLAIN`` expects them (the product of its tables' rows); no scan."""
        sql = (
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_NAME = %(t)s "
            "AND TABLE_SCHEMA = COALESCE(%(s)s, DATABASE())"
        )
        try:
            _, rows = self.source.fetch(sql, {"t": table.name, "s": table.db or None})
            if rows and rows[0][0] is not None:
                return max(0, int(rows[0][0]))
            explained = f"EXPLAIN SELECT 1 FROM {table.sql(dialect='mysql')}"  # noqa: S608
            names, rows = self.source.fetch(pushdown.for_driver(explained, "mysql"))
            at = [n.lower() for n in names].index("rows")
            product = 1
            for row in rows:
                product *= max(1, int(row[at] or 1))
            return product if rows else None
        except (BadRequestError, LookupError, TypeError, ValueError):
            return None

    def _exact_rows(self) -> int:
        return int(self._pushed("SELECT count(*) FROM data", [])[1][0][0])

    def _counted(self) -> int:
        """The exact row count: the sum of the aggregate's rows when it can be read (the scan
        the facts need anyway), else ``count(*)`` in the source."""
        shape = self._cube_shape()
        if shape is not None and self._load_cube(shape) and self._cube_rows is not None:
            return self._cube_rows
        if self.source.dialect == "sqlite":
            return self.row_count  # exact already
        return self._exact_rows()

    def _described(self) -> None:
        self.columns = list(self.sample.columns)
        self.types = dict(self.sample.types)
        self.scope.dates = frozenset(n for n, t in self.types.items() if t == "DATE")

    def _sample(self, found: list[Column]) -> Table:
        """At most ``sample_rows`` rows of ``data`` (joins included): PostgreSQL samples the
        table's pages (``TABLESAMPLE SYSTEM``, no scan), or for a view keeps rows at random
        as it reads them; SQLite reads the first rows."""
        n = self.source.config.sample_rows
        dialect = self.source.dialect
        base = _hashed(self.scope.base, self.scope.masked)
        found = [Column(c.name, "VARCHAR", True) if c.masked else c for c in found]
        if dialect == "postgres" and self.row_count > n:
            share = min(1.0, 2.0 * n / self.row_count)
            sampled = base.copy()
            sampled.args["from_"].this.set(
                "sample",
                exp.TableSample(
                    method=exp.var("SYSTEM"),
                    percent=exp.Literal.number(f"{100 * share:.6f}"),
                    seed=exp.Literal.number(0),
                ),
            )
            statements = [
                sampled.limit(n).sql(dialect=dialect),
                # a view has no TABLESAMPLE: rows drawn as it is read
                base.copy().where(f"random() < {share:.6f}").limit(n).sql(dialect=dialect),
            ]
        elif dialect == "mysql" and self.row_count > n:
            # No TABLESAMPLE: rows kept at random as they are read, a little more than the
            # share wanted so that the read stops near the table's end, not its middle.
            share = min(1.0, 1.1 * n / self.row_count)
            sampled = base.copy().where(f"random() < {share:.6f}").limit(n)
            statements = [pushdown.for_driver(sampled.sql(dialect=dialect), dialect)]
        else:
            statements = [pushdown.for_driver(base.copy().limit(n).sql(dialect=dialect), dialect)]
        key = ("sample", *statements)
        kept = self.source.kept(key, self._stamp)
        if kept is None:
            for number, sql in enumerate(statements):
                try:
                    _, rows = self.source.fetch(sql)
                    break
                except Unsupported:
                    if number == len(statements) - 1:
                        raise
            kept = Kept(_arrow(found, rows), sql, datetime.now(UTC))
            self.source.keep(key, self._stamp, kept)
        return _duckdb_table(kept.arrow, self.limits)

    def refreshed(self) -> Table:
        return self

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self._run(sql, list(params or []))[1]

    def records(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        names, rows = self._run(sql, list(params or []))
        return [dict(zip(names, row, strict=True)) for row in rows]

    def _run(self, sql: str, params: list[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        scope = pushdown.derived(self.scope, sql)
        if scope is not None:
            self.sample.query(sql, params)
            self.sample = self.sample.refreshed()
            self.con = self.sample.con
            scope.dates = self.scope.dates
            self.scope = scope
            self._described()
            self._cube, self._cube_state = None, "unknown"
            self.required = frozenset()  # a redefined column may be NULL where it was not
            return [], []
        local = self._over_cube(sql, params)
        if local is not None:
            return local
        try:
            return self._pushed(sql, params)
        except Unsupported:
            return self._split(sql, params)

    def _over_cube(
        self, sql: str, params: list[Any]
    ) -> tuple[list[str], list[tuple[Any, ...]]] | None:
        """``sql`` run in DuckDB over the question's aggregate of the source (read once, on
        first need), when :func:`billumy.insights.cube.rewrite` finds it exact there."""
        shape = self._cube_shape()
        if shape is None:
            return None
        rewritten = cube.rewrite(sql, shape, self.columns, params)
        if rewritten is None or (self._cube_state != "loaded" and not self._load_cube(shape)):
            return None
        try:
            found = sandbox.described(
                self.sample.con, rewritten, params, max_rows=self.limits.max_result_rows
            )
        except duckdb.Error as exc:  # a gap in the rewrite: the source answers instead
            log.warning("query over the source aggregate failed", extra={"error": _kind(exc)})
            return None
        self.shown[sql] = (
            f"-- in the source, once for this question:\n{self._cube_sql}\n"
            f"-- then in Billumy over its rows:\n{rewritten}"
        )
        return found

    def _cube_shape(self) -> cube.Shape | None:
        if self._cube_state == "off":
            return None
        if self._cube is None:
            self._cube = cube.choose(
                self.types,
                sorted(self.masked),
                self._distinct,
                self.row_count,
                required=self.required & set(self.types),
            )
            if self._cube is None:
                self._cube_state = "off"
        return self._cube

    def _distinct(self, columns: Sequence[str]) -> int:
        """How many combinations of ``columns`` the sample holds."""
        listed = ", ".join(
            f"date_trunc('day', {_quote(c[4:])})" if c.startswith("day:") else _quote(c)
            for c in columns
        )
        sql = f"SELECT count(*) FROM (SELECT DISTINCT {listed} FROM data)"  # noqa: S608
        return int(self.sample.query(sql)[0][0])

    def _load_cube(self, shape: cube.Shape) -> bool:
        """The aggregate read from the source into DuckDB; False (and the facts run in the
        source from then on) when it has too many groups or a value it cannot hold."""
        dialect = self.source.dialect
        grouped_first = cube.joined_cube_sql(shape, self.scope, dialect)
        if grouped_first is not None:
            pushdown.recheck(grouped_first, dialect, (self.scope.table, *self.scope.joined))
            compiled = pushdown.Compiled(pushdown.for_driver(grouped_first, dialect))
        else:
            compiled = pushdown.compile_query(self.scope, cube.cube_sql(shape), [], dialect)
        key = ("aggregate", compiled.sql, *sorted(compiled.params.items()))
        kept = self.source.kept(key, self._stamp)
        if kept is None:
            schema = _cube_schema(shape, self.types)
            try:
                arrow = self.source.fetch_arrow(
                    compiled.sql,
                    compiled.params,
                    schema,
                    max_rows=cube.MAX_ROWS,
                    work_mem_mb=cube.WORK_MEM_MB,
                )
            except (PayloadTooLargeError, BadRequestError, pa.ArrowException) as exc:
                log.info(
                    "source aggregate unusable",
                    extra={"source": self.source.name, "error": type(exc).__name__},
                )
                self._cube_state = "off"
                return False
            kept = Kept(arrow, compiled.sql, datetime.now(UTC))
            self.source.keep(key, self._stamp, kept)
            shown = compiled.sql
        else:
            when = kept.read_at.strftime("%Y-%m-%d %H:%M:%S UTC")
            shown = (
                f"-- read at {when} by an earlier question; the source shows no write to "
                f"its tables since\n{compiled.sql}"
            )
        _load_arrow(self.sample.con, cube.TABLE, kept.arrow)
        self._cube_rows = int(pc.sum(kept.arrow[cube.ROWS]).as_py() or 0)
        self._cube_state, self._cube_sql = "loaded", shown
        return True

    def _pushed(self, sql: str, params: list[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        compiled = pushdown.compile_query(self.scope, sql, params, self.source.dialect)
        found = self.source.fetch(
            compiled.sql, compiled.params, max_rows=self.limits.max_result_rows
        )
        self.shown[sql] = compiled.sql
        return found

    def _split(self, sql: str, params: list[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        """The CTEs that read ``data`` in the source, the rest in DuckDB over their rows."""
        split = pushdown.split_query(self.scope, sql, params, self.source.dialect)
        shown = []
        for name, compiled in split.pushed.items():
            names, rows = self.source.fetch(
                compiled.sql, compiled.params, max_rows=self.limits.max_result_rows
            )
            _load(self.sample.con, name, names, rows)
            shown.append(f"-- {name}, in the source:\n{compiled.sql}")
        found = sandbox.described(
            self.sample.con, split.local, split.params, max_rows=self.limits.max_result_rows
        )
        shown.append(f"-- then in Billumy over those rows:\n{split.local}")
        self.shown[sql] = "\n".join(shown)
        return found

    def close(self) -> None:
        self.sample.close()


def source_profile(table: SourceTable, *, masked: Collection[str] = frozenset()) -> Profile:
    """The profile of a source's table: computed on its sample, with the exact row count and
    each column's counts from PostgreSQL's statistics (``pg_stats``) where it has them, else
    scaled from the sample; marked ``sampled`` when the sample is not the table.
    Facts never use these numbers: they compute what they state in the source."""
    found = profile.profile(table.sample, masked=masked)
    seen = max(1, table.sample.row_count)
    scale = table.row_count / seen
    for column in found.columns:
        stats = table.stats.get(column.name)
        if stats is not None:
            # PostgreSQL's own statistics of the column (pg_stats): its sample of the whole
            # table counts distinct values the sample here, of a few pages, cannot.
            null_frac, n_distinct = stats
            column.nulls = round(null_frac * table.row_count)
            column.count = table.row_count - column.nulls
            estimated = n_distinct if n_distinct >= 0 else -n_distinct * table.row_count
            column.distinct = max(column.distinct, min(column.count, round(estimated)))
            continue
        column.count = round(column.count * scale)
        column.nulls = table.row_count - column.count
    # The table's own key names what a row is: ``vendas_pedido.id`` is an order (Django names
    # a model's table app_model), so "quantos pedidos" and "most orders" count it.
    entity = table.scope.table.name.rsplit("_", 1)[-1]
    for column in found.columns:
        if column.kind == "id" and column.name.lower() in ("id", "pk") and entity:
            column.entity = entity
    found.sampled = found.sampled or table.sample.row_count < table.row_count
    found.row_count = table.row_count
    return found


def _hashed(base: exp.Query, masked: Collection[str]) -> exp.Query:
    """``base`` with each masked column read as the MD5 of its text: the profile counts its
    values and distinct values without Billumy ever holding one."""
    if not masked or not isinstance(base, exp.Select):
        return base
    select = base.copy()
    projections = []
    for projection in select.expressions:
        if projection.alias_or_name in masked:
            text = exp.Cast(this=projection.unalias(), to=exp.DataType.build("TEXT"))
            projection = exp.alias_(exp.MD5(this=text), projection.alias_or_name, quoted=True)
        projections.append(projection)
    select.set("expressions", projections)
    return select


def _load(con: Any, name: str, names: list[str], rows: list[tuple[Any, ...]]) -> None:
    """``rows`` as DuckDB's temporary table ``name`` (a CTE's result from the source)."""
    columns = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    arrow = pa.table(columns) if rows else pa.table({n: pa.array([], pa.null()) for n in names})
    _load_arrow(con, name, arrow)


def _load_arrow(con: Any, name: str, arrow: pa.Table) -> None:
    with sandbox.guarded(con):
        con.register("pushed_rows", arrow)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {_quote(name)} AS FROM pushed_rows")
        finally:
            con.unregister("pushed_rows")


def _cube_schema(shape: cube.Shape, types: dict[str, str]) -> pa.Schema:
    """The Arrow schema of :func:`billumy.insights.cube.cube_sql`'s columns, in its order."""
    fields = [(d, _ARROW[types[d]]) for d in shape.dims]
    fields.append((cube.ROWS, pa.int64()))
    for name, kind in shape.measures:
        fields += [
            (cube.stat("sum", name), _ARROW[kind]),
            (cube.stat("count", name), pa.int64()),
            (cube.stat("min", name), _ARROW[kind]),
            (cube.stat("max", name), _ARROW[kind]),
        ]
    fields += [(cube.stat("count", name), pa.int64()) for name in shape.counted]
    return pa.schema(fields)


def _batch(block: Sequence[Sequence[Any]], schema: pa.Schema, dialect: str) -> pa.RecordBatch:
    """A block of driver rows as a record batch (SQLite's ISO dates read back as dates;
    MySQL's decimals as the column's numbers, its TINYINT(1) as booleans)."""
    columns = list(zip(*block, strict=True))
    arrays = []
    for values, column in zip(columns, schema, strict=True):
        if dialect == "mysql":
            values = tuple(_mysql_typed(v, column.type) for v in values)
        # Text stays text, even when it reads as a date.
        if column.type != pa.string() and (dialect == "sqlite" or column.type == pa.date32()):
            values = tuple(_sqlite_value(v) for v in values)
        arrays.append(pa.array(values, column.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def arrow_schema(found: Sequence[Column]) -> pa.Schema:
    """The Arrow schema of rows of these columns, as :meth:`Source.arrow_blocks` reads them."""
    return pa.schema([(c.name, _ARROW[c.type]) for c in found])


def _arrow(found: list[Column], rows: list[tuple[Any, ...]]) -> pa.Table:
    schema = arrow_schema(found)
    return pa.table(
        {c.name: pa.array([r[i] for r in rows], _ARROW[c.type]) for i, c in enumerate(found)},
        schema=schema,
    )


def _duckdb_table(arrow: pa.Table, limits: Limits) -> Table:
    con = sandbox.connect(limits)
    try:
        with sandbox.guarded(con):
            con.register("sampled_rows", arrow)
            con.execute("CREATE TABLE data AS FROM sampled_rows")
            con.unregister("sampled_rows")
        return Table(con)
    except BaseException:
        sandbox.close(con)
        raise


def dialect_of(url: str) -> str:
    """sqlglot's dialect for a source URL: "sqlite", "mysql" (MySQL or MariaDB) or "postgres"."""
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("mysql", "mariadb"):
        return "mysql"
    return "postgres"


# A source's connections: a few (questions come one at a time per table), checked before use
# (a replica restarted meanwhile), renewed every ten minutes.
_POOL: dict[str, Any] = {
    "pool_size": 2,
    "max_overflow": 4,
    "pool_pre_ping": True,
    "pool_recycle": 600,
}


def _make_engine(config: SourceConfig, dialect: str) -> Engine:
    url = make_url(config.resolved_url())
    if dialect == "sqlite":
        path = url.database or ""
        uri = "file:" + path.replace("?", "%3f").replace("#", "%23") + "?mode=ro"

        def connect() -> sqlite3.Connection:
            con = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5)
            _sqlite_functions(con)
            return con

        return sa.create_engine("sqlite+pysqlite://", creator=connect, poolclass=sa.NullPool)
    if dialect == "mysql":
        return mysql.make_engine(
            url,
            connect_timeout=config.connect_timeout,
            statement_timeout=config.statement_timeout,
            pool=_POOL,
        )
    url = url.set(drivername="postgresql+psycopg")
    options = "-c default_transaction_read_only=on -c TimeZone=UTC"
    return sa.create_engine(
        url,
        **_POOL,
        connect_args={
            "connect_timeout": max(1, int(config.connect_timeout)),
            "options": options,
            "application_name": "billumy",
        },
    )


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ISO_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?")


def _sqlite_value(value: Any) -> Any:
    """SQLite keeps dates as ISO text: read back as dates, as DuckDB and PostgreSQL give them."""
    if isinstance(value, str):
        if _ISO_DATE.fullmatch(value):
            return date.fromisoformat(value)
        if _ISO_TIME.fullmatch(value):
            return datetime.fromisoformat(value)
    return value


class _StddevSamp:
    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, value: float | None) -> None:
        if value is not None:
            self.values.append(float(value))

    def finalize(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None


class _RegrSlope:
    def __init__(self) -> None:
        self.pairs: list[tuple[float, float]] = []

    def step(self, y: float | None, x: float | None) -> None:
        if x is not None and y is not None:
            self.pairs.append((float(x), float(y)))

    def finalize(self) -> float | None:
        if len(self.pairs) < 2:
            return None
        xs, ys = zip(*self.pairs, strict=True)
        try:
            return statistics.linear_regression(xs, ys).slope
        except statistics.StatisticsError:
            return None


class _Corr(_RegrSlope):
    def finalize(self) -> float | None:
        if len(self.pairs) < 2:
            return None
        xs, ys = zip(*self.pairs, strict=True)
        try:
            return statistics.correlation(xs, ys)
        except statistics.StatisticsError:
            return None


class _PercentileCont:
    def __init__(self) -> None:
        self.values: list[float] = []
        self.fraction = 0.5

    def step(self, value: float | None, fraction: float) -> None:
        self.fraction = float(fraction)
        if value is not None:
            self.values.append(float(value))

    def finalize(self) -> float | None:
        if not self.values:
            return None
        ordered = sorted(self.values)
        at = self.fraction * (len(ordered) - 1)
        low = int(at)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def _date_trunc(unit: str, value: str | None) -> str | None:
    """DuckDB's ``date_trunc`` on SQLite's ISO text, for the grains facts use."""
    if value is None:
        return None
    day = date.fromisoformat(str(value)[:10])
    if unit == "year":
        day = day.replace(month=1, day=1)
    elif unit == "quarter":
        day = day.replace(month=3 * ((day.month - 1) // 3) + 1, day=1)
    elif unit == "month":
        day = day.replace(day=1)
    elif unit == "week":
        day = day - timedelta(days=day.weekday())
    if len(str(value)) > 10:  # a timestamp stays one: midnight of its day
        return f"{day.isoformat()} 00:00:00"
    return day.isoformat()


def _md5(value: Any) -> str | None:
    if value is None:
        return None
    return hashlib.md5(str(value).encode(), usedforsecurity=False).hexdigest()


def _sqlite_functions(con: sqlite3.Connection) -> None:
    """What the facts' SQL needs and SQLite lacks, as deterministic Python functions."""
    con.create_function("billumy_date_trunc", 2, _date_trunc, deterministic=True)
    con.create_function("md5", 1, _md5, deterministic=True)
    con.create_aggregate("stddev_samp", 1, _StddevSamp)  # type: ignore[arg-type]
    con.create_aggregate("regr_slope", 2, _RegrSlope)  # type: ignore[arg-type]
    con.create_aggregate("percentile_cont", 2, _PercentileCont)  # type: ignore[arg-type]
    con.create_aggregate("corr", 2, _Corr)  # type: ignore[arg-type]


def _deadline(conn: sa.Connection, seconds: float) -> None:
    """Interrupt SQLite statements running past ``seconds`` from now."""
    raw = conn.connection.driver_connection
    stop = time.monotonic() + seconds
    raw.set_progress_handler(lambda: 1 if time.monotonic() > stop else 0, 10_000)  # type: ignore[union-attr]


def _duckdb_type(kind: Any) -> str | None:
    if isinstance(kind, TINYINT) and kind.display_width == 1:
        return "BOOLEAN"  # MySQL's BOOLEAN (a Django BooleanField)
    for generic, name in _TYPES:
        if isinstance(kind, generic):
            return name
    return None


def _split_name(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return schema or None, table


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value == value.to_integral_value() and value.as_tuple().exponent == 0:
            return int(value)
        return float(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    return value


def _mysql_flags(cursor: Any) -> list[bool]:
    """Which result columns are TINYINT(1), MySQL's booleans (read back as 0 and 1)."""
    described = getattr(cursor, "description", None) or []
    return [d[1] == _MYSQL_TINY and d[3] == 1 for d in described]


_MYSQL_TINY = 1  # pymysql.constants.FIELD_TYPE.TINY


def _mysql_row(row: Sequence[Any], booleans: list[bool]) -> tuple[Any, ...]:
    return tuple(
        bool(v) if flag and isinstance(v, int) else _plain(v)
        for v, flag in zip(row, booleans, strict=True)
    )


def _mysql_typed(value: Any, kind: pa.DataType) -> Any:
    """A MySQL value as ``kind`` holds it: a DECIMAL sum as a float or an integer, 0/1 as a
    boolean."""
    if value is None:
        return None
    if kind == pa.float64() and isinstance(value, Decimal | int):
        return float(value)
    if kind == pa.int64() and isinstance(value, Decimal):
        return int(value)
    if kind == pa.bool_() and isinstance(value, int | Decimal):
        return bool(value)
    return value


def _kind(exc: Exception) -> str:
    """The driver error's class name only: its message may hold a host or a user name."""
    return type(getattr(exc, "orig", exc)).__name__
