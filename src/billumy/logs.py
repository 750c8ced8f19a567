"""Structured JSON logging. Keys and prompts never go in (see ``log_prompts``)."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

import orjson

# The id of the request being served (set by the access log middleware, which also sends it
# as X-Request-ID): errors written into an already started stream carry it, so a client can
# quote it and an operator find the request's log lines.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            # Tells apart the worker processes of ``serve --workers N`` (their lines mix).
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


def configure(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our access log (billumy.access) replaces uvicorn's, which would print query strings.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every upstream request with its URL at INFO: upstream addresses (which may
    # carry credentials) stay out of the logs, whatever the level.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_audit() -> None:
    """Send the audit lines (``billumy.audit``: key changes) to stderr as JSON, without
    touching other loggers: for the CLI, whose other output is for people."""
    audit = logging.getLogger("billumy.audit")
    if not any(isinstance(h.formatter, JSONFormatter) for h in audit.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JSONFormatter())
        audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    audit.propagate = False
