"""billumy.catalog with the real SQL store on a temporary SQLite file."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from billumy.catalog import Catalog, ModelEntry, normalize_name
from billumy.errors import BadRequestError, ForbiddenError, NotFoundError, StoreUnavailableError
from billumy.modelfile import Modelfile
from billumy.settings import DEFAULT_PERSONA_SYSTEM, PersonaConfig, Settings
from billumy.store.base import ModelRecord
from billumy.store.sql import SQLStore

T = TypeVar("T")
OPERATOR = "default"  # the global admin tenant (Settings.global_admin_tenant's default)

ORIGINAL_MODELFILE = """FROM mistral
PARAMETER system "Você é Billumy, um assistente de análise de dados."
PARAMETER temperature 0.7
PARAMETER num_ctx 1024
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("BILLUMY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BILLUMY_CONFIG", str(tmp_path / "absent.toml"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def with_catalog(settings: Settings, body: Callable[[Catalog, SQLStore], Awaitable[T]]) -> T:
    """A fresh Catalog on a fresh store over ``settings``' database, as a new process has."""

    async def main() -> T:
        store = SQLStore(settings.resolved_database_url)
        await store.ainit()
        try:
            catalog = Catalog(settings, store)
            await catalog.aload()
            return await body(catalog, store)
        finally:
            await store.aclose()

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("billumy", "billumy:latest"),
        ("Billumy", "billumy:latest"),
        ("BILLUMY:Latest", "billumy:latest"),
        ("  billumy  ", "billumy:latest"),
        ("smollm2-135m", "smollm2-135m:latest"),
        ("gemma3-270m:latest", "gemma3-270m:latest"),
        ("library/llama3.2:3b", "library/llama3.2:3b"),
        ("registry/org/model:v1_0", "registry/org/model:v1_0"),
    ],
)
def test_normalize_name(name: str, normalized: str) -> None:
    assert normalize_name(name) == normalized


@pytest.mark.parametrize(
    "name",
    ["", "   ", "bad name", "-leading-dash", ":latest", "billumy:", "a:b:c", "a/b/c/d", "x" * 129],
)
def test_invalid_names_are_bad_requests(name: str) -> None:
    with pytest.raises(BadRequestError, match="invalid model name"):
        normalize_name(name)


def test_default_persona_runs_on_smollm2(settings: Settings) -> None:
    async def body(catalog: Catalog, store: SQLStore) -> None:
        entry = await catalog.get("billumy", tenant=None)
        assert entry.name == "billumy:latest"
        assert entry.base.name == "smollm2-135m:latest"
        assert entry.system == DEFAULT_PERSONA_SYSTEM
        assert entry.parameters == {"temperature": 0.7, "num_ctx": 2048, "num_predict": 512}
        assert entry.builtin
        assert await catalog.get("BILLUMY:latest", tenant=None) is entry
        assert catalog.default_model == "billumy:latest"
        names = [e.name for e in await catalog.list(tenant=None)]
        assert names == ["billumy:latest", "gemma3-270m:latest", "smollm2-135m:latest"]

    with_catalog(settings, body)


def test_original_modelfile_persona(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, settings: Settings
) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(ORIGINAL_MODELFILE, encoding="utf-8")
    settings = Settings(
        data_dir=settings.data_dir,
        personas={"analyst": PersonaConfig(modelfile=str(modelfile))},
    )

    async def body(catalog: Catalog, store: SQLStore) -> None:
        entry = await catalog.get("analyst", tenant=None)
        assert entry.name == "analyst:latest"
        assert entry.base.name == "smollm2-135m:latest"
        assert entry.parent == "mistral"
        assert entry.system == "Você é Billumy, um assistente de análise de dados."
        assert entry.parameters == {"temperature": 0.7, "num_ctx": 1024}
        assert isinstance(entry.parameters["num_ctx"], int)
        assert entry.builtin

    with caplog.at_level(logging.WARNING, logger="billumy.catalog"):
        with_catalog(settings, body)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "mistral" in message
    assert "smollm2-135m:latest" in message


def test_created_models_persist_across_catalogs(settings: Settings) -> None:
    async def create(catalog: Catalog, store: SQLStore) -> None:
        entry = await catalog.create(
            "Sales-Bot",
            Modelfile(
                from_="billumy",
                system="Be terse.",
                parameters={"temperature": 0.1},
                messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "."}],
            ),
            tenant=OPERATOR,
        )
        assert entry.name == "sales-bot:latest"
        assert not entry.builtin
        assert entry.base.name == "smollm2-135m:latest"
        # Parameters not given are inherited from the parent persona.
        assert entry.parameters == {"temperature": 0.1, "num_ctx": 2048, "num_predict": 512}
        await catalog.create(
            "tiny-gemma", Modelfile(from_="gemma3-270m", system="Short."), tenant=OPERATOR
        )
        await catalog.copy("sales-bot", "sales-bot:v2", tenant=OPERATOR)

    with_catalog(settings, create)

    async def check(catalog: Catalog, store: SQLStore) -> None:
        names = {e.name for e in await catalog.list(tenant=OPERATOR)}
        assert {"sales-bot:latest", "sales-bot:v2", "tiny-gemma:latest"} <= names
        for name in ("sales-bot", "sales-bot:v2"):
            entry = await catalog.get(name, tenant=OPERATOR)
            assert not entry.builtin
            assert entry.system == "Be terse."
            assert entry.parameters == {"temperature": 0.1, "num_ctx": 2048, "num_predict": 512}
            assert entry.messages == [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "."},
            ]
            assert entry.base.name == "smollm2-135m:latest"
        assert (await catalog.get("tiny-gemma", tenant=OPERATOR)).base.name == "gemma3-270m:latest"
        await catalog.delete("Sales-Bot", tenant=OPERATOR)

    with_catalog(settings, check)

    async def after_delete(catalog: Catalog, store: SQLStore) -> None:
        with pytest.raises(NotFoundError):
            await catalog.get("sales-bot", tenant=OPERATOR)
        assert (await catalog.get("sales-bot:v2", tenant=OPERATOR)).system == "Be terse."
        with pytest.raises(NotFoundError):
            await catalog.delete("sales-bot", tenant=OPERATOR)

    with_catalog(settings, after_delete)


def test_model_created_by_another_catalog_is_found_without_reload(settings: Settings) -> None:
    async def body(first: Catalog, store: SQLStore) -> None:
        second = Catalog(settings, store)
        await second.aload()
        await first.create("fresh", Modelfile(from_="smollm2-135m", system="New."), tenant=OPERATOR)
        assert (await second.get("fresh", tenant=OPERATOR)).system == "New."

    with_catalog(settings, body)


@pytest.mark.parametrize("name", ["billumy", "billumy:latest", "smollm2-135m", "gemma3-270m"])
def test_configured_models_are_shadowed_only_for_their_tenant(
    settings: Settings, name: str
) -> None:
    # A tenant's own entry of a configured name is what that tenant gets; every other tenant
    # (and the server) keeps the configured one, which no delete removes.
    async def body(catalog: Catalog, store: SQLStore) -> None:
        configured = await catalog.get(name, tenant=None)
        with pytest.raises(BadRequestError, match="configuration"):
            await catalog.delete(name, tenant="acme")
        await catalog.create(name, Modelfile(from_=name, system="Acme's own."), tenant="acme")
        own = await catalog.get(name, tenant="acme")
        assert (own.owner, own.system, own.base) == ("acme", "Acme's own.", configured.base)
        assert own.parameters == configured.parameters  # built FROM the configured one
        for tenant in ("globex", OPERATOR, None):
            assert await catalog.get(name, tenant=tenant) is configured
        await catalog.copy("gemma3-270m", name, tenant="globex")
        assert (await catalog.get(name, tenant="globex")).base.name == "gemma3-270m:latest"
        await catalog.delete(name, tenant="acme")
        assert await catalog.get(name, tenant="acme") is configured
        with pytest.raises(BadRequestError, match="configuration"):
            await catalog.delete(name, tenant="acme")

    with_catalog(settings, body)


def test_unknown_and_invalid_models(settings: Settings) -> None:
    async def body(catalog: Catalog, store: SQLStore) -> None:
        with pytest.raises(NotFoundError, match="'nope' not found"):
            await catalog.get("nope", tenant=None)
        with pytest.raises(NotFoundError):
            await catalog.copy("nope", "other", tenant=OPERATOR)
        with pytest.raises(NotFoundError):
            await catalog.delete("nope", tenant=OPERATOR)
        with pytest.raises(BadRequestError, match="required"):
            await catalog.get("", tenant=None)
        with pytest.raises(BadRequestError, match="invalid model name"):
            await catalog.get("bad name", tenant=None)
        with pytest.raises(BadRequestError, match="role"):
            await catalog.create(
                "x",
                Modelfile(from_="billumy", messages=[{"role": "boss", "content": "hi"}]),
                tenant=OPERATOR,
            )
        assert [m.name for m in await store.list_models()] == []

    with_catalog(settings, body)


def test_configured_personas_add_to_the_default_one(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        personas={"analista": PersonaConfig(system="Responda em português.")},
    )

    async def body(catalog: Catalog, _store: SQLStore) -> list[str]:
        return [e.name for e in await catalog.list(tenant=None)]

    names = with_catalog(settings, body)
    assert "analista:latest" in names and "billumy:latest" in names


# --- ownership: personas belong to the tenant whose admin created them ------------------------


def test_a_tenants_persona_is_invisible_to_another(settings: Settings) -> None:
    async def body(catalog: Catalog, store: SQLStore) -> None:
        await catalog.create("acme-bot", Modelfile(from_="billumy", system="Acme."), tenant="acme")
        assert (await catalog.get("acme-bot", tenant="acme")).owner == "acme"
        with pytest.raises(NotFoundError, match="'acme-bot' not found"):
            await catalog.get("acme-bot", tenant="globex")
        with pytest.raises(NotFoundError):  # nor is it the server's (a configured fallback)
            await catalog.get("acme-bot", tenant=None)
        acme = {e.name for e in await catalog.list(tenant="acme")}
        globex = {e.name for e in await catalog.list(tenant="globex")}
        assert "acme-bot:latest" in acme and "acme-bot:latest" not in globex
        assert {"billumy:latest", "smollm2-135m:latest"} <= acme & globex
        # Not a source for another tenant, nor a parent: FROM names nothing it sees.
        with pytest.raises(NotFoundError):
            await catalog.copy("acme-bot", "mine", tenant="globex")
        spy = await catalog.create("spy", Modelfile(from_="acme-bot"), tenant="globex")
        assert spy.system is None and spy.base.name == catalog.default_base
        with pytest.raises(NotFoundError):
            await catalog.delete("acme-bot", tenant="globex")
        # The same name is globex's own, another model: acme's is unchanged.
        await catalog.create(
            "acme-bot", Modelfile(from_="gemma3-270m", system="Globex."), tenant="globex"
        )
        await catalog.copy("billumy", "acme-bot:v2", tenant="globex")
        assert (await catalog.get("acme-bot", tenant="globex")).system == "Globex."
        acme_bot = await catalog.get("acme-bot", tenant="acme")
        assert (acme_bot.system, acme_bot.base.name) == ("Acme.", "smollm2-135m:latest")
        with pytest.raises(NotFoundError):
            await catalog.get("acme-bot:v2", tenant="acme")
        # Its own tenant replaces and deletes its own only.
        await catalog.create("acme-bot", Modelfile(from_="billumy", system="v2"), tenant="acme")
        assert (await catalog.get("acme-bot", tenant="acme")).system == "v2"
        await catalog.delete("acme-bot", tenant="acme")
        with pytest.raises(NotFoundError):
            await catalog.get("acme-bot", tenant="acme")
        assert (await catalog.get("acme-bot", tenant="globex")).system == "Globex."
        assert [(m.owner, m.name) for m in await store.list_models()] == [
            ("globex", "acme-bot:latest"),
            ("globex", "acme-bot:v2"),
            ("globex", "spy:latest"),
        ]

    with_catalog(settings, body)


def test_a_name_resolves_to_the_tenants_own_then_shared_then_configured(
    settings: Settings,
) -> None:
    async def body(catalog: Catalog, store: SQLStore) -> None:
        configured = await catalog.get("billumy", tenant="acme")
        await catalog.create(
            "billumy", Modelfile(from_="billumy", system="Shared."), tenant=OPERATOR, shared=True
        )
        await catalog.create("billumy", Modelfile(from_="billumy", system="Acme."), tenant="acme")
        assert (await catalog.get("billumy", tenant="acme")).system == "Acme."
        assert (await catalog.get("billumy", tenant="globex")).system == "Shared."
        assert (await catalog.get("billumy", tenant=None)).system == "Shared."
        # Acme's own was built FROM what acme saw then: the shared one.
        assert (await catalog.get("billumy", tenant="acme")).parent == "billumy"

        def listed(entries: list[ModelEntry]) -> dict[str, str | None]:
            return {e.name: e.system for e in entries if e.name == "billumy:latest"}

        assert listed(await catalog.list(tenant="acme")) == {"billumy:latest": "Acme."}
        assert listed(await catalog.list(tenant="globex")) == {"billumy:latest": "Shared."}
        everything = [e for e in await catalog.list(tenant=None) if e.name == "billumy:latest"]
        assert [(e.owner, e.system) for e in everything] == [
            (None, configured.system),
            (None, "Shared."),
            ("acme", "Acme."),
        ]
        # Deleting peels one layer at a time.
        await catalog.delete("billumy", tenant="acme")
        assert (await catalog.get("billumy", tenant="acme")).system == "Shared."
        with pytest.raises(ForbiddenError, match="shared"):
            await catalog.delete("billumy", tenant="acme")
        await catalog.delete("billumy", tenant=OPERATOR, shared=True)
        assert await catalog.get("billumy", tenant="acme") is configured

    with_catalog(settings, body)


def test_a_new_own_entry_is_read_from_the_store_by_another_process(settings: Settings) -> None:
    async def body(first: Catalog, store: SQLStore) -> None:
        second = Catalog(settings, store)
        await second.aload()
        await first.create("acme-bot", Modelfile(from_="billumy", system="Acme."), tenant="acme")
        assert (await second.get("acme-bot", tenant="acme")).system == "Acme."
        with pytest.raises(NotFoundError):
            await second.get("acme-bot", tenant="globex")
        # Globex's own of that name, made in one process: the other finds it.
        await first.create(
            "acme-bot", Modelfile(from_="billumy", system="Globex."), tenant="globex"
        )
        assert (await second.get("acme-bot", tenant="globex")).system == "Globex."
        assert (await second.get("acme-bot", tenant="acme")).system == "Acme."

    with_catalog(settings, body)


def test_changes_made_by_another_process_apply_after_the_refresh_interval(
    tmp_path: Path,
) -> None:
    # A new own persona that shadows an entry another process already has, and a delete:
    # read again for every request with 0; served as read until the interval passes otherwise.
    async def body(first: Catalog, store: SQLStore) -> None:
        eager = Catalog(Settings(data_dir=tmp_path / "data", catalog_refresh_s=0), store)
        lazy = Catalog(Settings(data_dir=tmp_path / "data", catalog_refresh_s=3600), store)
        await first.create("house", Modelfile(from_="billumy", system="House."), tenant="ops")
        for other in (eager, lazy):
            await other.aload()
            assert (await other.get("house", tenant="ops")).system == "House."
        await first.create("billumy", Modelfile(from_="billumy", system="Ops' own."), tenant="ops")
        await first.delete("house", tenant="ops")
        assert (await eager.get("billumy", tenant="ops")).system == "Ops' own."
        with pytest.raises(NotFoundError):
            await eager.get("house", tenant="ops")
        assert (await lazy.get("billumy", tenant="ops")).system == DEFAULT_PERSONA_SYSTEM
        assert (await lazy.get("house", tenant="ops")).system == "House."
        await lazy.aload()  # what the interval's end does (and /api/tags)
        assert (await lazy.get("billumy", tenant="ops")).system == "Ops' own."

    with_catalog(Settings(data_dir=tmp_path / "data"), body)


class _DownStore:
    """The store, with its database down for reads of the whole catalog."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store

    async def list_models(self) -> list[ModelRecord]:
        raise StoreUnavailableError()

    async def get_model(self, owner: str, name: str) -> ModelRecord | None:
        return await self.store.get_model(owner, name)

    async def put_model(self, record: ModelRecord) -> None:
        await self.store.put_model(record)

    async def delete_model(self, owner: str, name: str) -> bool:
        return await self.store.delete_model(owner, name)


def test_a_refresh_during_a_database_outage_serves_what_was_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(first: Catalog, store: SQLStore) -> None:
        await first.create("house", Modelfile(from_="billumy", system="House."), tenant="ops")
        settings = Settings(data_dir=tmp_path / "data", catalog_refresh_s=0)
        other = Catalog(settings, store)
        await other.aload()
        other._store = _DownStore(store)
        with caplog.at_level(logging.WARNING, logger="billumy.catalog"):
            assert (await other.get("house", tenant="ops")).system == "House."
            assert (await other.get("billumy", tenant="acme")).system == DEFAULT_PERSONA_SYSTEM
        assert "database is unavailable" in caplog.text

    with_catalog(Settings(data_dir=tmp_path / "data"), body)


def test_only_a_global_admin_publishes_and_changes_shared_personas(settings: Settings) -> None:
    async def body(catalog: Catalog, store: SQLStore) -> None:
        with pytest.raises(ForbiddenError, match="global admin"):
            await catalog.create(
                "house", Modelfile(from_="billumy", system="x"), tenant="acme", shared=True
            )
        with pytest.raises(ForbiddenError, match="global admin"):
            await catalog.copy("billumy", "house", tenant="acme", shared=True)
        await catalog.create(
            "house", Modelfile(from_="billumy", system="House."), tenant=OPERATOR, shared=True
        )
        for tenant in ("acme", "globex", OPERATOR, None):
            entry = await catalog.get("house", tenant=tenant)
            assert entry.owner is None and entry.system == "House."
        with pytest.raises(ForbiddenError, match="global admin"):
            await catalog.delete("house", tenant="acme", shared=True)
        with pytest.raises(ForbiddenError, match="shared"):
            await catalog.delete("house", tenant="globex")
        # A tenant admin's create of that name is its own, shadowing the shared one for it.
        await catalog.create("house", Modelfile(from_="house", system="Acme's."), tenant="acme")
        assert (await catalog.get("house", tenant="acme")).system == "Acme's."
        assert (await catalog.get("house", tenant="globex")).system == "House."
        # A global admin's without `shared` is its own tenant's too.
        await catalog.create("house", Modelfile(from_="billumy", system="Ops."), tenant=OPERATOR)
        assert (await catalog.get("house", tenant=OPERATOR)).system == "Ops."
        assert (await catalog.get("house", tenant="globex")).system == "House."
        # A shared copy is of what every tenant sees, never of the copier's own.
        await catalog.copy("house", "house:copy", tenant=OPERATOR, shared=True)
        assert (await catalog.get("house:copy", tenant="globex")).system == "House."
        await catalog.copy("house", "acme-house", tenant="acme")
        assert (await catalog.get("acme-house", tenant="acme")).owner == "acme"
        with pytest.raises(NotFoundError):
            await catalog.get("acme-house", tenant="globex")
        # A global admin's delete takes its own first, then the shared one.
        await catalog.delete("house", tenant=OPERATOR)
        assert (await catalog.get("house", tenant=OPERATOR)).system == "House."
        await catalog.delete("house", tenant=OPERATOR)
        with pytest.raises(NotFoundError):
            await catalog.get("house", tenant="globex")
        assert (await catalog.get("house", tenant="acme")).system == "Acme's."

    with_catalog(settings, body)


def test_the_global_admin_tenant_is_a_setting(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", global_admin_tenant="ops")

    async def body(catalog: Catalog, store: SQLStore) -> None:
        with pytest.raises(ForbiddenError):
            await catalog.create("house", Modelfile(from_="billumy"), tenant="default", shared=True)
        await catalog.create("house", Modelfile(from_="billumy"), tenant="ops", shared=True)
        assert (await catalog.get("house", tenant="acme")).owner is None

    with_catalog(settings, body)


def test_personas_stored_without_an_owner_are_shared(settings: Settings) -> None:
    """Entries stored shared (those made before personas had owners migrate so) serve every
    tenant, and a single-tenant install's admin still replaces and deletes them."""

    async def body(catalog: Catalog, store: SQLStore) -> None:
        legacy = {"from": "billumy", "base": "smollm2-135m:latest", "system": "Old."}
        await store.put_model(ModelRecord(name="legacy:latest", definition=legacy))
        await catalog.aload()
        for tenant in ("acme", OPERATOR):
            assert (await catalog.get("legacy", tenant=tenant)).system == "Old."
        with pytest.raises(ForbiddenError):
            await catalog.delete("legacy", tenant="acme")
        await catalog.create(
            "legacy", Modelfile(from_="billumy", system="New."), tenant=OPERATOR, shared=True
        )
        assert (await catalog.get("legacy", tenant="acme")).system == "New."
        await catalog.delete("legacy", tenant=OPERATOR)
        assert await store.list_models() == []

    with_catalog(settings, body)


def test_a_key_without_a_tenant_owns_nothing(settings: Settings) -> None:
    # '' marks shared entries in the store: it is no tenant, whatever a caller passes.
    async def body(catalog: Catalog, store: SQLStore) -> None:
        with pytest.raises(ForbiddenError, match="tenant"):
            await catalog.create("x", Modelfile(from_="billumy"), tenant="")
        with pytest.raises(ForbiddenError, match="tenant"):
            await catalog.delete("x", tenant="")

    with_catalog(settings, body)
