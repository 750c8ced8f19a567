"""Upstream engines: remote model servers that yield the same :class:`Chunk` objects.

A deployment may live on another machine (Ollama, another Billumy, vLLM, llama-server). The
pieces every such engine shares live here, so each wire format only parses its own lines:

* Addresses come from the deployment's configuration alone. Paths are constants and no request
  field ever becomes part of a URL; redirects are not followed (a redirect is an invalid
  answer, never a hop to another host); proxy environment variables are ignored.
* Failures become Billumy errors that name the deployment and never its URL, host or key:
  these messages reach clients and logs. Text the upstream wrote (an error message) is
  redacted and truncated before it is shown.
* Time is bounded three ways: connecting (``connect_timeout``), waiting for the first bytes
  and then for each further piece of the stream (``first_token_timeout``), and the whole
  request (``timeout``). Each wait is wrapped on its own; no timeout scope is held across a
  ``yield``, so a consumer that stops early simply closes the response, and the upstream sees
  the disconnect and stops generating.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, TypeVar

import aiohttp
import httpx
import orjson
from yarl import URL

from billumy.engines.base import Backend, Chunk, DoneReason, Embedding, Embeddings, Generation
from billumy.errors import (
    BadRequestError,
    BillumyError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from billumy.settings import DeploymentConfig

T = TypeVar("T")

MESSAGE_CHARS = 300  # upstream-written text shown in an error message, at most
MAX_LINE_BYTES = 16 * 1024 * 1024  # one NDJSON line or SSE field
MAX_BODY_BYTES = 256 * 1024 * 1024  # one JSON answer (embeddings of a large batch)
MAX_ERROR_BYTES = 64 * 1024  # the part of an error body that is read
DRAIN_BYTES = 64 * 1024  # what may be left after a complete answer, read to reuse the connection
DRAIN_SECONDS = 1.0
SHORT_TIMEOUT = 5.0  # seconds a health check or model listing may take, at most


class Upstream(Backend, Protocol):
    """A remote model server behind one deployment. It runs the deployment's
    ``upstream_model`` unless a call names another (tests steer fake servers that way)."""

    provider: str

    def generate(
        self, request: Generation, upstream_model: str | None = None
    ) -> AsyncIterator[Chunk]: ...

    async def embed(self, request: Embedding, upstream_model: str | None = None) -> Embeddings: ...

    async def models(self) -> list[dict[str, Any]]:
        """The models the upstream reports (running ones where it can tell)."""


@functools.cache
def ssl_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A verifying context, built once per CA file: certifi's public roots (as httpx builds
    them), or the deployment's own CAs. Loading roots takes tens of milliseconds, and every
    deployment with the same CAs can share one context."""
    if ca_file is not None:
        return ssl.create_default_context(cafile=ca_file)
    return httpx.create_ssl_context(trust_env=False)


def make_session(config: DeploymentConfig) -> aiohttp.ClientSession:
    """The one HTTP client of a deployment: its key, its pool and no more.

    aiohttp rather than httpx: its C parser and lean streaming cost a third of the CPU per
    proxied request, which is most of what a gateway adds (see benchmarks/proxy_overhead.py).
    Proxy environment variables are ignored (``trust_env=False``); every request passes
    ``allow_redirects=False``. Must be called inside a running event loop.
    """
    headers = {
        "Accept": "application/json, application/x-ndjson, text/event-stream",
        "User-Agent": "billumy",
    }
    if config.api_key is not None:
        headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
    ca_file = str(config.ca_file) if config.ca_file is not None else None
    connector = aiohttp.TCPConnector(
        limit=config.max_concurrency * 2, limit_per_host=0, ssl=ssl_context(ca_file)
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers=headers,
        trust_env=False,  # every request passes its own timeout (Budget.timeout)
        raise_for_status=False,
    )


# --- errors -------------------------------------------------------------------------------------


def error_text(body: Any) -> str:
    """The message inside an error body: OpenAI's ``{"error": {"message"}}``, Ollama's
    ``{"error": "..."}`` or FastAPI's ``{"detail": "..."}``; empty when there is none."""
    if isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, str):
        return error
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    for key in ("detail", "message"):
        if isinstance(body.get(key), str):
            return str(body[key])
    return ""


def retry_after(headers: Mapping[str, str]) -> int:
    """The upstream's Retry-After in whole seconds (1 to 3600; 1 when absent or a date)."""
    try:
        seconds = int(headers.get("retry-after", "1"))
    except ValueError:
        return 1
    return min(max(seconds, 1), 3600)


def _stale(exc: aiohttp.ClientError) -> bool:
    """Whether a request failed on a connection that closed before any answer (not one that
    could not be opened): a pooled connection the upstream had dropped."""
    return isinstance(
        exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError
    ) and not isinstance(exc, aiohttp.ClientConnectorError)


class ErrorMapper:
    """Builds the errors of one deployment. Messages name it, never its URL, host or key."""

    def __init__(self, config: DeploymentConfig) -> None:
        self.name = config.name
        self._secrets: list[str] = []
        if config.api_key is not None and config.api_key.get_secret_value():
            self._secrets.append(config.api_key.get_secret_value())
        self._host: re.Pattern[str] | None = None
        if config.url:
            url = httpx.URL(config.url)
            self._secrets += [config.url, f"{url.host}:{url.port}" if url.port else url.host]
            if url.userinfo:
                self._secrets.append(url.userinfo.decode("utf-8", "replace"))
            # The host with whatever URL surrounds it: scheme, port, path.
            self._host = re.compile(
                rf"(?:\b[a-z][a-z0-9+.-]*://)?(?<![\w.-]){re.escape(url.host)}(?![\w-])"
                r"(?::\d+)?(?:/[^\s\"'<>]*)?",
                re.IGNORECASE,
            )

    def clean(self, text: str) -> str:
        """Upstream-written text, safe to show: no secrets, one line, at most 300 chars."""
        if self._host is not None:
            text = self._host.sub("***", text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = " ".join(text.split()) or "no reason given"
        return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"

    def unreachable(self) -> UpstreamUnavailableError:
        return UpstreamUnavailableError(f"deployment '{self.name}' is unreachable", retryable=True)

    def timed_out(self, seconds: float) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(
            f"deployment '{self.name}' did not answer within {seconds:g} s", retryable=True
        )

    def invalid(self) -> UpstreamError:
        return UpstreamError(f"deployment '{self.name}' sent an invalid response", retryable=True)

    def closed(self) -> UpstreamError:
        return UpstreamError(
            f"deployment '{self.name}' closed the stream before the answer was complete",
            retryable=True,
        )

    def in_band(self, error: Any) -> UpstreamError:
        """An error the upstream reported inside a stream that had started fine."""
        message = self.clean(error_text({"error": error}))
        return UpstreamError(f"deployment '{self.name}' failed: {message}", retryable=True)

    def status(
        self, code: int, body: bytes, headers: Mapping[str, str], upstream_model: str | None
    ) -> BillumyError:
        """The error for an answer whose status is not 2xx."""
        name = self.name
        if code in (400, 422):
            message = self.clean(self._body_text(body))
            return BadRequestError(f"deployment '{name}' rejected the request: {message}")
        if code in (401, 403):
            return UpstreamError(f"deployment '{name}' rejected Billumy's credentials")
        if code == 404 and upstream_model is not None:
            return UpstreamError(f"deployment '{name}' does not serve model '{upstream_model}'")
        if code < 200 or 300 <= code < 400:
            return self.invalid()
        if code in (429, 503):
            return UpstreamUnavailableError(
                f"deployment '{name}' failed with status {code}", retry_after=retry_after(headers)
            )
        return UpstreamError(f"deployment '{name}' failed with status {code}", retryable=True)

    def transport(
        self, exc: Exception, *, streaming: bool, connect_s: float, read_s: float
    ) -> UpstreamError:
        """The error for a transport failure; its text (which may hold the URL) is never
        shown."""
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return self.timed_out(connect_s)
        if isinstance(exc, TimeoutError):  # aiohttp's read timeouts are TimeoutErrors too
            return self.timed_out(read_s)
        if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
            return UpstreamError(
                f"deployment '{self.name}' failed TLS verification: its certificate is not "
                "trusted (see the deployment's ca_file) or does not match its address",
                retryable=True,
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            return self.unreachable()
        if isinstance(exc, aiohttp.ClientResponseError | aiohttp.InvalidURL):
            # Not HTTP (the parser failed), or a redirect asked for: never followed.
            return self.invalid()
        if isinstance(
            exc,
            aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError | aiohttp.ClientOSError,
        ):
            if streaming:
                return self.closed()
            return UpstreamError(
                f"deployment '{self.name}' closed the connection before answering", retryable=True
            )
        if isinstance(exc, aiohttp.ClientConnectionError):
            return self.unreachable()
        return UpstreamError(f"deployment '{self.name}' failed", retryable=True)

    def parse_json(self, data: bytes | str) -> Any:
        """JSON from the upstream, or the invalid-response error."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self.invalid() from None

    @staticmethod
    def _body_text(body: bytes) -> str:
        try:
            return error_text(orjson.loads(body))
        except orjson.JSONDecodeError:
            return body.decode("utf-8", "replace")


# --- time ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """Seconds allowed: to connect, between pieces of the answer, and for the whole request."""

    connect: float
    step: float
    total: float

    @functools.cached_property
    def timeout(self) -> aiohttp.ClientTimeout:
        """aiohttp's side of it: connecting, and each read. The whole request is bounded by
        :class:`Deadline` and :meth:`ResponseStream._next_bytes`."""
        return aiohttp.ClientTimeout(total=None, sock_connect=self.connect, sock_read=self.step)


class Deadline:
    """Bounds the wait for the answer's first bytes by the step limit and the request's whole
    deadline, whichever comes first. Later pieces are bounded by the client's read timeout and
    a check of the whole deadline between them (see :meth:`ResponseStream._next_bytes`)."""

    def __init__(self, budget: Budget, errors: ErrorMapper) -> None:
        self.budget = budget
        self.errors = errors
        self.start = time.monotonic()

    async def run(self, awaitable: Awaitable[T]) -> T:
        now = time.monotonic()
        to_step = self.start + self.budget.step - now
        to_end = self.start + self.budget.total - now
        if to_end <= to_step:
            limit, shown = to_end, self.budget.total
        else:
            limit, shown = to_step, self.budget.step
        try:
            async with asyncio.timeout(max(limit, 0.0)):
                return await awaitable
        except aiohttp.ClientError:
            raise  # mapped by the caller, which knows whether a stream had begun
        except TimeoutError:
            raise self.errors.timed_out(shown) from None


# --- HTTP ---------------------------------------------------------------------------------------


class ResponseStream:
    """One request and its answer, read line by line or whole, within the deployment's limits.

    Use as ``async with``: leaving the block closes the response, also when the consumer stops
    early, which tells the upstream to stop generating.
    """

    def __init__(
        self,
        upstream: HttpUpstream,
        method: str,
        url: URL,
        body: bytes | None,
        *,
        budget: Budget,
        upstream_model: str | None,
    ) -> None:
        self._upstream = upstream
        self._errors = upstream.errors
        self._method = method
        self._url = url
        self._body = body
        self._budget = budget
        self._upstream_model = upstream_model
        self._response: aiohttp.ClientResponse | None = None
        self._buffer = bytearray()
        self._eof = False
        self.deadline = Deadline(budget, self._errors)

    async def __aenter__(self) -> ResponseStream:
        try:
            response = await self.deadline.run(self._send())
        except aiohttp.ClientError as exc:
            if not _stale(exc):
                raise self._failed(exc, streaming=False) from exc
            # Most likely a kept-alive connection the upstream closed while it sat in the pool
            # (its idle timeout): nothing was answered, so send once more, on a new one.
            response = await self._wait(self._send(), False)
        self._response = response
        if not 200 <= response.status < 300:
            try:
                body = await self._read(MAX_ERROR_BYTES, truncate=True)
            except BillumyError:
                body = b""
            finally:
                self._close()
            raise self._errors.status(response.status, body, response.headers, self._upstream_model)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and not self._eof:
            await self._drain()
        self._close()

    async def _drain(self) -> None:
        """Read what is left of an answer already complete (the end of a chunked body), so
        the connection goes back to the pool instead of being dropped: a new connection per
        request would cost both sides far more than the request itself."""
        response = self._response
        if response is None:
            return
        left = DRAIN_BYTES
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                while data := await response.content.readany():
                    left -= len(data)
                    if left < 0:
                        return
        except (aiohttp.ClientError, TimeoutError):
            return
        self._eof = True

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> bytes:
        """The next line, without its line ending."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line.removesuffix(b"\r")
            if self._eof:
                if not self._buffer:
                    raise StopAsyncIteration
                line = bytes(self._buffer)
                self._buffer.clear()
                return line.removesuffix(b"\r")
            if len(self._buffer) > MAX_LINE_BYTES:
                raise self._errors.invalid()
            data = await self._next_bytes()
            if data is None:
                self._eof = True
            else:
                self._buffer += data

    def ready(self) -> list[bytes]:
        """The complete lines already received, without waiting for more."""
        if self._buffer.find(b"\n") < 0:
            return []
        *complete, rest = bytes(self._buffer).split(b"\n")
        self._buffer[:] = rest
        return [line.removesuffix(b"\r") for line in complete]

    async def read(self) -> bytes:
        """The whole (remaining) body."""
        return bytes(self._buffer) + await self._read(MAX_BODY_BYTES)

    async def json(self) -> Any:
        return self._errors.parse_json(await self.read())

    async def _next_bytes(self) -> bytes | None:
        """The next piece of the body. Each read is bounded by the session's read timeout
        (the step limit); the request's whole deadline is checked between pieces, which keeps
        a timer per read off this path (it runs once per streamed token)."""
        response = self._response
        if response is None:
            raise RuntimeError("the response is not open")
        if time.monotonic() - self.deadline.start > self._budget.total:
            raise self._errors.timed_out(self._budget.total)
        try:
            data = await response.content.readany()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._failed(exc, streaming=True) from exc
        return data or None

    async def _read(self, limit: int, *, truncate: bool = False) -> bytes:
        body = bytearray()
        while (data := await self._next_bytes()) is not None:
            body += data
            if len(body) > limit:
                if truncate:
                    return bytes(body[:limit])
                raise self._errors.invalid()
        self._eof = True
        return bytes(body)

    def _send(self) -> Awaitable[aiohttp.ClientResponse]:
        headers = _JSON_BODY if self._body is not None else None
        return self._upstream.session().request(
            self._method,
            self._url,
            data=self._body,
            headers=headers,
            allow_redirects=False,
            timeout=self._budget.timeout,
        )

    async def _wait(self, awaitable: Awaitable[T], streaming: bool) -> T:
        try:
            return await self.deadline.run(awaitable)
        except aiohttp.ClientError as exc:
            raise self._failed(exc, streaming=streaming) from exc

    def _failed(self, exc: Exception, *, streaming: bool) -> UpstreamError:
        return self._errors.transport(
            exc, streaming=streaming, connect_s=self._budget.connect, read_s=self._budget.step
        )

    def _close(self) -> None:
        """Give a fully read connection back to the pool; close any other (the upstream sees
        the disconnect and stops generating for nobody)."""
        response, self._response = self._response, None
        if response is None:
            return
        if self._eof:
            response.release()
        else:
            response.close()


_JSON_BODY = {"Content-Type": "application/json"}


class HttpUpstream:
    """The HTTP plumbing of an upstream engine: one client, fixed paths, mapped failures."""

    provider: str = ""
    remote = True

    def __init__(self, config: DeploymentConfig) -> None:
        if not config.url:
            raise ValueError(f"deployment {config.name!r} has no url")
        self.config = config
        self.name = config.name
        self.model = config.upstream_model or config.model  # what requests ask it to run
        self.errors = ErrorMapper(config)
        self._base = config.url.rstrip("/")
        self._urls: dict[str, URL] = {}
        self._session: aiohttp.ClientSession | None = None
        self._budget = Budget(
            connect=config.connect_timeout, step=config.first_token_timeout, total=config.timeout
        )
        self._whole_budget = Budget(
            connect=config.connect_timeout, step=config.timeout, total=config.timeout
        )
        short = min(config.connect_timeout, SHORT_TIMEOUT)
        self._short_budget = Budget(connect=short, step=short, total=short)

    def session(self) -> aiohttp.ClientSession:
        """The deployment's client, made on first use (it belongs to the running loop)."""
        if self._session is None or self._session.closed:
            self._session = make_session(self.config)
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def load(self, request: Generation) -> int:
        """Nothing to do: an upstream loads its models as requests need them."""
        return 0

    async def unload(self, request: Generation) -> None:
        """Nothing: the upstream's models are its own to unload (another tenant may use
        them)."""

    def _url(self, path: str) -> URL:
        """The deployment's base URL with a fixed ``path`` appended (parsed once per path)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self._base + path)
        return url

    def open(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        upstream_model: str | None = None,
        short: bool = False,
        whole: bool = False,
    ) -> ResponseStream:
        """A request to a fixed ``path`` under the deployment's base URL; use ``async with``.

        ``short`` requests (health checks, model listings) get ``min(connect_timeout, 5)``
        seconds in all: nobody should wait on a dead deployment to learn that it is dead.
        ``whole`` requests (a generation answered in one body) may take the request's whole
        deadline before their first byte, as nothing comes until the answer is complete.
        """
        if short:
            budget = self._short_budget
        elif whole:
            budget = self._whole_budget
        else:
            budget = self._budget
        return ResponseStream(
            self,
            method,
            self._url(path),
            None if payload is None else orjson.dumps(payload),
            budget=budget,
            upstream_model=upstream_model,
        )

    async def request_json(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        upstream_model: str | None = None,
        short: bool = False,
        whole: bool = False,
    ) -> Any:
        """The JSON answer of a non-streaming request."""
        stream = self.open(
            method, path, payload, upstream_model=upstream_model, short=short, whole=whole
        )
        async with stream:
            return await stream.json()

    async def json_object(self, path: str, *, short: bool = False) -> dict[str, Any]:
        """GET ``path``; its answer must be a JSON object."""
        body = await self.request_json("GET", path, short=short)
        if not isinstance(body, dict):
            raise self.errors.invalid()
        return body

    def object_list(self, value: Any) -> list[dict[str, Any]]:
        """A list of JSON objects, or the invalid-response error."""
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.errors.invalid()
        return value

    def vectors(self, value: Any, count: int) -> list[list[float]]:
        """``count`` embedding vectors of numbers, or the invalid-response error."""
        if not isinstance(value, list) or len(value) != count:
            raise self.errors.invalid()
        for vector in value:
            if not isinstance(vector, list) or not all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in vector
            ):
                raise self.errors.invalid()
        return value


# --- shared request and answer helpers ----------------------------------------------------------


def chat_messages(request: Generation) -> list[dict[str, Any]]:
    """The messages to send: the system prompt first (unless one is there), as the embedded
    engine builds them; a prompt becomes the user's turn when there are no messages."""
    if request.messages is not None:
        messages = list(request.messages)
        if request.system and not any(m.get("role") == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": request.system})
        return messages
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages.append({"role": "user", "content": request.prompt})
    return messages


def done_reason(value: Any) -> DoneReason:
    """An upstream's reason mapped to Ollama's: stop, length, load or unload."""
    if value == "length":
        return "length"
    if value == "load":
        return "load"
    if value == "unload":
        return "unload"
    return "stop"


def count(value: Any) -> int:
    """A non-negative integer statistic; anything else counts as 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return 0
    return int(value)


def token_list(value: Any) -> list[int] | None:
    """A context (token ids), or None when absent or not a list of integers."""
    if isinstance(value, list) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in value
    ):
        return value
    return None
