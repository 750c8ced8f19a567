"""The admin API (``/admin/...``, the ``admin`` scope): keys, usage, personas, datasets and
insight history of a tenant. A tenant admin sees only its own tenant; a global admin (an admin
key of ``global_admin_tenant``) every one, naming it with ``tenant``. The key work is
:class:`billumy.admin.KeyService`'s, the same the ``billumy keys`` commands call."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from billumy.admin import Admin, KeyService
from billumy.api.deps import AdminKey, CopyBody, CreateBody, KeyFirstRoute, ServicesDep, body_of
from billumy.api.docs import answers
from billumy.api.models import as_modelfile
from billumy.api.responses import JSON
from billumy.catalog import ModelEntry
from billumy.errors import BadRequestError
from billumy.schemas.admin import (
    DatasetList,
    KeyCreate,
    KeyCreated,
    KeyLimits,
    KeyList,
    KeyOut,
    PersonaList,
    PersonaOut,
    UsageReport,
)
from billumy.schemas.responses import InsightHistory
from billumy.store.base import UNSET, ApiKeyRecord, LimitChange, UsageRecord

router = APIRouter(prefix="/admin", tags=["admin"], route_class=KeyFirstRoute)

TenantQuery = Annotated[
    str | None,
    Query(
        max_length=200,
        description="The tenant to act on: a global admin's choice (default: its own; for "
        "listings of keys and usage, every tenant); a tenant admin may name only its own.",
    ),
]
LimitQuery = Annotated[int, Query(ge=1, le=500, description="At most this many, newest first.")]
CSV = "text/csv"


async def _admin(services: ServicesDep, key: AdminKey) -> Admin:
    return Admin.of(key, global_admin_tenant=services.settings.global_admin_tenant)


async def _keys(services: ServicesDep) -> KeyService:
    return KeyService(services.store, auth=services.auth)


AdminDep = Annotated[Admin, Depends(_admin)]
Keys = Annotated[KeyService, Depends(_keys)]
KeyCreateBody = Annotated[KeyCreate, Depends(body_of(KeyCreate))]
KeyLimitsBody = Annotated[KeyLimits, Depends(body_of(KeyLimits))]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _key(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "prefix": record.prefix,
        "tenant": record.tenant,
        "scopes": record.scopes,
        "created_at": _iso(record.created_at),
        "last_used_at": _iso(record.last_used_at),
        "revoked_at": _iso(record.revoked_at),
        "active": record.active,
        "requests_per_minute": record.requests_per_minute,
        "tokens_per_day": record.tokens_per_day,
        "parallel": record.parallel,
    }


# --- keys ------------------------------------------------------------------------------------


@router.post(
    "/keys",
    status_code=201,
    responses=answers(KeyCreated, status=201, description="Created; the secret is in `key`."),
)
async def create_key(body: KeyCreateBody, admin: AdminDep, keys: Keys) -> Response:
    """Create a key. Its secret is in this answer only: it is stored as a hash."""
    secret, record = await keys.create(
        admin,
        name=body.name,
        scopes=body.scopes,
        tenant=body.tenant,
        requests_per_minute=body.requests_per_minute,
        tokens_per_day=body.tokens_per_day,
        parallel=body.parallel,
    )
    return JSON({**_key(record), "key": secret}, status_code=201)


@router.get("/keys", responses=answers(KeyList))
async def list_keys(admin: AdminDep, keys: Keys, tenant: TenantQuery = None) -> Response:
    """The keys the admin sees (never their secrets), oldest first."""
    found = await keys.list_keys(admin, tenant=tenant)
    return JSON({"keys": [_key(k) for k in found]})


@router.get("/keys/{key_id}", responses=answers(KeyOut, errors=(404,)))
async def get_key(key_id: str, admin: AdminDep, keys: Keys) -> Response:
    """One key, by id (or by name, when one key the admin sees has it)."""
    return JSON(_key(await keys.find(admin, key_id)))


@router.patch("/keys/{key_id}", responses=answers(KeyOut, errors=(404,)))
async def set_key_limits(key_id: str, body: KeyLimitsBody, admin: AdminDep, keys: Keys) -> Response:
    """Change the key's limits: a field left out stays, ``null`` is the server default, 0 is
    unlimited. They apply from its next request."""

    def change(name: str) -> LimitChange:
        given: int | None = getattr(body, name)
        return given if name in body.model_fields_set else UNSET

    record = await keys.set_limits(
        admin,
        key_id,
        requests_per_minute=change("requests_per_minute"),
        tokens_per_day=change("tokens_per_day"),
        parallel=change("parallel"),
    )
    return JSON(_key(record))


@router.post("/keys/{key_id}/revoke", responses=answers(KeyOut, errors=(404,)))
async def revoke_key(key_id: str, admin: AdminDep, keys: Keys) -> Response:
    """Revoke the key: refused from now on (idempotent)."""
    return JSON(_key(await keys.revoke(admin, key_id)))


@router.post(
    "/keys/{key_id}/rotate",
    responses=answers(KeyCreated, description="A new secret, in `key`.", errors=(404,)),
)
async def rotate_key(key_id: str, admin: AdminDep, keys: Keys) -> Response:
    """A new secret for the key, in this answer only; the old one is refused from now on.
    Its id, scopes, limits and usage stay; a revoked key cannot be rotated (400)."""
    secret, record = await keys.rotate(admin, key_id)
    return JSON({**_key(record), "key": secret})


# --- usage -----------------------------------------------------------------------------------


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return CSV in request.headers.get("accept", "")


@router.get("/usage", responses=answers(UsageReport, media=CSV, errors=(404,)))
async def usage(
    request: Request,
    admin: AdminDep,
    keys: Keys,
    tenant: TenantQuery = None,
    key: Annotated[str | None, Query(description="Only this key (id or name).")] = None,
    model: Annotated[str | None, Query(description="Only this model.")] = None,
    since: Annotated[date | None, Query(description="From this UTC day on.")] = None,
    until: Annotated[date | None, Query(description="Up to this UTC day, included.")] = None,
    format: Annotated[
        Literal["json", "csv"] | None,
        Query(description="json or csv (default: csv when Accept names text/csv)."),
    ] = None,
) -> Response:
    """Requests and tokens per key, model and UTC day (requests that ran a model; answers
    replayed from the cache cost nothing), as JSON or CSV."""
    known, rows = await keys.usage(
        admin, tenant=tenant, key=key, model=model, since=since, until=until
    )
    by_id = {k.id: k for k in known}
    out = [_usage_row(row, by_id.get(row.key_id)) for row in rows]
    if _wants_csv(request, format):
        return Response(
            _csv(out),
            media_type=CSV,
            headers={"Content-Disposition": 'attachment; filename="usage.csv"'},
        )
    totals = {
        name: sum(row[name] for row in out)
        for name in ("requests", "prompt_tokens", "completion_tokens", "total_tokens")
    }
    return JSON({"usage": out, "totals": totals})


_USAGE_FIELDS = (
    "day",
    "key_id",
    "key_name",
    "tenant",
    "model",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
)


def _usage_row(row: UsageRecord, key: ApiKeyRecord | None) -> dict[str, Any]:
    return {
        "day": row.day.isoformat(),
        "key_id": row.key_id,
        "key_name": key.name if key else None,
        "tenant": key.tenant if key else None,
        "model": row.model,
        "requests": row.requests,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "total_tokens": row.total_tokens,
    }


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_USAGE_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        # A name starting with = + - @ would be a formula to a spreadsheet: quote it as text.
        name = row["key_name"] or ""
        writer.writerow({**row, "key_name": "'" + name if name[:1] in "=+-@" else name})
    return buffer.getvalue()


# --- personas --------------------------------------------------------------------------------


def _persona(entry: ModelEntry) -> dict[str, Any]:
    if entry.builtin:
        kind = "base" if entry.name == entry.base.name else "configured"
    else:
        kind = "tenant" if entry.owner else "shared"
    return {
        "name": entry.name,
        "base": entry.base.name,
        "parent": entry.parent,
        "owner": entry.owner,
        "kind": kind,
        "system": entry.system,
    }


@router.get("/personas", responses=answers(PersonaList))
async def list_personas(
    services: ServicesDep, admin: AdminDep, tenant: TenantQuery = None
) -> Response:
    """The models the tenant's keys see, by name, each with its ``kind``: ``base``,
    ``configured`` (billumy.toml), ``shared`` or ``tenant`` (its own)."""
    entries = await services.catalog.list(tenant=admin.tenant_for(tenant))
    return JSON({"personas": [_persona(e) for e in entries]})


@router.post(
    "/personas",
    status_code=201,
    responses=answers(PersonaOut, status=201, description="Created or replaced.", errors=(404,)),
)
async def create_persona(
    body: CreateBody, services: ServicesDep, admin: AdminDep, tenant: TenantQuery = None
) -> Response:
    """Create (or replace) a persona of the tenant, from Ollama's ``/api/create`` body
    (``model`` names it); ``shared: true`` publishes it to every tenant (a global admin
    acting on its own tenant only)."""
    if not body.model:
        raise BadRequestError("model is required")
    mf, license = as_modelfile(body)
    entry = await services.catalog.create(
        body.model,
        mf,
        tenant=admin.tenant_for(tenant),
        shared=body.shared,
        license=license,
    )
    return JSON(_persona(entry), status_code=201)


@router.post(
    "/personas/copy",
    status_code=201,
    responses=answers(PersonaOut, status=201, description="Copied.", errors=(404,)),
)
async def copy_persona(
    body: CopyBody, services: ServicesDep, admin: AdminDep, tenant: TenantQuery = None
) -> Response:
    """Copy what ``source`` names for the tenant to ``destination`` (the tenant's own, or
    shared with ``shared: true``, as ``/api/copy``)."""
    entry = await services.catalog.copy(
        body.source,
        body.destination,
        tenant=admin.tenant_for(tenant),
        shared=body.shared,
    )
    return JSON(_persona(entry), status_code=201)


@router.delete(
    "/personas/{name}",
    status_code=204,
    responses=answers(status=204, description="Deleted.", errors=(404,)),
)
async def delete_persona(
    name: str,
    services: ServicesDep,
    admin: AdminDep,
    tenant: TenantQuery = None,
    shared: Annotated[bool, Query(description="Delete the shared one (a global admin).")] = False,
) -> Response:
    """Delete the tenant's persona (with ``shared``, the shared one), as ``/api/delete``."""
    await services.catalog.delete(name, tenant=admin.tenant_for(tenant), shared=shared)
    return Response(status_code=204)


# --- datasets and insights -------------------------------------------------------------------


@router.get("/datasets", responses=answers(DatasetList))
async def list_datasets(
    services: ServicesDep, admin: AdminDep, tenant: TenantQuery = None, limit: LimitQuery = 50
) -> Response:
    """The tenant's datasets with their versions, newest first."""
    found = await services.insights.datasets.newest(admin.tenant_for(tenant), limit=limit)
    return JSON({"datasets": [d.as_dict() for d in found]})


@router.get("/insights", responses=answers(InsightHistory))
async def list_insights(
    services: ServicesDep,
    admin: AdminDep,
    tenant: TenantQuery = None,
    user_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: LimitQuery = 50,
) -> Response:
    """The tenant's insight records (of one user, when given), newest first."""
    briefs = await services.insights.datasets.insights(
        admin.tenant_for(tenant), user_id=user_id, limit=limit
    )
    return JSON({"insights": [brief.as_dict() for brief in briefs]})
