"""What the routes declare for the OpenAPI document, in FastAPI's ``responses=`` shape.

Routers pass ``responses=answers(...)``; :mod:`billumy.api.openapi` adds what every route of
a kind returns (401, 403, 429 for a keyed route; 400 and 413 for one with a body) and the
error bodies (Ollama's ``{"error": "..."}``, OpenAI's object under ``/v1``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from billumy.api.streaming import NDJSON

SSE = "text/event-stream"

# Why each error status happens, as the document says it.
REASONS = {
    400: "Bad input: the body, a parameter or an option the server refuses, with why.",
    401: "No API key, or one the server does not know.",
    403: "The key lacks the scope this route needs.",
    404: "Unknown model, or a resource of this tenant that does not exist.",
    413: "The body, a dataset or a query result is over its configured limit.",
    429: "Over the key's rate, token quota or parallel limit (`Retry-After`).",
    500: "A fault of the server; the message names the request id of its traceback.",
    502: "An upstream model server answered something unusable.",
    503: "The queue is full, the engine process is restarting, or a limit cannot be checked"
    " (`Retry-After`).",
    504: "An upstream model server, or the embedded engine, missed the request's deadline.",
}

# The statuses of a route that runs a model (embedded or routed to an upstream).
MODEL_ERRORS = (404, 502, 503, 504)


def answers(
    model: type[BaseModel] | None = None,
    *,
    status: int = 200,
    description: str = "OK",
    stream: str | None = None,
    media: str | None = None,
    errors: tuple[int, ...] = (),
) -> dict[int | str, dict[str, Any]]:
    """The success answer (a JSON ``model``; a ``stream`` of NDJSON lines or SSE events of
    it; or another ``media`` type) and the route's own error statuses."""
    content: dict[str, Any] = {}
    if stream == NDJSON:
        content[stream] = {
            "schema": {
                "type": "string",
                "description": "A stream: one JSON object per line, each as above.",
            }
        }
    elif stream is not None:
        # Each server-sent event (as schemathesis and OpenAPI 3.2's itemSchema read them): its
        # `data` is the JSON of a chunk as above, or `[DONE]` at the end.
        content[stream] = {
            "schema": {
                "type": "object",
                "description": "A stream of server-sent events: each `data:` is the JSON of a"
                " chunk as above, the last one `[DONE]`.",
                "properties": {
                    "event": {"type": "string"},
                    "data": {"type": "string"},
                    "id": {"type": "string"},
                    "retry": {"type": "integer"},
                },
                "required": ["data"],
            }
        }
    if media is not None:
        content[media] = {"schema": {"type": "string"}}
    out: dict[int | str, dict[str, Any]] = {status: {"description": description}}
    if content:
        out[status]["content"] = content
    if model is not None:
        out[status]["model"] = model  # FastAPI adds its application/json schema
    for code in errors:
        out[code] = {"description": REASONS[code]}
    return out


def request_body(content: dict[str, type[BaseModel]], *, required: bool = True) -> dict[str, Any]:
    """A request body for ``openapi_extra``, for a route that reads its body itself (one
    media type per model). Models here must be flat: their schemas are inlined."""
    media: dict[str, Any] = {}
    for media_type, model in content.items():
        schema = model.model_json_schema()
        assert "$defs" not in schema, f"{model.__name__} nests models: use body_of"
        media[media_type] = {"schema": schema}
    return {"requestBody": {"required": required, "content": media}}
