"""initial schema

Revision ID: cea40321e7eb
Revises:
Create Date: 2026-11-23 23:07:12.806101
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "cea40321e7eb"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_root",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_root")),
        sa.UniqueConstraint("name", name=op.f("uq_api_root_name")),
    )
    op.create_table(
        "principal",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("organisation", sa.String(length=256), nullable=True),
        sa.Column("identity_ref", sa.String(length=128), nullable=True),
        sa.Column("clearance", sa.SmallInteger(), nullable=False),
        sa.Column("requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("objects_per_day", sa.Integer(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_principal")),
        sa.UniqueConstraint("name", name=op.f("uq_principal_name")),
    )
    op.create_table(
        "api_key",
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("principal_id", sa.Uuid(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["principal.id"],
            name=op.f("fk_api_key_principal_id_principal"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_key")),
    )
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_key_principal_id"), ["principal_id"], unique=False)

    op.create_table(
        "collection",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("api_root_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("alias", sa.String(length=128), nullable=True),
        sa.Column("default_tlp", sa.SmallInteger(), nullable=False),
        sa.Column("last_date_added", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_root_id"],
            ["api_root.id"],
            name=op.f("fk_collection_api_root_id_api_root"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection")),
    )
    with op.batch_alter_table("collection", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_collection_api_root_id"), ["api_root_id"], unique=False)

    op.create_table(
        "status",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("api_root_id", sa.Uuid(), nullable=False),
        sa.Column("collection_id", sa.Uuid(), nullable=True),
        sa.Column("principal_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request_timestamp", sa.String(length=40), nullable=False),
        sa.Column("total_count", sa.Integer(), nullable=False),
        sa.Column("success_count", sa.Integer(), nullable=False),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.Column("pending_count", sa.Integer(), nullable=False),
        sa.Column(
            "successes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "failures",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "pendings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_root_id"], ["api_root.id"], name=op.f("fk_status_api_root_id_api_root"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status")),
    )
    with op.batch_alter_table("status", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_status_api_root_id"), ["api_root_id"], unique=False)

    op.create_table(
        "grant",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("principal_id", sa.Uuid(), nullable=False),
        sa.Column("collection_id", sa.Uuid(), nullable=False),
        sa.Column("can_read", sa.Boolean(), nullable=False),
        sa.Column("can_write", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collection.id"],
            name=op.f("fk_grant_collection_id_collection"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["principal.id"],
            name=op.f("fk_grant_principal_id_principal"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grant")),
        sa.UniqueConstraint("principal_id", "collection_id", name=op.f("uq_grant_principal_id_collection_id")),
    )
    with op.batch_alter_table("grant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_grant_collection_id"), ["collection_id"], unique=False)

    op.create_table(
        "object_version",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("collection_id", sa.Uuid(), nullable=False),
        sa.Column("stix_id", sa.String(length=128), nullable=False),
        sa.Column("stix_type", sa.String(length=64), nullable=False),
        sa.Column("spec_version", sa.String(length=8), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("modified", sa.String(length=40), nullable=True),
        sa.Column("date_added", sa.BigInteger(), nullable=False),
        sa.Column("is_latest", sa.Boolean(), nullable=False),
        sa.Column("is_first", sa.Boolean(), nullable=False),
        sa.Column("tlp", sa.SmallInteger(), nullable=True),
        sa.Column("created_by_ref", sa.String(length=128), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("added_by", sa.Uuid(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collection.id"],
            name=op.f("fk_object_version_collection_id_collection"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_object_version")),
        sa.UniqueConstraint("collection_id", "date_added", name=op.f("uq_object_version_collection_id_date_added")),
        sa.UniqueConstraint(
            "collection_id",
            "stix_id",
            "version",
            name=op.f("uq_object_version_collection_id_stix_id_version"),
        ),
    )
    with op.batch_alter_table("object_version", schema=None) as batch_op:
        batch_op.create_index("ix_object_version_latest", ["collection_id", "is_latest", "date_added"], unique=False)
        batch_op.create_index("ix_object_version_type", ["collection_id", "stix_type", "date_added"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("object_version", schema=None) as batch_op:
        batch_op.drop_index("ix_object_version_type")
        batch_op.drop_index("ix_object_version_latest")

    op.drop_table("object_version")
    with op.batch_alter_table("grant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_grant_collection_id"))

    op.drop_table("grant")
    with op.batch_alter_table("status", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_status_api_root_id"))

    op.drop_table("status")
    with op.batch_alter_table("collection", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_collection_api_root_id"))

    op.drop_table("collection")
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_principal_id"))

    op.drop_table("api_key")
    op.drop_table("principal")
    op.drop_table("api_root")
