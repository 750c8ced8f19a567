"""Per-tenant catalog rights and admin-only model control, against a real server: personas
belong to the tenant whose admin created them, a global admin publishes shared ones, and an
inference key's keep_alive neither unloads nor pins the shared engine's models."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import ollama
import pytest

from tests.e2e.server import Server

MODEL = "smollm2-135m:latest"


@dataclass
class Keys:
    server: Server
    acme_admin: str
    acme_app: str
    globex_admin: str
    globex_app: str

    def call(self, key: str, method: str, path: str, **json: Any) -> httpx.Response:
        return httpx.request(
            method,
            self.server.url + path,
            headers={"Authorization": f"Bearer {key}"},
            json=json or None,
            timeout=120,
        )

    @property
    def root(self) -> str:
        """The server's own admin key: tenant ``default``, the global admin tenant."""
        assert self.server.api_key is not None
        return self.server.api_key


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    srv = Server(
        data_dir=tmp_path_factory.mktemp("rights"),
        env={"BILLUMY_INFERENCE_KEEP_ALIVE_MAX": "10m", "BILLUMY_CACHE_TTL": "0"},
    ).start()
    try:
        yield Keys(
            server=srv,
            acme_admin=srv.create_key("acme-admin", tenant="acme", scopes="admin"),
            acme_app=srv.create_key("acme-app", tenant="acme"),
            globex_admin=srv.create_key("globex-admin", tenant="globex", scopes="admin"),
            globex_app=srv.create_key("globex-app", tenant="globex"),
        )
    finally:
        srv.stop()


def _names(keys: Keys, key: str) -> set[str]:
    tags = {m["name"] for m in keys.call(key, "GET", "/api/tags").json()["models"]}
    openai = {m["id"] for m in keys.call(key, "GET", "/v1/models").json()["data"]}
    assert {name.removesuffix(":latest") for name in tags} == openai
    return tags


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert isinstance(message, str) and message
    return message


def test_a_tenants_persona_is_its_own(keys: Keys) -> None:
    created = keys.call(
        keys.acme_admin,
        "POST",
        "/api/create",
        model="acme-bot",
        **{"from": "billumy"},
        system="You are Acme's assistant.",
        stream=False,
    )
    assert created.status_code == 200, created.text
    assert "acme-bot:latest" in _names(keys, keys.acme_app)
    shown = keys.call(keys.acme_app, "POST", "/api/show", model="acme-bot")
    assert shown.json()["system"] == "You are Acme's assistant."

    # To globex it does not exist: not listed, not shown, not served.
    assert "acme-bot:latest" not in _names(keys, keys.globex_app)
    assert "billumy:latest" in _names(keys, keys.globex_app)
    _error(keys.call(keys.globex_app, "POST", "/api/show", model="acme-bot"), 404)
    openai = keys.call(keys.globex_app, "GET", "/v1/models/acme-bot")
    assert openai.status_code == 404 and openai.json()["error"]["code"] == "model_not_found"
    client = ollama.Client(
        host=keys.server.url, headers={"Authorization": f"Bearer {keys.globex_app}"}
    )
    with pytest.raises(ollama.ResponseError) as refused:
        client.generate(model="acme-bot", prompt="hi", options={"num_predict": 1})
    assert refused.value.status_code == 404

    # Globex's admin can neither overwrite, take over by copy, copy from, nor delete it.
    hijack = keys.call(
        keys.globex_admin,
        "POST",
        "/api/create",
        model="acme-bot",
        **{"from": "billumy"},
        system="Hijacked.",
        stream=False,
    )
    _error(hijack, 403)
    copy = {"source": "billumy", "destination": "acme-bot"}
    _error(keys.call(keys.globex_admin, "POST", "/api/copy", **copy), 403)
    steal = {"source": "acme-bot", "destination": "globex-bot"}
    _error(keys.call(keys.globex_admin, "POST", "/api/copy", **steal), 404)
    _error(keys.call(keys.globex_admin, "DELETE", "/api/delete", model="acme-bot"), 404)
    shown = keys.call(keys.acme_app, "POST", "/api/show", model="acme-bot")
    assert shown.json()["system"] == "You are Acme's assistant."

    # Its own tenant serves and deletes it.
    answer = keys.call(
        keys.acme_app,
        "POST",
        "/api/generate",
        model="acme-bot",
        prompt="hi",
        stream=False,
        options={"num_predict": 2},
    )
    assert answer.status_code == 200, answer.text
    deleted = keys.call(keys.acme_admin, "DELETE", "/api/delete", model="acme-bot")
    assert deleted.status_code == 200, deleted.text
    assert "acme-bot:latest" not in _names(keys, keys.acme_app)


def test_a_global_admin_publishes_shared_personas(keys: Keys) -> None:
    body = {"model": "house", "from": "billumy", "system": "House style.", "stream": False}
    _error(keys.call(keys.acme_admin, "POST", "/api/create", **body, shared=True), 403)
    created = keys.call(keys.root, "POST", "/api/create", **body, shared=True)
    assert created.status_code == 200, created.text
    for app in (keys.acme_app, keys.globex_app):
        assert "house:latest" in _names(keys, app)
        assert keys.call(app, "POST", "/api/show", model="house").json()["system"] == (
            "House style."
        )
    # Tenant admins neither replace nor delete it; a copy of it is the copier's own.
    _error(keys.call(keys.acme_admin, "POST", "/api/create", **{**body, "system": "Mine."}), 403)
    _error(keys.call(keys.globex_admin, "DELETE", "/api/delete", model="house"), 403)
    copied = keys.call(
        keys.acme_admin, "POST", "/api/copy", source="house", destination="acme-house"
    )
    assert copied.status_code == 200, copied.text
    assert "acme-house:latest" in _names(keys, keys.acme_app)
    assert "acme-house:latest" not in _names(keys, keys.globex_app)
    assert keys.call(keys.root, "DELETE", "/api/delete", model="house").status_code == 200
    assert "house:latest" not in _names(keys, keys.globex_app)


def _loaded(keys: Keys) -> list[datetime]:
    """When each loaded copy of MODEL expires, as /api/ps tells."""
    models = keys.call(keys.root, "GET", "/api/ps").json()["models"]
    return [datetime.fromisoformat(m["expires_at"]) for m in models if m["name"] == MODEL]


def _load(keys: Keys, key: str, keep_alive: Any) -> httpx.Response:
    response = keys.call(
        key, "POST", "/api/generate", model=MODEL, prompt="", keep_alive=keep_alive, stream=False
    )
    assert response.status_code == 200, response.text
    return response


def test_only_an_admin_unloads_a_model(keys: Keys) -> None:
    _load(keys, keys.root, "5m")
    assert _loaded(keys)
    # Ollama's unload idiom, from the official client with an inference key: served, and
    # the model stays loaded.
    app = ollama.Client(host=keys.server.url, headers={"Authorization": f"Bearer {keys.acme_app}"})
    answer = app.generate(model=MODEL, prompt="", keep_alive=0)
    assert answer.done and answer.done_reason == "load"
    assert _loaded(keys)
    response = _load(keys, keys.acme_app, 0)
    assert response.headers["X-Billumy-Keep-Alive"] == "60"  # raised to the minimum
    assert _loaded(keys)
    # The same from an admin key unloads it.
    response = _load(keys, keys.root, 0)
    assert response.json()["done_reason"] == "unload"
    assert "X-Billumy-Keep-Alive" not in response.headers
    assert _loaded(keys) == []


@pytest.mark.parametrize("keep_alive", ["1000h", -1, "-1m"])
def test_an_inference_keys_keep_alive_is_clamped(keys: Keys, keep_alive: Any) -> None:
    response = _load(keys, keys.globex_app, keep_alive)
    assert response.headers["X-Billumy-Keep-Alive"] == "600"  # BILLUMY_INFERENCE_KEEP_ALIVE_MAX
    expires = _loaded(keys)
    assert expires
    assert max(expires) <= datetime.now(UTC) + timedelta(minutes=11)
    # An admin's is applied as sent: the bound above is what made the difference.
    _load(keys, keys.root, keep_alive)
    assert max(_loaded(keys)) > datetime.now(UTC) + timedelta(hours=900)
    _load(keys, keys.root, 0)


def test_an_inference_key_never_shortens_an_admins_pin(keys: Keys) -> None:
    """The report: an admin pinned the model (keep_alive -1), an inference request with
    keep_alive "5m" made it expire five minutes later. An inference key's keep_alive may
    lengthen a model's time, never shorten it; an admin's applies as sent."""
    forever = datetime.now(UTC) + timedelta(hours=900)
    _load(keys, keys.root, -1)
    assert min(_loaded(keys)) > forever
    generation = {"model": MODEL, "prompt": "Oi", "stream": False, "options": {"num_predict": 2}}
    for keep_alive in ("5m", "1m", 0, None):  # None: the server's default (5m)
        body = generation if keep_alive is None else {**generation, "keep_alive": keep_alive}
        response = keys.call(keys.acme_app, "POST", "/api/generate", **body)
        assert response.status_code == 200, response.text
        assert min(_loaded(keys)) > forever, keep_alive
        _load(keys, keys.globex_app, "2m")  # an empty prompt: a load, the same rule
        assert min(_loaded(keys)) > forever, keep_alive
    # Chats and the OpenAI route come through the same preparation.
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "Oi"}], "stream": False}
    response = keys.call(keys.acme_app, "POST", "/api/chat", **chat, keep_alive="1m")
    assert response.status_code == 200, response.text
    openai = {"model": MODEL, "messages": [{"role": "user", "content": "Oi"}], "max_tokens": 2}
    assert keys.call(keys.acme_app, "POST", "/v1/chat/completions", **openai).status_code == 200
    assert min(_loaded(keys)) > forever
    # An inference key still lengthens a shorter time; an admin shortens it as it says.
    _load(keys, keys.root, "1m")
    assert max(_loaded(keys)) < datetime.now(UTC) + timedelta(minutes=2)
    _load(keys, keys.acme_app, "8m")
    soon = max(_loaded(keys))
    assert (
        datetime.now(UTC) + timedelta(minutes=7) < soon < datetime.now(UTC) + timedelta(minutes=9)
    )
    _load(keys, keys.root, 0)
    assert _loaded(keys) == []
