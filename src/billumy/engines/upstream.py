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

import functools
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, TypeVar

import anyio
import httpx
import orjson

from billumy.engines.base import Chunk, DoneReason, Embeddings, Generation
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


class Upstream(Protocol):
    """A remote model server behind one deployment."""

    name: str
    provider: str

    def generate(self, request: Generation, upstream_model: str) -> AsyncIterator[Chunk]: ...

    async def embed(
        self, inputs: list[str], upstream_model: str, *, truncate: bool, dimensions: int | None
    ) -> Embeddings: ...

    async def health(self) -> None:
        """Return when the upstream answers; raise an :class:`UpstreamError` otherwise."""

    async def models(self) -> list[dict[str, Any]]:
        """The models the upstream reports (running ones where it can tell)."""

    async def aclose(self) -> None: ...


def make_upstream(config: DeploymentConfig) -> Upstream:
    """The upstream engine for a deployment's provider."""
    if config.provider == "ollama":
        from billumy.engines.ollama import OllamaUpstream

        return OllamaUpstream(config)
    if config.provider == "openai":
        from billumy.engines.openai import OpenAIUpstream

        return OpenAIUpstream(config)
    raise ValueError(f"deployment {config.name!r}: provider {config.provider} is not an upstream")


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context (certifi's roots), built once: loading the roots
    takes tens of milliseconds, and every deployment can share one context."""
    return httpx.create_ssl_context(trust_env=False)


def make_client(config: DeploymentConfig) -> httpx.AsyncClient:
    """The one HTTP client of a deployment: its base URL, its key, its timeouts and no more."""
    if not config.url:
        raise ValueError(f"deployment {config.name!r} has no url")
    headers = {
        "Accept": "application/json, application/x-ndjson, text/event-stream",
        "User-Agent": "billumy",
    }
    if config.api_key is not None:
        headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
    return httpx.AsyncClient(
        base_url=config.url,
        headers=headers,
        timeout=httpx.Timeout(
            connect=config.connect_timeout,
            read=config.first_token_timeout,
            write=config.first_token_timeout,
            pool=config.first_token_timeout,
        ),
        limits=httpx.Limits(
            max_connections=config.max_concurrency * 2,
            max_keepalive_connections=config.max_concurrency,
        ),
        verify=ssl_context(),
        trust_env=False,
        follow_redirects=False,
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


def retry_after(headers: httpx.Headers) -> int:
    """The upstream's Retry-After in whole seconds (1 to 3600; 1 when absent or a date)."""
    try:
        seconds = int(headers.get("retry-after", "1"))
    except ValueError:
        return 1
    return min(max(seconds, 1), 3600)


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
        self, code: int, body: bytes, headers: httpx.Headers, upstream_model: str | None
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
        self, exc: httpx.HTTPError, *, streaming: bool, connect_s: float, read_s: float
    ) -> UpstreamError:
        """The error for an httpx failure; its text (which holds the URL) is never shown."""
        if isinstance(exc, httpx.ConnectTimeout):
            return self.timed_out(connect_s)
        if isinstance(exc, httpx.TimeoutException):
            return self.timed_out(read_s)
        if isinstance(exc, httpx.ConnectError):
            return self.unreachable()
        if isinstance(exc, httpx.DecodingError | httpx.TooManyRedirects):
            return self.invalid()
        if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError):
            if streaming:
                return self.closed()
            return UpstreamError(
                f"deployment '{self.name}' closed the connection before answering", retryable=True
            )
        if isinstance(exc, httpx.TransportError):
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
            with anyio.fail_after(max(limit, 0.0)):
                return await awaitable
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
        client: httpx.AsyncClient,
        errors: ErrorMapper,
        request: httpx.Request,
        *,
        budget: Budget,
        upstream_model: str | None,
    ) -> None:
        self._client = client
        self._errors = errors
        self._request = request
        self._budget = budget
        self._upstream_model = upstream_model
        self._response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._buffer = bytearray()
        self._eof = False
        self.deadline = Deadline(budget, errors)

    async def __aenter__(self) -> ResponseStream:
        response = await self._wait(self._client.send(self._request, stream=True), False)
        self._response = response
        self._chunks = response.aiter_bytes()
        if not 200 <= response.status_code < 300:
            try:
                body = await self._read(MAX_ERROR_BYTES, truncate=True)
            except BillumyError:
                body = b""
            finally:
                await self._close()
            raise self._errors.status(
                response.status_code, body, response.headers, self._upstream_model
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and not self._eof:
            await self._drain()
        await self._close()

    async def _drain(self) -> None:
        """Read what is left of an answer already complete (the end of a chunked body), so
        the connection goes back to the pool instead of being dropped: a new connection per
        request would cost both sides far more than the request itself."""
        if self._chunks is None:
            return
        left = DRAIN_BYTES
        with anyio.move_on_after(DRAIN_SECONDS):
            try:
                async for data in self._chunks:
                    left -= len(data)
                    if left < 0:
                        return
            except httpx.HTTPError:
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

    async def read(self) -> bytes:
        """The whole (remaining) body."""
        return bytes(self._buffer) + await self._read(MAX_BODY_BYTES)

    async def json(self) -> Any:
        return self._errors.parse_json(await self.read())

    async def _next_bytes(self) -> bytes | None:
        """The next piece of the body. Each read is bounded by the client's read timeout (the
        step limit); the request's whole deadline is checked between pieces, which keeps a
        timer per read off this path (it runs once per streamed token)."""
        if self._chunks is None:
            raise RuntimeError("the response is not open")
        deadline = self.deadline
        if time.monotonic() - deadline.start > self._budget.total:
            raise self._errors.timed_out(self._budget.total)
        try:
            data = await anext(self._chunks)
        except StopAsyncIteration:
            return None
        except httpx.HTTPError as exc:
            raise self._errors.transport(
                exc, streaming=True, connect_s=self._budget.connect, read_s=self._budget.step
            ) from exc
        return data

    async def _read(self, limit: int, *, truncate: bool = False) -> bytes:
        body = bytearray()
        while (data := await self._next_bytes()) is not None:
            body += data
            if len(body) > limit:
                if truncate:
                    return bytes(body[:limit])
                raise self._errors.invalid()
        return bytes(body)

    async def _wait(self, awaitable: Awaitable[T], streaming: bool) -> T:
        try:
            return await self.deadline.run(awaitable)
        except httpx.HTTPError as exc:
            raise self._errors.transport(
                exc, streaming=streaming, connect_s=self._budget.connect, read_s=self._budget.step
            ) from exc

    async def _close(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            # Shielded: a cancelled consumer must still close the connection, or the upstream
            # would go on generating for nobody.
            with anyio.move_on_after(5, shield=True):
                await response.aclose()


class HttpUpstream:
    """The HTTP plumbing of an upstream engine: one client, fixed paths, mapped failures."""

    provider: str = ""

    def __init__(self, config: DeploymentConfig) -> None:
        self.config = config
        self.name = config.name
        self.errors = ErrorMapper(config)
        self._client = make_client(config)
        self._budget = Budget(
            connect=config.connect_timeout, step=config.first_token_timeout, total=config.timeout
        )
        self._whole_budget = Budget(
            connect=config.connect_timeout, step=config.timeout, total=config.timeout
        )
        short = min(config.connect_timeout, SHORT_TIMEOUT)
        self._short_budget = Budget(connect=short, step=short, total=short)

    async def aclose(self) -> None:
        await self._client.aclose()

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
        request = self._client.build_request(
            method,
            path,
            content=None if payload is None else orjson.dumps(payload),
            headers={"Content-Type": "application/json"} if payload is not None else None,
            timeout=(
                httpx.Timeout(budget.step, connect=budget.connect)
                if short or whole
                else httpx.USE_CLIENT_DEFAULT
            ),
        )
        return ResponseStream(
            self._client, self.errors, request, budget=budget, upstream_model=upstream_model
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
