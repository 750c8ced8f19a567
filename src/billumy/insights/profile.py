"""Profiling: what each column is and what its values look like, in two or three scans.

The profile drives everything after it: which columns are measures, dimensions or time
axes for facts, which columns a question plan may name, and what the narration model is
told about the data. It has to be cheap on a million rows, so:

* one aggregate query computes, for every column at once, its count, distinct count and
  (by type) min/max/mean/std/sum, plus exact quartiles while the table has at most
  ``sample_rows`` rows;
* above ``sample_rows`` rows the distinct counts come from HyperLogLog
  (``approx_count_distinct``) and the quartiles from a systematic sample (every k-th row
  by insertion order, so the same data always gives the same profile); the profile is then
  marked ``sampled``. Facts never reuse these approximations: they compute what they state
  with their own exact query;
* one small ``GROUP BY`` per categorical or boolean column finds its ten most frequent values.

Kinds come from the DuckDB type (the loaders already typed number-, date- and boolean-looking
text, see :mod:`billumy.insights.data`), the column name and the distinct count:

* ``empty``: no non-null value;
* ``id``: integers named like an identifier (``id``, ``order_id``, ``customerId``, ``sku``,
  ``codigo``...), or text that is unique per row and either named so or made of short
  tokens without spaces in a table too large for it to be a category;
* ``ordinal``: integers named only for a period number (``semana``, ``week_number``, ``mes``,
  ``ano``, ``year``, ``trimestre``, ``semana_do_ano``...): an ordinal key, never summed or
  averaged as a measure ("total semana is 1,053" answers nothing); ``vendas_semana`` is a
  measure;
* ``numeric``, ``temporal`` (DATE, TIMESTAMP), ``boolean`` by type;
* ``categorical``: text with at most ``max(20, 5% of rows)`` distinct values; ``text`` otherwise.

Numeric columns named for money (``receita``, ``vendas``, ``faturamento``, ``valor``,
``preço``, ``revenue``, ``sales``, ``price``, ``amount``, ``cost``, ``custo``...) are marked
``money``, with a ``currency`` when the name says which (``vendas_reais``, ``price_usd``), so
that answers can write ``R$ 6.006,50``; a name that also says it counts or is a ratio
(``vendas_qtd``, ``receita_pct``) is not money.

Masked columns keep only name, kind, type and counts: no value of theirs leaves this module.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from billumy.insights.data import Table, quote_ident
from billumy.insights.model import ColumnKind, ColumnProfile, Profile, Scalar

__all__ = [
    "CATEGORY_MIN_DISTINCT",
    "CATEGORY_SHARE",
    "TOP_VALUES",
    "dtype_family",
    "is_id_name",
    "money_of",
    "plain",
    "profile",
]

TOP_VALUES = 10
CATEGORY_MIN_DISTINCT = 20  # a text column with at most this many values is categorical ...
CATEGORY_SHARE = 0.05  # ... and so is one with at most this share of the row count
ID_MAX_CHARS = 64

_INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
_ID_WORDS = {"id", "ids", "uuid", "guid", "key", "code", "cod", "codigo", "sku", "cpf", "cnpj"}
_PERIOD_WORDS = {
    "semana", "semanas", "week", "weeks", "wk", "mes", "meses", "month", "months", "ano",
    "anos", "year", "years", "yr", "dia", "dias", "day", "days", "trimestre", "trimestres",
    "quarter", "quarters", "qtr", "bimestre", "semestre", "hora", "horas", "hour", "hours",
    "periodo", "periodos", "period", "periods", "sprint", "rodada", "round", "safra",
    "competencia", "exercicio", "fiscal",
}  # fmt: skip
# Words that may sit beside a period word in an ordinal key's name: "num_semana",
# "week_of_year", "nr_mes", "semana_do_ano", "week_idx".
_ORDINAL_FILLERS = {
    "num", "numero", "number", "no", "nr", "n", "idx", "index", "indice", "of", "the", "de",
    "do", "da", "dos", "das", "in", "na", "iso",
}  # fmt: skip


def dtype_family(dtype: str) -> str:
    """``integer``, ``float``, ``temporal``, ``boolean``, ``text`` or ``other`` for a DuckDB
    type name."""
    if dtype in _INTEGER_TYPES:
        return "integer"
    if dtype in _FLOAT_TYPES or dtype.startswith("DECIMAL"):
        return "float"
    if dtype == "DATE" or dtype.startswith("TIMESTAMP"):
        return "temporal"
    if dtype == "BOOLEAN":
        return "boolean"
    if dtype == "VARCHAR":
        return "text"
    return "other"


def name_words(name: str) -> list[str]:
    """The words of a column name, lower-case and without accents: ``customerId`` ->
    ``["customer", "id"]``, ``Código do Cliente`` -> ``["codigo", "do", "cliente"]``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    bare = unicodedata.normalize("NFKD", spaced).encode("ascii", "ignore").decode()
    # "no-show", ``no_shows``: one word ("noshow"), not the word "no" and a show.
    joined = _NO_SHOW.sub("noshow", bare.lower())
    return [w for w in re.split(r"[^a-z0-9]+", joined) if w]


_NO_SHOW = re.compile(r"(?<![a-z0-9])no[^a-z0-9]+show")


YES_VALUES = frozenset({"sim", "yes", "s", "y", "true", "t", "1", "verdadeiro"})
NO_VALUES = frozenset({"nao", "no", "n", "false", "f", "0", "falso"})


def yes_no_values(column: ColumnProfile) -> tuple[str, str] | None:
    """(yes, no) as a two-valued column writes them (Sim/Não, Yes/No, S/N), or None."""
    values = [str(v) for v, _ in column.top]
    if column.kind != "categorical" or len(values) != 2:
        return None
    folded = {"".join(name_words(v)): v for v in values}
    yes = next((v for k, v in folded.items() if k in YES_VALUES), None)
    no = next((v for k, v in folded.items() if k in NO_VALUES), None)
    return None if yes is None or no is None else (yes, no)


def is_id_name(name: str) -> bool:
    """Whether a column's name says it identifies rows: ``id``, ``order_id``, ``id_cliente``,
    ``customerId``, ``sku``, ``código``..."""
    words = name_words(name)
    if len(words) >= 2 and words[-1] in _NUMBER_SUFFIXES:
        return True  # store_no, pedido_nr, nota_num: the store's or order's number
    return bool(words) and (words[-1] in _ID_WORDS or words[0] in _ID_WORDS)


# What an id column identifies, by the word beside its id word, in either language; kept as
# the Portuguese singular, which answers write as "o número de pedidos" / "the number of
# orders" (see ``statements``).
_ENTITY_WORDS = {
    "pedido": "pedido", "order": "pedido", "venda": "venda", "sale": "venda",
    "cliente": "cliente", "customer": "cliente", "client": "cliente", "consulta": "consulta",
    "appointment": "consulta", "chamado": "chamado", "ticket": "chamado", "fatura": "fatura",
    "invoice": "fatura", "contrato": "contrato", "contract": "contrato", "reserva": "reserva",
    "booking": "reserva", "reservation": "reserva", "transacao": "transacao",
    "transaction": "transacao", "entrega": "entrega", "delivery": "entrega", "viagem": "viagem",
    "trip": "viagem", "corrida": "corrida", "ride": "corrida", "envio": "envio",
    "shipment": "envio", "paciente": "paciente", "patient": "paciente", "aluno": "aluno",
    "student": "aluno", "usuario": "usuario", "user": "usuario", "pagamento": "pagamento",
    "payment": "pagamento", "compra": "compra", "purchase": "compra", "atendimento":
    "atendimento", "visita": "visita", "visit": "visita", "projeto": "projeto",
    "project": "projeto", "funcionario": "funcionario", "employee": "funcionario",
}  # fmt: skip


def id_entity(name: str) -> str | None:
    """What an id column's name says it identifies (``id_pedido``, ``order_id``,
    ``pedido``: "pedido"), or None (``codigo``, ``sku``)."""
    words = [w for w in name_words(name) if w not in _ID_WORDS and w not in _NUMBER_SUFFIXES]
    if len(words) != 1:
        return None
    word = words[0]
    singular = word[:-1] if word.endswith("s") and word[:-1] in _ENTITY_WORDS else word
    return _ENTITY_WORDS.get(singular)


# A name's last word saying it is something's number ("store_no", "pedido_nr").
_NUMBER_SUFFIXES = frozenset({"no", "nr", "num", "numero", "number", "nro"})


_MONEY_WORDS = {
    "receita", "receitas", "venda", "vendas", "faturamento", "valor", "valores", "preco",
    "precos", "revenue", "revenues", "sales", "price", "prices", "amount", "amounts", "cost",
    "costs", "custo", "custos", "lucro", "lucros", "profit", "profits", "ticket", "gmv",
    "income", "renda", "montante", "salario", "salary", "despesa", "despesas", "expense",
    "expenses", "gasto", "gastos", "spend", "spending", "pagamento", "payment", "fee", "fees",
    "frete", "fretes", "freight", "shipping", "gorjeta", "gorjetas", "tip", "tips",
    "mensalidade", "mensalidades", "tuition", "salarios", "salaries", "reembolso", "reembolsos",
    "refund", "refunds", "mrr", "arr",
}  # fmt: skip
# Words that make a money-sounding name a count or a ratio: "vendas_qtd", "receita_pct".
_NOT_MONEY_WORDS = {
    "pct", "percent", "percentual", "share", "rate", "taxa", "ratio", "qtd", "qtde",
    "quantidade", "qty", "quantity", "count", "contagem", "itens", "items", "units", "unidades",
    "num", "numero", "number", "n",
}  # fmt: skip
# Money words of Portuguese: a column named by one holds reais unless it names another currency
# ("faturamento" is R$ in an English answer too; "revenue" stays without a symbol).
_PT_MONEY_WORDS = {
    "receita", "receitas", "venda", "vendas", "faturamento", "valor", "valores", "preco",
    "precos", "custo", "custos", "lucro", "lucros", "renda", "montante", "salario",
    "salarios", "despesa", "despesas", "gasto", "gastos", "pagamento", "frete", "fretes",
    "gorjeta", "gorjetas", "mensalidade", "mensalidades", "reembolso", "reembolsos",
}  # fmt: skip
_CURRENCY_WORDS = {
    "reais": "BRL", "real": "BRL", "brl": "BRL", "rs": "BRL", "usd": "USD", "dollar": "USD",
    "dollars": "USD", "dolar": "USD", "dolares": "USD", "eur": "EUR", "euro": "EUR",
    "euros": "EUR",
}  # fmt: skip


def money_of(name: str) -> tuple[bool, str | None]:
    """Whether a numeric column's name says it holds money, and the currency it names:
    ``vendas_reais`` -> ``(True, "BRL")``, ``revenue`` -> ``(True, None)``, ``vendas_qtd`` ->
    ``(False, None)``; a Portuguese money word means reais (``faturamento`` -> ``(True,
    "BRL")``)."""
    words = name_words(name)
    currency = next((_CURRENCY_WORDS[w] for w in words if w in _CURRENCY_WORDS), None)
    if currency is None and re.search(r"R\$", name):
        currency = "BRL"  # "Valor Total (R$)"
    elif currency is None and re.search(r"US\$|\$", name):
        currency = "USD"
    if any(w in _NOT_MONEY_WORDS for w in words):
        return False, None
    money = currency is not None or any(w in _MONEY_WORDS for w in words)
    if money and currency is None and any(w in _PT_MONEY_WORDS for w in words):
        currency = "BRL"
    return money, currency if money else None


def plain(value: Any) -> Scalar:
    """A DuckDB value as plain JSON-ready Python: Decimal to float, dates to ISO strings,
    non-finite floats to None."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return plain(value.item())
    return str(value)


def _number(value: Any) -> float | None:
    converted = plain(value)
    if isinstance(converted, bool) or not isinstance(converted, int | float):
        return None
    return float(converted)


@dataclass
class _Column:
    name: str
    dtype: str
    family: str
    masked: bool
    unit: str | None = None  # what its text wrote beside the numbers (Table.units)


def _stat_exprs(column: _Column, exact: bool) -> list[str]:
    """The aggregate expressions one column contributes to the single profiling query."""
    c = quote_ident(column.name)
    distinct = f"count(DISTINCT {c})" if exact else f"approx_count_distinct({c})"
    exprs = [f"count({c})", distinct]
    if column.family == "text":
        exprs += [f"max(length({c}))", f"bool_or(contains({c}, ' '))"]
    if column.masked:
        return exprs
    if column.family in ("integer", "float"):
        value = f"CAST({c} AS DOUBLE)"
        exprs += [
            f"min({c})",
            f"max({c})",
            f"avg({value})",
            f"stddev_samp({value})",
            f"fsum({value})" if column.family == "float" else f"sum({c})",
        ]
        if exact:
            exprs.append(f"quantile_cont({value}, [0.25, 0.5, 0.75])")
    elif column.family == "temporal":
        exprs += [f"min({c})", f"max({c})"]
    return exprs


def _quartiles(table: Table, columns: list[_Column], sample_rows: int) -> list[Any]:
    """Quartiles of the numeric columns over every k-th row, k chosen to keep about
    ``sample_rows`` rows: deterministic, unlike random sampling."""
    if not columns:
        return []
    step = max(1, math.ceil(table.row_count / max(1, sample_rows)))
    exprs = ", ".join(
        f"quantile_cont(CAST({quote_ident(c.name)} AS DOUBLE), [0.25, 0.5, 0.75])" for c in columns
    )
    return list(table.query(f"SELECT {exprs} FROM data WHERE rowid % {step} = 0")[0])  # noqa: S608


def is_ordinal_name(name: str) -> bool:
    """Whether an integer column's name says it numbers periods (``semana``, ``week_number``,
    ``semana_do_ano``), rather than measuring something during one (``vendas_semana``)."""
    words = name_words(name)
    return any(w in _PERIOD_WORDS for w in words) and all(
        w in _PERIOD_WORDS or w in _ORDINAL_FILLERS for w in words
    )


SEQUENCE_MIN_ROWS = 200  # fewer rows may hold a measure whose values happen to differ


def _numbers_rows(stats: dict[str, Any], name: str) -> bool:
    """Whether a unique integer column numbers the rows one by one (``pedido`` 1001, 1002...:
    its values fill their range) under a name that says no amount: an order's number, never
    to be summed, whatever it is called."""
    low, high, count = stats.get("min"), stats.get("max"), stats["count"]
    if count < SEQUENCE_MIN_ROWS or not isinstance(low, int) or not isinstance(high, int):
        return False
    money, _ = money_of(name)
    return not money and high - low + 1 <= 1.1 * count


def _classify(column: _Column, stats: dict[str, Any], row_count: int, exact: bool) -> ColumnKind:
    count, distinct = stats["count"], stats["distinct"]
    if count == 0:
        return "empty"
    unique = distinct >= count if exact else distinct >= 0.97 * count
    if column.family == "integer":
        if is_id_name(column.name) or (unique and _numbers_rows(stats, column.name)):
            return "id"
        return "ordinal" if is_ordinal_name(column.name) else "numeric"
    if column.family == "float":
        return "id" if unique and is_id_name(column.name) else "numeric"
    if column.family == "temporal":
        return "temporal"
    if column.family == "boolean":
        return "boolean"
    if column.dtype == "UUID":
        return "id"
    if column.family != "text":
        return "text"
    threshold = max(CATEGORY_MIN_DISTINCT, CATEGORY_SHARE * row_count)
    if unique and is_id_name(column.name):
        return "id"
    if distinct <= threshold:
        return "categorical"
    token_like = not stats["spaces"] and (stats["longest"] or 0) <= ID_MAX_CHARS
    return "id" if unique and token_like else "text"


def _top_values(table: Table, name: str) -> list[tuple[str, int]]:
    c = quote_ident(name)
    rows = table.query(
        f"SELECT CAST({c} AS VARCHAR) AS value, count(*) AS n FROM data "  # noqa: S608
        f"WHERE {c} IS NOT NULL GROUP BY {c} ORDER BY n DESC, value LIMIT {TOP_VALUES}"
    )
    return [(str(value), int(n)) for value, n in rows]


def _column_profile(
    column: _Column, stats: dict[str, Any], row_count: int, exact: bool
) -> ColumnProfile:
    kind = _classify(column, stats, row_count, exact)
    out = ColumnProfile(
        name=column.name,
        kind=kind,
        dtype=column.dtype,
        count=int(stats["count"]),
        nulls=row_count - int(stats["count"]),
        distinct=min(int(stats["distinct"]), int(stats["count"])),
        masked=column.masked,
    )
    if kind == "id":
        out.entity = id_entity(column.name)
    if column.masked or kind == "empty":
        return out
    if column.family in ("integer", "float"):
        if kind == "numeric":
            out.money, out.currency = money_of(column.name)
            if column.unit == "percent":
                out.money, out.currency, out.percent = False, None, True
            elif column.unit is not None:
                # "R$ 1.234,56" in the file: money in reais whatever the column is called
                out.money, out.currency = True, column.unit
        out.min, out.max = plain(stats["min"]), plain(stats["max"])
        out.mean, out.std, out.sum = (_number(stats[k]) for k in ("mean", "std", "sum"))
        quartiles = stats.get("quartiles") or [None, None, None]
        out.q1, out.median, out.q3 = (_number(q) for q in quartiles)
    elif column.family == "temporal":
        out.min, out.max = plain(stats["min"]), plain(stats["max"])
    return out


def _unpack(columns: Iterable[_Column], row: tuple[Any, ...], exact: bool) -> list[dict[str, Any]]:
    """Split the single profiling row back into per-column stats, in ``_stat_exprs`` order."""
    values = iter(row)
    out = []
    for column in columns:
        stats: dict[str, Any] = {"count": next(values), "distinct": next(values)}
        if column.family == "text":
            stats["longest"], stats["spaces"] = next(values), next(values)
        if not column.masked and column.family in ("integer", "float"):
            for key in ("min", "max", "mean", "std", "sum"):
                stats[key] = next(values)
            if exact:
                stats["quartiles"] = next(values)
        elif not column.masked and column.family == "temporal":
            stats["min"], stats["max"] = next(values), next(values)
        out.append(stats)
    return out


def profile(
    table: Table, *, masked: Collection[str] = frozenset(), sample_rows: int = 200_000
) -> Profile:
    """Profile every column of ``table``; ``masked`` columns get counts and a kind only."""
    columns = [
        _Column(
            name,
            table.types[name],
            dtype_family(table.types[name]),
            name in masked,
            table.units.get(name),
        )
        for name in table.columns
    ]
    exact = table.row_count <= sample_rows
    exprs = [e for column in columns for e in _stat_exprs(column, exact)]
    row = table.query("SELECT " + ", ".join(exprs) + " FROM data")[0]  # noqa: S608
    stats = _unpack(columns, row, exact)
    if not exact:
        numeric = [c for c in columns if not c.masked and c.family in ("integer", "float")]
        for column, quartiles in zip(numeric, _quartiles(table, numeric, sample_rows), strict=True):
            stats[columns.index(column)]["quartiles"] = quartiles
    profiles = [
        _column_profile(column, s, table.row_count, exact)
        for column, s in zip(columns, stats, strict=True)
    ]
    for out in profiles:
        if not out.masked and out.kind in ("categorical", "boolean"):
            out.top = _top_values(table, out.name)
    return Profile(row_count=table.row_count, columns=profiles, sampled=not exact)
