"""One exception tree for Billumy.

Every error a client can see derives from :class:`BillumyError`; ``status_code`` is the HTTP
status and ``str(exc)`` is the message that goes into ``{"error": "..."}``. The API layer maps
these in one place (``billumy.api.errors``); services and engines never build HTTP responses.
"""

from __future__ import annotations


class BillumyError(Exception):
    """Base class: a failure with a message that is safe to show to the client."""

    status_code: int = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequestError(BillumyError):
    """The request is malformed or asks for something unsupported (400)."""

    status_code = 400


class UnauthorizedError(BillumyError):
    """Missing or invalid API key (401)."""

    status_code = 401


class ForbiddenError(BillumyError):
    """The key is valid but lacks the scope for this route (403)."""

    status_code = 403


class NotFoundError(BillumyError):
    """Unknown model, key or resource (404)."""

    status_code = 404


class PayloadTooLargeError(BillumyError):
    """Request body over the configured limit (413)."""

    status_code = 413


class RateLimitedError(BillumyError):
    """A key went over one of its limits (429), with ``Retry-After`` and rate headers."""

    status_code = 429

    def __init__(
        self, message: str, *, retry_after: int, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, headers={**(headers or {}), "Retry-After": str(retry_after)})


class OverloadedError(BillumyError):
    """The engine's queue is full; the client should retry later (503)."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class ClientClosedError(BillumyError):
    """The client went away before the answer was ready (nginx's 499; nobody reads it)."""

    status_code = 499


class EngineError(BillumyError):
    """The model runtime failed while serving a request (500)."""

    status_code = 500


class EngineUnavailableError(BillumyError):
    """The engine process stopped (a crash, being restarted) or failed for good (503).

    Before the first byte it is a 503 with ``Retry-After``; during a stream it is the stream's
    in-band error. The message names what stopped it: ``the model runner stopped: SIGSEGV``.
    """

    status_code = 503

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class UpstreamError(BillumyError):
    """A deployment (upstream model server) failed or answered something unusable (502).

    ``retryable`` says whether another deployment may succeed where this one failed (before
    the first byte reached the client). Messages name the deployment, never its URL or key.
    """

    status_code = 502

    def __init__(
        self, message: str, *, retryable: bool = True, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, headers=headers)
        self.retryable = retryable


class UpstreamTimeoutError(UpstreamError):
    """A deployment did not answer within its configured deadline (504)."""

    status_code = 504


class GenerationTimeoutError(BillumyError):
    """A generation in the embedded engine passed the request's deadline, waiting for a slot
    or generating (504). Its sequence has left the batch."""

    status_code = 504


class UpstreamUnavailableError(UpstreamError):
    """No deployment can take the request now: unreachable, circuit open or full (503)."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int = 1, retryable: bool = True) -> None:
        super().__init__(message, retryable=retryable, headers={"Retry-After": str(retry_after)})


class ShuttingDownError(BillumyError):
    """The server is shutting down and its grace period for running streams is over (503)."""

    status_code = 503

    def __init__(self) -> None:
        super().__init__(
            "the server is shutting down; this answer was cut short, retry it",
            headers={"Retry-After": "1"},
        )


class StoreUnavailableError(BillumyError):
    """The database cannot be reached (restarting, down, connection lost) (503).

    A write cut off by the outage is rolled back by the database, so retrying is safe
    (except in the rare case where the connection broke while the commit itself was answered).
    """

    status_code = 503

    def __init__(
        self,
        message: str = "the database is unavailable right now; retry shortly",
        *,
        retry_after: int = 2,
    ) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class SourceUnavailableError(BillumyError):
    """A configured source database cannot be reached (503); its name only, never its URL."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class QueryTimeoutError(BillumyError):
    """An analysis query ran past its time limit and was stopped (503)."""

    status_code = 503
