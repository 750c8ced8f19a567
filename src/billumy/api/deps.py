"""Dependencies as ``Annotated`` aliases: the calling key, its scopes, the services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from billumy.auth import Principal
from billumy.catalog import Catalog
from billumy.errors import BadRequestError
from billumy.inference import InferenceService
from billumy.schemas.ollama import (
    ChatRequest,
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
    ShowRequest,
)

M = TypeVar("M", bound=BaseModel)


async def _principal(request: Request) -> Principal:
    principal: Principal = await request.app.state.auth.authenticate(
        request.headers.get("authorization")
    )
    request.state.principal = principal
    # Every authenticated request counts against the key's per-minute window.
    report = await request.app.state.fair_use.admit_request(principal.key_id, principal.limits)
    if report is not None:
        request.state.rate_headers = report.headers()
    return principal


async def _inference_key(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    principal.require("inference")
    return principal


async def inference_caller(request: Request) -> Principal:
    """The calling key, with the inference scope (for routes without FastAPI dependencies)."""
    return await _inference_key(await _principal(request))


async def _metrics_key(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    principal.require("metrics")
    return principal


async def _admin_key(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    principal.require("admin")
    return principal


# Dependencies are async even when they do not await: FastAPI runs sync ones in a thread pool,
# a hop that costs more than the work.
async def _inference(request: Request) -> InferenceService:
    service: InferenceService = request.app.state.inference
    return service


async def _catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


InferenceKey = Annotated[Principal, Depends(_inference_key)]
AdminKey = Annotated[Principal, Depends(_admin_key)]
MetricsKey = Annotated[Principal, Depends(_metrics_key)]
InferenceDep = Annotated[InferenceService, Depends(_inference)]
CatalogDep = Annotated[Catalog, Depends(_catalog)]


def body_of(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """Parse the body as JSON whatever the Content-Type: Ollama clients and curl -d omit it."""

    async def parse(request: Request) -> M:
        raw = await request.body()
        if not raw.strip():
            raise BadRequestError("missing request body")
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            raise BadRequestError(validation_message(exc)) from None

    return parse


def validation_message(exc: ValidationError | RequestValidationError) -> str:
    """One readable line out of pydantic's error list."""
    parts = []
    for error in list(exc.errors())[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        if error.get("type") == "json_invalid":
            return "invalid JSON in request body"
        if error.get("type") == "model_type" and not where:
            return "request body must be a JSON object"
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "invalid request: " + "; ".join(parts)


GenerateBody = Annotated[GenerateRequest, Depends(body_of(GenerateRequest))]
ChatBody = Annotated[ChatRequest, Depends(body_of(ChatRequest))]
EmbedBody = Annotated[EmbedRequest, Depends(body_of(EmbedRequest))]
EmbeddingsBody = Annotated[EmbeddingsRequest, Depends(body_of(EmbeddingsRequest))]
ShowBody = Annotated[ShowRequest, Depends(body_of(ShowRequest))]
CreateBody = Annotated[CreateRequest, Depends(body_of(CreateRequest))]
CopyBody = Annotated[CopyRequest, Depends(body_of(CopyRequest))]
DeleteBody = Annotated[DeleteRequest, Depends(body_of(DeleteRequest))]


class LeanRoute(Route):
    """A plain Starlette route for the hot inference paths: the endpoint takes the request and
    calls :func:`inference_caller` and a :func:`body_of` parser itself. FastAPI's dependency
    resolution costs more per request than a proxied answer's own work
    (benchmarks/proxy_overhead.py). The route is recorded in the scope like FastAPI's, for
    metrics by route template."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


def lean_route(path: str, endpoint: Callable[[Request], Awaitable[Response]]) -> LeanRoute:
    return LeanRoute(path, endpoint, methods=["POST"])
