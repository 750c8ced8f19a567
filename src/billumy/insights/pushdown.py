"""The facts' DuckDB SQL, rewritten to run in a source database (PostgreSQL, MySQL/MariaDB,
SQLite).

Every fact query Billumy builds reads one table named ``data`` in DuckDB's dialect. For a
source, :func:`compile_query` parses it with sqlglot, checks it, and writes it in the source's
dialect with ``data`` bound to the allow-listed table (through a ``WITH data AS (...)`` that
selects only the allowed columns, so the source itself refuses any other column):

* **checked before it is written**: one ``SELECT`` statement, no other table than ``data`` and
  the statement's own CTEs, only functions sqlglot knows (an unknown name is refused, so no
  ``pg_sleep`` or ``dblink`` can be smuggled in), masked columns only inside ``count()``;
  the written statement is parsed again and its tables checked once more;
* **bound values**: the ``?`` parameters become the driver's named binds, never literals;
* **dialect gaps** that sqlglot leaves are closed here (``fsum`` is ``sum``; ``GROUP BY ALL``
  is spelled out; weekday and quarter become ``EXTRACT``; MySQL's are
  :func:`billumy.insights.mysql.rewrite`'s).

A query that the source cannot run whole (a median taken as a window function, which
PostgreSQL lacks) is split by :func:`split_query`: each CTE that reads only ``data`` runs in
the source (aggregates, filters, group-bys there; only its result rows come back), and the rest
of the statement runs in DuckDB over those rows.

Why sqlglot and not DuckDB's scanners: the ``duckdb-extension-postgres`` wheels on PyPI are
built for DuckDB 1.5.5 and refuse to load into the DuckDB 2.0.0 we run; and a transpiled query
runs entirely in the source (its indexes, its statistics), returning only result rows, where a
scanner may pull whole columns over the wire.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from billumy.errors import BadRequestError
from billumy.insights import mysql

Dialect = str  # sqlglot's name: "postgres", "mysql" or "sqlite"


class RefusedQuery(BadRequestError):
    """A query that may not run on a source (a bug in Billumy's SQL, or an attack)."""


@dataclass
class Compiled:
    """A statement for the source's driver, with named binds (``%(p1)s`` for psycopg and
    PyMySQL, ``:p1`` for SQLite)."""

    sql: str
    params: dict[str, object] = field(default_factory=dict)


@dataclass
class Scope:
    """What the source's ``data`` may be: the base select over the allow-listed table, in
    DuckDB's dialect (derived columns compose on top), and the masked columns."""

    base: exp.Query
    table: exp.Table
    masked: frozenset[str] = frozenset()
    dates: frozenset[str] = frozenset()  # DATE columns: truncated, they stay dates
    rowid: exp.Expr | None = None  # what DuckDB's ``rowid`` reads as in the source
    joined: tuple[exp.Table, ...] = ()  # the declared joins' tables, also readable
    # The joins of ``base`` when ``data`` is still the table and its joins as declared (not
    # after a derived column): an aggregate may then group the table before joining.
    joins: tuple[Join, ...] = ()


@dataclass(frozen=True)
class Join:
    """A declared many-to-one join: ``LEFT JOIN table ON table.key = base.column``, reading
    ``columns`` (its column, the name it is read under)."""

    table: exp.Table
    key: str
    column: str
    columns: tuple[tuple[str, str], ...]


def quoted_table(schema: str | None, table: str) -> exp.Table:
    return exp.Table(
        this=exp.to_identifier(table, quoted=True),
        db=exp.to_identifier(schema, quoted=True) if schema else None,
    )


def base_select(
    schema: str | None, table: str, columns: list[str], joins: Sequence[Join] = ()
) -> tuple[exp.Query, exp.Table]:
    """``SELECT "c1", "c2" FROM "schema"."table"`` and the quoted table; with ``joins``, each
    joined table's columns too (``FROM table AS t0 LEFT JOIN ... AS t1 ON ...``): a row per
    row of ``table`` whatever the joins, since each joins on its table's unique key."""
    source = quoted_table(schema, table)
    if not joins:
        select = exp.select(*(exp.column(c, quoted=True) for c in columns)).from_(source.copy())
        return select, source
    base = "t0"
    projections: list[exp.Expr] = [exp.column(c, table=base, quoted=True) for c in columns]
    for number, join in enumerate(joins, start=1):
        alias = f"t{number}"
        projections += [
            exp.alias_(exp.column(c, table=alias, quoted=True), name, quoted=True)
            for c, name in join.columns
        ]
    select = exp.select(*projections).from_(exp.alias_(source.copy(), base, table=True))
    for number, join in enumerate(joins, start=1):
        alias = f"t{number}"
        on = exp.column(join.key, table=alias, quoted=True).eq(
            exp.column(join.column, table=base, quoted=True)
        )
        select = select.join(
            exp.alias_(join.table.copy(), alias, table=True), on=on, join_type="left"
        )
    return select, source


def parse(sql: str) -> exp.Expr:
    """One DuckDB statement; anything else is refused."""
    try:
        statements = sqlglot.parse(sql, read="duckdb")
    except ParseError:
        raise RefusedQuery("the query could not be read") from None
    if len(statements) != 1 or statements[0] is None:
        raise RefusedQuery("exactly one statement may run on a source")
    return statements[0]


def derived(scope: Scope, sql: str) -> Scope | None:
    """The scope after ``CREATE OR REPLACE TABLE data AS SELECT ... FROM data`` (a derived
    column, a column scope); None when ``sql`` is not such a statement."""
    tree = parse(sql)
    if not isinstance(tree, exp.Create):
        return None
    target = tree.this
    if not isinstance(target, exp.Table) or target.name != "data" or target.db:
        raise RefusedQuery("only the table 'data' may be redefined")
    query = tree.expression
    if not isinstance(query, exp.Select):
        raise RefusedQuery("a table is redefined by one SELECT")
    _check(query, scope, ctes=set(), projections=False)
    base = _inline_data(query, scope.base)
    return Scope(base, scope.table, scope.masked, scope.dates, scope.rowid, scope.joined)


def compile_query(scope: Scope, sql: str, params: list[object], dialect: Dialect) -> Compiled:
    """``sql`` (DuckDB, over ``data``) as one statement of ``dialect`` over the source table.
    Raises :class:`RefusedQuery` when it may not run there (see the module docstring)."""
    tree = parse(sql)
    if not isinstance(tree, exp.Query):
        raise RefusedQuery("only SELECT statements run on a source")
    _check(tree, scope, ctes=set(), projections=True)
    tree = _with_data(tree, _base_for(tree, scope))
    return _written(tree, params, dialect, scope)


@dataclass
class Split:
    """A query run in two places: ``pushed`` (CTE name -> statement) run in the source, their
    rows put in DuckDB under those names, and ``local`` (DuckDB) run over them."""

    pushed: dict[str, Compiled]
    local: str
    params: list[object]


def split_query(scope: Scope, sql: str, params: list[object], dialect: Dialect) -> Split:
    """``sql`` with each CTE that reads only ``data`` pushed to the source; the rest stays in
    DuckDB. Refused when something outside those CTEs still reads ``data`` (it would need the
    whole table here)."""
    tree = parse(sql)
    if not isinstance(tree, exp.Query):
        raise RefusedQuery("only SELECT statements run on a source")
    _check(tree, scope, ctes=set(), projections=True)
    pushed: dict[str, Compiled] = {}
    local: list[object] = []
    position = 0
    with_ = tree.args.get("with_")
    for cte in list(with_.expressions) if with_ else []:
        holes = _holes(cte.this)
        mine = params[position : position + holes]
        position += holes
        reads = {t.name for t in cte.this.find_all(exp.Table)}
        if reads == {"data"} and not _cte_names(cte.this):
            body = _with_data(cte.this.copy(), _base_for(cte.this, scope))
            pushed[cte.alias] = _written(body, mine, dialect, scope)
            cte.pop()
        else:
            local += mine
    if with_ is not None and not with_.expressions:
        with_.pop()
    if not pushed or any(t.name == "data" for t in tree.find_all(exp.Table)):
        raise RefusedQuery("this analysis cannot run on a source")
    return Split(pushed=pushed, local=tree.sql(dialect="duckdb"), params=local + params[position:])


def _base_for(tree: exp.Expr, scope: Scope) -> exp.Query:
    """The base select, with a ``rowid`` column when ``tree`` reads one (an outlier's row)."""
    wants = any(c.name == "rowid" for c in tree.find_all(exp.Column))
    if not wants:
        return scope.base
    if scope.rowid is None or not isinstance(scope.base, exp.Select):
        raise RefusedQuery("this source has no row numbers")
    return scope.base.copy().select(exp.alias_(scope.rowid.copy(), "rowid"))


def _holes(tree: exp.Expr) -> int:
    return len(list(tree.find_all(exp.Placeholder)))


def _cte_names(tree: exp.Expr) -> set[str]:
    return {cte.alias for cte in tree.find_all(exp.CTE)}


def _check(tree: exp.Expr, scope: Scope, *, ctes: set[str], projections: bool) -> None:
    """Tables, functions and masked columns of a DuckDB statement (see the module docstring)."""
    known = _cte_names(tree) | ctes | {"data"}
    for table in tree.find_all(exp.Table):
        if table.db or table.catalog or table.name not in known:
            raise RefusedQuery(f"table {table.sql()!r} is not the source's data")
    for node in tree.walk():
        if isinstance(node, exp.Anonymous) and node.name.lower() not in _DUCKDB_EXTRAS:
            raise RefusedQuery(f"function {node.name!r} may not run on a source")
        if isinstance(node, exp.Command | exp.Insert | exp.Update | exp.Delete | exp.Drop):
            raise RefusedQuery("only SELECT statements run on a source")
    if not scope.masked:
        return
    for column in tree.find_all(exp.Column):
        if column.name in scope.masked and not column.find_ancestor(exp.Count):
            raise RefusedQuery(f"column {column.name!r} is masked: only counted")
    for star in tree.find_all(exp.Star):
        select = star.find_ancestor(exp.Select)
        source = select.args.get("from_") if select is not None else None
        from_data = source is not None and any(t.name == "data" for t in source.find_all(exp.Table))
        if projections and from_data and not star.find_ancestor(exp.Count):
            raise RefusedQuery("a source with masked columns is never read whole")


# Functions DuckDB has that sqlglot parses as anonymous; each is rewritten by _rewrite.
_DUCKDB_EXTRAS = frozenset({"fsum", "dayofweek"})


def _inline_data(query: exp.Select, base: exp.Query) -> exp.Query:
    """``query`` with its ``FROM data`` read from ``base`` instead."""
    query = query.copy()
    for table in list(query.find_all(exp.Table)):
        if table.name == "data":
            table.replace(exp.Subquery(this=base.copy(), alias=exp.TableAlias(this="data")))
    return query


def _with_data(tree: exp.Query, base: exp.Query) -> exp.Query:
    """``WITH data AS (base) tree``, the statement's own CTEs after it."""
    cte = exp.CTE(this=base.copy(), alias=exp.TableAlias(this=exp.to_identifier("data")))
    with_ = tree.args.get("with_")
    if with_ is None:
        tree.set("with_", exp.With(expressions=[cte]))
    else:
        with_.set("expressions", [cte, *with_.expressions])
    return tree


def _written(tree: exp.Query, params: list[object], dialect: Dialect, scope: Scope) -> Compiled:
    # Named before the dialect's rewrite, which may move a hole (MySQL's quantiles read their
    # WHERE in a subquery) or write it twice (MySQL's NULL order repeats a projection).
    binds: dict[str, object] = {}
    holes = _written_order(tree, "duckdb")
    if len(holes) != len(params):
        raise RefusedQuery("the query's parameters do not match its placeholders")
    for number, (hole, value) in enumerate(zip(holes, params, strict=True), start=1):
        name = f"p{number}"
        binds[name] = value
        hole.replace(exp.Placeholder(this=name))
    tree = _rewrite(tree, dialect, scope.dates)
    sql = tree.sql(dialect=dialect)
    recheck(sql, dialect, (scope.table, *scope.joined))
    if dialect == "postgres":
        # psycopg's binds are %(p1)s: every other % is doubled, as the driver expects.
        sql = _PG_BIND.sub(r"%(\1)s", sql.replace("%", "%%"))
    return Compiled(sql=for_driver(sql, dialect), params=binds)


def for_driver(sql: str, dialect: Dialect) -> str:
    """Statement text written by sqlglot (without binds) as the source's driver reads it:
    PyMySQL formats every statement, so its ``%`` are doubled."""
    return mysql.driver_sql(sql) if dialect == "mysql" else sql


def transpiled(sql: str, dialect: Dialect, dates: frozenset[str] = frozenset()) -> str:
    """DuckDB ``sql`` (Billumy's own, no binds) written in ``dialect``, its gaps closed."""
    if dialect != "mysql":
        return sqlglot.transpile(sql, read="duckdb", write=dialect)[0]
    tree = parse(sql)
    return mysql.rewrite(tree, dates).sql(dialect="mysql")


_PG_BIND = re.compile(r"%%\((p[0-9]+)\)s")


def _written_order(tree: exp.Query, dialect: Dialect) -> list[exp.Placeholder]:
    """The ``?`` holes of ``tree`` in the order they are written (in DuckDB's dialect, as the
    values were given), the order of the values.
    (``find_all`` walks breadth first: in ``a = ? AND b = ? AND c = ?`` it meets ``c``'s hole
    first, the one nearest the root.) Each is marked, the statement written once, and the
    marks found in its text."""
    marked = []
    for number, hole in enumerate(list(tree.find_all(exp.Placeholder))):
        mark = exp.Placeholder(this=f"billumy_hole_{number}_")
        hole.replace(mark)
        marked.append(mark)
    text = tree.sql(dialect=dialect)
    return sorted(marked, key=lambda mark: text.index(mark.sql(dialect=dialect)))


def recheck(sql: str, dialect: Dialect, tables: Sequence[exp.Table]) -> None:
    """The written statement, read back: a SELECT reading only the allowed tables."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except ParseError:
        raise RefusedQuery("the query could not be written for the source") from None
    if not isinstance(tree, exp.Query):
        raise RefusedQuery("only SELECT statements run on a source")
    ctes = _cte_names(tree)
    for found in tree.find_all(exp.Table):
        same = any(
            found.name == table.name and (found.db or None) == (table.db or None)
            for table in tables
        )
        if not same and found.name not in ctes:
            raise RefusedQuery(f"table {found.sql()!r} is not on the source's allow-list")


def _rewrite(tree: exp.Query, dialect: Dialect, dates: frozenset[str]) -> exp.Query:
    """Close the gaps between DuckDB and ``dialect`` that sqlglot leaves open."""

    def fix(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Anonymous):
            name = node.name.lower()
            args = node.expressions
            if name == "fsum":
                return exp.Sum(this=args[0])
            if name == "dayofweek" and dialect == "mysql":
                return exp.DayOfWeek(this=args[0])
            if name == "dayofweek":
                return _extract("dow" if dialect == "postgres" else "w", args[0], dialect)
        if dialect == "mysql":
            return node
        if isinstance(node, exp.DayOfWeek):
            return _extract("dow" if dialect == "postgres" else "w", node.this, dialect)
        if isinstance(node, exp.Quarter) and dialect == "postgres":
            return _extract("quarter", node.this, dialect)
        if isinstance(node, exp.DateTrunc | exp.TimestampTrunc) and dialect == "sqlite":
            unit = exp.Literal.string(node.text("unit").lower())
            return exp.Anonymous(this="billumy_date_trunc", expressions=[unit, node.this])
        if isinstance(node, exp.DateTrunc | exp.TimestampTrunc) and dialect == "postgres":
            truncated = node.this
            if isinstance(truncated, exp.Column) and truncated.name in dates:
                # PostgreSQL truncates a date to a timestamp; DuckDB keeps a date.
                return exp.Cast(this=node.copy(), to=exp.DataType.build("DATE"))
        return node

    def group_all(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Group) and node.args.get("all"):
            return _group_by_all(node)
        return node

    tree = tree.transform(fix, copy=False).transform(group_all, copy=False)  # type: ignore[assignment]
    if dialect == "mysql":
        mysql.rewrite(tree, dates)
    return tree


def _extract(unit: str, value: exp.Expr, dialect: Dialect) -> exp.Expr:
    if dialect == "postgres":
        part = exp.Extract(this=exp.var(unit.upper()), expression=value)
        return exp.Cast(this=part, to=exp.DataType.build("BIGINT"))
    return exp.Cast(
        this=exp.Anonymous(this="strftime", expressions=[exp.Literal.string("%w"), value]),
        to=exp.DataType.build("INTEGER"),
    )


def _group_by_all(group: exp.Group) -> exp.Group:
    """``GROUP BY ALL`` spelled out: every projection without an aggregate, by position."""
    select = group.parent
    assert isinstance(select, exp.Select)
    positions = [
        exp.Literal.number(i)
        for i, projection in enumerate(select.expressions, start=1)
        if not projection.find(exp.AggFunc) and not projection.find(exp.Window)
    ]
    return exp.Group(expressions=positions)
