"""``POST /ask/``: a question about the shop's data, answered by Billumy from the database.
``POST /chat/``: a conversation with Billumy's model.

They are CSRF-exempt because other services (and the curl examples) call them with JSON, not a
form; in your app, put them behind your own authentication.
"""

import json
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import billumy_client
from .billumy_client import BillumyError


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _billumy_error(exc: BillumyError) -> JsonResponse:
    response = _error(exc.status, exc.message)
    if exc.retry_after:
        response["Retry-After"] = exc.retry_after
    return response


def _json_object(request: HttpRequest) -> dict[str, Any] | None:
    try:
        body = json.loads(request.body)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@csrf_exempt
@require_POST
def ask(request: HttpRequest) -> JsonResponse:
    body = _json_object(request)
    if body is None:
        return _error(400, 'send a JSON object: {"question": "..."}')
    question, table = body.get("question"), body.get("table")
    if not isinstance(question, str) or not question.strip():
        return _error(400, "'question' must be a non-empty string")
    if table is not None and not isinstance(table, str):
        return _error(400, "'table' must be a string")
    try:
        result = billumy_client.ask(question, table=table)
    except BillumyError as exc:
        return _billumy_error(exc)
    return JsonResponse(result)


@csrf_exempt
@require_POST
def chat(request: HttpRequest) -> JsonResponse:
    body = _json_object(request)
    messages = body.get("messages") if body is not None else None
    if (
        not isinstance(messages, list)
        or not messages
        or not all(
            isinstance(m, dict)
            and m.get("role") in ("user", "assistant")
            and isinstance(m.get("content"), str)
            for m in messages
        )
    ):
        return _error(
            400, 'send {"messages": [{"role": "user" or "assistant", "content": "..."}, ...]}'
        )
    try:
        reply = billumy_client.chat(
            [{"role": m["role"], "content": m["content"]} for m in messages]
        )
    except BillumyError as exc:
        return _billumy_error(exc)
    return JsonResponse({"message": {"role": "assistant", "content": reply}})
