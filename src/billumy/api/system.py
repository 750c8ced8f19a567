"""Unauthenticated liveness routes: ``GET /``, ``HEAD /`` and ``/health``."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import PlainTextResponse, Response

from billumy.api.responses import JSON

router = APIRouter(tags=["system"])


@router.api_route("/", methods=["GET", "HEAD"])
async def root() -> Response:
    return PlainTextResponse("Billumy is running")


@router.get("/health")
async def health() -> Response:
    return JSON({"status": "ok"})
