"""Snapshots: the rows of a source's table, copied into a dataset version when asked.

``POST /datasets`` with ``{"source": "shop", "table": "public.vendas_pedido", "filter": [...]}``
reads the table from the source and stores its rows as the next version of a dataset, exactly
as an upload is stored (Parquet, the same content hash: an unchanged table is no new version).
So "what changed since last week" works on live data too: take a snapshot now and then, and
ask the same question of each version.

* The select is written as DuckDB SQL over ``data`` and compiled by
  :func:`billumy.insights.pushdown.compile_query` in the table's scope
  (:meth:`~billumy.insights.sources.Source.scope`), so the allow-list, the masks and the
  parameter checks apply as to any question about the source.
* The filter's conditions (``column``, ``op``, ``value``; all must hold) name allowed, unmasked
  columns; their values are bound parameters, checked against the column's type first (a date
  column takes ISO dates, a number column numbers), never written into the statement.
* Masked columns are never read: they are left out of the snapshot, which says so.
* The rows come in blocks (a server-side cursor on PostgreSQL), in a fixed order (the primary
  key, else every column), so that the same rows always hash the same. More than
  ``max_dataset_rows`` rows, or more than ``max_dataset_bytes`` bytes of them in memory, stops
  the read: a 413 that suggests a filter.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
from sqlglot import exp

from billumy.errors import BadRequestError, PayloadTooLargeError
from billumy.insights import data, pushdown
from billumy.insights.sources import Column, Source, arrow_schema
from billumy.settings import SourceTableConfig

OPS = ("=", "!=", "<", "<=", ">", ">=", "in", "between")
MAX_LISTED = 1000  # values of one "in"
_SQL_OPS = {"!=": "<>"}
_NUMBERS = ("BIGINT", "DOUBLE")


@dataclass(frozen=True)
class Condition:
    """One condition of a filter, its value checked and typed for the source's driver (a
    list of them for ``in`` and ``between``)."""

    column: str
    op: str
    value: Any


@dataclass
class Snapshot:
    """The rows read, as a table ready to store, and what they are (``origin``: the source,
    table, filter and columns, never a URL); ``masked``: the columns left out."""

    table: data.Table
    origin: dict[str, Any]
    masked: list[str]


def take(
    source: Source,
    spec: SourceTableConfig,
    *,
    conditions: list[Any] | None,
    columns: list[str] | None,
    limits: data.Limits,
) -> Snapshot:
    """The rows of ``spec`` in ``source`` that ``conditions`` pick, ``columns`` of them (every
    allowed, unmasked column by default), read within ``limits`` (blocking: run it in a
    thread). 400 for a column that is masked or unknown and for a malformed condition."""
    shaped = shape(conditions)
    scope, found = source.scope(spec)
    by_name = {c.name: c for c in found}
    masked = [c.name for c in found if c.masked]
    chosen = _chosen(by_name, columns, spec.name)
    typed = [_typed(by_name, c, source.dialect, spec.name) for c in shaped]
    where, params = _where(typed)
    names = ", ".join(data.quote_ident(c.name) for c in chosen)
    keyed = source.dialect != "sqlite" and isinstance(scope.rowid, exp.Column)
    order = "rowid" if keyed else names  # the primary key, else the rows' whole content
    listed = ", ".join(_selected(c) for c in chosen)
    sql = f"SELECT {listed} FROM data{where} ORDER BY {order}"  # noqa: S608 - quoted names, binds
    compiled = pushdown.compile_query(scope, sql, params, source.dialect)
    arrow = _read(source, spec, compiled, arrow_schema(chosen), limits)
    if arrow.num_rows == 0:
        raise BadRequestError(
            f"no rows of table '{spec.name}' of source '{source.name}' match the filter; "
            "nothing to store"
        )
    origin = {
        "source": source.name,
        "table": spec.name,
        "filter": [{"column": c.column, "op": c.op, "value": c.value} for c in shaped],
        "columns": [c.name for c in chosen],
        "masked": masked,
    }
    return Snapshot(table=data.from_arrow(arrow, limits), origin=origin, masked=masked)


def shape(conditions: list[Any] | None) -> list[Condition]:
    """The filter as sent, its shape checked (objects of ``column``, ``op`` and ``value``; an
    operator of :data:`OPS`; a list of values for ``in``, two for ``between``, one scalar for
    the others); the values still as sent. 400 naming the first condition that is wrong."""
    found = []
    for number, item in enumerate(conditions or [], start=1):
        where = f"filter condition {number}"
        if not isinstance(item, dict) or set(item) != {"column", "op", "value"}:
            raise BadRequestError(f"{where}: give exactly column, op and value")
        column, op, value = item["column"], item["op"], item["value"]
        if not isinstance(column, str) or not column:
            raise BadRequestError(f"{where}: column must be a column's name")
        if op not in OPS:
            listed = ", ".join(OPS)
            raise BadRequestError(f"{where}: op must be one of {listed}")
        if op == "in":
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_LISTED:
                raise BadRequestError(f"{where}: 'in' takes a list of 1 to {MAX_LISTED} values")
        elif op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise BadRequestError(f"{where}: 'between' takes a list of two values")
        elif isinstance(value, list):
            raise BadRequestError(f"{where}: '{op}' takes one value")
        for one in value if isinstance(value, list) else [value]:
            if one is None or isinstance(one, dict | list):
                raise BadRequestError(f"{where}: values are text, numbers or booleans")
            if not _storable(one):
                raise BadRequestError(f"{where}: numbers must be finite, integers within 64 bits")
        found.append(Condition(column, op, value))
    return found


def _storable(value: Any) -> bool:
    """Whether a database can bind ``value``: no NaN or infinity (JSON has none, but the
    parser reads them), no integer past 64 bits (SQLite cannot bind one)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63
    return True


def _chosen(by_name: dict[str, Column], columns: list[str] | None, table: str) -> list[Column]:
    """The columns asked for (every allowed one by default), masked ones left out."""
    if not columns:
        kept = [c for c in by_name.values() if not c.masked]
        if not kept:
            raise BadRequestError(f"every column of table '{table}' is masked: nothing to copy")
        return kept
    for name in columns:
        _readable(by_name, name, table)
    return [c for c in by_name.values() if c.name in set(columns)]


def _selected(column: Column) -> str:
    """The column as selected: PostgreSQL's numeric (exact decimals) read as a double, the
    type the catalog gives it, as the questions' aggregates read it."""
    name = data.quote_ident(column.name)
    return f"CAST({name} AS DOUBLE) AS {name}" if column.type == "DOUBLE" else name


def _readable(by_name: dict[str, Column], name: str, table: str) -> Column:
    column = by_name.get(name)
    if column is None:
        raise BadRequestError(f"table '{table}' has no allowed column {name!r}")
    if column.masked:
        raise BadRequestError(f"column {name!r} of table '{table}' is masked: it is never copied")
    return column


def _typed(by_name: dict[str, Column], cond: Condition, dialect: str, table: str) -> Condition:
    column = _readable(by_name, cond.column, table)
    if isinstance(cond.value, list):
        value: Any = [_value(column, v, dialect) for v in cond.value]
    else:
        value = _value(column, cond.value, dialect)
    return Condition(column.name, cond.op, value)


def _value(column: Column, value: Any, dialect: str) -> Any:
    """``value`` as the driver binds it for ``column`` (400 when it cannot be one of its)."""
    kind = column.type
    if kind in _NUMBERS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequestError(f"column {column.name!r} holds numbers: compare it with one")
        return value
    if kind == "BOOLEAN":
        if not isinstance(value, bool):
            raise BadRequestError(f"column {column.name!r} holds true or false")
        return value
    if kind in ("DATE", "TIMESTAMP"):
        return _moment(column, value, kind, dialect)
    if isinstance(value, bool):
        raise BadRequestError(f"column {column.name!r} holds text: compare it with text")
    return str(value)


def _moment(column: Column, value: Any, kind: str, dialect: str) -> Any:
    """An ISO date or time for a date or time column: a date or datetime for PostgreSQL and
    MySQL; for SQLite, which keeps them as ISO text, the same text as it writes them."""
    wrong = BadRequestError(
        f"column {column.name!r} holds {'dates' if kind == 'DATE' else 'times'}: compare it "
        "with an ISO date ('2024-05-31') or time ('2024-05-31T12:00:00')"
    )
    if not isinstance(value, str):
        raise wrong
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise wrong from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    if kind == "DATE":
        day: date = moment.date()
        return day if dialect != "sqlite" else day.isoformat()
    return moment if dialect != "sqlite" else moment.isoformat(sep=" ")


def _where(conditions: list[Condition]) -> tuple[str, list[Any]]:
    """`` WHERE`` and the conditions, each value a ``?``, and the values in their order."""
    parts: list[str] = []
    params: list[Any] = []
    for cond in conditions:
        name = data.quote_ident(cond.column)
        if cond.op == "in":
            parts.append(f"{name} IN ({', '.join('?' for _ in cond.value)})")
            params += cond.value
        elif cond.op == "between":
            parts.append(f"{name} BETWEEN ? AND ?")
            params += cond.value
        else:
            parts.append(f"{name} {_SQL_OPS.get(cond.op, cond.op)} ?")
            params.append(cond.value)
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


def _read(
    source: Source,
    spec: SourceTableConfig,
    compiled: pushdown.Compiled,
    schema: pa.Schema,
    limits: data.Limits,
) -> pa.Table:
    """The statement's rows, a block at a time, stopped past the dataset limits."""
    batches: list[pa.RecordBatch] = []
    rows = size = 0
    what = f"the snapshot of table '{spec.name}' of source '{source.name}'"
    blocks = source.arrow_blocks(compiled.sql, compiled.params, schema, stream=True)
    try:
        with contextlib.closing(blocks):
            for batch in blocks:
                rows += batch.num_rows
                size += batch.nbytes
                if rows > limits.max_rows:
                    raise PayloadTooLargeError(
                        f"{what} has more than {limits.max_rows} rows (max_dataset_rows); "
                        "add a filter to copy fewer"
                    )
                if size > limits.max_bytes:
                    raise PayloadTooLargeError(
                        f"{what} takes more than {limits.max_bytes} bytes (max_dataset_bytes); "
                        "add a filter or name fewer columns"
                    )
                batches.append(batch)
    except pa.ArrowException:
        raise BadRequestError(f"{what} holds a value that does not fit its column's type") from None
    return pa.Table.from_batches(batches, schema=schema)
