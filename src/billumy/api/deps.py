"""Dependencies as ``Annotated`` aliases: the calling key, its scopes, the services; and the
route classes that check the key before anything reads the body (:class:`KeyFirstRoute`,
:class:`LeanRoute`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
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
from billumy.services import Services

M = TypeVar("M", bound=BaseModel)


def services_of(request: Request) -> Services:
    """The app's services (for the lean routes, which take no FastAPI dependencies)."""
    services: Services = request.app.state.services
    return services


# Dependencies are async even when they do not await: FastAPI runs sync ones in a thread pool,
# a hop that costs more than the work.
async def _services(request: Request) -> Services:
    return services_of(request)


ServicesDep = Annotated[Services, Depends(_services)]


async def _principal(request: Request) -> Principal:
    # Checked once per request, by the route before the body (KeyFirstRoute, LeanRoute);
    # the dependencies after it find it here.
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    services = services_of(request)
    principal = await services.auth.authenticate(request.headers.get("authorization"))
    request.state.principal = principal
    # Every authenticated request counts against the key's per-minute window.
    report = await services.fair_use.admit_request(principal.key_id, principal.limits)
    if report is not None:
        request.state.rate_headers = report.headers()
    return principal


async def _inference_key(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    principal.require("inference")
    return principal


async def inference_caller(request: Request) -> Principal:
    """The calling key, with the inference scope (for routes without FastAPI dependencies)."""
    return await _inference_key(await _principal(request))


async def any_caller(request: Request) -> Principal:
    """The calling key, any scope (for routes without FastAPI dependencies)."""
    return await _principal(request)


async def _metrics_key(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    principal.require("metrics")
    return principal


async def _admin_key(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    principal.require("admin")
    return principal


async def _inference(services: ServicesDep) -> InferenceService:
    return services.inference


async def _catalog(services: ServicesDep) -> Catalog:
    return services.catalog


AnyKey = Annotated[Principal, Depends(_principal)]
InferenceKey = Annotated[Principal, Depends(_inference_key)]
AdminKey = Annotated[Principal, Depends(_admin_key)]
MetricsKey = Annotated[Principal, Depends(_metrics_key)]
InferenceDep = Annotated[InferenceService, Depends(_inference)]
CatalogDep = Annotated[Catalog, Depends(_catalog)]


class BodyOf(Generic[M]):
    """Parse the body as JSON whatever the Content-Type: Ollama clients and curl -d omit it.

    A dependency FastAPI cannot see into (it reads the raw body after the key check), so it
    carries its ``model`` for the OpenAPI document (:mod:`billumy.api.openapi`)."""

    def __init__(self, model: type[M]) -> None:
        self.model = model

    async def __call__(self, request: Request) -> M:
        return self.parse(await request.body())

    def parse(self, raw: bytes) -> M:
        """``raw`` validated as the model; 400 naming what is wrong."""
        if not raw.strip():
            raise BadRequestError("missing request body")
        try:
            parsed = self.model.model_validate_json(raw)
        except ValidationError as exc:
            raise BadRequestError(validation_message(exc)) from None
        if b"\\u0000" in raw and holds_nul(orjson.loads(raw)):
            raise BadRequestError(NUL_REFUSED)
        return parsed


NUL_REFUSED = "text must not hold the NUL character (\\u0000)"


def holds_nul(value: Any) -> bool:
    """Whether a parsed JSON value has a NUL in any string or key: no database stores one in
    text alike (PostgreSQL refuses it), and no prompt needs one."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_nul(v) for v in value)
    return False


def refuse_nul(*values: str | None) -> None:
    """400 when a form field or query parameter holds a NUL (see :func:`holds_nul`)."""
    if any(v is not None and "\x00" in v for v in values):
        raise BadRequestError(NUL_REFUSED)


def body_of(model: type[M]) -> BodyOf[M]:
    """The body parser of ``model`` (see :class:`BodyOf`)."""
    return BodyOf(model)


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


# What each key dependency asks of the key (None: any valid key).
_KEY_SCOPES: dict[Callable[..., Any], str | None] = {
    _principal: None,
    _inference_key: "inference",
    _admin_key: "admin",
    _metrics_key: "metrics",
}


def key_scopes(dependant: Dependant) -> frozenset[str] | None:
    """The scopes a route's dependencies ask of the key; None when it needs no key."""
    calls = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        calls.add(current.call)
        pending.extend(current.dependencies)
    asked = [scope for call, scope in _KEY_SCOPES.items() if call in calls]
    if not asked:
        return None
    return frozenset(scope for scope in asked if scope is not None)


class KeyFirstRoute(APIRoute):
    """An ``APIRoute`` that checks the key and the scopes its dependencies ask for from the
    headers alone, before anything reads or parses the body: FastAPI would otherwise solve a
    body dependency declared before the key's (and read the whole body) first, so a caller
    with no key could make the server read 40 MB and explain the schema to it. Routes
    without a key dependency (the probes) are left alone. Every router uses it
    (``APIRouter(route_class=KeyFirstRoute)``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        scopes = key_scopes(self.dependant)
        if scopes is None:
            return handler

        async def key_first(request: Request) -> Response:
            principal = await _principal(request)
            for scope in sorted(scopes):
                principal.require(scope)
            return await handler(request)

        return key_first


class LeanRoute(Route):
    """A plain Starlette route for the hot inference paths: the endpoint takes the request and
    parses its body with a :func:`body_of` parser itself. FastAPI's dependency resolution costs
    more per request than a proxied answer's own work (benchmarks/proxy_overhead.py). The key
    (with the inference scope) is checked before the endpoint runs, so before the body is read
    (see :func:`lean_route`); :func:`inference_caller` in the endpoint finds it. The route is
    recorded in the scope like FastAPI's, for metrics by route template.

    FastAPI's OpenAPI generator skips such routes, so each carries what the document says of
    it: its ``body`` model and its ``responses`` (FastAPI's ``responses=`` shape)."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[[Request], Awaitable[Response]],
        *,
        body: type[BaseModel],
        responses: dict[int | str, dict[str, Any]],
        tags: list[str],
        name: str,
    ) -> None:
        super().__init__(path, endpoint, methods=["POST"], name=name)
        self.body = body
        self.responses = responses
        self.tags = tags

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


def lean_route(
    path: str,
    endpoint: Callable[[Request], Awaitable[Response]],
    *,
    body: type[BaseModel],
    responses: dict[int | str, dict[str, Any]],
    tags: list[str],
) -> LeanRoute:
    async def key_first(request: Request) -> Response:
        await inference_caller(request)
        return await endpoint(request)

    return LeanRoute(
        path, key_first, body=body, responses=responses, tags=tags, name=endpoint.__name__
    )
