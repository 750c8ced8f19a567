"""Facts: deterministic findings, each computed by one SQL query over the table ``data``, and
the helpers every kind of fact is built with.

The language model only writes about facts; it never computes. So every number a narrative
may cite is produced by SQL that Billumy builds itself (identifiers through
:func:`~billumy.insights.data.quote_ident`, user values only as ``?`` parameters, kept in
``Fact.params``), and a verifier can re-run it.

Conventions every fact follows:

* ``sql`` (with ``params``) returns exactly ``rows``: same columns, same order. For
  single-number facts that is one row;
* ``values`` are cells of ``rows`` or plain arithmetic on them: ``change = last - previous``,
  ``change_pct = 100 * change / |previous|``, ``slope`` = the least-squares slope of the
  measure over the period index 0..n-1 (what DuckDB's ``regr_slope`` computes) and
  ``median_slope`` the median of the slopes between every two periods (Theil-Sen), the rate
  a trend is stated at;
* numbers are plain ``int``/``float`` (``None`` for undefined), labels are ``str``, dates are
  ISO strings; statements round to 2 decimals and percentages to 1
  (:mod:`billumy.insights.wording`);
* sums of floating-point columns use ``fsum`` (compensated summation), so a total does not
  depend on the order in which DuckDB's threads add the parts
  (:func:`~billumy.insights.roles.metric_sql`);
* series are bucketed at the coarser of the grain the data are recorded at and the grain
  their span reads best at (:mod:`billumy.insights.grains`).

Two entry points: :func:`~billumy.insights.salient.salient_facts` (no question) and
:func:`~billumy.insights.planned.facts_for_plan` (a question turned into a
:class:`~billumy.insights.plan.Plan`). Masked columns never appear in a fact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from billumy.insights.data import Table
from billumy.insights.model import Fact, Scalar
from billumy.insights.profile import plain


def _labels(wanted: Sequence[str], taken: Iterable[str] = ()) -> list[str]:
    """Result-column names: ``wanted``, each made unique (case-insensitively) by a suffix."""
    used = {t.casefold() for t in taken}
    out = []
    for name in wanted:
        label, n = name, 2
        while label.casefold() in used:
            label, n = f"{name}_{n}", n + 1
        used.add(label.casefold())
        out.append(label)
    return out


def _clean_rows(rows: list[dict[str, Any]]) -> list[dict[str, Scalar]]:
    return [{k: plain(v) for k, v in row.items()} for row in rows]


def _num(value: Scalar) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _fact(
    table: Table,
    kind: str,
    sql: str,
    columns: list[str],
    params: Sequence[Any] = (),
) -> tuple[Fact, list[dict[str, Scalar]]]:
    """Run ``sql`` and start a fact around its rows; the caller fills statement and values."""
    rows = _clean_rows(table.records(sql, list(params)))
    fact = Fact(
        id="",
        kind=kind,
        statement="",
        values={},
        columns=columns,
        sql=sql,
        rows=rows,
        params=[plain(p) for p in params],
    )
    return fact, rows


def _numbered(facts: list[Fact]) -> list[Fact]:
    for position, fact in enumerate(facts, start=1):
        fact.id = f"f{position}"
    return facts
