"""Ollama model routes: tags, show, ps, version, and admin-only create/copy/delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from billumy import __version__
from billumy.api.deps import (
    AdminKey,
    CatalogDep,
    CopyBody,
    CreateBody,
    DeleteBody,
    InferenceDep,
    InferenceKey,
    KeyFirstRoute,
    ServicesDep,
    ShowBody,
)
from billumy.api.docs import answers
from billumy.api.responses import JSON
from billumy.api.streaming import NDJSON, ndjson_response
from billumy.catalog import ModelEntry
from billumy.errors import BadRequestError, NotFoundError
from billumy.modelfile import Modelfile, coerce_parameters, parse_modelfile
from billumy.schemas.ollama import CreateRequest
from billumy.schemas.responses import (
    PsResponse,
    ShowResponse,
    StatusResponse,
    TagsResponse,
    VersionResponse,
)

router = APIRouter(prefix="/api", tags=["models"], route_class=KeyFirstRoute)
REFUSED = "Always: Billumy serves the models of its configuration; it pulls and pushes none."


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _summary(entry: ModelEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "model": entry.name,
        "modified_at": _iso(entry.modified_at),
        "size": entry.base.size(),
        "digest": entry.digest,
        "details": entry.details(),
    }


@router.get("/tags", responses=answers(TagsResponse))
async def tags(service: InferenceDep, key: InferenceKey) -> Response:
    models = []
    for entry in await service.catalog.list(tenant=key.tenant):
        summary = _summary(entry)
        if entry.route is not None:
            group = service.router.deployments.get(entry.route, [])
            summary["deployments"] = [d.name for d in group]
        models.append(summary)
    return JSON({"models": models})


@router.post("/show", responses=answers(ShowResponse, errors=(404,)))
async def show(body: ShowBody, catalog: CatalogDep, key: InferenceKey) -> Response:
    entry = await catalog.get(body.model, tenant=key.tenant)
    parameters = "\n".join(
        f"{name:<30} {value}"
        for name, values in sorted(entry.parameters.items())
        for value in (values if isinstance(values, list) else [values])
    )
    return JSON(
        {
            "modelfile": entry.modelfile(),
            "parameters": parameters,
            "template": entry.template or "",
            "system": entry.system or "",
            "license": entry.license or "",
            "details": entry.details(),
            "model_info": {
                "general.architecture": entry.base.family,
                "general.parameter_count": entry.base.parameter_size,
                f"{entry.base.family}.context_length": entry.base.context_length,
            },
            "capabilities": ["completion", "embedding"],
            "modified_at": _iso(entry.modified_at),
        }
    )


@router.get("/ps", responses=answers(PsResponse))
async def ps(service: InferenceDep, key: InferenceKey) -> Response:
    models = []
    for loaded in await service.engine.aloaded():
        try:
            # Another tenant's persona is not shown, even while its model is loaded.
            entry = await service.catalog.get(loaded.name, tenant=key.tenant)
        except NotFoundError:
            continue
        if entry.base.remote or entry.base.path() != loaded.model_path:
            continue  # the name is, to this tenant, another model than the one loaded
        models.append(
            {
                **_summary(entry),
                "expires_at": _iso(loaded.expires_at),
                "size": loaded.size,
                "size_vram": 0,
                "context_length": loaded.context_length,
            }
        )
    # Upstream deployments whose circuit is not open, marked with their deployment.
    for deployment in service.router.all():
        if not deployment.backend.remote or deployment.breaker.state == "open":
            continue
        entry = await service.catalog.get(deployment.config.model, tenant=None)
        models.append(
            {
                **_summary(entry),
                "expires_at": _iso(datetime.now(UTC) + timedelta(days=3650)),
                "size_vram": 0,
                "context_length": deployment.config.context_length,
                **deployment.describe(),
            }
        )
    # Besides Ollama's fields: the state of the embedded engine's process.
    return JSON({"models": models, "runner": service.engine.runner()})


@router.get("/version", responses=answers(VersionResponse))
async def version(_: InferenceKey) -> Response:
    return JSON({"version": __version__})


def as_modelfile(body: CreateRequest) -> tuple[Modelfile, str | None]:
    """The Modelfile and license a create body describes (also /admin/personas')."""
    for field in ("files", "adapters", "quantize"):
        if getattr(body, field):
            raise BadRequestError(
                f"'{field}' is not supported: models come from configuration and packages"
            )
    if body.modelfile:
        mf = parse_modelfile(body.modelfile)
    elif body.from_:
        mf = Modelfile(from_=body.from_)
    else:
        raise BadRequestError("'from' (or a modelfile) is required")
    if body.system is not None:
        mf.system = body.system
    if body.template is not None:
        mf.template = body.template
    if body.parameters:
        mf.parameters = {**mf.parameters, **coerce_parameters(body.parameters)}
    if body.messages:
        mf.messages = [{"role": m.role, "content": m.content or ""} for m in body.messages]
    license = "\n".join(body.license) if isinstance(body.license, list) else body.license
    return mf, license


@router.post("/create", responses=answers(StatusResponse, stream=NDJSON, errors=(404,)))
async def create(
    body: CreateBody, catalog: CatalogDep, services: ServicesDep, key: AdminKey
) -> Response:
    if not body.model:
        raise BadRequestError("model is required")
    mf, license = as_modelfile(body)
    await catalog.create(body.model, mf, tenant=key.tenant, shared=body.shared, license=license)
    statuses = ["reading model metadata", "creating system layer", "writing manifest", "success"]
    if not body.stream:
        return JSON({"status": "success"})

    async def progress() -> Any:
        for status in statuses:
            yield {"status": status}

    first = {"status": statuses[0]}
    rest = progress()
    await anext(rest)
    return ndjson_response(
        first, rest, lambda s: s, lambda s: s["status"] == "success", drain=services.drain
    )


@router.post("/copy", responses=answers(description="Copied.", errors=(404,)))
async def copy(body: CopyBody, catalog: CatalogDep, key: AdminKey) -> Response:
    await catalog.copy(body.source, body.destination, tenant=key.tenant, shared=body.shared)
    return Response(status_code=200)


@router.delete("/delete", responses=answers(description="Deleted.", errors=(404,)))
async def delete(body: DeleteBody, catalog: CatalogDep, key: AdminKey) -> Response:
    if not body.model:
        raise BadRequestError("model is required")
    await catalog.delete(body.model, tenant=key.tenant, shared=body.shared)
    return Response(status_code=200)


# Refused whatever they are sent: their only answer is the 400 (no 200 is documented, as
# none is ever sent), besides the key's 401, 403 and 429.
@router.post("/pull", status_code=400, response_description=REFUSED, responses={400: {}})
async def pull(_: AdminKey) -> Response:
    raise BadRequestError(
        "pulling models is disabled: Billumy serves the models of its configuration "
        "and installed packages"
    )


@router.post("/push", status_code=400, response_description=REFUSED, responses={400: {}})
async def push(_: AdminKey) -> Response:
    raise BadRequestError("pushing models is not supported by Billumy")
