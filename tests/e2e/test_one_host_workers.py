"""One truth within one host: ``billumy serve --workers 2`` on SQLite (and a private Redis, which
several workers need) agrees on datasets and insight records whichever worker takes a request.

Every request goes through a connection found to reach a known worker (new connections are
opened until one does: a keep-alive connection stays with its worker, but only while it is
idle less than uvicorn's 5 s, shorter than an analysis), and the access log proves which worker
answered it (see tests/e2e/test_workers.py). The dataset must live in the
database, not in files of the data dir: its rows are read there, and this host's Parquet cache
is emptied before each analysis, so the data can only come from the store.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.server import RedisServer, Server
from tests.e2e.test_insights import _csv, _sales
from tests.e2e.test_workers import access_pid, call, each_worker


def _client_to(srv: Server, pid: int) -> httpx.Client:
    """A new connection that the worker ``pid`` accepted."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        client = httpx.Client(base_url=srv.url, headers=srv.headers, timeout=300)
        if call(srv, client, "/health")[1] == pid:
            return client
        client.close()
    raise AssertionError(f"no connection reached worker {pid}")


def _on(srv: Server, pid: int, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request answered by the worker ``pid`` (checked in the log)."""
    request_id = secrets.token_hex(8)
    client = _client_to(srv, pid)
    try:
        response = client.request(method, path, headers={"X-Request-ID": request_id}, **kwargs)
    finally:
        client.close()
    assert access_pid(srv, request_id) == pid
    return response


def _stored(data_dir: Path, dataset_id: str) -> tuple[list[int], int]:
    """The versions of the dataset in the SQLite database, and its chunks of data there."""
    with sqlite3.connect(f"file:{data_dir / 'billumy.db'}?mode=ro", uri=True) as db:
        versions = db.execute(
            "SELECT version FROM dataset_versions WHERE dataset_id = ? ORDER BY version",
            (dataset_id,),
        ).fetchall()
        chunks = db.execute(
            "SELECT count(*) FROM dataset_chunks WHERE dataset_id = ?", (dataset_id,)
        ).fetchone()
    return [v for (v,) in versions], int(chunks[0])


def _empty_cache(data_dir: Path) -> int:
    """Remove this host's cached Parquet files; how many there were."""
    files = list((data_dir / "cache" / "datasets").glob("*.parquet"))
    for path in files:
        path.unlink()
    return len(files)


def test_two_workers_on_sqlite_agree_on_datasets_and_insights(
    make_server: type[Server], tmp_path: Path, redis_server: RedisServer
) -> None:
    data_dir = tmp_path / "host"
    env = {"BILLUMY_WORKERS": "2", "BILLUMY_REDIS_URL": redis_server.url}
    srv = make_server(data_dir=data_dir, env=env).start()
    workers = each_worker(srv)
    for worker in workers:
        worker.client.close()
    a, b = (worker.pid for worker in workers)
    rows = _sales()

    upload = _on(
        srv,
        a,
        "POST",
        "/datasets",
        files={"file": ("vendas.csv", _csv(rows).encode(), "text/csv")},
        data={"name": "vendas"},
    )
    assert upload.status_code == 201, upload.text
    dataset = upload.json()
    did = dataset["id"]
    assert _stored(data_dir, did)[0] == [1] and _stored(data_dir, did)[1] >= 1
    shown = {k: v for k, v in dataset.items() if k != "new_version"}

    # Read through either worker, many times: the same dataset.
    for worker in (b, a) * 4:
        seen = _on(srv, worker, "GET", f"/datasets/{did}")
        assert seen.status_code == 200, seen.text
        assert seen.json() == shown

    # Versioned through the other worker: the same content is no new version...
    same = _on(
        srv,
        b,
        "POST",
        "/datasets",
        files={"file": ("vendas.csv", _csv(rows).encode(), "text/csv")},
        data={"dataset_id": did},
    )
    assert same.status_code == 200 and same.json()["new_version"] is False, same.text
    question = {"dataset_id": did, "question": "Total revenue by region", "max_insights": 1}
    assert _empty_cache(data_dir) == 1
    before = _on(srv, b, "POST", "/api/insights", json=question)
    assert before.status_code == 200, before.text
    assert before.json()["dataset"] == {"id": did, "version": 1, "hash": dataset["hash"]}

    # ...changed content is the next one, seen by both.
    changed = [dict(r) for r in rows]
    for row in changed:
        if row["region"] == "Norte":
            row["revenue"] = float(row["revenue"]) * 3  # type: ignore[arg-type]
    grown = _on(srv, b, "POST", "/datasets", json={"data": changed, "dataset_id": did})
    assert grown.status_code == 201 and grown.json()["version"] == 2, grown.text
    assert _stored(data_dir, did)[0] == [1, 2]
    for worker in (a, b):
        latest = _on(srv, worker, "GET", f"/datasets/{did}").json()
        assert [v["version"] for v in latest["versions"]] == [1, 2]

    # Analysed through the first worker, against the record the second made of version 1.
    assert _empty_cache(data_dir) >= 1
    after = _on(srv, a, "POST", "/api/insights", json=question)
    assert after.status_code == 200, after.text
    assert after.json()["dataset"]["version"] == 2
    assert after.json()["changes"][0] == {
        "compared_with": before.json()["id"],
        "previous_version": 1,
    }
    # An earlier version, asked by number through the second: from the store again.
    assert _empty_cache(data_dir) >= 1
    old = _on(srv, b, "POST", "/api/insights", json={**question, "dataset_version": 1})
    assert old.status_code == 200 and old.json()["dataset"]["version"] == 1, old.text

    # One insight history, whichever worker is asked.
    made = [old.json()["id"], after.json()["id"], before.json()["id"]]
    for worker in (a, b) * 3:
        history = _on(srv, worker, "GET", "/api/insights")
        assert history.status_code == 200, history.text
        assert [r["id"] for r in history.json()["insights"]] == made
    for worker in (a, b):
        record = _on(srv, worker, "GET", f"/api/insights/{before.json()['id']}")
        assert record.status_code == 200 and record.json()["facts"] == before.json()["facts"]

    # Deleted through one: gone for the other, for reading, versioning and analysis alike.
    assert _on(srv, a, "DELETE", f"/datasets/{did}").status_code == 204
    assert _stored(data_dir, did) == ([], 0)
    assert _on(srv, b, "GET", f"/datasets/{did}").status_code == 404
    assert _on(srv, b, "POST", "/api/insights", json=question).status_code == 404
    again = _on(srv, b, "POST", "/datasets", json={"data": changed, "dataset_id": did})
    assert again.status_code == 404, again.text
    assert _on(srv, b, "DELETE", f"/datasets/{did}").status_code == 404
    assert _on(srv, a, "GET", f"/datasets/{did}").status_code == 404
