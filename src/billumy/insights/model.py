"""The vocabulary shared by profiling, facts, narration, verification and charts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ColumnKind = Literal[
    "numeric", "ordinal", "categorical", "temporal", "text", "id", "boolean", "empty"
]

Scalar = int | float | str | bool | None


@dataclass
class ColumnProfile:
    """What profiling found about one column. Masked columns keep only counts and kind."""

    name: str
    kind: ColumnKind
    dtype: str  # the DuckDB type
    count: int  # non-null values
    nulls: int
    distinct: int
    masked: bool = False
    min: Scalar = None
    max: Scalar = None
    mean: float | None = None
    median: float | None = None
    std: float | None = None
    q1: float | None = None
    q3: float | None = None
    sum: float | None = None
    top: list[tuple[str, int]] = field(default_factory=list)  # most frequent values, counts
    money: bool = False  # a numeric column whose name says it holds money (receita, price...)
    currency: str | None = None  # ISO code when the name says which (vendas_reais, price_usd)
    # in percentage points: the file wrote its values with "%" ("1,65%" is 1.65)
    percent: bool = False
    # What a bare key (``id``) identifies, from its table's name: a source's ``vendas_pedido``
    # holds orders, so "pedidos" counts its ids, as it would a ``pedido_id``.
    entity: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v is not None and v != []}
        out["top"] = [{"value": v, "count": c} for v, c in self.top]
        return out


@dataclass
class Profile:
    row_count: int
    columns: list[ColumnProfile]
    sampled: bool = False  # statistics from a sample (quantiles) on very large inputs

    def column(self, name: str) -> ColumnProfile | None:
        return next((c for c in self.columns if c.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "row_count": self.row_count,
            "sampled": self.sampled,
            "columns": [c.as_dict() for c in self.columns],
        }


@dataclass
class Fact:
    """One deterministic finding, computed by ``sql`` over the data.

    ``values`` holds the named numbers (and labels) the narrative may cite; ``rows`` holds a
    small table (series, segments) for charts and for verification. Every number that may
    appear in an insight must be in ``values`` or ``rows``.
    """

    id: str  # "f1", "f2", ... in order of salience
    kind: str  # row_count, summary, trend, period_change, top_segment, bottom_segment, ...
    statement: str  # one plain English sentence stating the fact with its numbers
    values: dict[str, Scalar]
    columns: list[str]
    sql: str
    rows: list[dict[str, Scalar]] = field(default_factory=list)
    score: float = 0.0  # salience, higher first
    params: list[Scalar] = field(default_factory=list)  # values for the ``?`` in ``sql``
    # A stock's total is taken on one date: {"column", "period" (its label), "grain"}.
    as_of: dict[str, Scalar] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "statement": self.statement,
            "values": self.values,
            "columns": self.columns,
            "sql": self.sql,
            "rows": self.rows,
            **({"params": self.params} if self.params else {}),
            **({"as_of": self.as_of} if self.as_of else {}),
        }
