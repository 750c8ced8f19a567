"""Per-tenant catalog rights and admin-only model control, against a real server: personas
belong to the tenant whose admin created them (each tenant has its own names: its own persona,
then the shared one, then the built-in one answer to a name), a global admin publishes shared
ones, and an inference key's keep_alive neither unloads nor pins the shared engine's models."""

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

    # Globex's admin can neither copy from nor delete it; a create or copy of that name is
    # globex's own model, and changes nothing of acme's.
    steal = {"source": "acme-bot", "destination": "globex-bot"}
    _error(keys.call(keys.globex_admin, "POST", "/api/copy", **steal), 404)
    _error(keys.call(keys.globex_admin, "DELETE", "/api/delete", model="acme-bot"), 404)
    own = keys.call(
        keys.globex_admin,
        "POST",
        "/api/create",
        model="acme-bot",
        **{"from": "billumy"},
        system="Globex's own.",
        stream=False,
    )
    assert own.status_code == 200, own.text
    shown = keys.call(keys.globex_app, "POST", "/api/show", model="acme-bot")
    assert shown.json()["system"] == "Globex's own."
    copy = {"source": "billumy", "destination": "acme-bot:v2"}
    assert keys.call(keys.globex_admin, "POST", "/api/copy", **copy).status_code == 200
    _error(keys.call(keys.acme_app, "POST", "/api/show", model="acme-bot:v2"), 404)
    for name in ("acme-bot", "acme-bot:v2"):
        deleted = keys.call(keys.globex_admin, "DELETE", "/api/delete", model=name)
        assert deleted.status_code == 200, deleted.text
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
    # Loaded under its name, it is in acme's /api/ps, not in globex's.
    assert "acme-bot:latest" in _running(keys, keys.acme_app)
    assert "acme-bot:latest" not in _running(keys, keys.globex_app)
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
    # Tenant admins neither delete nor replace it: their create is their own persona.
    _error(keys.call(keys.globex_admin, "DELETE", "/api/delete", model="house"), 403)
    _error(keys.call(keys.globex_admin, "DELETE", "/api/delete", model="house", shared=True), 403)
    mine = keys.call(keys.acme_admin, "POST", "/api/create", **{**body, "system": "Mine."})
    assert mine.status_code == 200, mine.text
    assert keys.call(keys.acme_app, "POST", "/api/show", model="house").json()["system"] == "Mine."
    assert keys.call(keys.globex_app, "POST", "/api/show", model="house").json()["system"] == (
        "House style."
    )
    # A copy of it is the copier's own.
    copied = keys.call(
        keys.globex_admin, "POST", "/api/copy", source="house", destination="globex-house"
    )
    assert copied.status_code == 200, copied.text
    assert "globex-house:latest" in _names(keys, keys.globex_app)
    assert "globex-house:latest" not in _names(keys, keys.acme_app)
    assert keys.call(keys.root, "DELETE", "/api/delete", model="house").status_code == 200
    assert "house:latest" not in _names(keys, keys.globex_app)
    assert "house:latest" in _names(keys, keys.acme_app)  # acme's own is still there
    for key, name in ((keys.acme_admin, "house"), (keys.globex_admin, "globex-house")):
        assert keys.call(key, "DELETE", "/api/delete", model=name).status_code == 200


def _generate(keys: Keys, key: str, model: str) -> dict[str, Any]:
    """A 1-token answer of ``model`` to ``key`` (the original curl's request, shortened)."""
    answer = keys.call(
        key,
        "POST",
        "/api/generate",
        model=model,
        prompt="Olá, me chamo Anderson, eu que te criei",
        stream=False,
        options={"num_predict": 1},
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _prompt_tokens(body: dict[str, Any]) -> int:
    """The prompt's length in tokens: the context less the one token generated (none when the
    model stopped at once). Not ``prompt_eval_count``: with batching it counts the tokens
    evaluated, and a prompt sharing an earlier one's start reuses that part's KV."""
    generated = 1 if body["done_reason"] == "length" else 0
    return len(body["context"]) - generated


def _system(keys: Keys, key: str, model: str) -> str:
    shown = keys.call(key, "POST", "/api/show", model=model)
    assert shown.status_code == 200, shown.text
    system: str = shown.json()["system"]
    return system


def test_a_name_is_the_tenants_own_then_shared_then_built_in(keys: Keys) -> None:
    """Two tenants' own ``analyst`` personas and a shared one: each tenant is served its own,
    a tenant without one the shared one; the configured ``billumy`` serves every tenant that
    has none of its own. What a persona answers is told by its system prompt, which /api/show
    returns and the prompt's token count reflects."""
    long_system = "You are Acme's analyst; answer with figures from the ledger. " * 12

    def create(key: str, model: str, system: str, **extra: Any) -> None:
        body = {"model": model, "from": "billumy", "system": system, "stream": False}
        created = keys.call(key, "POST", "/api/create", **body, **extra)
        assert created.status_code == 200, created.text

    create(keys.root, "analyst", "Shared.", shared=True)
    assert _system(keys, keys.acme_app, "analyst") == "Shared."
    shared_tokens = _prompt_tokens(_generate(keys, keys.acme_app, "analyst"))

    create(keys.acme_admin, "analyst", long_system)
    assert _system(keys, keys.acme_app, "analyst") == long_system
    assert _system(keys, keys.globex_app, "analyst") == "Shared."
    acme = _generate(keys, keys.acme_app, "analyst")
    globex = _generate(keys, keys.globex_app, "analyst")
    assert _prompt_tokens(globex) == shared_tokens
    assert _prompt_tokens(acme) > shared_tokens + 100
    assert [m["name"] for m in _tags(keys, keys.acme_app) if m["name"] == "analyst:latest"] == [
        "analyst:latest"
    ]
    acme_digest = _digest(keys, keys.acme_app, "analyst:latest")
    assert acme_digest != _digest(keys, keys.globex_app, "analyst:latest")
    # The loaded analyst is, in each tenant's /api/ps, the analyst that tenant gets.
    assert _running(keys, keys.acme_app)["analyst:latest"] == acme_digest
    assert _running(keys, keys.globex_app)["analyst:latest"] == _digest(
        keys, keys.globex_app, "analyst:latest"
    )

    # Globex's own analyst changes nothing of acme's (nor of the shared one).
    create(keys.globex_admin, "analyst", "Globex.")
    assert _system(keys, keys.globex_app, "analyst") == "Globex."
    assert _system(keys, keys.acme_app, "analyst") == long_system
    assert _digest(keys, keys.acme_app, "analyst:latest") == acme_digest
    assert _system(keys, keys.root, "analyst") == "Shared."
    # Deletes peel the tenant's own layer: then the shared one answers again.
    for admin, app in ((keys.globex_admin, keys.globex_app), (keys.acme_admin, keys.acme_app)):
        assert keys.call(admin, "DELETE", "/api/delete", model="analyst").status_code == 200
        assert _system(keys, app, "analyst") == "Shared."
        _error(keys.call(admin, "DELETE", "/api/delete", model="analyst"), 403)
    deleted = keys.call(keys.root, "DELETE", "/api/delete", model="analyst", shared=True)
    assert deleted.status_code == 200, deleted.text
    _error(keys.call(keys.acme_app, "POST", "/api/show", model="analyst"), 404)


def test_the_built_in_billumy_serves_every_tenant_without_its_own(keys: Keys) -> None:
    configured = _system(keys, keys.root, "billumy")
    for app in (keys.acme_app, keys.globex_app, keys.root):
        assert _generate(keys, app, "billumy")["done"]
    # Acme's own billumy is acme's alone; the others keep the configured one.
    created = keys.call(
        keys.acme_admin,
        "POST",
        "/api/create",
        model="billumy",
        **{"from": "billumy"},
        system="Acme's billumy.",
        stream=False,
    )
    assert created.status_code == 200, created.text
    assert _system(keys, keys.acme_app, "billumy") == "Acme's billumy."
    assert _generate(keys, keys.acme_app, "billumy")["done"]
    for app in (keys.globex_app, keys.root):
        assert _system(keys, app, "billumy") == configured
        assert _generate(keys, app, "billumy")["done"]
    openai = keys.call(keys.globex_app, "GET", "/v1/models/billumy")
    assert openai.status_code == 200, openai.text
    # Deleting it brings the configured one back to acme; the configured one is not deleted.
    assert keys.call(keys.acme_admin, "DELETE", "/api/delete", model="billumy").status_code == 200
    assert _system(keys, keys.acme_app, "billumy") == configured
    assert "configuration" in _error(
        keys.call(keys.acme_admin, "DELETE", "/api/delete", model="billumy"), 400
    )


def _running(keys: Keys, key: str) -> dict[str, str]:
    """Name -> digest of each model /api/ps shows to ``key``."""
    models = keys.call(key, "GET", "/api/ps").json()["models"]
    return {m["name"]: m["digest"] for m in models}


def _tags(keys: Keys, key: str) -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = keys.call(key, "GET", "/api/tags").json()["models"]
    return models


def _digest(keys: Keys, key: str, name: str) -> str:
    (digest,) = [m["digest"] for m in _tags(keys, key) if m["name"] == name]
    return str(digest)


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
