"""The request edge: refusals that need no routing, no body and no round trip, answered before
FastAPI sees the request; and the lingering close that lets a refused client read its answer.

:class:`Edge` is a pure ASGI middleware in front of everything else. On a route that needs a
key it answers, from the headers and this process's memory alone:

* 401 when the request carries no ``Authorization`` header, or a key this process remembers as
  unknown (:meth:`billumy.auth.UnknownKeys.known_here`);
* 429 when the key was verified within ``key_cache_ttl`` and this process refused it for its
  per-minute limit (unchanged since) less than the refusal's ``Retry-After`` ago
  (:meth:`billumy.cache.limits.FairUse.over_rpm`): a refusal changes no meter and admissions
  only fill it, so the answer is the one the full path would give;
* 429 when such a key asks a generation route (``slotted``: the lean inference routes and a
  chat's messages) while this process alone holds all of its parallel slots
  (:meth:`~billumy.cache.limits.FairUse.parallel_full`; the shared count is at least that).
  The request still counts against the key's minute, as on the full path. Unlike the full
  path, the body is not read first: a request that would have been answered from the response
  cache, or refused as malformed, gets this 429 too.

Anything else (a key not cached here, a malformed header, the routes without a key) goes on to
the app, which checks it fully; the shared state (Redis) stays the truth for every count. An
edge refusal costs a header scan, a hash and prebuilt bytes; its only bookkeeping is one counter
(``billumy_requests_total{route="edge"}``), no access-log line.

:func:`linger` reads and discards what a refused client is still sending (bounded), after the
answer went out and before the connection closes: a server that closes with unread bytes makes
the kernel send a reset, and a client still writing its body never reads the answer (nginx's
lingering close does the same).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Sequence

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from billumy.api.errors import openai_error
from billumy.cache.limits import parallel_refusal
from billumy.errors import RateLimitedError
from billumy.metrics import Metrics
from billumy.services import Services

LINGER_S = 5.0  # most seconds spent discarding a refused body after the answer
MISSING = "missing API key: send 'Authorization: Bearer <key>'"
INVALID = "invalid API key"


async def linger(receive: Receive, budget: int, seconds: float = LINGER_S) -> None:
    """Read and drop the request body until it ends, ``budget`` bytes were read, the client
    goes away or ``seconds`` pass (whichever first)."""
    deadline = time.monotonic() + seconds
    seen = 0
    while seen <= budget:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            message = await asyncio.wait_for(receive(), left)
        except TimeoutError:
            return
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def has_body(headers: Sequence[tuple[bytes, bytes]]) -> tuple[bool, bool]:
    """(a body follows, the client waits for ``100 Continue`` before sending it)."""
    body = expect = False
    for name, value in headers:
        if name == b"content-length":
            body = body or value.strip() not in (b"", b"0")
        elif name == b"transfer-encoding":
            body = True
        elif name == b"expect":
            expect = value.strip().lower() == b"100-continue"
    return body, expect


class Edge:
    """See the module docstring. ``services`` gives the app's services (None until its
    lifespan has started them); a path takes a key when one of the
    ``keyed`` route patterns matches it and none of the ``public`` ones does (a path that
    matches neither goes on, to its 404); ``slotted`` are the generation routes, which take a
    parallel slot; ``linger_bytes`` bounds the body read and dropped
    after a refusal."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        services: Callable[[], Services | None],
        metrics: Metrics | None = None,
        keyed: Sequence[re.Pattern[str]],
        public: Sequence[re.Pattern[str]],
        slotted: Sequence[re.Pattern[str]] = (),
        linger_bytes: int = 1 << 20,
    ) -> None:
        self.app = app
        self.services = services
        self.metrics = metrics
        self.keyed = keyed
        self.public = public
        self.slotted = slotted
        self._slot_paths: dict[str, bool] = {}
        self.linger_bytes = linger_bytes
        self._paths: dict[str, bool] = {}
        self._bodies: dict[tuple[int, str, bool], bytes] = {}

    def _keyed(self, path: str) -> bool:
        known = self._paths.get(path)
        if known is None:
            known = any(p.match(path) for p in self.keyed) and not any(
                p.match(path) for p in self.public
            )
            if len(self._paths) >= 4096:  # ids in paths: bounded, drop the lot
                self._paths.clear()
            self._paths[path] = known
        return known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services = self.services()
        if services is None or not self._keyed(scope["path"]):
            await self.app(scope, receive, send)
            return
        authorization: bytes | None = None
        request_id = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-request-id":
                request_id = value
        if not authorization:
            await self._refuse(scope, receive, send, 401, MISSING, request_id)
            return
        scheme, _, token = authorization.partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            await self.app(scope, receive, send)
            return
        try:
            digest = hashlib.sha256(token).hexdigest()
        except ValueError:
            await self.app(scope, receive, send)
            return
        auth = services.auth
        if auth.unknown.known_here(digest):
            await self._refuse(scope, receive, send, 401, INVALID, request_id)
            return
        record = auth.cached(digest)
        fair_use = services.fair_use
        if record is None or not record.active:
            await self.app(scope, receive, send)
            return
        limits = auth.limits_of(record)
        refusal = fair_use.over_rpm(record.id, limits.requests_per_minute)
        if refusal is not None:
            await self._refuse_with(scope, receive, send, refusal, request_id)
            return
        if (
            scope["method"] == "POST"
            and limits.parallel is not None
            and fair_use.parallel_full(record.id, limits.parallel)
            and self._slotted(scope["path"])
        ):
            # As the full path would: the request counts against the minute, then the 429.
            try:
                report = await fair_use.admit_request(record.id, limits)
                refusal = parallel_refusal(limits.parallel)
                if report is not None:
                    refusal.headers.update(report.headers())
            except RateLimitedError as exc:
                refusal = exc
            await self._refuse_with(scope, receive, send, refusal, request_id)
            return
        await self.app(scope, receive, send)

    async def _refuse_with(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        refusal: RateLimitedError,
        request_id: bytes,
    ) -> None:
        headers = [(k.lower().encode(), v.encode()) for k, v in refusal.headers.items()]
        await self._refuse(scope, receive, send, 429, refusal.message, request_id, headers)

    def _slotted(self, path: str) -> bool:
        known = self._slot_paths.get(path)
        if known is None:
            known = any(p.match(path) for p in self.slotted)
            if len(self._slot_paths) >= 4096:
                self._slot_paths.clear()
            self._slot_paths[path] = known
        return known

    def _body(self, status: int, message: str, openai: bool) -> bytes:
        key = (status, message, openai)
        body = self._bodies.get(key)
        if body is None:
            body = orjson.dumps({"error": openai_error(status, message) if openai else message})
            if len(self._bodies) >= 1024:
                self._bodies.clear()
            self._bodies[key] = body
        return body

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        message: str,
        request_id: bytes,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body = self._body(status, message, scope["path"].startswith("/v1/"))
        if not (0 < len(request_id) <= 128 and request_id.decode("latin-1").isprintable()):
            request_id = secrets.token_hex(8).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id),
            *(extra or ()),
        ]
        follows, expect = has_body(scope["headers"])
        if follows:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if self.metrics is not None:
            self.metrics.requests.labels("edge", scope["method"], str(status)).inc()
        if not follows or expect:
            await send({"type": "http.response.body", "body": body})
            return
        # The whole answer first, then the rest of the body read and dropped (bounded).
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await linger(receive, self.linger_bytes)
        await send({"type": "http.response.body", "body": b""})
