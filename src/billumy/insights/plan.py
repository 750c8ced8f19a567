"""Question plans: the :class:`Plan` a question becomes (measures, dimensions, filters,
period, order), the JSON schema a model fills one under (:func:`plan_schema`), and its
validation against a profile (:func:`validate_plan`), filter values coerced to their column's
type on the way.

A plan comes from the model or from :func:`~billumy.insights.rules.rule_plan`'s keyword rules;
:func:`~billumy.insights.planned.facts_for_plan` turns it into facts.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from billumy.errors import BadRequestError
from billumy.insights.model import ColumnProfile, Profile
from billumy.insights.profile import dtype_family

__all__ = [
    "Filter",
    "Measure",
    "Period",
    "Plan",
    "plan_schema",
    "validate_plan",
]

Agg = Literal["sum", "avg", "count", "min", "max"]
Grain = Literal["day", "week", "month", "quarter", "year"]
Op = Literal["=", "!=", ">", ">=", "<", "<=", "in"]

MAX_MEASURES = 5
MAX_FILTERS = 10


class Measure(BaseModel):
    """One aggregate: ``column`` is a numeric column, or ``"*"`` with ``count`` for rows."""

    model_config = ConfigDict(extra="forbid")
    column: str
    agg: Agg


class Filter(BaseModel):
    """A condition on a column; ``value`` is a list exactly when ``op`` is ``in``."""

    model_config = ConfigDict(extra="forbid")
    column: str
    op: Op
    value: str | float | list[str | float]


class Period(BaseModel):
    """Group by ``grain`` of a temporal column; ``last`` keeps the last N calendar periods."""

    model_config = ConfigDict(extra="forbid")
    column: str
    grain: Grain
    last: int | None = Field(default=None, ge=1, le=1000)


class Plan(BaseModel):
    """What to compute for a question: aggregates, by up to two dimensions and/or a period,
    over the rows the filters keep."""

    model_config = ConfigDict(extra="forbid")
    measures: list[Measure] = Field(min_length=1, max_length=MAX_MEASURES)
    dimensions: list[str] = Field(default_factory=list, max_length=2)
    filters: list[Filter] = Field(default_factory=list, max_length=MAX_FILTERS)
    period: Period | None = None
    top_n: int = Field(default=5, ge=1, le=100)
    order: Literal["desc", "asc"] = "desc"


def _allowed(profile: Profile) -> dict[str, list[str]]:
    visible = [c for c in profile.columns if not c.masked]
    return {
        "measures": [c.name for c in visible if c.kind == "numeric"] + ["*"],
        "dimensions": [c.name for c in visible if c.kind in ("categorical", "boolean", "temporal")],
        "filters": [c.name for c in visible if c.kind not in ("empty", "text")],
        "periods": [c.name for c in visible if c.kind == "temporal"],
    }


def _enum(values: list[str]) -> dict[str, Any]:
    return {"type": "string", "enum": values} if values else {"type": "string", "enum": [""]}


def plan_schema(profile: Profile) -> dict[str, Any]:
    """The JSON schema of :class:`Plan` for this profile, column fields as ``enum`` of the
    columns allowed there; plain enough for llama.cpp's JSON-schema grammar (no ``$ref``,
    no ``oneOf``)."""
    allowed = _allowed(profile)
    scalar = [{"type": "string"}, {"type": "number"}]
    properties: dict[str, Any] = {
        "measures": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "column": _enum(allowed["measures"]),
                    "agg": {"type": "string", "enum": ["sum", "avg", "count", "min", "max"]},
                },
                "required": ["column", "agg"],
                "additionalProperties": False,
            },
        },
        "dimensions": {
            "type": "array",
            "maxItems": 2 if allowed["dimensions"] else 0,
            "items": _enum(allowed["dimensions"]),
        },
        "filters": {
            "type": "array",
            "maxItems": 3 if allowed["filters"] else 0,
            "items": {
                "type": "object",
                "properties": {
                    "column": _enum(allowed["filters"]),
                    "op": {"type": "string", "enum": ["=", "!=", ">", ">=", "<", "<=", "in"]},
                    "value": {"anyOf": [*scalar, {"type": "array", "items": {"anyOf": scalar}}]},
                },
                "required": ["column", "op", "value"],
                "additionalProperties": False,
            },
        },
        "top_n": {"type": "integer", "minimum": 1, "maximum": 20},
        "order": {"type": "string", "enum": ["desc", "asc"]},
    }
    if allowed["periods"]:
        properties["period"] = {
            "type": "object",
            "properties": {
                "column": _enum(allowed["periods"]),
                "grain": {"type": "string", "enum": ["day", "week", "month", "quarter", "year"]},
                "last": {"type": "integer", "minimum": 1, "maximum": 1000},
            },
            "required": ["column", "grain"],
            "additionalProperties": False,
        }
    return {
        "type": "object",
        "properties": properties,
        "required": ["measures", "dimensions", "filters"],
        "additionalProperties": False,
    }


def _column(profile: Profile, name: str, role: str) -> ColumnProfile:
    column = profile.column(name)
    if column is None:
        raise BadRequestError(f"the plan names an unknown column {name!r} (in {role})")
    if column.masked:
        raise BadRequestError(f"column {name!r} is masked and cannot be used in {role}")
    return column


def _check_measure(profile: Profile, measure: Measure) -> None:
    if measure.column == "*":
        if measure.agg != "count":
            raise BadRequestError(f"'*' only counts rows; {measure.agg} needs a numeric column")
        return
    column = _column(profile, measure.column, "measures")
    if measure.agg == "count":
        return
    if measure.agg in ("min", "max") and column.kind == "temporal":
        return
    if column.kind != "numeric":
        raise BadRequestError(
            f"cannot take the {measure.agg} of column {measure.column!r}: it is "
            f"{column.kind}, not numeric"
        )


def _check_filter(profile: Profile, flt: Filter) -> None:
    column = _column(profile, flt.column, "filters")
    if column.kind in ("empty", "text"):
        raise BadRequestError(f"column {flt.column!r} is {column.kind} and cannot be filtered")
    if (flt.op == "in") != isinstance(flt.value, list):
        raise BadRequestError(
            f"the filter on {flt.column!r} needs a list value with 'in' and a single value "
            "with other operators"
        )
    if flt.op == "in" and not flt.value:
        raise BadRequestError(f"the 'in' filter on {flt.column!r} has an empty list")
    for value in flt.value if isinstance(flt.value, list) else [flt.value]:
        _coerce(column, value)


def validate_plan(plan: Plan, profile: Profile) -> None:
    """400 when the plan names an unknown or masked column, or one of the wrong kind."""
    for measure in plan.measures:
        _check_measure(profile, measure)
    if len(set(plan.dimensions)) != len(plan.dimensions):
        raise BadRequestError("the plan repeats a dimension")
    for name in plan.dimensions:
        column = _column(profile, name, "dimensions")
        if column.kind not in ("categorical", "boolean", "temporal"):
            raise BadRequestError(
                f"column {name!r} is {column.kind} and cannot be a dimension; use a "
                "categorical, boolean or temporal column"
            )
    for flt in plan.filters:
        _check_filter(profile, flt)
    if plan.period is not None:
        column = _column(profile, plan.period.column, "period")
        if column.kind != "temporal":
            raise BadRequestError(
                f"column {plan.period.column!r} is {column.kind}, not a date or time"
            )


def _coerce(column: ColumnProfile, value: str | float) -> Any:
    """A filter value as a parameter of the column's type; 400 if it cannot be one."""
    family = dtype_family(column.dtype)
    text = str(value).strip()
    try:
        if family == "integer":
            number = float(value)
            return int(number) if number.is_integer() else number
        if family == "float":
            return float(value)
        if family == "boolean":
            if text.lower() in ("true", "1", "1.0", "yes", "sim"):
                return True
            if text.lower() in ("false", "0", "0.0", "no", "nao", "não"):
                return False
            raise ValueError(text)
        if family == "temporal":
            return _as_datetime(text, column.dtype)
    except (TypeError, ValueError):
        raise BadRequestError(
            f"the filter value {text!r} does not fit column {column.name!r} ({column.dtype})"
        ) from None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_datetime(text: str, dtype: str) -> date | datetime:
    if re.fullmatch(r"\d{4}-\d{2}", text):
        text += "-01"
    elif re.fullmatch(r"\d{4}", text):
        text += "-01-01"
    moment = datetime.fromisoformat(text)
    return (
        moment.date()
        if dtype == "DATE" and moment == datetime.combine(moment.date(), datetime.min.time())
        else moment
    )
