"""Bodies of the insights and datasets API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class DatasetUpload(BaseModel):
    """A JSON upload: inline data instead of a multipart file."""

    model_config = ConfigDict(extra="forbid")

    data: Any
    name: str | None = Field(default=None, max_length=200)
    user_id: str | None = Field(default=None, max_length=200)
    dataset_id: str | None = Field(default=None, description="Add a version to this dataset.")
