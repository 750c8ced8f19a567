"""Bodies of the insights and datasets API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator
from pydantic.config import JsonDict


class InsightRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="Model that plans and narrates.")
    question: str | None = Field(default=None, max_length=4000)
    data: Any = Field(
        default=None, description="Records (list of objects), columns (object of lists) or CSV."
    )
    dataset_id: str | None = None
    dataset_version: int | None = Field(default=None, ge=1)
    source: str | None = Field(
        default=None,
        max_length=64,
        description="A configured source (GET /api/sources): its table is read in place.",
    )
    table: str | None = Field(
        default=None, max_length=200, description="The source's table; needed when it has several."
    )
    language: str | None = Field(default=None, description="pt, pt-BR or en; default: guessed.")
    max_insights: int = Field(default=3, ge=1, le=8)
    narrative: bool | None = Field(
        default=None,
        description=(
            "Let the model write insights after the answer; false: the answer only. Unset: the "
            "insights_narrative setting (auto: on for an upstream model, off for the embedded)."
        ),
    )
    stream: bool = False
    user_id: str | None = Field(default=None, max_length=200)
    columns: list[str] | None = Field(
        default=None, max_length=1000, description="Only these columns are analysed."
    )
    mask: list[str] | None = Field(
        default=None,
        max_length=1000,
        description="Columns whose values never reach the model, the logs or the cache.",
    )


_SCALAR: list[JsonValue] = [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
_CONDITION: JsonDict = {
    "type": "object",
    "description": "One condition: the column compared with the value (a bound parameter).",
    "properties": {
        "column": {"type": "string", "description": "An allowed, unmasked column."},
        "op": {"type": "string", "enum": ["=", "!=", "<", "<=", ">", ">=", "in", "between"]},
        "value": {
            "description": (
                "Text, a number or a boolean, as the column holds (dates and times as ISO "
                "text); a list of them for 'in', of two for 'between'."
            ),
            "anyOf": [*_SCALAR, {"type": "array", "items": {"anyOf": _SCALAR}, "maxItems": 1000}],
        },
    },
    "required": ["column", "op", "value"],
    "additionalProperties": False,
}


class DatasetUpload(BaseModel):
    """A JSON upload: inline ``data`` instead of a multipart file, or a snapshot of a source's
    table (``source``, ``table`` and an optional ``filter`` instead of ``data``)."""

    model_config = ConfigDict(extra="forbid")

    data: Any = Field(
        default=None,
        description="Records (list of objects), columns (object of lists) or CSV text.",
    )
    source: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "A configured source (GET /api/sources): the rows of its table become the version, "
            "read in the source (masked columns left out). Instead of data."
        ),
    )
    table: str | None = Field(
        default=None, max_length=200, description="The source's table; needed when it has several."
    )
    filter: list[Any] | None = Field(
        default=None,
        max_length=100,
        description="Only the source's rows where every condition holds.",
        json_schema_extra={"items": _CONDITION},
    )
    columns: list[str] | None = Field(
        default=None,
        max_length=1000,
        description="Only these of the source table's columns; default: every allowed one.",
    )
    name: str | None = Field(default=None, max_length=200)
    user_id: str | None = Field(default=None, max_length=200)
    dataset_id: str | None = Field(default=None, description="Add a version to this dataset.")

    @model_validator(mode="after")
    def _data_or_source(self) -> DatasetUpload:
        if (self.data is None) == (self.source is None):
            raise ValueError("send exactly one of data and source")
        stray = [n for n in ("table", "filter", "columns") if getattr(self, n) is not None]
        if self.source is None and stray:
            raise ValueError(f"{', '.join(stray)}: only with source")
        return self
