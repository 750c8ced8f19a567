"""Persistence: small async protocols (:mod:`billumy.store.base`) and their adapters."""

from __future__ import annotations

from billumy.errors import BadRequestError
from billumy.store.base import Store


def open_store(url: str) -> Store:
    """The adapter for a database URL (not yet connected: await ``ainit()``).

    ``sqlite+aiosqlite://`` and ``postgresql+asyncpg://`` (see ``Settings.resolved_database_url``)
    go to the SQL adapter, ``mongodb://`` and ``mongodb+srv://`` to the MongoDB one.
    """
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("mongodb", "mongodb+srv"):
        from billumy.store.mongo import MongoStore

        return MongoStore(url)
    if scheme.startswith(("sqlite", "postgresql")):
        from billumy.store.sql import SQLStore

        return SQLStore(url)
    raise BadRequestError(f"unsupported database URL scheme {scheme!r}")
