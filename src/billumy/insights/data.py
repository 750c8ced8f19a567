"""Loading a client's data into DuckDB, safely and within limits.

Insights are only as trustworthy as the table they are computed from, so loading is strict:

* every loader ends in one in-memory DuckDB table named ``data`` owned by a :class:`Table`;
* column names are arbitrary user strings, so SQL only ever sees them through
  :func:`quote_ident`, and values only ever travel as ``?`` parameters;
* CSV is parsed with a dialect we choose (delimiter sniffed among ``,`` ``;`` tab ``|``, the
  header read by Python's :mod:`csv`) by DuckDB's strict parser with nothing auto-detected:
  column types are guessed from the first rows (boolean, integer, double, ISO date, else
  text), a column whose later rows disagree is read again as text, and text columns are
  typed afterwards by :func:`_infer_types`. DuckDB's own sniffer is not used: on small
  files with one bad row it can silently return no rows, and it cannot read Brazilian
  numbers such as ``1.234,56``. When DuckDB rejects the file, Python's :mod:`csv` finds the
  first bad physical line so the error can name it;
* text columns whose every value looks like a number, a boolean or a date are typed as such
  (the same pass runs for records, JSON and Parquet), so the profiler classifies by type
  alone. Text with leading zeros (``"007"``, zip codes) stays text;
* limits (rows, columns, cell length, bytes sent, bytes once decompressed) are checked as
  early as the format allows (a Parquet file's footer and a streaming scan before anything is
  materialised) and raise :class:`~billumy.errors.PayloadTooLargeError` (413); malformed input
  raises :class:`~billumy.errors.BadRequestError` (400) with a message meant for the client;
* every connection comes from :func:`billumy.insights.sandbox.connect`: no file access but the
  one input file, configuration locked, memory, threads, spill space and time per query
  bounded (see :mod:`billumy.insights.sandbox`).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from billumy.errors import BadRequestError, PayloadTooLargeError
from billumy.insights import sandbox
from billumy.insights.sandbox import Limits

__all__ = [
    "Limits",
    "Table",
    "dataset_hash",
    "from_arrow",
    "from_columns",
    "from_csv",
    "from_file",
    "from_records",
    "quote_ident",
    "save_parquet",
]

DELIMITERS = (",", ";", "\t", "|")
SNIFF_CHARS = 64 * 1024
TYPE_SAMPLE_ROWS = 2000
# Units a column's text may carry: currencies (ISO codes) and percentage points.
UNITS = ("BRL", "USD", "percent")
_UNITS_KEY = "billumy.units"  # the Parquet key-value metadata that keeps them


def quote_ident(name: str) -> str:
    """``name`` as a SQL identifier: in double quotes, inner double quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


class Table:
    """One in-memory DuckDB database holding the data in a table named ``data``.

    Build it with the loaders (:func:`from_csv`, :func:`from_records`, ...). It is not
    thread-safe: use it from one thread at a time (the API runs it in a worker thread).
    Queries run under the connection's bounds (:mod:`billumy.insights.sandbox`); a result of
    more than ``max_result_rows`` rows is a 413.

    ``reads_rows`` says whether a scan of the rows themselves is cheap (it is here, in memory);
    a source's table (:class:`~billumy.insights.sources.SourceTable`) says no, and the salient
    facts that need one (outliers, correlations) are then left out.
    """

    reads_rows = True

    def __init__(self, con: duckdb.DuckDBPyConnection, units: dict[str, str] | None = None) -> None:
        self.con = con
        self.limits = sandbox.limits_of(con)
        described = _run(
            con,
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE table_name = 'data' ORDER BY column_index",
        )
        self.columns: list[str] = [str(name) for name, _ in described]
        self.types: dict[str, str] = {str(name): str(kind) for name, kind in described}
        self.row_count: int = int(_run(con, "SELECT count(*) FROM data")[0][0])
        # The unit a number column's text wrote beside its values ("R$ 1.234,56" -> BRL,
        # "1,65%" -> percent), which typing took off; kept with the data (save_parquet).
        self.units: dict[str, str] = {
            c: u for c, u in (units or {}).items() if c in self.types and u in UNITS
        }

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run ``sql`` (with ``?`` parameters) and return all rows."""
        return sandbox.run(self.con, sql, params, max_rows=self.limits.max_result_rows)

    def records(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Run ``sql`` and return its rows as dicts keyed by the result's column names."""
        names, rows = sandbox.described(self.con, sql, params, max_rows=self.limits.max_result_rows)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def refreshed(self) -> Table:
        """The table read anew after a statement redefined ``data`` (a derived column)."""
        return Table(self.con, self.units)

    def close(self) -> None:
        sandbox.close(self.con)

    def __enter__(self) -> Table:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _bounds(limits: Limits | None, threads: int | None) -> Limits:
    limits = limits or Limits()
    return limits if threads is None else replace(limits, threads=threads)


def _run(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None
) -> list[tuple[Any, ...]]:
    """Execute and fetch everything, under the connection's bounds."""
    return sandbox.run(con, sql, params)


# --- checks shared by all loaders ---------------------------------------------------------


def _check_names(names: Sequence[str], limits: Limits) -> None:
    if not names:
        raise BadRequestError("the data is empty")
    if len(names) > limits.max_columns:
        raise PayloadTooLargeError(
            f"the data has {len(names)} columns; at most {limits.max_columns} are allowed"
        )
    seen: dict[str, str] = {}
    for position, name in enumerate(names, start=1):
        if not name.strip():
            raise BadRequestError(f"column {position} has an empty name")
        key = name.casefold()
        if key in seen:
            raise BadRequestError(
                f"duplicate column name {name!r} (column names are case-insensitive)"
            )
        seen[key] = name


def _check_rows(count: int, limits: Limits) -> None:
    if count > limits.max_rows:
        raise PayloadTooLargeError(
            f"the data has more than {limits.max_rows} rows; at most {limits.max_rows} are allowed"
        )


def _check_bytes(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise PayloadTooLargeError(
            f"the data is {size} bytes; at most {limits.max_bytes} are allowed"
        )


def _check_cells(table: Table, limits: Limits) -> None:
    """413 naming the first text column holding a cell over ``max_cell_chars``, or when the
    table takes more than ``max_decoded_bytes`` (see :func:`_decoded_bytes`)."""
    text = [name for name in table.columns if table.types[name] == "VARCHAR"]
    exprs = [e for c in map(quote_ident, text) for e in (f"max(length({c}))", f"sum(strlen({c}))")]
    found = table.query(f"SELECT {', '.join(exprs)} FROM data")[0] if exprs else ()  # noqa: S608
    for name, longest in zip(text, found[0::2], strict=True):
        _check_cell(name, longest, limits)
    sizes = {name: int(total or 0) for name, total in zip(text, found[1::2], strict=True)}
    _check_decoded(_decoded_bytes(table.row_count, table.types, sizes), limits)


def _check_cell(name: str, longest: int | None, limits: Limits) -> None:
    if longest is not None and longest > limits.max_cell_chars:
        raise PayloadTooLargeError(
            f"column {name!r} holds a value of {longest} characters; at most "
            f"{limits.max_cell_chars} are allowed"
        )


def _decoded_bytes(rows: int, types: dict[str, str], text_bytes: dict[str, int]) -> int:
    """About what ``rows`` rows of these columns take in DuckDB's memory: 16 bytes a cell for
    text (plus its bytes), 8 for anything else."""
    width = sum(16 if name in text_bytes else 8 for name in types)
    return rows * width + sum(text_bytes.values())


def _check_decoded(size: int, limits: Limits) -> None:
    if size > limits.max_decoded_bytes:
        raise PayloadTooLargeError(
            f"the data takes about {size} bytes once decompressed; at most "
            f"{limits.max_decoded_bytes} are allowed"
        )


def _finish(
    con: duckdb.DuckDBPyConnection,
    limits: Limits,
    *,
    decimal_comma: bool,
    thousands_dot: bool = False,
    units: dict[str, str] | None = None,
) -> Table:
    """Shared tail of every loader: limits, emptiness, nested values, typing.
    ``thousands_dot``: the file writes its decimals with a comma, so a dot groups thousands
    ("219.498" km is 219,498). ``units``: those a stored file kept (``save_parquet``)."""
    try:
        table = Table(con, units)
        _check_names(table.columns, limits)
        _check_rows(table.row_count, limits)
        if table.row_count == 0:
            raise BadRequestError("the data is empty")
        for name, kind in table.types.items():
            if _is_nested_type(kind):
                raise BadRequestError(f"column {name!r} holds nested values; send flat records")
        _check_cells(table, limits)
        retyped = _infer_types(
            con,
            table.columns,
            table.types,
            row_count=table.row_count,
            decimal_comma=decimal_comma,
            thousands_dot=thousands_dot,
        )
        if retyped:
            written = {c: cand.unit for c, cand in retyped.items() if cand.unit is not None}
            table = Table(con, table.units | written)
        return table
    except BaseException:
        sandbox.close(con)
        raise


def _is_nested_type(kind: str) -> bool:
    return kind.endswith("]") or kind.startswith(("STRUCT", "MAP", "UNION", "LIST"))


# --- typing text columns ------------------------------------------------------------------

_INT = r"\s*[+-]?(0|[1-9][0-9]*)\s*"
_NUM = r"\s*[+-]?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*"
_COMMA_NUM = r"\s*[+-]?(0|[1-9][0-9]{0,2}(\.[0-9]{3})+|[1-9][0-9]*)(,[0-9]+)?\s*"
_SHORT_COMMA_NUM = r"\s*[+-]?(0|[1-9][0-9]*)(,[0-9]{1,2})?\s*"
# Money written as text: "R$ 1.234,56" (Brazilian: dot thousands, comma decimals, whatever
# the file's delimiter) and "$1,234.56" / "US$ 1,234.56" (comma thousands, dot decimals).
_BRL = r"\s*-?\s*R\$\s*-?(0|[1-9][0-9]{0,2}(\.[0-9]{3})+|[1-9][0-9]*)(,[0-9]+)?\s*"
_USD = r"\s*-?\s*(US)?\$\s*-?(0|[1-9][0-9]{0,2}(,[0-9]{3})+|[1-9][0-9]*)(\.[0-9]+)?\s*"
_BOOL = r"\s*(?i:true|false)\s*"
# A percentage written with its sign: "1,65%", "12.5 %" (kept in points: 1.65).
_PERCENT = r"\s*-?(0|[1-9][0-9]*)([.,][0-9]+)?\s*%\s*"
_DATE = r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*"
_MONTH = r"\s*[0-9]{4}-[0-9]{2}\s*"
_BR_DATE = r"\s*[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}\s*"  # "05/03/2024", also "1/16/2024"
_BR_MONTH = r"\s*(0[1-9]|1[0-2])/[0-9]{4}\s*"  # "01/2024", a month of accounts (competência)
_BR_SHORT_DATE = r"\s*[0-9]{2}/[0-9]{2}/[0-9]{2}\s*"  # "15/03/24"
# A month by its name, as spreadsheets write it in Portuguese and English: "jan/23" (what
# pt-BR Excel shows for a month), "fev/2024", "Mar-24", "abr.24", "março/2024", "Sep 2024",
# "janeiro de 2023".
_NAMED_MONTH = (
    r"\s*(?i:jan(eiro|uary)?|fev(ereiro)?|feb(ruary)?|mar([cç]o|ch)?|abr(il)?|apr(il)?|mai[o]?"
    r"|may|jun(ho|e)?|jul(ho|y)?|ago(sto)?|aug(ust)?|set(embro)?|sep(t|tember)?|out(ubro)?"
    r"|oct(ober)?|nov(embro|ember)?|dez(embro)?|dec(ember)?)\.?(\s+de\s+|[/ -])?"
    r"([0-9]{2}|[0-9]{4})\s*"
)
_TIMESTAMP = r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?Z?)?\s*"


@dataclass(frozen=True)
class _Candidate:
    """A type a text column may really have: ``convert`` yields NULL where a value doesn't fit."""

    name: str
    pattern: str
    convert: str  # SQL with {c} for the quoted column
    needs_comma: bool = False  # only where some value holds a comma (decimal-comma numbers)
    unit: str | None = None  # what the text wrote beside the number (UNITS)


def _candidates(decimal_comma: bool, thousands_dot: bool = False) -> list[_Candidate]:
    trimmed = "trim({c})"
    numbers = [
        _Candidate("BIGINT", _INT, f"TRY_CAST({trimmed} AS BIGINT)"),
        _Candidate("DOUBLE", _NUM, f"TRY_CAST({trimmed} AS DOUBLE)"),
    ]
    if not decimal_comma:
        # A comma-separated file's quoted "89,9" or "1234,50": one or two digits after the
        # comma are decimals, never a group of thousands ("1,234" stays as it is).
        numbers.insert(
            1,
            _Candidate(
                "DOUBLE",
                _SHORT_COMMA_NUM,
                f"TRY_CAST(replace({trimmed}, ',', '.') AS DOUBLE)",
                needs_comma=True,
            ),
        )
    if decimal_comma:
        comma = _Candidate(
            "DOUBLE",
            _COMMA_NUM,
            f"TRY_CAST(replace(replace({trimmed}, '.', ''), ',', '.') AS DOUBLE)",
            needs_comma=not thousands_dot,
        )
        numbers.insert(1, comma)
    bare = "replace(replace(replace({c}, 'US$', ''), 'R$', ''), ' ', '')"
    numbers += [
        _Candidate(
            "DOUBLE",
            _BRL,
            f"TRY_CAST(replace(replace({bare}, '.', ''), ',', '.') AS DOUBLE)",
            unit="BRL",
        ),
        _Candidate(
            "DOUBLE",
            _USD,
            f"TRY_CAST(replace(replace({bare}, '$', ''), ',', '') AS DOUBLE)",
            unit="USD",
        ),
        _Candidate(
            "DOUBLE",
            _PERCENT,
            f"TRY_CAST(replace(replace(replace({trimmed}, '%', ''), ' ', ''), ',', '.') AS DOUBLE)",
            unit="percent",
        ),
    ]
    return [
        _Candidate("BOOLEAN", _BOOL, f"TRY_CAST({trimmed} AS BOOLEAN)"),
        *numbers,
        _Candidate("DATE", _DATE, f"TRY_CAST({trimmed} AS DATE)"),
        _Candidate("DATE", _MONTH, f"CAST(try_strptime({trimmed}, '%Y-%m') AS DATE)"),
        _Candidate("DATE", _BR_DATE, f"CAST(try_strptime({trimmed}, '%d/%m/%Y') AS DATE)"),
        # "03/15/2024": a US date, when some day is past 12 (dd/mm/yyyy is tried first).
        _Candidate("DATE", _BR_DATE, f"CAST(try_strptime({trimmed}, '%m/%d/%Y') AS DATE)"),
        _Candidate("DATE", _BR_SHORT_DATE, f"CAST(try_strptime({trimmed}, '%d/%m/%y') AS DATE)"),
        _Candidate("DATE", _BR_MONTH, f"CAST(try_strptime({trimmed}, '%m/%Y') AS DATE)"),
        _Candidate("DATE", _NAMED_MONTH, _named_month(trimmed)),
        _Candidate("TIMESTAMP", _TIMESTAMP, f"TRY_CAST(rtrim({trimmed}, 'Z') AS TIMESTAMP)"),
    ]


_MONTHS_PT = ["jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez"]
_MONTHS_EN = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def _named_month(text: str) -> str:
    """SQL turning a month by its name (``_NAMED_MONTH``) into its first day; a two-digit
    year is this century's."""
    head = f"left(lower(strip_accents({text})), 3)"
    month = " ".join(
        f"WHEN {head} = '{name}' THEN {number}"
        for names in (_MONTHS_PT, _MONTHS_EN)
        for number, name in enumerate(names, start=1)
    )
    year = f"TRY_CAST(regexp_extract({text}, '([0-9]+)$', 1) AS INTEGER)"
    return (
        f"make_date(CASE WHEN {year} < 100 THEN 2000 + {year} ELSE {year} END, CASE {month} END, 1)"
    )


def _fits(candidate: _Candidate, column: str) -> str:
    """SQL counting the values of ``column`` that don't fit ``candidate``; NULL when the
    column has no non-blank value to judge by."""
    c = quote_ident(column)
    pattern = candidate.pattern.replace("'", "''")
    converted = candidate.convert.format(c=c)
    misfit = (
        f"count(*) FILTER (WHERE trim({c}) <> '' AND "
        f"(NOT regexp_full_match({c}, '{pattern}') OR {converted} IS NULL))"
    )
    if candidate.needs_comma:
        misfit = f"CASE WHEN bool_or(contains({c}, ',')) THEN {misfit} ELSE 1 END"
    return f"CASE WHEN bool_or(trim({c}) <> '') THEN {misfit} END"


def _infer_types(
    con: duckdb.DuckDBPyConnection,
    columns: list[str],
    types: dict[str, str],
    *,
    row_count: int,
    decimal_comma: bool,
    thousands_dot: bool = False,
) -> dict[str, _Candidate]:
    """Retype text columns whose every non-blank value fits one candidate type.

    One query tries every candidate on the first rows; the candidates that fit them are
    then checked in order on the whole table (one query per round, usually one round; none
    when the sample was the whole table). Returns the type each retyped column took (none:
    the table was not rebuilt).
    """
    text = [c for c in columns if types[c] == "VARCHAR"]
    if not text:
        return {}
    whole = row_count <= TYPE_SAMPLE_ROWS  # the sample is the table
    pending = _fitting_in_sample(con, text, _candidates(decimal_comma, thousands_dot), whole=whole)
    chosen: dict[str, _Candidate] = {}
    if whole:
        chosen = {c: cands[0] for c, cands in pending.items()}
        pending = {}
    while pending:
        probes = [(c, cands[0]) for c, cands in pending.items()]
        exprs = ", ".join(_fits(cand, c) for c, cand in probes)
        misfits = _run(con, f"SELECT {exprs} FROM data")[0]  # noqa: S608
        for (column, cand), misfit in zip(probes, misfits, strict=True):
            if misfit == 0:
                chosen[column] = cand
            if misfit == 0 or misfit is None:
                del pending[column]
            else:
                pending[column].pop(0)
        pending = {c: cands for c, cands in pending.items() if cands}
    if not chosen:
        return {}
    select = ", ".join(_retyped(c, chosen.get(c)) for c in columns)
    _run(con, f"CREATE OR REPLACE TABLE data AS SELECT {select} FROM data")  # noqa: S608
    return chosen


def _fitting_in_sample(
    con: duckdb.DuckDBPyConnection, text: list[str], options: list[_Candidate], *, whole: bool
) -> dict[str, list[_Candidate]]:
    """For each text column, the candidates its first rows fit (all of them when those rows
    are blank, unless they are the ``whole`` table); columns fitting none are left out.

    One value per column, checked in Python, rules out most candidates (a column of names
    fits none) before a single query checks what is left on the sample.
    """
    sample = f"(SELECT * FROM data LIMIT {TYPE_SAMPLE_ROWS})"  # noqa: S608
    any_value = ", ".join(
        f"any_value({quote_ident(c)}) FILTER (WHERE trim({quote_ident(c)}) <> '')" for c in text
    )
    seen = _run(con, f"SELECT {any_value} FROM {sample}")[0]  # noqa: S608
    out: dict[str, list[_Candidate]] = {}
    probes: list[tuple[str, _Candidate]] = []
    for column, value in zip(text, seen, strict=True):
        if value is None:
            if not whole:
                out[column] = list(options)  # nothing to judge by in the sample
            continue
        fitting = [cand for cand in options if re.fullmatch(cand.pattern, str(value))]
        if fitting:
            out[column] = fitting
            probes += [(column, cand) for cand in fitting]
    if not probes:
        return out
    exprs = ", ".join(_fits(cand, c) for c, cand in probes)
    misfits = _run(con, f"SELECT {exprs} FROM {sample}")[0]  # noqa: S608
    for (column, cand), misfit in zip(probes, misfits, strict=True):
        if misfit:
            out[column].remove(cand)
    return {c: cands for c, cands in out.items() if cands}


def _retyped(column: str, candidate: _Candidate | None) -> str:
    c = quote_ident(column)
    if candidate is None:
        return c
    converted = candidate.convert.format(c=c)
    return f"CAST(CASE WHEN trim({c}) <> '' THEN {converted} END AS {candidate.name}) AS {c}"


# --- records and columns ------------------------------------------------------------------


def _column_array(name: str, values: list[Any]) -> pa.Array:
    """``values`` as one Arrow array; mixed types fall back to text, nesting is refused."""
    for value in values:
        if isinstance(value, dict | list | tuple | set):
            raise BadRequestError(f"column {name!r} holds nested values; send flat records")
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        array = pa.array([_as_text(v) for v in values], type=pa.string())
    if pa.types.is_null(array.type):
        array = array.cast(pa.string())
    return array


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def _load_arrow(arrow: pa.Table, limits: Limits) -> Table:
    _check_decoded(arrow.nbytes, limits)
    con = sandbox.connect(limits)
    try:
        con.register("billumy_source", arrow)
        _run(con, "CREATE TABLE data AS SELECT * FROM billumy_source")
        con.unregister("billumy_source")
    except BaseException:
        sandbox.close(con)
        raise
    return _finish(con, limits, decimal_comma=False)


def from_arrow(arrow: pa.Table, limits: Limits | None = None) -> Table:
    """A table from Arrow data (rows read from a source), checked and typed as records are."""
    return _load_arrow(arrow, _bounds(limits, None))


def from_columns(
    columns: dict[str, list[Any]], limits: Limits | None = None, *, threads: int | None = None
) -> Table:
    """A table from ``{"column": [values...]}``; every list must have the same length."""
    limits = _bounds(limits, threads)
    if not isinstance(columns, dict) or not columns:
        raise BadRequestError("the data is empty")
    names = [str(n) for n in columns]
    _check_names(names, limits)
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{n!r} has {k}" for n, k in lengths.items())
        raise BadRequestError(f"columns must all have the same length: {listed}")
    _check_rows(max(lengths.values()), limits)
    arrays = [_column_array(name, list(values)) for name, values in columns.items()]
    return _load_arrow(pa.Table.from_arrays(arrays, names=names), limits)


def from_records(
    records: list[dict[str, Any]], limits: Limits | None = None, *, threads: int | None = None
) -> Table:
    """A table from a list of flat objects: the union of keys (first seen first), nulls where
    a key is missing."""
    limits = _bounds(limits, threads)
    if not isinstance(records, list) or not records:
        raise BadRequestError("the data is empty")
    _check_rows(len(records), limits)
    for position, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise BadRequestError(f"record {position} is not an object")
    names = list(dict.fromkeys(key for record in records for key in record))
    _check_names([str(n) for n in names], limits)
    arrays = [_column_array(str(name), [r.get(name) for r in records]) for name in names]
    arrow = pa.Table.from_arrays(arrays, names=[str(n) for n in names])
    return _load_arrow(arrow, limits)


# --- CSV ----------------------------------------------------------------------------------


def _decode(data: str | bytes) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _sniff_delimiter(head: str) -> str:
    """The delimiter, among ``,`` ``;`` tab ``|``, that splits the first lines most evenly."""
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        rows = _head_rows(head, delimiter)[:200]
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        score = (sum(len(r) == width for r in rows) / len(rows), width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _header(head: str, delimiter: str) -> list[str]:
    try:
        first = next((r for r in csv.reader(io.StringIO(head), delimiter=delimiter) if r), None)
    except csv.Error as exc:
        raise BadRequestError(f"CSV line 1 could not be read: {exc}") from None
    if first is None:
        raise BadRequestError("the data is empty")
    return [name.strip() for name in first]


def _first_bad_line(path: Path, delimiter: str, width: int) -> str | None:
    """The first physical line whose row doesn't have ``width`` fields, said for the client."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        line = 1
        try:
            for row in reader:
                if row and len(row) != width:
                    return f"CSV line {line} has {_fields(len(row))}, expected {width}"
                line = reader.line_num + 1
        except csv.Error as exc:
            return f"CSV line {line} could not be read: {exc}"
    return None


def _fields(count: int) -> str:
    return f"{count} field" if count == 1 else f"{count} fields"


_DUCKDB_LINE = re.compile(r"CSV Error on Line: (\d+)")
_DUCKDB_WIDTH = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


def _duckdb_csv_message(error: str) -> str:
    line = _DUCKDB_LINE.search(error)
    width = _DUCKDB_WIDTH.search(error)
    if line and width:
        return f"CSV line {line[1]} has {_fields(int(width[2]))}, expected {width[1]}"
    first = error.splitlines()[0] if error else "unknown error"
    if line:
        return f"CSV line {line[1]} could not be read: {first}"
    return f"the CSV could not be read: {first}"


_CONVERSION = re.compile(r'Error when converting column "((?:[^"]|"")*)"')
# DuckDB's CSV reader rounds "2.5" into a BIGINT column, so whole numbers are read as DOUBLE
# (exact up to 15 digits) and made BIGINT afterwards when every value really is whole.
WHOLE = "DOUBLE"
_SAMPLE_TYPES: tuple[tuple[str, bool, re.Pattern[str]], ...] = (
    ("BOOLEAN", False, re.compile(r"(?i:true|false)")),
    (WHOLE, True, re.compile(r"[+-]?(0|[1-9][0-9]*)")),
    (
        "DOUBLE",
        False,
        re.compile(r"[+-]?((0|[1-9][0-9]*)\.[0-9]*|\.[0-9]+|(0|[1-9][0-9]*))([eE][+-]?[0-9]+)?"),
    ),
    ("DATE", False, re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")),
)


_COMMA_DECIMAL = re.compile(r"\s*-?\s*(R\$)?\s*-?[0-9][0-9.]*,[0-9]+\s*")
_DOT_THOUSANDS = re.compile(r"\s*[+-]?[1-9][0-9]{0,2}(\.[0-9]{3})+\s*")


def comma_decimals(head: str, delimiter: str) -> bool:
    """Whether a file not separated by commas writes decimals with a comma ("R$ 156.441,64",
    "3,5") in some column of its first rows: then a dot in its numbers groups thousands."""
    if delimiter == ",":
        return False
    rows = _head_rows(head, delimiter)[1 : TYPE_SAMPLE_ROWS + 1]
    return any(_COMMA_DECIMAL.fullmatch(v) for r in rows for v in r)


def _sample_types(
    head: str, delimiter: str, names: list[str], *, thousands_dot: bool = False
) -> tuple[dict[str, str], set[str]]:
    """Types for DuckDB's CSV reader, guessed from the rows in ``head``: the first that no
    sample value contradicts among boolean, whole number, double and ISO date; text
    otherwise. Also the columns of whole numbers (read as DOUBLE, see :data:`WHOLE`).
    With ``thousands_dot``, numbers with dots in thousands groups ("219.498") stay text, for
    :func:`_infer_types` to read as 219498."""
    rows = _head_rows(head, delimiter)[1 : TYPE_SAMPLE_ROWS + 1]
    types: dict[str, str] = {}
    whole: set[str] = set()
    for position, name in enumerate(names):
        values = [r[position] for r in rows if position < len(r) and r[position] != ""]
        types[name] = "VARCHAR"
        if thousands_dot and any(_DOT_THOUSANDS.fullmatch(v) for v in values):
            continue
        for kind, is_whole, pattern in _SAMPLE_TYPES:
            if values and all(pattern.fullmatch(v) for v in values):
                if is_whole and any(len(v.lstrip("+-")) > 15 for v in values):
                    break  # too long for a double: text, typed exactly afterwards
                types[name] = kind
                if is_whole:
                    whole.add(name)
                break
    return types, whole


def _whole_numbers_back(con: duckdb.DuckDBPyConnection, columns: list[str]) -> None:
    """Make BIGINT the columns read as DOUBLE whose every value is whole and exact."""
    if not columns:
        return
    checks = ", ".join(
        f"bool_and(isfinite({c}) AND {c} = trunc({c}) AND abs({c}) < 9007199254740992)"
        for c in map(quote_ident, columns)
    )
    verdicts = _run(con, f"SELECT {checks} FROM data")[0]  # noqa: S608
    for name, whole in zip(columns, verdicts, strict=True):
        if whole:
            _run(con, f"ALTER TABLE data ALTER COLUMN {quote_ident(name)} TYPE BIGINT")


def _head_rows(head: str, delimiter: str) -> list[list[str]]:
    """The complete rows in ``head`` (the last, maybe cut short, is dropped when cut)."""
    if len(head) >= SNIFF_CHARS and "\n" in head:
        head = head[: head.rindex("\n")]
    try:
        return [r for r in csv.reader(io.StringIO(head), delimiter=delimiter) if r]
    except csv.Error:
        return []


def _read_csv(
    path: Path,
    names: list[str],
    types: dict[str, str],
    delimiter: str,
    limits: Limits,
) -> duckdb.DuckDBPyConnection | str:
    """The file read into ``data``, or the name of a column whose guessed type failed.

    Parsing is strict (every row must have every field) and nothing is auto-detected, so a
    malformed file is an error, never a silently shorter table.
    """
    con = sandbox.connect(limits, read=[path])
    try:
        options = (
            "header = true, auto_detect = false, delim = ?, quote = '\"', escape = '\"', "
            "columns = ?, strict_mode = true, max_line_size = ?, dateformat = '%Y-%m-%d'"
        )
        limit = int(limits.max_rows) + 1
        sql = f"CREATE TABLE data AS SELECT * FROM read_csv(?, {options}) LIMIT {limit}"  # noqa: S608
        longest_line = max(2 << 20, limits.max_columns * (limits.max_cell_chars + 3) * 4)
        _run(con, sql, [str(path.resolve()), delimiter, types, longest_line])
    except duckdb.ConversionException as exc:
        sandbox.close(con)
        failed = _CONVERSION.search(str(exc))
        if failed and failed[1].replace('""', '"') in types:
            return failed[1].replace('""', '"')
        raise BadRequestError(_duckdb_csv_message(str(exc))) from None
    except duckdb.Error as exc:
        sandbox.close(con)
        message = _first_bad_line(path, delimiter, len(names)) or _duckdb_csv_message(str(exc))
        raise BadRequestError(message) from None
    return con


def _csv_table(path: Path, head: str, limits: Limits) -> Table:
    delimiter = _sniff_delimiter(head)
    names = _header(head, delimiter)
    _check_names(names, limits)
    thousands_dot = comma_decimals(head, delimiter)
    types, whole = _sample_types(head, delimiter, names, thousands_dot=thousands_dot)
    for _ in range(len(names) + 1):
        loaded = _read_csv(path, names, types, delimiter, limits)
        if not isinstance(loaded, str):
            try:
                _whole_numbers_back(loaded, [n for n in names if n in whole])
            except BaseException:
                sandbox.close(loaded)
                raise
            return _finish(
                loaded, limits, decimal_comma=delimiter != ",", thousands_dot=thousands_dot
            )
        types[loaded] = "VARCHAR"  # later rows disagree with the sample: read it as text
        whole.discard(loaded)
    raise BadRequestError("the CSV could not be read")  # pragma: no cover - bounded above


def from_csv(
    text: str | bytes, limits: Limits | None = None, *, threads: int | None = None
) -> Table:
    """A table from CSV text with a header line; the delimiter is sniffed (``,`` ``;`` tab
    ``|``) and, in files not separated by commas, numbers such as ``1.234,56`` are read."""
    limits = _bounds(limits, threads)
    _check_bytes(len(text.encode() if isinstance(text, str) else text), limits)
    decoded = _decode(text)
    if not decoded.strip():
        raise BadRequestError("the data is empty")
    with tempfile.TemporaryDirectory(prefix="billumy-insights-") as tmp:
        path = Path(tmp) / "data.csv"
        path.write_text(decoded, encoding="utf-8", newline="")
        return _csv_table(path, decoded[:SNIFF_CHARS], limits)


# --- files --------------------------------------------------------------------------------


def _head_of(path: Path) -> str:
    with path.open("rb") as handle:
        raw = handle.read(SNIFF_CHARS)
    return raw.decode("utf-8", errors="ignore")


def from_file(
    path: Path,
    fmt: Literal["csv", "json", "parquet"],
    limits: Limits | None = None,
    *,
    threads: int | None = None,
) -> Table:
    """A table from a file: CSV (as :func:`from_csv`), JSON (an array of objects or
    newline-delimited objects) or Parquet. The connection may read this file and no other."""
    limits = _bounds(limits, threads)
    if not path.is_file():
        raise BadRequestError(f"no such file: {path.name}")
    if fmt != "parquet":
        _check_bytes(path.stat().st_size, limits)
    if fmt == "csv":
        return _csv_file(path, limits)
    if fmt == "json":
        return _json_file(path, limits)
    if fmt == "parquet":
        return _parquet_file(path, limits)
    raise BadRequestError(f"unknown data format {fmt!r}; use csv, json or parquet")


def _csv_file(path: Path, limits: Limits) -> Table:
    """Read the file in place when it is UTF-8 without a BOM; otherwise decode a copy."""
    with path.open("rb") as handle:
        if handle.read(3) == b"\xef\xbb\xbf" or not _is_utf8(path):
            return from_csv(path.read_bytes(), limits)
    head = _head_of(path)
    if not head.strip():
        raise BadRequestError("the data is empty")
    return _csv_table(path, head, limits)


def _is_utf8(path: Path) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as handle:
        try:
            for block in iter(lambda: handle.read(1 << 20), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _json_shape(path: Path) -> str:
    """``array`` or ``newline_delimited``, from the file's first and last non-blank bytes;
    400 for anything else. DuckDB's reader accepts a truncated array (``[{"a": 1},``) and a
    bare string as data: a cut-off upload must not become a dataset."""
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        size = handle.seek(0, 2)
        handle.seek(max(0, size - 4096))
        tail = handle.read().rstrip(b" \t\r\n")
    if head[:1] == b"[" and tail[-1:] == b"]":
        return "array"
    if head[:1] == b"{" and tail[-1:] == b"}":
        return "newline_delimited"
    raise BadRequestError(
        "the JSON must be an array of objects or one object per line, complete "
        "(it starts or ends with something else: cut off?)"
    )


def _json_file(path: Path, limits: Limits) -> Table:
    shape = _json_shape(path)
    con = sandbox.connect(limits, read=[path])
    try:
        limit = int(limits.max_rows) + 1
        sql = (
            f"CREATE TABLE data AS SELECT * FROM read_json(?, format = '{shape}') "  # noqa: S608
            f"LIMIT {limit}"
        )
        _run(con, sql, [str(path.resolve())])
    except duckdb.Error as exc:
        sandbox.close(con)
        first = _without_paths(str(exc).splitlines()[0])
        raise BadRequestError(f"the JSON could not be read: {first}") from None
    except BaseException:
        sandbox.close(con)
        raise
    return _finish(con, limits, decimal_comma=False)


def _check_parquet_footer(path: Path, limits: Limits) -> dict[str, str]:
    """Rows, columns and uncompressed size from the file's footer, before reading any data;
    returns the columns' units the file kept (``save_parquet``)."""
    try:
        meta = pq.read_metadata(path)
    except (pa.ArrowException, OSError) as exc:
        first = _without_paths(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
        raise BadRequestError(f"the Parquet file could not be read: {first}") from None
    if meta.num_columns > limits.max_columns:
        raise PayloadTooLargeError(
            f"the data has {meta.num_columns} columns; at most {limits.max_columns} are allowed"
        )
    _check_rows(meta.num_rows, limits)
    uncompressed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    _check_decoded(uncompressed, limits)
    return _kept_units((meta.metadata or {}).get(_UNITS_KEY.encode()))


def _kept_units(raw: bytes | None) -> dict[str, str]:
    """The units in a file's metadata: a JSON object of column names to ``UNITS``; anything
    else (a file from elsewhere, bytes that are not that) is no unit."""
    if raw is None or len(raw) > 1_000_000:
        return {}
    try:
        found = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(c): u for c, u in found.items() if isinstance(u, str) and u in UNITS}


def _scan_parquet(con: duckdb.DuckDBPyConnection, source: str, limits: Limits) -> None:
    """Rows, cell lengths and decoded size, by one streaming pass over the file: a column
    stored once in a dictionary (a million copies of one long string) is small in the footer
    and huge in memory."""
    names, _ = sandbox.described(con, "SELECT * FROM read_parquet(?) LIMIT 0", [source])
    kinds = _run(con, "DESCRIBE SELECT * FROM read_parquet(?)", [source])
    types = {str(row[0]): str(row[1]) for row in kinds}
    _check_names(names, limits)
    for name, kind in types.items():
        if _is_nested_type(kind):
            raise BadRequestError(f"column {name!r} holds nested values; send flat records")
    text = [n for n, k in types.items() if k == "VARCHAR"]
    binary = [n for n, k in types.items() if k == "BLOB"]
    exprs = ["count(*)"]
    exprs += [e for c in map(quote_ident, text) for e in (f"max(length({c}))", f"sum(strlen({c}))")]
    exprs += [f"sum(octet_length({c}))" for c in map(quote_ident, binary)]
    found = _run(con, f"SELECT {', '.join(exprs)} FROM read_parquet(?)", [source])[0]  # noqa: S608
    rows = int(found[0])
    _check_rows(rows, limits)
    longest = found[1 : 1 + 2 * len(text) : 2]
    for name, most in zip(text, longest, strict=True):
        _check_cell(name, most, limits)
    sizes = dict(zip(text, found[2 : 2 + 2 * len(text) : 2], strict=True))
    sizes |= dict(zip(binary, found[1 + 2 * len(text) :], strict=True))
    _check_decoded(_decoded_bytes(rows, types, {n: int(v or 0) for n, v in sizes.items()}), limits)


def _parquet_file(path: Path, limits: Limits) -> Table:
    units = _check_parquet_footer(path, limits)
    con = sandbox.connect(limits, read=[path])
    source = str(path.resolve())
    try:
        _scan_parquet(con, source, limits)
        _run(con, "CREATE TABLE data AS SELECT * FROM read_parquet(?)", [source])
    except duckdb.Error as exc:
        sandbox.close(con)
        first = _without_paths(str(exc).splitlines()[0])
        raise BadRequestError(f"the Parquet file could not be read: {first}") from None
    except BaseException:
        sandbox.close(con)
        raise
    return _finish(con, limits, decimal_comma=False, units=units)


# --- identity and storage -----------------------------------------------------------------


_PATH = re.compile(r"""(?:[A-Za-z]:)?(?:/[^\s"':,]+)+""")


def _without_paths(message: str) -> str:
    """A reader's error without the server's file paths (the upload's temporary file)."""
    return _PATH.sub("the uploaded file", message)


def dataset_hash(table: Table) -> str:
    """A sha256 that changes when a name, a type, a value or the row order changes.

    It hashes a header (names and types, as JSON) followed by one 64-bit DuckDB ``hash`` of
    each row, in row order. Hashing rows inside DuckDB keeps it fast (about 0.2 s for a
    million rows) where serialising every value to Python would take seconds; the price is
    that the per-row hash is DuckDB's (not cryptographic, and it may change with a DuckDB
    upgrade), so this identifies datasets for caching and provenance, not against an
    adversary who crafts collisions.
    """
    digest = hashlib.sha256()
    header = [[name, table.types[name]] for name in table.columns]
    digest.update(json.dumps(header, ensure_ascii=False).encode())
    row_hash = "hash(" + ", ".join(quote_ident(c) for c in table.columns) + ")"
    with sandbox.guarded(table.con):
        result = table.con.sql(f"SELECT {row_hash} AS h FROM data ORDER BY rowid")  # noqa: S608
        hashes = result.to_arrow_table().column(0)
    for chunk in _chunks(hashes):
        digest.update(chunk)
    return digest.hexdigest()


def _chunks(column: pa.ChunkedArray) -> Iterator[bytes]:
    for chunk in column.chunks:
        data = chunk.buffers()[1]
        start = chunk.offset * 8
        yield data.to_pybytes()[start : start + len(chunk) * 8]


def save_parquet(table: Table, path: Path) -> None:
    """Write the data to ``path`` as Parquet (zstd), to reload with ``from_file(path,
    "parquet")``. DuckDB writes it into its connection's outbox, the one directory it may
    write to; it is moved to ``path`` from there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    outbox = sandbox.outbox(table.con)
    written = path if outbox is None else outbox / "data.parquet"
    literal = "'" + str(written).replace("'", "''") + "'"
    options = "FORMAT parquet, COMPRESSION zstd"
    if table.units:
        kept = json.dumps(table.units, sort_keys=True).replace("'", "''")
        options += f", KV_METADATA {{'{_UNITS_KEY}': '{kept}'}}"
    _run(table.con, f"COPY data TO {literal} ({options})")
    if written != path:
        shutil.move(written, path)
