"""Key administration: the one set of service functions behind both the admin API
(``/admin/keys``, ``/admin/usage``) and ``billumy keys``, so the two cannot drift.

Who acts is an :class:`Admin`: an admin key of a tenant (it sees and manages only that
tenant's keys and usage), a global admin (an admin key of ``global_admin_tenant``: every
tenant), or the server's operator on its shell (the CLI: every tenant, no key). A key of
another tenant behaves exactly like a missing one (404), as chats and datasets do.

Every change writes one audit line to the ``billumy.audit`` logger: who (the acting key's id,
or ``cli``), what, which key and its tenant, never a secret. A key that is revoked, rotated or
changed is forgotten by this process's authenticator at once (see
:meth:`billumy.auth.Authenticator.forget`); other processes read it again within their
``key_cache_ttl``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from billumy.auth import Authenticator, Principal, create_key, hash_key, new_key
from billumy.errors import BadRequestError, ForbiddenError, NotFoundError
from billumy.logs import REQUEST_ID
from billumy.store.base import UNSET, ApiKeyRecord, KeyStore, LimitChange, UsageRecord, UsageStore

audit = logging.getLogger("billumy.audit")


class KeysAndUsage(KeyStore, UsageStore, Protocol):
    """What :class:`KeyService` needs of the store."""


@dataclass(frozen=True)
class Admin:
    """Who administers: ``actor`` (a key id, or ``cli``), its ``tenant`` and whether it
    manages every tenant (``everywhere``)."""

    actor: str
    tenant: str | None
    everywhere: bool

    @classmethod
    def of(cls, principal: Principal, *, global_admin_tenant: str) -> Admin:
        """The admin an ``admin``-scoped key is: global when its tenant is the global one."""
        principal.require("admin")
        return cls(
            actor=principal.key_id,
            tenant=principal.tenant,
            everywhere=principal.tenant == global_admin_tenant,
        )

    @classmethod
    def operator(cls) -> Admin:
        """The server's operator on its shell (``billumy keys``): every tenant."""
        return cls(actor="cli", tenant=None, everywhere=True)

    def tenant_for(self, asked: str | None) -> str:
        """The tenant a request acts on: ``asked`` (a global admin's choice), else its own;
        403 when a tenant admin asks for another tenant."""
        if asked is not None:
            check_tenant(asked)
            if not self.everywhere and asked != self.tenant:
                raise ForbiddenError("a tenant admin manages only its own tenant")
        chosen = asked or self.tenant
        if chosen is None:  # the operator, who has no tenant of its own
            raise BadRequestError("name the tenant")
        return chosen

    def tenants_for(self, asked: str | None) -> str | None:
        """Like :meth:`tenant_for`, but None (every tenant) for a global admin that names
        none: the listings' view."""
        if self.everywhere and asked is None:
            return None
        return self.tenant_for(asked)

    def sees(self, record: ApiKeyRecord) -> bool:
        return self.everywhere or record.tenant == self.tenant


def check_tenant(tenant: str) -> str:
    """``tenant`` if it can be a tenant id (not blank, at most 200 characters, no control
    character: the key column's size, and NUL no database takes alike), else 400."""
    if not tenant.strip():
        raise BadRequestError("tenant must not be empty")
    if len(tenant) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in tenant):
        raise BadRequestError("tenant is at most 200 characters, none a control one")
    return tenant


def _audit(admin: Admin, action: str, record: ApiKeyRecord, **details: Any) -> None:
    audit.info(
        "key %s",
        action,
        extra={
            "audit": f"key.{action}",
            "actor": admin.actor,
            "actor_tenant": admin.tenant,
            "key_id": record.id,
            "key_name": record.name,
            "tenant": record.tenant,
            # The access log's line of the same request carries it (None in the CLI).
            "request_id": REQUEST_ID.get(),
            **details,
        },
    )


class KeyService:
    """Create, list, find, limit, revoke and rotate keys, and read their usage, as ``admin``
    may. ``auth`` (the serving process's authenticator; None in the CLI) forgets a changed
    key at once."""

    def __init__(self, store: KeysAndUsage, *, auth: Authenticator | None = None) -> None:
        self._store = store
        self._auth = auth

    async def _forget(self, digest: str) -> None:
        if self._auth is not None:
            await self._auth.forget(digest)

    async def create(
        self,
        admin: Admin,
        *,
        name: str,
        scopes: list[str],
        tenant: str | None = None,
        requests_per_minute: int | None = None,
        tokens_per_day: int | None = None,
        parallel: int | None = None,
    ) -> tuple[str, ApiKeyRecord]:
        """A new key of ``tenant`` (the admin's own by default): its secret, shown only
        here, and its record."""
        secret, record = await create_key(
            self._store,
            name=name,
            scopes=scopes,
            tenant=admin.tenant_for(tenant),
            requests_per_minute=requests_per_minute,
            tokens_per_day=tokens_per_day,
            parallel=parallel,
        )
        await self._forget(record.key_hash)
        _audit(admin, "create", record, scopes=record.scopes, limits=_limits(record))
        return secret, record

    async def list_keys(self, admin: Admin, *, tenant: str | None = None) -> list[ApiKeyRecord]:
        """The keys the admin sees (of ``tenant`` only, when given), oldest first."""
        only = admin.tenants_for(tenant)
        return [
            k
            for k in await self._store.list_keys()
            if admin.sees(k) and (only is None or k.tenant == only)
        ]

    async def find(self, admin: Admin, id_or_name: str) -> ApiKeyRecord:
        """The key the admin sees with this id, else with this name; 404 if none, 400 if
        several have the name."""
        return _one(await self.list_keys(admin), id_or_name)

    async def set_limits(
        self,
        admin: Admin,
        id_or_name: str,
        *,
        requests_per_minute: LimitChange = UNSET,
        tokens_per_day: LimitChange = UNSET,
        parallel: LimitChange = UNSET,
    ) -> ApiKeyRecord:
        """Change the limits given (None: the server default, 0: unlimited, UNSET: as is);
        they apply from the key's next request (in other processes within their
        ``key_cache_ttl``)."""
        found = await self.find(admin, id_or_name)
        record = await self._store.set_key_limits(
            found.id,
            requests_per_minute=requests_per_minute,
            tokens_per_day=tokens_per_day,
            parallel=parallel,
        )
        if record is None:
            raise _missing(id_or_name)
        await self._forget(record.key_hash)
        if _limits(record) != _limits(found):
            _audit(admin, "limits", record, before=_limits(found), after=_limits(record))
        return record

    async def revoke(self, admin: Admin, id_or_name: str) -> ApiKeyRecord:
        """Revoke the key (again: nothing changes); it is refused from now on."""
        found = await self.find(admin, id_or_name)
        record = await self._store.revoke_key(found.id)
        if record is None:
            raise _missing(id_or_name)
        await self._forget(record.key_hash)
        if found.active:
            _audit(admin, "revoke", record)
        return record

    async def rotate(self, admin: Admin, id_or_name: str) -> tuple[str, ApiKeyRecord]:
        """A new secret for the key (shown only here); the old one is refused from now on.
        The id, name, scopes, limits and usage stay. 400 for a revoked key."""
        found = await self.find(admin, id_or_name)
        if not found.active:
            raise BadRequestError("a revoked key cannot be rotated")
        secret = new_key()
        record = await self._store.rekey_key(found.id, key_hash=hash_key(secret), prefix=secret[:8])
        if record is None:  # revoked or deleted meanwhile
            raise BadRequestError("a revoked key cannot be rotated")
        await self._forget(found.key_hash)
        await self._forget(record.key_hash)
        _audit(admin, "rotate", record)
        return secret, record

    async def usage(
        self,
        admin: Admin,
        *,
        tenant: str | None = None,
        key: str | None = None,
        model: str | None = None,
        since: date | None = None,
        until: date | None = None,
    ) -> tuple[list[ApiKeyRecord], list[UsageRecord]]:
        """The keys the admin sees (of ``tenant``) and their usage rows, by day, key id and
        model: of one ``key`` (id or name) and one ``model`` when given, from ``since`` to
        ``until`` (both UTC days, included)."""
        if since is not None and until is not None and until < since:
            raise BadRequestError("until is before since")
        keys = await self.list_keys(admin, tenant=tenant)
        key_id = _one(keys, key).id if key is not None else None
        ids = {k.id for k in keys}
        rows = await self._store.usage(key_id=key_id, since=since)
        return keys, [
            row
            for row in rows
            if row.key_id in ids
            and (until is None or row.day <= until)
            and (model is None or row.model == model)
        ]


def _limits(record: ApiKeyRecord) -> dict[str, int | None]:
    return {
        "requests_per_minute": record.requests_per_minute,
        "tokens_per_day": record.tokens_per_day,
        "parallel": record.parallel,
    }


def _missing(id_or_name: str) -> NotFoundError:
    return NotFoundError(f"no key with id or name {id_or_name!r}")


def _one(keys: Iterable[ApiKeyRecord], id_or_name: str) -> ApiKeyRecord:
    """The key with this id, else the one with this name (the store's rule)."""
    named = []
    for k in keys:
        if k.id == id_or_name:
            return k
        if k.name == id_or_name:
            named.append(k)
    if len(named) > 1:
        raise BadRequestError(f"several keys are named {id_or_name!r}; use the id")
    if not named:
        raise _missing(id_or_name)
    return named[0]
