"""Datasets, their versions and data, the tenants' storage counts, and insight records.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

Made from the metadata of billumy.store.sql_datasets (what autogenerate writes); nothing by
hand. The data of a version is its Parquet file in rows of dataset_chunks (at most 1 MiB
each). Datasets and insight records that earlier releases kept as files under the data dir
are imported at start-up by billumy.insights.importer, not here: a revision sees only the
database.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("datasets_tenant", "datasets", ["tenant"], unique=False)
    op.create_table(
        "dataset_storage",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("bytes", _BIG, server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("tenant"),
    )
    op.create_table(
        "insights",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("dataset_id", sa.String(length=40), nullable=True),
        sa.Column("dataset_version", sa.Integer(), nullable=True),
        sa.Column("question", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("language", sa.Text(), nullable=True),
        sa.Column("dataset", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "insights_tenant_created",
        "insights",
        ["tenant", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index(
        "insights_tenant_dataset",
        "insights",
        ["tenant", "dataset_id", "dataset_version"],
        unique=False,
    )
    op.create_index(
        "insights_tenant_user_created",
        "insights",
        ["tenant", "user_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_table(
        "dataset_versions",
        sa.Column("dataset_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("rows", _BIG, nullable=False),
        sa.Column("columns", sa.Text(), nullable=False),
        sa.Column("bytes", _BIG, nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id", "version"),
    )
    op.create_table(
        "dataset_chunks",
        sa.Column("dataset_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id", "version"],
            ["dataset_versions.dataset_id", "dataset_versions.version"],
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "version", "seq"),
    )


def downgrade() -> None:
    op.drop_table("dataset_chunks")
    op.drop_table("dataset_versions")
    op.drop_index("insights_tenant_user_created", table_name="insights")
    op.drop_index("insights_tenant_dataset", table_name="insights")
    op.drop_index("insights_tenant_created", table_name="insights")
    op.drop_table("insights")
    op.drop_table("dataset_storage")
    op.drop_index("datasets_tenant", table_name="datasets")
    op.drop_table("datasets")
