"""The web console at ``/console`` and the API reference at ``/docs``.

Both are static files shipped inside the package (``billumy/console/``), served from memory
(gzipped once) with a strict Content Security Policy: scripts and styles only from this
origin, no inline script or style, no framing. The pages hold no data and need no key; every
number on them comes from the authenticated API, called by the browser with the key the user
typed, kept in ``sessionStorage`` and sent as ``Authorization: Bearer`` (never a cookie, so no
request can be forged from another site).

These are plain Starlette routes, not API operations: the OpenAPI document describes the API,
not the pages that read it. ``/docs/openapi.json`` is that document for the reference page:
to anyone when ``public_docs`` is on, else to any valid key (as ``/openapi.json``)."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from billumy.api.deps import any_caller, services_of
from billumy.api.openapi import document
from billumy.api.responses import JSON
from billumy.settings import Settings

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Charts are the server's SVG, fetched with the key and shown from a blob: URL.
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_MEDIA = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "json": "application/json",
}


@dataclass(frozen=True)
class Asset:
    """One file of the console, as sent: its bytes, gzipped, its type and its ETag."""

    body: bytes
    gzipped: bytes
    media_type: str
    etag: str


class Assets:
    """The console's files (a flat folder in the package), read once when first asked for."""

    def __init__(self, package: str = "billumy", folder: str = "console") -> None:
        self.package = package
        self.folder = folder
        self._files: dict[str, Asset] | None = None

    def all(self) -> dict[str, Asset]:
        if self._files is None:
            files = {}
            for entry in resources.files(self.package).joinpath(self.folder).iterdir():
                ext = entry.name.rpartition(".")[2]
                if not entry.is_file() or ext not in _MEDIA:
                    continue
                body = entry.read_bytes()
                etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
                gzipped = gzip.compress(body, compresslevel=9, mtime=0)
                files[entry.name] = Asset(body, gzipped, _MEDIA[ext], etag)
            self._files = files
        return self._files

    def get(self, name: str) -> Asset | None:
        return self.all().get(name)


def send(request: Request, asset: Asset) -> Response:
    """``asset`` with the security headers, gzipped when the client takes it, or a 304."""
    headers = {
        **SECURITY_HEADERS,
        "ETag": asset.etag,
        "Cache-Control": "no-cache",
        "Vary": "Accept-Encoding",
    }
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    body = asset.body
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        body = b""
    return Response(body, media_type=asset.media_type, headers=headers)


def not_found(name: str) -> Response:
    return JSON({"error": f"no such console file: {name!r}"}, 404, headers=SECURITY_HEADERS)


class PageRoute(Route):
    """A plain route recorded in the scope like an API route, for metrics by route template."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


def console_routes(settings: Settings, assets: Assets | None = None) -> list[BaseRoute]:
    """The routes of the console and of the API reference."""
    files = assets or Assets()

    async def console(request: Request) -> Response:
        asset = files.get("index.html")
        return send(request, asset) if asset else not_found("index.html")

    async def console_file(request: Request) -> Response:
        name: str = request.path_params["name"]
        asset = files.get(name)
        return send(request, asset) if asset else not_found(name)

    async def docs(request: Request) -> Response:
        asset = files.get("docs.html")
        return send(request, asset) if asset else not_found("docs.html")

    async def docs_document(request: Request) -> Response:
        if not settings.public_docs:
            await any_caller(request)  # 401 without a valid key, as /openapi.json
        services = services_of(request)
        if services.openapi_document is None:
            services.openapi_document = document(request.app)
        return JSON(services.openapi_document, headers={"Cache-Control": "no-store"})

    get = ["GET", "HEAD"]
    return [
        PageRoute("/console", console, methods=get, name="console"),
        PageRoute("/console/", console, methods=get, name="console_slash"),
        PageRoute("/console/{name}", console_file, methods=get, name="console_file"),
        PageRoute("/docs", docs, methods=get, name="docs"),
        PageRoute("/docs/openapi.json", docs_document, methods=["GET"], name="docs_document"),
    ]
