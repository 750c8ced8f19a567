"""MySQL and MariaDB sources: the session that makes every statement safe, the driver's errors
by kind, and the gaps between DuckDB's SQL and MySQL's that sqlglot leaves open.

The driver is PyMySQL (pure Python; ``mysql://``, ``mysql+pymysql://`` and
``mariadb+pymysql://`` URLs all connect through it). Each new connection is made read-only
for the session (``SET SESSION TRANSACTION READ ONLY``; :meth:`Source._reading
<billumy.insights.sources.Source._reading>` also makes each transaction ``READ ONLY``), reads
times in UTC, and gets the source's time limit: MariaDB's ``max_statement_time`` (seconds)
or MySQL's ``max_execution_time`` (milliseconds, SELECTs only), told apart by ``VERSION()``.

:func:`rewrite` writes what DuckDB has and MySQL lacks or reads otherwise, so that a fact's
numbers are DuckDB's: ``date_trunc`` (MySQL has none; sqlglot's ``DATE_ADD('0000-01-01', ...)``
puts weeks on Saturdays), weekdays (``DAYOFWEEK`` counts from 1), ISO weeks, ``date_diff`` by
calendar boundaries, ``make_date``, ``/`` and ``avg`` over doubles (MySQL's decimal
division keeps four more digits only), ``FILTER (WHERE ...)`` as ``CASE`` inside the aggregate, and
``NULLS FIRST/LAST`` where MySQL's order differs (NULLs are smallest there; DuckDB puts them
last). A median or a quantile of rows is left as it is: MySQL refuses it, and the caller runs
the query's data-reading parts in the source and the rest in DuckDB.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlglot import exp, parse_one

# Driver error numbers, by what they mean for the caller.
_TIMEOUT = frozenset({1969, 3024, 1317})  # max_statement_time, max_execution_time, killed
_READ_ONLY = frozenset({1792, 1290, 1836})
_DOWN = frozenset({2002, 2003, 2005, 2006, 2013, 2026, 2055, 1040, 1053, 1927, 4031})
# What MySQL lacks or reads otherwise: syntax, an unknown function or column, a feature.
_LACKS = frozenset(
    {1054, 1055, 1064, 1111, 1140, 1146, 1235, 1247, 1305, 1582, 1583, 1630, 3065, 3593}
)


def make_engine(
    url: URL, *, connect_timeout: float, statement_timeout: float, pool: dict[str, Any]
) -> Engine:
    """An engine whose every connection is read-only, in UTC, under the time limit; ``pool``:
    the pool's options, the same as every source's."""
    url = url.set(drivername="mysql+pymysql")
    if "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    engine = sa.create_engine(
        url,
        **pool,
        connect_args={
            "connect_timeout": max(1, int(connect_timeout)),
            # A server that stops answering mid-result: the statement's own limit, and more.
            "read_timeout": int(statement_timeout) + 30,
            "write_timeout": int(statement_timeout) + 30,
        },
    )

    @sa.event.listens_for(engine, "connect")
    def _session(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
            cursor.execute("SET time_zone = '+00:00'")
            cursor.execute("SELECT VERSION()")
            version = str(cursor.fetchone()[0]).lower()
            if "mariadb" in version:
                cursor.execute(f"SET SESSION max_statement_time = {statement_timeout:.3f}")
            else:
                cursor.execute(f"SET SESSION max_execution_time = {int(statement_timeout * 1000)}")
        dbapi_connection.commit()

    return engine


def failure(exc: sa.exc.DBAPIError) -> str | None:
    """What a driver error means: "timeout", "read-only", "down", "lacks", or None."""
    args = getattr(exc.orig, "args", ())
    number = args[0] if args and isinstance(args[0], int) else None
    if number in _TIMEOUT:
        return "timeout"
    if number in _READ_ONLY:
        return "read-only"
    if number in _DOWN or exc.connection_invalidated:
        return "down"
    if number in _LACKS:
        return "lacks"
    return None


def driver_sql(sql: str) -> str:
    """MySQL text for PyMySQL, which formats every statement with ``%``: each ``%`` doubled,
    and sqlglot's ``:p1`` binds as ``%(p1)s``."""
    return _BIND.sub(r"%(\1)s", sql.replace("%", "%%"))


_BIND = re.compile(r"(?<![\w:]):(p[0-9]+)\b")


def rewrite(tree: exp.Expr, dates: frozenset[str]) -> exp.Expr:
    """``tree`` (DuckDB) with the gaps of the module docstring closed, children first (so a
    rewritten node's arguments are rewritten too)."""
    for node in reversed(list(tree.walk())):
        fixed = _fixed(node, dates)
        if fixed is not node:
            node.replace(fixed)
    for select in list(tree.find_all(exp.Select)):
        _window_quantiles(select)
        _order_nulls(select)
    return tree


def _window_quantiles(select: exp.Select) -> None:
    """``median(x)`` and ``quantile_cont(x, q)`` as aggregates: MySQL has neither, MariaDB
    has ``PERCENTILE_CONT`` as a window function only. The select's rows then come from
    ``SELECT t.*, PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY x) OVER (PARTITION BY <its
    groups>) AS __qN FROM t WHERE ...`` (NULLs left out, as DuckDB does), and each aggregate
    reads ``MAX(__qN)``, the one value of its group. MySQL 8 refuses the window; the caller
    then runs the query's data-reading parts in the source and the rest in DuckDB."""
    nested = (exp.Select, exp.Subquery, exp.SetOperation)
    own = list(select.walk(prune=lambda n: n is not select and isinstance(n, nested)))
    found = [
        n
        for n in own
        if isinstance(n, exp.PercentileCont | exp.Median)
        and not isinstance(n.parent, exp.Window | exp.WithinGroup)
    ]
    source = select.args.get("from_")
    if not found or source is None or select.args.get("joins"):
        return
    table = source.this
    if not isinstance(table, exp.Table | exp.Subquery):
        return
    alias = table.alias_or_name
    if not alias:
        return
    group = select.args.get("group")
    keys = [_projection(k, select) for k in group.expressions] if group else []
    columns: list[exp.Expr] = [exp.Column(this=exp.Star(), table=exp.to_identifier(alias))]
    for number, agg in enumerate(found):
        fraction = agg.expression if isinstance(agg, exp.PercentileCont) else None
        if fraction is None:
            fraction = exp.Literal.number("0.5")
        if not isinstance(fraction, exp.Literal):
            return  # a list of quantiles, or a computed one: left for the source to refuse
        ordered = exp.Ordered(this=agg.this.copy(), nulls_first=True)
        window = exp.Window(
            this=exp.WithinGroup(
                this=exp.PercentileCont(this=fraction.copy()),
                expression=exp.Order(expressions=[ordered]),
            ),
            partition_by=[k.copy() for k in keys],
        )
        columns.append(exp.alias_(window, f"__q{number}"))
    inner = exp.Select(expressions=columns).from_(table.copy())
    where = select.args.get("where")
    if where is not None:
        inner.set("where", where.pop())
    source.set(
        "this", exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(alias)))
    )
    for number, agg in enumerate(found):
        agg.replace(exp.Max(this=exp.column(f"__q{number}")))


def _template(sql: str, **values: exp.Expr) -> exp.Expr:
    """A MySQL expression with ``__name`` columns standing for ``values``."""
    tree = parse_one(sql, read="mysql")
    for column in list(tree.find_all(exp.Column)):
        if column.name.startswith("__"):
            column.replace(values[column.name[2:]].copy())
    return tree


_TRUNC = {
    "day": "CAST(__x AS DATE)",
    "week": "DATE_SUB(CAST(__x AS DATE), INTERVAL WEEKDAY(__x) DAY)",
    "month": "DATE_SUB(CAST(__x AS DATE), INTERVAL (DAYOFMONTH(__x) - 1) DAY)",
    "quarter": "MAKEDATE(YEAR(__x), 1) + INTERVAL (QUARTER(__x) - 1) QUARTER",
    "year": "MAKEDATE(YEAR(__x), 1)",
    "hour": "CAST(DATE_FORMAT(__x, '%Y-%m-%d %H:00:00') AS DATETIME)",
    "minute": "CAST(DATE_FORMAT(__x, '%Y-%m-%d %H:%i:00') AS DATETIME)",
    "second": "CAST(DATE_FORMAT(__x, '%Y-%m-%d %H:%i:%s') AS DATETIME)",
}
_PARTS = {
    "dow": "DAYOFWEEK(__x) - 1",  # DuckDB: Sunday 0; MySQL: Sunday 1
    "dayofweek": "DAYOFWEEK(__x) - 1",
    "isodow": "WEEKDAY(__x) + 1",  # Monday 1
    "week": "WEEK(__x, 3)",  # ISO weeks, as DuckDB's
    "weekofyear": "WEEK(__x, 3)",
    "doy": "DAYOFYEAR(__x)",
    "dayofyear": "DAYOFYEAR(__x)",
    "quarter": "QUARTER(__x)",
    "epoch": "UNIX_TIMESTAMP(__x)",  # the session is in UTC
}
# date_diff counts calendar boundaries crossed, as DuckDB does.
_DIFF = {
    "day": "DATEDIFF(__b, __a)",
    "month": "(YEAR(__b) * 12 + MONTH(__b)) - (YEAR(__a) * 12 + MONTH(__a))",
    "quarter": "(YEAR(__b) * 4 + QUARTER(__b)) - (YEAR(__a) * 4 + QUARTER(__a))",
    "year": "YEAR(__b) - YEAR(__a)",
}


def _fixed(node: exp.Expr, dates: frozenset[str]) -> exp.Expr:
    if isinstance(node, exp.Filter):
        return _filtered(node)
    if isinstance(node, exp.DateTrunc | exp.TimestampTrunc):
        return _truncated(node, dates)
    part = _part_name(node)
    if part is not None and part in _PARTS:
        value = node.expression if isinstance(node, exp.Extract) else node.this
        return exp.Paren(this=_template(_PARTS[part], x=value))
    if isinstance(node, exp.DateDiff):
        return _date_diff(node)
    if isinstance(node, exp.DateFromParts):
        made = "MAKEDATE(__y, 1) + INTERVAL (__m - 1) MONTH + INTERVAL (__d - 1) DAY"
        return exp.Paren(
            this=_template(made, y=node.args["year"], m=node.args["month"], d=node.args["day"])
        )
    if isinstance(node, exp.Avg) and not isinstance(node.this, exp.Distinct):
        # MySQL averages integers and decimals as decimals of four more digits.
        return exp.Avg(this=exp.Cast(this=node.this, to=exp.DataType.build("DOUBLE")))
    if isinstance(node, exp.Div):
        # DuckDB divides as doubles; MySQL's exact division rounds to four more digits.
        double = exp.DataType.build("DOUBLE")
        return exp.Div(this=exp.Cast(this=node.this, to=double), expression=node.expression)
    return node


def _part_name(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Extract):
        return str(node.this.name).lower()
    names: dict[type[exp.Expr], str] = {
        exp.DayOfWeek: "dow",
        exp.DayOfWeekIso: "isodow",
        exp.Week: "week",
        exp.WeekOfYear: "week",
        exp.DayOfYear: "doy",
    }
    if isinstance(node, exp.Week) and node.args.get("mode") is not None:
        return None
    return names.get(type(node))


def _truncated(node: exp.Expr, dates: frozenset[str]) -> exp.Expr:
    unit = node.text("unit").lower()
    template = _TRUNC.get(unit)
    if template is None:
        return node  # MySQL then refuses it: the caller runs it elsewhere
    value = node.this
    truncated = _template(template, x=value)
    if isinstance(value, exp.Column) and value.name in dates:
        return truncated  # a date stays a date, as the PostgreSQL path writes it
    if unit in ("hour", "minute", "second"):
        return truncated
    return exp.Cast(this=truncated, to=exp.DataType.build("DATETIME"))


def _date_diff(node: exp.DateDiff) -> exp.Expr:
    unit = (node.text("unit") or "day").lower()
    start, end = node.expression, node.this
    if unit in _DIFF:
        return exp.Paren(this=_template(_DIFF[unit], a=start, b=end))
    if unit in ("hour", "minute", "second"):
        a, b = (_template(_TRUNC[unit], x=v) for v in (start, end))
    else:
        a, b = start, end
    return exp.Anonymous(this="TIMESTAMPDIFF", expressions=[exp.var(unit.upper()), a, b])


def _filtered(node: exp.Filter) -> exp.Expr:
    """``agg(x) FILTER (WHERE c)`` as ``agg(CASE WHEN c THEN x END)`` (``count(*)`` counts
    ``CASE WHEN c THEN 1 END``): the same rows reach the aggregate."""
    agg: exp.Expr = node.this.copy()
    condition = node.expression
    if isinstance(condition, exp.Where):
        condition = condition.this

    def when(value: exp.Expr) -> exp.Expr:
        return exp.Case(ifs=[exp.If(this=condition.copy(), true=value)])

    arg = agg.this
    if isinstance(arg, exp.Star):
        agg.set("this", when(exp.Literal.number(1)))
    elif isinstance(arg, exp.Distinct) and len(arg.expressions) == 1:
        arg.set("expressions", [when(arg.expressions[0].copy())])
    elif arg is not None:
        agg.set("this", when(arg.copy()))
    else:
        return node
    return agg


def _order_nulls(select: exp.Select) -> None:
    """Where DuckDB's NULL order differs from MySQL's (NULLs smallest), a leading
    ``CASE WHEN ... IS NULL`` key; a position or an alias is read as its projection (MySQL
    refuses an alias of an aggregate inside an expression)."""
    order = select.args.get("order")
    if order is None or isinstance(select.parent, exp.SetOperation):
        return
    keys: list[exp.Expr] = []
    for ordered in order.expressions:
        desc = bool(ordered.args.get("desc"))
        nulls_first = bool(ordered.args.get("nulls_first"))
        native = not desc  # ascending: NULLs first in MySQL
        if nulls_first != native:
            target = _projection(ordered.this, select)
            null = exp.Is(this=target, expression=exp.Null())
            first, then = (0, 1) if nulls_first else (1, 0)
            flag = exp.Case(
                ifs=[exp.If(this=null, true=exp.Literal.number(first))],
                default=exp.Literal.number(then),
            )
            keys.append(exp.Ordered(this=flag, nulls_first=True))
        ordered.set("nulls_first", native)
        keys.append(ordered)
    order.set("expressions", keys)


def _projection(term: exp.Expr, select: exp.Select) -> exp.Expr:
    projections = select.expressions
    if isinstance(term, exp.Literal) and term.is_int:
        position = int(term.name)
        if 1 <= position <= len(projections):
            found: exp.Expr = projections[position - 1].unalias().copy()
            return found
    if isinstance(term, exp.Column) and not term.table:
        for projection in projections:
            if isinstance(projection, exp.Alias) and projection.alias == term.name:
                named: exp.Expr = projection.unalias().copy()
                return named
    return term.copy()
