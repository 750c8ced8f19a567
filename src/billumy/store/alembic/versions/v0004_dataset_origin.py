"""Where a dataset version came from: ``dataset_versions.origin``.

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-12

A version made from a source (a snapshot, ``POST /datasets`` with ``source``) records the
source, table, filter and columns it was read with, as JSON text; an upload records nothing
(NULL), so the existing rows need no change.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dataset_versions") as batch:
        batch.add_column(sa.Column("origin", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dataset_versions") as batch:
        batch.drop_column("origin")
