"""Calls to Billumy: a question about the shop's own tables (``POST /api/insights`` with httpx)
and a chat (``/api/chat`` through the official ``ollama`` client, which Billumy speaks).

Both raise :class:`BillumyError` carrying the status this backend should answer with, so a
refusal, a limit or an outage on Billumy's side becomes a clean JSON error, never a 500.
"""

import logging
from typing import Any

import httpx
import ollama
from django.conf import settings

logger = logging.getLogger(__name__)


class BillumyError(Exception):
    """Billumy refused, failed or did not answer; ``status`` is what to answer the caller."""

    def __init__(self, status: int, message: str, *, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def _status(billumy_status: int) -> int:
    """Billumy's 4xx (bad question, wrong key, unknown table, a limit) and its 503/504 (a
    source or model that is down, a query past its time limit) keep their status; anything
    else is a bad gateway."""
    if 400 <= billumy_status < 500 or billumy_status in (503, 504):
        return billumy_status
    return 502


def _timeout() -> httpx.Timeout:
    return httpx.Timeout(settings.BILLUMY_TIMEOUT, connect=settings.BILLUMY_CONNECT_TIMEOUT)


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.BILLUMY_API_KEY}"}


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    return error if isinstance(error, str) else f"HTTP {response.status_code}"


def ask(question: str, *, table: str | None = None) -> dict[str, Any]:
    """Billumy's answer to ``question`` about a table of the configured source: the answer's
    text and language, and the facts behind it (each with its numbers and the SQL that ran)."""
    payload = {
        "source": settings.BILLUMY_SOURCE,
        "table": table or settings.BILLUMY_TABLE,
        "question": question,
    }
    try:
        response = httpx.post(
            f"{settings.BILLUMY_URL}/api/insights",
            json=payload,
            headers=_headers(),
            timeout=_timeout(),
        )
    except httpx.TimeoutException as exc:
        logger.warning("billumy insights timed out")
        raise BillumyError(504, "billumy did not answer in time") from exc
    except httpx.HTTPError as exc:
        logger.warning("billumy insights unreachable: %s", type(exc).__name__)
        raise BillumyError(502, "billumy is unreachable") from exc
    if response.status_code != 200:
        logger.warning("billumy insights answered %s", response.status_code)
        raise BillumyError(
            _status(response.status_code),
            f"billumy: {_error_text(response)}",
            retry_after=response.headers.get("Retry-After"),
        )
    body = response.json()
    return {
        "answer": body["answer"]["text"],
        "language": body["answer"]["language"],
        "facts": [
            {k: fact[k] for k in ("id", "kind", "statement", "values", "rows", "sql")}
            for fact in body["facts"]
        ],
    }


def chat(messages: list[dict[str, str]]) -> str:
    """The model's reply to a conversation (``[{"role": "user", "content": "..."}, ...]``)."""
    try:
        with ollama.Client(
            host=settings.BILLUMY_URL, headers=_headers(), timeout=_timeout()
        ) as client:
            response = client.chat(
                model=settings.BILLUMY_MODEL,
                messages=messages,
                options={"num_predict": settings.BILLUMY_CHAT_MAX_TOKENS},
            )
    except ollama.ResponseError as exc:
        logger.warning("billumy chat answered %s", exc.status_code)
        raise BillumyError(_status(exc.status_code), f"billumy: {exc.error}") from exc
    except httpx.TimeoutException as exc:
        logger.warning("billumy chat timed out")
        raise BillumyError(504, "billumy did not answer in time") from exc
    except (ConnectionError, httpx.HTTPError) as exc:
        logger.warning("billumy chat unreachable: %s", type(exc).__name__)
        raise BillumyError(502, "billumy is unreachable") from exc
    return response.message.content or ""
