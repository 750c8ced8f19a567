"""A NUL character (``\\u0000``) in any text a client sends is a 400 naming it, on every route
that stores text, with the store PostgreSQL (which refuses NUL in text: it was a 500 on each of
them). A backslash followed by ``u0000`` written as text is no NUL and passes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import fresh_pg_database
from tests.e2e.server import Server
from tests.hostile.conftest import refused

ROWS = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


@pytest.fixture(scope="module")
def pg_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    yield from _client(tmp_path_factory.mktemp("nul"))


def _client(data_dir: Path) -> Iterator[httpx.Client]:
    with fresh_pg_database("billumy_nul") as url:
        srv = Server(data_dir=data_dir, env={"BILLUMY_DATABASE_URL": url}).start()
        try:
            key = srv.create_key("nul", tenant="nul")
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=srv.url, headers=headers, timeout=120) as client:
                yield client
        finally:
            srv.stop()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/datasets", {"data": ROWS, "user_id": "u\x00x"}),
        ("/datasets", {"data": ROWS, "name": "n\x00"}),
        ("/api/insights", {"data": ROWS, "question": "total de a\x00?"}),
        ("/chats", {"user_id": "u\x00", "model": "smollm2-135m"}),
        ("/api/chat", {"model": "smollm2-135m", "messages": [{"role": "user", "content": "\x00"}]}),
    ],
)
def test_a_nul_in_text_is_a_400(
    pg_client: httpx.Client, path: str, body: dict[str, object]
) -> None:
    refused(pg_client.post(path, json=body), "NUL")


def test_a_nul_in_a_query_or_form_field_is_a_400(pg_client: httpx.Client) -> None:
    refused(pg_client.get("/chats", params={"user_id": "a\x00b"}), "NUL")
    refused(pg_client.get("/api/insights", params={"user_id": "a\x00b"}), "control")
    form = {"name": "n\x00"}
    files = {"file": ("a.csv", b"a,b\n1,x\n2,y\n", "text/csv")}
    refused(pg_client.post("/datasets", data=form, files=files), "NUL")


def test_a_backslash_u0000_written_as_text_is_no_nul(pg_client: httpx.Client) -> None:
    r = pg_client.post("/chats", json={"user_id": "back\\u0000slash", "model": "smollm2-135m"})
    assert r.status_code in (200, 201), r.text
    assert r.json()["user_id"] == "back\\u0000slash"
