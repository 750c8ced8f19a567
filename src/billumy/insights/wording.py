"""How a fact's statement writes numbers, percentages and labels: plain English, rounded to
2 decimals and percentages to 1 (:mod:`billumy.insights.formats` writes them for a reader, in
the reader's locale).
"""

from __future__ import annotations

from billumy.insights.model import Scalar

__all__ = [
    "fmt_number",
    "fmt_pct",
]


def fmt_number(value: Scalar) -> str:
    """A number for a statement: thousands separators, at most 2 decimals (2 significant
    digits for tiny values), no trailing zeros."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or value.is_integer():
        return f"{round(value):,}"
    if 0 < abs(value) < 0.01:
        return f"{value:.2g}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def fmt_pct(value: float | None) -> str:
    """A percentage with one decimal: ``12.5%``."""
    return "n/a" if value is None else f"{value:.1f}%"


def _fmt_label(value: Scalar) -> str:
    return fmt_number(value) if isinstance(value, int | float) else str(value)


def _sentence(text: str) -> str:
    """``text`` with its first letter upper-cased (and nothing else changed) and a period."""
    return f"{text[:1].upper()}{text[1:]}."
