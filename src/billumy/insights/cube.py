"""One aggregate of a source's table, read once per question, and the facts' queries over it.

Each fact query over a source used to be a full scan of its table in the source (eight to
thirty of them per question). A :class:`Shape` names the table's low-cardinality columns
(text, boolean, dates) and its numeric ones; :func:`cube_sql` groups the table by the former
in ONE pushed-down query, with each numeric column's ``sum``, ``count``, ``min`` and ``max``
per group (and the rows per group). :func:`rewrite` turns a fact's DuckDB query over ``data``
into one over that aggregate, only where the result is the same by construction:

* every ``SELECT`` that reads ``data`` reads it alone (no join, no sample), filters and groups
  only by grouped columns (and expressions of them), and aggregates numeric columns only with
  ``sum`` (a sum of sums), ``count`` (a sum of counts; ``count(*)`` a sum of rows), ``avg``
  (the sums over the counts), ``min``, ``max`` (of the minima, maxima), possibly after a
  ``CAST`` and with a ``FILTER`` over grouped columns; ``count(DISTINCT ...)`` of grouped
  columns stays as it is;
* a ``SELECT`` of grouped columns without aggregates is ``DISTINCT`` (the aggregate has one
  row per combination, not one per row);
* anything else (a median or a quantile of rows, a correlation, a standard deviation, a
  column the aggregate does not group by, a row number) is not rewritten: the caller runs that
  query in the source, as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlglot import exp

from billumy.insights import pushdown

TABLE = "billumy_source_cube"
ROWS = "__rows__"
MAX_ROWS = 200_000  # the most groups the aggregate may have
MAX_DISTINCT = 200  # a text column with more values (in the sample) is not grouped by
# PostgreSQL's work_mem for the aggregate's one statement: its default 4 MB makes the planner
# sort millions of rows on disk to group them (1.2 s against 0.7 s on a million rows).
WORK_MEM_MB = 64
_NUMERIC = frozenset({"BIGINT", "DOUBLE"})
# Keys (id, loja_id, id_cliente): their sums mean nothing and cost the one scan a third of its
# time on a Django table; a fact that reads one runs in the source instead.
_KEY = re.compile(r"(?i)id|.+_id|id_.+|pk")
_GROUPED = frozenset({"VARCHAR", "BOOLEAN", "DATE"})


@dataclass(frozen=True)
class Shape:
    """What the aggregate groups by (``dims``) and what it sums (``measures``: name, type),
    ``counted``: masked columns, of which only the count per group is read."""

    dims: tuple[str, ...]
    measures: tuple[tuple[str, str], ...]
    counted: tuple[str, ...] = ()
    # Timestamp columns among ``dims``, grouped by their day (``date_trunc('day', ...)``): a
    # query reads them only through what a day determines (see :func:`_day_exact`).
    days: tuple[str, ...] = ()
    # Columns NOT NULL in the source's catalog: ``count(c)`` is the rows (a key's count, "how
    # many orders", is read from the aggregate though keys are not summed).
    required: frozenset[str] = frozenset()

    def measure_type(self, name: str) -> str | None:
        return next((kind for column, kind in self.measures if column == name), None)


def stat(kind: str, column: str) -> str:
    """The aggregate's column holding ``kind`` (sum, count, min, max) of ``column``."""
    return f"__{kind}__{column}"


def choose(
    types: dict[str, str],
    masked: Sequence[str],
    distinct: Callable[[Sequence[str]], int],
    rows: int,
    *,
    required: frozenset[str] = frozenset(),
) -> Shape | None:
    """The shape for a table of ``rows`` rows with these column ``types``; ``distinct(cols)``
    counts the combinations of ``cols`` in the sample. The dates first, then text columns
    from the fewest values up, while the combinations stay under :data:`MAX_ROWS` and a
    quarter of the rows (the combinations of text columns counted in the sample, times the
    dates'); None when nothing can be grouped by."""
    if any(n.startswith("__") for n in types):
        return None  # a column could be mistaken for one of the aggregate's own
    hidden = set(masked)
    candidates = [n for n, t in types.items() if t in _GROUPED and n not in hidden]
    stamps = [n for n, t in types.items() if t == "TIMESTAMP" and n not in hidden]
    counts = {n: distinct([n]) for n in candidates}
    counts |= {n: distinct([f"day:{n}"]) for n in stamps}
    bound = min(MAX_ROWS, max(1, rows // 4))
    dims: list[str] = []
    days = 1  # the dates' combinations: a sample sees nearly all of them
    for name in (n for n in [*candidates, *stamps] if types[n] in ("DATE", "TIMESTAMP")):
        if days * counts[name] <= bound:
            dims, days = [*dims, name], days * counts[name]
    text: list[str] = []  # their combinations, counted in the sample
    for name in sorted(
        (n for n in candidates if types[n] != "DATE" and counts[n] <= MAX_DISTINCT),
        key=lambda n: (counts[n], n),
    ):
        if distinct([*text, name]) * days <= bound:
            text.append(name)
    dims += text
    if not dims:
        return None
    measures = tuple(
        (n, t)
        for n, t in types.items()
        if t in _NUMERIC and n not in hidden and n not in dims and not _KEY.fullmatch(n)
    )
    counted = tuple(n for n in types if n in hidden)
    return Shape(
        tuple(dims), measures, counted, tuple(d for d in dims if d in stamps), required - hidden
    )


def cube_sql(shape: Shape) -> str:
    """The aggregate as one DuckDB query over ``data`` (compiled for the source by
    :func:`billumy.insights.pushdown.compile_query`, as every fact's query is)."""
    parts = [_dim(d, shape) for d in shape.dims]
    parts.append(f"count(*) AS {_q(ROWS)}")
    for name, kind in shape.measures:
        c = _q(name)
        total = f"CAST(sum({c}) AS {kind})"
        parts += [
            f"{total} AS {_q(stat('sum', name))}",
            f"count({c}) AS {_q(stat('count', name))}",
            f"CAST(min({c}) AS {kind}) AS {_q(stat('min', name))}",
            f"CAST(max({c}) AS {kind}) AS {_q(stat('max', name))}",
        ]
    for name in shape.counted:
        parts.append(f"count({_q(name)}) AS {_q(stat('count', name))}")
    grouped = ", ".join(str(i) for i in range(1, len(shape.dims) + 1))
    return f"SELECT {', '.join(parts)} FROM data GROUP BY {grouped}"  # noqa: S608


def _dim(name: str, shape: Shape) -> str:
    """A dimension as the aggregate groups by it: a timestamp by its day, under its name."""
    if name in shape.days:
        return f"date_trunc('day', {_q(name)}) AS {_q(name)}"
    return _q(name)


def joined_cube_sql(shape: Shape, scope: pushdown.Scope, dialect: str) -> str | None:
    """The aggregate of a table with declared joins, grouped *before* it is joined: the
    table's rows grouped by its own dimensions and its foreign keys (a few thousand groups
    from millions of rows, no join per row), then each group joined to its stores' and
    products' names and grouped again by the shape's dimensions. The same rows as
    :func:`cube_sql` over the joined ``data`` (each join is many-to-one on a unique key, so a
    group's joined values are one row's; a joined measure sums ``rows x value``), written in
    ``dialect``; None when ``data`` is not the table and its joins as declared, or the shape
    reads no joined column (then :func:`cube_sql` is as fast)."""
    joined: dict[str, tuple[str, str]] = {}  # name in data -> (table alias, its column)
    for number, join in enumerate(scope.joins, start=1):
        for column, name in join.columns:
            joined[name] = (f"t{number}", column)
    read = {*shape.dims, *(m for m, _ in shape.measures), *shape.counted}
    if not scope.joins or not read & joined.keys():
        return None
    keys = list(dict.fromkeys([d for d in shape.dims if d not in joined]))
    keys += [j.column for j in scope.joins if j.column not in keys]
    inner = [_dim(k, shape) for k in keys] + ["count(*) AS __n"]
    outer = [
        f"{joined[d][0]}.{_q(joined[d][1])} AS {_q(d)}" if d in joined else f"g.{_q(d)}"
        for d in shape.dims
    ]
    outer.append(f"CAST(sum(g.__n) AS BIGINT) AS {_q(ROWS)}")
    for number, (name, kind) in enumerate(shape.measures):
        if name in joined:
            alias, column = joined[name]
            value = f"{alias}.{_q(column)}"
            outer += [
                f"CAST(sum(g.__n * {value}) AS {kind}) AS {_q(stat('sum', name))}",
                f"CAST(sum(CASE WHEN {value} IS NULL THEN 0 ELSE g.__n END) AS BIGINT)"
                f" AS {_q(stat('count', name))}",
                f"CAST(min({value}) AS {kind}) AS {_q(stat('min', name))}",
                f"CAST(max({value}) AS {kind}) AS {_q(stat('max', name))}",
            ]
            continue
        c, m = _q(name), f"__m{number}"
        inner += [
            f"sum({c}) AS {m}s",
            f"count({c}) AS {m}c",
            f"min({c}) AS {m}n",
            f"max({c}) AS {m}x",
        ]
        outer += [
            f"CAST(sum(g.{m}s) AS {kind}) AS {_q(stat('sum', name))}",
            f"CAST(sum(g.{m}c) AS BIGINT) AS {_q(stat('count', name))}",
            f"CAST(min(g.{m}n) AS {kind}) AS {_q(stat('min', name))}",
            f"CAST(max(g.{m}x) AS {kind}) AS {_q(stat('max', name))}",
        ]
    for number, name in enumerate(shape.counted):
        inner.append(f"count({_q(name)}) AS __k{number}")
        outer.append(f"CAST(sum(g.__k{number}) AS BIGINT) AS {_q(stat('count', name))}")
    table = scope.table.sql(dialect="duckdb")
    grouped = ", ".join(str(i) for i in range(1, len(keys) + 1))
    sql = f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM {table} "  # noqa: S608
    sql += f"GROUP BY {grouped}) AS g"
    for number, join in enumerate(scope.joins, start=1):
        target = join.table.sql(dialect="duckdb")
        sql += f" LEFT JOIN {target} AS t{number} ON t{number}.{_q(join.key)} = g.{_q(join.column)}"
    sql += " GROUP BY " + ", ".join(str(i) for i in range(1, len(shape.dims) + 1))
    return pushdown.transpiled(sql, dialect, scope.dates)


def rewrite(
    sql: str, shape: Shape, columns: Sequence[str], params: Sequence[object] = ()
) -> str | None:
    """``sql`` (DuckDB, over ``data``, whose columns are ``columns``) over the aggregate
    table :data:`TABLE` instead; None when its result would not be the same (see the module
    docstring). ``params``: the query's values (a timestamp grouped by day is compared only
    with midnights)."""
    try:
        tree = pushdown.parse(sql)
    except pushdown.RefusedQuery:
        return None
    if not isinstance(tree, exp.Query):
        return None
    if shape.days and not _day_exact(tree, shape.days, params):
        return None
    tree = tree.transform(_fsum)
    readers = [s for s in tree.find_all(exp.Select) if _reads_data(s)]
    tables = [t for t in tree.find_all(exp.Table) if t.name == "data"]
    if not readers or len(tables) != len(readers) or tree.find(exp.TableSample):
        return None
    if any(cte.alias == "data" for cte in tree.find_all(exp.CTE)):
        return None
    for select in readers:
        if not _rewritten(select, shape, frozenset(columns)):
            return None
    for table in tables:
        table.replace(exp.to_table(TABLE).as_("data"))
    return tree.sql(dialect="duckdb")


# What a timestamp's day determines: its truncation to a day or longer, its date, parts.
_DAY_UNITS = frozenset({"day", "week", "month", "quarter", "year"})
_DAY_PARTS = (exp.Year, exp.Month, exp.Quarter, exp.Day, exp.DayOfWeek, exp.DayOfYear)
_COMPARED = (exp.GTE, exp.GT, exp.LTE, exp.LT, exp.EQ, exp.NEQ, exp.Between)


def _day_exact(tree: exp.Expr, days: Sequence[str], params: Sequence[object]) -> bool:
    """Whether every use of a timestamp grouped by its day gives the same over its day as
    over its own value: ``date_trunc`` to a day or longer, a cast to a date, a year, month,
    quarter, day or weekday, ``count(DISTINCT ...)`` of those; or a comparison with dates or
    midnights (every value of the query, when it compares with a ``?``)."""
    midnight = all(_midnight(v) for v in params if isinstance(v, datetime | date | str))
    for column in tree.find_all(exp.Column):
        if column.name not in days:
            continue
        parent = column.parent
        if isinstance(parent, exp.DateTrunc | exp.TimestampTrunc):
            if parent.text("unit").lower() not in _DAY_UNITS:
                return False
            continue
        if isinstance(parent, exp.Cast) and parent.is_type("date"):
            continue
        if isinstance(parent, exp.Is) and isinstance(parent.expression, exp.Null):
            continue  # a day is null when its timestamp is
        if isinstance(parent, _DAY_PARTS):
            continue
        if isinstance(parent, exp.Extract) and parent.this.name.lower() in _DAY_UNITS | {
            "dow",
            "doy",
            "isodow",
        }:
            continue
        if isinstance(parent, _COMPARED):
            others = [
                v
                for k, v in parent.args.items()
                if isinstance(v, exp.Expr) and v is not column and k != "this"
            ]
            others += [parent.this] if parent.this is not column else []
            if all(_midnight_literal(o, midnight) for o in others):
                continue
        return False
    return True


def _midnight(value: object) -> bool:
    if isinstance(value, datetime):
        return value.time() == time()
    if isinstance(value, date):
        return True
    if isinstance(value, str):
        text = value.strip()
        return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}(?:[ T]00:00(?::00(?:\.0+)?)?)?", text))
    return False


def _midnight_literal(node: object, placeholders_ok: bool) -> bool:
    if isinstance(node, exp.Placeholder):
        return placeholders_ok
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal):
        return _midnight(node.this.this)
    if isinstance(node, exp.Literal):
        return node.is_string and _midnight(node.this)
    return False


def _fsum(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Anonymous) and node.name.lower() == "fsum" and node.expressions:
        return exp.Sum(this=node.expressions[0])
    return node


def _reads_data(select: exp.Select) -> bool:
    source = select.args.get("from_")
    table = source.this if source is not None else None
    return (
        isinstance(table, exp.Table)
        and table.name == "data"
        and not table.db
        and not select.args.get("joins")
    )


def _scope(select: exp.Select) -> list[exp.Expr]:
    """The nodes of ``select`` itself, not of the queries nested in it."""
    nested = (exp.Select, exp.Subquery, exp.SetOperation)
    return list(select.walk(prune=lambda n: n is not select and isinstance(n, nested)))[1:]


def _rewritten(select: exp.Select, shape: Shape, columns: frozenset[str]) -> bool:
    """Rewrites ``select`` in place over the aggregate; False (leaving it half done: the
    caller drops the tree) when it cannot be exact."""
    nodes = _scope(select)
    if any(isinstance(n, exp.Rand | exp.Star) and not n.find_ancestor(exp.Count) for n in nodes):
        return False
    grouping = [n for n in nodes if isinstance(n, exp.AggFunc) and not _in_window(n)]
    inside = {id(x) for agg in grouping for x in agg.walk()}
    aliases = {p.alias for p in select.expressions if p.alias}
    dims = set(shape.dims)
    for column in (n for n in nodes if isinstance(n, exp.Column) and id(n) not in inside):
        name = column.name
        if name in dims:
            continue
        alias_only = name in aliases and name not in columns
        if not (alias_only or (name in aliases and column.find_ancestor(exp.Order))):
            return False
    if not grouping:
        plain = bool(select.args.get("distinct") or select.args.get("group"))
        return plain and not any(isinstance(n, exp.Window) for n in nodes)
    replacements: list[tuple[exp.Expr, exp.Expr]] = []
    for agg in grouping:
        parent = agg.parent
        filtered = isinstance(parent, exp.Filter)
        replaced: exp.Expr = parent if filtered and parent is not None else agg
        where = parent.expression if filtered and parent is not None else None
        made = _aggregate(agg, shape, where)
        if made is None:
            return False
        replacements.append((replaced, made))
    for replaced, made in replacements:
        replaced.replace(made)
    return True


def _in_window(agg: exp.Expr) -> bool:
    parent = agg.parent
    if isinstance(parent, exp.Filter):
        parent = parent.parent
    return isinstance(parent, exp.Window)


def _aggregate(agg: exp.Expr, shape: Shape, where: exp.Expr | None) -> exp.Expr | None:
    """The aggregate over the cube that equals ``agg`` over the rows, or None."""
    dims = set(shape.dims)
    arg = agg.this

    def over(inner: exp.Expr) -> exp.Expr:
        return inner if where is None else exp.Filter(this=inner, expression=where.copy())

    def counted(rows: exp.Expr) -> exp.Expr:
        total = exp.func("coalesce", over(exp.Sum(this=rows)), exp.Literal.number(0))
        return exp.cast(total, "BIGINT")

    if isinstance(agg, exp.Count):
        if isinstance(arg, exp.Star):
            return counted(exp.column(ROWS, quoted=True))
        if isinstance(arg, exp.Distinct):
            names = {c.name for c in arg.find_all(exp.Column)}
            return over(agg.copy()) if names and names <= dims else None
        name = _named(arg)
        if name in dims:
            present = exp.Not(
                this=exp.Is(this=exp.column(name, quoted=True), expression=exp.Null())
            )
            rows = exp.If(this=present, true=exp.column(ROWS, quoted=True))
            return counted(exp.Case(ifs=[rows], default=exp.Literal.number(0)))
        if name is not None and (shape.measure_type(name) or name in shape.counted):
            return counted(exp.column(stat("count", name), quoted=True))
        if name is not None and name in shape.required:
            return counted(exp.column(ROWS, quoted=True))
        return None
    name = _named(arg)
    if name is None or isinstance(arg, exp.Distinct):
        return None
    cast = arg.to if isinstance(arg, exp.Cast) else None
    if isinstance(agg, exp.Min | exp.Max) and name in dims:
        return over(agg.copy())
    if shape.measure_type(name) is None:
        return None
    kind = type(agg)
    if kind in (exp.Sum, exp.Min, exp.Max):
        label = {exp.Sum: "sum", exp.Min: "min", exp.Max: "max"}[kind]
        inner = over(kind(this=exp.column(stat(label, name), quoted=True)))
        return inner if cast is None else exp.Cast(this=inner, to=cast.copy())
    twice = where is not None and where.find(exp.Placeholder) is not None
    if kind is exp.Avg and not twice and (cast is None or cast.is_type("double", "float")):
        total = exp.cast(over(exp.Sum(this=exp.column(stat("sum", name), quoted=True))), "DOUBLE")
        count = over(exp.Sum(this=exp.column(stat("count", name), quoted=True)))
        return exp.Div(this=total, expression=exp.func("nullif", count, exp.Literal.number(0)))
    return None


def _named(arg: exp.Expr | None) -> str | None:
    """The column an aggregate reads, directly or through one ``CAST``."""
    if isinstance(arg, exp.Cast):
        arg = arg.this
    return arg.name if isinstance(arg, exp.Column) else None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
