"""billumy.catalog with the real SQL store on a temporary SQLite file."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from billumy.catalog import Catalog, normalize_name
from billumy.errors import BadRequestError, NotFoundError
from billumy.modelfile import Modelfile
from billumy.settings import DEFAULT_PERSONA_SYSTEM, PersonaConfig, Settings
from billumy.store.sql import SQLStore

T = TypeVar("T")

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
        entry = await catalog.get("billumy")
        assert entry.name == "billumy:latest"
        assert entry.base.name == "smollm2-135m:latest"
        assert entry.system == DEFAULT_PERSONA_SYSTEM
        assert entry.parameters == {"temperature": 0.7, "num_ctx": 2048}
        assert entry.builtin
        assert await catalog.get("BILLUMY:latest") is entry
        assert catalog.default_model == "billumy:latest"
        names = [e.name for e in await catalog.list()]
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
        entry = await catalog.get("analyst")
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
        )
        assert entry.name == "sales-bot:latest"
        assert not entry.builtin
        assert entry.base.name == "smollm2-135m:latest"
        # Parameters not given are inherited from the parent persona.
        assert entry.parameters == {"temperature": 0.1, "num_ctx": 2048}
        await catalog.create("tiny-gemma", Modelfile(from_="gemma3-270m", system="Short."))
        await catalog.copy("sales-bot", "sales-bot:v2")

    with_catalog(settings, create)

    async def check(catalog: Catalog, store: SQLStore) -> None:
        names = {e.name for e in await catalog.list()}
        assert {"sales-bot:latest", "sales-bot:v2", "tiny-gemma:latest"} <= names
        for name in ("sales-bot", "sales-bot:v2"):
            entry = await catalog.get(name)
            assert not entry.builtin
            assert entry.system == "Be terse."
            assert entry.parameters == {"temperature": 0.1, "num_ctx": 2048}
            assert entry.messages == [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "."},
            ]
            assert entry.base.name == "smollm2-135m:latest"
        assert (await catalog.get("tiny-gemma")).base.name == "gemma3-270m:latest"
        await catalog.delete("Sales-Bot")

    with_catalog(settings, check)

    async def after_delete(catalog: Catalog, store: SQLStore) -> None:
        with pytest.raises(NotFoundError):
            await catalog.get("sales-bot")
        assert (await catalog.get("sales-bot:v2")).system == "Be terse."
        with pytest.raises(NotFoundError):
            await catalog.delete("sales-bot")

    with_catalog(settings, after_delete)


def test_model_created_by_another_catalog_is_found_without_reload(settings: Settings) -> None:
    async def body(first: Catalog, store: SQLStore) -> None:
        second = Catalog(settings, store)
        await second.aload()
        await first.create("fresh", Modelfile(from_="smollm2-135m", system="New."))
        assert (await second.get("fresh")).system == "New."

    with_catalog(settings, body)


@pytest.mark.parametrize("name", ["billumy", "billumy:latest", "smollm2-135m", "gemma3-270m"])
def test_configured_models_cannot_be_replaced_or_deleted(settings: Settings, name: str) -> None:
    async def body(catalog: Catalog, store: SQLStore) -> None:
        with pytest.raises(BadRequestError, match="configuration"):
            await catalog.create(name, Modelfile(from_="smollm2-135m", system="hijack"))
        with pytest.raises(BadRequestError, match="configuration"):
            await catalog.copy("smollm2-135m", name)
        with pytest.raises(BadRequestError, match="configuration"):
            await catalog.delete(name)
        assert (await catalog.get(name)).system != "hijack"

    with_catalog(settings, body)


def test_unknown_and_invalid_models(settings: Settings) -> None:
    async def body(catalog: Catalog, store: SQLStore) -> None:
        with pytest.raises(NotFoundError, match="'nope' not found"):
            await catalog.get("nope")
        with pytest.raises(NotFoundError):
            await catalog.copy("nope", "other")
        with pytest.raises(NotFoundError):
            await catalog.delete("nope")
        with pytest.raises(BadRequestError, match="required"):
            await catalog.get("")
        with pytest.raises(BadRequestError, match="invalid model name"):
            await catalog.get("bad name")
        with pytest.raises(BadRequestError, match="role"):
            await catalog.create(
                "x", Modelfile(from_="billumy", messages=[{"role": "boss", "content": "hi"}])
            )
        assert [m.name for m in await store.list_models()] == []

    with_catalog(settings, body)


def test_configured_personas_add_to_the_default_one(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        personas={"analista": PersonaConfig(system="Responda em português.")},
    )

    async def body(catalog: Catalog, _store: SQLStore) -> list[str]:
        return [e.name for e in await catalog.list()]

    names = with_catalog(settings, body)
    assert "analista:latest" in names and "billumy:latest" in names
