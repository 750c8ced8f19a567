"""Models keyed by owner and name: each tenant has its own personas' names.

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-06

A created model belongs to a tenant (``owner`` = its id) or is shared (``owner`` = '', what
``billumy.store.base.SHARED`` names: published by a global admin). The previous schema kept the
owner, if any, inside the definition (``definition.owner``) and one row per name: those rows
get that owner, and the ones without one stay shared, as they were served (so a single-tenant
install sees every persona it had). The primary key becomes (owner, name).

The downgrade puts each owner back into its definition; it refuses while two owners hold the
same name, which the previous schema cannot keep.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_MODELS = sa.table(
    "models",
    sa.column("owner", sa.String()),
    sa.column("name", sa.String()),
    sa.column("definition", _JSON),
)


def _owner_of(definition: Any) -> str:
    owner = definition.get("owner") if isinstance(definition, dict) else None
    return owner if isinstance(owner, str) else ""


def _models(primary_key: list[str]) -> sa.Table:
    """The models table with the owner column, and this primary key."""
    return sa.Table(
        "models",
        sa.MetaData(),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("definition", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint(*primary_key, name="models_pkey"),
    )


def _set_primary_key(columns: list[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("models_pkey", "models", type_="primary")
        op.create_primary_key("models_pkey", "models", columns)
    else:  # SQLite changes a primary key only by copying the table, which batch mode does
        with op.batch_alter_table("models", recreate="always", copy_from=_models(columns)):
            pass


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("owner", sa.String(200), nullable=False, server_default=""))
    conn = op.get_bind()
    rows = conn.execute(sa.select(_MODELS.c.name, _MODELS.c.definition)).all()
    for name, definition in rows:
        owner = _owner_of(definition)
        kept = definition
        if isinstance(definition, dict):
            kept = {k: v for k, v in definition.items() if k != "owner"}
        conn.execute(
            sa.update(_MODELS).where(_MODELS.c.name == name).values(owner=owner, definition=kept)
        )
    with op.batch_alter_table("models") as batch:
        batch.alter_column("owner", server_default=None, existing_type=sa.String(200))
    _set_primary_key(["owner", "name"])


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_MODELS.c.owner, _MODELS.c.name, _MODELS.c.definition)).all()
    names = [name for _, name, _ in rows]
    if twice := sorted({name for name in names if names.count(name) > 1}):
        raise RuntimeError(
            f"cannot downgrade: several owners have models named {twice}; the previous schema "
            f"keeps one model per name (delete the extra ones first)"
        )
    for owner, name, definition in rows:
        if owner:
            conn.execute(
                sa.update(_MODELS)
                .where(_MODELS.c.owner == owner, _MODELS.c.name == name)
                .values(definition={**definition, "owner": owner})
            )
    _set_primary_key(["name"])
    with op.batch_alter_table("models") as batch:
        batch.drop_column("owner")
