"""Two hosts, one truth: two ``billumy serve`` processes with their own data dirs on one
PostgreSQL (a fresh database) and one Redis agree on datasets and insight records; and a
server started on a data dir of the previous release serves its files' datasets and records
from the store."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests import legacy_datasets
from tests.e2e.server import RedisServer, Server
from tests.e2e.test_insights import _csv, _post, _sales
from tests.insights.test_importer import make_legacy_dir


def test_a_dataset_uploaded_to_one_host_is_served_by_the_other(
    make_server: type[Server], tmp_path: Path, pg_url: str, redis_server: RedisServer
) -> None:
    env = {"BILLUMY_DATABASE_URL": pg_url, "BILLUMY_REDIS_URL": redis_server.url}
    first = make_server(data_dir=tmp_path / "one", env=env).start()
    second = make_server(data_dir=tmp_path / "two", env=env).start()
    headers = first.headers
    rows = _sales()
    upload = httpx.post(
        first.url + "/datasets",
        files={"file": ("vendas.csv", _csv(rows).encode(), "text/csv")},
        data={"name": "vendas"},
        headers=headers,
        timeout=60,
    )
    assert upload.status_code == 201, upload.text
    dataset = upload.json()
    did = dataset["id"]

    # Listed (read) on the second, exactly as the first answered.
    seen = httpx.get(f"{second.url}/datasets/{did}", headers=headers)
    assert seen.status_code == 200, seen.text
    assert seen.json() == {k: v for k, v in dataset.items() if k != "new_version"}

    # Versioned on the second: the same content is no new version, changed content is.
    same = httpx.post(
        second.url + "/datasets",
        files={"file": ("vendas.csv", _csv(rows).encode(), "text/csv")},
        data={"dataset_id": did},
        headers=headers,
        timeout=60,
    )
    assert same.status_code == 200 and same.json()["new_version"] is False, same.text
    question = {"dataset_id": did, "question": "Total revenue by region", "max_insights": 1}
    before = _post(second, question)  # analysed on the second, which never had the file
    assert before.status_code == 200, before.text
    assert before.json()["dataset"] == {"id": did, "version": 1, "hash": dataset["hash"]}
    changed = [dict(r) for r in rows]
    for row in changed:
        if row["region"] == "Norte":
            row["revenue"] = float(row["revenue"]) * 3  # type: ignore[arg-type]
    grown = httpx.post(
        second.url + "/datasets", json={"data": changed, "dataset_id": did}, headers=headers
    )
    assert grown.status_code == 201 and grown.json()["version"] == 2, grown.text
    assert httpx.get(f"{first.url}/datasets/{did}", headers=headers).json()["version"] == 2

    # Analysed on the first, against the record the second made of version 1.
    after = _post(first, question)
    assert after.status_code == 200, after.text
    assert after.json()["dataset"]["version"] == 2
    changes = after.json()["changes"]
    assert changes and changes[0] == {
        "compared_with": before.json()["id"],
        "previous_version": 1,
    }

    # One insight history, whichever host is asked.
    histories = [
        httpx.get(f"{srv.url}/api/insights", headers=headers).json() for srv in (first, second)
    ]
    assert histories[0] == histories[1]
    assert [r["id"] for r in histories[0]["insights"]] == [after.json()["id"], before.json()["id"]]
    for srv in (first, second):
        record = httpx.get(f"{srv.url}/api/insights/{before.json()['id']}", headers=headers)
        assert record.status_code == 200 and record.json()["facts"] == before.json()["facts"]

    # Deleted on one: a 404 on the other, for reading and for analysis alike.
    assert httpx.delete(f"{first.url}/datasets/{did}", headers=headers).status_code == 204
    assert httpx.get(f"{second.url}/datasets/{did}", headers=headers).status_code == 404
    assert _post(second, question).status_code == 404
    assert httpx.delete(f"{second.url}/datasets/{did}", headers=headers).status_code == 404


def test_the_first_start_imports_the_previous_release_files(
    make_server: type[Server], tmp_path: Path
) -> None:
    root = tmp_path / "data"
    made = make_legacy_dir(root, tmp_path)
    legacy: legacy_datasets.DatasetStore = made["legacy"]
    (tenant, dataset_id) = made["datasets"][2]
    assert tenant == "default"  # the admin key's tenant
    srv = make_server(data_dir=root)
    srv.create_key("acme-app", tenant="acme")  # the tenants come from the key store
    srv.start()
    got = httpx.get(f"{srv.url}/datasets/{dataset_id}", headers=srv.headers)
    assert got.status_code == 200, got.text
    assert got.json() == legacy.get(tenant, dataset_id).as_dict()
    (_, record) = made["records"][3]
    got = httpx.get(f"{srv.url}/api/insights/{record['id']}", headers=srv.headers)
    assert got.status_code == 200 and got.json() == record
    analysed = _post(srv, {"dataset_id": dataset_id, "question": "total of a"})
    assert analysed.status_code == 200, analysed.text
    assert "import: 3 datasets (4 versions) and 4 insight records" in srv.log()
    # Once: a restart imports nothing again (it looks again only for the tenant no key has).
    srv.stop()
    srv.start()
    assert srv.log().count("import: 3 datasets") == 1
    assert "import: 0 datasets (0 versions) and 0 insight records" in srv.log()
