"""The upgrade path: datasets and insight records that the previous release kept as files under
the data dir (written here by that release's own code, frozen in tests/legacy_datasets.py) are
imported into the store at start-up, once, idempotently, and read back the same."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from billumy.insights import data
from billumy.insights.datasets import Datasets
from billumy.insights.importer import MARKER, Imported, import_files
from billumy.store.base import Store
from tests import legacy_datasets
from tests.store.test_contract import (
    BASE_TIME,
    key_record,
    pg_user,  # noqa: F401 (the fixture sql_url asks for)
    sql_url,  # noqa: F401 (a fixture)
    with_store,
)

Legacy = dict[str, Any]


def _parquet(tmp: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    with data.from_records(rows) as table:
        path = tmp / f"{secrets.token_hex(4)}.parquet"
        data.save_parquet(table, path)
        return {
            "parquet": path,
            "digest": data.dataset_hash(table),
            "rows": table.row_count,
            "columns": [{"name": c, "type": table.types[c]} for c in table.columns],
        }


def _record(n: int, dataset: dict[str, Any], question: str = "qual loja vendeu mais?") -> Legacy:
    return {
        "id": legacy_datasets.new_id("in"),
        "created_at": (BASE_TIME + timedelta(minutes=n)).isoformat().replace("+00:00", "Z"),
        "user_id": "ana",
        "model": "billumy",
        "question": question,
        "language": "pt",
        "dataset": dataset,
        "facts": [{"id": "f1", "values": {"vendas.total": n}}],
        "summary": f"resumo {n}",
        "changes": None,
    }


def make_legacy_dir(root: Path, tmp: Path) -> dict[str, Any]:
    """A data dir as the previous release wrote it: tenant ``acme`` with two datasets (one of
    two versions) and three records, ``default`` with one of each, and a tenant that no key
    names with one of each."""
    legacy = legacy_datasets.DatasetStore(root, max_tenant_bytes=10**9)
    made: dict[str, Any] = {"datasets": [], "records": []}

    def upload(tenant: str, rows: list[dict[str, Any]], dataset_id: str | None = None) -> Any:
        dataset, created = legacy.add_version(
            tenant,
            dataset_id=dataset_id,
            name=f"{tenant}.csv",
            user_id="ana",
            **_parquet(tmp, rows),
        )
        assert created
        return dataset

    sales = [{"loja": "Centro", "vendas": 10}, {"loja": "Norte", "vendas": 7}]
    first = upload("acme", sales)
    first = upload("acme", [*sales, {"loja": "Sul", "vendas": 3}], first.id)
    second = upload("acme", [{"mes": "2026-01", "clientes": 4}])
    home = upload("default", [{"a": 1}])
    ghost = upload("ghost", [{"b": 2}])
    made["datasets"] = [("acme", first.id), ("acme", second.id), ("default", home.id)]
    for n, (tenant, dataset) in enumerate(
        [
            ("acme", {"id": first.id, "version": 1, "hash": first.versions[0].hash}),
            ("acme", {"id": first.id, "version": 2, "hash": first.latest.hash}),
            ("acme", {"hash": "inline"}),
            ("default", {"id": home.id, "version": 1, "hash": home.latest.hash}),
            ("ghost", {"id": ghost.id, "version": 1, "hash": ghost.latest.hash}),
        ]
    ):
        record = _record(n, dataset)
        legacy.save_insight(tenant, record)
        if tenant != "ghost":
            made["records"].append((tenant, record))
    made["legacy"] = legacy
    return made


def test_a_previous_release_data_dir_is_imported_once(
    sql_url: str,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = tmp_path / "data"
    made = make_legacy_dir(root, tmp_path)
    legacy: legacy_datasets.DatasetStore = made["legacy"]

    async def body(store: Store) -> None:
        await store.add_key(key_record("acme-app", tenant="acme"))
        with caplog.at_level(logging.INFO, logger="billumy.insights.importer"):
            first = await import_files(store, root, database_url=sql_url)
        assert first == Imported(datasets=3, versions=4, insights=4, skipped=2)
        assert "3 datasets (4 versions) and 4 insight records" in caplog.text
        assert "no tenant has the datasets" in caplog.text
        # What no tenant claimed is tried again at the next start, once one does.
        assert not (root / MARKER).exists()
        await store.add_key(key_record("ghost-app", tenant="ghost"))
        late = await import_files(store, root, database_url=sql_url)
        assert late == Imported(datasets=1, versions=1, insights=1)
        # Once: the marker names this database.
        assert (root / MARKER).is_file()
        assert await import_files(store, root, database_url=sql_url) is None
        # Idempotent even without the marker (a start cut short): nothing new.
        (root / MARKER).unlink()
        assert await import_files(store, root, database_url=sql_url) == Imported()

        # The same datasets, versions, data and records, read through this release's service.
        datasets = Datasets(store, tmp_path / "host", max_tenant_bytes=10**9)
        for tenant, dataset_id in made["datasets"]:
            before = legacy.get(tenant, dataset_id)
            after = await datasets.get(tenant, dataset_id)
            assert after.as_dict() == before.as_dict()
            for version in before.versions:
                _, old_path = legacy.version(tenant, before, version.version)
                _, new_path = await datasets.version(tenant, after, version.version)
                assert new_path.read_bytes() == old_path.read_bytes()
                assert new_path.is_relative_to(tmp_path / "host")
        for tenant, record in made["records"]:
            assert await datasets.insight(tenant, record["id"]) == record
        for tenant in ("acme", "default"):
            listed = await datasets.insights(tenant, limit=50)
            keep = ("id", "created_at", "user_id", "question", "dataset", "summary", "language")
            assert [b.as_dict() for b in listed] == [
                {k: r.get(k) for k in keep} for r in legacy.insights(tenant)
            ]
        # The imported data counts against the quota.
        acme = sum(v.bytes for _, d in made["datasets"][:2] for v in legacy.get("acme", d).versions)
        assert await store.dataset_bytes("acme") == acme
        # The earlier record of a question is found for the changes of a new version.
        earlier = await datasets.earlier(
            "acme",
            dataset_id=made["datasets"][0][1],
            question="qual loja vendeu mais?",
            before_version=3,
        )
        assert earlier == made["records"][1][1]

    with_store(sql_url, body)
