"""Probe routes: ``GET /``, ``HEAD /``, ``/health`` (alive) and ``/ready`` need no key;
``/metrics`` (Prometheus) needs the ``metrics`` scope; ``/openapi.json`` and ``/whoami`` (the
calling key itself, for the console to know what to show) any valid key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from billumy.api.deps import AnyKey, KeyFirstRoute, MetricsKey, ServicesDep
from billumy.api.docs import answers
from billumy.api.openapi import document
from billumy.api.responses import JSON
from billumy.metrics import CONTENT_TYPE
from billumy.schemas.responses import Health, Readiness, Whoami

router = APIRouter(tags=["system"], route_class=KeyFirstRoute)


@router.get("/", responses=answers(media="text/plain"))
async def root() -> Response:
    return PlainTextResponse("Billumy is running")


@router.head("/", responses=answers(description="Alive (no body)."))
async def root_head() -> Response:
    return PlainTextResponse("Billumy is running")


@router.get("/health", responses=answers(Health))
async def health() -> Response:
    return JSON({"status": "ok"})


@router.get("/metrics", responses=answers(media="text/plain"))
async def metrics(services: ServicesDep, _: MetricsKey) -> Response:
    """Prometheus metrics; needs a key with the ``metrics`` (or ``admin``) scope."""
    body = services.metrics.render()
    return Response(body, media_type=CONTENT_TYPE)


@router.get(
    "/ready",
    responses={
        **answers(Readiness),
        503: {"model": Readiness, "description": "The store is unreachable."},
    },
)
async def ready(state: ServicesDep) -> Response:
    """Ready to serve? 503 when the store is unreachable; ``degraded`` when Redis is down
    (Billumy keeps serving with in-process state and no shared cache)."""
    store_ok = await state.store.ping()
    shared = state.shared_state
    if getattr(shared, "degraded", False):
        redis = "down"
    elif shared.backend == "redis":
        redis = "ok"
    else:
        redis = "not configured"
    upstreams = {
        d.name: "unchecked"
        if d.healthy is None and d.breaker.state == "closed"
        else d.breaker.state
        for d in state.router.all()
        if d.backend.remote
    }
    # A routed model whose every deployment's circuit is open cannot be served right now.
    stranded = [
        model
        for model, group in state.router.deployments.items()
        if all(d.breaker.state == "open" for d in group)
    ]
    runner = state.engine.runner()
    status = "unavailable" if not store_ok else ("degraded" if redis == "down" else "ready")
    if status == "ready" and (stranded or runner["state"] == "failed"):
        status = "degraded"
    body: dict[str, Any] = {
        "status": status,
        "store": "ok" if store_ok else "down",
        "redis": redis,
        "models_loaded": [m.name for m in await state.engine.aloaded()],
        "queue_depth": state.engine.queue_depth,
        "engine": runner,
        "upstreams": upstreams,
        "models_without_deployment": stranded,
    }
    return JSON(body, status_code=503 if status == "unavailable" else 200)


@router.get(
    "/openapi.json",
    responses={
        200: {
            "description": "This document (OpenAPI 3.1).",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def openapi(request: Request, state: ServicesDep, _: AnyKey) -> Response:
    """The OpenAPI document; any valid key may read it (it describes the API, no tenant's
    data), a caller without one gets 401 like everywhere but the probes."""
    if state.openapi_document is None:
        state.openapi_document = document(request.app)
    return JSON(state.openapi_document)


@router.get("/whoami", responses=answers(Whoami))
async def whoami(state: ServicesDep, key: AnyKey) -> Response:
    """The calling key: its id, name, tenant and scopes, and whether it is a global admin (an
    ``admin`` key of ``BILLUMY_GLOBAL_ADMIN_TENANT``). Never a secret; any valid key."""
    return JSON(
        {
            "id": key.key_id,
            "name": key.key_name,
            "tenant": key.tenant,
            "scopes": sorted(key.scopes),
            "global_admin": "admin" in key.scopes
            and key.tenant == state.settings.global_admin_tenant,
        }
    )
