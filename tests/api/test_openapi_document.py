"""The OpenAPI document covers every route the app serves, with the body it takes: a new
route without its documentation fails here, before a client generated from it does."""

from __future__ import annotations

import inspect
from typing import Any

import fastapi.routing
import pytest
from pydantic import BaseModel

import billumy.schemas.admin
import billumy.schemas.chats
import billumy.schemas.insights
import billumy.schemas.ollama
import billumy.schemas.openai
import billumy.schemas.responses
from billumy.api.deps import LeanRoute
from billumy.api.openapi import body_models, document, routes_of
from billumy.app import create_app
from billumy.settings import Settings

# Routes that take no body: POST only to act (refusals, a generated title).
NO_BODY = {
    ("POST", "/api/pull"),
    ("POST", "/api/push"),
    ("POST", "/chats/{chat_id}/title"),
    ("POST", "/admin/keys/{key_id}/revoke"),
    ("POST", "/admin/keys/{key_id}/rotate"),
}
TAKES_BODY = {"POST", "PUT", "PATCH"}


@pytest.fixture(scope="module")
def app_and_doc() -> tuple[Any, dict[str, Any]]:
    app = create_app(Settings())
    return app, document(app)


def _operations(app: Any) -> list[tuple[str, str, Any]]:
    out = []
    for route in routes_of(app):
        if isinstance(route, LeanRoute | fastapi.routing.APIRoute):
            for method in sorted(route.methods or ()):
                out.append((method, route.path_format, route))
    return out


def test_every_route_is_in_the_document_with_its_body(
    app_and_doc: tuple[Any, dict[str, Any]],
) -> None:
    app, doc = app_and_doc
    operations = _operations(app)
    assert len(operations) >= 40
    for method, path, route in operations:
        operation = doc["paths"][path][method.lower()]
        body = operation.get("requestBody")
        models = [route.body] if isinstance(route, LeanRoute) else body_models(route.dependant)
        if models or (method in TAKES_BODY and (method, path) not in NO_BODY):
            assert body is not None, f"{method} {path} takes a body the document lacks"
        for model in models:
            schema = body["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{model.__name__}"}, (path, schema)
        assert operation["responses"], (method, path)


def test_every_operation_documents_its_statuses_and_errors(
    app_and_doc: tuple[Any, dict[str, Any]],
) -> None:
    _, doc = app_and_doc
    schemas = doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)  # answered as 400
            if operation["security"]:
                assert {"401", "429"} <= set(responses), (method, path)
            else:
                assert path in ("/", "/health", "/ready"), path
            if "requestBody" in operation:
                assert {"400", "413"} <= set(responses), (method, path)
            error = "OpenAIError" if path.startswith("/v1/") else "Error"
            for status, answer in responses.items():
                if status.startswith("4"):
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref == f"#/components/schemas/{error}", (method, path, status)
    for name in ("GenerateRequest", "ChatCompletionRequest", "InsightRequest", "Error"):
        assert name in schemas
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_streams_are_documented(app_and_doc: tuple[Any, dict[str, Any]]) -> None:
    _, doc = app_and_doc
    paths = doc["paths"]
    assert "application/x-ndjson" in paths["/api/generate"]["post"]["responses"]["200"]["content"]
    assert "application/x-ndjson" in paths["/api/chat"]["post"]["responses"]["200"]["content"]
    sse = paths["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert "text/event-stream" in sse and "application/json" in sse
    upload = paths["/datasets"]["post"]["requestBody"]["content"]
    assert set(upload) == {"multipart/form-data", "application/json"}


def test_schema_names_are_unique() -> None:
    """The document keys schemas by class name: two models of one name would share a schema."""
    seen: dict[str, type[BaseModel]] = {}
    for module in (
        billumy.schemas.admin,
        billumy.schemas.chats,
        billumy.schemas.insights,
        billumy.schemas.ollama,
        billumy.schemas.openai,
        billumy.schemas.responses,
    ):
        for name, value in vars(module).items():
            if name.startswith("_") or not inspect.isclass(value):
                continue
            if issubclass(value, BaseModel) and value is not BaseModel:
                assert seen.setdefault(name, value) is value, name


def test_routes_that_always_refuse_document_no_success(
    app_and_doc: tuple[Any, dict[str, Any]],
) -> None:
    """/api/pull and /api/push answer 400 whatever they are sent: a 200 in the document would
    promise clients (and generated ones) an answer that never comes."""
    _, doc = app_and_doc
    for path in ("/api/pull", "/api/push"):
        responses = doc["paths"][path]["post"]["responses"]
        assert set(responses) == {"400", "401", "403", "429"}, (path, responses)
        schema = responses["400"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}
        assert responses["400"]["description"].startswith("Always:")


def test_every_documented_success_is_one_the_route_can_send(
    app_and_doc: tuple[Any, dict[str, Any]],
) -> None:
    """Every operation documents exactly one success status, except the refusing ones."""
    _, doc = app_and_doc
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            successes = [s for s in operation["responses"] if s.startswith("2")]
            if path in ("/api/pull", "/api/push"):
                assert successes == [], (method, path)
            elif (method, path) == ("post", "/datasets"):
                assert sorted(successes) == ["200", "201"]
            else:
                assert len(successes) == 1, (method, path, successes)
