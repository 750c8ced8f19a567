"""The admin API (``/admin/...``) against a real ``billumy serve`` on SQLite: every route,
its scope, its tenant binding, secrets shown once, revocation and rotation applying at once
(with a key cache long enough that only forgetting the key explains it), usage as JSON and
CSV, and an audit line per key change holding no secret. The ``billumy keys`` commands run
the same service functions on the same database (tests/e2e/test_cli.py covers their output).

The server's admin key (tenant ``default``, the ``global_admin_tenant``) is the global admin;
the tests make tenant admins of ``acme`` and ``globex`` through the API itself.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from billumy.store.sql import SQLStore
from tests.e2e.server import BIN, Server
from tests.logscan import SESSION
from tests.store.test_contract import _pg_database, pg_user  # noqa: F401 (a fixture database_url asks for)

KEY_FIELDS = {
    "id",
    "name",
    "prefix",
    "tenant",
    "scopes",
    "created_at",
    "last_used_at",
    "revoked_at",
    "active",
    "requests_per_minute",
    "tokens_per_day",
    "parallel",
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite+aiosqlite:///" + str(tmp_path_factory.mktemp("admin-db") / "billumy.db")
    else:
        yield from _pg_database(request.getfixturevalue("pg_user"))


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Server]:
    # Keys verified are remembered for ten minutes and unknown ones for as long: a revoked or
    # rotated key refused at once shows the process forgot it, not that its cache ran out.
    env = {
        "BILLUMY_KEY_CACHE_TTL": "600",
        "BILLUMY_KEY_NEGATIVE_CACHE_TTL": "600",
        "BILLUMY_DATABASE_URL": database_url,
    }
    server = Server(data_dir=tmp_path_factory.mktemp("admin"), env=env).start()
    yield server
    server.stop()


def call(
    srv: Server, method: str, path: str, key: str | None = None, **kwargs: Any
) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))
    headers["Authorization"] = f"Bearer {key or srv.api_key}"
    return httpx.request(method, srv.url + path, headers=headers, timeout=120, **kwargs)


def make_key(srv: Server, key: str | None = None, **body: Any) -> dict[str, Any]:
    """A key created through the API (by the global admin unless ``key``), its secret in
    ``key``, entered in the session's log scan."""
    r = call(srv, "POST", "/admin/keys", key, json=body)
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    SESSION.add_secret(made["key"], "key made by the admin API")
    return made


@pytest.fixture(scope="module")
def acme_admin(srv: Server) -> dict[str, Any]:
    return make_key(srv, name="acme-admin", tenant="acme", scopes=["admin"])


@pytest.fixture(scope="module")
def globex_admin(srv: Server) -> dict[str, Any]:
    return make_key(srv, name="globex-admin", tenant="globex", scopes=["admin"])


def audit_lines(srv: Server) -> list[dict[str, Any]]:
    lines = []
    for line in srv.log().splitlines():
        if line.startswith("{") and '"audit"' in line:
            lines.append(json.loads(line))
    return lines


# --- keys ------------------------------------------------------------------------------------


def test_a_created_keys_secret_is_shown_once(srv: Server, acme_admin: dict[str, Any]) -> None:
    made = make_key(srv, acme_admin["key"], name="shop", requests_per_minute=100)
    secret = made["key"]
    assert secret.startswith("bk_") and len(secret) > 40
    assert set(made) == KEY_FIELDS | {"key"}
    assert (made["tenant"], made["scopes"], made["active"]) == ("acme", ["inference"], True)
    assert (made["requests_per_minute"], made["tokens_per_day"]) == (100, None)
    assert made["prefix"] == secret[:8]
    # Never again: not in the key's own page, not in the listing.
    one = call(srv, "GET", f"/admin/keys/{made['id']}", acme_admin["key"])
    listed = call(srv, "GET", "/admin/keys", acme_admin["key"])
    for r in (one, listed):
        assert r.status_code == 200, r.text
        assert secret not in r.text and secret[8:] not in r.text
        assert '"key"' not in r.text
    assert set(one.json()) == KEY_FIELDS
    assert made["id"] in [k["id"] for k in listed.json()["keys"]]
    # It works, with the scope it was given.
    assert call(srv, "GET", "/api/tags", secret).status_code == 200
    assert call(srv, "GET", "/admin/keys", secret).status_code == 403


def test_the_admin_scope_is_needed(srv: Server) -> None:
    inference = make_key(srv, name="reader")["key"]
    metrics = make_key(srv, name="scraper", scopes=["metrics"])["key"]
    routes = [
        ("GET", "/admin/keys"),
        ("POST", "/admin/keys"),
        ("GET", "/admin/keys/x"),
        ("PATCH", "/admin/keys/x"),
        ("POST", "/admin/keys/x/revoke"),
        ("POST", "/admin/keys/x/rotate"),
        ("GET", "/admin/usage"),
        ("GET", "/admin/personas"),
        ("POST", "/admin/personas"),
        ("POST", "/admin/personas/copy"),
        ("DELETE", "/admin/personas/x"),
        ("GET", "/admin/datasets"),
        ("GET", "/admin/insights"),
    ]
    for method, path in routes:
        for key in (inference, metrics):
            r = call(srv, method, path, key, json={"name": "sneaky"})
            assert r.status_code == 403, (method, path, r.text)
            assert "admin" in r.json()["error"]
        anonymous = httpx.request(method, srv.url + path, json={}, timeout=30)
        assert anonymous.status_code == 401, (method, path)


def test_a_tenant_admin_sees_and_manages_only_its_tenant(
    srv: Server, acme_admin: dict[str, Any], globex_admin: dict[str, Any]
) -> None:
    acme, globex = acme_admin["key"], globex_admin["key"]
    theirs = make_key(srv, globex, name="globex-shop")
    assert theirs["tenant"] == "globex"
    listed = call(srv, "GET", "/admin/keys", acme).json()["keys"]
    assert listed and {k["tenant"] for k in listed} == {"acme"}
    # Another tenant's key is a missing one, whatever is asked of it.
    for method, path, body in [
        ("GET", f"/admin/keys/{theirs['id']}", None),
        ("PATCH", f"/admin/keys/{theirs['id']}", {"parallel": 1}),
        ("POST", f"/admin/keys/{theirs['id']}/revoke", None),
        ("POST", f"/admin/keys/{theirs['id']}/rotate", None),
        ("GET", f"/admin/keys/{theirs['name']}", None),
    ]:
        r = call(srv, method, path, acme, json=body)
        assert r.status_code == 404, (method, path, r.text)
    r = call(srv, "GET", "/admin/usage", acme, params={"key": theirs["id"]})
    assert r.status_code == 404
    # Naming another tenant is refused.
    refused = [
        call(srv, "POST", "/admin/keys", acme, json={"name": "x", "tenant": "globex"}),
        call(srv, "GET", "/admin/keys", acme, params={"tenant": "globex"}),
        call(srv, "GET", "/admin/usage", acme, params={"tenant": "globex"}),
        call(srv, "GET", "/admin/personas", acme, params={"tenant": "globex"}),
        call(srv, "GET", "/admin/datasets", acme, params={"tenant": "globex"}),
        call(srv, "GET", "/admin/insights", acme, params={"tenant": "globex"}),
    ]
    for r in refused:
        assert r.status_code == 403, r.text
        assert r.json() == {"error": "a tenant admin manages only its own tenant"}
    # The key itself is untouched and still works.
    assert call(srv, "GET", "/api/tags", theirs["key"]).status_code == 200
    # The global admin sees every tenant, or the one it names.
    everyone = call(srv, "GET", "/admin/keys").json()["keys"]
    assert {"default", "acme", "globex"} <= {k["tenant"] for k in everyone}
    only = call(srv, "GET", "/admin/keys", params={"tenant": "globex"}).json()["keys"]
    assert {k["tenant"] for k in only} == {"globex"}
    assert call(srv, "GET", f"/admin/keys/{theirs['id']}").json()["name"] == "globex-shop"


def test_whoami_tells_a_key_what_it_is(srv: Server, acme_admin: dict[str, Any]) -> None:
    """``GET /whoami``: any valid key reads itself (the console shows the Keys page by it),
    never a secret; a global admin is an admin key of the global tenant only."""
    reader = make_key(srv, acme_admin["key"], name="acme-reader", scopes=["inference", "metrics"])
    fields = {"id", "name", "tenant", "scopes", "global_admin"}
    expected = [
        (None, {"tenant": "default", "global_admin": True}),
        (acme_admin, {"id": acme_admin["id"], "name": "acme-admin", "tenant": "acme",
                      "scopes": ["admin"], "global_admin": False}),
        (reader, {"id": reader["id"], "name": "acme-reader", "tenant": "acme",
                  "scopes": ["inference", "metrics"], "global_admin": False}),
    ]  # fmt: skip
    for made, want in expected:
        r = call(srv, "GET", "/whoami", made["key"] if made else None)
        assert r.status_code == 200, r.text
        assert set(r.json()) == fields
        assert {k: r.json()[k] for k in want} == want
        assert "admin" in r.json()["scopes"] or made is reader
        if made:
            assert made["key"] not in r.text and made["key"][8:] not in r.text
    # An inference key of the global tenant is no global admin.
    plain = make_key(srv, name="default-reader")
    assert call(srv, "GET", "/whoami", plain["key"]).json()["global_admin"] is False
    assert httpx.get(srv.url + "/whoami", timeout=30).status_code == 401
    bad = httpx.get(srv.url + "/whoami", headers={"Authorization": "Bearer bk_nope"}, timeout=30)
    assert bad.status_code == 401 and "error" in bad.json()
    # A revoked key is refused at once.
    call(srv, "POST", f"/admin/keys/{reader['id']}/revoke", acme_admin["key"])
    assert call(srv, "GET", "/whoami", reader["key"]).status_code == 401


def test_bad_key_bodies_are_400s(srv: Server) -> None:
    for body in [
        {},
        {"name": ""},
        {"name": "x", "scopes": ["root"]},
        {"name": "x", "scopes": []},
        {"name": "x", "requests_per_minute": -1},
        {"name": "x", "parallel": True},
        {"name": "x", "tokens_per_day": 2**64},
        {"name": "x", "rpm": 3},
        {"name": "x\u0000y"},
        {"name": "x", "tenant": ""},
        {"name": "x" * 201},
    ]:
        r = call(srv, "POST", "/admin/keys", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]
    for raw in (b"{nope", b'{"name": "\\ud800"}', b"[]", b""):
        r = call(srv, "POST", "/admin/keys", content=raw, headers={"content-type": "text/plain"})
        assert r.status_code == 400, (raw, r.text)


def test_limits_change_and_apply_at_once(srv: Server) -> None:
    made = make_key(srv, name="limited", tokens_per_day=5000, parallel=2)
    assert call(srv, "GET", "/api/version", made["key"]).status_code == 200  # cached now
    # That request was metered at the default rate (600 a minute: its next is due 0.1 s
    # later); under a new limit of 1 a minute, one sent before that is rightly refused.
    time.sleep(0.5)
    path = f"/admin/keys/{made['id']}"
    changed = call(srv, "PATCH", path, json={"requests_per_minute": 1, "tokens_per_day": None})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    # Given: set; null: back to the default; left out: unchanged.
    assert (body["requests_per_minute"], body["tokens_per_day"], body["parallel"]) == (1, None, 2)
    assert call(srv, "GET", path).json()["requests_per_minute"] == 1
    # One request a minute from now on, though the key was cached with none.
    assert call(srv, "GET", "/api/version", made["key"]).status_code == 200
    assert call(srv, "GET", "/api/version", made["key"]).status_code == 429
    back = call(srv, "PATCH", path, json={"requests_per_minute": 0})
    assert back.json()["requests_per_minute"] == 0
    assert call(srv, "GET", "/api/version", made["key"]).status_code == 200
    for bad in ({"parallel": -1}, {"parallel": "2"}, {"burst": 1}, [1]):
        assert call(srv, "PATCH", path, json=bad).status_code == 400, bad
    assert call(srv, "PATCH", "/admin/keys/0123456789abcdef", json={}).status_code == 404


def test_revoke_applies_at_once(srv: Server) -> None:
    made = make_key(srv, name="to-revoke")
    assert call(srv, "GET", "/api/tags", made["key"]).status_code == 200  # cached now
    r = call(srv, "POST", f"/admin/keys/{made['id']}/revoke")
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False and r.json()["revoked_at"]
    refused = call(srv, "GET", "/api/tags", made["key"])
    assert refused.status_code == 401
    assert refused.json()["error"] == "this API key has been revoked"
    again = call(srv, "POST", f"/admin/keys/{made['id']}/revoke")
    assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]
    rotate = call(srv, "POST", f"/admin/keys/{made['id']}/rotate")
    assert rotate.status_code == 400
    assert rotate.json() == {"error": "a revoked key cannot be rotated"}
    assert call(srv, "POST", "/admin/keys/nope/revoke").status_code == 404


def test_rotate_gives_a_new_secret_and_refuses_the_old_at_once(srv: Server) -> None:
    made = make_key(srv, name="to-rotate", scopes=["inference"], parallel=4)
    old = made["key"]
    assert call(srv, "GET", "/api/tags", old).status_code == 200  # cached now
    r = call(srv, "POST", f"/admin/keys/{made['id']}/rotate")
    assert r.status_code == 200, r.text
    rotated = r.json()
    new = rotated["key"]
    SESSION.add_secret(new, "rotated key")
    assert new != old and new.startswith("bk_")
    assert (rotated["id"], rotated["name"], rotated["parallel"]) == (made["id"], "to-rotate", 4)
    assert rotated["prefix"] == new[:8]
    refused = call(srv, "GET", "/api/tags", old)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid API key"
    assert call(srv, "GET", "/api/tags", new).status_code == 200
    shown = call(srv, "GET", f"/admin/keys/{made['id']}")
    assert new not in shown.text and shown.json()["prefix"] == new[:8]


def test_key_changes_are_audited_without_secrets(srv: Server, acme_admin: dict[str, Any]) -> None:
    made = make_key(srv, acme_admin["key"], name="audited")
    key_id = made["id"]
    patched = call(srv, "PATCH", f"/admin/keys/{key_id}", acme_admin["key"], json={"parallel": 7})
    rotated = call(srv, "POST", f"/admin/keys/{key_id}/rotate", acme_admin["key"]).json()
    SESSION.add_secret(rotated["key"], "rotated key")
    call(srv, "POST", f"/admin/keys/{key_id}/revoke", acme_admin["key"])
    lines = [line for line in audit_lines(srv) if line.get("key_id") == key_id]
    assert [line["audit"] for line in lines] == [
        "key.create",
        "key.limits",
        "key.rotate",
        "key.revoke",
    ]
    for line in lines:
        assert line["actor"] == acme_admin["id"]
        assert (line["tenant"], line["key_name"], line["logger"]) == (
            "acme",
            "audited",
            "billumy.audit",
        )
    assert lines[1]["before"]["parallel"] is None and lines[1]["after"]["parallel"] == 7
    assert lines[1]["request_id"] == patched.headers["x-request-id"]
    log = srv.log()
    for secret in (made["key"], rotated["key"], acme_admin["key"]):
        assert secret not in log and secret[8:24] not in log


def test_the_cli_is_a_client_of_the_same_keys(srv: Server, acme_admin: dict[str, Any]) -> None:
    """A key made by the API is rotated and revoked by ``billumy keys`` on the same database,
    and the serving process sees it (its cache of ten minutes aside: the CLI has no way into
    it, which is why the admin API is the way to revoke at once)."""
    made = make_key(srv, acme_admin["key"], name="cli-made")

    def billumy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN), *args], env=srv.environment(), capture_output=True, text=True, timeout=60
        )

    listed = billumy("keys", "list")
    assert listed.returncode == 0 and made["id"] in listed.stdout
    rotated = billumy("keys", "rotate", made["id"])
    assert rotated.returncode == 0, rotated.stderr
    secret = rotated.stdout.strip()
    SESSION.add_secret(secret, "key rotated by the CLI")
    assert secret.startswith("bk_") and secret not in rotated.stderr
    audit = [json.loads(line) for line in rotated.stderr.splitlines() if line.startswith("{")]
    assert [(a["audit"], a["actor"], a["key_id"]) for a in audit] == [
        ("key.rotate", "cli", made["id"])
    ]
    # Never used before, so not cached: the new secret works and the old one does not.
    assert call(srv, "GET", "/api/tags", secret).status_code == 200
    assert call(srv, "GET", "/api/tags", made["key"]).status_code == 401
    assert billumy("keys", "revoke", "cli-made").returncode == 0
    assert call(srv, "GET", f"/admin/keys/{made['id']}").json()["active"] is False
    assert billumy("keys", "rotate", made["id"]).returncode == 1


# --- usage -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def usage_keys(srv: Server, acme_admin: dict[str, Any], database_url: str) -> dict[str, str]:
    """Two acme keys and a globex one, with usage on three days (written as the server's
    usage buffer writes it)."""
    ids = {
        "a1": make_key(srv, acme_admin["key"], name="=u1")["id"],
        "a2": make_key(srv, acme_admin["key"], name="u2")["id"],
        "g1": make_key(srv, name="u3", tenant="globex")["id"],
    }
    today = datetime.now(UTC).date()

    async def seed() -> None:
        store = SQLStore(database_url)
        await store.ainit()
        try:
            for days_ago, key, model, p, c in [
                (2, "a1", "billumy:latest", 100, 10),
                (1, "a1", "billumy:latest", 200, 20),
                (1, "a1", "gemma3-270m:latest", 5, 6),
                (0, "a2", "billumy:latest", 7, 8),
                (0, "g1", "billumy:latest", 1000, 1000),
            ]:
                day = today - timedelta(days=days_ago)
                await store.record_usage(ids[key], model, p, c, day=day)
        finally:
            await store.aclose()

    asyncio.run(seed())
    return ids


def test_usage_per_key_model_and_day(
    srv: Server, acme_admin: dict[str, Any], usage_keys: dict[str, str]
) -> None:
    today = datetime.now(UTC).date()
    r = call(srv, "GET", "/admin/usage", acme_admin["key"])
    assert r.status_code == 200, r.text
    rows = [u for u in r.json()["usage"] if u["key_id"] in usage_keys.values()]
    # Only acme's keys, oldest day first.
    assert [(u["key_name"], u["model"], u["total_tokens"]) for u in rows] == [
        ("=u1", "billumy:latest", 110),
        ("=u1", "billumy:latest", 220),
        ("=u1", "gemma3-270m:latest", 11),
        ("u2", "billumy:latest", 15),
    ]
    assert rows[0]["day"] == (today - timedelta(days=2)).isoformat()
    assert {u["tenant"] for u in r.json()["usage"]} == {"acme"}
    totals = r.json()["totals"]
    assert totals["total_tokens"] == sum(u["total_tokens"] for u in r.json()["usage"])
    # Filters: a day range, a key (by id or name), a model.
    yesterday = (today - timedelta(days=1)).isoformat()
    one_day = call(
        srv,
        "GET",
        "/admin/usage",
        acme_admin["key"],
        params={"since": yesterday, "until": yesterday},
    ).json()["usage"]
    assert {(u["key_name"], u["model"]) for u in one_day if u["key_id"] in usage_keys.values()} == {
        ("=u1", "billumy:latest"),
        ("=u1", "gemma3-270m:latest"),
    }
    by_key = call(srv, "GET", "/admin/usage", acme_admin["key"], params={"key": "u2"}).json()
    assert [u["total_tokens"] for u in by_key["usage"]] == [15]
    by_model = call(
        srv, "GET", "/admin/usage", params={"model": "gemma3-270m:latest", "key": usage_keys["a1"]}
    ).json()
    assert [u["total_tokens"] for u in by_model["usage"]] == [11]
    # The global admin sees every tenant's, or the one named.
    everyone = call(srv, "GET", "/admin/usage").json()["usage"]
    assert usage_keys["g1"] in {u["key_id"] for u in everyone}
    globex = call(srv, "GET", "/admin/usage", params={"tenant": "globex"}).json()["usage"]
    assert {u["tenant"] for u in globex} == {"globex"}
    for bad in (
        {"since": "yesterday"},
        {"since": today.isoformat(), "until": yesterday},
        {"format": "xml"},
    ):
        assert call(srv, "GET", "/admin/usage", params=bad).status_code == 400, bad


def test_usage_as_csv(srv: Server, acme_admin: dict[str, Any], usage_keys: dict[str, str]) -> None:
    by_param = call(srv, "GET", "/admin/usage", acme_admin["key"], params={"format": "csv"})
    by_accept = call(srv, "GET", "/admin/usage", acme_admin["key"], headers={"Accept": "text/csv"})
    for r in (by_param, by_accept):
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
    assert by_param.text == by_accept.text
    rows = list(csv.DictReader(io.StringIO(by_param.text)))
    assert list(rows[0]) == [
        "day",
        "key_id",
        "key_name",
        "tenant",
        "model",
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
    ]
    mine = [row for row in rows if row["key_id"] in usage_keys.values()]
    assert [(row["key_name"], row["total_tokens"]) for row in mine] == [
        ("'=u1", "110"),  # a name a spreadsheet would take for a formula, quoted as text
        ("'=u1", "220"),
        ("'=u1", "11"),
        ("u2", "15"),
    ]
    json_rows = call(srv, "GET", "/admin/usage", acme_admin["key"]).json()["usage"]
    assert len(rows) == len(json_rows)
    assert sum(int(row["total_tokens"]) for row in rows) == sum(
        u["total_tokens"] for u in json_rows
    )


# --- personas, datasets, insights ------------------------------------------------------------


def test_personas_per_tenant(
    srv: Server, acme_admin: dict[str, Any], globex_admin: dict[str, Any]
) -> None:
    acme = acme_admin["key"]
    made = call(
        srv,
        "POST",
        "/admin/personas",
        acme,
        json={"model": "acme-bot", "from": "billumy", "system": "You sell anvils."},
    )
    assert made.status_code == 201, made.text
    assert made.json()["owner"] == "acme" and made.json()["system"] == "You sell anvils."
    copied = call(
        srv,
        "POST",
        "/admin/personas/copy",
        acme,
        json={"source": "acme-bot", "destination": "acme-2"},
    )
    assert copied.status_code == 201, copied.text
    listed = {p["name"]: p for p in call(srv, "GET", "/admin/personas", acme).json()["personas"]}
    assert listed["acme-bot:latest"]["kind"] == "tenant"
    assert listed["acme-2:latest"]["owner"] == "acme"
    assert listed["billumy:latest"]["kind"] in ("configured", "base")
    # An acme key uses it; globex sees none of it, through its admin or the global one.
    reader = make_key(srv, acme, name="acme-reader")["key"]
    shown = call(srv, "POST", "/api/show", reader, json={"model": "acme-bot"})
    assert shown.status_code == 200 and "You sell anvils." in shown.json()["system"]
    for key, params in ((globex_admin["key"], {}), (srv.api_key, {"tenant": "globex"})):
        names = [
            p["name"]
            for p in call(srv, "GET", "/admin/personas", key, params=params).json()["personas"]
        ]
        assert "acme-bot:latest" not in names
    assert call(srv, "DELETE", "/admin/personas/acme-bot", globex_admin["key"]).status_code == 404
    # Only a global admin publishes shared personas.
    shared = {"model": "everyone", "from": "billumy", "shared": True}
    assert call(srv, "POST", "/admin/personas", acme, json=shared).status_code == 403
    assert call(srv, "POST", "/admin/personas", json=shared).status_code == 201
    assert call(srv, "POST", "/admin/personas", acme, json={"from": "billumy"}).status_code == 400
    # The global admin acts on a tenant it names.
    acted = call(
        srv,
        "POST",
        "/admin/personas",
        json={"model": "for-globex", "from": "billumy"},
        params={"tenant": "globex"},
    )
    assert acted.status_code == 201 and acted.json()["owner"] == "globex"
    for name in ("acme-bot", "acme-2"):
        assert call(srv, "DELETE", f"/admin/personas/{name}", acme).status_code == 204
    assert call(srv, "DELETE", "/admin/personas/acme-bot", acme).status_code == 404
    assert call(srv, "POST", "/api/show", reader, json={"model": "acme-bot"}).status_code == 404


def test_datasets_and_insights_per_tenant(
    srv: Server, acme_admin: dict[str, Any], globex_admin: dict[str, Any]
) -> None:
    reader = make_key(srv, acme_admin["key"], name="analyst")["key"]
    data = [{"loja": "Centro", "vendas": 120}, {"loja": "Norte", "vendas": 80}]
    up = call(srv, "POST", "/datasets", reader, json={"data": data, "name": "vendas"})
    assert up.status_code == 201, up.text
    dataset_id = up.json()["id"]
    asked = call(
        srv,
        "POST",
        "/api/insights",
        reader,
        json={"dataset_id": dataset_id, "question": "Which loja sold most?", "narrative": False},
    )
    assert asked.status_code == 200, asked.text
    listed = call(srv, "GET", "/admin/datasets", acme_admin["key"])
    assert listed.status_code == 200, listed.text
    datasets = listed.json()["datasets"]
    assert [d["id"] for d in datasets] == [dataset_id]
    assert datasets[0]["name"] == "vendas" and datasets[0]["rows"] == 2
    history = call(srv, "GET", "/admin/insights", acme_admin["key"]).json()["insights"]
    assert [h["id"] for h in history] == [asked.json()["id"]]
    assert history[0]["question"] == "Which loja sold most?"
    # Not globex's, unless the global admin names acme.
    assert call(srv, "GET", "/admin/datasets", globex_admin["key"]).json() == {"datasets": []}
    assert call(srv, "GET", "/admin/insights", globex_admin["key"]).json() == {"insights": []}
    named = call(srv, "GET", "/admin/datasets", params={"tenant": "acme"}).json()["datasets"]
    assert [d["id"] for d in named] == [dataset_id]
    assert call(srv, "GET", "/admin/datasets", params={"limit": 0}).status_code == 400
    for path, params in [
        ("/admin/insights", {"user_id": "a\u0000b"}),
        ("/admin/datasets", {"tenant": "a\u0000b"}),
        ("/admin/keys", {"tenant": " "}),
        ("/admin/usage", {"tenant": "x" * 201}),
    ]:
        r = call(srv, "GET", path, params=params)
        assert r.status_code == 400, (path, params, r.text)
