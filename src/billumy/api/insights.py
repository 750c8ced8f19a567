"""Grounded insights (``/api/insights``) and datasets (``/datasets``)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from billumy.api.deps import (
    BodyOf,
    InferenceKey,
    KeyFirstRoute,
    M,
    ServicesDep,
    refuse_nul,
    services_of,
)
from billumy.api.docs import MODEL_ERRORS, answers, request_body
from billumy.api.responses import JSON
from billumy.api.streaming import NDJSON, ndjson_response, unless_disconnected
from billumy.errors import BadRequestError
from billumy.insights.datasets import parse_format
from billumy.insights.inline import check_inline_json
from billumy.insights.service import InsightService
from billumy.schemas.insights import DatasetUpload, InsightRequest
from billumy.schemas.responses import (
    DatasetCreated,
    DatasetForm,
    DatasetOut,
    InsightHistory,
    InsightResult,
    SourceList,
)

router = APIRouter(tags=["insights"], route_class=KeyFirstRoute)
_CHART_NUMBER = re.compile(r"[0-9]{1,6}")


async def _service(services: ServicesDep) -> InsightService:
    return services.insights


Insights = Annotated[InsightService, Depends(_service)]


class DataBodyOf(BodyOf[M]):
    """A body that may carry inline data: its objects, lists and values are counted on the
    bytes (:func:`check_inline_json`) before it is parsed, and both run off the event loop."""

    async def __call__(self, request: Request) -> M:
        raw = await request.body()
        service = services_of(request).insights

        def parse() -> M:
            check_inline_json(raw, service.limits)
            return self.parse(raw)

        return await asyncio.to_thread(parse)


InsightBody = Annotated[InsightRequest, Depends(DataBodyOf(InsightRequest))]


@router.post(
    "/api/insights", responses=answers(InsightResult, stream=NDJSON, errors=(*MODEL_ERRORS, 413))
)
async def create_insight(
    request: Request, body: InsightBody, service: Insights, key: InferenceKey
) -> Response:
    events = service.run(key, body)
    if not body.stream:

        async def whole() -> dict[str, Any]:
            last: dict[str, Any] = {}
            async for event in events:
                last = event
            return {k: v for k, v in last.items() if k != "type"}

        return JSON(await unless_disconnected(request, whole()))
    # Errors up to the facts (bad data, unknown columns) are HTTP errors; later ones in-band.
    first = await unless_disconnected(request, anext(events))
    # An insight goes out once the model has finished it, maybe seconds after the last event:
    # a client that hangs up meanwhile stops the work at once.
    return ndjson_response(
        first,
        events,
        lambda event: event,
        lambda event: event.get("type") == "insights",
        drain=services_of(request).drain,
        cancel_on_disconnect=True,
    )


@router.get("/api/sources", responses=answers(SourceList))
async def list_sources(service: Insights, key: InferenceKey) -> Response:
    """The sources this key's tenant may ask about: names, tables, columns and their types
    (never a URL). A source that cannot be reached is listed with ``available: false``."""
    found = service.sources.of(key.tenant)
    listed = await asyncio.gather(*(asyncio.to_thread(s.describe) for s in found))
    return JSON({"sources": list(listed)})


@router.get("/api/insights", responses=answers(InsightHistory))
async def list_insights(
    service: Insights, key: InferenceKey, user_id: str | None = None, limit: int = 50
) -> Response:
    if not 1 <= limit <= 500:
        raise BadRequestError("limit must be between 1 and 500")
    # The store returns only the newest ``limit``, and only the fields shown.
    briefs = await service.datasets.insights(key.tenant, user_id=user_id, limit=limit)
    return JSON({"insights": [brief.as_dict() for brief in briefs]})


@router.get("/api/insights/{insight_id}", responses=answers(InsightResult, errors=(404,)))
async def get_insight(insight_id: str, service: Insights, key: InferenceKey) -> Response:
    return JSON(await service.get(key, insight_id))


@router.get(
    "/api/insights/{insight_id}/charts/{name}",
    responses=answers(media="image/svg+xml", errors=(404,)),
)
async def get_chart(insight_id: str, name: str, service: Insights, key: InferenceKey) -> Response:
    number, _, ext = name.partition(".")
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if ext != "svg" or not _CHART_NUMBER.fullmatch(number):
        raise BadRequestError("charts are served as /charts/{n}.svg")
    svg = await service.chart_svg(key, insight_id, int(number))
    return Response(svg, media_type="image/svg+xml")


@router.post(
    "/datasets",
    status_code=201,
    responses={
        **answers(DatasetCreated, status=201, description="A new version."),
        **answers(
            DatasetCreated,
            description="The same content as the latest version.",
            errors=(404, 503),
        ),
    },
    openapi_extra=request_body(
        {"multipart/form-data": DatasetForm, "application/json": DatasetUpload}
    ),
)
async def upload_dataset(request: Request, service: Insights, key: InferenceKey) -> Response:
    """A dataset, or the next version of ``dataset_id``, from a multipart file, inline JSON
    ``data``, or a snapshot of a source's table (``source``, ``table``, an optional ``filter``
    and ``columns``): its rows read in the source, masked columns left out (``masked``), where
    they came from kept as the version's ``origin``. The same content as the latest version
    makes no new version (200, ``new_version: false``)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=10)
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise BadRequestError("multipart uploads need a 'file' field")
            content = await upload.read()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            refuse_nul(*fields.values(), upload.filename)
            fmt = parse_format(upload.filename, upload.content_type, fields.get("format"))
            dataset, created = await service.upload(
                key,
                content=content,
                fmt=fmt,
                dataset_id=fields.get("dataset_id"),
                name=fields.get("name") or upload.filename,
                user_id=fields.get("user_id"),
            )
        finally:
            await form.close()
    else:
        body = await DataBodyOf(DatasetUpload)(request)
        if body.source is not None:
            dataset, created, origin = await service.snapshot(key, body)
            shown = {**dataset.as_dict(), "new_version": created, "origin": origin}
            return JSON({**shown, "masked": origin["masked"]}, status_code=201 if created else 200)
        dataset, created = await service.upload(
            key,
            inline=body.data,
            dataset_id=body.dataset_id,
            name=body.name,
            user_id=body.user_id,
        )
    return JSON({**dataset.as_dict(), "new_version": created}, status_code=201 if created else 200)


@router.get("/datasets/{dataset_id}", responses=answers(DatasetOut, errors=(404,)))
async def get_dataset(dataset_id: str, service: Insights, key: InferenceKey) -> Response:
    dataset = await service.datasets.get(key.tenant, dataset_id)
    return JSON(dataset.as_dict())


@router.delete(
    "/datasets/{dataset_id}",
    status_code=204,
    responses=answers(status=204, description="Deleted.", errors=(404,)),
)
async def delete_dataset(dataset_id: str, service: Insights, key: InferenceKey) -> Response:
    await service.datasets.delete(key.tenant, dataset_id)
    return Response(status_code=204)
