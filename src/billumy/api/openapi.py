"""The OpenAPI 3.1 document, served at ``/openapi.json`` to any valid key.

FastAPI's generator sees only part of the API: the hot routes are plain Starlette routes
(:class:`~billumy.api.deps.LeanRoute`) and every body is read by a :class:`~billumy.api.deps.
BodyOf` dependency after the key check, which FastAPI takes for no body at all. Rather than
give up the key-first property, the document FastAPI makes is completed here: the lean routes'
operations, each request body from its pydantic model, the bearer scheme, and the statuses
every route of a kind returns, with the error body of its API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode
from starlette.routing import BaseRoute

from billumy.api.deps import BodyOf, LeanRoute, key_scopes
from billumy.api.docs import REASONS
from billumy.schemas.responses import Error, OpenAIError

_REF = "#/components/schemas/{model}"


def routes_of(app: FastAPI) -> Iterator[BaseRoute]:
    """Every route the app serves, the included routers' flattened."""

    def walk(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
        for route in routes:
            if isinstance(route, fastapi.routing._IncludedRouter):
                yield from walk(route.original_router.routes)
            else:
                yield route

    yield from walk(app.router.routes)


def body_models(dependant: Dependant) -> list[type[BaseModel]]:
    """The models the route's :class:`BodyOf` dependencies parse its body into."""
    found, pending = [], [dependant]
    while pending:
        current = pending.pop()
        if isinstance(current.call, BodyOf):
            found.append(current.call.model)
        pending.extend(current.dependencies)
    return found


class _Components:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode = "validation") -> dict[str, str]:
        """A ``$ref`` to ``model``'s schema, added (with the models it nests) if missing."""
        schema = model.model_json_schema(ref_template=_REF, mode=mode)
        # FastAPI may have added a model already (from ``responses=``), in its own words;
        # names are unique across billumy.schemas (a test says so), so the first one stays.
        for name, nested in {**schema.pop("$defs", {}), model.__name__: schema}.items():
            self.schemas.setdefault(name, nested)
        return {"$ref": _REF.format(model=model.__name__)}


def _lean_operation(route: LeanRoute, components: _Components) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, answer in route.responses.items():
        answer = dict(answer)
        model = answer.pop("model", None)
        if model is not None:
            content = answer.setdefault("content", {})
            content["application/json"] = {"schema": components.ref(model, "serialization")}
        responses[str(status)] = answer
    return {
        "tags": route.tags,
        "summary": route.name.replace("_", " ").capitalize(),
        "operationId": route.name,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": components.ref(route.body)}},
        },
        "responses": responses,
    }


def _complete(
    operation: dict[str, Any],
    path: str,
    *,
    scopes: frozenset[str] | None,
    body: bool,
    components: _Components,
) -> None:
    """Security and the statuses every route of the kind returns, with the error body."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    # FastAPI's validation error is answered as a 400 with the error body (api/errors.py).
    had_validation = responses.pop("422", None) is not None
    statuses = set()
    if scopes is not None:
        operation["security"] = [{"bearer": []}]
        statuses |= {401, 429} | ({403} if scopes else set())
    else:
        operation["security"] = []
    if body or had_validation or operation.get("parameters"):
        statuses.add(400)
    if body:
        statuses.add(413)
    for code in statuses:
        responses.setdefault(str(code), {"description": REASONS[code]})
    error = components.ref(OpenAIError if path.startswith("/v1/") else Error)
    for status, answer in responses.items():
        if status.startswith(("4", "5")):
            answer["content"] = {"application/json": {"schema": error}}


def _only_declared_content(route: fastapi.routing.APIRoute, operation: dict[str, Any]) -> None:
    """FastAPI documents ``application/json`` for every success answer; a route that declared
    its answer without a model (text, SVG, a stream, no body) answers only what it declared."""
    status = route.status_code or 200
    declared = route.responses.get(status, route.responses.get(str(status)))
    if declared is None or "model" in declared:
        return
    answer = operation["responses"][str(status)]
    if declared.get("content"):
        answer["content"] = declared["content"]
    else:
        answer.pop("content", None)


def document(app: FastAPI) -> dict[str, Any]:
    """The whole document: every route the app serves, with its body and statuses."""
    routes = list(routes_of(app))
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version="3.1.0",
        description=(
            "Billumy: the Ollama and OpenAI APIs, stored chats and grounded data insights. "
            "Every route but the probes (`/`, `/health`, `/ready`) needs a Bearer key, checked "
            "before the body is read."
        ),
        routes=[r for r in routes if not isinstance(r, LeanRoute)],
    )
    components = _Components(doc)
    paths: dict[str, Any] = doc.setdefault("paths", {})
    for route in routes:
        if isinstance(route, LeanRoute):
            operations = {"post": _lean_operation(route, components)}
            paths.setdefault(route.path_format, {}).update(operations)
            for operation in operations.values():
                _complete(
                    operation,
                    route.path,
                    scopes=frozenset({"inference"}),
                    body=True,
                    components=components,
                )
            continue
        if not isinstance(route, fastapi.routing.APIRoute):
            continue
        models = body_models(route.dependant)
        scopes = key_scopes(route.dependant)
        for method in route.methods or ():
            operation = paths[route.path_format][method.lower()]
            if models and "requestBody" not in operation:
                (model,) = models
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": components.ref(model)}},
                }
            _only_declared_content(route, operation)
            has_body = "requestBody" in operation
            _complete(operation, route.path, scopes=scopes, body=has_body, components=components)
    # Left by FastAPI for its 422, which this API answers as a 400 with the error body.
    for unused in ("HTTPValidationError", "ValidationError"):
        components.schemas.pop(unused, None)
    doc["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "A Billumy API key."}
    }
    return doc
